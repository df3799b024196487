"""Chapter 03b checker passes the reference, fails the stub and fails plausible wrong answers."""
import pytest
import torch

from course_lib import metrics
from course_lib.checkers.ch03b import check_density_coverage
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


def density_coverage(real_feats, fake_feats, k=5):    # written out: the checker rejects course_lib's
    radius = torch.cdist(real_feats, real_feats).kthvalue(k + 1, dim=1).values
    inside = torch.cdist(real_feats, fake_feats) <= radius[:, None]                  # (N real, M fake)
    return {"density": inside.sum().item() / (k * len(fake_feats)), "coverage": inside.any(dim=1).float().mean().item()}


def _variant(*, self_radius=False, divide=None, fake_balls=False, precision=False, as_tensor=False):
    def fn(real, fake, k=5):
        if fake_balls:
            real, fake = fake, real
        d = torch.cdist(real, real).kthvalue(k if self_radius else k + 1, dim=1).values
        inside = torch.cdist(real, fake) <= d[:, None]
        count = inside.sum()
        density = count / {"k": len(fake), "N": k * len(real), None: k * len(fake)}[divide]   # "k": no 1/k
        coverage = (inside.any(dim=0) if precision else inside.any(dim=1)).float().mean()
        return {"density": density if as_tensor else float(density), "coverage": coverage if as_tensor else
                float(coverage)}
    return fn


def test_reference_passes(capsys):
    check_density_coverage(density_coverage)
    assert "correct" in capsys.readouterr().out


def test_tensors_of_one_value_pass_too(capsys):
    check_density_coverage(_variant(as_tensor=True))
    assert "correct" in capsys.readouterr().out


def test_library_answer_agrees_with_the_checkers_reference():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 6, generator=g), torch.randn(30, 6, generator=g) + 0.4
    assert metrics.density_coverage(real, fake, k=5) == pytest.approx(density_coverage(real, fake, k=5))


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (_variant(divide="k"), "k times too large"),
    (_variant(divide="N"), r"divided by k \* N"),
    (_variant(self_radius=True), "counts the sample itself"),
    (_variant(fake_balls=True), "around the generated samples"),
    (_variant(precision=True), "that is precision"),
    (lambda r, f, k=5: (1.0, 1.0), "keys 'density' and 'coverage'"),
    (lambda r, f, k=5: {"density": torch.ones(2), "coverage": 1.0}, "one number"),
    (lambda r, f, k=5: {"density": "1", "coverage": 1.0}, "must be a number"),
    (lambda r, f, k=5: {"density": 0.5, "coverage": 0.5}, "expected"),
])
def test_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_density_coverage(wrong)
