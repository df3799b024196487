"""show_images (course_lib.plots) and to_float (course_lib.images): the chapters' image grid
and the one uint8 -> float conversion."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib.faceattributes import ATTRIBUTE_NAMES, ATTRIBUTES
from course_lib.facedraw import BACKGROUND
from course_lib.images import to_float, to_uint8
from course_lib.plots import class_colours, show_images


def test_to_float_maps_uint8_exactly_and_keeps_floats():
    x = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32
    assert y[0].item() == 0.0 and y[-1].item() == 1.0 and y[2].item() == pytest.approx(128 / 255)
    f = torch.tensor([-0.5, 0.25, 1.5])  # float values pass through, unclamped, no copy
    assert to_float(f) is f
    assert to_float(f.double()).dtype == torch.float32
    assert torch.equal(to_float(f.double()), f)


def test_to_uint8_round_trips_and_clamps():
    x = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_float(x)), x)
    assert to_uint8(torch.tensor([-0.2, 0.5, 1.3])).tolist() == [0, 128, 255]  # 127.5 rounds to even
    with pytest.raises(TypeError, match="float"):
        to_uint8(x)


@pytest.mark.parametrize("bad", [torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.bool)])
def test_to_float_refuses_dtypes_of_unknown_range(bad):
    with pytest.raises(TypeError, match="uint8"):
        to_float(bad)


def _pixels(ax):
    return np.asarray(ax.get_images()[0].get_array())


def test_show_images_uint8_and_float_draw_the_same_grid():
    u8 = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8)
    a = show_images(u8, nrow=3, title="uint8")
    b = show_images(u8.float() / 255, nrow=3)
    grid = _pixels(a)
    assert grid.shape == (2 * 6 + 1, 3 * 6 + 1, 3)  # 2 rows x 3 columns of 5x5 plus 1-pixel borders
    np.testing.assert_allclose(grid, _pixels(b), atol=1e-6)
    np.testing.assert_allclose(grid[1:6, 1:6], (u8[0].permute(1, 2, 0).float() / 255).numpy(), atol=1e-6)
    assert grid[0, 0].tolist() == [1.0, 1.0, 1.0]  # white border
    assert a.get_title() == "uint8" and not a.axison
    plt.close("all")


def test_show_images_grey_clamps_and_draws_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    grey = torch.full((4, 3, 3), 2.0)  # (B, H, W), overshooting floats
    out = show_images(grey, nrow=2, ax=axes[1])
    assert out is axes[1] and not axes[0].get_images()
    grid = _pixels(out)
    assert grid.shape == (2 * 4 + 1, 2 * 4 + 1, 3) and grid.max() == 1.0
    plt.close(fig)


@pytest.mark.parametrize("images, nrow, match", [
    (torch.zeros(2, 4, 5, 5), 2, "C = 1 or 3"),
    (torch.zeros(5, 5), 2, r"\(B, H, W\)"),
    (torch.zeros(2, 3, 5, 5), 0, "nrow must be a positive int"),
])
def test_show_images_names_what_it_expected(images, nrow, match):
    with pytest.raises(ValueError, match=match):
        show_images(images, nrow=nrow)


def test_class_colours_draw_colour_classes_in_their_own_colour():
    background = class_colours("background")
    choices = ATTRIBUTES[ATTRIBUTE_NAMES.index("background")].choices
    assert len(background) == len(choices) and background[choices.index("mint")] == BACKGROUND[1]
    mint = background[choices.index("mint")]
    assert mint[1] > mint[0] and mint[1] > mint[2]          # mint is green, not orange
    assert len(class_colours("hat")) == 2 and class_colours("hat")[0] != class_colours("hat")[1]
    with pytest.raises(ValueError, match="unknown attribute"):
        class_colours("moustache")
