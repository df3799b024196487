"""Chapter 04 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import numpy as np
import pytest
import torch

from course_lib.checkers.ch04 import check_apply_mask, check_masked_mse_loss
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def apply_mask(images, mask, fill=0.0):
    return images * (1 - mask) + fill * mask


def masked_mse_loss(x_hat, x, mask):
    return (mask * (x_hat - x) ** 2).sum() / (mask.sum() * x.shape[1])


def test_apply_mask_reference_passes(capsys):
    check_apply_mask(apply_mask)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda x, m, f: x * m + f * (1 - m), "inverted"),
    (lambda x, m, f: x * m, "keeps only the hole"),
    (lambda x, m, f: x * (1 - m), "not `fill`"),
    (lambda x, m, f: x * (1 - m) + 0.0 * m + f * m * 0.5, "equal `fill`"),
    (lambda x, m, f: x.mul_(1 - m).add_(f * m), "in place"),
    (lambda x, m, f: (x * (1 - m) + f * m)[:, :1], "shape"),
    # the fill value hard-coded: right for fill=0.5 only
    (lambda x, m, f: x * (1 - m) + 0.5 * m, "fill value is hard-coded"),
    (lambda x, m, f: torch.where(m.bool(), torch.full_like(x, 0.5), x), "fill value is hard-coded"),
    # float64 from NumPy: explained, not "Double did not match Float"
    (lambda x, m, f: torch.from_numpy(x.numpy() * (1 - m.numpy()) + np.float64(f) * m.numpy()).double(),
     r"dtype torch.float64, but the inputs are torch.float32"),
])
def test_apply_mask_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_apply_mask(wrong)


def test_masked_loss_reference_passes(capsys):
    check_masked_mse_loss(masked_mse_loss)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda xh, x, m: ((xh - x) ** 2).mean(), "whole image"),
    (lambda xh, x, m: ((1 - m) * (xh - x) ** 2).sum() / ((1 - m).sum() * 3), "inverted"),
    (lambda xh, x, m: (m * (xh - x) ** 2).sum() / x.numel(), "number of image values"),
    (lambda xh, x, m: (m * (xh - x) ** 2).sum() / m.sum(), "3 channels"),
    (lambda xh, x, m: (m * (xh - x) ** 2).sum(), "sum over the hole"),
    (lambda xh, x, m: (m * (xh - x) ** 2).mean(dim=(1, 2, 3)), "scalar"),
    (lambda xh, x, m: torch.tensor(masked_mse_loss(xh, x, m).item()), "gradient"),
    (lambda xh, x, m: (m * (xh - x).abs()).sum() / (m.sum() * 3), "differ"),
    # the per-image mean the formula could suggest: named, not "values differ"
    (lambda xh, x, m: ((m * (xh - x) ** 2).flatten(1).sum(1) / (m.flatten(1).sum(1) * 3)).mean(),
     "averages each image's hole error"),
])
def test_masked_loss_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_masked_mse_loss(wrong)
