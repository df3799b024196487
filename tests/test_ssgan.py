"""SS-GAN: the rotation head, Mimicry's rotation batch, the losses' weights, resume, probe features."""
import dataclasses

import pytest
import torch

from course_lib import gan, ssgan
from course_lib.probe import layer_features


def _cfg(**kw):
    return ssgan.SSGANConfig(gan=dataclasses.replace(gan.GANConfig.for_profile("smoke"), **kw))


def test_quarter_rotations():
    x = torch.rand(8, 3, 4, 4)
    rot, labels = ssgan.quarter_rotations(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rot[:2], x[:2]) and torch.equal(rot[2:4], torch.rot90(x[2:4], 1, dims=(2, 3)))
    assert torch.equal(rot[6:], torch.rot90(x[6:], 3, dims=(2, 3)))
    with pytest.raises(ValueError, match="square"):
        ssgan.quarter_rotations(torch.rand(4, 3, 4, 5))


def test_discriminator_heads_and_same_init_as_the_dcgan():
    cfg = _cfg()
    models = ssgan.build(cfg)
    g, d = gan.build(cfg.gan)
    assert torch.equal(models["generator"].net[0].weight, g.net[0].weight)
    assert torch.equal(models["discriminator"].discriminator.net[0].weight, d.net[0].weight)
    x = torch.rand(4, 3, 16, 16)
    assert models["discriminator"](x).shape == (4,)
    assert models["discriminator"].rotation_logits(x).shape == (4, 4)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        models["discriminator"].rotation_logits(torch.rand(2, 3, 8, 8))


def test_config_checks():
    with pytest.raises(ValueError, match="ns"):
        ssgan.SSGANConfig(gan=gan.GANConfig(loss="wgan-gp"))
    with pytest.raises(ValueError, match="alpha"):
        ssgan.SSGANConfig(alpha=-1.0)
    paper = ssgan.SSGANConfig()
    assert (paper.alpha, paper.beta) == (0.2, 1.0)


def test_beta_zero_d_step_is_the_dcgan_step():
    """With beta = 0 the D update equals chapter 03's update_d (same weights after one step)."""
    cfg = dataclasses.replace(_cfg(), beta=0.0)
    a, b = ssgan.build(cfg), ssgan.build(cfg)
    opt_a = torch.optim.Adam(a["discriminator"].discriminator.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(b["discriminator"].parameters(), lr=1e-3)
    real, z = torch.rand(8, 3, 16, 16), torch.randn(8, cfg.gan.z_dim)
    gan.update_d(generator=a["generator"], discriminator=a["discriminator"].discriminator, optimizer=opt_a,
                 real=real, z=z, config=cfg.gan)
    logs = ssgan.update_d(generator=b["generator"], discriminator=b["discriminator"], optimizer=opt_b,
                          real=real, z=z, config=cfg)
    assert logs["d_rotation"] > 0
    for p, q in zip(a["discriminator"].discriminator.parameters(), b["discriminator"].discriminator.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_rotation_head_learns_on_real_images():
    torch.manual_seed(0)
    cfg = _cfg()
    d = ssgan.build(cfg)["discriminator"]
    x = torch.zeros(32, 3, 16, 16)
    x[:, :, :4] = 1.0                                    # a bright top band: rotation is visible
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    for _ in range(40):
        rot, labels = ssgan.quarter_rotations(x)
        loss = torch.nn.functional.cross_entropy(d.rotation_logits(rot), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ssgan.rotation_accuracy(d, x[:8]) == 1.0


def test_train_resumes_exactly(tmp_path):
    cfg = _cfg(steps=4, train_size=64)
    images = (torch.rand(64, 3, 16, 16) * 255).to(torch.uint8)
    full = ssgan.build(cfg)
    ssgan.train_ssgan(full, cfg, images=images, progress=False)
    half = ssgan.build(cfg)
    ssgan.train_ssgan(half, dataclasses.replace(cfg, gan=dataclasses.replace(cfg.gan, steps=2)), images=images,
                      progress=False, checkpoint=tmp_path / "ck.pt")
    resumed = ssgan.build(cfg)
    history = ssgan.train_ssgan(resumed, cfg, images=images, progress=False, checkpoint=tmp_path / "ck.pt")
    assert {"d_loss", "d_rotation"} <= set(history.records[-1])
    for name in ("generator", "discriminator"):
        for a, b in zip(full[name].state_dict().values(), resumed[name].state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_discriminator_features_for_the_probe():
    cfg = gan.GANConfig(image_size=32, width=8)
    _, d = gan.build(cfg)
    feats = ssgan.DiscriminatorFeatures(d)
    maps = feats.features(torch.rand(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]
    out = layer_features(feats, (torch.rand(3, 3, 32, 32) * 255).to(torch.uint8), max_dim=512)
    assert set(out) == {"h1", "h2", "h3"} and out["h3"].shape == (3, 512)
    assert d.training                                 # layer_features restored the mode it found
    with pytest.raises(ValueError, match="3"):
        ssgan.DiscriminatorFeatures(gan.build(gan.GANConfig(image_size=16, width=8))[1])


def test_pretrained_ssgan_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    cfg = _cfg(steps=2, train_size=32)
    assert not ssgan.pretrained_ssgan(cfg, progress=False).from_cache
    assert ssgan.pretrained_ssgan(cfg, progress=False).from_cache
