"""Masks for inpainting (chapter 04): which pixels the model must fill in.

Convention used everywhere in the course: a mask is float ``(B, 1, H, W)`` with
**1 = hole (missing)** and **0 = known**. :func:`apply_mask` blanks the holes.

Kinds (Pathak et al. 2016, Context Encoders, compare central block, random blocks and
random regions; the article's task is "given the top half, predict the bottom half"):

- ``center``: one centred square covering ``coverage`` of the image.
- ``blocks``: random axis-aligned rectangles added until ``coverage`` is reached.
- ``half``: the ``side`` (``top``/``bottom``/``left``/``right``) strip covering ``coverage``
  of the image (``coverage=0.5``: the article's half image).
- ``freeform``: thick random brush strokes (as in free-form inpainting, Yu et al. 2019)
  added until ``coverage`` is reached.

Randomness comes from a CPU ``torch.Generator`` (``seed=`` or ``generator=``), so the same
seed gives the same masks on every device; masks are then built on ``device``.
"""
from __future__ import annotations

import math

import torch

from .inputs import check_float_images, check_mask, check_seed
from .runtime import seeded_generator

__all__ = ["MASK_KINDS", "SIDES", "make_masks", "apply_mask", "mask_coverage"]

MASK_KINDS = ("center", "blocks", "half", "freeform")
SIDES = ("top", "bottom", "left", "right")


