"""Chapter 08 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.checkers.ch08 import check_diffusion_loss, check_q_sample, check_reverse_step
from course_lib.checkers.core import ExerciseError
from course_lib.diffusion import diffusion_loss, q_sample, reverse_step

from exercise_stub import stub


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
])
def test_loss_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_diffusion_loss(wrong)


def test_reverse_step_reference_passes(capsys):
    check_reverse_step(reverse_step)
    assert "correct" in capsys.readouterr().out


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
])
def test_reverse_step_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_reverse_step(wrong)
