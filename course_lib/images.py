"""Image tensors: the one uint8 -> float conversion every module and chapter uses.

Data sets store images as ``uint8`` in 0..255 (four times smaller than float32, and exact);
networks, losses and plots want ``float32`` in [0, 1]. :func:`to_float` is that conversion,
written once: 255 maps exactly to 1, and float images pass through unchanged in value.
:func:`to_uint8` is the way back (to store generated images like a data set's).
"""
from __future__ import annotations

import torch

__all__ = ["to_float", "to_uint8"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``images`` as ``float32`` in [0, 1]: uint8 (any shape, e.g. (B, C, H, W)) is divided
    by 255; floating-point images are cast to float32 (no copy if they already are), values
    kept as they are (no clamping: a caller that needs [0, 1] checks or clamps).

    Raises ``TypeError`` for other dtypes (int64, bool): their range is not known.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (uint8 in 0..255 or float in [0, 1]), "
                        f"got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if images.is_floating_point():
        return images.float()
    raise TypeError(f"images must be uint8 (0..255) or floating point ([0, 1]), got dtype {images.dtype}"
                    + ("; a 0/1 mask? use mask.float()" if images.dtype == torch.bool else ""))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] (any shape) as ``uint8`` in 0..255: clamped, then rounded to the
    nearest level, so ``to_uint8(to_float(x))`` equals ``x`` for uint8 ``x``. Same device."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float torch.Tensor in [0, 1], got "
                        f"{images.dtype if isinstance(images, torch.Tensor) else type(images).__name__}")
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)
