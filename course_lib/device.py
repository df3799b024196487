"""Which device to run on, decided in one place: nothing else in the course calls ``.cuda()``.

:func:`get_device` picks CUDA, then Apple MPS, then CPU; an argument or the ``COURSE_DEVICE``
environment variable overrides it. :func:`course_lib.runtime.runtime` adds the precision
and memory layout that pay on that device.
"""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "COURSE_DEVICE"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(override: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``override``, else ``$COURSE_DEVICE``, else the best one.

    "Best" is CUDA, then MPS, then CPU. Asking for a device that is not there raises a
    ``RuntimeError`` that says what is available instead of failing later inside a model.
    """
    choice = override if override is not None else os.environ.get(DEVICE_ENV, "").strip() or None
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    where = f" (from {DEVICE_ENV})" if override is None else ""
    if isinstance(choice, str) and choice.strip().lower().split(":")[0] == "gpu":
        raise ValueError(f"device {choice!r}{where}: there is no 'gpu' device in PyTorch; use "
                         f"'cuda' (NVIDIA), 'mps' (Apple) or 'cpu'")
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'mps', got {choice!r}{where}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(choice)!r} was requested but CUDA is not available here; "
                           f"use 'cpu' (or unset {DEVICE_ENV}).")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {str(choice)!r} was requested but Apple MPS is not available "
                           f"here; use 'cpu' (or unset {DEVICE_ENV}).")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'mps', got {str(choice)!r}{where}")
    return device
