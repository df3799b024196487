"""Jigsaw tiles and permutation sets (chapter 05; Noroozi & Favaro 2016).

An image is cut into a ``grid x grid`` array of cells; from each cell a smaller tile is
cropped at a random offset (the *gap/jitter*), so neighbouring tiles never share an edge
and a network cannot solve the puzzle by matching edge pixels (a shortcut Noroozi & Favaro
2016 and Doersch et al. 2015 block the same way). Optional per-tile normalisation and
colour jitter remove the low-level colour/brightness cues (chromatic aberration shortcut).

The tiles are shuffled by one of a fixed set of permutations; the network predicts which
one. The set is chosen greedily so that its permutations are far apart in Hamming distance
(far-apart permutations are easier to tell apart and the task still needs structure): a
max-*min* variant of Noroozi & Favaro 2016's Algorithm 1, which maximises the *mean*
distance instead (chapter 05's exercise writes that one; :func:`hamming_permutations`).

Layout: images ``(B, C, H, W)`` -> tiles ``(B, grid*grid, C, t, t)``, tile ``k`` from row
``k // grid``, column ``k % grid``. A permutation ``perm`` (LongTensor of length grid*grid)
puts tile ``perm[i]`` at position ``i`` (:func:`shuffle_tiles`); :func:`unshuffle_tiles`
inverts it.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .inputs import check_seed
from .runtime import seeded_generator

__all__ = ["make_tiles", "hamming_permutations", "permutation_stats", "shuffle_tiles",
           "unshuffle_tiles", "assemble_tiles"]


def make_tiles(images: torch.Tensor, *, grid: int = 3, tile_size: int | None = None,
               jitter: bool = True, normalise: bool = False, color_jitter: float = 0.0,
               grayscale_p: float = 0.0, seed: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut images into tiles: ``(B, C, H, W)`` -> ``(B, grid*grid, C, t, t)``.

    ``H`` and ``W`` must be equal and divisible by ``grid`` (cell = H // grid).
    ``tile_size`` t <= cell defaults to ``cell - max(1, cell // 7)`` (Noroozi & Favaro: 64-px
    tiles from 75-px cells); the ``cell - t`` pixels of slack are the gap. ``jitter``: crop
    each tile at a random offset in its cell (else centred). ``normalise``: each tile's
    channels to zero mean, unit std. ``color_jitter`` c: each tile's channels scaled by
    U(1-c, 1+c). ``grayscale_p``: probability that a tile is turned grey.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2 (a 1x1 puzzle has nothing to shuffle), "
                         f"got {grid!r}")
    if H != W or H % grid:
        raise ValueError(f"image size {H}x{W} must be square and divisible by grid={grid}; "
                         f"resize or crop to a multiple of {grid} first (e.g. "
                         f"{(H // grid) * grid} or {(H // grid + 1) * grid})")
    cell = H // grid
    t = cell - max(1, cell // 7) if tile_size is None else int(tile_size)
    if not 0 < t <= cell:
        raise ValueError(f"tile_size must be in [1, {cell}] (the cell size), got {tile_size!r}")
    g = seeded_generator(seed, generator)
    N = grid * grid
    cells = images.reshape(B, C, grid, cell, grid, cell).permute(0, 2, 4, 1, 3, 5)
    cells = cells.reshape(B, N, C, cell, cell)                            # (B, N, C, cell, cell)
    if jitter:
        off = torch.randint(0, cell - t + 1, (B, N, 2), generator=g).to(images.device)
    else:
        off = torch.full((B, N, 2), (cell - t) // 2, device=images.device)
    ar = torch.arange(t, device=images.device)
    rows = (off[..., 0:1] + ar).view(B, N, t, 1)
    cols = (off[..., 1:2] + ar).view(B, N, 1, t)
    bi = torch.arange(B, device=images.device).view(B, 1, 1, 1)
    ni = torch.arange(N, device=images.device).view(1, N, 1, 1)
    tiles = cells.permute(0, 1, 3, 4, 2)[bi, ni, rows, cols]              # (B, N, t, t, C)
    tiles = tiles.permute(0, 1, 4, 2, 3).contiguous()                     # (B, N, C, t, t)
    if grayscale_p > 0:
        grey = (torch.rand(B, N, 1, 1, 1, generator=g) < grayscale_p).to(images.device)
        tiles = torch.where(grey, tiles.mean(2, keepdim=True).expand_as(tiles), tiles)
    if color_jitter > 0:
        gain = 1.0 + (torch.rand(B, N, C, 1, 1, generator=g) * 2 - 1) * color_jitter
        tiles = (tiles * gain.to(tiles)).clamp(0.0, 1.0)
    if normalise:
        mean = tiles.mean((3, 4), keepdim=True)
        std = tiles.std((3, 4), keepdim=True)
        tiles = (tiles - mean) / (std + 1e-5)
    return tiles


@lru_cache(maxsize=4)
def _all_permutations(n_tiles: int) -> np.ndarray:
    """All n! permutations in lexicographic order, int8 (n!, n): first element, then the
    permutations of the rest (vectorised; itertools would take seconds for 9!)."""
    if n_tiles == 1:
        return np.zeros((1, 1), dtype=np.int8)
    sub = _all_permutations(n_tiles - 1)
    blocks = []
    for first in range(n_tiles):
        rest = np.delete(np.arange(n_tiles, dtype=np.int8), first)
        blocks.append(np.hstack([np.full((len(sub), 1), first, dtype=np.int8), rest[sub]]))
    return np.concatenate(blocks)


def _hamming_to(onehot: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Hamming distance of every candidate to ``perm``: k - #positions where they agree.

    ``onehot[i, v]`` is the uint8 vector "candidate has v at position i", so the agreement
    count is a sum of k contiguous rows: much faster than comparing (n!, k) arrays.
    """
    agree = onehot[0, perm[0]].astype(np.int16)
    for i in range(1, len(perm)):
        agree += onehot[i, perm[i]]
    return len(perm) - agree


