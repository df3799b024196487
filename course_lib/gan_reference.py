"""Chapter 03's reference generators: the chapter's own GANs, trained for much longer.

``experiments/gan_reference.py`` trains the chapter's DCGAN and WGAN-GP configurations (the
``cpu`` profile) for at least ten times the chapter's steps and writes their generators'
weights in float16 to ``course_lib/results_data/{dcgan,wgan_gp}_reference.pt`` with the
config, the ToyFaces render version, the step count and the command. :func:`reference_generator`
loads one and refuses a file written for another configuration or another drawing;
``tests/test_gan_reference.py`` checks the committed files the same way.
"""
from __future__ import annotations

import dataclasses
import os

from torch import nn

from . import gan
from .checkpoint import read_export
from .facedraw import RENDER_VERSION
from .results import RESULTS_DIR

REFERENCE_NAMES = ("dcgan", "wgan_gp")
REFERENCE_PATHS = {name: RESULTS_DIR / f"{name}_reference.pt" for name in REFERENCE_NAMES}


def reference_config(name: str) -> gan.GANConfig:
    """The configuration reference ``name`` was trained with, up to ``steps``: chapter 03's
    DCGAN (``GANConfig.for_profile("cpu")``) or its WGAN-GP (:func:`course_lib.gan.chapter_wgan_gp`)."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"reference must be one of {REFERENCE_NAMES}, got {name!r}")
    config = gan.GANConfig.for_profile("cpu")
    return config if name == "dcgan" else gan.chapter_wgan_gp(config)


def config_mismatch(name: str, payload: dict) -> dict:
    """``{field: (in the file, now)}`` for every field but ``steps`` that differs between a
    reference file's config and :func:`reference_config` (empty when they match)."""
    stored = payload["config"]
    expected = dataclasses.asdict(reference_config(name))
    return {k: (stored.get(k), v) for k, v in expected.items() if k != "steps" and stored.get(k) != v}


def _read(name: str, path) -> dict:
    return read_export(path, keys=("config", "data_version", "steps", "command", "generator"),
                       what=f"{name} reference generator",
                       rebuild=f"train and export it with python experiments/gan_reference.py --model {name}")


def reference_generator(name: str, path: str | os.PathLike | None = None) -> nn.Module:
    """The committed reference generator ``name`` ("dcgan" or "wgan_gp"), float32, eval mode,
    on the CPU: the trained generator or the moving average of its weights, whichever the
    export found better on validation faces (the file's ``"weights"`` says which). Raises a
    ValueError naming the mismatch if the file no longer fits the config or the drawing, and
    a FileNotFoundError naming the command when the file is missing, a
    :class:`~course_lib.checkpoint.CheckpointError` for a Git LFS pointer, a truncated file or
    a file that is not this export."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"reference must be one of {REFERENCE_NAMES}, got {name!r}")
    path = REFERENCE_PATHS[name] if path is None else path
    payload = _read(name, path)
    diff = config_mismatch(name, payload)
    if diff or payload["data_version"] != RENDER_VERSION:
        raise ValueError(f"{path} does not match chapter 03's {name} config / ToyFaces (file vs now: {diff}, "
                         f"render version {payload['data_version']} vs {RENDER_VERSION}); rerun: {payload['command']}")
    config = dataclasses.replace(reference_config(name), steps=payload["steps"])
    generator, _ = gan.build(config)
    generator.load_state_dict({k: v.float() for k, v in payload["generator"].items()})
    return generator.eval()


def reference_info(name: str, path: str | os.PathLike | None = None) -> dict:
    """The file's metadata (config, data_version, steps, command, ...) without the weights."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"reference must be one of {REFERENCE_NAMES}, got {name!r}")
    payload = _read(name, REFERENCE_PATHS[name] if path is None else path)
    return {k: v for k, v in payload.items() if k != "generator"}
