"""Figures the chapters share: a batch of images as one grid.

Every chapter shows faces (real, reconstructed, generated, inpainted) the same way:
:func:`show_images` lays a batch out in rows of ``nrow`` with a one-pixel white border and
returns the Axes, so a chapter can put several grids in one figure
(``fig, axes = plt.subplots(...)``, then ``show_images(x, ax=axes[0])``). Training curves
are :meth:`course_lib.history.History.plot`. :func:`class_colours` gives a scatter plot one
colour per class of a ToyFaces attribute, the colour the faces are drawn with when the
classes are colours, so a legend entry "mint" is not drawn orange.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from course_lib.faceattributes import ATTRIBUTE_NAMES, ATTRIBUTES
from course_lib.facedraw import BACKGROUND, EYES, HAIR, SKIN
from course_lib.images import to_float

__all__ = ["show_images", "class_colours"]

# the attributes whose classes are colours, and the palette ToyFaces draws them with
_PALETTES = {"background": BACKGROUND, "skin": SKIN, "hair_color": HAIR, "eye_color": EYES}


def show_images(images, *, nrow: int = 8, title: str | None = None, ax=None, scale: float = 1.0,
                pad_value: float = 1.0, fontsize: float = 10):
    """Plot a batch of images as one grid and return the matplotlib Axes.

    ``images``: a tensor (or array) ``(B, C, H, W)`` with C = 1 or 3, or ``(B, H, W)`` (grey);
    uint8 in 0..255 or float in [0, 1] (floats are clamped to [0, 1], so a model's slight
    overshoot shows as white, not as a warning). ``nrow``: images per row. ``ax``: draw
    into this Axes; by default a new figure sized ``scale`` inches per image.
    """
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, C, H, W) with C = 1 or 3, or (B, H, W); "
                         f"got shape {tuple(images.shape)}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int (images per row), got {nrow!r}")
    images = to_float(images).clamp(0, 1)
    if ax is None:
        rows = math.ceil(len(images) / nrow)
        ax = plt.figure(figsize=(scale * min(nrow, len(images)), scale * (rows + 0.3))).gca()
    grid = make_grid(images, nrow=nrow, padding=1, pad_value=pad_value)  # (3, H', W'); grey repeated
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize)
    return ax


def class_colours(attribute: str) -> list[tuple[float, float, float]]:
    """One RGB colour (in [0, 1]) per class of the ToyFaces attribute ``attribute``, in class order.

    Colour attributes (background, skin, hair_color, eye_color) get the colour ToyFaces draws
    each class with, so a legend reads true (draw pale ones with a dark edge to see them on
    white); every other attribute gets matplotlib's ``tab10`` colours.
    """
    if attribute not in ATTRIBUTE_NAMES:
        raise ValueError(f"unknown attribute {attribute!r}; ToyFaces has {list(ATTRIBUTE_NAMES)}")
    n = ATTRIBUTES[ATTRIBUTE_NAMES.index(attribute)].num_classes
    if attribute in _PALETTES:
        return [tuple(float(v) for v in rgb) for rgb in _PALETTES[attribute][:n]]
    return [tuple(float(v) for v in plt.cm.tab10(i % 10)[:3]) for i in range(n)]
