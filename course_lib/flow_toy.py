"""Flow matching in two dimensions, on the GAN playground's ring of eight Gaussians, and one
reflow step (Liu et al. 2022, section 2.3).

Chapter 09 starts here because every path can be drawn. A small MLP ``u(x, t)`` learns the
velocity of :mod:`course_lib.flow`'s straight paths from N(0, I) to the ring; integrating it
carries noise to the modes. The learned paths are curved, though each training path is
straight: many straight lines cross at one ``(x, t)`` and the network learns their average.
Reflow retrains on pairs ``(x_0, ODE(x_0))`` drawn from the first model: those pairs no
longer cross, so the new field's paths are nearly straight and a single Euler step lands
near the modes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .flow import integrate, interpolant, velocity_target
from .playground import high_quality_fraction, mlp, ring_centers, sample_data


class Velocity2D(nn.Module):
    """``u(x, t)``: an MLP on ``(x, t)``. ``x`` ``(B, 2)``, ``t`` ``(B,)`` in [0, 1] -> ``(B, 2)``."""

    def __init__(self, *, width: int = 128, depth: int = 3):
        super().__init__()
        self.net = mlp(n_in=3, n_out=2, width=width, depth=depth)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x)], dim=1))


@dataclass(frozen=True)
class Flow2DConfig:
    steps: int = 3000          # Adam steps (about 2 ms each on a CPU core)
    batch_size: int = 256      # pairs per step
    lr: float = 2e-3           # Adam learning rate
    width: int = 128           # MLP hidden width
    depth: int = 3             # MLP hidden layers
    seed: int = 0              # init, noise, data and times


def fit_velocity(model: nn.Module, draw, *, steps: int, lr: float, generator: torch.Generator) -> list[float]:
    """Flow matching on vectors: ``steps`` Adam steps on ``model(x, t)``, each on a batch of
    couples ``x0, x1 = draw(generator)`` (noise and data, ``(B, D)`` each) at uniform times
    ``t`` ``(B,)``. Trains ``model`` in place; returns its loss per step. Chapter 09's 2-D
    fields and chapter 12's representation generator (:func:`course_lib.rcg.train_rep_generator`)
    train here."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x0, x1 = draw(generator)
        t = torch.rand(len(x0), generator=generator)
        loss = F.mse_loss(model(interpolant(x0, x1, t), t), velocity_target(x0, x1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_velocity_2d(config: Flow2DConfig = Flow2DConfig(), *,
                      pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[Velocity2D, list[float]]:
    """Fit ``u(x, t)`` with the flow matching loss (:func:`fit_velocity`). Without ``pairs`` each
    step draws fresh noise and fresh ring points, paired at random (independent coupling); with
    ``pairs`` ``(x0 (N, 2), x1 (N, 2))`` it draws rows of those fixed couples (reflow). Returns
    the model and its loss per step."""
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = Velocity2D(width=config.width, depth=config.depth)

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if pairs is None:
            x0 = torch.randn(config.batch_size, 2, generator=g)
            return x0, sample_data("ring", config.batch_size, generator=g)
        idx = torch.randint(len(pairs[0]), (config.batch_size,), generator=g)
        return pairs[0][idx], pairs[1][idx]

    losses = fit_velocity(model, draw, steps=config.steps, lr=config.lr, generator=g)
    return model.eval(), losses


@torch.no_grad()
def trajectories(model: nn.Module, x0: torch.Tensor, *, steps: int, method: str = "euler") -> torch.Tensor:
    """The Euler (or Heun) path of every point: ``(steps + 1, N, 2)``, from ``x0`` at t = 0."""
    path = [x0]
    for i in range(steps):
        path.append(integrate(model, path[-1], steps=1, method=method, t0=i / steps, t1=(i + 1) / steps))
    return torch.stack(path)


@torch.no_grad()
def reflow_pairs(model: nn.Module, n: int, *, steps: int = 100, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` couples ``(x0, x1 = ODE(x0))``: noise and where the model's flow carries it
    (``steps`` Euler steps, fine enough to be close to the exact ODE)."""
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return x0, integrate(model, x0, steps=steps)


def straightness(path: torch.Tensor) -> float:
    """How far paths bend: the mean over points of (path length / end-to-end distance) - 1
    for a ``(steps + 1, N, 2)`` trajectory. 0 for straight lines."""
    length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)
    chord = (path[-1] - path[0]).norm(dim=-1).clamp_min(1e-8)
    return float((length / chord - 1).mean())


@torch.no_grad()
def quality_by_steps(model: nn.Module, steps_list=(1, 2, 4, 8, 32), *, n: int = 2000, seed: int = 2,
                     radius: float = 0.25) -> dict[int, float]:
    """Share of Euler samples within ``radius`` of a ring mode, per number of Euler steps."""
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return {s: high_quality_fraction(integrate(model, x0, steps=s).numpy(), ring_centers(), radius=radius)
            for s in steps_list}
