"""Pretext tasks on the shared backbone: rotations, training steps, probes, cached models.

- Jigsaw and tile positions (Noroozi & Favaro 2016; the article's section 3.2.2): the
  config, the tile models and the puzzle batch are in :mod:`course_lib.jigsaw`; their
  training steps, training and cached model are here.
- Rotation (Gidaris et al. 2018): rotate each image by k * 90 degrees and predict k.
- Flip (the article's section 2.2): mirror an image left-right or not, and predict which.

This module holds the rotation config, model and batch, the training steps of all pretext
tasks (and of the supervised upper bound), the pooled feature extractor of chapter 06's cycle
probe (the probe protocol itself is :mod:`course_lib.probe`), and the trained-once, cached
chapter-05 models.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .facedraw import MIRRORED, mirror_attributes
from .images import to_float
from .inputs import validate_fields
from .jigsaw import (
    JigsawConfig,
    JigsawNet,
    TileEncoder,  # noqa: F401  re-exported; it lives in course_lib.jigsaw
    TilePositionNet,
    jigsaw_batch,
)
from .loop import Step
from .profiles import choose
from .runtime import Runtime, backward_step
from .stats import mean_ci
from .toyfaces import ATTRIBUTES, ToyFaces, render
from .trainer import Recipe, fit


@dataclass(frozen=True)
class RotationConfig:
    """Hyperparameters of the rotation pretext task (Gidaris et al. 2018)."""

    image_size: int = 32            # the same resolution as the VAE and inpainting chapters
    train_size: int = 4000
    batch_size: int = 32            # images per batch; each appears in all 4 rotations
    steps: int = 400
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        validate_fields(self, {"image_size": "int >= 8", "train_size": "int >= 1", "batch_size": "int >= 1",
                               "steps": "int >= 1", "lr": "float > 0", "seed": "seed"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> RotationConfig:
        """The chapter's sizes for profile ``name``; also used by the supervised baseline."""
        return choose(
            smoke=cls(image_size=16, train_size=128, batch_size=8, steps=6),
            cpu=cls(image_size=32, train_size=4000, batch_size=32, steps=400),
            gpu=cls(image_size=64, train_size=20000, batch_size=64, steps=3000),
            profile=name,
        )

    def build(self) -> BackboneClassifier:
        return BackboneClassifier(num_classes=(4,))


