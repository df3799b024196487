"""Inpainting masks: layout, coverage, determinism, apply_mask, clear errors."""
import pytest
import torch

from course_lib.masks import MASK_KINDS, apply_mask, make_masks, mask_coverage


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("coverage", [0.1, 0.25, 0.5])
def test_shape_values_and_coverage(kind, coverage):
    m = make_masks(kind, batch=16, image_size=32, coverage=coverage, seed=0)
    assert m.shape == (16, 1, 32, 32) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    c = mask_coverage(m)
    assert (c >= coverage - 0.03).all(), c
    assert (c <= coverage + 0.15).all(), c
    assert abs(c.mean().item() - coverage) < 0.08


def test_half_sides_hide_the_named_half():
    m = make_masks("half", batch=2, image_size=8, coverage=0.5, side="bottom")
    assert m[:, :, 4:].eq(1).all() and m[:, :, :4].eq(0).all()  # the article: keep the top
    assert make_masks("half", batch=1, image_size=8, coverage=0.5, side="top")[0, 0, 0].eq(1).all()
    left = make_masks("half", batch=1, image_size=8, coverage=0.25, side="left")
    assert left[0, 0, :, :2].eq(1).all() and left[0, 0, :, 2:].eq(0).all()
    assert make_masks("half", batch=1, image_size=8, coverage=0.5, side="right")[0, 0, :, -1].eq(1).all()


def test_center_is_centred():
    m = make_masks("center", batch=1, image_size=16, coverage=0.25)[0, 0]
    assert m[4:12, 4:12].eq(1).all() and m.sum() == 64


@pytest.mark.parametrize("kind", ["blocks", "freeform"])
def test_random_kinds_are_seeded_and_vary(kind):
    a = make_masks(kind, batch=8, image_size=32, seed=1)
    b = make_masks(kind, batch=8, image_size=32, seed=1)
    c = make_masks(kind, batch=8, image_size=32, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each image gets its own mask
    g = torch.Generator().manual_seed(1)
    assert torch.equal(make_masks(kind, batch=8, image_size=32, generator=g), a)


def test_apply_mask_fills_holes_only():
    x = torch.rand(4, 3, 16, 16)
    m = make_masks("center", batch=4, image_size=16, coverage=0.25)
    y = apply_mask(x, m, fill=0.5)
    assert torch.equal(y[m.expand_as(x) == 0], x[m.expand_as(x) == 0])
    assert (y[m.expand_as(x) == 1] == 0.5).all()
    mean = torch.tensor([0.1, 0.2, 0.3])
    y = apply_mask(x, m, fill=mean)
    assert torch.allclose(y[:, :, 8, 8], mean.expand(4, 3))
    y = apply_mask(x, m, fill="mean")   # mean colour of the known pixels
    known = (1 - m).expand_as(x)
    expected = (x * known).sum((0, 2, 3)) / known.sum((0, 2, 3))
    assert torch.allclose(y[0, :, 8, 8], expected)


@pytest.mark.parametrize("call, match", [
    (lambda: make_masks("circle", batch=1, image_size=8), "unknown mask kind"),
    (lambda: make_masks("center", batch=0, image_size=8), "batch must be a positive int"),
    (lambda: make_masks("center", batch=1, image_size=-8), "image_size must be a positive int"),
    (lambda: make_masks("center", batch=1, image_size=8, coverage=1.5), "coverage must be"),
    (lambda: make_masks("half", batch=1, image_size=8, side="middle"), "side must be one of"),
    (lambda: apply_mask(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8)), "mask must be"),
    (lambda: apply_mask(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), fill="median"), "fill"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
