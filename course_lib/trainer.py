"""The trainers' shared set-up, written once, and how a trained model is kept.

Every ``train_*`` in the library is a step function plus one call of :func:`fit`. What
differs between model families is the step and the networks it updates; what does not is
written here once: the default training images, the seed, the runtime plan, the on-device
loader, checkpoints ten times a run, and the call of :func:`course_lib.loop.train`.

    def train_rotation(model, config, *, images=None, progress="auto", plan=None, ...):
        def setup(plan):
            net = plan.prepare(model)                      # on the device, DDP under torchrun
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
            return (lambda x: rotation_step(net, optimizer, x)), model, optimizer
        return fit(config, setup, desc="rotation", images=images, progress=progress, plan=plan, ...)

Four ``train_*`` do without it: ``fusion.train_variant`` builds its model after the seed
and stops early on it (it calls :func:`~course_lib.loop.train` itself),
``unsupervised.train_linear_autoencoder`` fits a data matrix in full batches,
and ``flow_toy.train_velocity_2d`` and ``rcg.train_rep_generator`` share
``flow_toy.fit_velocity``, chapter 09's plain loop on vectors, shown to the reader in full
(seconds on a CPU core, no images, no loader).

A :class:`Recipe` says how one model family is configured, built, trained and cached;
``recipe.pretrained(config)`` loads the trained model if it is cached, else trains and
caches it (:func:`course_lib.checkpoint.load_or_train`). Each model module declares its
recipes beside its trainer (``RECIPES``); :mod:`course_lib.registry` joins them into the
one table behind ``pretrained(name)`` and the command-line trainer.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from course_lib.checkpoint import Checkpoint, Trained, load_or_train
from course_lib.history import History
from course_lib.loop import Budget, Callback, StepFn, train
from course_lib.runtime import Runtime, runtime, seed_everything
from course_lib.toyfaces import ToyFaces

# setup(plan) -> (step function, the modules a checkpoint holds, the optimizers it holds)
Setup = Callable[[Runtime], tuple[StepFn, Any, Any]]


def fit(config, setup: Setup, *, desc: str, images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None, plan: Runtime | None = None, progress: bool | str = "auto",
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        callbacks: Sequence[Callback | tuple[int, Callback]] = (), budget: Budget | None = None,
        seed: int | None = None, steps: int | None = None, unit_range: bool = True) -> History:
    """Train what ``setup`` prepares on ``images`` for ``config.steps`` steps; returns the History.

    ``setup(plan)`` is the part a model family writes: it puts its networks on the plan's
    device (``plan.prepare``), makes their optimizers, and returns ``(step, models,
    optimizers)``: the step function (``step(batch) -> {"loss": ...}``, a
    :class:`~course_lib.loop.Step` when it draws from generators of its own), and the
    modules and optimizers a checkpoint saves (a module or ``{name: module}``, an optimizer
    or ``{name: optimizer}``). It runs after the seed is set, so weights it draws (a
    discriminator, a model built inside it) are the same in every run. ``callbacks`` is read
    after ``setup``: a setup may append a callback that watches what it built.

    ``config`` needs ``seed``, ``steps`` and ``batch_size`` (and, without ``images``,
    ``train_size`` and ``image_size``: the first ``train_size`` ToyFaces training faces).
    ``images``: uint8 ``(N, 3, S, S)``, or any float data with ``unit_range=False``;
    ``labels``: ``(N, ...)``, making each batch ``(images, labels)``. The batch is
    ``config.batch_size``, or all the images when there are fewer. ``plan``: the runtime
    plan (default :func:`course_lib.runtime.runtime`); ``checkpoint``: a file to save to
    every ``checkpoint_every`` steps (default a tenth of the run) and to resume from.
    ``budget`` replaces the step budget (e.g. seconds); ``seed`` and ``steps`` replace the
    config's (a trainer whose config has none, or trains longer than it says).
    """
    seed = config.seed if seed is None else seed
    steps = config.steps if steps is None else steps
    if images is None:
        images = ToyFaces(split="train", size=config.train_size, image_size=config.image_size).images
    seed_everything(seed)                          # initial weights, noise: the same run every time
    plan = plan or runtime()
    step, models, optimizers = setup(plan)
    loader = plan.loader(images, labels, batch_size=min(config.batch_size, len(images)), seed=seed,
                         unit_range=unit_range)
    every = max(steps // 10, 1)                    # progress, callbacks and checkpoints: ten a run
    ckpt = None if checkpoint is None else Checkpoint(checkpoint, models=models, optimizers=optimizers,
                                                      every=checkpoint_every or every)
    return train(step, loader, budget=budget or Budget(steps=steps), progress=progress, plan=plan,
                 checkpoint=ckpt, callbacks=callbacks, every=every, desc=desc)


@dataclass(frozen=True)
class Recipe:
    """How one model family is configured, built, trained and cached."""

    cache_name: str                          # load_or_train's name: part of the cache file's name
    config: Callable[[str | None], Any]      # profile (None: the current one) -> config dataclass
    build: Callable[[Any], Any]              # config -> untrained module (or {name: module})
    train: Callable[..., Any]                # train(model, config, *, progress=...) in place

    def pretrained(self, config=None, *, progress: bool | str = "auto", retrain: bool = False) -> Trained:
        """The model for ``config`` (default ``self.config(None)``, the current profile's),
        trained once and then loaded from the cache; ``retrain=True`` trains it again.
        Returns a :class:`~course_lib.checkpoint.Trained` whose model is in eval mode."""
        config = self.config(None) if config is None else config
        trained = load_or_train(self.cache_name, lambda model, cfg: self.train(model, cfg, progress=progress),
                                config=config, build=self.build, retrain=retrain)
        for module in trained.model.values() if isinstance(trained.model, dict) else [trained.model]:
            module.eval()
        return trained