class BackboneClassifier(nn.Module):
    """Backbone + global pool + linear heads: rotation prediction or supervised attributes.

    Input (B, 3, H, W) in [0, 1]; output (B, sum(num_classes)) logits (split per head).
    ``num_classes=(4,)`` is the rotation model of Gidaris et al.; one entry per ToyFaces
    attribute gives the supervised upper bound of the probe table.
    """

    def __init__(self, *, num_classes: tuple[int, ...] = (4,), backbone: ConvBackbone | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else ConvBackbone()
        self.num_classes = tuple(int(c) for c in num_classes)
        self.head = nn.Linear(self.backbone.out_channels * 4, sum(self.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.adaptive_avg_pool2d(self.backbone(x), 2)    # (B, 128, 2, 2)
        return self.head(h.flatten(1))                    # (B, sum(num_classes))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over heads; ``labels`` (B, n_heads) int64."""
        parts = torch.split(logits, self.num_classes, dim=1)
        return sum(F.cross_entropy(p, labels[:, i]) for i, p in enumerate(parts)) / len(parts)


# --- batches -------------------------------------------------------------------------------

def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image in all four rotations (Gidaris et al. 2018).

    Input (B, C, H, W) with H == W. Output ``(rotated (4B, C, H, W), labels (4B,))``,
    k-major: rows ``k*B .. k*B + B - 1`` are the images rotated by ``k * 90`` degrees
    counter-clockwise (``torch.rot90(images, k, dims=(2, 3))``), with label ``k``.
    """
    if images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected square images (B, C, H, H), got {tuple(images.shape)}")
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def flip_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image as is (label 0) and mirrored left-right (label 1): the article's "image
    flip prediction" (section 2.2). (B, C, H, W) -> ``(flipped (2B, C, H, W), labels (2B,))``.
    A left-right symmetric image looks the same both ways, so on faces this task is only as
    solvable as the faces are asymmetric (tilt, head position, light, hair parting)."""
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got {tuple(images.shape)}")
    flipped = torch.cat([images, images.flip(3)])
    labels = torch.arange(2, device=images.device).repeat_interleave(images.shape[0])
    return flipped, labels


# --- training steps ------------------------------------------------------------------------

def _step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)


def _classification_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                         labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """One cross-entropy update of a pretext classifier on inputs ``x`` and class ``labels`` (N,)."""
    model.train()
    logits = model(x).float()
    loss = F.cross_entropy(logits, labels)
    _step(model, optimizer, loss)
    return {"loss": loss.detach(), "acc": (logits.argmax(1) == labels).float().mean()}


def jigsaw_step(model: JigsawNet, optimizer: torch.optim.Optimizer,
                tiles: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update on shuffled tiles (B, T, 3, t, t) and their permutation index (B,).
    Returns ``loss`` and ``acc`` as detached 0-d tensors (as every step function here)."""
    return _classification_step(model, optimizer, tiles, index)


def position_step(model: TilePositionNet, optimizer: torch.optim.Optimizer,
                  tiles: torch.Tensor, positions: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update on shuffled tiles and per-tile targets ``positions`` (B, T)."""
    model.train()
    logits = model(tiles).float()                         # (B, T, T)
    loss = F.cross_entropy(logits.flatten(0, 1), positions.flatten())
    _step(model, optimizer, loss)
    return {"loss": loss.detach(), "acc": (logits.argmax(-1) == positions).float().mean()}


def rotation_step(model: BackboneClassifier, optimizer: torch.optim.Optimizer,
                  images: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update on a batch of upright images (B, 3, H, H); rotations are made here."""
    return _classification_step(model, optimizer, *rotation_batch(images))


def flip_step(model: BackboneClassifier, optimizer: torch.optim.Optimizer,
              images: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update of flip prediction on upright images (B, 3, H, W); flips are made here."""
    return _classification_step(model, optimizer, *flip_batch(images))


def supervised_step(model: BackboneClassifier, optimizer: torch.optim.Optimizer,
                    images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update of the supervised upper bound: images (B, 3, H, W), labels (B, A) int64."""
    model.train()
    loss = _loss_of(model)(model(images).float(), labels)
    _step(model, optimizer, loss)
    return {"loss": loss.detach()}


def _loss_of(model: nn.Module):
    return getattr(model, "module", model).loss  # through a DDP wrapper


# --- frozen features for linear probes -------------------------------------------------------

@torch.no_grad()
def probe_features(backbone: ConvBackbone, images: torch.Tensor, *, pool: int = 2,
                   standardised: bool = False, batch_size: int = 256) -> torch.Tensor:
    """The last backbone map average-pooled to ``pool x pool``: the fusion experiment's
    cycle probe (``experiments/fusion.py``, ``pool=1``). Chapter 05's probes, and any new
    one, use :mod:`course_lib.probe` (every layer, C tuned on validation).

    Input (N, 3, H, W) floats in [0, 1] or uint8; output (N, 128 * pool * pool) float32 on
    the CPU: the last backbone map average-pooled to ``pool x pool`` (keeps a coarse layout,
    so "glasses" and "beard" stay separable) and flattened. ``standardised``: feed
    :func:`standardise`-d images (for backbones pretrained on normalised tiles).
    """
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        x = to_float(x)
        x = standardise(x) if standardised else x
        h = F.adaptive_avg_pool2d(backbone(x), pool)      # (b, 128, pool, pool)
        out.append(h.flatten(1).cpu())
    backbone.train(was_training)
    return torch.cat(out)


def standardise(images: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel zero mean and unit std: the input statistics a backbone trained
    on normalised jigsaw tiles expects. (B, C, H, W) -> same shape."""
    mean = images.mean((2, 3), keepdim=True)
    return (images - mean) / (images.std((2, 3), keepdim=True) + 1e-5)


# --- training and cached pretrained models ------------------------------------------------------

def train_jigsaw(model: JigsawNet, config: JigsawConfig, *, images: torch.Tensor | None = None,
                 progress: bool | str = "auto", plan: Runtime | None = None,
                 checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Train ``model`` in place on ToyFaces puzzles (uint8 ``images`` at ``config.image_size``)."""
    perms = config.permutations()

    def setup(plan):
        net = plan.prepare(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        # tiles are cut and shuffled per image of this rank's share: a stream of its own per rank
        g = torch.Generator().manual_seed(config.seed + 1_000_003 * plan.rank)

        def step(x):
            tiles, index = jigsaw_batch(x, perms, config, g)
            return jigsaw_step(net, optimizer, tiles, index)
        return Step(step, generators=[g]), model, optimizer

    return fit(config, setup, desc=f"jigsaw {config.n_permutations} perms", images=images, plan=plan,
               progress=progress, checkpoint=checkpoint, callbacks=callbacks)


@torch.no_grad()
def jigsaw_accuracy(model: JigsawNet, images: torch.Tensor, config: JigsawConfig, *,
                    seed: int = 123, batch_size: int = 256) -> float:
    """Pretext accuracy on held-out images (uint8 or float (N, 3, S, S)): fraction of puzzles
    whose permutation is classified correctly."""
    model.eval()
    perms, g = config.permutations(), torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        x = to_float(x)
        tiles, index = jigsaw_batch(x, perms, config, g)
        correct += (model(tiles).argmax(1) == index).sum().item()
    return correct / len(images)


def train_rotation(model: BackboneClassifier, config: RotationConfig, *,
                   images: torch.Tensor | None = None, progress: bool | str = "auto",
                   plan: Runtime | None = None, checkpoint: str | os.PathLike | None = None,
                   callbacks=(), step_fn=rotation_step):
    """Train the rotation classifier in place (Gidaris et al. 2018). ``step_fn(model,
    optimizer, images)`` is one update (default :func:`rotation_step`; :func:`train_flip`
    passes :func:`flip_step`); its name without ``_step`` labels the progress."""
    def setup(plan):
        net, optimizer = plan.prepare(model), torch.optim.Adam(model.parameters(), lr=config.lr)
        return (lambda x: step_fn(net, optimizer, x)), model, optimizer

    return fit(config, setup, desc=step_fn.__name__.removesuffix("_step"), images=images, plan=plan,
               progress=progress, checkpoint=checkpoint, callbacks=callbacks)


@torch.no_grad()
def rotation_accuracy(model: BackboneClassifier, images: torch.Tensor) -> float:
    """Fraction of held-out images (all four rotations) whose rotation is predicted."""
    model.eval()
    x = to_float(images)
    rotated, labels = rotation_batch(x.to(next(model.parameters()).device))
    return (model(rotated).argmax(1) == labels).float().mean().item()


def train_flip(model: BackboneClassifier, config: RotationConfig, **options):
    """Train a 2-way flip classifier (``BackboneClassifier(num_classes=(2,))``) in place:
    :func:`train_rotation` with :func:`flip_step` (``options`` as there)."""
    return train_rotation(model, config, step_fn=flip_step, **options)


@torch.no_grad()
def flip_hits(model: BackboneClassifier, images: torch.Tensor) -> torch.Tensor:
    """Per held-out image and orientation, 1.0 where its flip is predicted: float ``(2B,)``,
    the images as they are first, then mirrored (as :func:`flip_batch` orders them)."""
    model.eval()
    x = to_float(images)
    flipped, labels = flip_batch(x.to(next(model.parameters()).device))
    return (model(flipped).argmax(1) == labels).float().cpu()


def flip_accuracy(model: BackboneClassifier, images: torch.Tensor) -> float:
    """Fraction of held-out images (as is and mirrored) whose flip is predicted (chance 0.5)."""
    return flip_hits(model, images).mean().item()


def mirror_twin_gap(attributes: torch.Tensor, image_size: int) -> tuple[float, float]:
    """Is a mirrored ToyFace another ToyFace? ``(twin, mirror)``: the mean absolute pixel
    difference between each face's mirror image and its *twin*, the face drawn with
    :data:`course_lib.facedraw.MIRRORED` negated, and between each face and its mirror image.
    ``twin`` at float rounding means every mirror image is a face the data set draws."""
    faces = render(attributes, image_size)
    twins = render(mirror_attributes(attributes), image_size)
    return (faces.flip(3) - twins).abs().mean().item(), (faces - faces.flip(3)).abs().mean().item()


def flip_finding(hits, *, twin_gap: float, mirror_gap: float, spread: dict[str, float]) -> str:
    """Flip prediction on ToyFaces in words: why 0.5 is the best any classifier can do, and
    what the trained one did. ``hits``: :func:`flip_hits`; ``twin_gap``, ``mirror_gap``:
    :func:`mirror_twin_gap`; ``spread[attribute]``: the largest minus the smallest flip
    accuracy across the attribute's classes."""
    low, high = mean_ci(hits)
    acc = float(torch.as_tensor(hits).float().mean())
    ranges = {a.name: (a.low, a.high) for a in ATTRIBUTES if a.name in MIRRORED}
    symmetric = twin_gap < 1e-3 * mirror_gap and all(abs(lo + hi) < 1e-9 for lo, hi in ranges.values())
    text = (f"A face's mirror image differs from the face by {mirror_gap:.4f} per pixel on average, and from the "
            f"face drawn with {', '.join(MIRRORED)} negated by {twin_gap:.1e}: "
            + ("every mirror image is a face the data set draws, with the same probability (those three are drawn "
               "from ranges symmetric about 0), so an image and its mirror are equally likely to be the "
               "original and no classifier can beat 0.5 on average. " if symmetric else
               "the mirror images are not all faces the data set draws, so something is left to learn. ")
            + f"The trained network scores {acc:.3f} [{low:.3f}, {high:.3f}] on held-out faces: ")
    if low > 0.5:
        text += "above chance" + (", which the symmetry rules out: check the drawing. " if symmetric else ". ")
    elif high < 0.5:
        text += "below chance, which only a guess that generalises wrongly can do. "
    else:
        text += "chance. "
    if spread:
        attr = max(spread, key=spread.get)
        text += (f"Its accuracy varies most across the classes of {attr} (by {spread[attr]:.2f}): a guess that "
                 "leans on it is right on one side as often as it is wrong on the mirrored side. "
                 + ("Whatever its features hold, the task gave them nothing to learn." if symmetric else ""))
    return text


def train_supervised(model: BackboneClassifier, config: RotationConfig, *,
                     images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                     progress: bool | str = "auto", plan: Runtime | None = None,
                     checkpoint: str | os.PathLike | None = None, callbacks=()):
    """The same backbone trained on attribute labels: the probe table's upper bound, and
    chapter 07's attribute classifier. ``images`` uint8 (N, 3, S, S) with ``labels`` int64
    (N, A); default the first ``config.train_size`` ToyFaces training images."""
    if images is None:
        ds = ToyFaces(split="train", size=config.train_size, image_size=config.image_size)
        images, labels = ds.images, ds.labels
    elif labels is None:
        raise ValueError("train_supervised(images=...) needs labels= (int64, one row per image)")

    def setup(plan):
        net, optimizer = plan.prepare(model), torch.optim.Adam(model.parameters(), lr=config.lr)
        return (lambda b: supervised_step(net, optimizer, *b)), model, optimizer

    return fit(config, setup, desc="supervised", images=images, labels=labels, plan=plan,
               progress=progress, checkpoint=checkpoint, callbacks=callbacks)


RECIPES = {
    "jigsaw": Recipe(cache_name="jigsaw_ch05", config=JigsawConfig.for_profile, build=JigsawConfig.build,
                     train=train_jigsaw),
    "rotation": Recipe(cache_name="rotation_ch05", config=RotationConfig.for_profile, build=RotationConfig.build,
                       train=train_rotation),
    "flip": Recipe(cache_name="flip_ch05", config=RotationConfig.for_profile,      # rotation's sizes
                   build=lambda c: BackboneClassifier(num_classes=(2,)), train=train_flip),
    "supervised": Recipe(cache_name="supervised_ch05", config=RotationConfig.for_profile,
                         build=lambda c: BackboneClassifier(num_classes=tuple(a.num_classes for a in ATTRIBUTES)),
                         train=train_supervised),
}


def pretrained_jigsaw(config: JigsawConfig | None = None, *, progress: bool | str = "auto",
                      retrain: bool = False):
    """Chapter 05's jigsaw network (default ``JigsawConfig.for_profile()``), trained once and
    cached as ``jigsaw_ch05``; ``.model.backbone`` is the shared backbone for chapter 06."""
    return RECIPES["jigsaw"].pretrained(config, progress=progress, retrain=retrain)


def pretrained_rotation(config: RotationConfig | None = None, *, progress: bool | str = "auto",
                        retrain: bool = False):
    """Chapter 05's rotation classifier, cached as ``rotation_ch05``."""
    return RECIPES["rotation"].pretrained(config, progress=progress, retrain=retrain)


def pretrained_flip(config: RotationConfig | None = None, *, progress: bool | str = "auto",
                    retrain: bool = False):
    """Chapter 05's flip classifier (rotation's sizes), cached as ``flip_ch05``."""
    return RECIPES["flip"].pretrained(config, progress=progress, retrain=retrain)


def pretrained_supervised(config: RotationConfig | None = None, *, progress: bool | str = "auto",
                          retrain: bool = False):
    """The supervised attribute classifier (upper bound), cached as ``supervised_ch05``."""
    return RECIPES["supervised"].pretrained(config, progress=progress, retrain=retrain)
