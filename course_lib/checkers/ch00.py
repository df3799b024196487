"""Checker for chapter 00's warm-up exercise: uint8 images -> floats in [0, 1]."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..images import to_float
from .core import ExerciseError, check_close, own_work, passed, run_student


def reference_to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(B, C, H, W)`` in 0..255 -> float32 in [0, 1], same shape."""
    return images.to(torch.float32) / 255.0


@own_work(reference_to_unit_range, to_float)
def check_to_unit_range(to_unit_range: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Pass the reference; fail the stub, a missing division, /256, integer or float64
    results, and rescaling by the batch's own range (min-max or max): tried on images
    without 0 and 255."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 8), generator=g, dtype=torch.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255  # both ends of the range are present
    before = images.clone()
    try:
        got = run_student("to_unit_range", to_unit_range, images)
    except ExerciseError as err:
        if "can't be cast" not in str(err):
            raise
        raise ExerciseError(
            "to_unit_range: an in-place division (x /= 255 or x.div_(255)) of a uint8 tensor fails, "
            "because uint8 holds no fractions. Convert first and return a new tensor: x.float() / 255."
        ) from err
    if not torch.equal(images, before):
        raise ExerciseError("to_unit_range: it changed its input in place; return a new tensor instead.")
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"to_unit_range: expected a torch.Tensor, got {type(got).__name__}.")
    if not got.is_floating_point():
        raise ExerciseError(
            f"to_unit_range: the result has dtype {got.dtype}; networks need floats. "
            "Convert with .float() (or .to(torch.float32)) before dividing."
        )
    if got.dtype != torch.float32:
        raise ExerciseError(
            f"to_unit_range: the result has dtype {got.dtype}; the networks' weights are float32 and "
            "refuse it later (\"expected scalar type Float\"). Stay in torch: images.float() / 255 "
            "(a NumPy array divided by 255.0 is float64).")
    if got.shape != images.shape:
        raise ExerciseError(f"to_unit_range: expected shape {tuple(images.shape)}, got {tuple(got.shape)}.")
    top = got.max().item()
    if top > 1.5:
        raise ExerciseError(f"to_unit_range: the maximum is {top:.1f}; divide by 255 so 255 maps to 1.0.")
    if abs(top - 1.0) > 1e-6:
        raise ExerciseError(
            f"to_unit_range: 255 maps to {top:.4f}, not 1.0. Divide by 255 (the largest uint8 value), not 256."
        )
    check_close("to_unit_range", got, reference_to_unit_range(images),
                hint="Divide by 255 (not by a statistic of the images).")
    # A dim batch (no 0, no 255): only a fixed /255 maps every pixel value to the same float.
    dim = torch.randint(20, 200, (4, 3, 8, 8), generator=g, dtype=torch.uint8)
    got = run_student("to_unit_range", to_unit_range, dim)
    if isinstance(got, torch.Tensor) and got.shape == dim.shape and got.is_floating_point():
        x, got = dim.double(), got.detach().double()
        if torch.allclose(got, (x - x.min()) / (x.max() - x.min()), atol=1e-5):
            raise ExerciseError(
                "to_unit_range: you rescaled by the batch's own min and max; that stretches a dim "
                "image to full contrast and maps the same pixel value to different floats in "
                "different batches. Divide by 255: images.float() / 255.")
        if torch.allclose(got, x / x.max(), atol=1e-5):
            raise ExerciseError(
                "to_unit_range: you divided by the batch's maximum; a batch whose brightest pixel "
                "is below 255 gets brighter. Divide by 255 (the largest uint8 value).")
    check_close("to_unit_range", got, reference_to_unit_range(dim),
                hint="Divide by 255 (not by a statistic of the images).")
    passed("to_unit_range", "uint8 0..255 -> float32 0..1")
