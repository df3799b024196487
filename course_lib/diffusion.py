"""Denoising diffusion (chapter 08): training the model, the chapter's profiles, the
committed reference model, and one import for the whole chapter.

The chapter imports this module only (``from course_lib import diffusion``); the pieces live
in three modules that read top to bottom, and their public names are re-exported here:

- :mod:`course_lib.diffusion_process`: schedules (linear, cosine), SNR, respacing, where
  sampling starts, the forward process ``q_sample`` and the noise-prediction loss;
- :mod:`course_lib.diffusion_unet`: the time-conditioned U-Net and the EMA wrapper ``DDPM``;
- :mod:`course_lib.diffusion_sampling`: one reverse step, ancestral DDPM, DDIM, RePaint.

This module adds Algorithm 1 of Ho et al. 2020 as a step function for the course's training
loop, the config dataclass with its profiles, the cached live model and the committed
reference weights (``experiments/ddpm_reference.py``). The model is sampled through its
exponential moving average (Ho et al. use 0.9999); its decay is warmed up, so that the same
config serves a live run of two thousand steps and a reference run of twelve thousand.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch
from torch import nn

from .artifacts import read_reference
from .diffusion_process import (
    PREDICTIONS,
    SCHEDULES,
    START_SNR,
    Schedule,
    cosine_schedule,
    ddim_timesteps,
    diffusion_loss,
    linear_schedule,
    make_schedule,
    q_sample,
    respace,
    sampling_start,
    to_image_range,
    to_model_range,
    v_target,
    v_to_eps,
)
from .diffusion_sampling import p_sample, repaint, reverse_step, sample_ddim, sample_ddpm, start_for
from .diffusion_unet import DDPM, ResBlock, TimeUNet, timestep_embedding
from .facedraw import RENDER_VERSION
from .inputs import validate_fields
from .loop import Budget, Step
from .profiles import choose
from .results import RESULTS_DIR
from .runtime import Runtime, backward_step, local_share, world_size
from .trainer import Recipe, fit

__all__ = [
    # diffusion_process
    "SCHEDULES", "START_SNR", "Schedule", "linear_schedule", "cosine_schedule", "make_schedule", "respace",
    "ddim_timesteps", "sampling_start", "to_model_range", "to_image_range", "q_sample",
    "diffusion_loss", "PREDICTIONS", "v_target", "v_to_eps",
    # diffusion_unet
    "timestep_embedding", "ResBlock", "TimeUNet", "DDPM",
    # diffusion_sampling
    "reverse_step", "p_sample", "sample_ddpm", "sample_ddim", "repaint", "start_for",
    # this module
    "ddpm_step", "MIN_SNR", "DDPMConfig", "train_ddpm", "fit_denoiser", "RECIPES", "pretrained_ddpm", "REFERENCE_PATH",
    "reference_config", "reference_ddpm",
]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def ddpm_step(model: DDPM, optimizer: torch.optim.Optimizer, batch, generator: torch.Generator, *,
              net: nn.Module | None = None, min_snr: float | None = None) -> dict[str, torch.Tensor]:
    """One step of Algorithm 1: draw ``t`` uniformly and ``eps ~ N(0, I)``, take a gradient
    step on :func:`diffusion_loss`, update the EMA. ``batch``: uint8 or [0, 1] images
    ``(B, 3, H, W)`` (or a tuple whose first item they are). ``net``: the module to call
    (the runtime plan's wrapper of ``model.net``; default ``model.net``). ``t`` and the
    noise are drawn from ``generator`` for the global batch, this rank's share kept, so a
    resumed or distributed run draws what one uninterrupted process would. ``min_snr``:
    :func:`diffusion_loss`'s Min-SNR weighting (None: the plain loss). Returns
    ``{"loss"}`` as a detached 0-d tensor."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    x0 = to_model_range(x)
    n = x0.shape[0] * world_size()
    t = local_share(torch.randint(model.schedule.T, (n,), generator=generator)).to(x0.device)
    noise = local_share(torch.randn((n, *x0.shape[1:]), generator=generator)).to(x0.device)
    model.train()
    loss = diffusion_loss(net or model.net, x0, t, noise, model.schedule, prediction=model.prediction,
                          min_snr=min_snr)
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    model.update_ema()
    return {"loss": loss.detach()}


MIN_SNR = 5.0  # the profiles' Min-SNR gamma: Hang et al.'s default, flow_study's winning arm


@dataclass(frozen=True)
class DDPMConfig:
    image_size: int = 32                          # square images (multiple of 8)
    schedule: str = "cosine"                      # "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal)
    T: int = 1000                                 # diffusion steps
    stem: int = 16                                # channels of the full-resolution stem
    widths: tuple[int, int, int] = (32, 64, 128)  # backbone stage widths (H/2, H/4, H/8): the article's
    decoder_widths: tuple[int, int, int] = (64, 32, 16)  # decoder stage widths (H/4, H/2, H): chapter 04's
    time_dim: int = 128                           # size of the time embedding
    prediction: str = "v"                         # the network predicts "v" (Salimans & Ho 2022) or "eps" (Ho et al.)
    min_snr: float | None = None                  # Min-SNR-gamma loss weight (Hang et al. 2023); None: plain loss
    lr: float = 1e-3                              # Adam learning rate (after warm-up)
    warmup: int = 100                             # linear learning-rate warm-up steps
    ema_decay: float = 0.9995                     # the EMA's longest horizon (warmed up: DDPM.update_ema)
    batch_size: int = 32                          # images per step (small: more updates per CPU second)
    steps: int = 2000                             # optimisation steps
    train_size: int = 6000                        # ToyFaces training images
    seed: int = 0                                 # init, data order, t and noise
    data_version: int = RENDER_VERSION            # ToyFaces drawing version: a new one retrains cached models

    def __post_init__(self) -> None:
        validate_fields(self, {
            "schedule": SCHEDULES, "T": "int >= 2", "prediction": PREDICTIONS,
            "image_size": "int >= 8", "stem": "int >= 1", "widths": "int >= 1", "decoder_widths": "int >= 1",
            "time_dim": "int >= 2", "lr": "float > 0", "warmup": "int >= 0", "ema_decay": "float in [0, 1)",
            "batch_size": "int >= 1", "steps": "int >= 1", "train_size": "int >= 1", "seed": "seed",
            "data_version": "int >= 0"})
        if self.min_snr is not None:
            validate_fields(self, {"min_snr": "float > 0"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> DDPMConfig:
        """smoke: 16x16, seconds; cpu: 32x32, 2000 steps, so that the chapter fits in 6
        minutes (``bench/chapter_times.py`` measures it); what more steps buy is in
        ``course_lib/results_data/ddpm_reference_steps.json`` (``experiments/ddpm_reference.py``
        trains on); gpu: 64x64, wider, longer. Every profile weights the loss with Min-SNR-5:
        at the live budget it beat the plain loss in all three seeds of
        ``course_lib/results_data/flow_study.json`` (arms ``ddpm_v_minsnr5`` and ``ddpm_v``)."""
        return choose(
            smoke=cls(image_size=16, T=100, stem=8, widths=(16, 16, 16), decoder_widths=(16, 16, 16),
                      time_dim=32, steps=20, warmup=5, train_size=128, batch_size=16, min_snr=MIN_SNR),
            cpu=cls(min_snr=MIN_SNR),
            gpu=cls(image_size=64, stem=64, widths=(128, 192, 256), decoder_widths=(256, 192, 128),
                    time_dim=256, lr=2e-4, steps=40000, train_size=30000, batch_size=128, min_snr=MIN_SNR),
            profile=name,
        )

    def build(self) -> DDPM:
        net = TimeUNet(stem=self.stem, widths=self.widths, decoder_widths=self.decoder_widths,
                       time_dim=self.time_dim)
        return DDPM(net=net, schedule=make_schedule(self.schedule, self.T), image_size=self.image_size,
                    ema_decay=self.ema_decay, prediction=self.prediction)


def train_ddpm(model: DDPM, config: DDPMConfig, *, images: torch.Tensor | None = None,
               progress: bool | str = "auto", plan: Runtime | None = None,
               checkpoint: str | os.PathLike | None = None, callbacks=(), budget: Budget | None = None):
    """Train ``model`` in place with Adam for ``config.steps`` steps (Algorithm 1, the loss
    weighted by ``config.min_snr``); returns the :class:`~course_lib.loop.History`. ``images``:
    uint8 ``(N, 3, S, S)``; default the first ``config.train_size`` ToyFaces training images.
    ``plan``/``checkpoint`` as in :func:`course_lib.vae.train_vae`; ``budget`` overrides the step
    budget (e.g. seconds)."""
    step_fn = functools.partial(ddpm_step, min_snr=config.min_snr)
    return fit_denoiser(model, config, step_fn, desc=f"DDPM {config.schedule} T={config.T}", images=images,
                        progress=progress, plan=plan, checkpoint=checkpoint, callbacks=callbacks, budget=budget)


def fit_denoiser(model, config, step_fn, *, desc: str, images: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, progress: bool | str = "auto", plan: Runtime | None = None,
                 checkpoint: str | os.PathLike | None = None, callbacks=(), budget: Budget | None = None,
                 unit_range: bool = True):
    """The set-up chapter 08's DDPM and the flow models share: Adam with a linear warm-up and
    a seeded generator for the step's randomness, trained by :func:`course_lib.trainer.fit`
    (the ToyFaces loader, checkpoints ten times a run).
    ``step_fn(model, optimizer, batch, generator, *, net)`` is one update
    (:func:`ddpm_step`, :func:`course_lib.flow.flow_step`); ``config`` needs ``lr``,
    ``warmup``, ``batch_size``, ``steps``, ``train_size``, ``image_size`` and ``seed``.
    ``labels`` ``(N, K)``: the batches become ``(images, labels)`` (a conditional model).
    ``unit_range=False``: ``images`` are any float data (a latent model's latents)."""
    def setup(plan):
        model.to(plan.device)
        net = plan.prepare(model.net)
        optimizer = torch.optim.Adam(model.net.parameters(), lr=config.lr)
        warm = max(config.warmup, 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
        g = torch.Generator().manual_seed(config.seed)

        def step(x):
            out = step_fn(model, optimizer, x, g, net=net)
            scheduler.step()
            return out
        return Step(step, generators=[g]), model, {"adam": optimizer, "warmup": scheduler}

    return fit(config, setup, desc=desc, images=images, labels=labels, plan=plan, progress=progress,
               checkpoint=checkpoint, callbacks=callbacks, budget=budget, unit_range=unit_range)


RECIPES = {"ddpm": Recipe(cache_name="ddpm_ch08", config=DDPMConfig.for_profile, build=DDPMConfig.build,
                          train=train_ddpm)}


def pretrained_ddpm(config: DDPMConfig | None = None, *, progress: bool | str = "auto",
                    retrain: bool = False):
    """The chapter-08 model for ``config`` (default ``DDPMConfig.for_profile()``), trained once
    and cached by :func:`course_lib.checkpoint.load_or_train` as ``ddpm_ch08``. Returns a
    :class:`~course_lib.checkpoint.Trained` (``.model`` a :class:`DDPM` in eval mode)."""
    return RECIPES["ddpm"].pretrained(config, progress=progress, retrain=retrain)


REFERENCE_PATH = RESULTS_DIR / "ddpm_reference.pt"  # package data: pip install carries it (Colab)


def reference_config(prediction: str | None = None) -> DDPMConfig:
    """The reference model's configuration: the ``cpu`` profile's, trained for longer (only
    ``steps`` differs, so the live model is the reference run stopped early). ``prediction``
    (one of ``PREDICTIONS``) gives its ablation with the other target; default: the config's."""
    config = DDPMConfig.for_profile("cpu")
    return config if prediction is None else dataclasses.replace(config, prediction=prediction)


def reference_ddpm(path: str | os.PathLike = REFERENCE_PATH) -> DDPM:
    """The committed reference model (``experiments/ddpm_reference.py``), EMA weights in
    eval mode on the CPU. Raises a ValueError naming the mismatch if the file was written
    for another configuration or another ToyFaces drawing (retrain it with the script), and a
    :class:`~course_lib.checkpoint.CheckpointError` for a Git LFS pointer, a truncated file or
    a file that is not this export."""
    payload = read_reference(path, config=reference_config(), data_version=RENDER_VERSION,
                             key="ema", what="DDPM reference",
                             rebuild="python experiments/ddpm_reference.py --steps 12000, then --export 12000")
    model = dataclasses.replace(reference_config(), steps=payload["steps"]).build()
    model.ema.load_state_dict(payload["ema"])
    model.net.load_state_dict(model.ema.state_dict())
    return model.eval()
