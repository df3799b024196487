"""Jigsaw tiles: extraction, permutation sets, shuffle/unshuffle round trip, errors."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib.tiles import (
    assemble_tiles,
    hamming_permutations,
    make_tiles,
    permutation_stats,
    shuffle_tiles,
    unshuffle_tiles,
)


def test_tile_shapes_and_content_without_jitter():
    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).view(2, 3, 12, 12)
    t = make_tiles(x, grid=3, tile_size=4, jitter=False)
    assert t.shape == (2, 9, 3, 4, 4)
    assert torch.equal(t[1, 5], x[1, :, 4:8, 8:12])        # tile 5 = row 1, column 2
    assert torch.equal(assemble_tiles(t, grid=3, gap=0), x)


def test_jitter_crops_inside_each_cell():
    x = torch.rand(4, 3, 63, 63)
    t = make_tiles(x, grid=3, tile_size=17, seed=0)        # cells of 21 px
    assert t.shape == (4, 9, 3, 17, 17)
    for b in range(4):
        for k in range(9):
            r, c = divmod(k, 3)
            cell = x[b, :, r * 21:(r + 1) * 21, c * 21:(c + 1) * 21]
            win = cell.unfold(1, 17, 1).unfold(2, 17, 1)    # all 17x17 windows in the cell
            assert (win - t[b, k][:, None, None]).abs().amax((0, 3, 4)).min() == 0
    assert not torch.equal(t, make_tiles(x, grid=3, tile_size=17, seed=1))
    assert torch.equal(t, make_tiles(x, grid=3, tile_size=17, seed=0))


def test_normalise_colour_jitter_and_grey():
    x = torch.rand(2, 3, 30, 30)
    t = make_tiles(x, normalise=True, seed=0)
    assert torch.allclose(t.mean((3, 4)), torch.zeros(2, 9, 3), atol=1e-5)
    assert torch.allclose(t.std((3, 4)), torch.ones(2, 9, 3), atol=1e-3)
    g = make_tiles(x, grayscale_p=1.0, seed=0)
    assert torch.equal(g[:, :, 0], g[:, :, 1])
    j = make_tiles(x, color_jitter=0.3, seed=0)
    assert not torch.equal(j, make_tiles(x, seed=0)) and 0 <= j.min() and j.max() <= 1


@pytest.mark.parametrize("method", ["max", "min", "random"])
def test_permutation_sets_are_distinct_and_seeded(method):
    p = hamming_permutations(30, seed=0, method=method)
    assert p.shape == (30, 9) and p.dtype == torch.int64
    assert len({tuple(r) for r in p.tolist()}) == 30
    assert torch.equal(p.sort(1).values, torch.arange(9).expand(30, 9))
    assert torch.equal(p, hamming_permutations(30, seed=0, method=method))
    assert not torch.equal(p, hamming_permutations(30, seed=1, method=method))


def test_max_hamming_beats_random_beats_min():
    s = {m: permutation_stats(hamming_permutations(30, seed=0, method=m))
         for m in ("max", "random", "min")}
    assert s["max"]["min"] > s["random"]["min"]
    assert s["max"]["mean"] > s["min"]["mean"] + 2
    assert s["max"]["min"] >= 7         # greedy max-min on 9! candidates


def test_small_grid_and_large_grid():
    p = hamming_permutations(24, grid=2, seed=0)         # all 4! permutations
    assert len({tuple(r) for r in p.tolist()}) == 24
    with pytest.raises(ValueError, match="n must be an int in"):
        hamming_permutations(25, grid=2)
    q = hamming_permutations(5, grid=4, seed=0, pool=2000)
    assert q.shape == (5, 16)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), grid=st.integers(2, 4), cell=st.integers(2, 6), seed=st.integers(0, 99))
def test_unshuffle_inverts_shuffle(b, grid, cell, seed):
    x = torch.rand(b, 3, grid * cell, grid * cell)
    tiles = make_tiles(x, grid=grid, tile_size=cell, jitter=False)
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(grid * grid, generator=g) for _ in range(b)])
    shuffled = shuffle_tiles(tiles, perms)
    assert torch.equal(shuffled[0, 0], tiles[0, perms[0, 0]])
    assert torch.equal(unshuffle_tiles(shuffled, perms), tiles)
    assert torch.equal(assemble_tiles(unshuffle_tiles(shuffled, perms), grid=grid, gap=0), x)


@pytest.mark.parametrize("call, match", [
    (lambda: make_tiles(torch.rand(1, 3, 32, 32), grid=3), "divisible by grid=3"),
    (lambda: make_tiles(torch.rand(1, 3, 30, 33), grid=3), "square"),
    (lambda: make_tiles(torch.rand(3, 30, 30)), r"\(B, C, H, W\)"),
    (lambda: make_tiles(torch.rand(1, 3, 30, 30), tile_size=11), "tile_size"),
    (lambda: hamming_permutations(10, method="best"), "method must be"),
    (lambda: shuffle_tiles(torch.rand(1, 9, 3, 4, 4), torch.zeros(9)), "permutation of"),
    (lambda: shuffle_tiles(torch.rand(2, 9, 3, 4, 4), torch.arange(4)), "perms must be"),
    (lambda: permutation_stats(torch.arange(9)[None]), "perms must be"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_max_set_maximises_the_minimum_the_exercise_the_mean():
    """What tiles.py's docstring and the chapter 05 checker say each selection does: on the
    same 9! candidates from the same start, both reach the same mean distance, but only the
    library's max-min search keeps every pair far apart."""
    import itertools

    from course_lib.checkers.ch05 import reference_greedy_hamming

    small = torch.tensor(list(itertools.permutations(range(5))))
    candidates = torch.tensor(list(itertools.permutations(range(9))))

    def mean_greedy(cands, n, first):  # the exercise's algorithm with a running sum (fast on 9!)
        chosen, total = [first], (cands != cands[first]).sum(1)
        for _ in range(n - 1):
            score = total.double()
            score[chosen] = -1
            chosen.append(int(score.argmax()))            # ties: the lowest index, as argmax
            total += (cands != cands[chosen[-1]]).sum(1)
        return cands[chosen]

    assert torch.equal(mean_greedy(small, 12, 7), reference_greedy_hamming(small, 12, 7))
    library = hamming_permutations(30, grid=3, seed=0, method="max")
    first = int((candidates == library[0]).all(1).nonzero())
    lib, ex = permutation_stats(library), permutation_stats(mean_greedy(candidates, 30, first))
    assert lib["min"] >= ex["min"] + 3
    assert lib["mean"] >= ex["mean"] - 1e-6
