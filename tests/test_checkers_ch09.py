"""Chapter 09 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.checkers.ch09 import check_euler_step, check_flow_loss, check_interpolant
from course_lib.checkers.core import ExerciseError
from course_lib.flow import TIME_SCALE

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def interpolant(x0, x1, t):
    t = t.view(-1, 1, 1, 1)
    return (1 - t) * x0 + t * x1


def flow_loss(net, x1, t, x0):
    return F.mse_loss(net(interpolant(x0, x1, t), t * TIME_SCALE), x1 - x0)


def euler_step(velocity, x, t, dt):
    return x + dt * velocity(x, torch.full((x.shape[0],), t))


def _c(t):
    return t.view(-1, 1, 1, 1)


def test_interpolant_reference_passes(capsys):
    check_interpolant(interpolant)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda x0, x1, t: _c(t) * x0 + (1 - _c(t)) * x1, "swapped"),
    (lambda x0, x1, t: (1 - _c(t)).sqrt() * x0 + _c(t).sqrt() * x1, "variance-preserving"),
    (lambda x0, x1, t: x0 + _c(t) * x1, "not scaled down"),
    (lambda x0, x1, t: _c(t) * x1, "noise term is missing"),
    (lambda x0, x1, t: (1 - t) * x0 + t * x1, "reshape it to"),
    (lambda x0, x1, t: (x0 + x1) / 2, "differ"),
])
def test_interpolant_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_interpolant(wrong)


def test_flow_loss_reference_passes(capsys):
    check_flow_loss(flow_loss)
    assert "correct" in capsys.readouterr().out


def _xt(x0, x1, t):
    return interpolant(x0, x1, t)


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda n, x1, t, x0: F.mse_loss(n(_xt(x0, x1, t), t * TIME_SCALE), x0 - x1), "sign is wrong"),
    (lambda n, x1, t, x0: F.mse_loss(n(_xt(x0, x1, t), t * TIME_SCALE), x1), "target is the data"),
    (lambda n, x1, t, x0: F.mse_loss(n(_xt(x0, x1, t), t * TIME_SCALE), x0), "target is the noise"),
    (lambda n, x1, t, x0: F.mse_loss(n(_xt(x0, x1, t), t), x1 - x0), "1000"),
    (lambda n, x1, t, x0: F.mse_loss(n(x1, t * TIME_SCALE), x1 - x0), "clean data"),
    (lambda n, x1, t, x0: F.mse_loss(n(_xt(x1, x0, t), t * TIME_SCALE), x1 - x0), "swapped"),
    (lambda n, x1, t, x0: (n(_xt(x0, x1, t), t * TIME_SCALE) - (x1 - x0)).pow(2).sum(), "sums"),
    (lambda n, x1, t, x0: (n(_xt(x0, x1, t), t * TIME_SCALE) - (x1 - x0)).pow(2).mean((1, 2, 3)), "scalar"),
    (lambda n, x1, t, x0: torch.tensor(flow_loss(n, x1, t, x0).item()), "gradient"),
    (lambda n, x1, t, x0: F.l1_loss(n(_xt(x0, x1, t), t * TIME_SCALE), x1 - x0), "differ"),
])
def test_flow_loss_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_flow_loss(wrong)


def test_euler_step_reference_passes(capsys):
    check_euler_step(euler_step)
    assert "correct" in capsys.readouterr().out


def _full(x, t):
    return torch.full((x.shape[0],), t)


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda v, x, t, dt: x - dt * v(x, _full(x, t)), "backwards"),
    (lambda v, x, t, dt: x + v(x, _full(x, t)), "step size"),
    (lambda v, x, t, dt: dt * v(x, _full(x, t)), "add it to x"),
    (lambda v, x, t, dt: x + dt * v(x, _full(x, t + dt)), "start of the step"),
    (lambda v, x, t, dt: x + dt * v(x, t), r"shape \(B,\)"),
    (lambda v, x, t, dt: x + dt / 2 * v(x, _full(x, t)), "differ"),
])
def test_euler_step_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_euler_step(wrong)
