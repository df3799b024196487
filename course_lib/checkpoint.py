"""Checkpoints that lose nothing, and the model cache built on them.

- :func:`save_checkpoint` writes model(s), optimizer(s), the GradScaler, the step, the
  random-number states and the training history in one file, atomically
  (:func:`course_lib.atomic.atomic_write`: a crash or a Ctrl-C half-way through a write
  leaves the previous checkpoint intact, and a killed write's temporary file is deleted by the
  next save or load of that checkpoint).
- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)`` (no arbitrary
  code runs from a downloaded file) and names the file and the mismatch when something
  does not fit (missing model, wrong shapes, another optimizer class, corrupted bytes),
  saying what to do about it.
- :class:`Checkpoint` bundles what to save and how often; :func:`course_lib.loop.train`
  takes one and resumes from it. On CPU a resumed run ends with exactly the weights of
  an uninterrupted one (``tests/test_checkpoint.py`` checks it).
- :func:`load_or_train` caches trained models in the course's cache
  (:mod:`course_lib.cache`), keyed by a name and a hash of the config dataclass and the data
  version, so a chapter re-run, or a later chapter reusing a model (fusion), loads instead of
  training. The data version defaults to ToyFaces' render version: chapters call
  ``load_or_train`` without one, and every cached model is trained on ToyFaces unless said.

The atomic writes live in :mod:`course_lib.atomic`, the cache folder and the data cache in
:mod:`course_lib.cache` (their names are importable from here too, as they were before they
had modules); reference weights and result files in :mod:`course_lib.artifacts`.
"""
from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_save, atomic_write, check_writable_file, clean_orphans
from .cache import CACHE_ENV, cache_path, config_key, load_or_build, resolve_cache_dir
from .device import get_device
from .facedraw import RENDER_VERSION
from .history import History

__all__ = [
    "FORMAT_VERSION", "CheckpointError", "rng_state", "set_rng_state", "save_checkpoint", "read_checkpoint",
    "load_checkpoint", "Checkpoint", "Trained", "load_or_train", "store_trained",
    # re-exported: the atomic files and the cache, imported from here before they had modules
    "atomic_write", "atomic_save", "clean_orphans", "CACHE_ENV", "resolve_cache_dir", "config_key",
    "cache_path", "load_or_build",
]

FORMAT_VERSION = 1

