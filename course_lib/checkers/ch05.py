"""Checkers for chapter 05 (jigsaw, rotation and contrastive pretext tasks).

Conventions (course_lib.jigsaw): ``tiles`` (B, T, C, t, t); ``permutations`` (B, T) long;
``shuffled[b, i] = tiles[b, permutations[b, i]]``.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..contrastive import nt_xent as reference_nt_xent
from ..pretext import rotation_batch
from ..shortcuts import border_strips
from .core import ExerciseError, check_close, passed, run_student


def reference_shuffle(tiles: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """``shuffled[b, i] = tiles[b, permutations[b, i]]``."""
    return torch.stack([t[p] for t, p in zip(tiles, permutations)])


def reference_unshuffle(shuffled: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """The inverse: ``tiles[b, permutations[b, i]] = shuffled[b, i]``."""
    return torch.stack([s[torch.argsort(p)] for s, p in zip(shuffled, permutations)])


def reference_greedy_hamming(candidates: torch.Tensor, n: int, first: int = 0) -> torch.Tensor:
    """Noroozi & Favaro 2016, Algorithm 1: greedy maximal *mean* Hamming distance.

    Start with ``candidates[first]``; then repeatedly move to the chosen set the remaining
    candidate whose mean Hamming distance to the chosen ones is largest (ties: the lowest
    index). Returns (n, T). (The library's :func:`course_lib.tiles.hamming_permutations`
    maximises the *minimum* distance instead, with the mean as its tie-break.)
    """
    remaining = list(range(candidates.shape[0]))
    chosen = [remaining.pop(first)]
    while len(chosen) < n:
        rest = candidates[remaining]                                           # (R, T)
        dist = (rest[:, None, :] != candidates[chosen][None]).sum(-1).float()  # (R, |chosen|)
        j = int(dist.mean(1).argmax())
        chosen.append(remaining.pop(j))
    return candidates[chosen]


def _tiles(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tiles = torch.rand(3, 9, 3, 4, 4, generator=g)
    perms = torch.stack([torch.randperm(9, generator=g) for _ in range(3)])
    return tiles, perms


def check_shuffle_tiles(shuffle_tiles: Callable, unshuffle_tiles: Callable) -> None:
    """Both directions: shuffle by each row's permutation, then undo it exactly."""
    tiles, perms = _tiles()
    shuffled = run_student("shuffle_tiles", shuffle_tiles, tiles, perms)
    expected = reference_shuffle(tiles, perms)
    if isinstance(shuffled, torch.Tensor) and shuffled.shape == tiles.shape:
        if torch.equal(shuffled, reference_unshuffle(tiles, perms)):
            raise ExerciseError(
                "shuffle_tiles: you put tile i at position permutation[i] (the inverse). The "
                "convention is shuffled[:, i] = tiles[:, permutation[i]]: position i shows tile "
                "permutation[i].")
        if torch.equal(shuffled, tiles[:, perms[0]]):
            raise ExerciseError("shuffle_tiles: every image used the first permutation; use "
                                "permutations[b] for image b.")
        if torch.equal(shuffled, tiles):
            raise ExerciseError("shuffle_tiles: the tiles come back in their original order.")
    check_close("shuffle_tiles", shuffled, expected)
    back = run_student("unshuffle_tiles", unshuffle_tiles, expected, perms)
    if isinstance(back, torch.Tensor) and back.shape == tiles.shape \
            and torch.equal(back, reference_shuffle(expected, perms)):
        raise ExerciseError("unshuffle_tiles: it applies the permutation a second time; apply its "
                            "inverse (torch.argsort(permutation)) instead.")
    check_close("unshuffle_tiles", back, tiles,
                hint="unshuffle_tiles(shuffle_tiles(tiles, p), p) must give back tiles.")
    passed("shuffle_tiles / unshuffle_tiles", "round trip exact")


