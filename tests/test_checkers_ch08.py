"""Chapter 08 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.checkers.ch08 import check_diffusion_loss, check_q_sample, check_reverse_step
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def q_sample(x0, t, noise, schedule):
    a_bar = schedule.alpha_bar[t].to(x0).view(-1, 1, 1, 1)
    return a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * noise


def diffusion_loss(model, x0, t, noise, schedule):
    return F.mse_loss(model(q_sample(x0, t, noise, schedule), t), noise)


def reverse_step(x_t, eps, t, schedule, noise, *, posterior=False):
    alpha, beta, a_bar = (float(v[t]) for v in (schedule.alphas, schedule.betas, schedule.alpha_bar))
    mean = (x_t - beta / math.sqrt(1 - a_bar) * eps) / math.sqrt(alpha)
    if posterior:          # sigma_t^2 = beta-tilde_t (Ho et al. section 3.2), 0 at t = 0
        a_bar_prev = float(schedule.alpha_bar[t - 1]) if t > 0 else 1.0
        return mean + math.sqrt((1 - a_bar_prev) / (1 - a_bar) * beta) * noise
    return mean + math.sqrt(beta) * noise if t > 0 else mean


def _at(values, t):
    return values[t].float().view(-1, 1, 1, 1)


def test_q_sample_reference_passes(capsys):
    check_q_sample(q_sample)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda x0, t, n, s: _at(s.alphas, t).sqrt() * x0 + (1 - _at(s.alphas, t)).sqrt() * n, "alpha_t"),
    (lambda x0, t, n, s: _at(s.alpha_bar, t) * x0 + (1 - _at(s.alpha_bar, t)) * n, "square root is missing"),
    (lambda x0, t, n, s: _at(s.alpha_bar, t).sqrt() * x0 + (1 - _at(s.alpha_bar, t)) * n, "noise coefficient"),
    (lambda x0, t, n, s: (1 - _at(s.alpha_bar, t)).sqrt() * x0 + _at(s.alpha_bar, t).sqrt() * n, "swapped"),
    (lambda x0, t, n, s: _at(s.alpha_bar, t - 1).sqrt() * x0 + (1 - _at(s.alpha_bar, t - 1)).sqrt() * n, "off by one"),
    (lambda x0, t, n, s: s.alpha_bar[t].float().sqrt() * x0 + (1 - s.alpha_bar[t].float()).sqrt() * n, "reshape it to"),
    (lambda x0, t, n, s: x0 + n, "differ"),
    # right values in float64 (schedule.alpha_bar's dtype; the text asks for .to(x0))
    (lambda x0, t, n, s: s.alpha_bar[t].view(-1, 1, 1, 1).sqrt() * x0
     + (1 - s.alpha_bar[t].view(-1, 1, 1, 1)).sqrt() * n,
     r"dtype torch.float64.*\.to\(x0\)"),
])
def test_q_sample_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_q_sample(wrong)


def test_loss_reference_passes(capsys):
    check_diffusion_loss(diffusion_loss)
    assert "correct" in capsys.readouterr().out


def _x_t(x0, t, n, s):
    return q_sample(x0, t, n, s)


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda m, x0, t, n, s: F.mse_loss(m(_x_t(x0, t, n, s), t), x0), "target is x_0"),
    (lambda m, x0, t, n, s: F.mse_loss(m(x0, t), n), "sees the clean x_0"),
    (lambda m, x0, t, n, s: (m(_x_t(x0, t, n, s), t) - n).pow(2).sum(), "sums"),
    (lambda m, x0, t, n, s: (m(_x_t(x0, t, n, s), t) - n).abs().mean(), "absolute"),
    (lambda m, x0, t, n, s: F.mse_loss(m(_at(s.alphas, t).sqrt() * x0 + (1 - _at(s.alphas, t)).sqrt() * n, t), n),
     "alpha_t where alpha_bar_t"),
    (lambda m, x0, t, n, s: F.mse_loss(m(_at(s.alpha_bar, t) * x0 + (1 - _at(s.alpha_bar, t)) * n, t), n),
     "square roots"),
    (lambda m, x0, t, n, s: (m(_x_t(x0, t, n, s), t) - n).pow(2).mean(dim=(1, 2, 3)), "scalar"),
    (lambda m, x0, t, n, s: torch.tensor(diffusion_loss(m, x0, t, n, s).item()), "gradient"),
    # x_t in float64 (no .to(x0)): the chapter's float32 U-Net refuses it
    (lambda m, x0, t, n, s: F.mse_loss(m(s.alpha_bar[t].view(-1, 1, 1, 1).sqrt() * x0
                                         + (1 - s.alpha_bar[t].view(-1, 1, 1, 1)).sqrt() * n, t), n).float(),
     r"fed x_t in torch.float64.*\.to\(x0\)"),
])
def test_loss_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_diffusion_loss(wrong)


def test_reverse_step_reference_passes(capsys):
    check_reverse_step(reverse_step)
    # the posterior variance beta-tilde (Ho et al.'s other choice) is right too
    check_reverse_step(lambda x, eps, t, s, z: reverse_step(x, eps, t, s, z, posterior=True))
    out = capsys.readouterr().out
    assert out.count("correct") == 2 and "beta-tilde" in out


def _parts(t, s):
    return (float(v[t]) for v in (s.alphas, s.betas, s.alpha_bar))


def _always_noise(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + math.sqrt(b) * z


def _plus_sign(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x + b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + (math.sqrt(b) * z if t else 0)


def _alpha_bar_divisor(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(ab) + (math.sqrt(b) * z if t else 0)


def _no_sqrt_coef(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x - b / (1 - ab) * eps) / math.sqrt(a) + (math.sqrt(b) * z if t else 0)


def _sigma_beta(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + (b * z if t else 0)


def _never_noise(x, eps, t, s, z):
    a, b, ab = _parts(t, s)
    return (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (_always_noise, "noise was added at the last step"),
    (_plus_sign, "sign in the mean is wrong"),
    (_alpha_bar_divisor, "divides by sqrt\\(alpha_bar_t\\)"),
    (_no_sqrt_coef, "square root is missing in the noise coefficient"),
    (_sigma_beta, "sigma_t = sqrt\\(beta_t\\)"),
    (_never_noise, "no noise was added"),
    (lambda x, eps, t, s, z: x - eps, "differ"),
    # the paper's 1-based `if t > 1`: no noise at t = 1 (checked only at 0, 30, 80 before)
    (lambda x, eps, t, s, z: _never_noise(x, eps, t, s, z) + (math.sqrt(float(s.betas[t])) * z if t > 1 else 0),
     r"no noise was added at t = 1: indices are 0-based.*if t > 0"),
])
def test_reverse_step_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_reverse_step(wrong)
