"""Denoising diffusion (chapter 08): the forward process, the noise-prediction loss, a small
time-conditioned U-Net, the ancestral and DDIM samplers, and RePaint-style inpainting.

Notation follows Ho et al. 2020 ("Denoising Diffusion Probabilistic Models"): images
``x_0`` scaled to [-1, 1], a variance schedule ``beta_t``, ``alpha_t = 1 - beta_t`` and
``alpha_bar_t = prod_{s <= t} alpha_s``. Time indices in code are **0-based**: index
``t = 0 .. T-1`` is the paper's ``t = 1 .. T``, so index 0 is the last reverse step.

- forward process, closed form (eq. 4): ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``;
- training (Algorithm 1, the "simple" loss of eq. 14): ``|| eps - eps_theta(x_t, t) ||^2``;
- one reverse step (eq. 11 + Algorithm 2, line 4):
  ``x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) + sigma_t z``,
  ``sigma_t^2 = beta_t`` and no noise at the last step;
- DDIM (Song et al. 2021, eq. 12 with sigma = 0): deterministic, any subsequence of steps;
- RePaint (Lugmayr et al. 2022): at every reverse step the known pixels are replaced by a
  forward-noised copy of the known image, so the model only has to fill the hole.

Schedules: linear (Ho et al.: beta from 1e-4 to 0.02) and cosine (Nichol & Dhariwal 2021,
eq. 17). The model is sampled through its exponential moving average (Ho et al. use 0.9999),
and the samplers start at :func:`sampling_start` (where the SNR has fallen to 0.025), not at
T-1, where the cosine schedule's alpha_bar of 2e-9 magnifies every error of the network.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .checkpoint import Checkpoint, load_or_train
from .facedraw import RENDER_VERSION
from .loop import Budget, Step, train
from .profiles import choose
from .runtime import Runtime, backward_step, local_share, runtime, seed_everything, world_size
from .toyfaces import ToyFaces
from .results import RESULTS_DIR

SCHEDULES = ("linear", "cosine")


# --------------------------------------------------------------------------------------
# Noise schedules
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """A variance schedule of ``T`` steps; every tensor is ``(T,)`` on the CPU (float64).

    ``timesteps`` maps each step to the time index the model was trained with: ``0..T-1``
    for a training schedule, a subsequence for a :func:`respace`-d one.
    """

    betas: torch.Tensor       # beta_t: the noise variance added at step t
    alphas: torch.Tensor      # alpha_t = 1 - beta_t
    alpha_bar: torch.Tensor   # alpha_bar_t = prod_{s<=t} alpha_s: the signal kept at step t
    timesteps: torch.Tensor   # long: the model's time input at each step

    @property
    def T(self) -> int:
        return len(self.betas)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio of x_t: ``alpha_bar_t / (1 - alpha_bar_t)`` ``(T,)``
        (Kingma et al. 2021); it falls monotonically from very large to about 0."""
        return self.alpha_bar / (1 - self.alpha_bar)

    @classmethod
    def from_betas(cls, betas: torch.Tensor, timesteps: torch.Tensor | None = None) -> "Schedule":
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-d tensor of values in (0, 1)")
        alphas = 1 - betas
        timesteps = torch.arange(len(betas)) if timesteps is None else torch.as_tensor(timesteps, dtype=torch.long)
        return cls(betas=betas, alphas=alphas, alpha_bar=torch.cumprod(alphas, 0), timesteps=timesteps)


