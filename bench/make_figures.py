"""Make the ToyFaces figures for the README and chapter 00.

Run: ``.venv/bin/python bench/make_figures.py`` ->
docs/figures/toyfaces_montage.png (variety: random training faces, 64 px, and a row of
out-of-distribution faces) and docs/figures/toyfaces_sweeps.png (one attribute changed at a
time, everything else fixed).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from course_lib import toyfaces as tf

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def grid(images: torch.Tensor, ncol: int, pad: int = 2) -> torch.Tensor:
    """(N, 3, S, S) -> one (H, W, 3) picture with white padding."""
    n, _, s, _ = images.shape
    nrow = (n + ncol - 1) // ncol
    canvas = torch.ones(3, nrow * (s + pad) + pad, ncol * (s + pad) + pad)
    for k in range(n):
        r, c = divmod(k, ncol)
        canvas[:, pad + r * (s + pad):pad + r * (s + pad) + s,
               pad + c * (s + pad):pad + c * (s + pad) + s] = images[k]
    return canvas.permute(1, 2, 0)


def montage(path: Path, size: int = 64) -> None:
    faces = tf.render(tf.sample_attributes(40, seed=0, split="train"), size)
    kinds = ("green_skin", "no_mouth", "three_eyes", "huge_eyes", "upside_down")
    ood = torch.cat([tf.ood_faces(k, 2, size, seed=3)[0] for k in kinds])
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.6), gridspec_kw={"height_ratios": [4, 1]})
    axes[0].imshow(grid(faces, 10).numpy())
    axes[0].set_title(f"ToyFaces: 40 training images ({size}x{size}), each rendered from "
                      f"{len(tf.ATTRIBUTES)} known attributes", fontsize=11)
    axes[1].imshow(grid(ood, 10).numpy())
    axes[1].set_title("out of distribution (anomaly detection): " + ", ".join(kinds), fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweeps(path: Path, size: int = 64, steps: int = 7) -> None:
    """Rows: one attribute swept over its range (or its classes) from the same base face."""
    base = tf.sample_attributes(1, seed=11, split="train")[0]
    base[tf.ATTRIBUTE_NAMES.index("hair_style")] = 1.0
    base[tf.ATTRIBUTE_NAMES.index("hat")] = 0.0
    base[tf.ATTRIBUTE_NAMES.index("glasses")] = 0.0
    for name, value in (("eye_size", 1.15), ("eye_open", 0.9), ("smile", 0.4), ("tilt", 0.0),
                        ("head_x", 0.0), ("head_scale", 1.05), ("eye_color", 1.0)):
        base[tf.ATTRIBUTE_NAMES.index(name)] = value
    rows, labels = [], []
    for j, a in enumerate(tf.ATTRIBUTES):
        if a.kind == "continuous":
            values = torch.linspace(a.low, a.high, steps)
            label = f"{a.name}\n{a.low:g} .. {a.high:g}"
        else:
            values = torch.arange(a.num_classes, dtype=torch.float32)
            label = f"{a.name}\n" + ("/".join(a.choices) if a.kind == "binary" else
                                     f"{a.num_classes} classes")
        attrs = base.repeat(len(values), 1)
        attrs[:, j] = values
        imgs = tf.render(attrs, size)
        pad = torch.ones(steps - len(values), 3, size, size)
        rows.append(torch.cat([imgs, pad]))
        labels.append(label)
    half = (len(rows) + 1) // 2
    fig, axes = plt.subplots(half, 2, figsize=(12, 1.05 * half))
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, row, label in zip(axes.T.flat, rows, labels):
        ax.imshow(grid(row, steps, pad=1).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("ToyFaces: one attribute at a time", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    montage(OUT / "toyfaces_montage.png")
    sweeps(OUT / "toyfaces_sweeps.png")
    print("wrote", OUT / "toyfaces_montage.png", OUT / "toyfaces_sweeps.png")
