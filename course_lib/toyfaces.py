"""ToyFaces: a procedural data set of anti-aliased cartoon faces with known attributes.

Every image is rendered from a vector of ground-truth attributes (:data:`ATTRIBUTES`):
skin tone, face width, hair colour and style, eye colour, size and openness, smile,
glasses, beard, hat, background, head position, scale and tilt, lighting direction.
Because the attributes are known, later chapters can score representations with linear
probes on :attr:`ToyFaces.labels` and generators with an attribute classifier.

Three modules, read in this order:

- :mod:`course_lib.faceattributes`: the attribute table and its deterministic sampling;
- :mod:`course_lib.facedraw`: drawing attributes into images (:func:`render`), OOD faces;
- this module: the data set :class:`ToyFaces`, materialised in memory and cached on disk.

Every public name of the three is importable from here (``from course_lib.toyfaces import
ATTRIBUTES, ToyFaces, render``).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .cache import cache_path, load_or_build
from .faceattributes import (
    _INDEX,
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    SPLITS,
    Attribute,
    _check_split,
    attributes_to_labels,
    sample_attributes,
)
from .facedraw import BACKGROUND_STYLES, OOD_KINDS, RENDER_VERSION, ood_faces, ood_region, render
from .images import to_float, to_uint8
from .inputs import check_seed

# Attribute, SPLITS, OOD_KINDS, ood_faces and ood_region are imported above only to be re-exported
# here; they live in faceattributes and facedraw.
__all__ = [
    "Attribute", "ATTRIBUTES", "ATTRIBUTE_NAMES", "SPLITS", "OOD_KINDS", "RENDER_VERSION", "ToyFaces",
    "sample_attributes", "render", "attributes_to_labels", "ood_faces", "ood_region",
]


# ----------------------------------------------------------------------------- data set

class ToyFaces(Dataset):
    """The ToyFaces data set, materialised in memory as uint8.

    ``ds[i]`` -> ``(image, attributes)``: float ``(3, S, S)`` in [0, 1] and float ``(A,)``
    raw attribute values (see :data:`ATTRIBUTES`). For training use the tensors directly:
    ``ds.images`` uint8 ``(N, 3, S, S)``, ``ds.attributes`` float ``(N, A)``,
    ``ds.labels`` int64 ``(N, A)`` (one discrete class per attribute, for linear probes).

    Args (keyword-only):
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        size: number of images.
        image_size: side in pixels (any size >= 8; the course uses 16, 32, 64, 128).
        seed: the data set seed; image i is a pure function of (seed, split, i).
        overrides: fixed attribute values, e.g. ``{"smile": 1.0}`` or ``{"skin": "green"}``.
        background: ``"radial"`` (default) or ``"gradient"``, the vertical ramp of render
            version 4 that lets a border-colour classifier tell a rotation (chapter 05).
        cache: keep a copy on disk (``$COURSE_CACHE/toyfaces/``, through
            :func:`course_lib.cache.load_or_build`) so the next load takes milliseconds.
        device: where to render (default: CUDA when available, else CPU); the stored
            tensors always live on the CPU. GPU float rounding can move a few pixels by
            1/255 relative to the CPU; the exact-determinism guarantee is for the CPU.
    """

    ATTRIBUTES = ATTRIBUTES
    ATTRIBUTE_NAMES = ATTRIBUTE_NAMES

    def __init__(self, *, split: str = "train", size: int, image_size: int = 64, seed: int = 0,
                 overrides: dict | None = None, background: str = "radial", cache: bool = True,
                 device=None):
        _check_split(split)
        if background not in BACKGROUND_STYLES:
            raise ValueError(f"background must be one of {BACKGROUND_STYLES}, got {background!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        check_seed(seed, "ToyFaces seed")
        if overrides is not None and not isinstance(overrides, dict):
            raise TypeError(f"overrides must be a dict {{attribute: value}}, got {type(overrides).__name__}")
        self.split, self.size, self.image_size, self.seed = split, size, image_size, seed
        self.overrides, self.background = dict(overrides or {}), background
        # the cache key: everything the pixels depend on, and the drawing's version
        key = {"split": split, "size": size, "image_size": image_size, "seed": seed,
               "overrides": sorted(self.overrides.items()), "background": background}
        name = f"{split}_{size}_{image_size}px"
        self.cache_path = cache_path(name, key, folder="toyfaces", data_version=RENDER_VERSION)[0]

        def build() -> dict:
            attrs = sample_attributes(size, seed, self.overrides, split=split)
            where = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
            images = render(attrs, image_size, device=where, background=background)
            return {"images": to_uint8(images).cpu(), "attributes": attrs}

        data = load_or_build(name, build, key=key, folder="toyfaces", data_version=RENDER_VERSION) if cache else build()
        self.images: torch.Tensor = data["images"]          # uint8 (N, 3, S, S)
        self.attributes: torch.Tensor = data["attributes"]  # float (N, A)
        self.labels: torch.Tensor = attributes_to_labels(self.attributes)  # int64 (N, A)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        return to_float(self.images[i]), self.attributes[i]

    def column(self, name: str) -> torch.Tensor:
        """Raw values of one attribute, float (N,)."""
        if name not in _INDEX:
            raise KeyError(f"unknown ToyFaces attribute {name!r}; known: {ATTRIBUTE_NAMES}")
        return self.attributes[:, _INDEX[name]]

    def __repr__(self) -> str:
        return (f"ToyFaces(split={self.split!r}, size={self.size}, image_size={self.image_size}, "
                f"seed={self.seed}, overrides={self.overrides}"
                + (f", background={self.background!r})" if self.background != "radial" else ")"))
