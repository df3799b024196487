"""Jigsaw puzzles on the shared backbone: the config, the tile models, the puzzle batch.

- Jigsaw (Noroozi & Favaro 2016): cut an image into a 3x3 grid of tiles, shuffle them with
  one permutation out of a fixed set, and classify which permutation was used. Each tile
  goes through the same :class:`~course_lib.backbone.ConvBackbone` (shared weights), the
  pooled tile features are concatenated in the order the tiles are presented, and an MLP
  scores the permutation set.
- Tile positions (the article's section 3.2.2): the same tile encoder, but the head
  predicts, for every presented tile, which of the 9 grid cells it came from.

Tiles and permutation sets come from :mod:`course_lib.tiles`; the training steps, the
training loop and the cached chapter-05 model are in :mod:`course_lib.pretext`. Convention
everywhere: ``shuffled[:, i] = tiles[:, permutation[i]]``, so the label of presented tile
``i`` in the position task is ``permutation[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from .backbone import ConvBackbone
from .inputs import validate_fields
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
    def for_profile(cls, name: str | None = None) -> JigsawConfig:
        """The chapter's sizes for profile ``name`` (default: the current profile)."""
        return choose(
            smoke=cls(image_size=30, tile_size=8, train_size=128, batch_size=16, steps=6),
            cpu=cls(image_size=48, tile_size=12, train_size=4000, batch_size=64, steps=400),
            gpu=cls(image_size=96, tile_size=24, train_size=20000, batch_size=128, steps=4000),
            profile=name,
        )

    def __post_init__(self) -> None:
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or self.grid < 2:
            raise ValueError(f"JigsawConfig.grid must be an int >= 2 (a 1x1 puzzle has nothing "
                             f"to shuffle), got {self.grid!r}")
        validate_fields(self, {
            "image_size": "int >= 2", "tile_size": "int >= 1", "normalise": "bool", "jitter": "bool",
            "tile_dim": "int >= 1", "hidden": "int >= 1", "train_size": "int >= 1", "batch_size": "int >= 1",
            "steps": "int >= 1", "lr": "float > 0", "seed": "seed"})
        if self.image_size % self.grid:
            raise ValueError(f"JigsawConfig.image_size={self.image_size} must be divisible by "
                             f"grid={self.grid} (e.g. {self.image_size // self.grid * self.grid})")
        cell = self.image_size // self.grid
        if not 0 < self.tile_size <= cell:
            raise ValueError(f"JigsawConfig.tile_size must be in [1, {cell}] (the cell: "
                             f"image_size // grid), got {self.tile_size}")
        if self.method not in ("max", "min", "random"):
            raise ValueError(f"JigsawConfig.method must be 'max', 'min' or 'random', got {self.method!r}")
        if not isinstance(self.n_permutations, int) or self.n_permutations < 2:
            raise ValueError(f"JigsawConfig.n_permutations must be an int >= 2 (a classifier "
                             f"needs two classes), got {self.n_permutations!r}")

    def build(self) -> JigsawNet:
        return JigsawNet(n_permutations=self.n_permutations, n_tiles=self.grid ** 2,
                         tile_dim=self.tile_dim, hidden=self.hidden)

    def permutations(self) -> torch.Tensor:
        """The permutation set (n_permutations, grid*grid), deterministic from ``seed``."""
        return _permutation_set(self.n_permutations, self.grid, self.seed, self.method).clone()



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


# --- batches -------------------------------------------------------------------------------

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
