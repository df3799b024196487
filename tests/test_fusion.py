"""Fusion: weight transfer, the joint loss, joint training (course_lib/fusion.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from course_lib import fusion
from course_lib.backbone import ConvBackbone
from course_lib.inpainting import InpaintingNet
from course_lib.pretext import JigsawNet
from course_lib.toyfaces import ToyFaces
from course_lib.vae import VAE, elbo_loss


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _half_mask(b, s):
    mask = torch.zeros(b, 1, s, s)
    mask[..., s // 2:, :] = 1
    return mask


def test_find_backbone_prefixes():
    assert fusion.find_backbone(ConvBackbone())[0] == ""
    assert fusion.find_backbone(InpaintingNet())[0] == "backbone."
    assert fusion.find_backbone(VAE(latent_dim=4, image_size=16))[0] == "encoder.backbone."
    assert fusion.find_backbone(JigsawNet(n_permutations=5))[0] == "encoder.backbone."
    with pytest.raises(ValueError, match="exactly one ConvBackbone"):
        fusion.find_backbone(nn.Linear(2, 2))


@pytest.mark.parametrize("source", ["inpainting", "jigsaw"])
def test_transfer_copies_exactly_the_backbone(source):
    torch.manual_seed(0)
    src = InpaintingNet() if source == "inpainting" else JigsawNet(n_permutations=5)
    dst = VAE(latent_dim=4, image_size=16)
    src_before, dst_before = _snapshot(src), _snapshot(dst)
    src_prefix, _ = fusion.find_backbone(src)
    copied = fusion.transfer_backbone(src, dst)
    expected = [f"encoder.backbone.conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
    assert sorted(copied) == sorted(expected)
    for key, value in dst.state_dict().items():
        if key in expected:
            src_key = src_prefix + key[len("encoder.backbone."):]
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
    src, dst = InpaintingNet(), VAE(latent_dim=4, image_size=16)
    fusion.transfer_backbone(src, dst, freeze=True)
    assert not any(p.requires_grad for p in dst.encoder.backbone.parameters())
    assert all(p.requires_grad for p in dst.encoder.fc_mu.parameters())
    with pytest.raises(ValueError, match="backbones differ"):
        fusion.transfer_backbone(InpaintingNet(backbone=ConvBackbone(widths=(16, 32, 64))), dst)


def test_match_feature_scale_sets_the_rms_and_keeps_what_the_features_separate():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, image_size=16)
    images = torch.rand(8, 3, 16, 16)
    backbone = vae.encoder.backbone
    with torch.no_grad():
        backbone.conv3.weight.mul_(300.0)   # a transferred backbone far off the fresh scale
        backbone.conv3.bias.mul_(300.0)
        before = backbone(images)
    c = fusion.match_feature_scale(vae, images, rms=0.05)
    with torch.no_grad():
        after = backbone(images)
    assert float(after.pow(2).mean().sqrt()) == pytest.approx(0.05, rel=1e-4)
    torch.testing.assert_close(after, before * c)            # ReLU is homogeneous: a pure rescale
    with pytest.raises(ValueError, match="positive"):
        fusion.match_feature_scale(vae, images, rms=0.0)


def test_train_variant_match_scale_starts_the_init_vae_from_the_fresh_feature_scale():
    torch.manual_seed(0)
    images = (torch.rand(16, 3, 16, 16) * 255).to(torch.uint8)
    src = InpaintingNet()
    with torch.no_grad():
        src.backbone.conv3.weight.mul_(300.0)
    config = dataclasses.replace(fusion.FusionConfig.for_profile("smoke"), steps=1, image_size=16)
    seen = {}
    for match in (False, True):
        vae, _ = fusion.train_variant("init", images, config, seed=0, pretrained=src, match_scale=match)
        with torch.no_grad():
            seen[match] = float(vae.encoder.backbone(images.float() / 255).pow(2).mean().sqrt())
    fresh = VAE(latent_dim=config.latent_dim, image_size=16)
    with torch.no_grad():
        fresh_rms = float(fresh.encoder.backbone(images.float() / 255).pow(2).mean().sqrt())
    assert seen[True] < 3 * fresh_rms < seen[False] / 10     # one step later: still near the fresh scale


def test_inpainting_loss_counts_only_holes_summed_per_image():
    x = torch.zeros(2, 3, 8, 8)
    fill = torch.ones(2, 3, 8, 8)
    mask = _half_mask(2, 8)  # 3 * 4 * 8 = 96 hole values per image
    assert fusion.inpainting_loss(fill, x, mask).item() == pytest.approx(96.0)
    fill_known_wrong = x.clone()
    fill_known_wrong[..., :4, :] = 5.0  # errors on known pixels do not count
    assert fusion.inpainting_loss(fill_known_wrong, x, mask).item() == 0.0
    with pytest.raises(ValueError, match="mask must be"):
        fusion.inpainting_loss(fill, x, mask[:, :, :4])


def test_joint_loss_equals_elbo_at_lambda_zero_and_adds_otherwise():
    torch.manual_seed(1)
    model = fusion.JointModel(vae=VAE(latent_dim=4, image_size=16))
    x = torch.rand(4, 3, 16, 16)
    mask = torch.zeros(4, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    out = model(x, mask)
    assert out["x_hat"].shape == x.shape
    elbo = elbo_loss(out["x_logits"], x, out["mu"], out["logvar"]).loss
    assert torch.equal(fusion.joint_loss(elbo, out["x_hat"], x, mask, lam=0.0), elbo)
    inp = fusion.inpainting_loss(out["x_hat"], x, mask)
    assert inp.item() > 0
    assert fusion.joint_loss(elbo, out["x_hat"], x, mask, lam=2.0).item() == pytest.approx(
        (elbo + 2 * inp).item(), rel=1e-6)


def test_joint_model_shares_the_vae_backbone():
    vae = VAE(latent_dim=4, image_size=16)
    model = fusion.JointModel(vae=vae)
    assert model.backbone is vae.encoder.backbone
    assert fusion.find_backbone(model)[1] is vae.encoder.backbone
    x = torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    fusion.inpainting_loss(model(x, mask)["x_hat"], x, mask).backward()
    assert vae.encoder.backbone.conv1.weight.grad.abs().sum() > 0  # the head's gradient arrives
    assert vae.decoder.fc.weight.grad is None


def test_joint_steps_reduce_the_loss_and_lambda_zero_is_a_vae_step():
    torch.manual_seed(0)
    model = fusion.JointModel(vae=VAE(latent_dim=4, image_size=16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(8, 3, 16, 16) * 0.5 + 0.25
    mask = _half_mask(8, 16)
    logs = [{k: float(v) for k, v in fusion.joint_step(model, opt, x, mask, lam=1.0).items()}
            for _ in range(15)]
    assert logs[0]["inpaint"] > 0
    assert logs[0]["loss"] == pytest.approx(logs[0]["elbo"] + logs[0]["inpaint"], rel=1e-5)
    assert sum(log["loss"] for log in logs[-3:]) < sum(log["loss"] for log in logs[:3])
    decoder_before = _snapshot(model.inpainter)
    out = fusion.joint_step(model, opt, x, mask, lam=0.0)
    assert out["inpaint"] == 0.0 and out["loss"] == out["elbo"]
    after = model.inpainter.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, decoder_before[k])}
    assert changed and all(k.startswith("backbone.") for k in changed)  # only the shared part moved


def test_compute_matched_baseline_trains_pretrain_steps_more():
    cfg = fusion.FusionConfig.for_profile("smoke")
    images = ToyFaces(split="train", size=32, image_size=cfg.image_size).images
    _, logs = fusion.train_variant("baseline", images, cfg, seed=0)
    _, long_logs = fusion.train_variant("baseline+steps", images, cfg, seed=0)
    assert len(logs) == cfg.steps and len(long_logs) == cfg.steps + cfg.pretrain_steps
    assert all(entry["inpaint"] == 0.0 for entry in long_logs)  # a plain VAE, no inpainting term
    assert long_logs[:cfg.steps] == logs  # same seed, same start: only longer


def test_hole_pull_reads_the_loss_the_code_computes(monkeypatch):
    # summed per image: lam * 2s(1-s), whatever the image size and coverage
    assert fusion.hole_pull(lam=4.0, s=0.5) == pytest.approx(2.0, rel=1e-5)
    assert fusion.hole_pull(lam=4.0, s=0.8, image_size=32, coverage=0.3) == pytest.approx(4 * 2 * 0.8 * 0.2, rel=1e-4)
    text = fusion.joint_weight_finding(lam=4.0, coverage=0.3, image_size=32)
    assert "2.00 (sigmoid output 0.5)" in text and "comparable weight" in text
    # a loss averaged over the hole's values would pull a thousand times less: the sentence follows the code
    monkeypatch.setattr(fusion, "inpainting_loss",
                        lambda x_hat, x, mask: ((x_hat - x) ** 2 * mask).sum() / (mask.sum() * x.shape[1]))
    assert fusion.hole_pull(lam=4.0, s=0.5, image_size=32, coverage=0.3) < 0.01
    assert "a light regulariser" in fusion.joint_weight_finding(lam=4.0, coverage=0.3, image_size=32)
    with pytest.raises(ValueError, match="sigmoid output"):
        fusion.hole_pull(lam=1.0, s=1.0)


def test_grid_probe_is_at_chance_on_random_labels_and_finds_a_linear_signal():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1200, 16, generator=g)
    noise = torch.randint(0, 4, (1200, 2), generator=g)
    assert abs(fusion.probe_accuracy(feats[:800], noise[:800], feats[800:], noise[800:]) - 0.25) < 0.06
    signal = torch.stack([(feats[:, 0] > 0).long(), torch.ones(1200, dtype=torch.long)], 1)  # one single-class column
    assert fusion.probe_accuracy(feats[:800], signal[:800], feats[800:], signal[800:]) > 0.97
