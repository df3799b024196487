"""Image tensors: the one uint8 -> float conversion every module and chapter uses.

Data sets store images as ``uint8`` in 0..255 (four times smaller than float32, and exact);
networks, losses and plots want ``float32`` in [0, 1]. :func:`to_float` is that conversion,
written once: 255 maps exactly to 1, and float images pass through unchanged in value.
"""
from __future__ import annotations

import torch

__all__ = ["to_float"]


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
