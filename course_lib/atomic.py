"""Atomic files: a reader, a crash or a Ctrl-C sees the old file or the new, never half of one.

:func:`atomic_write` writes to a temporary file beside the target, flushes it to disk and
renames it over the target (``os.replace``). A write killed outright (``kill -9``, a dead Colab
runtime) leaves its temporary file behind; the next write or read of that file deletes it
(:func:`clean_orphans`). Every file the course writes (checkpoints, the cache, reference
weights, result files) goes through here.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

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


def check_writable_file(path: str | os.PathLike, what: str) -> None:
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


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """The course's one atomic write: ``data`` (text as UTF-8) goes to a temporary file beside
    ``path`` (named after its writer, see :func:`clean_orphans`), is flushed to disk, then
    renamed over ``path``. Creates the folder. Returns ``path``."""
    path = Path(path)
    check_writable_file(path, "output")
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
