"""The diffusion itself (chapter 08): noise schedules, the forward process and the loss.

Notation follows Ho et al. 2020 ("Denoising Diffusion Probabilistic Models"): images
``x_0`` scaled to [-1, 1], a variance schedule ``beta_t``, ``alpha_t = 1 - beta_t`` and
``alpha_bar_t = prod_{s <= t} alpha_s``. Time indices in code are **0-based**: index
``t = 0 .. T-1`` is the paper's ``t = 1 .. T``, so index 0 is the last reverse step.

- schedules: linear (Ho et al.: beta from 1e-4 to 0.02) and cosine (Nichol & Dhariwal 2021,
  eq. 17), their signal-to-noise ratio, respacing to fewer steps, and where sampling starts;
- forward process, closed form (eq. 4): ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``;
- training (Algorithm 1, the "simple" loss of eq. 14): ``|| eps - eps_theta(x_t, t) ||^2``.

The network is in :mod:`course_lib.diffusion_unet`, the samplers in
:mod:`course_lib.diffusion_sampling`, training and the reference model in
:mod:`course_lib.diffusion` (which also re-exports everything here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .images import to_float

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
    def from_betas(cls, betas: torch.Tensor, timesteps: torch.Tensor | None = None) -> Schedule:
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
# schedule's last step, where alpha_bar is 2e-9 (its betas are clipped at 0.999). On the
# chapter's reference run, starting DDIM at t = T-1 gives saturated colours and starting near
# t = 900 gives faces (experiments/ddpm_start_diagnosis.py compares starts). START_SNR = 0.025
# (the signal's std is 16% of the noise's) puts the start at t = 898 of 1000 for the cosine
# schedule and states the rule for any schedule.
# Lin et al. 2024 ("Common diffusion noise schedules and sample steps are flawed") discuss
# this mismatch between the last training steps and the start of sampling.
START_SNR = 0.025
PREDICTIONS = ("eps", "v")   # what the network outputs: the noise (Ho et al.) or the velocity (Salimans & Ho)


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


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] images -> float in [-1, 1] (Ho et al. section 4)."""
    return to_float(images) * 2 - 1


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


def v_target(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The velocity ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`` (Salimans & Ho
    2022, section 4): what a v-predicting network is trained to output. From ``x_t`` and ``v``,
    ``x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v`` with no division, so the
    estimate stays bounded where alpha_bar_t is 0. Shapes as :func:`q_sample`."""
    a_bar = _at(schedule.alpha_bar, t, x0)
    return a_bar.sqrt() * noise - (1 - a_bar).sqrt() * x0


def v_to_eps(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The noise a predicted velocity implies: ``eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v``."""
    a_bar = _at(schedule.alpha_bar, t, x_t)
    return (1 - a_bar).sqrt() * x_t + a_bar.sqrt() * v


def diffusion_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   schedule: Schedule, *, prediction: str = "eps", min_snr: float | None = None) -> torch.Tensor:
    """The simplified objective (Ho et al. 2020, eq. 14): mean over batch and pixels of
    ``|| eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2``.

    It is the ELBO's sum of KL terms (eq. 5) with each term's weight
    ``beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))`` set to 1 (eq. 12 -> 14).
    ``model(x_t, t)`` predicts the noise ``(B, C, H, W)``. Returns a scalar.
    ``prediction="v"``: the network predicts :func:`v_target` instead (the same loss in eps
    terms, weighted by ``1 / alpha_bar_t``: more weight where the image is almost all noise).
    ``min_snr=gamma``: Min-SNR-gamma weighting (Hang et al. 2023): each image's error is
    weighted so that, in ``x_0`` terms, its weight is ``min(SNR_t, gamma)``: ``min(SNR, gamma) /
    SNR`` for eps and ``min(SNR, gamma) / (SNR + 1)`` for v. The nearly clean steps, whose
    tiny denoising tasks dominate the gradient otherwise, stop drowning out the rest.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if min_snr is not None and not min_snr > 0:
        raise ValueError(f"min_snr must be a positive number (gamma, e.g. 5.0) or None, got {min_snr!r}")
    x_t = q_sample(x0, t, noise, schedule)
    target = noise if prediction == "eps" else v_target(x0, t, noise, schedule)
    if min_snr is None:
        return F.mse_loss(model(x_t, t).float(), target.float())
    snr = schedule.snr().to(x0.device)[t].float()                                    # (B,)
    weight = snr.clamp(max=min_snr) / (snr if prediction == "eps" else snr + 1)      # (B,)
    per_image = (model(x_t, t).float() - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    return (weight * per_image).mean()