def check_greedy_hamming(greedy_hamming: Callable) -> None:
    """``greedy_hamming(candidates, n, first)`` -> (n, T) permutations (Algorithm 1)."""
    candidates = torch.tensor(list(itertools.permutations(range(4))))      # (24, 4)
    g = torch.Generator().manual_seed(3)
    candidates = candidates[torch.randperm(24, generator=g)]
    n, first = 6, 5
    got = run_student("greedy_hamming", greedy_hamming, candidates, n, first)
    expected = reference_greedy_hamming(candidates, n, first)
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"greedy_hamming: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        raise ExerciseError(f"greedy_hamming: expected shape {tuple(expected.shape)} (n permutations), "
                            f"got {tuple(got.shape)}.")
    if not torch.equal(got[0], candidates[first]):
        raise ExerciseError("greedy_hamming: the first permutation must be candidates[first].")
    rows = {tuple(r) for r in got.tolist()}
    if len(rows) < n:
        raise ExerciseError("greedy_hamming: the set contains duplicates; remove each chosen "
                            "permutation from the candidates.")
    if torch.equal(got, candidates[first:first + n]):
        raise ExerciseError("greedy_hamming: it takes consecutive candidates; pick the one with the "
                            "largest mean Hamming distance to the chosen set each time.")
    d = (got[:, None] != got[None]).sum(-1).float()
    d_ref = (expected[:, None] != expected[None]).sum(-1).float()
    if d.sum() < d_ref.sum():
        raise ExerciseError(
            f"greedy_hamming: your set's mean pairwise Hamming distance is "
            f"{d.sum() / (n * (n - 1)):.2f}, the greedy maximum gives {d_ref.sum() / (n * (n - 1)):.2f}. "
            "Use argmax (not argmin) of the mean distance to the chosen set.")
    check_close("greedy_hamming", got, expected,
                hint="Ties go to the lowest candidate index (torch.argmax does that); use the mean "
                     "(or sum) of the distances to all chosen permutations, not the minimum.")
    passed("greedy_hamming", f"mean Hamming distance {d.sum().item() / (n * (n - 1)):.2f}")


def check_rotation_batch(make_rotation_batch: Callable) -> None:
    """``make_rotation_batch(images)`` -> (rotated (4B, C, H, H), labels (4B,)) k-major."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, 5, generator=g)
    out = run_student("rotation_batch", make_rotation_batch, x)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ExerciseError("rotation_batch: return a pair (rotated_images, labels).")
    rotated, labels = out
    exp_rot, exp_lab = rotation_batch(x)
    if not isinstance(rotated, torch.Tensor) or rotated.shape != exp_rot.shape:
        raise ExerciseError(f"rotation_batch: rotated images must have shape {tuple(exp_rot.shape)} "
                            "(every image in all four rotations).")
    if not isinstance(labels, torch.Tensor) or labels.shape != exp_lab.shape:
        raise ExerciseError(f"rotation_batch: labels must be a tensor of shape {tuple(exp_lab.shape)}.")
    if labels.dtype != torch.long:
        raise ExerciseError("rotation_batch: labels must be int64 (torch.long) for cross-entropy.")
    if torch.equal(labels, torch.arange(4).repeat(2)):
        raise ExerciseError("rotation_batch: labels go 0,1,2,3,0,1,... but the images are k-major "
                            "(all of k=0 first); use torch.arange(4).repeat_interleave(B).")
    check_close("rotation_batch labels", labels, exp_lab)
    clockwise = torch.cat([torch.rot90(x, -k, dims=(2, 3)) for k in range(4)])
    if torch.equal(rotated, clockwise):
        raise ExerciseError("rotation_batch: the images are rotated clockwise; the convention is "
                            "counter-clockwise, torch.rot90(images, k, dims=(2, 3)).")
    for k in range(4):
        if not torch.equal(rotated[2 * k:2 * k + 2], exp_rot[2 * k:2 * k + 2]):
            raise ExerciseError(f"rotation_batch: rows with label {k} are not the images rotated by "
                                f"{90 * k} degrees (rotate the spatial dims (2, 3), not channels).")
    passed("rotation_batch", "4 rotations, labels k")


def check_border_features(border_features: Callable) -> None:
    """``border_features(images, width)`` -> (B, 4 * C): the mean colour of the top, bottom,
    left and right strips of ``width`` pixels, in that order
    (:func:`course_lib.shortcuts.border_strips`)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 10, 10, generator=g)
    got = run_student("border_features", border_features, x, 2)
    expected = border_strips(x, width=2)
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"border_features: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape == (3, 4):
        raise ExerciseError("border_features: 4 numbers per image: you averaged the colour channels "
                            "together; keep one mean per channel and strip, (B, 4 * C) = (B, 12).")
    if got.shape != expected.shape:
        raise ExerciseError(f"border_features: expected shape {tuple(expected.shape)} (4 strips x 3 "
                            f"channels per image), got {tuple(got.shape)}.")
    if torch.allclose(got, border_strips(x, width=1), atol=1e-6):
        raise ExerciseError("border_features: the strips are 1 pixel wide; use the `width` argument "
                            "(the last `width` rows are images[:, :, -width:]).")
    strips = expected.view(3, 4, 3)
    names = ("top", "bottom", "left", "right")
    for order in itertools.permutations(range(4)):
        if order != (0, 1, 2, 3) and torch.allclose(got, strips[:, list(order)].flatten(1), atol=1e-6):
            raise ExerciseError("border_features: the strips are in the order "
                                f"{', '.join(names[i] for i in order)}; the expected order is top, "
                                "bottom, left, right (rows are dim 2, columns dim 3).")
    if torch.allclose(got, strips.transpose(1, 2).flatten(1), atol=1e-6):
        raise ExerciseError("border_features: the numbers are channel-major (R of every strip, then "
                            "G...); concatenate strip by strip: [top RGB, bottom RGB, left RGB, right RGB].")
    check_close("border_features", got, expected,
                hint="top = images[:, :, :width].mean((2, 3)), left = images[:, :, :, :width].mean((2, 3)).")
    passed("border_features", "top, bottom, left, right strips, one mean per channel")


