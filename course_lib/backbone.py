"""The one convolutional backbone the whole course shares.

It is exactly the first half of the article's VAE encoder (section 4.2): three 4x4,
stride-2 convolutions 3 -> 32 -> 64 -> 128, each followed by ReLU. The VAE encoder
(chapter 02), the inpainting U-Net's encoder (chapter 04) and the jigsaw/rotation tile
encoder (chapter 05) all hold a ``ConvBackbone``, so chapter 06's fusion is a
``state_dict`` transfer between identical modules, not a new architecture.

Parameter names (``conv1``, ``conv2``, ``conv3``) match the article's ``Encoder`` so its
weights load with a ``backbone.`` prefix.
"""
from __future__ import annotations

import torch
from torch import nn

from .inputs import check_float_images


class ConvBackbone(nn.Module):
    """Three 4x4 stride-2 conv + ReLU stages.

    Input:  ``(B, in_channels, H, W)`` float images, ``H`` and ``W`` divisible by 8
            (values in [0, 1] as everywhere in the course).
    Output: ``(B, widths[-1], H/8, W/8)`` feature map (non-negative: it ends in ReLU).
    """

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        if len(widths) != 3 or any(w <= 0 for w in widths):
            raise ValueError(f"widths must be three positive ints, got {widths!r}")
        self.in_channels = in_channels
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 4, 2, 1)
        self.conv2 = nn.Conv2d(widths[0], widths[1], 4, 2, 1)
        self.conv3 = nn.Conv2d(widths[1], widths[2], 4, 2, 1)

    @property
    def out_channels(self) -> int:
        return self.widths[2]

    @staticmethod
    def out_size(image_size: int) -> int:
        """Spatial size of the output map for a square ``image_size`` input."""
        if image_size <= 0 or image_size % 8:
            raise ValueError(f"image_size must be a positive multiple of 8, got {image_size}")
        return image_size // 8

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All three stage outputs (for U-Net skips): sizes H/2, H/4, H/8."""
        check_float_images(x, "ConvBackbone input")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvBackbone expects (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}"
            )
        h1 = torch.relu(self.conv1(x))   # (B, 32, H/2, W/2)
        h2 = torch.relu(self.conv2(h1))  # (B, 64, H/4, W/4)
        h3 = torch.relu(self.conv3(h2))  # (B, 128, H/8, W/8)
        return [h1, h2, h3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]
