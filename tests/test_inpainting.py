"""Inpainting: shapes, the shared backbone, the masked loss, OpenCV wrapper, training steps."""
import pytest
import torch

from course_lib.backbone import ConvBackbone
from course_lib.inpainting import (
    ContextDiscriminator,
    InpaintConfig,
    InpaintingNet,
    composite,
    inpainting_step,
    masked_mse_loss,
    mean_fill,
    opencv_inpaint,
)
from course_lib.masks import apply_mask


def _center_mask(b, size, frac=0.5):
    m = torch.zeros(b, 1, size, size)
    lo, hi = int(size * (1 - frac) / 2), int(size * (1 + frac) / 2)
    m[:, :, lo:hi, lo:hi] = 1
    return m


def _smooth_images(b, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(b, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(small, size=size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("skips", [True, False])
def test_shapes_and_range(skips):
    net = InpaintingNet(skips=skips)
    x = torch.rand(2, 3, 32, 32)
    m = _center_mask(2, 32)
    out = net(apply_mask(x, m, 0.5), m)
    assert out.shape == (2, 3, 32, 32)
    assert out.min() >= 0 and out.max() <= 1


def test_backbone_is_the_shared_module_and_transfers():
    net = InpaintingNet()
    assert type(net.backbone) is ConvBackbone
    other = ConvBackbone()
    other.load_state_dict(net.backbone.state_dict())  # strict: identical keys and shapes
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(other(x), net.backbone(x))


def test_masked_loss_ignores_pixels_outside_the_hole():
    x = torch.rand(2, 3, 8, 8)
    m = _center_mask(2, 8)
    x_hat = x.clone()
    x_hat[:, :, 0, 0] = 5.0  # outside the hole: must not matter
    assert masked_mse_loss(x_hat, x, m).item() == 0.0
    x_hat = x.clone() + m * 0.5  # hole off by 0.5 everywhere
    assert masked_mse_loss(x_hat, x, m).item() == pytest.approx(0.25)


def test_masked_loss_counts_hole_values_not_image():
    x = torch.zeros(1, 3, 4, 4)
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 0, 0] = 1
    x_hat = torch.ones(1, 3, 4, 4)
    assert masked_mse_loss(x_hat, x, m).item() == pytest.approx(1.0)


def test_masked_loss_rejects_bad_input():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="mask"):
        masked_mse_loss(x, x, torch.ones(2, 3, 8, 8))
    with pytest.raises(ValueError, match="no hole"):
        masked_mse_loss(x, x, torch.zeros(2, 1, 8, 8))


def test_composite_and_fill():
    x = torch.rand(2, 3, 8, 8)
    m = _center_mask(2, 8)
    f = apply_mask(x, m, 0.25)
    assert torch.all(f[m.expand_as(f) > 0] == 0.25)
    assert torch.equal(f[m.expand_as(f) == 0], x[m.expand_as(x) == 0])
    c = composite(torch.zeros_like(x), x, m)
    assert torch.equal(c, apply_mask(x, m, 0.0))


def test_mean_fill_uses_known_pixels_mean():
    x = torch.zeros(1, 3, 4, 4)
    x[:, :, :2] = 1.0  # top half white, bottom half (the hole) black
    m = torch.zeros(1, 1, 4, 4)
    m[..., 2:, :] = 1
    out = mean_fill(x, m)
    assert torch.allclose(out[..., 2:, :], torch.ones(1, 3, 2, 4))


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("channels", [1, 3])
def test_opencv_wrapper_batches_floats(method, channels):
    x = _smooth_images(3, 32)[:, :channels]
    m = _center_mask(3, 32, 0.4)
    out = opencv_inpaint(apply_mask(x, m, 0.0), m, method=method)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    outside = (m == 0).expand_as(x)
    assert torch.allclose(out[outside], x[outside], atol=1 / 255 + 1e-6)
    # a smooth image is filled far better than by zeros
    err_cv = ((out - x) ** 2 * m).sum()
    err_zero = ((x * m) ** 2).sum()
    assert err_cv < 0.2 * err_zero


def test_opencv_rejects_unknown_method():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="telea"):
        opencv_inpaint(x, _center_mask(1, 8), method="fast")


def test_training_steps_reduce_loss():
    torch.manual_seed(0)
    net = InpaintingNet(decoder_widths=(32, 16, 8))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = _smooth_images(8, 16)
    m = _center_mask(8, 16)
    losses = [inpainting_step(net, opt, x, m)["loss"] for _ in range(25)]
    assert losses[-1] < 0.7 * losses[0]


def test_adversarial_step_runs_and_logs():
    torch.manual_seed(0)
    net, disc = InpaintingNet(), ContextDiscriminator(width=8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    x, m = _smooth_images(4, 16), _center_mask(4, 16)
    logs = inpainting_step(net, opt, x, m, discriminator=disc, d_optimizer=d_opt, adv_weight=0.01)
    assert set(logs) >= {"loss", "d_loss", "adv"}
    with pytest.raises(ValueError, match="discriminator"):
        inpainting_step(net, opt, x, m, adv_weight=0.01)


def test_config_profiles():
    assert InpaintConfig.for_profile("cpu").image_size == 32
    assert InpaintConfig.for_profile("gpu").image_size == 64
    assert InpaintConfig.for_profile("smoke").steps < 20
