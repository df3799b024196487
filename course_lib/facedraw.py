"""Drawing ToyFaces: raw attributes (see :mod:`course_lib.faceattributes`) to images.

:func:`render` turns raw attributes (N, A) into float images in [0, 1];
:func:`ood_faces` draws out-of-distribution faces for anomaly detection and
:func:`ood_region` marks, pixel by pixel, where each of them differs from its normal twin.

How it is fast (thousands of images per second on 2 CPU cores):

1. Every face part is drawn in a *canonical face frame* (u right, v down, both in
   [-1, 1]) where each part sits in a fixed bounding box, so each part is computed only on
   its own slice of the canvas, for the whole batch at once (plain tensor slicing).
2. Shapes are signed distance functions; pixel coverage ``clamp(0.5 - d / pixel, 0, 1)``
   gives anti-aliased edges. Layers are composited with premultiplied alpha.
3. One ``grid_sample`` per batch places the face layer (position, scale, tilt) over a
   radial background (symmetric under rotation, so the background tells no orientation).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from .faceattributes import _INDEX, ATTRIBUTES, sample_attributes

__all__ = ["RENDER_VERSION", "BACKGROUND_STYLES", "OOD_KINDS", "MIRRORED", "render", "mirror_attributes",
           "ood_faces", "ood_region"]

RENDER_VERSION = 5  # bump when the drawing changes: invalidates on-disk caches
# 5: radial background (4 had a vertical gradient that told a rotation from the border).
BACKGROUND_STYLES = ("radial", "gradient")

# Every part is drawn symmetric about the face's vertical axis, so a left-right mirror of a face
# is the face drawn with these attributes negated; their ranges are symmetric about 0, so the
# mirrored face is as likely a ToyFace as the original (chapter 05's flip prediction).
MIRRORED = ("head_x", "tilt", "light")

OOD_KINDS = ("green_skin", "blue_skin", "no_mouth", "three_eyes", "no_eyes", "upside_down",
             "huge_eyes")

# Palettes (RGB in [0, 1]); out-of-distribution skin tones follow the six normal ones.
SKIN = [(0.98, 0.87, 0.77), (0.94, 0.78, 0.64), (0.85, 0.65, 0.48), (0.70, 0.50, 0.35),
        (0.52, 0.36, 0.24), (0.36, 0.24, 0.16), (0.45, 0.80, 0.40), (0.45, 0.55, 0.92)]
HAIR = [(0.08, 0.07, 0.07), (0.42, 0.25, 0.12), (0.93, 0.80, 0.42), (0.78, 0.30, 0.10),
        (0.70, 0.70, 0.72)]
EYES = [(0.38, 0.20, 0.08), (0.15, 0.45, 0.90), (0.20, 0.62, 0.25), (0.55, 0.58, 0.62)]
BACKGROUND = [(0.55, 0.75, 0.95), (0.62, 0.90, 0.75), (0.78, 0.68, 0.92), (0.98, 0.75, 0.60),
              (0.75, 0.75, 0.75), (0.97, 0.92, 0.55)]
HAT = (0.18, 0.22, 0.48)


# ----------------------------------------------------------------------------- drawing

def _cov(d: torch.Tensor, px: float) -> torch.Tensor:
    """Anti-aliased coverage of the shape ``d <= 0`` (d in face units, px = unit/pixel)."""
    return (0.5 - d / px).clamp_(0.0, 1.0)


def _ellipse(u, v, rx, ry):
    """Approximate signed distance to an axis-aligned ellipse (Quilez's k0*(k0-1)/k1)."""
    k0 = torch.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    k1 = torch.sqrt((u / rx**2) ** 2 + (v / ry**2) ** 2).clamp_min(1e-6)
    return k0 * (k0 - 1.0) / k1


def _box(u, v, hx, hy, r=0.0):
    """Signed distance to a box of half sizes (hx, hy) with corner radius r."""
    qx, qy = u.abs() - hx + r, v.abs() - hy + r
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx)) - r


