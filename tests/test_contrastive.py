"""SimCLR: augmentations per image (checked against torchvision.transforms.v2), NT-Xent values,
the training step, exact resume, the cached model."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from course_lib import contrastive as C


def test_colour_ops_equal_torchvision_v2_image_by_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g)
    b, c, s = (0.6 + 0.8 * torch.rand(3, 4, generator=g))
    ours = C.adjust_colour(x, b, c, s)
    for i in range(4):
        ref = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x[i], b[i].item()), c[i].item()),
                                   s[i].item())
        assert torch.allclose(ours[i], ref, atol=1e-6)


def test_crop_identity_and_a_known_crop():
    x = torch.rand(2, 3, 8, 8)
    same = C.random_resized_crop(x, torch.ones(2), torch.zeros(2), torch.zeros(2, 2))
    assert torch.allclose(same, x, atol=1e-6)
    # the top-left quarter (area 1/4, centre at (-1, -1)) resized x2 = bilinear upsampling of
    # x[:4, :4] (the last row and column differ: the crop sees the pixels beyond its edge)
    quarter = C.random_resized_crop(x, torch.full((2,), 0.25), torch.zeros(2), -torch.ones(2, 2))
    expected = F.interpolate(x[:, :, :4, :4], scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(quarter[..., :7, :7], expected[..., :7, :7], atol=1e-5)


def test_augment_draws_per_image_and_is_reproducible():
    cfg = C.SimCLRConfig()
    x = torch.rand(1, 3, 16, 16).expand(6, -1, -1, -1).contiguous()   # six copies of one image
    v = C.augment(x, cfg, torch.Generator().manual_seed(0))
    assert v.shape == x.shape and v.dtype == torch.float32 and 0 <= v.min() and v.max() <= 1
    assert len({tuple(v[i].flatten()[:20].tolist()) for i in range(6)}) == 6   # each copy differs
    assert torch.equal(v, C.augment(x, cfg, torch.Generator().manual_seed(0)))
    u8 = (x * 255).round().to(torch.uint8)
    assert C.augment(u8, cfg, torch.Generator().manual_seed(0)).dtype == torch.float32


def test_augment_without_augmentations_is_identity_and_each_one_acts_alone():
    x = torch.rand(4, 3, 16, 16)
    none = dataclasses.replace(C.SimCLRConfig(), augmentations=())
    assert torch.equal(C.augment(x, none, torch.Generator()), x)
    flip = dataclasses.replace(none, augmentations=("flip",))
    v = C.augment(x, flip, torch.Generator().manual_seed(1))
    assert all(torch.equal(v[i], x[i]) or torch.equal(v[i], x[i].flip(2)) for i in range(4))


def test_nt_xent_known_values():
    # two images, orthogonal, each view identical to its pair: s_ip = 1/tau, the others 0,
    # and the anchor itself excluded: l = -log(e^(1/tau) / (e^(1/tau) + 2))
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    tau = 0.5
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert C.nt_xent(z1, z1.clone(), tau).item() == pytest.approx(expected, rel=1e-6)
    # invariance to the vectors' lengths (cosine similarity)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.allclose(C.nt_xent(a, b), C.nt_xent(3 * a, 0.5 * b), atol=1e-6)
    assert C.positive_accuracy(z1, z1).item() == 1.0


def test_nt_xent_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        C.nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        C.augment(torch.rand(2, 1, 8, 8), C.SimCLRConfig(), torch.Generator())
    with pytest.raises(ValueError, match="augmentations"):
        C.SimCLRConfig(augmentations=("blur",))
    with pytest.raises(ValueError, match="temperature"):
        C.SimCLRConfig(temperature=0.0)


def test_simclr_step_lowers_the_loss():
    torch.manual_seed(0)
    cfg = C.SimCLRConfig.for_profile("smoke")
    model = cfg.build()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(16, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    logs = [C.simclr_step(model, opt, x, cfg, g) for _ in range(30)]
    assert logs[0]["loss"].requires_grad is False
    assert sum(log["loss"] for log in logs[-5:]) / 5 < sum(log["loss"] for log in logs[:5]) / 5
    assert model(x).shape == (16, cfg.out_dim)


def test_train_simclr_resumes_exactly(tmp_path):
    cfg = dataclasses.replace(C.SimCLRConfig.for_profile("smoke"), steps=4)
    images = (torch.rand(32, 3, 16, 16) * 255).to(torch.uint8)
    torch.manual_seed(0)
    full = cfg.build()
    C.train_simclr(full, cfg, images=images, progress=False)
    torch.manual_seed(0)
    half = cfg.build()
    C.train_simclr(half, dataclasses.replace(cfg, steps=2), images=images, progress=False,
                   checkpoint=tmp_path / "ck.pt")
    torch.manual_seed(1)                      # other initial weights: the checkpoint replaces them
    resumed = cfg.build()
    C.train_simclr(resumed, cfg, images=images, progress=False, checkpoint=tmp_path / "ck.pt")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b)


def test_pretrained_simclr_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    cfg = C.SimCLRConfig.for_profile("smoke")
    first = C.pretrained_simclr(cfg, progress=False)
    second = C.pretrained_simclr(cfg, progress=False)
    assert not first.from_cache and second.from_cache
    assert torch.equal(first.model.backbone.conv1.weight.cpu(), second.model.backbone.conv1.weight.cpu())
