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

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .profiles import choose


@dataclass(frozen=True)
class JigsawConfig:
    """Hyperparameters of the jigsaw chapter; ``for_profile`` picks sizes."""

    image_size: int = 48            # faces are rendered at 48 px for puzzles: 3 cells of 16 px
    grid: int = 3                   # 3x3 tiles as in Noroozi & Favaro
    tile_size: int = 12             # crop per cell (16 px cell -> up to 4 px random gap)
    n_permutations: int = 100       # size of the permutation set (the paper's sweet spot)
    method: str = "max"             # "max" = greedy maximal Hamming, "random" = low Hamming
    normalise: bool = True          # per-tile mean/std normalisation (blocks low-level shortcuts)
    jitter: bool = True             # random crop position inside each cell (blocks edge matching)
    tile_dim: int = 64              # per-tile feature after the shared fc ("fc6" in the paper)
    hidden: int = 256               # MLP width over the concatenated tiles
    train_size: int = 4000
    batch_size: int = 64
    steps: int = 800
    lr: float = 2e-3
    seed: int = 0

    @classmethod
    def for_profile(cls, name: str | None = None) -> "JigsawConfig":
        return cls(
            image_size=choose(smoke=24, cpu=48, gpu=96, profile=name),
            tile_size=choose(smoke=6, cpu=12, gpu=24, profile=name),
            train_size=choose(smoke=128, cpu=4000, gpu=20000, profile=name),
            batch_size=choose(smoke=16, cpu=64, gpu=128, profile=name),
            steps=choose(smoke=6, cpu=800, gpu=4000, profile=name),
        )


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
        return cls(
            image_size=choose(smoke=16, cpu=32, gpu=64, profile=name),
            train_size=choose(smoke=128, cpu=4000, gpu=20000, profile=name),
            batch_size=choose(smoke=8, cpu=32, gpu=64, profile=name),
            steps=choose(smoke=6, cpu=400, gpu=3000, profile=name),
        )


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
                   batch_size: int = 256) -> torch.Tensor:
    """Frozen backbone features for a linear probe.

    Input (N, 3, H, W) floats in [0, 1] or uint8; output (N, 128 * pool * pool) float32 on
    the CPU: the last backbone map average-pooled to ``pool x pool`` (keeps a coarse layout,
    so "glasses" and "beard" stay separable) and flattened.
    """
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        h = F.adaptive_avg_pool2d(backbone(x), pool)      # (b, 128, pool, pool)
        out.append(h.flatten(1).cpu())
    backbone.train(was_training)
    return torch.cat(out)
