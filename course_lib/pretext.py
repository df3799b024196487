"""Pretext tasks on the shared backbone: jigsaw puzzles, tile positions, rotations.

- Jigsaw (Noroozi & Favaro 2016): cut an image into a 3x3 grid of tiles, shuffle them with
  one permutation out of a fixed set, and classify which permutation was used. Each tile
  goes through the same :class:`~course_lib.backbone.ConvBackbone` (shared weights), the
  pooled tile features are concatenated in the order the tiles are presented, and an MLP
  scores the permutation set.
- Tile positions (the article's section 3.2.2): the same tile encoder, but the head
  predicts, for every presented tile, which of the 9 grid cells it came from.
- Rotation (Gidaris et al. 2018): rotate each image by k * 90 degrees and predict k.

Tiles and permutation sets come from :mod:`course_lib.tiles`; this module only holds the
models, the rotation batch, the training steps and the frozen-feature extractor used by the
linear probes. Convention everywhere: ``shuffled[:, i] = tiles[:, permutation[i]]``, so the
label of presented tile ``i`` in the position task is ``permutation[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .profiles import choose
from .tiles import hamming_permutations, make_tiles, shuffle_tiles


@lru_cache(maxsize=16)
def _permutation_set(n: int, grid: int, seed: int, method: str) -> torch.Tensor:
    # the greedy search over 9! candidates takes seconds for 1000 permutations: do it once
    return hamming_permutations(n, grid=grid, seed=seed, method=method)


@dataclass(frozen=True)
class JigsawConfig:
    """Hyperparameters of the jigsaw chapter; ``for_profile`` picks sizes."""

    image_size: int = 48            # faces are rendered at 48 px for puzzles: 3 cells of 16 px
    grid: int = 3                   # 3x3 tiles as in Noroozi & Favaro
    tile_size: int = 12             # crop per cell (16 px cell -> up to 4 px random gap)
    n_permutations: int = 100       # size of the permutation set (the paper's sweet spot)
    method: str = "max"             # "max" greedy maximal Hamming, "random", "min" (close perms)
    normalise: bool = True          # per-tile mean/std normalisation (blocks low-level shortcuts)
    jitter: bool = True             # random crop position inside each cell (blocks edge matching)
    tile_dim: int = 64              # per-tile feature after the shared fc ("fc6" in the paper)
    hidden: int = 256               # MLP width over the concatenated tiles
    train_size: int = 4000
    batch_size: int = 64
    steps: int = 400
    lr: float = 2e-3
    seed: int = 0

    @classmethod
    def for_profile(cls, name: str | None = None) -> "JigsawConfig":
        """The chapter's sizes for profile ``name`` (default: the current profile)."""
        return cls(
            image_size=choose(smoke=30, cpu=48, gpu=96, profile=name),
            tile_size=choose(smoke=8, cpu=12, gpu=24, profile=name),
            train_size=choose(smoke=128, cpu=4000, gpu=20000, profile=name),
            batch_size=choose(smoke=16, cpu=64, gpu=128, profile=name),
            steps=choose(smoke=6, cpu=400, gpu=4000, profile=name),
        )

    def build(self) -> "JigsawNet":
        return JigsawNet(n_permutations=self.n_permutations, n_tiles=self.grid ** 2,
                         tile_dim=self.tile_dim, hidden=self.hidden)

    def permutations(self) -> torch.Tensor:
        """The permutation set (n_permutations, grid*grid), deterministic from ``seed``."""
        return _permutation_set(self.n_permutations, self.grid, self.seed, self.method).clone()


@dataclass(frozen=True)
class RotationConfig:
    """Hyperparameters of the rotation pretext task (Gidaris et al. 2018)."""

    image_size: int = 32            # the same resolution as the VAE and inpainting chapters
    train_size: int = 4000
    batch_size: int = 32            # images per batch; each appears in all 4 rotations
    steps: int = 400
    lr: float = 2e-3
    seed: int = 0

    @classmethod
    def for_profile(cls, name: str | None = None) -> "RotationConfig":
        """The chapter's sizes for profile ``name``; also used by the supervised baseline."""
        return cls(
            image_size=choose(smoke=16, cpu=32, gpu=64, profile=name),
            train_size=choose(smoke=128, cpu=4000, gpu=20000, profile=name),
            batch_size=choose(smoke=8, cpu=32, gpu=64, profile=name),
            steps=choose(smoke=6, cpu=400, gpu=3000, profile=name),
        )

    def build(self) -> "BackboneClassifier":
        return BackboneClassifier(num_classes=(4,))


