"""Chapter 07 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch

from course_lib.checkers.ch07 import check_attribute_direction, check_auroc
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def auroc(normal_scores, anomaly_scores):
    a, n = anomaly_scores.double()[:, None], normal_scores.double()[None, :]
    return float(((a > n).double() + 0.5 * (a == n).double()).mean())


def attribute_direction(mu, has_attribute):
    has = has_attribute.bool()
    return mu[has].mean(0) - mu[~has].mean(0)


def test_auroc_reference_passes(capsys):
    check_auroc(auroc)
    assert "correct" in capsys.readouterr().out


def test_auroc_sklearn_passes(capsys):
    from sklearn.metrics import roc_auc_score
    check_auroc(lambda a, b: roc_auc_score([0] * len(a) + [1] * len(b), torch.cat([a, b]).numpy()))
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda a, b: auroc(b, a), "swapped"),
    (lambda a, b: float((b[:, None] > a[None, :]).double().mean()), "ties are not counted"),
    (lambda a, b: float((b[:, None] >= a[None, :]).double().mean()), "not one"),
    (lambda a, b: float((b[:, None] > a[None, :]).double().sum() + 0.5 * (b[:, None] == a[None, :]).double().sum()),
     "not a probability"),
    (lambda a, b: float(b.mean() > a.mean()), "expected"),
    (lambda a, b: "0.5", "expected"),
])
def test_auroc_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_auroc(wrong)


def test_attribute_direction_reference_passes(capsys):
    check_attribute_direction(attribute_direction)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda mu, h: mu[~h.bool()].mean(0) - mu[h.bool()].mean(0), "reversed"),
    (lambda mu, h: mu[h.bool()].mean(0) - mu.mean(0), "all"),
    (lambda mu, h: mu[h.bool()].sum(0) - mu[~h.bool()].sum(0), "sums"),
    (lambda mu, h: attribute_direction(mu, h) / attribute_direction(mu, h).norm(), "unit length"),
    (lambda mu, h: mu[h.bool()].mean(), "shape"),
    (lambda mu, h: mu[h.bool()].mean(0), "values differ"),
])
def test_attribute_direction_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_attribute_direction(wrong)
