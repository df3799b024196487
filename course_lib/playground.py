"""The GAN playground: 2-D data, tiny MLP players, training in seconds on a CPU.

In two dimensions everything a GAN does is visible: the real points, the generated
points and the discriminator's opinion of every point of the plane. Mode collapse,
the classic GAN failure, shows up as generated points piling onto a few of the 8
Gaussians of the ring. :func:`modes_covered` counts how many modes the samples reach and
:func:`high_quality_fraction` how many samples land on a mode at all: a generator can
"cover" 8 modes while a third of its points lie between them, or sit on one mode with
every point sharp, so the playground always reports the two side by side.

Use :func:`run_playground` with a :class:`PlaygroundConfig` (loss ``"ns"``, ``"wgan-clip"`` or
``"wgan-gp"``, optimizer, learning rates, D steps per G step, width, g_steps); it returns a
:class:`PlaygroundRun` with snapshots (generated points and the critic surface on a
grid) that :func:`plot_snapshots` draws as a frame strip and :func:`animate` as a
matplotlib animation (``.to_jshtml()`` renders in a static book). :func:`playground_ui`
builds the ipywidgets lab for a live kernel. The losses are the ones of
:mod:`course_lib.gan`, so the playground and the image GANs share one implementation.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import gan
from .history import History
from .loop import Budget, train as train_loop
from .profiles import choose
from .runtime import runtime

DATASETS = ("ring", "spiral", "moons")
OPTIMIZERS = ("adam", "rmsprop")


# ----------------------------------------------------------------------------- data
def ring_centers(k: int = 8, radius: float = 2.0) -> np.ndarray:
    """The ``k`` mode centres of the ring, float ``(k, 2)``, evenly spaced on a circle."""
    angles = 2 * math.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_data(kind: str, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points ``(n, 2)`` from a 2-D toy distribution, roughly inside [-2.5, 2.5]^2.

    ``ring``: 8 Gaussians (std 0.05) on a circle of radius 2 (the WGAN-GP paper's toy set);
    ``spiral``: a noisy two-turn spiral; ``moons``: two interleaved half circles.
    """
    g = generator
    if kind == "ring":
        centers = torch.as_tensor(ring_centers(), dtype=torch.float32)
        idx = torch.randint(0, len(centers), (n,), generator=g)
        return centers[idx] + 0.05 * torch.randn(n, 2, generator=g)
    if kind == "spiral":
        t = torch.rand(n, generator=g) * 4 * math.pi                     # two turns
        r = 0.3 + 2.0 * t / (4 * math.pi)
        pts = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1)
        return pts + 0.05 * torch.randn(n, 2, generator=g)
    if kind == "moons":
        t = torch.rand(n, generator=g) * math.pi
        upper = torch.rand(n, generator=g) < 0.5
        x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
        y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
        pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.6
        return pts + 0.05 * torch.randn(n, 2, generator=g)
    raise ValueError(f"kind must be one of {DATASETS}, got {kind!r}")


# ----------------------------------------------------------------------------- metric
def modes_covered(points, centers, *, radius: float = 0.25, min_fraction: float = 0.02) -> int:
    """How many modes hold at least ``min_fraction`` of the points within ``radius``.

    ``points`` ``(n, 2)``, ``centers`` ``(k, 2)`` (arrays or tensors). With the ring's
    std 0.05 a radius of 0.25 is 5 standard deviations; 2% of the samples is a sixth of
    a fair share (1/8 = 12.5%), so a mode counts only if the generator really visits it.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        return 0
    d = np.linalg.norm(p[:, None, :] - c[None, :, :], axis=2)             # (n, k)
    near = d.min(axis=1) <= radius
    nearest = d.argmin(axis=1)
    counts = np.bincount(nearest[near], minlength=len(c))
    return int((counts >= min_fraction * len(p)).sum())


def high_quality_fraction(points, centers, *, radius: float = 0.25) -> float:
    """Fraction of the points within ``radius`` of some mode (sample quality), in [0, 1].

    The same radius as :func:`modes_covered`; the pair is the 2-D version of the image
    metrics' fidelity (this) and diversity (modes). Empty ``points`` give 0.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        return 0.0
    d = np.linalg.norm(p[:, None, :] - c[None, :, :], axis=2)
    return float((d.min(axis=1) <= radius).mean())


