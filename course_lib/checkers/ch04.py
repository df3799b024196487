"""Checkers for chapter 04 (inpainting): applying a mask and the masked reconstruction loss.

Convention (course_lib.masks): ``mask`` is (B, 1, H, W) with 1 = hole (missing), 0 = known.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..inpainting import masked_mse_loss
from ..masks import apply_mask as reference_apply_mask
from .core import ExerciseError, check_close, check_dtype, check_scalar, own_work, passed, run_student


def hole_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_hat, x, mask)``: three random 3x8x8 images and reconstructions with three holes of
    different sizes (chapter 06's checkers reuse it)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, 8, 8, generator=g)
    x_hat = torch.rand(3, 3, 8, 8, generator=g)
    mask = torch.zeros(3, 1, 8, 8)
    mask[0, :, 2:6, 2:6] = 1          # a centre block
    mask[1, :, 4:, :] = 1             # the bottom half (the article's task)
    mask[2, :, 0:3, 5:8] = 1          # a corner block
    return x_hat, x, mask


@own_work(reference_apply_mask)
def check_apply_mask(apply_mask: Callable[..., torch.Tensor]) -> None:
    """``apply_mask(images, mask, fill)``: hole pixels -> ``fill``, known pixels unchanged,
    the images' dtype kept, and ``fill`` really used (tried with two values)."""
    _, x, mask = hole_case(1)
    before = x.clone()
    got = run_student("apply_mask", apply_mask, x, mask, 0.5)
    if not torch.equal(x, before):
        raise ExerciseError("apply_mask: it changed `images` in place; return a new tensor.")
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"apply_mask: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != x.shape:
        raise ExerciseError(
            f"apply_mask: expected shape {tuple(x.shape)}, got {tuple(got.shape)}. The mask "
            "(B, 1, H, W) broadcasts over the colour channels."
        )
    check_dtype("apply_mask", got, x.dtype, hint="Combine images, mask and fill with torch "
                "arithmetic (images * (1 - mask) + fill * mask) so the result keeps the images' dtype.")
    hole = mask.expand_as(x) > 0
    if torch.allclose(got[~hole], torch.full_like(got[~hole], 0.5)) and torch.allclose(got[hole], x[hole]):
        raise ExerciseError("apply_mask: the mask is inverted: 1 marks the hole (missing pixels), "
                            "0 the known pixels you must keep.")
    if torch.allclose(got, x * mask):
        raise ExerciseError("apply_mask: images * mask keeps only the hole; multiply by (1 - mask) "
                            "to keep the known pixels.")
    if torch.allclose(got, x * (1 - mask)):
        raise ExerciseError("apply_mask: the hole is 0, not `fill`; add fill * mask.")
    if not torch.allclose(got[~hole], x[~hole]):
        raise ExerciseError("apply_mask: known pixels (mask == 0) must stay unchanged.")
    if not torch.allclose(got[hole], torch.full_like(got[hole], 0.5)):
        raise ExerciseError("apply_mask: hole pixels (mask == 1) must all equal `fill`.")
    check_close("apply_mask", got, reference_apply_mask(x, mask, 0.5))
    other = run_student("apply_mask", apply_mask, x, mask, 0.2)
    if (isinstance(other, torch.Tensor) and other.shape == x.shape
            and torch.allclose(other.detach().float(), got.float())):
        raise ExerciseError("apply_mask: with fill=0.2 the holes are still 0.5: the fill value is "
                            "hard-coded. Use the `fill` argument.")
    check_close("apply_mask", other, reference_apply_mask(x, mask, 0.2), hint="with fill=0.2 the holes must be 0.2.")
    passed("apply_mask", "hole set to fill, known pixels kept")


@own_work(masked_mse_loss)
def check_masked_mse_loss(loss_fn: Callable[..., torch.Tensor]) -> None:
    """``loss_fn(x_hat, x, mask)``: mean squared error over the hole's values only, pooled over
    the batch (the case's three holes have different sizes, so a per-image mean differs)."""
    x_hat, x, mask = hole_case(0)
    got = run_student("masked_mse_loss", loss_fn, x_hat, x, mask)
    check_scalar("masked_mse_loss", got, hint="reduce to one number.")
    value = got.detach().float().reshape(())
    sq = (x_hat - x) ** 2
    wrong = {
        "it averages over the whole image; only the hole (mask == 1) must count":
            sq.mean(),
        "the mask is inverted: it measures the known pixels; 1 marks the hole":
            ((1 - mask) * sq).sum() / ((1 - mask).sum() * 3),
        "it divides by the number of image values, not the number of hole values":
            (mask * sq).sum() / sq.numel(),
        "it divides by mask.sum() (hole pixels) but every pixel has 3 channels: divide by "
        "mask.sum() * C (or use the broadcast mask's sum)":
            (mask * sq).sum() / mask.sum(),
        "it returns the sum over the hole; divide by the number of hole values":
            (mask * sq).sum(),
        "it averages each image's hole error and then the images; the loss pools the whole batch "
        "instead: one sum of squared errors over every hole value of every image, divided by the "
        "batch's number of hole values (mask.sum() * C), so every hole value counts once and an "
        "image with a larger hole weighs more":
            ((mask * sq).flatten(1).sum(1) / (mask.flatten(1).sum(1) * 3)).mean(),
    }
    expected = masked_mse_loss(x_hat, x, mask)
    if not torch.isclose(value, expected, rtol=1e-4, atol=1e-7):
        for msg, val in wrong.items():
            if torch.isclose(value, val, rtol=1e-4, atol=1e-7):
                raise ExerciseError(f"masked_mse_loss: {msg}.")
    check_close("masked_mse_loss", value, expected.reshape(()), atol=1e-6)
    # the loss must not depend on pixels outside the hole
    x_hat2 = x_hat + 3.0 * (1 - mask)
    got2 = run_student("masked_mse_loss", loss_fn, x_hat2, x, mask)
    if not torch.isclose(torch.as_tensor(got2).detach().float().reshape(()), expected, rtol=1e-4):
        raise ExerciseError("masked_mse_loss: changing pixels outside the hole changed the loss; "
                            "multiply the squared error by the mask.")
    out = run_student("masked_mse_loss", loss_fn, x_hat.clone().requires_grad_(True), x, mask)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise ExerciseError("masked_mse_loss: the result carries no gradient; keep it a tensor "
                            "computed with torch operations (no .item(), no numpy).")
    passed("masked_mse_loss", "mean over hole values only")
