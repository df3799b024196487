"""Checkpoints that lose nothing, and a cache so no chapter trains the same model twice.

- :func:`save_checkpoint` writes model(s), optimizer(s), the GradScaler, the step, the
  random-number states and the training history in one file, atomically: it writes a
  temporary file beside the target and renames it (``os.replace``), so a crash or a
  Ctrl-C half-way through a write leaves the previous checkpoint intact. A write killed
  outright (``kill -9``, a dead Colab runtime) leaves its temporary file behind; the next
  save or load of that checkpoint deletes it (:func:`clean_orphans`).
- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)`` (no arbitrary
  code runs from a downloaded file) and names the file and the mismatch when something
  does not fit (missing model, wrong shapes, another optimizer class, corrupted bytes),
  saying what to do about it.
- :class:`Checkpoint` bundles what to save and how often; :func:`course_lib.loop.train`
  takes one and resumes from it. On CPU a resumed run ends with exactly the weights of
  an uninterrupted one (``tests/test_checkpoint.py`` checks it).
- :func:`load_or_train` caches trained models under ``$COURSE_CACHE`` (default
  ``~/.cache/course_lib``, :func:`resolve_cache_dir`), keyed by a name and a hash of the
  config dataclass and ToyFaces' render version, so a chapter re-run, or a later chapter
  reusing a model (fusion), loads instead of training. :func:`load_or_build` is the same
  cache for data (rendered ToyFaces, decoded CelebA): one naming rule (:func:`cache_path`),
  one atomic write (:func:`atomic_write`), and a corrupt data file is rebuilt.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib.facedraw import RENDER_VERSION
from course_lib.history import History
from course_lib.runtime import get_device

FORMAT_VERSION = 1
CACHE_ENV = "COURSE_CACHE"

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


# ------------------------------------------------------------------ temporary files
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_STALE_SECONDS = 3600  # a temporary file of a writer we cannot ask about is orphaned after this


def _tmp_prefix(path: Path) -> str:
    # who writes it is in the name, so a later call can tell a killed write from a live one
    return f".{path.name}.{os.getpid()}-{_HOST}."


def _pid_alive(pid: int) -> bool | None:
    """True/False on POSIX; None where a cheap check does not exist (Windows)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_orphans(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes of ``path`` left beside it.

    A file is orphaned when its writer (pid and host are in its name) is no longer running
    on this machine, or when it is more than an hour old (no write takes that long; this
    also covers writers that cannot be asked: another host, Windows, a reused pid, a file
    from an older version). Returns the deleted files.
    """
    path = Path(path)
    head = f".{path.name}."
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.iterdir():
        name = tmp.name
        if not (name.startswith(head) and name.endswith(".tmp")):
            continue
        try:
            age = time.time() - tmp.stat().st_mtime
        except OSError:  # gone already (its writer renamed it)
            continue
        pid, _, host = name[len(head):].split(".", 1)[0].partition("-")   # "<pid>-<host>"
        if age > _STALE_SECONDS:
            orphan = True
        elif pid.isdigit() and host == _HOST and int(pid) != os.getpid():
            orphan = _pid_alive(int(pid)) is False
        else:
            orphan = False
        if orphan:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


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


# ------------------------------------------------------------------ exported reference weights
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def read_export(path: str | os.PathLike, *, keys: tuple[str, ...], what: str, rebuild: str) -> dict:
    """The payload of an exported weights file (``course_lib/results_data/*_reference.pt``),
    read with ``weights_only=True``. ``keys``: what the payload must hold; ``what``: its name
    in messages; ``rebuild``: the command that writes it again.

    Raises ``FileNotFoundError`` when the file is missing, and :class:`CheckpointError` when
    it is a Git LFS pointer, truncated or corrupted, or not such an export (a training
    checkpoint, another model's file): each message says how to get the file back.
    """
    path = Path(path)
    get_back = f"restore it (git checkout, or reinstall course_lib) or rebuild it: {rebuild}"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {rebuild}")
    with open(path, "rb") as f:
        head = f.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise CheckpointError(f"{path} is a Git LFS pointer, not the {what} weights: run "
                              f"`git lfs pull` in the repository, or {get_back}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's message advises weights_only=False: never the fix here
        raise CheckpointError(f"{path} is truncated or corrupted (torch.load raised "
                              f"{type(exc).__name__}): {get_back}") from None
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        kind = ("a training checkpoint" if isinstance(payload, dict) and "format_version" in payload
                else "another file")
        raise CheckpointError(f"{path} is {kind}, not the {what} export (it lacks {missing}): "
                              f"{get_back}")
    return payload


def config_diff(stored: Mapping, expected: Any, *, ignore: tuple[str, ...] = ("steps",)) -> dict:
    """``{field: (in the file, now)}`` for every field of the config dataclass ``expected``
    (but ``ignore``) whose value differs from ``stored`` (a file's ``asdict`` copy; tuples
    compare equal to lists, as they come back from JSON). Empty when they match."""
    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else (
            {k: plain(v) for k, v in value.items()} if isinstance(value, dict) else value)

    now = dataclasses.asdict(expected)
    return {k: (stored.get(k), v) for k, v in now.items() if k not in ignore and plain(stored.get(k)) != plain(v)}


def write_reference(path: str | os.PathLike, *, state: Mapping[str, torch.Tensor], config: Any, steps: int,
                    command: str, key: str = "weights", **extra: Any) -> Path:
    """Write a committed reference model atomically: the state dict ``state`` in float16
    (half the bytes; :func:`read_reference` casts back to float32) under ``key``, the config (``asdict``), the ToyFaces
    render version, the step count, the command that rebuilds it, and ``extra`` metadata."""
    payload = {key: {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
               "config": dataclasses.asdict(config), "data_version": RENDER_VERSION, "steps": steps,
               "command": command, **extra}
    return atomic_save(payload, path)


def read_reference(path: str | os.PathLike, *, config: Any, key: str = "weights", what: str,
                   rebuild: str) -> dict:
    """The payload :func:`write_reference` wrote, checked: read with :func:`read_export`
    (a Git LFS pointer, a truncated or foreign file raise :class:`CheckpointError`), then its
    config against ``config`` (all fields but ``steps``) and its render version against the
    current drawing: a ValueError names what differs and the command that rebuilds the file.
    The weights come back in float32."""
    payload = read_export(path, keys=("steps", "config", "data_version", "command", key), what=what, rebuild=rebuild)
    diff = config_diff(payload["config"], config)
    if diff or payload["data_version"] != RENDER_VERSION:
        raise ValueError(f"{path} does not match {type(config).__name__} / ToyFaces (file vs now: {diff}, render "
                         f"version {payload['data_version']} vs {RENDER_VERSION}); rerun: {payload['command']}")
    payload[key] = {k: v.float() if v.is_floating_point() else v for k, v in payload[key].items()}
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
        _check_writable_file(self.path, "checkpoint")  # now, not after the first hour of training
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


def _check_writable_file(path: str | os.PathLike, what: str) -> None:
    """Refuse a file path that is a folder, or under a file, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} path {path} is a folder, but a {what} is one file: "
                                f"remove or rename that folder, or pass another path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{what} path {path}: {parent} is a file, not a folder")
            break


# --------------------------------------------------------------------------- cache

def resolve_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$COURSE_CACHE``, else ``~/.cache/course_lib``.

    Raises ``NotADirectoryError`` when that path, or a folder above it, is a file (the
    cache could never be written there; say so now, not in a later ``mkdir``).
    """
    path = Path(override or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "course_lib")
    path = path.expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                source = "cache_dir" if override else (CACHE_ENV if os.environ.get(CACHE_ENV) else "the default cache")
                raise NotADirectoryError(f"{source}={path}: {p} is a file, not a folder; point "
                                         f"{CACHE_ENV} at a folder (it is created if missing) or unset it")
            break
    return path


def config_key(config: Any) -> tuple[str, str]:
    """``(canonical JSON, 12-hex hash)`` of a config dataclass (or plain dict)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = {"__class__": type(config).__qualname__, **dataclasses.asdict(config)}
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        raise TypeError(f"config must be a dataclass instance or a dict, got {type(config).__name__}")
    text = json.dumps(data, sort_keys=True, default=repr)
    return text, hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(name: str, config: Any, *, folder: str = "", cache_dir: str | os.PathLike | None = None,
               data_version: int | None = RENDER_VERSION) -> tuple[Path, str]:
    """The cache's one naming rule: ``(<cache_dir>/<folder>/<name>-<hash>.pt, key text)``.

    The hash covers ``config`` (a dataclass or a dict, see :func:`config_key`) and
    ``data_version`` (ToyFaces' render version by default; ``None`` for data ToyFaces does
    not draw), so a new drawing invalidates everything drawn with the old one.
    """
    for what, value, required in (("name", name, True), ("folder", folder, False)):
        if (required and not value) or any(c in value for c in "/\\ "):
            raise ValueError(f"{what} must be a simple identifier like 'vae_ch02', got {value!r}")
    config_text, _ = config_key(config)
    text, digest = config_key({"config": json.loads(config_text), "data_version": data_version})
    return resolve_cache_dir(cache_dir) / folder / f"{name}-{digest}.pt", text


def load_or_build(name: str, build: Callable[[], Any], *, key: Any, folder: str = "data",
                  cache_dir: str | os.PathLike | None = None,
                  data_version: int | None = RENDER_VERSION) -> Any:
    """What ``build()`` returns (tensors, or dicts/lists of them), cached on disk.

    The data sets' cache (ToyFaces renders, decoded CelebA, a script's state dicts): the file
    is :func:`cache_path` of ``(name, key, data_version)`` and is written with
    :func:`atomic_save`. A file that does not load with ``weights_only=True``, or that was
    written for another key, is rebuilt and overwritten, never trusted (unlike a model in
    :func:`load_or_train`, rebuilding data takes seconds).
    """
    path, text = cache_path(name, key, folder=folder, cache_dir=cache_dir, data_version=data_version)
    clean_orphans(path)
    if path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torn write, a file from elsewhere: rebuild it below
            payload = None
        if isinstance(payload, dict) and payload.get("key") == text and "data" in payload:
            return payload["data"]
    data = build()
    atomic_save({"format_version": FORMAT_VERSION, "key": text, "data": data}, path)
    return data


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
    :func:`course_lib.runtime.get_device`).
    """
    path, text = cache_path(name, config, cache_dir=cache_dir, data_version=data_version)
    _check_writable_file(path, "cache file")
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


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """The course's one atomic write: ``data`` (text as UTF-8) goes to a temporary file beside
    ``path`` (named after its writer, see :func:`clean_orphans`), is flushed to disk, then
    renamed over ``path``: a reader, a crash or a Ctrl-C sees the old file or the new, never
    half of one."""
    path = Path(path)
    _check_writable_file(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:  # includes KeyboardInterrupt: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getvalue())