class TileEncoder(nn.Module):
    """Shared-weight tile encoder: backbone, global average pool, one linear layer.

    Input (B, T, 3, t, t) tiles (any t >= 8); output (B, T, tile_dim).
    """

    def __init__(self, *, tile_dim: int = 64, backbone: ConvBackbone | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else ConvBackbone()
        self.fc = nn.Sequential(nn.Linear(self.backbone.out_channels, tile_dim), nn.ReLU(inplace=True))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        if tiles.dim() != 5 or tiles.shape[2] != 3:
            raise ValueError(f"expected tiles of shape (B, T, 3, t, t), got {tuple(tiles.shape)}")
        b, t = tiles.shape[:2]
        h = self.backbone(tiles.flatten(0, 1))            # (B*T, 128, t/8, t/8)
        h = h.mean(dim=(2, 3))                            # (B*T, 128)
        return self.fc(h).view(b, t, -1)                  # (B, T, tile_dim)


class JigsawNet(nn.Module):
    """Permutation classifier (Noroozi & Favaro 2016, "context-free network").

    Input (B, T, 3, t, t) shuffled tiles; output (B, n_permutations) logits.
    """

    def __init__(self, *, n_permutations: int, n_tiles: int = 9, tile_dim: int = 64,
                 hidden: int = 256, backbone: ConvBackbone | None = None):
        super().__init__()
        self.encoder = TileEncoder(tile_dim=tile_dim, backbone=backbone)
        self.backbone = self.encoder.backbone              # the shared module, for transfer
        self.n_tiles = n_tiles
        self.classifier = nn.Sequential(
            nn.Linear(n_tiles * tile_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, n_permutations),
        )

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        if tiles.dim() != 5 or tiles.shape[1] != self.n_tiles:
            raise ValueError(f"expected (B, {self.n_tiles}, 3, t, t) tiles, got {tuple(tiles.shape)}")
        f = self.encoder(tiles)                           # (B, T, tile_dim), in tile order
        return self.classifier(f.flatten(1))              # (B, n_permutations)


class TilePositionNet(nn.Module):
    """The article's variant: predict every presented tile's original grid cell.

    Input (B, T, 3, t, t) shuffled tiles; output (B, T, T) logits, ``[b, i, p]`` = score
    that presented tile ``i`` came from cell ``p``. Every tile's head sees all tiles
    (concatenated), since one tile alone is often ambiguous (plain background).
    """

    def __init__(self, *, n_tiles: int = 9, tile_dim: int = 64, hidden: int = 256,
                 backbone: ConvBackbone | None = None):
        super().__init__()
        self.encoder = TileEncoder(tile_dim=tile_dim, backbone=backbone)
        self.backbone = self.encoder.backbone
        self.n_tiles = n_tiles
        self.head = nn.Sequential(
            nn.Linear(n_tiles * tile_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, n_tiles * n_tiles),
        )

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        f = self.encoder(tiles)                           # (B, T, tile_dim)
        return self.head(f.flatten(1)).view(-1, self.n_tiles, self.n_tiles)  # (B, T, T)


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


def jigsaw_batch(images: torch.Tensor, permutations: torch.Tensor, config: JigsawConfig,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Puzzles from images (B, 3, S, S) in [0, 1]: ``(shuffled tiles (B, T, 3, t, t), index (B,))``.

    Each image gets a random permutation from the set; ``index`` is the class to predict.
    """
    tiles = make_tiles(images, grid=config.grid, tile_size=config.tile_size, jitter=config.jitter,
                       normalise=config.normalise, generator=generator)   # (B, T, 3, t, t)
    index = torch.randint(len(permutations), (images.shape[0],), generator=generator)
    index = index.to(images.device)
    return shuffle_tiles(tiles, permutations.to(images.device)[index]), index


def position_labels(permutations: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-tile position targets: (B, T) with ``[b, i] = permutations[index[b], i]``."""
    return permutations[index]


# --- training steps ------------------------------------------------------------------------

def _step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def jigsaw_step(model: JigsawNet, optimizer: torch.optim.Optimizer,
                tiles: torch.Tensor, index: torch.Tensor) -> dict[str, float]:
    """One update on shuffled tiles (B, T, 3, t, t) and their permutation index (B,)."""
    model.train()
    logits = model(tiles)
    loss = F.cross_entropy(logits, index)
    _step(model, optimizer, loss)
    return {"loss": loss.item(), "acc": (logits.argmax(1) == index).float().mean().item()}


def position_step(model: TilePositionNet, optimizer: torch.optim.Optimizer,
                  tiles: torch.Tensor, positions: torch.Tensor) -> dict[str, float]:
    """One update on shuffled tiles and per-tile targets ``positions`` (B, T)."""
    model.train()
    logits = model(tiles)                                 # (B, T, T)
    loss = F.cross_entropy(logits.flatten(0, 1), positions.flatten())
    _step(model, optimizer, loss)
    acc = (logits.argmax(-1) == positions).float().mean().item()
    return {"loss": loss.item(), "acc": acc}


def rotation_step(model: BackboneClassifier, optimizer: torch.optim.Optimizer,
                  images: torch.Tensor) -> dict[str, float]:
    """One update on a batch of upright images (B, 3, H, H); rotations are made here."""
    model.train()
    rotated, labels = rotation_batch(images)
    logits = model(rotated)
    loss = F.cross_entropy(logits, labels)
    _step(model, optimizer, loss)
    return {"loss": loss.item(), "acc": (logits.argmax(1) == labels).float().mean().item()}


def supervised_step(model: BackboneClassifier, optimizer: torch.optim.Optimizer,
                    images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """One update of the supervised upper bound: images (B, 3, H, W), labels (B, A) int64."""
    model.train()
    loss = model.loss(model(images), labels)
    _step(model, optimizer, loss)
    return {"loss": loss.item()}


# --- frozen features for linear probes -------------------------------------------------------

@torch.no_grad()
def probe_features(backbone: ConvBackbone, images: torch.Tensor, *, pool: int = 2,
                   standardised: bool = False, batch_size: int = 256) -> torch.Tensor:
    """Frozen backbone features for a linear probe.

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
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
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

def _images(size: int, image_size: int) -> torch.Tensor:
    from .toyfaces import ToyFaces
    return ToyFaces(split="train", size=size, image_size=image_size).images


def _fit(step, images, labels, config, progress, desc):
    from .loop import Budget, train
    from .runtime import DeviceLoader
    loader = DeviceLoader(images, labels, batch_size=min(config.batch_size, len(images)),
                          device=images.device if images.is_cuda else None, seed=config.seed)
    return train(step, loader, budget=Budget(steps=config.steps), progress=progress,
                 every=max(config.steps // 10, 1), desc=desc)


def train_jigsaw(model: JigsawNet, config: JigsawConfig, *, images: torch.Tensor | None = None,
                 progress: bool | str = "auto"):
    """Train ``model`` in place on ToyFaces puzzles (uint8 ``images`` at ``config.image_size``)."""
    from .runtime import seed_everything
    seed_everything(config.seed)
    images = _images(config.train_size, config.image_size) if images is None else images
    perms = config.permutations()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    device = next(model.parameters()).device

    def step(x):
        tiles, index = jigsaw_batch(x.to(device), perms, config, g)
        return jigsaw_step(model, optimizer, tiles, index)

    return _fit(step, images, None, config, progress, f"jigsaw {config.n_permutations} perms")


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
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        tiles, index = jigsaw_batch(x, perms, config, g)
        correct += (model(tiles).argmax(1) == index).sum().item()
    return correct / len(images)


def train_rotation(model: BackboneClassifier, config: RotationConfig, *,
                   images: torch.Tensor | None = None, progress: bool | str = "auto"):
    """Train the rotation classifier in place (Gidaris et al. 2018)."""
    from .runtime import seed_everything
    seed_everything(config.seed)
    images = _images(config.train_size, config.image_size) if images is None else images
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return _fit(lambda x: rotation_step(model, optimizer, x), images, None, config, progress,
                "rotation")


@torch.no_grad()
def rotation_accuracy(model: BackboneClassifier, images: torch.Tensor) -> float:
    """Fraction of held-out images (all four rotations) whose rotation is predicted."""
    model.eval()
    x = images.float() / 255 if images.dtype == torch.uint8 else images
    rotated, labels = rotation_batch(x.to(next(model.parameters()).device))
    return (model(rotated).argmax(1) == labels).float().mean().item()


def train_supervised(model: BackboneClassifier, config: RotationConfig, *,
                     progress: bool | str = "auto"):
    """The probe table's upper bound: the same backbone trained on the attribute labels."""
    from .runtime import seed_everything
    from .toyfaces import ToyFaces
    seed_everything(config.seed)
    ds = ToyFaces(split="train", size=config.train_size, image_size=config.image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return _fit(lambda b: supervised_step(model, optimizer, *b), ds.images, ds.labels, config,
                progress, "supervised")


def _cached(name: str, train_fn, config, build, progress, retrain):
    from .checkpoint import load_or_train
    trained = load_or_train(name, lambda m, c: train_fn(m, c, progress=progress), config=config,
                            build=build, retrain=retrain)
    trained.model.eval()
    return trained


def pretrained_jigsaw(config: JigsawConfig | None = None, *, progress: bool | str = "auto",
                      retrain: bool = False):
    """Chapter 05's jigsaw network (default ``JigsawConfig.for_profile()``), trained once and
    cached as ``jigsaw_ch05``; ``.model.backbone`` is the shared backbone for chapter 06."""
    config = config or JigsawConfig.for_profile()
    return _cached("jigsaw_ch05", train_jigsaw, config, JigsawConfig.build, progress, retrain)


def pretrained_rotation(config: RotationConfig | None = None, *, progress: bool | str = "auto",
                        retrain: bool = False):
    """Chapter 05's rotation classifier, cached as ``rotation_ch05``."""
    config = config or RotationConfig.for_profile()
    return _cached("rotation_ch05", train_rotation, config, RotationConfig.build, progress, retrain)


def pretrained_supervised(config: RotationConfig | None = None, *, progress: bool | str = "auto",
                          retrain: bool = False):
    """The supervised attribute classifier (upper bound), cached as ``supervised_ch05``."""
    from .toyfaces import ATTRIBUTES
    config = config or RotationConfig.for_profile()
    build = lambda c: BackboneClassifier(num_classes=tuple(a.num_classes for a in ATTRIBUTES))  # noqa: E731
    return _cached("supervised_ch05", train_supervised, config, build, progress, retrain)
