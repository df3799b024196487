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
from ..tiles import hamming_permutations, shuffle_tiles as library_shuffle, unshuffle_tiles as library_unshuffle
from .core import ExerciseError, check_close, own_work, passed, run_student


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


@own_work(reference_shuffle, reference_unshuffle, library_shuffle, library_unshuffle)
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


def _greedy(candidates: torch.Tensor, n: int, first: int, distance: Callable) -> torch.Tensor:
    """Algorithm 1 with another ``distance(a, b)`` (a plausible mistake: L1 instead of Hamming)."""
    remaining = list(range(candidates.shape[0]))
    chosen = [remaining.pop(first)]
    while len(chosen) < n:
        d = distance(candidates[remaining][:, None, :], candidates[chosen][None]).float()
        chosen.append(remaining.pop(int(d.mean(1).argmax())))
    return candidates[chosen]


def _candidates(tiles: int, seed: int) -> torch.Tensor:
    """Every permutation of ``tiles`` positions, in a shuffled order."""
    candidates = torch.tensor(list(itertools.permutations(range(tiles))))
    return candidates[torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))]


# (tiles, seed, n, first): the first case alone cannot tell Hamming from L1; the others can
_GREEDY_CASES = [(4, 3, 6, 5), (5, 4, 8, 0), (5, 5, 8, 17), (5, 6, 10, 60)]


@own_work(reference_greedy_hamming, hamming_permutations)
def check_greedy_hamming(greedy_hamming: Callable) -> None:
    """``greedy_hamming(candidates, n, first)`` -> (n, T) permutations (Algorithm 1), on four
    candidate sets (24 and 120 permutations)."""
    for tiles, seed, n, first in _GREEDY_CASES:
        candidates = _candidates(tiles, seed)
        got = run_student("greedy_hamming", greedy_hamming, candidates.clone(), n, first)
        d = _check_greedy_case(got, candidates, n, first)
    passed("greedy_hamming", f"{len(_GREEDY_CASES)} candidate sets; mean Hamming distance {d:.2f} on the last")


def _check_greedy_case(got, candidates: torch.Tensor, n: int, first: int) -> float:
    expected = reference_greedy_hamming(candidates, n, first)
    where = f"(n={n}, first={first}, {len(candidates)} candidates of length {candidates.shape[1]})"
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"greedy_hamming: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        raise ExerciseError(f"greedy_hamming: expected shape {tuple(expected.shape)} (n permutations), "
                            f"got {tuple(got.shape)} {where}.")
    if not torch.equal(got[0], candidates[first]):
        raise ExerciseError("greedy_hamming: the first permutation must be candidates[first].")
    rows = {tuple(r) for r in got.tolist()}
    if len(rows) < n:
        raise ExerciseError("greedy_hamming: the set contains duplicates; remove each chosen "
                            "permutation from the candidates.")
    if torch.equal(got, candidates[first:first + n]):
        raise ExerciseError("greedy_hamming: it takes consecutive candidates; pick the one with the "
                            "largest mean Hamming distance to the chosen set each time.")
    if not torch.equal(got, expected) and torch.equal(got, _greedy(candidates, n, first,
                                                                   lambda a, b: (a - b).abs().sum(-1))):
        raise ExerciseError(f"greedy_hamming: your set is the greedy one for the L1 distance sum |a - b| {where}; "
                            "the Hamming distance counts the positions where two permutations differ: "
                            "(a != b).sum(-1).")
    d = (got[:, None] != got[None]).sum(-1).float()
    d_ref = (expected[:, None] != expected[None]).sum(-1).float()
    if d.sum() < d_ref.sum():
        raise ExerciseError(
            f"greedy_hamming: your set's mean pairwise Hamming distance is "
            f"{d.sum() / (n * (n - 1)):.2f}, the greedy maximum gives {d_ref.sum() / (n * (n - 1)):.2f} {where}. "
            "Use argmax (not argmin) of the mean distance to the chosen set.")
    check_close("greedy_hamming", got, expected,
                hint=f"{where} Ties go to the lowest candidate index (torch.argmax does that); use the mean "
                     "(or sum) of the Hamming distances to all chosen permutations, not the minimum.")
    return d.sum().item() / (n * (n - 1))


@own_work(rotation_batch)
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


@own_work(border_strips)
def check_border_features(border_features: Callable) -> None:
    """``border_features(images, width)`` -> (B, 4 * C) floats: the mean colour of the top,
    bottom, left and right strips of ``width`` pixels, in that order
    (:func:`course_lib.shortcuts.border_strips`); for float images, for widths 2 and 3, and
    for uint8 images (what the chapter's probe passes)."""
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
    if not got.is_floating_point():
        raise ExerciseError(f"border_features: the result has dtype {got.dtype}; return float means.")
    got = got.detach().float()                    # float64 is a right answer too
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
    wide = run_student("border_features", border_features, x, 3)
    if isinstance(wide, torch.Tensor) and wide.shape == expected.shape and torch.allclose(
            wide.detach().float(), expected, atol=1e-6):
        raise ExerciseError("border_features: with width=3 the strips are still 2 pixels wide: the width is "
                            "hard-coded. Use the `width` argument.")
    check_close("border_features", wide.detach().float() if isinstance(wide, torch.Tensor) else wide,
                border_strips(x, width=3), hint="with width=3 each strip is 3 pixels wide.")
    images = (x * 255).round().to(torch.uint8)   # what the chapter's probe passes: ToyFaces' uint8 images
    try:
        raw = run_student("border_features", border_features, images, 2)
    except ExerciseError as err:
        detail = str(err).removeprefix("border_features: ")
        raise ExerciseError(f"border_features: on uint8 images (the chapter's probe passes ToyFaces' images) "
                            f"{detail} Convert first: x = images.float().") from None
    if not (isinstance(raw, torch.Tensor) and raw.is_floating_point()):
        kind = raw.dtype if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise ExerciseError(f"border_features: on uint8 images the result is {kind}; return float means: "
                            "convert first, x = images.float().")
    check_close("border_features", raw.detach().float(), border_strips(images, width=2), atol=1e-3,
                hint="on uint8 images: the means of the raw 0..255 values, as floats (images.float()).")
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


@own_work(reference_nt_xent)
def check_nt_xent(nt_xent: Callable) -> None:
    """``nt_xent(z1, z2, temperature)`` -> the 0-d NT-Xent loss, mean over the 2N anchors,
    with the reference's gradients w.r.t. z1 and z2 (the encoder trains on it)."""
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
    inputs = [z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)]
    out = run_student("nt_xent", nt_xent, inputs[0], inputs[1], tau)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise ExerciseError("nt_xent: the value is right but no gradient flows back to z1 and z2, so the "
                            "encoder cannot learn from it. Do not .detach() or call .item(); keep it a tensor.")
    grads = torch.autograd.grad(out, inputs, allow_unused=True)
    ref_in = [z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)]
    ref_grads = torch.autograd.grad(reference(ref_in[0], ref_in[1], tau), ref_in)
    for g, want, what in zip(grads, ref_grads, ("z1", "z2")):
        if g is None or not torch.allclose(g, want, atol=1e-5, rtol=1e-4):
            raise ExerciseError(f"nt_xent: the value is right but the gradient w.r.t. {what} is not (part of the "
                                "computation detached?); build every step from z1 and z2 with torch operations.")
    passed("nt_xent", f"loss {got.item():.4f} on 2 x 6 vectors at tau = {tau}")


def _nt_xent_half(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """The loss of the first view's anchors only (a plausible half answer)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim[:n], torch.arange(n, 2 * n))