# --- NT-Xent (SimCLR, Chen et al. 2020, eq. 1): the reference and the mistakes it is told from ---

def _nt_xent_variant(z1: torch.Tensor, z2: torch.Tensor, temperature: float, *, normalise: bool = True,
                     mask_self: bool = True, use_temperature: bool = True) -> torch.Tensor:
    """NT-Xent with one ingredient optionally left out (the checker's catalogue of mistakes)."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    z = F.normalize(z, dim=1) if normalise else z
    sim = z @ z.T / (temperature if use_temperature else 1.0)
    if mask_self:
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def check_nt_xent(nt_xent: Callable) -> None:
    """``nt_xent(z1, z2, temperature)`` -> the 0-d NT-Xent loss, mean over the 2N anchors."""
    reference = reference_nt_xent
    g = torch.Generator().manual_seed(0)
    z1 = 3 * torch.randn(6, 5, generator=g)            # lengths far from 1: normalising matters
    z2 = z1 + 2 * torch.randn(6, 5, generator=g)
    tau = 0.2
    got = run_student("nt_xent", nt_xent, z1.clone(), z2.clone(), tau)
    expected = reference(z1, z2, tau)
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"nt_xent: return a torch.Tensor (a 0-d loss), got {type(got).__name__}.")
    if got.dim() != 0:
        raise ExerciseError(f"nt_xent: return one number (the mean over the 2N anchors), got shape "
                            f"{tuple(got.shape)}; average the per-anchor losses with .mean().")
    if not torch.isfinite(got):
        raise ExerciseError("nt_xent: the loss is NaN or inf. Mask the self-similarities with "
                            "-inf *before* the softmax, and never put -inf on the positive.")
    close = lambda v: torch.allclose(got.detach().float(), v, atol=1e-4, rtol=1e-4)  # noqa: E731
    mistakes = [
        (dict(mask_self=False),
         "each anchor's similarity with itself is still in the denominator: s_ii = 1 / tau is the "
         "largest entry of its row, so the softmax mostly points at the anchor itself. Set the "
         "diagonal of the similarity matrix to -inf (sim.masked_fill(torch.eye(2N, dtype=bool), "
         "float('-inf'))) before the cross-entropy."),
        (dict(use_temperature=False),
         "the similarities are not divided by the temperature: s_ij = cos(z_i, z_j) / tau."),
        (dict(normalise=False),
         "the similarities are dot products of the raw vectors; NT-Xent uses cosine similarity: "
         "normalise every row to unit length first (F.normalize(z, dim=1))."),
        (dict(normalise=False, mask_self=False),
         "the vectors are not normalised and the self-similarities are not masked: use cosine "
         "similarities (F.normalize(z, dim=1)) and set the diagonal to -inf."),
        (dict(use_temperature=False, mask_self=False),
         "no temperature and no mask on the self-similarities: divide by tau and set the diagonal to -inf."),
    ]
    if not close(expected):
        for flags, message in mistakes:
            if close(_nt_xent_variant(z1, z2, tau, **flags)):
                raise ExerciseError("nt_xent: " + message)
        if close(reference(z1, z2, 1 / tau)):
            raise ExerciseError("nt_xent: the similarities are multiplied by the temperature; divide them.")
        half = _nt_xent_half(z1, z2, tau)
        if close(half):
            raise ExerciseError("nt_xent: only the anchors of the first view are scored; the loss "
                                "averages over all 2N anchors (each view is the anchor once).")
        check_close("nt_xent", got, expected,
                    hint="z = normalise(cat(z1, z2)); sim = z @ z.T / tau, diagonal -inf; "
                         "cross-entropy with target i + N for row i and i - N for row i + N.")
    passed("nt_xent", f"loss {got.item():.4f} on 2 x 6 vectors at tau = {tau}")


def _nt_xent_half(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """The loss of the first view's anchors only (a plausible half answer)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim[:n], torch.arange(n, 2 * n))
