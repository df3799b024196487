"""Flow matching: rectified flow on chapter 08's U-Net.

Conditional flow matching (Lipman et al. 2022) with the straight path of rectified flow
(Liu et al. 2022): draw noise ``x_0 ~ N(0, I)``, a training image ``x_1`` and a time
``t`` in [0, 1], and put the point on the straight line between them,

    x_t = (1 - t) x_0 + t x_1,                      (the interpolant)

whose velocity ``dx_t/dt = x_1 - x_0`` does not depend on ``t``. A network ``u_theta(x_t, t)``
regresses that velocity:

    L = E || u_theta(x_t, t) - (x_1 - x_0) ||^2.      (the flow matching loss)

The minimiser is the average velocity of all straight lines through ``x_t``, a vector field
whose ODE ``dx/dt = u(x, t)`` carries N(0, I) at ``t = 0`` to the data at ``t = 1``:
sampling integrates it, with Euler or Heun steps.

Relation to v-prediction (chapter 08): on the path ``x = alpha x_1 + sigma x_0`` with
``alpha = cos(phi)``, ``sigma = sin(phi)``, the velocity ``dx/dphi = -(sin(phi) x_1 - cos(phi) x_0)``
is ``v`` up to sign (Salimans & Ho 2022). v-prediction is flow matching on the quarter-circle
path; rectified flow takes the straight one (the chord), so the same U-Net, loss and cost per
step, with a target that is the same at every ``t`` along a pair's path.

Time convention: t = 0 is noise, t = 1 is data (Lipman et al.; MIT 6.S184). The U-Net embeds
``1000 t``, the scale of chapter 08's step indices.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import read_reference
from .diffusion import DDPMConfig, fit_denoiser
from .diffusion_process import to_image_range, to_model_range
from .diffusion_unet import NULL_LABEL, AveragedNet, ConditionalUNet, TimeUNet
from .faceattributes import ATTRIBUTE_NAMES, ATTRIBUTES
from .facedraw import RENDER_VERSION
from .inputs import check_value, validate_fields
from .loop import Budget
from .results import RESULTS_DIR
from .runtime import Runtime, backward_step, local_share, world_size
from .toyfaces import ToyFaces
from .trainer import Recipe

TIME_SCALE = 1000.0                         # the U-Net sees 1000 t (chapter 08's step scale)
TIME_SAMPLING = ("uniform", "logit_normal")
SAMPLERS = ("euler", "heun", "heun_euler_last")  # integrate's methods: NFE steps, 2 steps, 2 steps - 1


# --------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------
def interpolant(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path ``x_t = (1 - t) x0 + t x1``. ``x0`` noise, ``x1`` data, both
    ``(B, C, H, W)``; ``t`` ``(B,)`` in [0, 1]. Returns ``(B, C, H, W)``."""
    t = t.reshape(-1, *([1] * (x1.dim() - 1)))
    return (1 - t) * x0 + t * x1


def velocity_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The path's velocity ``d x_t / dt = x1 - x0`` (the same at every ``t``)."""
    return x1 - x0