# ----------------------------------------------------------------------------- models
def mlp(*, n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class PlaygroundConfig:
    """One playground experiment (defaults: a stable WGAN-GP on the ring)."""

    data: str = "ring"           # "ring", "spiral" or "moons"
    loss: str = "wgan-gp"        # "ns", "wgan-clip" or "wgan-gp" (course_lib.gan losses)
    optimizer: str = "adam"      # "adam" (betas below) or "rmsprop" (WGAN with clipping:
                                 # Arjovsky et al. 2017 found momentum unstable with clipping)
    lr_g: float = 2e-3           # learning rate of the generator
    lr_d: float = 2e-3           # learning rate of the discriminator / critic
    d_steps: int = 2             # discriminator steps per generator step
    width: int = 64              # hidden units per layer, both players
    depth: int = 3               # hidden layers, both players
    z_dim: int = 2               # noise dimension
    batch_size: int = 128        # points per step
    g_steps: int = 600           # generator steps (each after d_steps critic steps)
    snapshots: int = 8           # frames kept for the plots (evenly spaced, last = final)
    eval_points: int = 2000      # generated points per snapshot
    grid: int = 64               # critic surface resolution (grid x grid)
    extent: float = 3.0          # plot window [-extent, extent]^2
    gp_weight: float = 0.1       # lambda; 0.1 suits 2-D toy data (the WGAN-GP code's toy setting)
    clip: float = 0.01           # weight clipping bound for "wgan-clip"
    beta1: float = 0.5           # Adam beta1 (unused by RMSProp)
    beta2: float = 0.9           # Adam beta2 (unused by RMSProp)
    seed: int = 0                # seeds weights, data and noise

    def __post_init__(self) -> None:
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {DATASETS}, got {self.data!r}")
        if self.loss not in gan.LOSSES:
            raise ValueError(f"loss must be one of {gan.LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.g_steps < 1 or self.d_steps < 1 or self.snapshots < 1:
            raise ValueError("g_steps, d_steps and snapshots must be >= 1")

    @classmethod
    def for_profile(cls, name: str | None = None, **overrides) -> PlaygroundConfig:
        """smoke: a few steps; cpu and gpu: the full (seconds-long) run."""
        return replace(choose(smoke=cls(g_steps=20, snapshots=4, eval_points=500, grid=32),
                              cpu=cls(), gpu=cls(), profile=name), **overrides)


# Documented settings, each checked in tests/test_playground.py.
# "collapse": a discriminator learning 50 times faster than the generator (the two learning
# rates below); every generator step follows the gradient towards the one region D rates best
# right now, all z go there, and the run ends on one or two modes with most points sharp (the
# pair chosen by a search over both learning rates). The opposite (G 10 times faster than D)
# diverges instead: no mode, hardly a point on the ring.
PRESETS: dict[str, dict] = {
    "collapse": dict(loss="ns", lr_g=2e-4, lr_d=1e-2, d_steps=1),
    "ns": dict(loss="ns", lr_g=2e-3, lr_d=2e-3, d_steps=1),
    "wgan-gp": dict(loss="wgan-gp", lr_g=2e-3, lr_d=2e-3, d_steps=2),
    # WGAN as Arjovsky et al. 2017 (Algorithm 1) run it: RMSProp, lr 5e-5, 5 critic steps
    # per generator step, weights clipped to [-0.01, 0.01]. On the ring it does not get far
    # (nor with larger RMSProp learning rates, a looser clip or Adam): clipping confines the
    # critic to overly simple functions, the failure that motivated the gradient penalty
    # (Gulrajani et al. 2017, section 3).
    "wgan-clip": dict(loss="wgan-clip", optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, d_steps=5, clip=0.01),
}


@dataclass
class Snapshot:
    step: int                    # generator steps done
    points: np.ndarray           # (eval_points, 2) generated points
    surface: np.ndarray          # (grid, grid) D(x): probability for "ns", score for WGAN
    modes: int                   # modes_covered(points, ring centres) (ring data only, else -1)
    high_quality_fraction: float  # share of points on a mode (ring data only, else NaN)


@dataclass
class PlaygroundRun:
    config: PlaygroundConfig
    real: np.ndarray                                   # (eval_points, 2) real points
    snapshots: list[Snapshot] = field(default_factory=list)
    history: History = field(default_factory=History)   # d_loss, g_loss per generator step
    seconds: float = 0.0                               # wall time of the training

    @property
    def final(self) -> Snapshot:
        return self.snapshots[-1]


# ----------------------------------------------------------------------------- training
def _surface(discriminator: nn.Module, config: PlaygroundConfig) -> np.ndarray:
    axis = torch.linspace(-config.extent, config.extent, config.grid)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xx.flatten(), yy.flatten()], dim=1)                # (grid^2, 2)
    with torch.no_grad():
        out = discriminator(grid).flatten()
        out = torch.sigmoid(out) if config.loss == "ns" else out
    return out.reshape(config.grid, config.grid).numpy()