def mask_coverage(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of hole pixels per image: (B,) float."""
    check_mask(mask)
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W) with 1 = hole, got shape {tuple(mask.shape)}")
    return mask.flatten(1).mean(1)


def _center(batch, size, coverage, device):
    side = int(round(math.sqrt(coverage) * size))
    lo = (size - side) // 2
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[:, :, lo:lo + side, lo:lo + side] = 1.0
    return mask


def _half(batch, size, coverage, side, device):
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    k = int(round(coverage * size))
    mask = torch.zeros(batch, 1, size, size, device=device)
    if side == "top":
        mask[:, :, :k, :] = 1.0
    elif side == "bottom":
        mask[:, :, size - k:, :] = 1.0
    elif side == "left":
        mask[:, :, :, :k] = 1.0
    else:
        mask[:, :, :, size - k:] = 1.0
    return mask


def _blocks(batch, size, coverage, g, device, max_shapes=64):
    """Add random rectangles (sides 10-35% of the image) per image until coverage is met."""
    ys = torch.arange(size, device=device).view(1, size, 1)
    xs = torch.arange(size, device=device).view(1, 1, size)
    mask = torch.zeros(batch, size, size, device=device)
    sides = (torch.rand(max_shapes, batch, 2, generator=g) * 0.25 + 0.10) * size
    corners = torch.rand(max_shapes, batch, 2, generator=g)
    for k in range(max_shapes):
        need = (mask.flatten(1).mean(1) < coverage).view(batch, 1, 1)
        if not need.any():
            break
        h, w = sides[k, :, 0].to(device), sides[k, :, 1].to(device)
        y0 = corners[k, :, 0].to(device) * (size - h)
        x0 = corners[k, :, 1].to(device) * (size - w)
        box = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + h).view(-1, 1, 1))
               & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + w).view(-1, 1, 1)))
        mask = torch.where(need & box, torch.ones_like(mask), mask)
    return mask.unsqueeze(1)


def _freeform(batch, size, coverage, g, device, max_segments=96):
    """Random-walk brush strokes of width 6-12% of the image until coverage is met."""
    ys = torch.arange(size, device=device, dtype=torch.float32).view(1, size, 1) + 0.5
    xs = torch.arange(size, device=device, dtype=torch.float32).view(1, 1, size) + 0.5
    mask = torch.zeros(batch, size, size, device=device)
    start = torch.rand(batch, 2, generator=g) * size
    angle = torch.rand(max_segments, batch, generator=g) * 2 * math.pi
    length = (torch.rand(max_segments, batch, generator=g) * 0.2 + 0.1) * size
    width = (torch.rand(batch, generator=g) * 0.06 + 0.06) * size
    restart = torch.rand(max_segments, batch, generator=g) < 0.15   # begin a new stroke
    jump = torch.rand(max_segments, batch, 2, generator=g) * size
    p = start
    for k in range(max_segments):
        need = (mask.flatten(1).mean(1) < coverage).view(batch, 1, 1)
        if not need.any():
            break
        p = torch.where(restart[k].unsqueeze(1), jump[k], p)
        step = torch.stack([torch.sin(angle[k]), torch.cos(angle[k])], 1) * length[k].unsqueeze(1)
        q = (p + step).clamp(0, size)
        a, b = p.to(device), q.to(device)
        # Distance from every pixel to the segment a-b (a capsule of radius width/2).
        ab = (b - a).view(batch, 2, 1, 1)
        t = (((ys - a[:, 0].view(-1, 1, 1)) * ab[:, 0] + (xs - a[:, 1].view(-1, 1, 1)) * ab[:, 1])
             / (ab[:, 0] ** 2 + ab[:, 1] ** 2).clamp_min(1e-6)).clamp(0, 1)
        dy = ys - (a[:, 0].view(-1, 1, 1) + t * ab[:, 0])
        dx = xs - (a[:, 1].view(-1, 1, 1) + t * ab[:, 1])
        inside = (dy**2 + dx**2) <= (width.to(device).view(-1, 1, 1) / 2) ** 2
        mask = torch.where(need & inside, torch.ones_like(mask), mask)
        p = q
    return mask.unsqueeze(1)


def make_masks(kind: str, *, batch: int, image_size: int, coverage: float = 0.25,
               seed: int | None = None, generator: torch.Generator | None = None,
               device=None, side: str = "bottom") -> torch.Tensor:
    """A batch of inpainting masks: float ``(batch, 1, image_size, image_size)``, 1 = hole.

    ``coverage`` in (0, 1) is the target fraction of hole pixels: exact up to rounding for
    ``center`` and ``half``; for ``blocks``/``freeform`` shapes are added until it is reached
    (so it is met or slightly exceeded, typically within +0.1). ``side`` only matters for
    ``half``. Same ``seed`` -> same masks, on any ``device`` (no seed and no generator means
    seed 0: pass a ``generator`` in a training loop to get new masks every step).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if seed is not None:
        check_seed(seed, "make_masks: seed")
    if not 0.0 < float(coverage) < 1.0:
        raise ValueError(f"coverage must be a fraction in (0, 1), got {coverage!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    if kind == "center":
        return _center(batch, image_size, coverage, device)
    if kind == "half":
        return _half(batch, image_size, coverage, side, device)
    g = seeded_generator(seed, generator)
    if kind == "blocks":
        return _blocks(batch, image_size, coverage, g, device)
    return _freeform(batch, image_size, coverage, g, device)


def apply_mask(images: torch.Tensor, mask: torch.Tensor, fill=0.0) -> torch.Tensor:
    """Blank the holes: ``images * (1 - mask) + fill * mask``.

    ``images`` float (B, C, H, W); ``mask`` (B, 1, H, W) or (1, 1, H, W) with 1 = hole.
    ``fill``: a number, a tensor broadcastable to the images (e.g. the data set's mean
    colour, shape (C,) or (C, 1, 1)), or ``"mean"`` for the mean colour of the *known*
    pixels of this batch (Context Encoders fill the hole with the mean pixel).
    """
    check_float_images(images, "images")
    check_mask(mask)
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching images {tuple(images.shape)}, "
                         f"got {tuple(mask.shape)}")
    mask = mask.to(images.dtype)
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"fill must be a number, a tensor or 'mean', got {fill!r}")
        known = (1.0 - mask).expand_as(images)
        fill = (images * known).sum((0, 2, 3)) / known.sum((0, 2, 3)).clamp_min(1.0)
    if isinstance(fill, torch.Tensor):
        fill = fill.to(images)
        if fill.dim() == 1:
            fill = fill.view(1, -1, 1, 1)
    return images * (1.0 - mask) + fill * mask
