"""Chapter 10 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch

from course_lib.checkers.ch10 import check_drop_labels, check_guide
from course_lib.checkers.core import ExerciseError
from course_lib.diffusion_unet import NULL_LABEL

from exercise_stub import stub


def guide(u_cond, u_uncond, scale):    # written out: the checker rejects course_lib.guidance.guide
    return u_uncond + scale * (u_cond - u_uncond)


def test_guide_reference_passes(capsys):
    check_guide(guide)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda c, u, s: c + s * (u - c), "swapped"),
    (lambda c, u, s: c + s * (c - u), r"\(1 \+ w\)"),
    (lambda c, u, s: s * (c - u), "unconditional velocity is missing"),
    (lambda c, u, s: s * c, "scales the conditional velocity only"),
    (lambda c, u, s: (1 - s) * c + s * u, "swapped"),  # weights on the wrong ends: the same formula
    (lambda c, u, s: u + s * (c - u) / 2, "differ"),
])
def test_guide_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_guide(wrong)


def _reference(labels, drop):
    return torch.where(drop[:, None], NULL_LABEL, labels)


def test_drop_labels_reference_passes(capsys):
    check_drop_labels(_reference)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda labels, drop: labels, "nothing was dropped"),
    (lambda labels, drop: torch.where(~drop[:, None], NULL_LABEL, labels), "where drop is False"),
    (lambda labels, drop: torch.where(drop[:, None], 0, labels), "not 0"),
    (lambda labels, drop: torch.cat([torch.where(drop, NULL_LABEL, labels[:, 0])[:, None], labels[:, 1:]], 1),
     "whole row"),
    (lambda labels, drop: torch.where(drop[:, None], NULL_LABEL, labels).float(), "integer"),
    (lambda labels, drop: torch.where(drop[:, None], NULL_LABEL, labels)[:2], "shape"),
])
def test_drop_labels_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_drop_labels(wrong)
