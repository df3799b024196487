"""Shortcuts: can a pretext task be solved without looking at the object?

A pretext task teaches only what it cannot be solved without. Rotation prediction
(Gidaris et al. 2018) is meant to need the object; if the background changes along one
axis (a vertical gradient, a horizon), the rotation can be read off the border colours and
the network learns nothing about faces. Doersch et al. (2015, section 3.1) found the
same for patch position: chromatic aberration told where a patch came from.

:func:`border_rotation_probe` is the trivial classifier that tests for it: a logistic
regression on the mean colour of the four border strips (top, bottom, left, right: 12
numbers) of randomly rotated images. Chance is 0.25; the old vertical gradient
(``ToyFaces(background="gradient")``) gives ~1.0. :func:`shortcut_finding` says, from the
probe's accuracies and the pretext network's, whether the border is at chance, a cue that
explains part of the task, or enough to solve it.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .runtime import seeded_generator
from .stats import mean_ci

__all__ = ["border_strips", "border_rotation_probe", "shortcut_finding"]


def border_strips(images: torch.Tensor, *, width: int = 2) -> torch.Tensor:
    """Mean colour of the top, bottom, left and right strips of ``width`` pixels.

    ``images`` (B, C, H, W), float or uint8 -> float (B, 4 * C), strips in that order.
    """
    if images.dim() != 4 or min(images.shape[2:]) < 2 * width or width < 1:
        raise ValueError(f"expected images (B, C, H, W) with H, W >= 2 * width, got "
                         f"{tuple(images.shape)} and width={width}")
    x = images.float()
    return torch.cat([x[:, :, :width].mean((2, 3)), x[:, :, -width:].mean((2, 3)),
                      x[:, :, :, :width].mean((2, 3)), x[:, :, :, -width:].mean((2, 3))], dim=1)


def border_rotation_probe(images: torch.Tensor, *, seed: int = 0, width: int = 2,
                          features=None) -> float:
    """Test accuracy of predicting a random rotation (0/90/180/270) from the border alone.

    Each image (B, C, H, H) is rotated by a random multiple of 90 degrees; a standardised
    logistic regression is fitted on the border strips of the first half and scored on the
    second. 0.25 is chance: well above it, rotation prediction has a shortcut.
    ``features(images, width)`` replaces :func:`border_strips` (chapter 05's exercise).
    """
    if images.dim() != 4 or images.shape[2] != images.shape[3] or len(images) < 40:
        raise ValueError(f"expected at least 40 square images (B, C, H, H), got {tuple(images.shape)}")
    k = torch.randint(0, 4, (len(images),), generator=seeded_generator(seed))
    rotated = torch.stack([torch.rot90(im, int(r), dims=(1, 2)) for im, r in zip(images, k)])
    strips = border_strips(rotated, width=width) if features is None else features(rotated, width=width)
    features, labels = torch.as_tensor(strips).float().numpy(), k.numpy()
    half = len(images) // 2
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(features[:half], labels[:half])
    return float(np.mean(probe.predict(features[half:]) == labels[half:]))


def shortcut_finding(accuracies, *, chance: float, network: float) -> str:
    """What a border-only probe's accuracies (one per probe seed) say, in one clause.

    At chance when their 95% interval holds ``chance``; otherwise the border carries a cue,
    and the pretext network's held-out accuracy ``network`` says how much of the task the cue
    can explain: all of it when the interval reaches the network's accuracy, part otherwise.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    low, high = mean_ci(acc) if np.ptp(acc) > 0 else (float(acc.mean()), float(acc.mean()))
    text = (f"border-only accuracy {acc.mean():.3f} [{low:.3f}, {high:.3f}] over {len(acc)} probe seeds "
            f"(chance {chance}): ")
    if low <= chance <= high:
        return text + "at chance, the border does not tell the rotation"
    if high >= network:
        return text + (f"the border alone reaches the network's {network:.3f}: a shortcut, the task can be "
                       "solved without the face")
    return text + (f"above chance, so the border carries a cue, but below the network's {network:.3f}: "
                   "the cue can explain part of the task, not all of it; the rest needs the face")

