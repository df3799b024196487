"""DCGAN's two networks (Radford et al. 2016): the generator and the discriminator / critic.

Both are plain ``nn.Module``s with keyword-only constructors; :mod:`course_lib.gan` builds
them from a :class:`~course_lib.gan.GANConfig` and re-exports them (``gan.Generator``).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def check_image_size(image_size: int) -> int:
    n_up = math.log2(image_size / 4) if image_size > 0 else -1
    if image_size < 8 or n_up != int(n_up):
        raise ValueError(f"image_size must be a power of two >= 8 (e.g. 32 or 64), got {image_size}")
    return int(n_up)


# ----------------------------------------------------------------------------- models
class Generator(nn.Module):
    """DCGAN generator (Radford et al. 2016, Fig. 1): z -> 4x4 -> ... -> image.

    Rules: fractionally-strided convolutions instead of upsampling, BatchNorm in every
    layer but the output, ReLU inside, tanh at the output (here rescaled to [0, 1]).

    Input:  ``z`` float ``(B, z_dim)``.
    Output: images float ``(B, channels, image_size, image_size)`` in ``[0, 1]``.
    """

    def __init__(self, *, z_dim: int = 100, image_size: int = 64, width: int = 64, channels: int = 3):
        super().__init__()
        n_up = check_image_size(image_size)      # 64 -> 4 stride-2 layers after the 4x4 start
        self.z_dim, self.image_size = z_dim, image_size
        c = width * 2 ** (n_up - 1)               # 64x64, width 64: 512 channels at 4x4
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False),  # (B, c, 4, 4)
            nn.BatchNorm2d(c), nn.ReLU(True),
        ]
        for _ in range(n_up - 1):                 # each doubles H and W, halves channels
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers.append(nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False))  # (B, 3, H, W)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"Generator expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = self.net(z[:, :, None, None])         # (B, 3, H, W), unbounded
        return (torch.tanh(h) + 1) / 2            # [0, 1]


class Discriminator(nn.Module):
    """DCGAN discriminator: image -> one logit (or critic score) per image.

    Rules: strided convolutions instead of pooling, LeakyReLU(0.2), no norm on the first
    layer. ``spectral_norm=True`` divides every conv's weight by its largest singular value.
    ``norm="batch"`` is DCGAN; WGAN-GP must not use BatchNorm (it couples the samples of a
    batch, and the penalty is per sample), so ``"layer"`` (a per-sample GroupNorm with one
    group, as Gulrajani et al. suggest) or ``"none"``.

    Input:  images float ``(B, channels, image_size, image_size)`` in ``[0, 1]``.
    Output: float ``(B,)``: a logit for ``"ns"`` (sigmoid = P(real)), a score for WGAN.
    """

    def __init__(self, *, image_size: int = 64, width: int = 64, channels: int = 3, norm: str = "batch",
                 spectral_norm: bool = False):
        super().__init__()
        n_down = check_image_size(image_size)
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        self.image_size, self.channels = image_size, channels
        c = width
        layers: list[nn.Module] = [nn.Conv2d(channels, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):               # (B, width, H/2) -> ... -> (B, c, 4, 4)
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), _norm(norm, c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if spectral_norm:  # W / sigma(W), sigma by one power iteration per forward (Miyato et al. 2018)
            for layer in self.net:
                if isinstance(layer, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"Discriminator expects (B, {', '.join(map(str, expected))}) images, got {tuple(x.shape)}")
        return self.net(x * 2 - 1).flatten()      # (B,)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)          # normalises (C, H, W) of each sample
    return nn.Identity()


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
