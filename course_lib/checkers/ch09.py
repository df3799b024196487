"""Checkers for chapter 09 (flow matching): the straight-path interpolant, the flow matching
loss and one Euler step of the sampling ODE.

Conventions (course_lib.flow): ``x0`` is noise, ``x1`` data, ``t`` in [0, 1] with t = 0 noise
and t = 1 data; the network is called as ``net(x_t, 1000 * t)`` (``flow.TIME_SCALE``).
Each checker compares with the library's reference and names the usual mistakes.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..flow import TIME_SCALE, euler_step, flow_loss, heun_step, interpolant
from .core import ExerciseError, check_scalar_loss, name_mistake, own_work, passed, run_student


def _inputs(seed: int, shape=(3, 3, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(*shape, generator=g)                  # noise
    x1 = torch.rand(*shape, generator=g) * 2 - 1           # "data" in [-1, 1]
    return x0, x1


def _col(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


@own_work(interpolant)
def check_interpolant(fn: Callable[..., torch.Tensor]) -> None:
    """``interpolant(x0, x1, t)`` = (1 - t) x0 + t x1, ``t`` of shape (B,)."""
    x0, x1 = _inputs(0)
    t = torch.tensor([0.1, 0.5, 0.8])
    try:
        got = run_student("interpolant", fn, x0, x1, t)
    except ExerciseError as exc:
        if "must match the size" not in str(exc):
            raise
        raise ExerciseError(f"{exc} Hint: t has shape (B,); reshape it to (B, 1, 1, 1) "
                            "so it broadcasts over each image.") from None
    c = _col(t)
    wrong = {
        "the ends are swapped: t = 0 is the noise x0 and t = 1 the data x1, so x_t = (1 - t) x0 + t x1":
            c * x0 + (1 - c) * x1,
        "those are the variance-preserving coefficients of diffusion (square roots); "
        "the straight path uses (1 - t) and t":
            (1 - c).sqrt() * x0 + c.sqrt() * x1,
        "the noise is not scaled down: x_t = (1 - t) x0 + t x1, not x0 + t x1":
            x0 + c * x1,
        "the noise term is missing: x_t = (1 - t) x0 + t x1":
            c * x1,
    }
    name_mistake("interpolant", got, interpolant(x0, x1, t), wrong)
    if not torch.allclose(run_student("interpolant", fn, x0, x1, torch.zeros(3)).float(), x0, atol=1e-6):
        raise ExerciseError("interpolant: at t = 0 the path must start at the noise x0.")
    passed("interpolant", "x_t = (1 - t) x0 + t x1")


class _ToyVelocity(torch.nn.Module):
    """A stand-in velocity network with one parameter: ``u(x, s) = w * x + s / 1000`` (``s`` = 1000 t)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, s):
        return self.w * x + torch.as_tensor(s).float().view(-1, 1, 1, 1) / TIME_SCALE


@own_work(flow_loss)
def check_flow_loss(fn: Callable[..., torch.Tensor]) -> None:
    """``flow_loss(net, x1, t, x0)``: mean of (net(x_t, 1000 t) - (x1 - x0))^2."""
    x0, x1 = _inputs(1, (4, 3, 4, 4))
    t = torch.tensor([0.05, 0.3, 0.6, 0.95])
    net = _ToyVelocity()
    got = run_student("flow_loss", fn, net, x1, t, x0)
    check_scalar_loss("flow_loss", got, source="the network's output")
    c = _col(t)
    x_t = (1 - c) * x0 + c * x1
    with torch.no_grad():
        u = net(x_t, t * TIME_SCALE)
        wrong = {
            "the target's sign is wrong: the path moves from the noise to the data, velocity x1 - x0":
                F.mse_loss(u, x0 - x1),
            "the target is the data x1: the network predicts the velocity x1 - x0":
                F.mse_loss(u, x1),
            "the target is the noise x0: the network predicts the velocity x1 - x0":
                F.mse_loss(u, x0),
            "the network sees t in [0, 1]: call it with 1000 * t (flow.TIME_SCALE), the scale its "
            "time embedding was built for":
                F.mse_loss(net(x_t, t), x1 - x0),
            "the network sees the clean data x1: feed it x_t = interpolant(x0, x1, t)":
                F.mse_loss(net(x1, t * TIME_SCALE), x1 - x0),
            "the ends of the path are swapped: x_t = (1 - t) x0 + t x1":
                F.mse_loss(net(c * x0 + (1 - c) * x1, t * TIME_SCALE), x1 - x0),
            "it sums the squared errors; take the mean":
                (u - (x1 - x0)).pow(2).sum(),
        }
        expected = flow_loss(net, x1, t, x0)
    name_mistake("flow_loss", got.reshape(()), expected.reshape(()), {k: v.reshape(()) for k, v in wrong.items()},
                 atol=1e-6)
    passed("flow_loss", "mean squared error between u(x_t, t) and the straight path's velocity x1 - x0")


@own_work(euler_step, heun_step)
def check_euler_step(fn: Callable[..., torch.Tensor]) -> None:
    """``euler_step(velocity, x, t, dt)`` = x + dt * velocity(x, t) with t as a (B,) tensor."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g)

    def velocity(x_, t_):
        t_ = torch.as_tensor(t_, dtype=torch.float32)
        if t_.dim() != 1 or t_.shape[0] != x_.shape[0]:
            raise ExerciseError(f"euler_step: call velocity(x, t) with t of shape (B,) = ({x_.shape[0]},), "
                                f"e.g. torch.full((x.shape[0],), t); got shape {tuple(t_.shape)}")
        return -x_ * (1 + t_.view(-1, 1, 1, 1))          # depends on x and t: mistakes show

    t, dt = 0.3, 0.25
    got = run_student("euler_step", fn, velocity, x, t, dt)
    at = lambda s: velocity(x, torch.full((2,), s))  # noqa: E731
    wrong = {
        "the step goes backwards: x + dt * velocity(x, t), not minus":
            x - dt * at(t),
        "the velocity is not scaled by the step size dt":
            x + at(t),
        "it returns dt * velocity only; add it to x":
            dt * at(t),
        "the velocity is taken at t + dt: Euler's method uses the start of the step, velocity(x, t)":
            x + dt * at(t + dt),
    }
    name_mistake("euler_step", got, euler_step(velocity, x, t, dt), wrong)
    passed("euler_step", "x_{t+dt} = x_t + dt * u(x_t, t)")