def linear_schedule(T: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Ho et al. 2020, section 4: betas linear from 1e-4 to 0.02 over T = 1000 steps. For
    another ``T`` the end points are rescaled by 1000 / T so alpha_bar_T stays near 0."""
    _check_T(T)
    scale = 1000 / T
    return Schedule.from_betas(torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, *, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal 2021, eq. 17: ``alpha_bar(t) = f(t) / f(0)``,
    ``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``; betas from consecutive ratios,
    clipped at 0.999 so the last step is not singular. Destroys information more slowly
    than the linear schedule at small t (their Figure 5)."""
    _check_T(T)
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return Schedule.from_betas(betas)


def make_schedule(kind: str, T: int) -> Schedule:
    if kind == "linear":
        return linear_schedule(T)
    if kind == "cosine":
        return cosine_schedule(T)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


def respace(schedule: Schedule, steps: int, *, start: int | None = None) -> Schedule:
    """The same diffusion seen at ``steps`` evenly spaced times ``tau`` from ``start``
    (default T-1) down to 0 (Nichol & Dhariwal 2021, section 4): keep ``alpha_bar`` at those
    times and recompute ``beta_i = 1 - alpha_bar_{tau_i} / alpha_bar_{tau_{i-1}}``, so ancestral
    sampling (and RePaint) take ``steps`` model calls instead of T, with the model trained on all T."""
    tau = torch.tensor(ddim_timesteps(schedule.T - 1 if start is None else start, steps)[::-1])  # ascending
    a_bar = schedule.alpha_bar[tau]
    betas = 1 - a_bar / torch.cat([torch.ones(1, dtype=a_bar.dtype), a_bar[:-1]])
    return Schedule.from_betas(betas, schedule.timesteps[tau])


def ddim_timesteps(start: int, steps: int) -> list[int]:
    """``steps`` evenly spaced indices from ``start`` down to 0 (Song et al. 2021, section 4.2)."""
    if not 1 <= steps <= start + 1:
        raise ValueError(f"steps must be in [1, {start + 1}], got {steps}")
    return sorted({round(i * start / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


# Where sampling starts. With an eps-predicting model, x_0 = (x_t - sqrt(1 - a) eps) / sqrt(a)
# multiplies the network's error by 1 / sqrt(alpha_bar_t): about 20000 at the cosine
# schedule's last step, where alpha_bar is 2e-9 (its betas are clipped at 0.999). Measured on
# the chapter's reference run: starting DDIM at t = T-1 gives saturated colours (domain
# Frechet 2817 at n = 200 after 3000 steps), starting at t = 900 gives 354 (t = 850: 408,
# t = 940: 460). START_SNR = 0.025 (the signal's std is 16% of the noise's) puts the start
# at t = 898 of 1000 for the cosine schedule and states the rule for any schedule.
# Lin et al. 2024 ("Common diffusion noise schedules and sample steps are flawed") discuss
# this mismatch between the last training steps and the start of sampling.
START_SNR = 0.025


def sampling_start(schedule: Schedule, min_snr: float = START_SNR) -> int:
    """The step the samplers start from: the last ``t`` with ``SNR(t) >= min_snr``, where
    ``x_T ~ N(0, I)`` stands in for ``x_t`` (the signal left there is ``sqrt(alpha_bar_t)``)."""
    keep = (schedule.snr() >= min_snr).nonzero()
    return int(keep[-1]) if len(keep) else schedule.T - 1


def _check_T(T: int) -> None:
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T must be an int >= 2, got {T!r}")


def _at(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped ``(B, 1, 1, 1)`` in ``like``'s dtype and device, to broadcast over
    images. ``t``: an int or a long tensor ``(B,)`` of 0-based step indices."""
    t = torch.as_tensor(t, dtype=torch.long).reshape(-1).cpu()
    if ((t < 0) | (t >= len(values))).any():
        raise ValueError(f"time indices must be in [0, {len(values) - 1}], got {t.tolist()[:8]}")
    out = values[t].to(device=like.device, dtype=like.dtype)
    return out.view(-1, *([1] * (like.dim() - 1)))


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] images -> float [0, 1]."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] images -> float in [-1, 1] (Ho et al. section 4)."""
    return _unit(images) * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """Model-range [-1, 1] -> images in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


# --------------------------------------------------------------------------------------
# Forward process and loss
# --------------------------------------------------------------------------------------
def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Sample ``x_t ~ q(x_t | x_0)`` in closed form (Ho et al. 2020, eq. 4):
    ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.

    ``x0``, ``noise``: ``(B, C, H, W)``; ``t``: long ``(B,)`` of 0-based indices. Returns ``(B, C, H, W)``.
    """
    a_bar = _at(schedule.alpha_bar, t, x0)
    return a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * noise


def diffusion_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   schedule: Schedule) -> torch.Tensor:
    """The simplified objective (Ho et al. 2020, eq. 14): mean over batch and pixels of
    ``|| eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2``.

    It is the ELBO's sum of KL terms (eq. 5) with each term's weight
    ``beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))`` set to 1 (eq. 12 -> 14).
    ``model(x_t, t)`` predicts the noise ``(B, C, H, W)``. Returns a scalar.
    """
    x_t = q_sample(x0, t, noise, schedule)
    return F.mse_loss(model(x_t, t).float(), noise.float())


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

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"TimeUNet expects (B, C, H, W) with H, W multiples of 8, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        temb = self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))   # (B, time_dim)
        h0 = self.stem(x)                                                        # (B, stem, H, W)
        h1 = self.down1(self.backbone.conv1(h0), temb)                           # (B, w1, H/2, W/2)
        h2 = self.down2(self.backbone.conv2(h1), temb)                           # (B, w2, H/4, W/4)
        h3 = self.mid(self.down3(self.backbone.conv3(h2), temb), temb)           # (B, w3, H/8, W/8)
        u = self.dec3(torch.cat([self.up3(h3), h2], 1), temb)                    # (B, d3, H/4, W/4)
        u = self.dec2(torch.cat([self.up2(u), h1], 1), temb)                     # (B, d2, H/2, W/2)
        u = self.dec1(torch.cat([self.up1(u), h0], 1), temb)                     # (B, d1, H, W)
        return self.head(u)                                                      # (B, 3, H, W)


class DDPM(nn.Module):
    """A noise predictor, its exponential moving average and the schedule it was trained for.

    ``net`` is trained; ``ema`` (same architecture, no gradients) is what the samplers use:
    ``ema <- decay * ema + (1 - decay) * net`` after every step (Ho et al., appendix B).
    """

    def __init__(self, *, net: nn.Module, schedule: Schedule, image_size: int, ema_decay: float = 0.999):
        super().__init__()
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.net, self.schedule, self.ema_decay = net, schedule, ema_decay
        self.image_size = image_size  # the side of the images it generates
        self.ema = copy.deepcopy(net).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self) -> None:
        ema, live = list(self.ema.parameters()), list(self.net.parameters())
        torch._foreach_lerp_(ema, live, 1 - self.ema_decay)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.ema(x_t, t)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def ddpm_step(model: DDPM, optimizer: torch.optim.Optimizer, batch, generator: torch.Generator, *,
              net: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """One step of Algorithm 1: draw ``t`` uniformly and ``eps ~ N(0, I)``, take a gradient
    step on :func:`diffusion_loss`, update the EMA. ``batch``: uint8 or [0, 1] images
    ``(B, 3, H, W)`` (or a tuple whose first item they are). ``net``: the module to call
    (the runtime plan's wrapper of ``model.net``; default ``model.net``). ``t`` and the
    noise are drawn from ``generator`` for the global batch, this rank's share kept, so a
    resumed or distributed run draws what one uninterrupted process would. Returns
    ``{"loss"}`` as a detached 0-d tensor."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    x0 = to_model_range(x)
    n = x0.shape[0] * world_size()
    t = local_share(torch.randint(model.schedule.T, (n,), generator=generator)).to(x0.device)
    noise = local_share(torch.randn((n, *x0.shape[1:]), generator=generator)).to(x0.device)
    model.train()
    loss = diffusion_loss(net or model.net, x0, t, noise, model.schedule)
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    model.update_ema()
    return {"loss": loss.detach()}


@dataclass(frozen=True)
class DDPMConfig:
    image_size: int = 32                          # square images (multiple of 8)
    schedule: str = "cosine"                      # "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal)
    T: int = 1000                                 # diffusion steps
    stem: int = 16                                # channels of the full-resolution stem
    widths: tuple[int, int, int] = (32, 64, 128)  # backbone stage widths (H/2, H/4, H/8): the article's
    decoder_widths: tuple[int, int, int] = (64, 32, 16)  # decoder stage widths (H/4, H/2, H): chapter 04's
    time_dim: int = 128                           # size of the time embedding
    lr: float = 1e-3                              # Adam learning rate (after warm-up)
    warmup: int = 100                             # linear learning-rate warm-up steps
    ema_decay: float = 0.995                      # EMA of the weights, used for sampling
    batch_size: int = 32                          # images per step (small: more updates per CPU second)
    steps: int = 1000                             # optimisation steps (cpu: about 3-4 minutes on 2 cores)
    train_size: int = 6000                        # ToyFaces training images
    seed: int = 0                                 # init, data order, t and noise
    data_version: int = RENDER_VERSION            # ToyFaces drawing version: a new one retrains cached models

    @classmethod
    def for_profile(cls, name: str | None = None) -> "DDPMConfig":
        """smoke: 16x16, seconds; cpu: 32x32, about 3-4 minutes on 2 cores (faces need longer:
        see experiments/ddpm_reference.py); gpu: 64x64, wider, longer."""
        return choose(
            smoke=cls(image_size=16, T=100, stem=8, widths=(16, 16, 16), decoder_widths=(16, 16, 16),
                      time_dim=32, steps=20, warmup=5, train_size=128, batch_size=16),
            cpu=cls(),
            gpu=cls(image_size=64, stem=64, widths=(128, 192, 256), decoder_widths=(256, 192, 128),
                    time_dim=256, lr=2e-4, ema_decay=0.9995, steps=40000, train_size=30000, batch_size=128),
            profile=name,
        )

    def build(self) -> DDPM:
        net = TimeUNet(stem=self.stem, widths=self.widths, decoder_widths=self.decoder_widths,
                       time_dim=self.time_dim)
        return DDPM(net=net, schedule=make_schedule(self.schedule, self.T), image_size=self.image_size,
                    ema_decay=self.ema_decay)


def train_ddpm(model: DDPM, config: DDPMConfig, *, images: torch.Tensor | None = None,
               progress: bool | str = "auto", plan: Runtime | None = None,
               checkpoint: str | os.PathLike | None = None, callbacks=(), budget: Budget | None = None):
    """Train ``model`` in place with Adam for ``config.steps`` steps (Algorithm 1); returns the
    :class:`~course_lib.loop.History`. ``images``: uint8 ``(N, 3, S, S)``; default the first
    ``config.train_size`` ToyFaces training images. ``plan``/``checkpoint`` as in
    :func:`course_lib.vae.train_vae`; ``budget`` overrides the step budget (e.g. seconds)."""
    if images is None:
        images = ToyFaces(split="train", size=config.train_size, image_size=config.image_size).images
    seed_everything(config.seed)
    rt = plan or runtime()
    model.to(rt.device)
    net = rt.prepare(model.net)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=config.lr)
    warm = max(config.warmup, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    loader = rt.loader(images, batch_size=min(config.batch_size, len(images)), seed=config.seed)
    g = torch.Generator().manual_seed(config.seed)

    def step(x):
        out = ddpm_step(model, optimizer, x, g, net=net)
        scheduler.step()
        return out

    every = max(config.steps // 10, 1)
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, models=model, optimizers={"adam": optimizer, "warmup": scheduler}, every=every)
    return train(Step(step, generators=[g]), loader, budget=budget or Budget(steps=config.steps),
                 progress=progress, plan=rt, checkpoint=ckpt, callbacks=callbacks, every=every,
                 desc=f"DDPM {config.schedule} T={config.T}")


def pretrained_ddpm(config: DDPMConfig | None = None, *, progress: bool | str = "auto",
                    retrain: bool = False):
    """The chapter-08 model for ``config`` (default ``DDPMConfig.for_profile()``), trained once
    and cached by :func:`course_lib.checkpoint.load_or_train` as ``ddpm_ch08``. Returns a
    :class:`~course_lib.checkpoint.Trained` (``.model`` a :class:`DDPM` in eval mode)."""
    config = config or DDPMConfig.for_profile()
    trained = load_or_train("ddpm_ch08", lambda m, c: train_ddpm(m, c, progress=progress),
                            config=config, build=DDPMConfig.build, retrain=retrain)
    trained.model.eval()
    return trained


REFERENCE_PATH = RESULTS_DIR / "ddpm_reference.pt"  # package data: pip install carries it (Colab)


def reference_config() -> DDPMConfig:
    """The reference model's configuration: the ``cpu`` profile's, trained for longer."""
    return DDPMConfig.for_profile("cpu")


def reference_ddpm(path: str | os.PathLike = REFERENCE_PATH) -> DDPM:
    """The committed reference model (``experiments/ddpm_reference.py``), EMA weights in
    eval mode on the CPU. Raises a ValueError naming the mismatch if the file was written
    for another configuration or another ToyFaces drawing (retrain it with the script)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = dataclasses.replace(reference_config(), steps=payload["steps"])
    stored = payload["config"]
    expected = dataclasses.asdict(config)
    diff = {k: (stored.get(k), v) for k, v in expected.items()
            if (list(stored.get(k)) if isinstance(v, tuple) else stored.get(k)) != (list(v) if isinstance(v, tuple) else v)}
    if diff or payload["data_version"] != RENDER_VERSION:
        raise ValueError(f"{path} does not match DDPMConfig / ToyFaces (file vs now: {diff}, render version "
                         f"{payload['data_version']} vs {RENDER_VERSION}); rerun: {payload['command']}")
    model = config.build()
    model.ema.load_state_dict({k: v.float() for k, v in payload["ema"].items()})
    model.net.load_state_dict(model.ema.state_dict())
    return model.eval()


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------
def reverse_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule,
                 noise: torch.Tensor) -> torch.Tensor:
    """One ancestral step ``x_t -> x_{t-1}`` (Ho et al. 2020, eq. 11 and Algorithm 2, line 4):

    ``x_{t-1} = 1 / sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) + sigma_t z``

    with ``sigma_t = sqrt(beta_t)`` and ``z = noise``, except at the last step (index
    ``t = 0``, the paper's t = 1), which adds no noise. ``x_t``, ``eps`` (the model's
    prediction) and ``noise``: ``(B, C, H, W)``; ``t``: one int for the whole batch.
    """
    alpha, beta, a_bar = (float(v[t]) for v in (schedule.alphas, schedule.betas, schedule.alpha_bar))
    mean = (x_t - beta / math.sqrt(1 - a_bar) * eps) / math.sqrt(alpha)
    return mean + math.sqrt(beta) * noise if t > 0 else mean


@torch.no_grad()
def p_sample(model: Callable, x_t: torch.Tensor, t: int, schedule: Schedule, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``x_{t-1} ~ p_theta(x_{t-1} | x_t)``: the model predicts the noise, :func:`reverse_step`
    does the rest. ``model(x, t)`` as :class:`TimeUNet`; noise drawn from ``generator``.

    As in Ho et al.'s and Nichol & Dhariwal's code (``clip_denoised``), the ``x_0`` the noise
    implies is clipped to [-1, 1] and the noise re-derived from it; while that ``x_0`` lies in
    [-1, 1] this is exactly Algorithm 2."""
    model_t = int(schedule.timesteps[t])                 # t itself unless the schedule is respaced
    eps = model(x_t, torch.full((x_t.shape[0],), model_t, dtype=torch.long, device=x_t.device)).float()
    a_bar = float(schedule.alpha_bar[t])
    x0 = ((x_t - math.sqrt(1 - a_bar) * eps) / math.sqrt(a_bar)).clamp(-1, 1)
    eps = (x_t - math.sqrt(a_bar) * x0) / math.sqrt(1 - a_bar)
    noise = torch.randn(x_t.shape, generator=generator).to(x_t) if t > 0 else torch.zeros_like(x_t)
    return reverse_step(x_t, eps, t, schedule, noise)


def _prepare(model: DDPM, n: int, seed: int):
    """Eval mode, the model's device, a seeded generator and x_T ~ N(0, I) ``(n, 3, S, S)``."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    size = model.image_size
    return device, g, torch.randn((n, 3, size, size), generator=g).to(device)


@torch.no_grad()
def sample_ddpm(model: DDPM, n: int, *, steps: int | None = None, start: int | None = None,
                seed: int = 0) -> torch.Tensor:
    """``n`` images by ancestral sampling (Algorithm 2): ``x ~ N(0, I)`` at step ``start``
    (default :func:`sampling_start`), then :func:`p_sample` down to index 0, over every step
    or over ``steps`` of them (:func:`respace`). Returns ``(n, 3, S, S)`` in [0, 1] on the CPU."""
    start = sampling_start(model.schedule) if start is None else start
    schedule = respace(model.schedule, steps or start + 1, start=start)
    device, g, x = _prepare(model, n, seed)
    for t in reversed(range(schedule.T)):
        x = p_sample(model, x, t, schedule, generator=g)
    return to_image_range(x).cpu()


@torch.no_grad()
def sample_ddim(model: DDPM, n: int, *, steps: int = 50, start: int | None = None, seed: int = 0,
                batch_size: int = 256) -> torch.Tensor:
    """``n`` images with the deterministic DDIM sampler in ``steps`` model calls (Song et al.
    2021, eq. 12 with sigma_t = 0): predict ``x_0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)``
    (clipped to [-1, 1]), then step to the next index ``s`` with
    ``x_s = sqrt(a_s) x_0 + sqrt(1 - a_s) eps``, where ``a = alpha_bar``. The same model,
    no retraining. Starts at ``start`` (default :func:`sampling_start`). Returns
    ``(n, 3, S, S)`` in [0, 1] on the CPU."""
    ts = ddim_timesteps(sampling_start(model.schedule) if start is None else start, steps)
    out = []
    for first in range(0, n, batch_size):
        device, _, x = _prepare(model, min(batch_size, n - first), seed + first)
        a_bar = model.schedule.alpha_bar
        for i, t in enumerate(ts):
            eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=device)).float()
            a_t = float(a_bar[t])
            x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
            a_s = float(a_bar[ts[i + 1]]) if i + 1 < len(ts) else 1.0   # the end: alpha_bar_0 = 1
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)          # consistent with the clip
            x = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps
        out.append(to_image_range(x).cpu())
    return torch.cat(out)


@torch.no_grad()
def repaint(model: DDPM, images: torch.Tensor, mask: torch.Tensor, *, steps: int | None = None,
            start: int | None = None, resample: int = 1, seed: int = 0) -> torch.Tensor:
    """Diffusion inpainting without retraining (Lugmayr et al. 2022, RePaint, eq. 8-9): at
    every reverse step ``t``, the known pixels are a fresh sample of ``q(x_{t-1} | x_0)``
    from the known image and the hole is the model's :func:`p_sample`:

    ``x_{t-1} = (1 - m) * q_sample(x_0, t-1) + m * p_sample(x_t)``, ``m`` = 1 in the hole.

    ``resample = U > 1`` repeats each step U times, re-noising ``x_{t-1}`` to ``x_t`` with
    ``q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)`` in between (their Algorithm 1,
    jump length 1), which harmonises the hole with its border. ``images`` (B, 3, H, W) in
    [0, 1], ``mask`` (B, 1, H, W) with 1 = hole; ``steps``, ``start`` as in :func:`sample_ddpm`.
    Returns (B, 3, H, W) in [0, 1] on the CPU; the known pixels equal ``images`` exactly.
    """
    if images.dim() != 4 or mask.shape != (images.shape[0], 1, *images.shape[-2:]):
        raise ValueError(f"expected images (B, 3, H, W) and mask (B, 1, H, W), got "
                         f"{tuple(images.shape)} and {tuple(mask.shape)}")
    if resample < 1:
        raise ValueError(f"resample must be >= 1, got {resample}")
    if images.shape[-1] != model.image_size:
        raise ValueError(f"the model generates {model.image_size}px images, got {tuple(images.shape)}")
    device, g, x = _prepare(model, images.shape[0], seed)
    x0 = to_model_range(images).to(device)
    m = mask.to(device).float()
    start = sampling_start(model.schedule) if start is None else start
    s = respace(model.schedule, steps or start + 1, start=start)
    for t in reversed(range(s.T)):
        for u in range(resample):
            x_prev = p_sample(model, x, t, s, generator=g)
            if t > 0:
                noise = torch.randn(x0.shape, generator=g).to(x0)
                known = q_sample(x0, torch.full((x0.shape[0],), t - 1, dtype=torch.long), noise, s)
            else:
                known = x0
            x_prev = (1 - m) * known + m * x_prev
            if u + 1 < resample and t > 0:   # back to step t: q(x_t | x_{t-1})
                beta = float(s.betas[t])
                x = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * torch.randn(x0.shape, generator=g).to(x0)
            else:
                x = x_prev
    out = to_image_range(x).cpu()
    keep = mask.cpu() < 0.5
    return torch.where(keep.expand_as(out), _unit(images).cpu(), out)   # known pixels: exact
