"""The rotation pretext task has no border shortcut on ToyFaces (issue 15 item 1)."""
import pytest
import torch

from course_lib.shortcuts import border_rotation_probe, border_strips, shortcut_finding
from course_lib.toyfaces import ToyFaces


def test_border_strips_order_and_shape():
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, 0] = 1.0                                   # top row white
    f = border_strips(x, width=1)
    assert f.shape == (2, 12)
    assert torch.allclose(f[:, :3], torch.ones(2, 3))  # top
    assert torch.allclose(f[:, 3:6], torch.zeros(2, 3))  # bottom
    assert torch.allclose(f[:, 6:9], torch.full((2, 3), 1 / 8))  # left: one of 8 rows white


@pytest.mark.parametrize("image_size", [32, 64])
def test_toyfaces_rotation_cannot_be_read_off_the_border(image_size):
    images = ToyFaces(split="train", size=1200, image_size=image_size, cache=False).images
    assert border_rotation_probe(images, seed=0) < 0.40


def test_the_old_gradient_background_is_a_shortcut_the_probe_finds():
    images = ToyFaces(split="train", size=1200, image_size=32, background="gradient",
                      cache=False).images
    assert border_rotation_probe(images, seed=0) > 0.9


def test_bad_background_style_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="radial"):
        ToyFaces(split="train", size=4, image_size=16, background="striped", cache=False)


def test_shortcut_finding_separates_chance_a_cue_and_a_shortcut():
    assert "at chance" in shortcut_finding([0.24, 0.27, 0.26], chance=0.25, network=0.99)
    cue = shortcut_finding([0.30, 0.31, 0.317], chance=0.25, network=0.99)
    assert "carries a cue" in cue and "not all of it" in cue
    assert "a shortcut" in shortcut_finding([1.0, 1.0, 1.0], chance=0.25, network=0.99)