def hamming_permutations(n: int, *, grid: int = 3, seed: int = 0, method: str = "max",
                         pool: int = 100_000) -> torch.Tensor:
    """A set of ``n`` distinct permutations of ``grid*grid`` tiles: LongTensor (n, grid*grid).

    ``method="max"``: greedy farthest-point selection: start from a random permutation, then
    repeatedly add the candidate whose *minimum* distance to the chosen set is largest (ties:
    the larger total, i.e. mean, distance, then a seeded random order). Noroozi & Favaro
    2016's Algorithm 1 (the chapter 05 exercise, ``checkers.ch05.reference_greedy_hamming``)
    maximises the *mean* distance alone; the minimum guarantees no two permutations are close.
    ``"min"``: the greedy opposite (close permutations: a hard, low-Hamming set).
    ``"random"``: ``n`` distinct permutations uniformly at random.
    Candidates are all (grid*grid)! permutations for grid <= 3, else ``pool`` random ones.
    Deterministic from ``seed``.
    """
    if method not in ("max", "min", "random"):
        raise ValueError(f"method must be 'max', 'min' or 'random', got {method!r}")
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")
    check_seed(seed, "hamming_permutations: seed")
    k = grid * grid
    rng = np.random.default_rng(seed)
    if k <= 9:
        cands = _all_permutations(k)
    else:
        cands = np.unique(np.argsort(rng.random((pool, k)), axis=1).astype(np.int8), axis=0)
    if not isinstance(n, int) or not 0 < n <= len(cands):
        raise ValueError(f"n must be an int in [1, {len(cands)}] for grid={grid}, got {n!r}")
    if method == "random":
        return torch.from_numpy(cands[rng.choice(len(cands), n, replace=False)].astype(np.int64))
    onehot = np.ascontiguousarray((cands.T[:, None, :] == np.arange(k)[None, :, None])
                                  .astype(np.uint8))                   # (k, k, n_cands)
    tie = rng.random(len(cands))                    # seeded tie-break
    first = int(rng.integers(len(cands)))
    chosen = [first]
    dmin = _hamming_to(onehot, cands[first]).astype(np.float64)
    dsum = dmin.copy()
    sign = 1.0 if method == "max" else -1.0
    for _ in range(n - 1):
        score = sign * (dmin * 1e6 + dsum) + tie
        score[chosen] = -np.inf
        if method == "min":
            score[dmin == 0] = -np.inf               # distinct permutations only
        j = int(np.argmax(score))
        chosen.append(j)
        d = _hamming_to(onehot, cands[j])
        np.minimum(dmin, d, out=dmin)
        dsum += d
    return torch.from_numpy(cands[chosen].astype(np.int64))


def permutation_stats(perms: torch.Tensor) -> dict[str, float]:
    """Pairwise Hamming distances of a set (n, k): ``{"mean", "min", "max"}`` over pairs."""
    p = torch.as_tensor(perms)
    if p.dim() != 2 or p.shape[0] < 2:
        raise ValueError(f"perms must be (n >= 2, k), got {tuple(p.shape)}")
    d = (p[:, None, :] != p[None, :, :]).sum(-1).float()                 # (n, n)
    off = d[~torch.eye(len(p), dtype=torch.bool)]
    return {"mean": off.mean().item(), "min": off.min().item(), "max": off.max().item()}


def _check_perms(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    if tiles.dim() < 3:
        raise ValueError(f"tiles must be (B, N, ...), got {tuple(tiles.shape)}")
    perms = torch.as_tensor(perms, device=tiles.device).long()
    if perms.dim() == 1:
        perms = perms.expand(tiles.shape[0], -1)
    if perms.shape != tiles.shape[:2]:
        raise ValueError(f"perms must be (N,) or (B, N) = {tuple(tiles.shape[:2])}, "
                         f"got {tuple(perms.shape)}")
    if not torch.equal(perms.sort(1).values, torch.arange(perms.shape[1], device=perms.device)
                       .expand_as(perms)):
        raise ValueError("every row of perms must be a permutation of 0..N-1")
    return perms


def _gather(tiles: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    idx = index.view(*index.shape, *([1] * (tiles.dim() - 2))).expand_as(tiles)
    return tiles.gather(1, idx)


def shuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Position ``i`` of image ``b`` gets tile ``perms[b, i]``: (B, N, ...) -> same shape."""
    return _gather(tiles, _check_perms(tiles, perms))


def unshuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`shuffle_tiles` with the same ``perms``."""
    perms = _check_perms(tiles, perms)
    return _gather(tiles, perms.argsort(1))


def assemble_tiles(tiles: torch.Tensor, *, grid: int = 3, gap: int = 1, fill: float = 1.0):
    """Lay tiles (B, grid*grid, C, t, t) out as images (B, C, S, S) with ``gap`` px between."""
    B, N, C, t, _ = tiles.shape
    if N != grid * grid:
        raise ValueError(f"expected {grid * grid} tiles for grid={grid}, got {N}")
    S = grid * t + (grid - 1) * gap
    out = torch.full((B, C, S, S), fill, dtype=tiles.dtype, device=tiles.device)
    for k in range(N):
        r, c = divmod(k, grid)
        out[:, :, r * (t + gap):r * (t + gap) + t, c * (t + gap):c * (t + gap) + t] = tiles[:, k]
    return out
