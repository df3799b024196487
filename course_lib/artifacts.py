"""What the long runs leave behind: reference weights, snapshots and result files.

The scripts in ``experiments/`` and ``bench/`` train for minutes to hours; chapters load what
they wrote. Each kind of file is written one way and read one way, here:

- **Reference weights** (``course_lib/results_data/*_reference.pt``, package data):
  :func:`write_reference` stores a state dict in float16 with the config (``asdict``), the
  version of the data it was trained on (ToyFaces' render version), the step count, the
  command that rebuilds it and any extra metadata, atomically. :func:`read_reference` reads it
  back in float32 after one staleness check (:func:`reference_mismatch`: every config field but
  ``steps``, and the data version) that fails with one message naming what differs and the
  command; :func:`reference_model` builds the model it holds. :func:`read_export` is the
  unchecked read underneath (and :func:`reference_info` the metadata alone): a missing file,
  a Git LFS pointer, a truncated or foreign file each get their own message saying how to get
  the file back.
- **Snapshots** of a long run (its weights every N steps, in the run's folder, from which
  the reference is exported and the quality-against-steps tables are scored):
  :func:`snapshot_callback` (for :func:`course_lib.loop.train`) writes them with
  :func:`write_snapshot` to :func:`snapshot_path`; :func:`read_snapshot` reads one.
- **Result files** (``course_lib/results_data/*.json``, ``bench/results/*``):
  :func:`write_result` writes a dict as JSON (or a text report), atomically; given the run's
  ``script``, it first records the command, the machine (:func:`machine`) and the wall time.
  :func:`update_result` and :func:`claim` let several workers of one experiment share its
  results file and its queue of (arm, seed) units.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_save, atomic_write
from .checkpoint import CheckpointError

_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
REFERENCE_KEYS = ("steps", "config", "data_version", "command")  # what a reference file holds besides its weights


# ------------------------------------------------------------------ reference weights
def write_reference(path: str | os.PathLike, *, state: Mapping[str, torch.Tensor], config: Any, steps: int,
                    command: str, data_version: int, key: str = "weights", **extra: Any) -> Path:
    """Write a committed reference model atomically: the state dict ``state`` in float16
    (half the bytes; :func:`read_reference` casts back to float32) under ``key``, the config
    (``asdict``), ``data_version`` (the ToyFaces render version it was trained on), the step
    count, the command that rebuilds it, and ``extra`` metadata."""
    payload = {key: {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
               "config": dataclasses.asdict(config), "data_version": data_version, "steps": steps,
               "command": command, **extra}
    return atomic_save(payload, path)


def read_export(path: str | os.PathLike, *, keys: tuple[str, ...], what: str, rebuild: str) -> dict:
    """The payload of an exported weights file, read with ``weights_only=True``, unchecked.
    ``keys``: what the payload must hold; ``what``: its name in messages; ``rebuild``: the
    command that writes it again.

    Raises ``FileNotFoundError`` when the file is missing, and
    :class:`~course_lib.checkpoint.CheckpointError` when it is a Git LFS pointer, truncated or
    corrupted, or not such an export (a training checkpoint, another model's file): each
    message says how to get the file back.
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


def reference_mismatch(payload: Mapping, *, config: Any, data_version: int,
                       ignore: tuple[str, ...] = ("steps",)) -> dict:
    """The one staleness check of a stored artifact (reference weights, or a results file that
    records ``"config"`` and ``"data_version"`` the same way): ``{field: (in the file, now)}``
    for each config field but ``ignore`` that differs (:func:`config_diff`), plus
    ``"data_version"`` when the data changed since. Empty when the file is current."""
    diff = config_diff(payload["config"], config, ignore=ignore)
    if payload.get("data_version") != data_version:
        diff["data_version"] = (payload.get("data_version"), data_version)
    return diff


def read_reference(path: str | os.PathLike, *, config: Any, data_version: int, key: str = "weights", what: str,
                   rebuild: str) -> dict:
    """The payload :func:`write_reference` wrote, checked: read with :func:`read_export`, then
    :func:`reference_mismatch` against ``config`` and ``data_version``: a ValueError names what
    differs and the command that rebuilds the file. The weights come back in float32."""
    payload = read_export(path, keys=(*REFERENCE_KEYS, key), what=what, rebuild=rebuild)
    diff = reference_mismatch(payload, config=config, data_version=data_version)
    if diff:
        drawn = diff.pop("data_version", (data_version, data_version))
        raise ValueError(f"{path} does not match {type(config).__name__} / ToyFaces (file vs now: {diff}, render "
                         f"version {drawn[0]} vs {drawn[1]}); rerun: {payload['command']}")
    payload[key] = {k: v.float() if v.is_floating_point() else v for k, v in payload[key].items()}
    return payload


def reference_model(path: str | os.PathLike, *, config: Any, data_version: int, what: str, rebuild: str):
    """The model a reference file holds: :func:`read_reference` (checked), then
    ``config.build()`` with the file's ``"weights"`` loaded and ``.steps`` set to the file's
    step count, in eval mode on the CPU."""
    payload = read_reference(path, config=config, data_version=data_version, what=what, rebuild=rebuild)
    model = config.build()
    model.load_state_dict(payload["weights"])
    model.steps = payload["steps"]
    return model.eval()


def reference_info(path: str | os.PathLike, *, key: str = "weights", what: str, rebuild: str) -> dict:
    """A reference file's metadata (config, data_version, steps, command, extras) without the
    weights and without the staleness check (a test or a table reports it)."""
    payload = read_export(path, keys=(*REFERENCE_KEYS, key), what=what, rebuild=rebuild)
    return {k: v for k, v in payload.items() if k != key}


# ------------------------------------------------------------------ snapshots of a long run
def snapshot_path(run_dir: str | os.PathLike, step: int, *, prefix: str = "step") -> Path:
    """``<run_dir>/<prefix><step, 6 digits>.pt``: sorted by name is sorted by step."""
    return Path(run_dir) / f"{prefix}{step:06d}.pt"


def write_snapshot(path: str | os.PathLike, **state: Any) -> Path:
    """Keep a long run's state at one step (``step=``, state dicts, the recent loss), atomically."""
    return atomic_save(state, path)


def snapshot_callback(run_dir: str | os.PathLike, *, every: int, state: Callable[[], dict], prefix: str = "step",
                      keep: Callable[[int], bool] | None = None, loss: str | None = "loss") -> tuple[int, Callable]:
    """The callback ``(every, fn)`` of :func:`course_lib.loop.train` that keeps a long run's
    snapshots: at each step divisible by ``every`` (and accepted by ``keep``, if given) it writes
    ``step``, the dict ``state()`` returns and the mean of the last 100 values of ``loss``
    (``None``: none) to :func:`snapshot_path` ``(run_dir, step, prefix=prefix)``."""
    def callback(step: int, history) -> None:
        if step % every == 0 and (keep is None or keep(step)):
            recent = {"loss": history.last(loss, 100)} if loss is not None else {}
            write_snapshot(snapshot_path(run_dir, step, prefix=prefix), step=step, **state(), **recent)

    return every, callback


def read_snapshot(path: str | os.PathLike) -> dict:
    """What :func:`write_snapshot` wrote (on the CPU, ``weights_only``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ result files
def machine(load_at_start: float | None = None) -> dict:
    """What an experiment's results file records about the machine that produced it:
    platform, Python, torch, CPU count, torch threads, the 1-minute load average when the
    run started (timings taken under load are not idle timings) and the CUDA card, if any."""
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "load_at_start": load_at_start,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_result(out: str | os.PathLike, result: dict | str, *, script: str | None = None,
                 argv: list[str] | None = None, start: float | None = None, load_at_start: float | None = None,
                 default: Any = None) -> Path:
    """Write a results file atomically: a dict as JSON (indent 1, ``default`` as in
    ``json.dumps``), a string as a text report, each followed by a newline.

    With ``script`` (a finished run), the dict first records the command that made it
    (``script`` and its arguments ``argv[1:]``), :func:`machine` and the wall time since
    ``start`` (``time.perf_counter()``); without it (a run writing as it goes, a bench table)
    it is written as it is."""
    if isinstance(result, str):
        return atomic_write(out, result + "\n")
    if script is not None:
        if start is None:
            raise ValueError("write_result(script=...) records the wall time: pass start=time.perf_counter() "
                             "taken when the run began")
        result["command"] = "python " + " ".join([script, *(argv or [""])[1:]])
        result["machine"] = machine(load_at_start)
        result["wall_seconds_last_invocation"] = round(time.perf_counter() - start, 1)
    return atomic_write(out, json.dumps(result, indent=1, default=default) + "\n")


def update_result(out: str | os.PathLike, change: Callable[[dict], None], *, lock: str | os.PathLike,
                  script: str, argv: list[str] | None, start: float, load_at_start: float | None,
                  read: Callable[[], dict] | None = None) -> dict:
    """Read the results file ``out`` (``read()``, default: its JSON, or ``{}`` when there is
    none), apply ``change`` to it in place and :func:`write_result` it, all under an exclusive
    lock on the file ``lock``:
    workers sharing one results file add their rows without losing each other's. Returns the
    result as written. POSIX (``fcntl``): the experiment scripts' workers, not the chapters."""
    import fcntl  # POSIX only; imported here so that the chapters import this module anywhere

    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = read() if read is not None else json.loads(Path(out).read_text()) if Path(out).is_file() else {}
        change(result)
        write_result(out, result, script=script, argv=argv, start=start, load_at_start=load_at_start)
        return result


def claim(path: str | os.PathLike) -> bool:
    """Take the unit of work ``path`` names for this process, so that workers started alike
    share one queue: False when another live process holds it; the claim of a process that
    has ended is taken over. The claim files' folder holds the lock ``claims.lock``."""
    import fcntl  # POSIX only, as update_result

    path = Path(path)
    with open(path.parent / "claims.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if path.is_file():
            try:
                pid = int(path.read_text() or 0)
                os.kill(pid, 0)
                if pid != os.getpid():
                    return False
            except (ProcessLookupError, ValueError):
                pass                                      # its process is gone: take it over
        path.write_text(str(os.getpid()))
        return True
