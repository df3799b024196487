"""Checks on what users pass in: float images in [0, 1] and masks of 0 and 1.

Two kinds, by what they cost. Dtype and shape checks read tensor metadata only; they run
everywhere, in every training step. A value-range check reads the values: on a CPU tensor
that is a reduction of a few microseconds, but on an accelerator it is a host sync that
stalls the pipeline once per step. So :func:`range_check_due` runs range checks on CPU
tensors always and on accelerator tensors only where the caller says it is an entry point
(the first batch a model sees, a data set handed to a loader), never per step.
"""
from __future__ import annotations

import torch

__all__ = ["check_float_images", "check_unit_range", "check_mask", "range_check_due"]


def range_check_due(x: torch.Tensor, *, entry: bool = False) -> bool:
    """Whether a value-range check on ``x`` is cheap here: on the CPU, or at an entry point."""
    return entry or x.device.type == "cpu"


def check_float_images(x: torch.Tensor, what: str) -> None:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor (uint8 images are not)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of float images, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be float images in [0, 1], got dtype {x.dtype}"
                        + (": convert uint8 images with images.float() / 255"
                           if x.dtype == torch.uint8 else ""))


def check_unit_range(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` unless every value of ``x`` lies in [0, 1] (reads the values)."""
    if x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = lo.item(), hi.item()
    if lo < 0 or hi > 1:
        hint = (": these look like 0..255 pixel values; divide by 255" if hi > 1.5 and lo >= 0
                else " (images in [-1, 1]? use (x + 1) / 2)" if lo >= -1 and hi <= 1 else "")
        raise ValueError(f"{what} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")


def check_mask(mask: torch.Tensor, what: str = "mask", *, entry: bool = False) -> None:
    """A mask is float or bool with 1 = hole, 0 = known: refuse uint8 (0/255 image masks)
    always, and values outside [0, 1] where a range check is cheap (:func:`range_check_due`)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (1 = hole, 0 = known), got {type(mask).__name__}")
    if not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise TypeError(f"{what} must be float or bool with 1 = hole and 0 = known, got dtype "
                        f"{mask.dtype}" + (" (a 0/255 image mask? use (mask > 127).float())"
                                           if mask.dtype == torch.uint8 else ""))
    if mask.is_floating_point() and range_check_due(mask, entry=entry) and mask.numel():
        lo, hi = torch.aminmax(mask.detach())
        if lo.item() < 0 or hi.item() > 1:
            raise ValueError(f"{what} must hold values in [0, 1] (1 = hole, 0 = known), got values "
                             f"in [{lo.item():.3g}, {hi.item():.3g}]"
                             + (": a 0/255 mask? use (mask > 127).float()" if hi.item() > 1.5 else ""))
