"""Chapter 11 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch

from course_lib import flow
from course_lib.checkers.ch11 import check_edge_l1, check_generate
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


def edge_l1(recon, images):             # written out: the checker rejects course_lib.latent.edge_l1
    dx = (recon[..., :, 1:] - recon[..., :, :-1]) - (images[..., :, 1:] - images[..., :, :-1])
    dy = (recon[..., 1:, :] - recon[..., :-1, :]) - (images[..., 1:, :] - images[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def test_edge_l1_reference_passes(capsys):
    check_edge_l1(edge_l1)
    assert "correct" in capsys.readouterr().out


def _dx(x):
    return x[..., :, 1:] - x[..., :, :-1]


def _dy(x):
    return x[..., 1:, :] - x[..., :-1, :]


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda r, x: (_dx(r) - _dx(x)).abs().mean(), "only the horizontal"),
    (lambda r, x: (_dy(r) - _dy(x)).abs().mean(), "only the vertical"),
    (lambda r, x: (r - x).abs().mean(), "not between their edges"),
    (lambda r, x: (_dx(r) - _dx(x)).pow(2).mean() + (_dy(r) - _dy(x)).pow(2).mean(), "squared"),
    (lambda r, x: (_dx(r) - _dx(x)).mean().abs() + (_dy(r) - _dy(x)).mean().abs(), "after averaging"),
    (lambda r, x: (_dx(r).abs() - _dx(x).abs()).abs().mean() + (_dy(r).abs() - _dy(x).abs()).abs().mean(),
     "signed"),
    (lambda r, x: ((_dx(r) - _dx(x)).abs().mean() + (_dy(r) - _dy(x)).abs().mean()) / 2, "averaged"),
    (lambda r, x: (_dx(r) - _dx(x)).abs().sum() + (_dy(r) - _dy(x)).abs().sum(), "differ"),
    (lambda r, x: torch.tensor(float(edge_l1(r, x).detach())), "no gradient"),
    (lambda r, x: (_dx(r).detach() - _dx(x)).abs().mean() + (_dy(r).detach() - _dy(x)).abs().mean(),
     "no gradient"),
    # a transposed difference (along H twice) is caught by the non-square test images
    (lambda r, x: 2 * (_dy(r) - _dy(x)).abs().mean(), "differ"),
])
def test_edge_l1_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_edge_l1(wrong)


def generate(velocity, decode, scale, noise, steps):   # written out: the checker rejects latent.generate
    z = flow.integrate(velocity, noise, steps=steps)
    return decode(z / scale)


def test_generate_reference_passes(capsys):
    check_generate(generate)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda v, d, s, n, k: d(flow.integrate(v, n, steps=k) * s), "multiplied by scale"),
    (lambda v, d, s, n, k: d(flow.integrate(v, n, steps=k)), "not undone"),
    (lambda v, d, s, n, k: d(n / s), "noise itself is decoded"),
    (lambda v, d, s, n, k: flow.integrate(v, n, steps=k) / s, "without decoding"),
    (lambda v, d, s, n, k: d(flow.integrate(v, n / s, steps=k) / s), "before integrating"),
    (lambda v, d, s, n, k: d(flow.integrate(v, n, steps=k, method="heun") / s), "Heun"),
    (lambda v, d, s, n, k: d(flow.integrate(v, n, steps=2 * k) / s), "differ"),
])
def test_generate_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_generate(wrong)