def run_playground(config: PlaygroundConfig) -> PlaygroundRun:
    """Train a 2-D GAN; return snapshots of points and critic surface over training.

    Runs on one CPU thread: for MLPs this small, a second thread costs more than it saves.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(config)
    finally:
        torch.set_num_threads(threads)


def _optimizer(net: nn.Module, lr: float, config: PlaygroundConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":  # WGAN, Arjovsky et al. 2017, Algorithm 1 (alpha = lr)
        return torch.optim.RMSprop(net.parameters(), lr=lr)
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(config.beta1, config.beta2))


def _train(config: PlaygroundConfig) -> PlaygroundRun:
    torch.manual_seed(config.seed)
    generator = mlp(n_in=config.z_dim, n_out=2, width=config.width, depth=config.depth)
    discriminator = nn.Sequential(mlp(n_in=2, n_out=1, width=config.width, depth=config.depth),
                                  nn.Flatten(0))                           # (B,) logits / scores
    opt_g, opt_d = (_optimizer(net, lr, config) for net, lr in ((generator, config.lr_g),
                                                                 (discriminator, config.lr_d)))
    rng = torch.Generator().manual_seed(config.seed)
    eval_z = torch.randn(config.eval_points, config.z_dim, generator=rng)
    real_eval = sample_data(config.data, config.eval_points, generator=rng).numpy()
    centers = ring_centers() if config.data == "ring" else None
    keep = set(np.linspace(0, config.g_steps, config.snapshots + 1).round().astype(int).tolist()[1:])
    run = PlaygroundRun(config=config, real=real_eval)

    def snapshot(step: int, _history=None) -> None:
        if step and step not in keep:
            return
        with torch.no_grad():
            pts = generator(eval_z).numpy()
        modes = modes_covered(pts, centers) if centers is not None else -1
        quality = high_quality_fraction(pts, centers) if centers is not None else float("nan")
        run.snapshots.append(Snapshot(step, pts, _surface(discriminator, config), modes, quality))

    def step_fn(_) -> dict[str, torch.Tensor]:
        """One generator step after ``d_steps`` critic steps: chapter 03's update_d / update_g,
        on points drawn here (the data is a distribution, not a data set)."""
        B = config.batch_size
        for _ in range(config.d_steps):                                    # (1) critic / discriminator
            real = sample_data(config.data, B, generator=rng)
            logs = gan.update_d(generator=generator, discriminator=discriminator, optimizer=opt_d,
                                real=real, z=torch.randn(B, config.z_dim, generator=rng), config=config)
        logs.update(gan.update_g(generator=generator, discriminator=discriminator, optimizer=opt_g,   # (2)
                                 z=torch.randn(B, config.z_dim, generator=rng), config=config))
        return {"d_loss": logs["d_loss"], "g_loss": logs["g_loss"]}

    start = time.perf_counter()
    snapshot(0)
    history = train_loop(step_fn, itertools.repeat(None), budget=Budget(steps=config.g_steps),
                         progress=False, callbacks=[(1, snapshot)], desc="playground",
                         plan=runtime("cpu", amp="off", channels_last=False, compile=False))
    run.history = history
    run.seconds = time.perf_counter() - start
    return run


class SeedCoverage(NamedTuple):
    seed: int
    modes: int                    # final modes covered, out of 8
    high_quality_fraction: float  # final share of points on a mode


def coverage_over_seeds(config: PlaygroundConfig, seeds=(0, 1, 2)) -> list[SeedCoverage]:
    """Final modes covered and high-quality fraction per seed: is a setting reproducible?"""
    finals = [(s, run_playground(replace(config, seed=s, snapshots=1)).final) for s in seeds]
    return [SeedCoverage(s, f.modes, f.high_quality_fraction) for s, f in finals]


# ----------------------------------------------------------------------------- plots
def _draw(ax, run: PlaygroundRun, snap: Snapshot, *, title: str | None = None) -> None:
    e = run.config.extent
    ax.imshow(snap.surface, origin="lower", extent=(-e, e, -e, e), cmap="coolwarm", alpha=0.8)
    ax.scatter(run.real[:, 0], run.real[:, 1], s=1, c="black", alpha=0.3, label="real")
    ax.scatter(snap.points[:, 0], snap.points[:, 1], s=1, c="gold", alpha=0.6, label="generated")
    ax.set_xlim(-e, e)
    ax.set_ylim(-e, e)
    ax.set_xticks([])
    ax.set_yticks([])
    modes = f"\n{snap.modes}/8 modes, {snap.high_quality_fraction:.0%} on a mode" if snap.modes >= 0 else ""
    ax.set_title(title or f"step {snap.step}{modes}", fontsize=9)


def plot_snapshots(run: PlaygroundRun, *, max_frames: int = 5, axes=None, label: str | None = None):
    """A frame strip: generated (gold) vs real (black) over the D surface (red = 'real')."""
    import matplotlib.pyplot as plt
    idx = np.linspace(0, len(run.snapshots) - 1, min(max_frames, len(run.snapshots))).round().astype(int)
    if axes is None:
        fig, axes = plt.subplots(1, len(idx), figsize=(2.2 * len(idx), 2.4), squeeze=False)
        axes = axes[0]
    for ax, i in zip(axes, idx):
        _draw(ax, run, run.snapshots[i])
    if label:
        axes[0].set_ylabel(label, fontsize=9)
    return axes[0].figure


def animate(run: PlaygroundRun, *, interval: int = 400):
    """A matplotlib FuncAnimation over the snapshots; ``.to_jshtml()`` for a static page."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    fig, ax = plt.subplots(figsize=(3.5, 3.5))

    def frame(i):
        ax.clear()
        _draw(ax, run, run.snapshots[i])

    anim = FuncAnimation(fig, frame, frames=len(run.snapshots), interval=interval)
    plt.close(fig)
    return anim


