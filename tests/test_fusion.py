"""Fusion: weight transfer, the joint loss, joint training (course_lib/fusion.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.backbone import ConvBackbone
from course_lib import fusion

torch.set_num_threads(1)


class ToyEncoder(nn.Module):
    def __init__(self, latent_dim=4, image_size=16):
        super().__init__()
        self.backbone = ConvBackbone()
        n = 128 * (image_size // 8) ** 2
        self.fc_mu = nn.Linear(n, latent_dim)
        self.fc_logvar = nn.Linear(n, latent_dim)

    def forward(self, x):
        h = self.backbone(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)


class ToyVAE(nn.Module):
    """Holds `.encoder.backbone` like the course VAE; forward -> (x_hat, mu, logvar)."""

    def __init__(self, latent_dim=4, image_size=16):
        super().__init__()
        self.encoder = ToyEncoder(latent_dim, image_size)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 3 * image_size**2), nn.Sigmoid())
        self.image_size = image_size

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        x_hat = self.decoder(z).view(-1, 3, self.image_size, self.image_size)
        return x_hat, mu, logvar


def toy_elbo(x, x_hat, mu, logvar):
    rec = ((x_hat - x) ** 2).flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
    return (rec + kl).mean()


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_find_backbone_prefixes():
    assert fusion.find_backbone(ConvBackbone())[0] == ""
    assert fusion.find_backbone(fusion.Inpainter())[0] == "backbone."
    assert fusion.find_backbone(ToyVAE())[0] == "encoder.backbone."
    with pytest.raises(ValueError, match="exactly one ConvBackbone"):
        fusion.find_backbone(nn.Linear(2, 2))


def test_transfer_copies_exactly_the_backbone():
    torch.manual_seed(0)
    src, dst = fusion.Inpainter(), ToyVAE()
    src_before, dst_before = _snapshot(src), _snapshot(dst)
    copied = fusion.transfer_backbone(src, dst)
    expected = [f"encoder.backbone.conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
    assert sorted(copied) == sorted(expected)
    after = dst.state_dict()
    for key, value in after.items():
        if key in expected:
            src_key = key.replace("encoder.", "", 1)
            assert torch.equal(value, src_before[src_key]), key
            assert not torch.equal(value, dst_before[key]), key  # really changed
        else:
            assert torch.equal(value, dst_before[key]), f"{key} should be left alone"
    for key, value in src.state_dict().items():  # source untouched
        assert torch.equal(value, src_before[key])
    # copied, not shared: changing the source later does not change the destination
    with torch.no_grad():
        src.backbone.conv1.weight.add_(1.0)
    assert not torch.equal(src.backbone.conv1.weight, dst.encoder.backbone.conv1.weight)
    assert all(p.requires_grad for p in dst.parameters())


def test_transfer_freeze_and_shape_mismatch():
    src, dst = fusion.Inpainter(), ToyVAE()
    fusion.transfer_backbone(src, dst, freeze=True)
    assert not any(p.requires_grad for p in dst.encoder.backbone.parameters())
    assert all(p.requires_grad for p in dst.encoder.fc_mu.parameters())
    with pytest.raises(ValueError, match="backbones differ"):
        fusion.transfer_backbone(fusion.Inpainter(widths=(16, 32, 64)), dst)


def test_inpainting_loss_counts_only_holes():
    x = torch.zeros(2, 3, 8, 8)
    fill = torch.ones(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1  # top half is the hole: 3 * 4 * 8 = 96 pixels per image
    assert fusion.inpainting_loss(fill, x, mask).item() == pytest.approx(96.0)
    fill_known_wrong = x.clone()
    fill_known_wrong[:, :, 4:] = 5.0  # errors on known pixels do not count
    assert fusion.inpainting_loss(fill_known_wrong, x, mask).item() == 0.0


def test_mask_images_and_head_shapes():
    x = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 8:, :] = 1
    masked = fusion.mask_images(x, mask)
    assert torch.equal(masked[..., :8, :], x[..., :8, :])
    assert torch.all(masked[..., 8:, :] == fusion.HOLE_FILL)
    with pytest.raises(ValueError, match="mask must be"):
        fusion.mask_images(x, mask[:, :, :8])
    out = fusion.Inpainter()(masked)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_joint_loss_equals_elbo_at_lambda_zero_and_adds_otherwise():
    torch.manual_seed(1)
    model = fusion.JointModel(vae=ToyVAE())
    x = torch.rand(4, 3, 16, 16)
    mask = torch.zeros(4, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    out = model(x, mask)
    assert out["fill"].shape == x.shape
    elbo = toy_elbo(x, out["x_hat"], out["mu"], out["logvar"])
    assert torch.equal(fusion.joint_loss(elbo, out["fill"], x, mask, lam=0.0), elbo)
    inp = fusion.inpainting_loss(out["fill"], x, mask)
    assert inp.item() > 0
    assert fusion.joint_loss(elbo, out["fill"], x, mask, lam=2.0).item() == pytest.approx(
        (elbo + 2 * inp).item(), rel=1e-6)


def test_joint_model_shares_the_vae_backbone():
    vae = ToyVAE()
    model = fusion.JointModel(vae=vae)
    assert model.backbone is vae.encoder.backbone
    # the head's gradient reaches the shared backbone
    x = torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    fusion.inpainting_loss(model(x, mask)["fill"], x, mask).backward()
    assert vae.encoder.backbone.conv1.weight.grad.abs().sum() > 0


def test_joint_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = fusion.JointModel(vae=ToyVAE())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(8, 3, 16, 16) * 0.5 + 0.25
    mask = torch.zeros(8, 1, 16, 16)
    mask[..., 8:, :] = 1
    losses = [fusion.joint_step(model, opt, x, mask, lam=1.0, elbo_fn=toy_elbo)["loss"] for _ in range(15)]
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5
    # lam = 0 is a plain VAE step: the head gets no gradient
    head_before = _snapshot(model.head)
    fusion.joint_step(model, opt, x, mask, lam=0.0, elbo_fn=toy_elbo)
    assert all(torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())


def test_inpainter_steps_and_pooled_features():
    torch.manual_seed(0)
    net = fusion.Inpainter()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = torch.rand(8, 3, 16, 16)
    mask = torch.zeros(8, 1, 16, 16)
    mask[..., :, 8:] = 1
    first = fusion.inpainter_step(net, opt, x, mask)["inpaint"]
    for _ in range(8):
        last = fusion.inpainter_step(net, opt, x, mask)["inpaint"]
    assert last < first
    feats = fusion.backbone_features(net, (x * 255).to(torch.uint8), batch_size=3)
    assert feats.shape == (8, 128)
    assert torch.allclose(feats, fusion.backbone_features(net, x), atol=0.05)
