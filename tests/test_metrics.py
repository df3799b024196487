"""Metric known values: Frechet (vs torchmetrics), precision/recall, PSNR/SSIM, probes."""
import math

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from course_lib import metrics
from course_lib.metrics import (
    domain_frechet,
    frechet_distance,
    frechet_label,
    precision_recall,
    psnr,
    ssim,
)
from course_lib.toyfaces import ToyFaces


def _gauss(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_frechet_of_identical_sets_is_zero():
    a = _gauss(500, 16, 0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_known_values_for_gaussians():
    a = _gauss(400, 8, 0)
    # shifting every vector by c adds |c|^2 exactly (covariances unchanged)
    shift = torch.full((8,), 0.5, dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(8 * 0.25, rel=1e-9)
    # scaling by s: Tr(S + s^2 S - 2 s S) = (1 - s)^2 Tr(S)
    cov_trace = torch.cov(a.T).trace().item()
    assert frechet_distance(a, 3 * a) == pytest.approx(4 * cov_trace + (2 * a.mean(0)).pow(2).sum().item(), rel=1e-7)


class _Identity(nn.Module):
    num_features = 6

    def forward(self, x):
        return x


def test_frechet_matches_torchmetrics_on_the_same_features():
    a, b = _gauss(300, 6, 1), _gauss(250, 6, 2, shift=0.3, scale=1.4)
    fid = FrechetInceptionDistance(feature=_Identity())
    fid.update(a.float(), real=True)
    fid.update(b.float(), real=False)
    ours = frechet_distance(a.float(), b.float())
    assert ours == pytest.approx(float(fid.compute()), rel=1e-4)


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(_gauss(10, 3, 0), _gauss(10, 4, 0))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((4, 2), float("nan")), torch.zeros(4, 2))


class _PixelNet(nn.Module):
    """A fixed random projection of pixels: enough to test domain_frechet's plumbing."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 16 * 16, 32)
        self.num_features = 32

    def features(self, images):
        x = images.float() / 255 if images.dtype == torch.uint8 else images
        return self.proj(x.flatten(1)).detach()


def test_domain_frechet_uses_exactly_n_and_says_what_it_is():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (80, 3, 16, 16), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (50, 3, 16, 16), dtype=torch.uint8, generator=g)
    value = domain_frechet(a, b, n=50, net=_PixelNet())
    assert value == domain_frechet(a, b, n=50, net=_PixelNet())  # seeded subset: repeatable
    assert value != domain_frechet(a, b, n=40, net=_PixelNet())
    with pytest.raises(ValueError, match="has 50 images but n=60"):
        domain_frechet(a, b, n=60, net=_PixelNet())
    assert "not Inception FID" in frechet_label(1000, 32) and "n=1000" in frechet_label(1000, 32)


def test_precision_recall_known_values():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    # k=1: every real point's radius is 1. Fakes at 0.5 and 2.2 are inside, 10 is not.
    fake = torch.tensor([[0.5], [2.2], [10.0], [10.5]])
    pr = precision_recall(real, fake, k=1)
    assert pr["precision"] == pytest.approx(2 / 4)
    # fake radii (k=1): 1.7, 1.7, 0.5, 0.5 -> real 0, 1, 2, 3 are covered, 4 is not
    assert pr["recall"] == pytest.approx(4 / 5)


def test_precision_recall_same_distribution_high_and_collapse_low_recall():
    real, fake = _gauss(400, 4, 0), _gauss(400, 4, 1)
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.8 and pr["recall"] > 0.8
    collapsed = _gauss(400, 4, 2, scale=0.05)  # mode collapse: sharp but no coverage
    pr = precision_recall(real, collapsed, k=3)
    assert pr["precision"] > 0.9 and pr["recall"] < 0.2
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(real[:3], fake, k=3)


def test_psnr_against_the_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g)
    x_hat = (x + 0.1 * torch.randn(4, 3, 8, 8, generator=g)).clamp(0, 1)
    mse = ((x_hat - x) ** 2).flatten(1).mean(1)
    expected = (10 * torch.log10(1.0 / mse)).mean().item()
    assert psnr(x_hat, x) == pytest.approx(expected, rel=1e-5)
    assert psnr(x_hat * 255, x * 255, data_range=255.0) == pytest.approx(expected, rel=1e-5)
    full = torch.ones(4, 1, 8, 8)
    assert psnr(x_hat, x, mask=full) == pytest.approx(expected, rel=1e-5)


def test_psnr_in_the_hole_only():
    x = torch.zeros(2, 3, 8, 8)
    x_hat = x.clone()
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 4:] = 1  # bottom half is the hole
    x_hat[:, :, 4:] = 0.1  # error only in the hole: MSE there = 0.01 -> 20 dB
    x_hat[:, :, :4] = 0.0
    assert psnr(x_hat, x, mask=mask) == pytest.approx(20.0, rel=1e-6)
    assert psnr(x_hat, x) == pytest.approx(10 * math.log10(1 / 0.005), rel=1e-6)  # diluted by known half
    with pytest.raises(ValueError, match="no hole pixels"):
        psnr(x_hat, x, mask=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"mask must be \(B, 1, H, W\)"):
        psnr(x_hat, x, mask=torch.ones(2, 3, 8, 8))


def test_ssim_identical_is_one_and_noise_lowers_it_in_the_hole():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    mask = torch.zeros(3, 1, 16, 16)
    mask[:, :, 8:] = 1
    x_hat = x.clone()
    x_hat[:, :, 12:] = torch.rand(3, 3, 4, 16, generator=g)  # damage inside the hole only
    assert ssim(x_hat, x, mask=mask) < ssim(x_hat, x) < 1.0
    with pytest.raises(ValueError, match="smaller than kernel_size"):
        ssim(x[:, :, :4, :4], x[:, :, :4, :4])


def _old_psnr(x_hat, x, mask=None):
    """metrics.psnr before the course had one PSNR: torchmetrics in float32 without a mask, the
    hole's squared error summed in float32 with one."""
    from torchmetrics.functional.image import peak_signal_noise_ratio
    x_hat, x = x_hat.float(), x.float()
    if mask is None:
        return float(peak_signal_noise_ratio(x_hat, x, data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean"))
    se = ((x_hat - x) ** 2 * mask).flatten(1).sum(1)
    mse = se / (mask.flatten(1).sum(1) * x.shape[1])
    return float((10 * torch.log10(1.0 / mse.double())).mean())


def test_one_psnr_gives_what_both_psnrs_gave():
    """metrics.psnr_per_image is the course's one PSNR: unsupervised.psnr_per_image is it (the
    float64 formula it always had, bit for bit), and metrics.psnr, its mean, moves from float32
    to float64: the same values to 1e-4 dB (stored results round to 0.01 dB)."""
    from course_lib import metrics, unsupervised
    from course_lib.toyfaces import ToyFaces

    assert unsupervised.psnr_per_image is metrics.psnr_per_image
    x = ToyFaces(split="test", size=64, image_size=32).images.float() / 255
    g = torch.Generator().manual_seed(0)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    old_rows = 10 * torch.log10(1.0 / (x_hat.double() - x.double()).pow(2).flatten(1).mean(1).clamp_min(1e-12))
    assert torch.equal(metrics.psnr_per_image(x_hat, x), old_rows)
    assert torch.equal(metrics.psnr_per_image(x_hat.flatten(1).double(), x.flatten(1).double()), old_rows)
    mask = (torch.rand(64, 1, 32, 32, generator=g) < 0.3).float()
    for m in (None, mask):
        assert metrics.psnr(x_hat, x, mask=m) == pytest.approx(_old_psnr(x_hat, x, m), abs=1e-4)
    assert metrics.psnr(x, x) == pytest.approx(120.0)            # identical images: the floor, not inf


def test_grain_is_zero_on_flat_images_and_orders_blur_real_noise():
    faces = ToyFaces(split="test", size=16, image_size=32).images
    flat = torch.full((2, 3, 8, 8), 0.4)
    assert metrics.grain(flat) == 0.0
    real = metrics.grain(faces)
    blurred = metrics.corrupt_images(faces, kind="blur", strength=1.0)
    noisy = metrics.corrupt_images(faces, kind="noise", strength=0.1)
    assert metrics.grain(blurred) < real < metrics.grain(noisy)
    assert metrics.grain(faces) == pytest.approx(metrics.grain(faces.float() / 255))   # uint8 or [0, 1]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metrics.grain(torch.rand(3, 8, 8))