Models = nn.Module | Mapping[str, nn.Module]
Optimizers = torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or does not fit the models it is loaded into."""


# what to do with a file that cannot be used (said by every error about a bad file)
_WHAT_TO_DO = ("Delete the file, or move it aside to keep it, and run again: load_or_train "
               "then retrains and writes a fresh one (loop.train starts from step 0).")


def _as_dict(obj, what: str) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    return {what: obj}


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)  # torch.compile wrappers share the original's weights


def rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA) random states, in a weights_only-loadable form."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, *, models: Models, optimizers: Optimizers = None,
                    scaler: torch.amp.GradScaler | None = None, step: int = 0,
                    history: History | list[dict] | None = None, extra: dict | None = None) -> Path:
    """Write everything needed to resume, atomically. Returns the path.

    ``models`` / ``optimizers``: one object or a dict ``{name: object}`` (e.g.
    ``{"generator": G, "discriminator": D}``). ``history``: a :class:`course_lib.history.History`
    or its records (a list of dicts of numbers); the file stores the records. ``extra``: small plain data (numbers,
    strings, lists, dicts) such as the config.
    """
    path = Path(path)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int (optimizer steps done), got {step!r}")
    for name, model in _as_dict(models, "model").items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"models must be an nn.Module or a dict {{name: nn.Module}}, got "
                            f"{type(model).__name__} for {name!r}")
    payload = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "models": {k: _unwrap(m).state_dict() for k, m in _as_dict(models, "model").items()},
        "optimizers": {k: o.state_dict() for k, o in _as_dict(optimizers, "optimizer").items()},
        "optimizer_classes": {k: type(o).__name__ for k, o in _as_dict(optimizers, "optimizer").items()},
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(),
        "history": list(getattr(history, "records", history) or []),
        "extra": dict(extra or {}),
    }
    return atomic_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw payload of a checkpoint (weights_only), or a CheckpointError naming the file."""
    path = Path(path)
    clean_orphans(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message advises weights_only=False, i.e. running code from the file:
        # never the fix for a damaged checkpoint, so it is not repeated here (see __cause__)
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not a course checkpoint (torch.load raised "
            f"{type(exc).__name__}; a write cut short or a file from elsewhere). {_WHAT_TO_DO}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected "
                              f"{FORMAT_VERSION}. {_WHAT_TO_DO}")
    return payload


def _check_optimizer(path: Path, name: str, opt: torch.optim.Optimizer, payload: dict) -> None:
    """The stored state must come from the same optimizer (or LR scheduler) class: torch
    would load any."""
    saved = payload.get("optimizer_classes", {}).get(name)
    own = type(opt).__name__
    groups = payload["optimizers"][name].get("param_groups", [])
    stored_keys = set(groups[0]) - {"params"} if groups else set()
    own_groups = getattr(opt, "param_groups", None)  # None for an LR scheduler (also checkpointed)
    own_keys = set(own_groups[0]) - {"params"} if own_groups else set()
    if (saved is not None and saved != own) or (saved is None and stored_keys != own_keys):
        what = saved if saved is not None else f"an optimizer with settings {sorted(stored_keys)}"
        raise CheckpointError(
            f"checkpoint {path}: optimizer {name!r} was saved from {what}, but you passed a "
            f"{own}: build the same optimizer class as the run that saved it, or leave it out "
            f"of optimizers= to start that optimizer fresh")


def load_checkpoint(path: str | os.PathLike, *, models: Models, optimizers: Optimizers = None,
                    scaler: torch.amp.GradScaler | None = None, restore_rng: bool = True) -> dict:
    """Load a checkpoint into ``models`` / ``optimizers`` / ``scaler`` (in place).

    Returns ``{"step", "history", "extra"}``. Raises :class:`CheckpointError` naming the
    file and the mismatch (a model or optimizer missing from the file, or the file's
    weights not fitting the model: missing/unexpected keys, wrong shapes).
    """
    path = Path(path)
    payload = read_checkpoint(path)
    models_d, opts_d = _as_dict(models, "model"), _as_dict(optimizers, "optimizer")
    for kind, wanted, stored in (("model", models_d, payload["models"]),
                                 ("optimizer", opts_d, payload["optimizers"])):
        missing = sorted(set(wanted) - set(stored))
        if missing:
            raise CheckpointError(f"checkpoint {path} has no {kind} {missing}; it holds "
                                  f"{sorted(stored)}")
    for name, model in models_d.items():
        model = _unwrap(model)
        state, own = payload["models"][name], model.state_dict()
        problems = []
        if set(state) != set(own):
            miss, unexp = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            problems += [f"missing keys {miss[:5]}"] if miss else []
            problems += [f"unexpected keys {unexp[:5]}"] if unexp else []
        problems += [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                     for k, v in own.items() if k in state and state[k].shape != v.shape][:5]
        if problems:
            raise CheckpointError(f"checkpoint {path} does not fit model {name!r} "
                                  f"({type(model).__name__}): " + "; ".join(problems))
        model.load_state_dict(state)
    for name, opt in opts_d.items():
        _check_optimizer(path, name, opt, payload)
        try:
            opt.load_state_dict(payload["optimizers"][name])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimizer {name!r} does not fit: {exc}") from exc
    if scaler is not None and scaler.is_enabled() and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    return {"step": payload["step"], "history": payload["history"], "extra": payload["extra"]}


@dataclass
class Checkpoint:
    """What to save, where, and how often; pass it to ``loop.train(checkpoint=...)``."""

    path: str | os.PathLike                 # the one file (overwritten atomically each time)
    models: Models                          # module or {name: module}
    optimizers: Optimizers = None           # optimizer or {name: optimizer}
    scaler: torch.amp.GradScaler | None = None  # fp16 GradScaler, if any
    every: int = 100                        # save every this many steps (and at the end)
    extra: dict = field(default_factory=dict)   # plain data stored alongside (e.g. config)

    def __post_init__(self) -> None:
        check_writable_file(self.path, "checkpoint")  # now, not after the first hour of training
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"Checkpoint.every must be a positive int (steps), got {self.every!r}")

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def save(self, step: int, history: list[dict] | None = None) -> Path:
        return save_checkpoint(self.path, models=self.models, optimizers=self.optimizers,
                               scaler=self.scaler, step=step, history=history, extra=self.extra)

    def load(self) -> dict:
        return load_checkpoint(self.path, models=self.models, optimizers=self.optimizers,
                               scaler=self.scaler)