class _Canvas:
    """Premultiplied RGBA face layer (B, 4, C, C) in the canonical frame [-1, 1]^2."""

    def __init__(self, batch: int, size: int, device):
        self.rgba = torch.zeros(batch, 4, size, size, device=device)
        self.size, self.px = size, 2.0 / size
        self.grid = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * self.px - 1.0

    def region(self, u0, u1, v0, v1):
        """Pixel slices and (1,h,1)/(1,1,w) coordinates of the box [u0,u1]x[v0,v1]."""
        c = lambda t: min(self.size, max(0, int(math.floor((t + 1.0) / self.px))))  # noqa: E731
        cs, rs = slice(c(u0), c(u1) + 1), slice(c(v0), c(v1) + 1)
        return rs, cs, self.grid[cs].view(1, 1, -1), self.grid[rs].view(1, -1, 1)

    def paint(self, rs, cs, coverage, color):
        """Composite ``color`` (B,3) or (B,3,h,w) with ``coverage`` (B,h,w) over the layer."""
        a = coverage.unsqueeze(1)                                    # (B or 1, 1, h, w)
        if color.dim() == 2:
            color = color[:, :, None, None]
        region = self.rgba[:, :, rs, cs]                             # a view: paint in place
        region.mul_(1.0 - a)                                         # "over", premultiplied
        region[:, :3].add_(color * a)
        region[:, 3:].add_(a)


def _col(table, idx, device):
    t = torch.tensor(table, dtype=torch.float32, device=device)
    return t[idx.long().clamp(0, len(table) - 1)]                    # (B, 3)


