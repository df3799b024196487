"""Checkers for chapter 08 (denoising diffusion): the forward process ``q_sample``, the
noise-prediction loss and one reverse (ancestral) step.

Conventions (course_lib.diffusion): 0-based step indices, ``schedule.alphas`` = alpha_t,
``schedule.alpha_bar`` = alpha_bar_t = prod of alphas up to t, ``schedule.betas`` = beta_t.
Each checker compares with the library's reference, and when the answer is wrong,
recomputes the usual mistakes to name the one that was made.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..diffusion_process import cosine_schedule, diffusion_loss, q_sample
from ..diffusion_sampling import p_sample, reverse_step
from .core import ExerciseError, check_dtype, check_scalar_loss, name_mistake, own_work, passed, run_student

_TO_X0 = ("schedule.alpha_bar is float64: bring it to x0's dtype and device, "
          "schedule.alpha_bar[t].to(x0), before mixing it with the images.")


def _schedule():
    return cosine_schedule(100)


def _coef(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].float().view(-1, 1, 1, 1)


@own_work(q_sample)
def check_q_sample(fn: Callable[..., torch.Tensor]) -> None:
    """``q_sample(x0, t, noise, schedule)`` = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise,
    in x0's dtype (the U-Net's weights are float32)."""
    s = _schedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(3, 3, 4, 4, generator=g)
    t = torch.tensor([5, 40, 90])
    try:
        got = run_student("q_sample", fn, x0, t, noise, s)
    except ExerciseError as exc:
        if "must match the size" not in str(exc):
            raise
        raise ExerciseError(f"{exc} Hint: schedule.alpha_bar[t] has shape (B,); reshape it to "
                            f"(B, 1, 1, 1) so it broadcasts over each image.") from None
    ab, a = _coef(s.alpha_bar, t), _coef(s.alphas, t)
    wrong = {
        "it uses alpha_t (one step's signal) where alpha_bar_t (the product up to t) belongs: "
        "use schedule.alpha_bar[t]":
            a.sqrt() * x0 + (1 - a).sqrt() * noise,
        "a square root is missing: the coefficients are sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) "
        "(standard deviations, not variances)":
            ab * x0 + (1 - ab) * noise,
        "the square root of the signal coefficient is missing: use sqrt(alpha_bar_t) * x0":
            ab * x0 + (1 - ab).sqrt() * noise,
        "the square root of the noise coefficient is missing: use sqrt(1 - alpha_bar_t) * noise":
            ab.sqrt() * x0 + (1 - ab) * noise,
        "the two coefficients are swapped: the signal gets sqrt(alpha_bar_t), the noise sqrt(1 - alpha_bar_t)":
            (1 - ab).sqrt() * x0 + ab.sqrt() * noise,
        "it uses beta_t: the closed form q(x_t | x_0) needs alpha_bar_t = prod (1 - beta_s)":
            (1 - _coef(s.betas, t)).sqrt() * x0 + _coef(s.betas, t).sqrt() * noise,
        "off by one: index t is already 0-based, use schedule.alpha_bar[t]":
            _coef(s.alpha_bar, t - 1).sqrt() * x0 + (1 - _coef(s.alpha_bar, t - 1)).sqrt() * noise,
    }
    name_mistake("q_sample", got, q_sample(x0, t, noise, s), wrong)
    check_dtype("q_sample", got, x0.dtype, hint=_TO_X0)
    passed("q_sample", "x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps")


class _ToyModel(torch.nn.Module):
    """A stand-in noise predictor with one parameter: ``eps(x, t) = w * x + t / 100``."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x, t):
        self.inputs.append(x.detach())
        return self.w * x + torch.as_tensor(t).float().view(-1, 1, 1, 1) / 100


@own_work(diffusion_loss)
def check_diffusion_loss(fn: Callable[..., torch.Tensor]) -> None:
    """``diffusion_loss(model, x0, t, noise, schedule)``: mean of (noise - model(x_t, t))^2,
    the model fed x_t in x0's dtype."""
    s = _schedule()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 4, 4, generator=g)
    t = torch.tensor([3, 30, 60, 95])
    model = _ToyModel()
    got = run_student("diffusion_loss", fn, model, x0, t, noise, s)
    check_scalar_loss("diffusion_loss", got)
    seen = model.inputs[0] if model.inputs else None
    if seen is not None and seen.dtype != x0.dtype:
        raise ExerciseError(f"diffusion_loss: the model was fed x_t in {seen.dtype}, x0 is {x0.dtype}; the "
                            f"chapter's U-Net (float32 weights) would refuse it. {_TO_X0}")
    ab = _coef(s.alpha_bar, t)
    x_t = q_sample(x0, t, noise, s)
    with torch.no_grad():
        eps = model(x_t, t)
        wrong = {
            "the target is x_0: the model predicts the noise eps (Ho et al. eq. 14), compare with `noise`":
                F.mse_loss(eps, x0),
            "the model sees the clean x_0: feed it x_t = q_sample(x0, t, noise, schedule)":
                F.mse_loss(model(x0, t), noise),
            "the target is x_t: the model predicts the noise eps that was added":
                F.mse_loss(eps, x_t),
            "it sums the squared errors; take the mean (the simple loss averages over pixels and batch)":
                (eps - noise).pow(2).sum(),
            "it averages absolute errors; the loss is the mean *squared* error":
                (eps - noise).abs().mean(),
            "x_t uses alpha_t where alpha_bar_t belongs (see q_sample)":
                F.mse_loss(model(_coef(s.alphas, t).sqrt() * x0 + (1 - _coef(s.alphas, t)).sqrt() * noise, t), noise),
            "x_t lacks the square roots: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (see q_sample)":
                F.mse_loss(model(ab * x0 + (1 - ab) * noise, t), noise),
        }
        expected = diffusion_loss(model, x0, t, noise, s)
    name_mistake("diffusion_loss", got.reshape(()), expected.reshape(()), {k: v.reshape(()) for k, v in wrong.items()},
                  atol=1e-6)
    passed("diffusion_loss", "mean squared error between the noise and its prediction from x_t")


