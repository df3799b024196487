"""The noise predictor of chapter 08: a small time-conditioned U-Net and its EMA wrapper.

:class:`TimeUNet` is chapter 04's U-Net around the course's shared
:class:`~course_lib.backbone.ConvBackbone`, with a sinusoidal time embedding added inside
every stage (Ho et al. 2020, appendix B); :class:`DDPM` holds it, its exponential moving
average (what the samplers call) and the schedule it is trained for.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .diffusion_process import PREDICTIONS, Schedule, v_to_eps


# --------------------------------------------------------------------------------------
# The time-conditioned U-Net
# --------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal embedding of step indices (Vaswani et al. 2017, section 3.5;
    Ho et al. appendix B): ``(B,)`` -> ``(B, dim)``, half sines and half cosines."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between (Ho et al. appendix B,
    the Wide ResNet block of PixelCNN++). ``(B, in_ch, H, W), (B, time_dim)`` -> ``(B, out_ch, H, W)``."""

    def __init__(self, *, in_ch: int, out_ch: int, time_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, in_ch), in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, out_ch), out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]          # the step, per channel
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class TimeUNet(nn.Module):
    """The noise predictor ``eps_theta(x_t, t)``: chapter 04's U-Net with a time embedding.

    Encoder: a 3x3 stem, then the course's :class:`~course_lib.backbone.ConvBackbone`
    (its three 4x4 stride-2 convolutions, H -> H/8), each stage followed by a
    :class:`ResBlock` that adds the time embedding. Decoder: chapter 04's transposed 4x4
    stride-2 convolutions with U-Net skips, each followed by a ResBlock.

    Input:  ``x_t`` ``(B, 3, H, W)`` in model range (about [-1, 1] plus noise), H and W
            multiples of 8; ``t`` long ``(B,)`` of 0-based step indices.
    Output: the predicted noise ``(B, 3, H, W)``, unbounded.
    """

    def __init__(self, *, stem: int = 16, widths: tuple[int, int, int] = (32, 64, 128),
                 decoder_widths: tuple[int, int, int] = (64, 32, 16), time_dim: int = 128,
                 channels: int = 3):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(channels, stem, 3, padding=1)
        self.backbone = ConvBackbone(in_channels=stem, widths=widths)
        w1, w2, w3 = widths
        d3, d2, d1 = decoder_widths
        self.down1 = ResBlock(in_ch=w1, out_ch=w1, time_dim=time_dim)
        self.down2 = ResBlock(in_ch=w2, out_ch=w2, time_dim=time_dim)
        self.down3 = ResBlock(in_ch=w3, out_ch=w3, time_dim=time_dim)
        self.mid = ResBlock(in_ch=w3, out_ch=w3, time_dim=time_dim)
        self.up3 = nn.ConvTranspose2d(w3, d3, 4, 2, 1)                  # H/8 -> H/4
        self.dec3 = ResBlock(in_ch=d3 + w2, out_ch=d3, time_dim=time_dim)
        self.up2 = nn.ConvTranspose2d(d3, d2, 4, 2, 1)                  # H/4 -> H/2
        self.dec2 = ResBlock(in_ch=d2 + w1, out_ch=d2, time_dim=time_dim)
        self.up1 = nn.ConvTranspose2d(d2, d1, 4, 2, 1)                  # H/2 -> H
        self.dec1 = ResBlock(in_ch=d1 + stem, out_ch=d1, time_dim=time_dim)
        self.head = nn.Sequential(nn.GroupNorm(min(8, d1), d1), nn.SiLU(), nn.Conv2d(d1, channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight), nn.init.zeros_(self.head[-1].bias)  # start by predicting 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``cond``: an optional ``(B, time_dim)`` condition embedding (chapter 09's
        attributes), added to the time embedding, so every block sees both."""
        if x.dim() != 4 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"TimeUNet expects (B, C, H, W) with H, W multiples of 8, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        temb = self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))   # (B, time_dim)
        if cond is not None:
            temb = temb + cond.to(temb.dtype)
        h0 = self.stem(x)                                                        # (B, stem, H, W)
        h1 = self.down1(self.backbone.conv1(h0), temb)                           # (B, w1, H/2, W/2)
        h2 = self.down2(self.backbone.conv2(h1), temb)                           # (B, w2, H/4, W/4)
        h3 = self.mid(self.down3(self.backbone.conv3(h2), temb), temb)           # (B, w3, H/8, W/8)
        u = self.dec3(torch.cat([self.up3(h3), h2], 1), temb)                    # (B, d3, H/4, W/4)
        u = self.dec2(torch.cat([self.up2(u), h1], 1), temb)                     # (B, d2, H/2, W/2)
        u = self.dec1(torch.cat([self.up1(u), h0], 1), temb)                     # (B, d1, H, W)
        return self.head(u)                                                      # (B, 3, H, W)


class AveragedNet(nn.Module):
    """A network ``net`` (trained) and its exponential moving average ``ema`` (same
    architecture, no gradients: what the samplers call). After update ``k``:
    ``ema <- d_k * ema + (1 - d_k) * net`` (Ho et al., appendix B), with
    ``d_k = min(ema_decay, (1 + k) / (10 + k))``: the average's horizon grows with the run
    (the warm-up of diffusers' ``EMAModel`` and of TensorFlow's moving averages), so a short
    run is not dragged back to its random initial weights and a long one averages over
    thousands of steps. ``ema_updates`` (a buffer: checkpoints carry it) counts the updates.
    ``image_size``: the side of the images the model generates.
    """

    def __init__(self, *, net: nn.Module, image_size: int, ema_decay: float = 0.999):
        super().__init__()
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.net, self.ema_decay, self.image_size = net, ema_decay, image_size
        self.ema = copy.deepcopy(net).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next :meth:`update_ema` uses."""
        k = int(self.ema_updates)
        return min(self.ema_decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update_ema(self) -> None:
        ema, live = list(self.ema.parameters()), list(self.net.parameters())
        torch._foreach_lerp_(ema, live, 1 - self.current_decay())
        self.ema_updates += 1


class DDPM(AveragedNet):
    """A noise predictor, its exponential moving average (:class:`AveragedNet`) and the
    schedule it was trained for. ``prediction``: what ``net`` outputs, the noise ``eps`` or
    the velocity ``v`` (Salimans & Ho 2022); calling the DDPM always returns the noise, so
    every sampler works with both.
    """

    def __init__(self, *, net: nn.Module, schedule: Schedule, image_size: int, ema_decay: float = 0.999,
                 prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        super().__init__(net=net, image_size=image_size, ema_decay=ema_decay)
        self.schedule = schedule
        self.prediction = prediction  # what net outputs; forward always returns the noise

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The EMA network's estimate of the noise in ``x_t`` (converted from v if it predicts v)."""
        out = self.ema(x_t, t)
        return out if self.prediction == "eps" else v_to_eps(out, x_t, t, self.schedule)


# --------------------------------------------------------------------------------------
# Conditioning on attributes (chapter 09's guidance)
# --------------------------------------------------------------------------------------
NULL_LABEL = -1  # "attribute not given": the unconditional model is the same network with every label NULL


class AttributeEmbedding(nn.Module):
    """Discrete attribute labels ``(B, K)`` -> one vector ``(B, dim)``: the sum of a learned
    vector per attribute value, where a label of :data:`NULL_LABEL` picks that attribute's own
    "unknown" vector. ``num_classes``: the classes of each of the K attributes."""

    def __init__(self, *, num_classes: tuple[int, ...], dim: int):
        super().__init__()
        self.num_classes = tuple(num_classes)
        self.tables = nn.ModuleList(nn.Embedding(n + 1, dim) for n in self.num_classes)  # row n: unknown

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.dim() != 2 or labels.shape[1] != len(self.tables):
            raise ValueError(f"labels must be (B, {len(self.tables)}), got {tuple(labels.shape)}")
        out = 0
        for k, (table, n) in enumerate(zip(self.tables, self.num_classes)):
            out = out + table(torch.where(labels[:, k] == NULL_LABEL, n, labels[:, k]))
        return out                                                            # (B, dim)


class ConditionalUNet(nn.Module):
    """A :class:`TimeUNet` told the attributes too: ``(x (B, 3, H, W), t (B,), labels (B, K))``
    -> ``(B, 3, H, W)``; the attributes' embedding is added to the time embedding.
    ``embed``: another condition's embedding instead, any module mapping the condition to
    ``(B, time_dim)`` (chapter 12's representations: :class:`course_lib.rcg.RepresentationEmbedding`)."""

    def __init__(self, *, unet: TimeUNet, num_classes: tuple[int, ...] = (), embed: nn.Module | None = None):
        super().__init__()
        if (embed is None) == (not num_classes):
            raise ValueError("ConditionalUNet takes either num_classes (attributes) or embed (another condition)")
        self.unet = unet
        self.embed = embed if embed is not None else AttributeEmbedding(num_classes=num_classes, dim=unet.time_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, cond=self.embed(labels))