def sample_times(n: int, *, kind: str = "uniform", generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` training times in (0, 1): ``"uniform"``, or ``"logit_normal"``: ``sigmoid(N(0, 1))``,
    which spends more steps in the middle of the path, where the velocity is hardest to
    predict (Esser et al. 2024, SD3, section 3.1)."""
    check_value(n, "int >= 1", "sample_times: n")
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    raise ValueError(f"kind must be one of {TIME_SAMPLING}, got {kind!r}")


def flow_loss(net: nn.Module, x1: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The flow matching loss: mean squared error between ``net(x_t, 1000 t)`` and ``x1 - x0``.
    ``x1`` data in model range [-1, 1], ``x0`` noise, both ``(B, 3, H, W)``; ``t`` ``(B,)``."""
    x_t = interpolant(x0, x1, t)
    return F.mse_loss(net(x_t, t * TIME_SCALE), velocity_target(x0, x1))


# --------------------------------------------------------------------------------------
# The model and its samplers
# --------------------------------------------------------------------------------------
class FlowModel(AveragedNet):
    """A velocity network ``u_theta(x, t)`` and its moving average (:class:`AveragedNet`).
    Calling it returns the EMA network's velocity: ``x`` ``(B, 3, S, S)`` in model range,
    ``t`` ``(B,)`` in [0, 1] (0 = noise) -> ``(B, 3, S, S)``. A model conditioned on
    attributes (``net`` a :class:`~course_lib.diffusion_unet.ConditionalUNet`) also takes
    ``labels`` ``(B, K)`` (:data:`NULL_LABEL` where an attribute is not given)."""

    def __init__(self, *, net: nn.Module, image_size: int, ema_decay: float = 0.999, channels: int = 3):
        super().__init__(net=net, image_size=image_size, ema_decay=ema_decay)
        self.channels = channels               # 3 for images; a latent model's latent channels

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.ema(x, t * TIME_SCALE) if labels is None else self.ema(x, t * TIME_SCALE, labels)


def euler_step(velocity, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
    """One Euler step of ``dx/dt = velocity(x, t)``: ``x + dt * velocity(x, t)``.
    ``velocity`` maps ``(x (B, ...), t (B,))`` to a tensor like ``x``."""
    return x + dt * velocity(x, torch.full((x.shape[0],), t, device=x.device))


def heun_step(velocity, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
    """One Heun step (the trapezoidal rule; Karras et al. 2022, Algorithm 1): an Euler guess,
    then the average of the velocities at both ends. Two velocity calls."""
    v0 = velocity(x, torch.full((x.shape[0],), t, device=x.device))
    guess = x + dt * v0
    v1 = velocity(guess, torch.full((x.shape[0],), t + dt, device=x.device))
    return x + dt * (v0 + v1) / 2


def integrate(velocity, x: torch.Tensor, *, steps: int, method: str = "euler",
              t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t0`` to ``t1`` in ``steps`` equal steps.
    ``method``: ``"euler"`` (``steps`` calls), ``"heun"`` (``2 steps`` calls) or
    ``"heun_euler_last"``: Heun steps, the last one Euler (``2 steps - 1`` calls), as Karras et
    al.'s Algorithm 1 ends, where the corrector would call the network at the clean end of the
    path, a time the logit-normal training rarely draws. Works on any shape: images here, 2-D
    points on the playground's ring."""
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {SAMPLERS}, got {method!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    dt = (t1 - t0) / steps
    for i in range(steps):
        last = i == steps - 1
        step = euler_step if method == "euler" or (last and method == "heun_euler_last") else heun_step
        x = step(velocity, x, t0 + i * dt, dt)
    return x


def nfe(method: str, steps: int) -> int:
    """Network calls of :func:`integrate` with ``method`` and ``steps``."""
    return {"euler": steps, "heun": 2 * steps, "heun_euler_last": 2 * steps - 1}[method]


@torch.no_grad()
def sample_flow(model: FlowModel, n: int, *, steps: int = 25, method: str = "euler", seed: int = 0,
                batch_size: int = 256, velocity=None, to_output=to_image_range) -> torch.Tensor:
    """``n`` images: ``x ~ N(0, I)`` at t = 0 (seeded as chapter 08's samplers are), then
    :func:`integrate` the EMA velocity to t = 1 (or ``velocity(x, t)`` when given, e.g. a
    guided one: :func:`course_lib.guidance.sample_guided`). Returns ``(n, 3, S, S)`` in
    [0, 1] on the CPU. Model calls (NFE): ``steps`` for Euler, ``2 steps`` for Heun (one fewer
    with ``"heun_euler_last"``).
    ``to_output``: model range -> output (a latent model passes its own: latents are not clamped)."""
    model.eval()
    device = next(model.parameters()).device
    size, out = model.image_size, []
    for first in range(0, n, batch_size):
        g = torch.Generator().manual_seed(seed + first)
        x = torch.randn((min(batch_size, n - first), model.channels, size, size), generator=g).to(device)
        out.append(to_output(integrate(velocity or model, x, steps=steps, method=method)).cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def flow_step(model: FlowModel, optimizer: torch.optim.Optimizer, batch, generator: torch.Generator, *,
              net: nn.Module | None = None, time_sampling: str = "uniform", flip: bool = False,
              p_uncond: float = 0.0, to_model=to_model_range, aux=None) -> dict[str, torch.Tensor]:
    """One flow matching step: draw ``t`` and ``x0 ~ N(0, I)`` (and, with ``flip``, which
    images to mirror: ToyFaces are left-right symmetric, so a mirrored face is another
    face), take a gradient step on :func:`flow_loss`, update the EMA. ``batch``: uint8 or
    [0, 1] images ``(B, 3, H, W)``, or ``(images, labels (B, K))`` for a model conditioned on
    attributes, whose labels are all dropped (set to :data:`NULL_LABEL`) for a random
    ``p_uncond`` share of the images, so one network learns the conditional and the
    unconditional velocity (Ho & Salimans 2022). Randomness is drawn from ``generator`` for
    the global batch, this rank's share kept (as :func:`course_lib.diffusion.ddpm_step`).
    ``to_model``: batch -> model range (a latent model's batches are latents already).
    ``aux(x1) -> scalar``: an extra loss, called after the forward pass with the (mirrored)
    clean batch (chapter 12's representation alignment: :func:`course_lib.ssl_flow.help_term`).
    Returns ``{"loss"}`` (the flow matching loss; ``"aux"`` too with ``aux``), detached."""
    if isinstance(batch, (tuple, list)):
        x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
    else:
        x, labels = batch, None
    x1 = to_model(x)
    n = x1.shape[0] * world_size()
    t = local_share(sample_times(n, kind=time_sampling, generator=generator)).to(x1.device)
    x0 = local_share(torch.randn((n, *x1.shape[1:]), generator=generator)).to(x1.device)
    if flip:
        mirror = local_share(torch.rand(n, generator=generator) < 0.5).to(x1.device)
        x1 = torch.where(mirror[:, None, None, None], x1.flip(-1), x1)
    call = net or model.net
    if labels is not None:
        drop = local_share(torch.rand(n, generator=generator) < p_uncond).to(x1.device)
        labels = torch.where(drop[:, None], NULL_LABEL, labels.to(x1.device))
        conditional, call = call, lambda x_t, s: conditional(x_t, s, labels)
    model.train()
    loss = flow_loss(call, x1, t, x0)
    out = {"loss": loss.detach()}
    if aux is not None:
        extra = aux(x1)
        out["aux"] = extra.detach()
        loss = loss + extra
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    model.update_ema()
    return out


@dataclass(frozen=True)
class FlowConfig:
    image_size: int = 32                          # square images (multiple of 8)
    channels: int = 3                             # 3 for images; a latent model's latent channels
    stem: int = 16                                # the U-Net: chapter 08's (TimeUNet), same sizes
    widths: tuple[int, int, int] = (32, 64, 128)  # backbone stage widths (H/2, H/4, H/8)
    decoder_widths: tuple[int, int, int] = (64, 32, 16)  # decoder stage widths (H/4, H/2, H)
    time_dim: int = 128                           # size of the time embedding
    time_sampling: str = "logit_normal"           # training times: "uniform" or "logit_normal" (SD3; flow_study)
    flip: bool = False                            # mirror half the faces (they are symmetric)
    lr: float = 1e-3                              # Adam learning rate (after warm-up)
    warmup: int = 100                             # linear learning-rate warm-up steps
    ema_decay: float = 0.9995                     # the EMA's longest horizon (warmed up: AveragedNet)
    batch_size: int = 32                          # images per step
    steps: int = 2000                             # optimisation steps (cpu: chapter 08's live budget)
    train_size: int = 6000                        # ToyFaces training images
    seed: int = 0                                 # init, data order, t, noise and flips
    condition: tuple[str, ...] = ()               # ToyFaces attributes the model is told (guidance); () = none
    p_uncond: float = 0.2                         # with a condition: share of images trained without it
    data_version: int = RENDER_VERSION            # ToyFaces drawing version: a new one retrains cached models

    def __post_init__(self):
        if not isinstance(self.condition, tuple):  # a bare string would be read letter by letter
            raise TypeError(f"FlowConfig.condition must be a tuple of attribute names, got {self.condition!r}"
                            + (f"; write ({self.condition!r},)" if isinstance(self.condition, str) else ""))
        validate_fields(self, {
            "image_size": "int >= 8", "channels": "int >= 1", "stem": "int >= 1", "widths": "int >= 1",
            "decoder_widths": "int >= 1",
            "time_dim": "int >= 2", "lr": "float > 0", "warmup": "int >= 0", "ema_decay": "float in [0, 1)",
            "batch_size": "int >= 1", "steps": "int >= 1", "train_size": "int >= 1", "seed": "seed",
            "data_version": "int >= 0", "flip": "bool"})
        if self.time_sampling not in TIME_SAMPLING:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLING}, got {self.time_sampling!r}")
        unknown = [a for a in self.condition if a not in ATTRIBUTE_NAMES]
        if unknown:
            raise ValueError(f"condition names unknown attributes {unknown}; ToyFaces has {ATTRIBUTE_NAMES}")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")

    def condition_index(self) -> list[int]:
        """The columns of ``ToyFaces.labels`` the model is conditioned on."""
        return [ATTRIBUTE_NAMES.index(a) for a in self.condition]

    @classmethod
    def for_profile(cls, name: str | None = None) -> FlowConfig:
        """Chapter 08's U-Net, optimiser and budget at each profile (:class:`DDPMConfig`'s
        fields of the same name): smoke 16x16 in seconds, cpu 32x32, gpu 64x64 and wider."""
        ddpm = DDPMConfig.for_profile(name)
        return cls(**{f.name: getattr(ddpm, f.name) for f in dataclasses.fields(cls) if hasattr(ddpm, f.name)})

    def build(self) -> FlowModel:
        net = TimeUNet(stem=self.stem, widths=self.widths, decoder_widths=self.decoder_widths,
                       time_dim=self.time_dim, channels=self.channels)
        if self.condition:
            net = ConditionalUNet(unet=net, num_classes=tuple(ATTRIBUTES[i].num_classes
                                                              for i in self.condition_index()))
        return FlowModel(net=net, image_size=self.image_size, ema_decay=self.ema_decay, channels=self.channels)


def train_flow(model: FlowModel, config: FlowConfig, *, images: torch.Tensor | None = None,
               progress: bool | str = "auto", plan: Runtime | None = None,
               checkpoint: str | os.PathLike | None = None, callbacks=(), budget: Budget | None = None):
    """Train ``model`` in place with Adam for ``config.steps`` flow matching steps; returns the
    :class:`~course_lib.loop.History`. Arguments as :func:`course_lib.diffusion.train_ddpm`,
    whose set-up it shares (:func:`course_lib.diffusion.fit_denoiser`)."""
    labels = None
    if config.condition:
        data = ToyFaces(split="train", size=config.train_size, image_size=config.image_size)
        images = data.images if images is None else images
        labels = data.labels[:, config.condition_index()]                  # (N, K) int64
    step_fn = functools.partial(flow_step, time_sampling=config.time_sampling, flip=config.flip,
                                p_uncond=config.p_uncond)
    return fit_denoiser(model, config, step_fn, desc=f"flow matching ({config.time_sampling} t)", images=images,
                        labels=labels, progress=progress, plan=plan, checkpoint=checkpoint, callbacks=callbacks,
                        budget=budget)


REFERENCE_PATH = RESULTS_DIR / "flow_reference.pt"  # package data: pip install carries it (Colab)


def reference_config() -> FlowConfig:
    """The reference model's configuration (``experiments/flow_reference.py``): the ``cpu``
    profile's, trained for longer (only ``steps`` differs, as chapter 08's DDPM reference)."""
    return FlowConfig.for_profile("cpu")


def reference_flow(path: str | os.PathLike = REFERENCE_PATH) -> FlowModel:
    """The committed reference flow model, EMA weights in eval mode on the CPU, ``.steps`` set.
    Refuses (:func:`course_lib.artifacts.read_reference`) a file written for another
    configuration or ToyFaces drawing, a Git LFS pointer, a truncated or foreign file."""
    payload = read_reference(path, config=reference_config(), data_version=RENDER_VERSION,
                             key="ema", what="flow reference",
                             rebuild="python experiments/flow_reference.py --steps 12000, then --export 12000")
    model = reference_config().build()
    model.ema.load_state_dict(payload["ema"])
    model.net.load_state_dict(payload["ema"])
    model.steps = payload["steps"]
    return model.eval()


RECIPES = {"flow": Recipe(cache_name="flow", config=FlowConfig.for_profile, build=FlowConfig.build, train=train_flow)}


def pretrained_flow(config: FlowConfig | None = None, *, progress: bool | str = "auto", retrain: bool = False):
    """The flow model for ``config`` (default ``FlowConfig.for_profile()``), trained once and
    cached as ``flow``. Returns a :class:`~course_lib.checkpoint.Trained` (``.model`` in eval mode)."""
    return RECIPES["flow"].pretrained(config, progress=progress, retrain=retrain)


__all__ = [
    "TIME_SCALE", "TIME_SAMPLING", "NULL_LABEL", "SAMPLERS", "interpolant", "velocity_target", "sample_times",
    "flow_loss",
    "FlowModel", "euler_step", "heun_step", "integrate", "nfe", "sample_flow", "flow_step", "FlowConfig",
    "train_flow", "REFERENCE_PATH", "reference_config", "reference_flow", "RECIPES", "pretrained_flow",
]
