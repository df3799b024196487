"""Sampling from a trained noise predictor (chapter 08): ancestral DDPM, DDIM, RePaint.

- one reverse step (Ho et al. 2020, eq. 11 + Algorithm 2, line 4):
  ``x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) + sigma_t z``,
  ``sigma_t^2 = beta_t`` and no noise at the last step;
- DDIM (Song et al. 2021, eq. 12 with sigma = 0): deterministic, any subsequence of steps;
- RePaint (Lugmayr et al. 2022): at every reverse step the known pixels are replaced by a
  forward-noised copy of the known image, so the model only has to fill the hole.

A noise-predicting model is sampled from :func:`~course_lib.diffusion_process.sampling_start`
(where the SNR has fallen to 0.025), not from T-1, where the cosine schedule's alpha_bar of
2e-9 magnifies every error of the network; a v-predicting one from T-1 (:func:`start_for`).
``model`` is a :class:`~course_lib.diffusion_unet.DDPM` (its EMA weights) or any module with
``model(x_t, t)``, ``.schedule`` and ``.image_size``.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .diffusion_process import (
    Schedule,
    ddim_timesteps,
    q_sample,
    respace,
    sampling_start,
    to_image_range,
    to_model_range,
)
from .diffusion_unet import DDPM
from .images import to_float
from .inputs import check_value


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
             generator: torch.Generator | None = None, reverse: Callable | None = None) -> torch.Tensor:
    """``x_{t-1} ~ p_theta(x_{t-1} | x_t)``: the model predicts the noise, :func:`reverse_step`
    does the rest. ``model(x, t)`` as :class:`TimeUNet`; noise drawn from ``generator``.
    ``reverse``: a function with :func:`reverse_step`'s signature to use instead (chapter 08
    passes the student's).

    As in Ho et al.'s and Nichol & Dhariwal's code (``clip_denoised``), the ``x_0`` the noise
    implies is clipped to [-1, 1] and the noise re-derived from it; while that ``x_0`` lies in
    [-1, 1] this is exactly Algorithm 2."""
    model_t = int(schedule.timesteps[t])                 # t itself unless the schedule is respaced
    eps = model(x_t, torch.full((x_t.shape[0],), model_t, dtype=torch.long, device=x_t.device)).float()
    a_bar = float(schedule.alpha_bar[t])
    x0 = ((x_t - math.sqrt(1 - a_bar) * eps) / math.sqrt(a_bar)).clamp(-1, 1)
    eps = (x_t - math.sqrt(a_bar) * x0) / math.sqrt(1 - a_bar)
    noise = torch.randn(x_t.shape, generator=generator).to(x_t) if t > 0 else torch.zeros_like(x_t)
    return (reverse or reverse_step)(x_t, eps, t, schedule, noise)


def start_for(model) -> int:
    """Where sampling starts by default: ``T - 1`` for a v-predicting model (its ``x_0``
    estimate needs no division by ``sqrt(alpha_bar_t)``), else :func:`sampling_start`."""
    return model.schedule.T - 1 if getattr(model, "prediction", "eps") == "v" else sampling_start(model.schedule)


def _prepare(model: DDPM, n: int, seed: int):
    """Eval mode, the model's device, a seeded generator and x_T ~ N(0, I) ``(n, 3, S, S)``."""
    check_value(n, "int >= 1", "n (images to sample)")
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    size = model.image_size
    return device, g, torch.randn((n, 3, size, size), generator=g).to(device)


@torch.no_grad()
def sample_ddpm(model: DDPM, n: int, *, steps: int | None = None, start: int | None = None,
                seed: int = 0, reverse: Callable | None = None) -> torch.Tensor:
    """``n`` images by ancestral sampling (Algorithm 2): ``x ~ N(0, I)`` at step ``start``
    (default :func:`start_for`), then :func:`p_sample` down to index 0, over every step
    or over ``steps`` of them (:func:`respace`). Returns ``(n, 3, S, S)`` in [0, 1] on the CPU.
    ``reverse``: passed to :func:`p_sample` (the student's :func:`reverse_step`)."""
    if steps is not None:  # 0 would silently mean "every step"
        check_value(steps, "int >= 1", "sample_ddpm: steps")
    start = start_for(model) if start is None else start
    schedule = respace(model.schedule, steps or start + 1, start=start)
    device, g, x = _prepare(model, n, seed)
    for t in reversed(range(schedule.T)):
        x = p_sample(model, x, t, schedule, generator=g, reverse=reverse)
    return to_image_range(x).cpu()


@torch.no_grad()
def sample_ddim(model: DDPM, n: int, *, steps: int = 50, start: int | None = None, seed: int = 0,
                batch_size: int = 256, x_start: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` images with the deterministic DDIM sampler in ``steps`` model calls (Song et al.
    2021, eq. 12 with sigma_t = 0): predict ``x_0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)``
    (clipped to [-1, 1]), then step to the next index ``s`` with
    ``x_s = sqrt(a_s) x_0 + sqrt(1 - a_s) eps``, where ``a = alpha_bar``. The same model,
    no retraining. Starts at ``start`` (default :func:`start_for`) from ``x ~ N(0, I)``, or
    from ``x_start`` ``(n, 3, S, S)`` in the model's range when given (e.g. a forward-noised
    image, to test the start itself). Returns ``(n, 3, S, S)`` in [0, 1] on the CPU."""
    check_value(n, "int >= 1", "n (images to sample)")
    check_value(batch_size, "int >= 1", "sample_ddim: batch_size")
    if x_start is not None and x_start.shape != (n, 3, model.image_size, model.image_size):
        raise ValueError(f"x_start must be ({n}, 3, {model.image_size}, {model.image_size}), "
                         f"got {tuple(x_start.shape)}")
    ts = ddim_timesteps(start_for(model) if start is None else start, steps)
    out = []
    for first in range(0, n, batch_size):
        device, _, x = _prepare(model, min(batch_size, n - first), seed + first)
        if x_start is not None:
            x = x_start[first:first + len(x)].to(device)
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
    start = start_for(model) if start is None else start
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
    return torch.where(keep.expand_as(out), to_float(images).cpu(), out)   # known pixels: exact
