"""Chapter 03's reference generators: the chapter's own GANs, trained for much longer.

``experiments/gan_reference.py`` trains the chapter's DCGAN and WGAN-GP configurations (the
``cpu`` profile) for at least ten times the chapter's steps and writes their generators'
weights in float16 to ``course_lib/results_data/{dcgan,wgan_gp}_reference.pt`` with the
config, the ToyFaces render version, the step count and the command. :func:`reference_generator`
loads one and refuses a file written for another configuration or another drawing;
``tests/test_gan_reference.py`` checks the committed files the same way.
"""
from __future__ import annotations

import os

from torch import nn

from . import gan
from .artifacts import read_reference, reference_info as read_info
from .facedraw import RENDER_VERSION
from .results import RESULTS_DIR

REFERENCE_NAMES = ("dcgan", "wgan_gp")
REFERENCE_PATHS = {name: RESULTS_DIR / f"{name}_reference.pt" for name in REFERENCE_NAMES}
REBUILD = "train and export it with python experiments/gan_reference.py --model {name}"


def reference_config(name: str) -> gan.GANConfig:
    """The configuration reference ``name`` was trained with, up to ``steps``: chapter 03's
    DCGAN (``GANConfig.for_profile("cpu")``) or its WGAN-GP (:func:`course_lib.gan.chapter_wgan_gp`)."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"reference must be one of {REFERENCE_NAMES}, got {name!r}")
    config = gan.GANConfig.for_profile("cpu")
    return config if name == "dcgan" else gan.chapter_wgan_gp(config)


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
    payload = read_reference(path, config=reference_config(name), data_version=RENDER_VERSION, key="generator",
                             what=f"{name} reference generator", rebuild=REBUILD.format(name=name))
    generator, _ = gan.build(reference_config(name))
    generator.load_state_dict(payload["generator"])
    return generator.eval()


def reference_info(name: str, path: str | os.PathLike | None = None) -> dict:
    """The file's metadata (config, data_version, steps, command, ...) without the weights, unchecked
    (:func:`course_lib.artifacts.reference_mismatch` says whether it is current)."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"reference must be one of {REFERENCE_NAMES}, got {name!r}")
    return read_info(REFERENCE_PATHS[name] if path is None else path, key="generator",
                     what=f"{name} reference generator", rebuild=REBUILD.format(name=name))
