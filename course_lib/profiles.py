"""Course profiles: how big every chapter runs.

One environment variable, ``COURSE_PROFILE``, picks the sizes used by every chapter:

- ``smoke``: CI and nbval. Tiny data and a few steps; every notebook runs in seconds.
- ``cpu``:   the default without an accelerator. Each chapter in about 3 minutes on a
             2-core laptop CPU, with results a person recognises.
- ``gpu``:   the default with CUDA or Apple MPS. 64x64 images, full widths.

Chapters read the profile once (``PROFILE``) and build their config dataclasses from
it, e.g. ``VAEConfig.for_profile(PROFILE)``; a notebook can override any field with
``dataclasses.replace``. Pick per-profile values inline with :func:`choose`.
"""
from __future__ import annotations

import os
from typing import TypeVar

PROFILES: tuple[str, ...] = ("smoke", "cpu", "gpu")
ENV_VAR = "COURSE_PROFILE"

T = TypeVar("T")


def _accelerator_available() -> bool:
    try:
        import torch
    except ImportError:  # the profile logic must not need torch to explain itself
        return False
    if torch.cuda.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def default_profile() -> str:
    """``gpu`` when CUDA or MPS is available, else ``cpu``."""
    return "gpu" if _accelerator_available() else "cpu"


def resolve_profile(value: str | None = None) -> str:
    """Validate a profile name; ``None`` or ``""`` means :func:`default_profile`.

    >>> resolve_profile("smoke")
    'smoke'
    """
    if value is None or value.strip() == "":
        return default_profile()
    name = value.strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a course profile; expected one of "
            f"{', '.join(PROFILES)} (or leave it unset to pick "
            f"'{default_profile()}' for this machine)."
        )
    return name


def current_profile() -> str:
    """The profile named by ``COURSE_PROFILE`` (read now, not at import)."""
    return resolve_profile(os.environ.get(ENV_VAR))


def choose(*, smoke: T, cpu: T, gpu: T, profile: str | None = None) -> T:
    """Return the value for ``profile`` (default: the current one).

    >>> choose(smoke=1, cpu=10, gpu=100, profile="cpu")
    10
    """
    name = resolve_profile(profile) if profile is not None else current_profile()
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[name]


PROFILE: str = current_profile()
"""The profile this Python process runs under, fixed at import time."""
