"""Chapter 05 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch

from course_lib.checkers.ch05 import (
    check_greedy_hamming,
    check_rotation_batch,
    check_shuffle_tiles,
    reference_greedy_hamming,
    reference_shuffle,
    reference_unshuffle,
)
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def shuffle(tiles, perms):
    return torch.stack([t[p] for t, p in zip(tiles, perms)])


def unshuffle(shuffled, perms):
    return torch.stack([s[torch.argsort(p)] for s, p in zip(shuffled, perms)])


def greedy(c, n, first=0, distance=lambda a, b: (a != b).sum(-1)):
    remaining = list(range(c.shape[0]))
    chosen = [remaining.pop(first)]
    while len(chosen) < n:
        d = distance(c[remaining][:, None], c[chosen][None]).float()
        chosen.append(remaining.pop(int(d.mean(1).argmax())))
    return c[chosen]


def rotation_batch(x):
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)]), torch.arange(4).repeat_interleave(len(x))


def test_shuffle_reference_passes(capsys):
    check_shuffle_tiles(shuffle, unshuffle)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("shuffle, unshuffle, pattern", [
    (stub, unshuffle, "not implemented"),
    (shuffle, stub, "not implemented"),
    (unshuffle, unshuffle, "inverse"),
    (lambda t, p: t[:, p[0]], unshuffle, "first permutation"),
    (lambda t, p: t.clone(), unshuffle, "original order"),
    (shuffle, shuffle, "second time"),
    (shuffle, lambda s, p: s.clone(), "give back"),
])
def test_shuffle_wrong_answers_fail(shuffle, unshuffle, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_shuffle_tiles(shuffle, unshuffle)


def test_round_trip_property():
    g = torch.Generator().manual_seed(1)
    tiles = torch.rand(5, 9, 1, 2, 2, generator=g)
    perms = torch.stack([torch.randperm(9, generator=g) for _ in range(5)])
    assert torch.equal(reference_unshuffle(reference_shuffle(tiles, perms), perms), tiles)


def test_greedy_reference_passes(capsys):
    check_greedy_hamming(greedy)
    assert "correct" in capsys.readouterr().out


def test_greedy_reference_is_the_checkers():
    c = torch.tensor([[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0], [2, 0, 1]])
    assert torch.equal(greedy(c, 3, 1), reference_greedy_hamming(c, 3, 1))


def _greedy_min(c, n, first=0):
    remaining = list(range(c.shape[0]))
    chosen = [remaining.pop(first)]
    while len(chosen) < n:
        d = (c[remaining][:, None] != c[chosen][None]).sum(-1)
        chosen.append(remaining.pop(int(d.min(1).values.argmax())))
    return c[chosen]


def _greedy_argmin(c, n, first=0):
    remaining = list(range(c.shape[0]))
    chosen = [remaining.pop(first)]
    while len(chosen) < n:
        d = (c[remaining][:, None] != c[chosen][None]).sum(-1).float()
        chosen.append(remaining.pop(int(d.mean(1).argmin())))
    return c[chosen]


def _greedy_no_removal(c, n, first=0):
    chosen = [first]
    while len(chosen) < n:
        d = (c[:, None] != c[chosen][None]).sum(-1).float()
        chosen.append(int(d.mean(1).argmax()))
    return c[chosen]


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda c, n, first=0: c[first:first + n], "consecutive"),
    (lambda c, n, first=0: c[:n], "candidates\\[first\\]"),
    (_greedy_argmin, "argmax"),
    (_greedy_min, "minimum|argmax"),
    (lambda c, n, first=0: greedy(c, n + 1, first), "shape"),
    # L1 instead of Hamming: the first candidate set cannot tell them apart, the others can
    (lambda c, n, first=0: greedy(c, n, first, lambda a, b: (a - b).abs().sum(-1)),
     r"greedy one for the L1 distance.*\(a != b\)\.sum"),
])
def test_greedy_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_greedy_hamming(wrong)


def test_greedy_without_removal_fails_or_matches():
    # Without removal a chosen permutation can be picked again only if it wins the argmax;
    # the checker must then report duplicates, else the answer equals the reference.
    try:
        check_greedy_hamming(_greedy_no_removal)
    except ExerciseError as err:
        assert "duplicates" in str(err) or "differ" in str(err)


def test_rotation_reference_passes(capsys):
    check_rotation_batch(rotation_batch)
    assert "correct" in capsys.readouterr().out


def _interleaved(x):
    rot = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], 1).flatten(0, 1)
    return rot, torch.arange(4).repeat(x.shape[0])


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda x: torch.cat([torch.rot90(x, -k, dims=(2, 3)) for k in range(4)]),
     "pair"),
    (lambda x: (torch.cat([torch.rot90(x, -k, dims=(2, 3)) for k in range(4)]),
                torch.arange(4).repeat_interleave(x.shape[0])), "clockwise"),
    (lambda x: (torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)]),
                torch.arange(4).repeat(x.shape[0])), "k-major"),
    (lambda x: (torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)]),
                torch.arange(4).repeat_interleave(x.shape[0]).float()), "int64"),
    (lambda x: (torch.cat([torch.rot90(x, k, dims=(1, 2)) for k in range(4)]),
                torch.arange(4).repeat_interleave(x.shape[0])), "raised|shape|rotated by"),
    (lambda x: (torch.cat([x for k in range(4)]),
                torch.arange(4).repeat_interleave(x.shape[0])), "rotated by 90"),
    (lambda x: (torch.rot90(x, 1, dims=(2, 3)), torch.ones(x.shape[0], dtype=torch.long)), "shape"),
])
def test_rotation_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_rotation_batch(wrong)


# --- border features (the rotation shortcut) ----------------------------------------------
from course_lib.checkers.ch05 import check_border_features  # noqa: E402


def _strips(x, w, order=(0, 1, 2, 3)):
    s = [x[:, :, :w].mean((2, 3)), x[:, :, -w:].mean((2, 3)), x[:, :, :, :w].mean((2, 3)),
         x[:, :, :, -w:].mean((2, 3))]
    return torch.cat([s[i] for i in order], 1)


def test_border_reference_passes(capsys):
    check_border_features(lambda x, w: _strips(x.float(), w))
    check_border_features(lambda x, w=2: _strips(x.double(), w))   # float64 is right too (was a raw error)
    assert capsys.readouterr().out.count("correct") == 2


@pytest.mark.parametrize("fn, pattern", [
    (stub, "not implemented"),
    (lambda x, w: _strips(x, w).view(len(x), 4, 3).mean(2), "averaged the colour channels"),
    (lambda x, w: _strips(x, 1), "1 pixel wide"),
    (lambda x, w: _strips(x, w, (0, 2, 1, 3)), "top, left, bottom, right"),
    (lambda x, w: _strips(x.transpose(2, 3), w), "rows are dim 2"),
    (lambda x, w: _strips(x, w).view(len(x), 4, 3).transpose(1, 2).flatten(1), "channel-major"),
    (lambda x, w: x.mean((2, 3)).repeat(1, 4), "border_features"),
    (lambda x, w: _strips(x.float(), 2), "width=3 the strips are still 2 pixels wide"),
    # no .float(): right on float images, then the chapter's probe fails on ToyFaces' uint8 images
    (lambda x, w: _strips(x, w), r"on uint8 images.*raised RuntimeError.*images\.float\(\)"),
])
def test_border_wrong_answers_fail(fn, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_border_features(fn)


# --- NT-Xent (SimCLR) -----------------------------------------------------------------------

from course_lib.checkers.ch05 import _nt_xent_variant, check_nt_xent  # noqa: E402


def nt_xent(z1, z2, temperature=0.5):
    return _nt_xent_variant(z1, z2, temperature)


def test_nt_xent_reference_passes(capsys):
    check_nt_xent(nt_xent)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer, pattern", [
    (stub, "not implemented"),
    (lambda a, b, t: _nt_xent_variant(a, b, t, mask_self=False), "itself is still in the denominator"),
    (lambda a, b, t: _nt_xent_variant(a, b, t, use_temperature=False), "not divided by the temperature"),
    (lambda a, b, t: _nt_xent_variant(a, b, t, normalise=False), "dot products of the raw vectors"),
    (lambda a, b, t: nt_xent(a, b, 1 / t), "multiplied by the temperature"),
    (lambda a, b, t: torch.stack([nt_xent(a, b, t)] * 2), "one number"),
    (lambda a, b, t: nt_xent(a, b, t).item(), "torch.Tensor"),
    (lambda a, b, t: nt_xent(a, b, t) * 0.9, "differ from the reference"),
    (lambda a, b, t: nt_xent(a, b, t).detach(), "no gradient flows back to z1 and z2"),
    (lambda a, b, t: nt_xent(a.detach(), b, t), "gradient w.r.t. z1 is not"),
])
def test_nt_xent_wrong_answers_fail(answer, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_nt_xent(answer)


def test_nt_xent_mistakes_are_told_apart():
    """Each mistake gives a different number on the checker's inputs, so each message is earned."""
    g = torch.Generator().manual_seed(0)
    z1 = 3 * torch.randn(6, 5, generator=g)
    z2 = z1 + 2 * torch.randn(6, 5, generator=g)
    values = [nt_xent(z1, z2, 0.2).item()] + [_nt_xent_variant(z1, z2, 0.2, **f).item() for f in (
        dict(mask_self=False), dict(use_temperature=False), dict(normalise=False))]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-2