@own_work(reverse_step, p_sample)
def check_reverse_step(fn: Callable[..., torch.Tensor]) -> None:
    """``reverse_step(x_t, eps, t, schedule, noise)``: Ho et al. Algorithm 2, line 4, at
    t = 0 (no noise), 1, 30 and 80. Either of Ho et al.'s variances passes, sigma_t^2 = beta_t
    or the posterior's beta-tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    (their section 3.2: both gave similar results), used at every t."""
    s = _schedule()
    g = torch.Generator().manual_seed(2)
    x, eps, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))

    def variants(t: int) -> dict:
        a, b, ab = (float(v[t]) for v in (s.alphas, s.betas, s.alpha_bar))
        mean = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
        sigma_z = math.sqrt(b) * z
        return {
            "the sign in the mean is wrong: subtract the predicted noise, "
            "x_t - beta_t / sqrt(1 - alpha_bar_t) * eps":
                (x + b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + (sigma_z if t else 0),
            "it divides by sqrt(alpha_bar_t); the mean divides by sqrt(alpha_t), one step's alpha":
                (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(ab) + (sigma_z if t else 0),
            "the noise coefficient uses alpha_t where alpha_bar_t belongs: beta_t / sqrt(1 - alpha_bar_t)":
                (x - b / math.sqrt(1 - a) * eps) / math.sqrt(a) + (sigma_z if t else 0),
            "a square root is missing in the noise coefficient: beta_t / sqrt(1 - alpha_bar_t)":
                (x - b / (1 - ab) * eps) / math.sqrt(a) + (sigma_z if t else 0),
            "a square root is missing: sigma_t = sqrt(beta_t), so add sqrt(beta_t) * noise":
                mean + (b * z if t else 0),
            "no noise was added: for t > 0 add sigma_t * noise with sigma_t = sqrt(beta_t)":
                mean,
            "it returns x_t minus the scaled noise without dividing by sqrt(alpha_t)":
                x - b / math.sqrt(1 - ab) * eps + (sigma_z if t else 0),
        }

    # the last step (index 0, the paper's t = 1) returns the mean: no noise
    got0 = run_student("reverse_step", fn, x, eps, 0, s, z)
    expected0 = reverse_step(x, eps, 0, s, z)
    if isinstance(got0, torch.Tensor) and got0.shape == x.shape and torch.allclose(
            got0.float(), expected0 + math.sqrt(float(s.betas[0])) * z, atol=1e-5):
        raise ExerciseError("reverse_step: noise was added at the last step; at t = 0 (the paper's t = 1) "
                            "return the mean only (Algorithm 2: z = 0 when t = 1).")
    name_mistake("reverse_step", got0, expected0, {k: v for k, v in variants(0).items()
                                                   if isinstance(v, torch.Tensor)})
    posterior = None                         # which variance the answer uses, from t = 1 on
    for t in (1, 30, 80):
        got = run_student("reverse_step", fn, x, eps, t, s, z)
        expected = reverse_step(x, eps, t, s, z)
        b, ab, ab_prev = float(s.betas[t]), float(s.alpha_bar[t]), float(s.alpha_bar[t - 1])
        tilde = expected + (math.sqrt((1 - ab_prev) / (1 - ab) * b) - math.sqrt(b)) * z
        if posterior is None and isinstance(got, torch.Tensor) and got.shape == x.shape:
            posterior = torch.allclose(got.float(), tilde, atol=1e-5)
        wrong = variants(t)
        if t == 1:
            wrong = {"no noise was added at t = 1: indices are 0-based, so only t = 0 (the paper's t = 1) "
                     "returns the mean; `if t > 1` is the paper's 1-based test, use `if t > 0`": wrong.pop(
                         "no noise was added: for t > 0 add sigma_t * noise with sigma_t = sqrt(beta_t)"),
                     **wrong}
        name_mistake("reverse_step", got, tilde if posterior else expected, wrong)
    sigma = "sqrt(beta-tilde_t), the posterior's" if posterior else "sqrt(beta_t)"
    passed("reverse_step", f"x_{{t-1}} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z, "
                           f"sigma_t = {sigma}")
