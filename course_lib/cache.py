"""The cache folder, its one naming rule, and the data cache.

Everything the course computes once and reuses lives under ``$COURSE_CACHE`` (default
``~/.cache/course_lib``, :func:`resolve_cache_dir`), in files named by :func:`cache_path`:
``<folder>/<name>-<hash>.pt``, the hash covering a config (or key) and the version of the data
it was made from, so a new ToyFaces drawing invalidates what the old one made. Two users:
:func:`load_or_build` here (rendered ToyFaces, decoded CelebA, a script's state dicts) and
:func:`course_lib.checkpoint.load_or_train` (trained models).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_save, clean_orphans

CACHE_ENV = "COURSE_CACHE"
DATA_FORMAT_VERSION = 1  # load_or_build's payload: {"format_version", "key", "data"}


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


def cache_path(name: str, config: Any, *, data_version: int | None, folder: str = "",
               cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The cache's one naming rule: ``(<cache_dir>/<folder>/<name>-<hash>.pt, key text)``.

    The hash covers ``config`` (a dataclass or a dict, see :func:`config_key`) and
    ``data_version`` (ToyFaces' render version for what ToyFaces draws; ``None`` for data it
    does not draw), so a new drawing invalidates everything drawn with the old one.
    """
    for what, value, required in (("name", name, True), ("folder", folder, False)):
        if (required and not value) or any(c in value for c in "/\\ "):
            raise ValueError(f"{what} must be a simple identifier like 'vae_ch02', got {value!r}")
    config_text, _ = config_key(config)
    text, digest = config_key({"config": json.loads(config_text), "data_version": data_version})
    return resolve_cache_dir(cache_dir) / folder / f"{name}-{digest}.pt", text


def load_or_build(name: str, build: Callable[[], Any], *, key: Any, data_version: int | None,
                  folder: str = "data", cache_dir: str | os.PathLike | None = None) -> Any:
    """What ``build()`` returns (tensors, or dicts/lists of them), cached on disk.

    The file is :func:`cache_path` of ``(name, key, data_version)``, written with
    :func:`~course_lib.atomic.atomic_save`. A file that does not load with
    ``weights_only=True``, or that was written for another key, is rebuilt and overwritten,
    never trusted (unlike a trained model, rebuilding data takes seconds).
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
    atomic_save({"format_version": DATA_FORMAT_VERSION, "key": text, "data": data}, path)
    return data
