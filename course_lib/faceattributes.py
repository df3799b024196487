"""ToyFaces attributes: the table of ground-truth factors and their deterministic sampling.

:data:`ATTRIBUTES` lists every factor a ToyFaces image is drawn from (skin tone, face width,
hair colour and style, eyes, smile, glasses, beard, hat, background, head pose, lighting);
:func:`sample_attributes` draws raw values for a split and :func:`attributes_to_labels`
bins them into the discrete classes of :attr:`~course_lib.toyfaces.ToyFaces.labels`.
Drawing lives in :mod:`course_lib.facedraw`, the data set in :mod:`course_lib.toyfaces`.

Determinism: attribute values come from a counter-based hash of
``(seed, split, index, attribute)``, so image ``i`` of a split is the same in every
process and on every machine, and the splits draw from disjoint streams.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .inputs import check_seed

__all__ = [
    "Attribute", "ATTRIBUTES", "ATTRIBUTE_NAMES", "SPLITS", "sample_attributes", "attributes_to_labels",
]


@dataclass(frozen=True)
class Attribute:
    """One ground-truth factor of a ToyFaces image.

    ``kind`` is ``binary`` (raw value 0/1), ``categorical`` (raw value = class index,
    names in ``choices``) or ``continuous`` (raw value uniform in [low, high], binned into
    ``num_classes`` equal-width classes for :attr:`ToyFaces.labels`).
    """

    name: str
    kind: str                       # "binary" | "categorical" | "continuous"
    num_classes: int                # classes in ds.labels (2 for binary)
    doc: str                        # what it changes in the picture
    choices: tuple[str, ...] = ()   # class names (binary/categorical)
    low: float = 0.0                # continuous range (raw values)
    high: float = 1.0
    p: float = 0.5                  # binary: probability of 1
    ood_choices: tuple[str, ...] = field(default=())  # categorical values never sampled
    limits: tuple[float, float] | None = None  # continuous overrides allowed (default: low..high
                                               # widened by its width on each side)

    def override_limits(self) -> tuple[float, float]:
        """The range a continuous override may take: still a face, if an odd one."""
        span = self.high - self.low
        return self.limits or (self.low - span, self.high + span)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("skin", "categorical", 6, "skin tone, pale to dark",
              ("pale", "light", "tan", "olive", "brown", "dark"), ood_choices=("green", "blue")),
    Attribute("face_width", "continuous", 3, "narrow to wide face", low=0.0, high=1.0),
    Attribute("hair_color", "categorical", 5, "hair, eyebrow and beard colour",
              ("black", "brown", "blonde", "red", "grey")),
    Attribute("hair_style", "categorical", 4, "none (bald), short, long, bangs",
              ("none", "short", "long", "bangs")),
    Attribute("eye_color", "categorical", 4, "iris colour", ("brown", "blue", "green", "grey")),
    Attribute("eye_size", "continuous", 3, "eye scale", low=0.7, high=1.3, limits=(0.1, 2.0)),
    Attribute("eye_open", "continuous", 3, "eyelid opening", low=0.3, high=1.0),
    Attribute("smile", "continuous", 3, "mouth curvature, frown (-1) to smile (+1)",
              low=-1.0, high=1.0),
    Attribute("glasses", "binary", 2, "round glasses", ("no", "yes"), p=0.3),
    Attribute("beard", "binary", 2, "beard on the lower face", ("no", "yes"), p=0.3),
    Attribute("hat", "binary", 2, "a top hat", ("no", "yes"), p=0.25),
    Attribute("background", "categorical", 6, "background hue (vertical gradient)",
              ("blue", "mint", "lavender", "peach", "grey", "yellow")),
    Attribute("head_x", "continuous", 3, "horizontal head position", low=-0.15, high=0.15),
    Attribute("head_y", "continuous", 3, "vertical head position", low=-0.02, high=0.16),
    Attribute("head_scale", "continuous", 3, "head size in the frame", low=0.80, high=0.98),
    Attribute("tilt", "continuous", 3, "head roll in radians", low=-0.35, high=0.35,
              limits=(-math.pi, math.pi)),
    Attribute("light", "continuous", 3, "light from the left (-1) or the right (+1)",
              low=-1.0, high=1.0),
)
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
_INDEX = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
SPLITS = {"train": 1, "val": 2, "test": 3}

# ----------------------------------------------------------------------------- sampling

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a good counter-based hash of uint64s."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def _uniforms(seed: int, split: str, start: int, n: int) -> np.ndarray:
    """(n, A) uniforms in [0, 1), a pure function of (seed, split, index, attribute)."""
    key = _splitmix64(np.array([seed * 8 + SPLITS[split]], dtype=np.uint64))
    idx = np.arange(start, start + n, dtype=np.uint64)[:, None]
    att = np.arange(len(ATTRIBUTES), dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = _splitmix64(_splitmix64(key ^ idx) + att * np.uint64(0x632BE59BD9B4E019))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")


def _override_value(attr: Attribute, value) -> float:
    """Turn an override (class name, index, bool or number) into a raw attribute value,
    refusing what the drawing has no meaning for (an index past the classes, a smile of 7)."""
    names = attr.choices + attr.ood_choices
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"attribute {attr.name!r} has no value {value!r}; expected one of "
                             f"{names}")
        return float(names.index(value))
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"override {attr.name}={value!r}: expected a finite number, a bool or one of {names}")
    if attr.kind == "continuous":
        lo, hi = attr.override_limits()
        if not lo <= value <= hi:
            raise ValueError(f"override {attr.name}={value!r} is outside what ToyFaces draws: expected a "
                             f"number in [{lo:.3g}, {hi:.3g}] (the sampled range is [{attr.low:.3g}, "
                             f"{attr.high:.3g}])")
    elif value not in range(len(names)):
        raise ValueError(f"override {attr.name}={value!r}: expected a class index in 0..{len(names) - 1} "
                         f"or one of {names}")
    return float(value)


def sample_attributes(n: int, seed: int = 0, overrides: dict | None = None, *,
                      split: str = "train", start: int = 0) -> torch.Tensor:
    """Raw attributes of images ``start .. start+n-1`` of ``split``: float (n, A).

    ``overrides`` maps attribute names to a fixed value for every image: a class name
    (``{"skin": "green"}``), a class index, a bool, or a number (may lie outside the
    training range, e.g. ``{"eye_size": 2.0}`` for out-of-distribution faces).
    """
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_split(split)
    check_seed(seed)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start must be a non-negative int (the first image index), got {start!r}")
    u = _uniforms(int(seed), split, int(start), n)
    out = np.empty_like(u)
    for j, a in enumerate(ATTRIBUTES):
        if a.kind == "binary":
            out[:, j] = (u[:, j] < a.p).astype(np.float64)
        elif a.kind == "categorical":
            out[:, j] = np.floor(u[:, j] * a.num_classes)
        else:
            out[:, j] = a.low + (a.high - a.low) * u[:, j]
    for name, value in (overrides or {}).items():
        if name not in _INDEX:
            raise KeyError(f"unknown ToyFaces attribute {name!r}; known: {ATTRIBUTE_NAMES}")
        out[:, _INDEX[name]] = _override_value(ATTRIBUTES[_INDEX[name]], value)
    return torch.from_numpy(out).float()


def attributes_to_labels(attributes: torch.Tensor) -> torch.Tensor:
    """Discrete class per attribute, int64 (N, A): continuous ones in equal-width bins."""
    labels = torch.empty(attributes.shape, dtype=torch.int64)
    for j, a in enumerate(ATTRIBUTES):
        col = attributes[:, j]
        if a.kind == "continuous":
            t = ((col - a.low) / (a.high - a.low)).clamp(0.0, 1.0 - 1e-6)
            labels[:, j] = (t * a.num_classes).long()
        else:
            labels[:, j] = col.round().long()
    return labels