def _draw_batch(attrs: torch.Tensor, image_size: int, mouth: bool, third_eye: bool,
                eyes: bool, background: str = "radial") -> torch.Tensor:
    """Render raw attributes (B, A) on attrs.device -> float images (B, 3, S, S) in [0, 1]."""
    dev, B = attrs.device, attrs.shape[0]
    a = {n: attrs[:, i].view(B, 1, 1) for n, i in _INDEX.items()}
    cv = _Canvas(B, image_size, dev)
    px = cv.px
    skin = _col(SKIN, attrs[:, _INDEX["skin"]], dev)
    hair = _col(HAIR, attrs[:, _INDEX["hair_color"]], dev)
    style = attrs[:, _INDEX["hair_style"]].view(B, 1, 1)
    rx = 0.36 + 0.22 * a["face_width"]                               # face half-width
    fy = 0.08                                                        # face centre (v)

    # Long hair falls behind the head.
    rs, cs, u, v = cv.region(-0.8, 0.8, -0.72, 0.9)
    d = _box(u, v - 0.12, rx + 0.13, 0.74, 0.32)
    cv.paint(rs, cs, _cov(d, px) * (style == 2), hair)
    # Face, shaded by the light direction (a linear ramp across the face).
    rs, cs, u, v = cv.region(-0.6, 0.6, -0.56, 0.72)
    face = _ellipse(u, v - fy, rx, 0.62)
    shade = 1.0 + 0.25 * a["light"] * (u / rx).clamp(-1, 1) - 0.08
    color = (skin[:, :, None, None] * shade.unsqueeze(1)).clamp(0, 1)
    cv.paint(rs, cs, _cov(face, px), color)
    # Beard: the lower face in hair colour, leaving the mouth area bare (smile stays visible).
    rs, cs, u, v = cv.region(-0.62, 0.62, 0.18, 0.74)
    d = torch.maximum(_ellipse(u, v - fy, rx + 0.02, 0.64), 0.24 - v)
    d = torch.maximum(d, -_ellipse(u, v - 0.36, 0.31, 0.16))
    cv.paint(rs, cs, _cov(d, px) * (a["beard"] > 0.5), hair * 0.9)
    # Nose: a darker small ellipse.
    rs, cs, u, v = cv.region(-0.06, 0.06, 0.08, 0.24)
    cv.paint(rs, cs, _cov(_ellipse(u, v - 0.16, 0.04, 0.06), px), skin * 0.78)
    # Mouth: a thick parabola, centre lowered and corners raised by a positive smile.
    if mouth:
        rs, cs, u, v = cv.region(-0.26, 0.26, 0.18, 0.54)
        w, s = 0.21, a["smile"]
        curve = 0.36 + 0.13 * s * (1.0 - 2.0 * (u / w) ** 2)
        slope = -0.52 * s * u / w**2
        d = (v - curve).abs() / torch.sqrt(1 + slope**2) - 0.034
        d = torch.maximum(d, u.abs() - w)
        cv.paint(rs, cs, _cov(d, px), torch.tensor([[0.50, 0.08, 0.12]], device=dev).expand(B, 3))
    # Eyes: mirrored about u = 0 (|u|), white, iris clipped to the white, pupil.
    def eye(cx: float, cy: float, mirrored: bool) -> None:
        half = 0.39 if mirrored else 0.17
        rs, cs, u, v = cv.region(-half, half, cy - 0.13, cy + 0.13)
        uu, vv = (u.abs() if mirrored else u) - cx, v - cy
        size, op = a["eye_size"], a["eye_open"]
        white = _ellipse(uu, vv, 0.115 * size, 0.085 * size * op)
        cv.paint(rs, cs, _cov(white, px), torch.ones(B, 3, device=dev))
        iris = torch.maximum(torch.sqrt(uu**2 + vv**2) - 0.068 * size, white)
        cv.paint(rs, cs, _cov(iris, px), _col(EYES, attrs[:, _INDEX["eye_color"]], dev))
        pupil = torch.maximum(torch.sqrt(uu**2 + vv**2) - 0.026 * size, white)
        cv.paint(rs, cs, _cov(pupil, px), torch.zeros(B, 3, device=dev))

    if eyes:
        eye(0.21, 0.0, mirrored=True)
    # Eyebrows: short bars above the eyes, hair coloured (visible even when bald).
    rs, cs, u, v = cv.region(-0.36, 0.36, -0.26, -0.08)
    d = _box(u.abs() - 0.21, v + 0.165, 0.08, 0.018, 0.015)
    cv.paint(rs, cs, _cov(d, px), hair)
    # Hair on top: a cap cut by a horizontal line (bangs: lower and wavy).
    rs, cs, u, v = cv.region(-0.7, 0.7, -0.74, 0.02)
    cut = torch.where(style == 3, -0.06 + 0.04 * torch.cos(u * 28.0), torch.full_like(style, -0.30))
    d = torch.maximum(_ellipse(u, v - 0.02, rx + 0.06, 0.70), v - cut)
    cv.paint(rs, cs, _cov(d, px) * (style > 0.5), hair)
    if third_eye:  # out of distribution: drawn over the hair so it is always visible
        eye(0.0, -0.27, mirrored=False)
    # Glasses: two rings and a bridge.
    rs, cs, u, v = cv.region(-0.4, 0.4, -0.18, 0.18)
    ring = (torch.sqrt((u.abs() - 0.21) ** 2 + v**2) - 0.145).abs() - 0.02
    d = torch.minimum(ring, _box(u, v + 0.01, 0.07, 0.014))
    cv.paint(rs, cs, _cov(d, px) * (a["glasses"] > 0.5), torch.full((B, 3), 0.1, device=dev))
    # Hat: crown and brim.
    rs, cs, u, v = cv.region(-0.72, 0.72, -1.0, -0.48)
    d = torch.minimum(_box(u, v + 0.80, 0.40, 0.22, 0.05), _box(u, v + 0.56, 0.66, 0.05, 0.03))
    cv.paint(rs, cs, _cov(d, px) * (a["hat"] > 0.5), torch.tensor([HAT], device=dev).expand(B, 3))

    # Place the face layer: output coordinate p samples the canvas at R(-tilt)(p - c)/s.
    t, s = attrs[:, _INDEX["tilt"]], attrs[:, _INDEX["head_scale"]]
    cx, cy = attrs[:, _INDEX["head_x"]], attrs[:, _INDEX["head_y"]]
    cos, sin = (torch.cos(t) / s).view(B, 1, 1), (torch.sin(t) / s).view(B, 1, 1)
    p = (torch.arange(image_size, device=dev, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1
    x = p.view(1, 1, -1) - cx.view(B, 1, 1)                         # (B, 1, S) pixel centres
    y = p.view(1, -1, 1) - cy.view(B, 1, 1)                         # (B, S, 1)
    grid = torch.stack([cos * x + sin * y, cos * y - sin * x], dim=-1)  # (B, S, S, 2)
    layer = F.grid_sample(cv.rgba, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)                       # (B, 4, S, S)
    bg = _col(BACKGROUND, attrs[:, _INDEX["background"]], dev)[:, :, None, None]
    ramp = torch.linspace(0.0, 1.0, image_size, device=dev)
    if background == "radial":
        # The chosen hue, darker towards the corners: the same under every rotation and
        # flip of the square, so the background tells no orientation (what the face puts near
        # the border still can a little: chapter 05's border probe measures it).
        r2 = (2 * ramp - 1).view(1, -1) ** 2 + (2 * ramp - 1).view(-1, 1) ** 2  # (S, S)
        back = bg * (1.0 - 0.175 * r2)                               # (B, 3, S, S)
    else:
        # RENDER_VERSION <= 4: the hue at the top, darker towards the bottom. A logistic
        # regression on the border's mean colour tells the rotation of such an image
        # (chapter 05's shortcut exercise keeps it for that lesson).
        back = bg * (1.0 - 0.35 * ramp.view(1, 1, -1, 1))          # (B, 3, S, 1)
    return (layer[:, :3] + back * (1.0 - layer[:, 3:])).clamp_(0.0, 1.0)


def mirror_attributes(attributes: torch.Tensor) -> torch.Tensor:
    """The raw attributes ``(N, A)`` of the faces' left-right mirror images: :data:`MIRRORED`
    negated, everything else kept (``render(mirror_attributes(a))`` equals ``render(a).flip(3)``
    up to float rounding)."""
    if attributes.dim() != 2 or attributes.shape[1] != len(ATTRIBUTES):
        raise ValueError(f"expected raw attributes (N, {len(ATTRIBUTES)}), got {tuple(attributes.shape)}")
    mirrored = attributes.clone()
    for name in MIRRORED:
        mirrored[:, _INDEX[name]] = -mirrored[:, _INDEX[name]]
    return mirrored


def render(attributes: torch.Tensor, image_size: int = 64, *, device=None, batch_size: int = 256,
           mouth: bool = True, third_eye: bool = False, eyes: bool = True,
           background: str = "radial") -> torch.Tensor:
    """Render raw attributes (N, A) to float images (N, 3, image_size, image_size) in [0, 1].

    Rendering runs on ``device`` (default: the attributes' device; pass ``"cuda"`` to use a
    GPU) in chunks of ``batch_size``; the result stays on that device. ``mouth``,
    ``third_eye`` and ``eyes`` switch parts for out-of-distribution faces. ``background``:
    ``"radial"`` (the default: symmetric under rotations and flips) or ``"gradient"`` (the
    vertical ramp of render version 4, which gives a rotation away by its border).
    """
    if background not in BACKGROUND_STYLES:
        raise ValueError(f"background must be one of {BACKGROUND_STYLES}, got {background!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if attributes.dim() != 2 or attributes.shape[1] != len(ATTRIBUTES):
        raise ValueError(f"attributes must be (N, {len(ATTRIBUTES)}) raw values "
                         f"(see ATTRIBUTE_NAMES), got {tuple(attributes.shape)}")
    attributes = attributes.to(device or attributes.device, torch.float32)
    draw = lambda chunk: _draw_batch(chunk, image_size, mouth, third_eye, eyes, background)  # noqa: E731
    chunks = attributes.split(batch_size)
    workers = min(torch.get_num_threads(), os.cpu_count() or 1, len(chunks))
    with torch.no_grad():
        if attributes.device.type != "cpu" or workers == 1:
            return torch.cat([draw(chunk) for chunk in chunks])
        # On CPU the drawing is many small memory-bound ops, where torch's intra-op threads
        # mostly wait on each other. One single-threaded chunk per core scales instead.
        # Every image is computed independently, so the result does not depend on chunking.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                return torch.cat(list(pool.map(draw, chunks)))
        finally:
            torch.set_num_threads(threads)


def _ood_recipe(kind: str) -> tuple[dict, dict]:
    """(attribute overrides, part switches for :func:`render`) of an out-of-distribution kind."""
    overrides, parts = {}, {}
    if kind == "green_skin":
        overrides["skin"] = "green"
    elif kind == "blue_skin":
        overrides["skin"] = "blue"
    elif kind == "upside_down":
        overrides["tilt"] = math.pi
    elif kind == "huge_eyes":
        overrides["eye_size"] = 2.0
    elif kind == "no_mouth":
        parts["mouth"] = False
    elif kind == "three_eyes":
        parts["third_eye"] = True
    elif kind == "no_eyes":
        parts["eyes"] = False
    else:
        raise ValueError(f"unknown out-of-distribution kind {kind!r}; expected one of {OOD_KINDS}")
    return overrides, parts


_OOD_START = 10_000_000  # out-of-distribution faces come from their own part of the test stream


def ood_faces(kind: str, n: int, image_size: int = 64, seed: int = 0, *, device=None):
    """Out-of-distribution faces for anomaly detection: (images (n,3,S,S), raw attributes).

    Kinds (:data:`OOD_KINDS`): green_skin, blue_skin, no_mouth, three_eyes, no_eyes,
    upside_down (tilt = pi), huge_eyes (eye_size 2.0). Drawn from the ``test`` stream.
    """
    overrides, parts = _ood_recipe(kind)
    attrs = sample_attributes(n, seed, overrides, split="test", start=_OOD_START)
    return render(attrs, image_size, device=device, **parts), attrs


def ood_region(kind: str, n: int, image_size: int = 64, seed: int = 0, *, threshold: float = 0.05,
               device=None) -> torch.Tensor:
    """Where the anomaly is: float masks (n, 1, S, S), 1 = anomalous pixel, of the faces
    ``ood_faces(kind, n, image_size, seed)`` returns (same arguments, same faces).

    Each face has a *normal twin*: the same drawn attributes without the anomaly (the
    override is applied after sampling, so the twin keeps the skin tone, eye size or tilt
    it would have had; the switched-off part is drawn again). A pixel is anomalous where
    the two images differ by more than ``threshold`` in some channel: three_eyes marks the
    extra eye, no_mouth the missing mouth, green_skin / blue_skin the visible skin,
    huge_eyes both eyes at either size, no_eyes the eyes, upside_down most of the head.
    Deterministic: it renders, it does not sample anything new.
    """
    overrides, parts = _ood_recipe(kind)
    anomalous = render(sample_attributes(n, seed, overrides, split="test", start=_OOD_START),
                       image_size, device=device, **parts)                    # (n, 3, S, S)
    twin = render(sample_attributes(n, seed, split="test", start=_OOD_START), image_size,
                  device=device)                                              # (n, 3, S, S)
    return ((anomalous - twin).abs().amax(1, keepdim=True) > threshold).float()  # (n, 1, S, S)