def playground_ui(config: PlaygroundConfig | None = None):
    """ipywidgets controls that retrain and redraw on "Train"; returns the widget box."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display
    c = config or PlaygroundConfig()
    data = w.Dropdown(options=DATASETS, value=c.data, description="data")
    loss = w.Dropdown(options=gan.LOSSES, value=c.loss, description="loss")
    optimizer = w.Dropdown(options=OPTIMIZERS, value=c.optimizer, description="optimizer")
    lr_g = w.FloatLogSlider(value=c.lr_g, base=10, min=-5, max=-1.5, description="lr G")
    lr_d = w.FloatLogSlider(value=c.lr_d, base=10, min=-5, max=-1.5, description="lr D")
    d_steps = w.IntSlider(value=c.d_steps, min=1, max=10, description="D steps/G")
    width = w.IntSlider(value=c.width, min=8, max=256, step=8, description="width")
    g_steps = w.IntSlider(value=c.g_steps, min=100, max=3000, step=100, description="G steps")
    seed = w.IntText(value=c.seed, description="seed")
    button = w.Button(description="Train", button_style="primary")
    out = w.Output()

    def on_click(_):
        cfg = replace(c, data=data.value, loss=loss.value, optimizer=optimizer.value, lr_g=lr_g.value, lr_d=lr_d.value,
                      d_steps=d_steps.value, width=width.value, g_steps=g_steps.value, seed=seed.value)
        with out:
            out.clear_output(wait=True)
            print("training ...")
            run = run_playground(cfg)
            out.clear_output(wait=True)
            final = run.final
            print(f"{run.seconds:.1f} s" + (f", {final.modes}/8 modes covered, {final.high_quality_fraction:.0%} "
                                            f"of the points on a mode" if final.modes >= 0 else ""))
            fig = plot_snapshots(run)
            display(fig)
            plt.close(fig)

    button.on_click(on_click)
    controls = w.VBox([w.HBox([data, loss, optimizer]), w.HBox([lr_g, lr_d]), w.HBox([d_steps, width]),
                       w.HBox([g_steps, seed]), button])
    return w.VBox([controls, out])