@dataclass
class Trained:
    """What :func:`load_or_train` returns."""

    model: Any            # what ``build(config)`` returned, trained, on ``device``
    history: History      # training history (empty if train_fn returned none); .plot(), ["loss"]
    from_cache: bool      # True if the weights were loaded, not trained now
    path: Path            # the cache file
    seconds: float        # training time (when it was trained, also for cached models)


def load_or_train(name: str, train_fn: Callable[[Any, Any], Any], *, config: Any,
                  build: Callable[[Any], Models], cache_dir: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, retrain: bool = False,
                  data_version: int = RENDER_VERSION) -> Trained:
    """Load ``name``'s weights for ``config`` from the cache, or train and cache them.

    ``build(config)`` returns the untrained model (or ``{name: module}``);
    ``train_fn(model, config)`` trains it in place and may return a
    :class:`course_lib.history.History` or a list of dicts. The cache file is
    ``<cache_dir>/<name>-<hash of config and data version>.pt``: change any config field, or
    ToyFaces' drawing (``data_version``, default its render version), and the model is
    retrained. Returns a :class:`Trained` whose ``model`` is on ``device`` (default:
    :func:`course_lib.device.get_device`).
    """
    path, text = cache_path(name, config, cache_dir=cache_dir, data_version=data_version)
    check_writable_file(path, "cache file")
    dev = get_device(device)
    model = build(config)
    models = _as_dict(model, "model")
    if path.is_file() and not retrain:
        state = load_checkpoint(path, models=models, restore_rng=False)
        if state["extra"].get("config") != text:
            raise CheckpointError(f"cache file {path} was written for another config "
                                  f"(hash collision?). {_WHAT_TO_DO}")
        for m in models.values():
            m.to(dev)
        return Trained(model=model, history=History(records=list(state["history"]),
                                                    seconds=float(state["extra"].get("seconds", 0.0))),
                       from_cache=True,
                       path=path, seconds=float(state["extra"].get("seconds", 0.0)))
    for m in models.values():
        m.to(dev)
    start = time.perf_counter()
    history = train_fn(model, config)
    seconds = time.perf_counter() - start
    records = list(getattr(history, "records", history) or [])
    history = History(records=records, interrupted=bool(getattr(history, "interrupted", False)),
                      seconds=seconds)
    if history.interrupted:  # never cache a half-trained model
        return Trained(model=model, history=history, from_cache=False, path=path, seconds=seconds)
    store_trained(name, model, config=config, history=history, cache_dir=cache_dir, data_version=data_version)
    return Trained(model=model, history=history, from_cache=False, path=path, seconds=seconds)


def store_trained(name: str, model: Any, *, config: Any, history: History | list | None = None,
                  cache_dir: str | os.PathLike | None = None, data_version: int = RENDER_VERSION) -> Path:
    """Write ``model`` (a module or ``{name: module}``, trained for ``config``) where
    :func:`load_or_train` looks for ``name``, so the next ``load_or_train`` loads it. For a
    chapter that trains a model itself with the same training function (to watch it train)
    and shares the result with the chapters that load it. Returns the cache file."""
    path, text = cache_path(name, config, cache_dir=cache_dir, data_version=data_version)
    records = list(getattr(history, "records", history) or [])
    seconds = float(getattr(history, "seconds", 0.0) or 0.0)
    save_checkpoint(path, models=_as_dict(model, "model"), history=records, step=len(records),
                    extra={"config": text, "name": name, "seconds": seconds})
    return path
