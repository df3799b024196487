"""DCGAN shapes, GAN losses' known values, the gradient penalty, a few training steps."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from course_lib import gan
from course_lib.toyfaces import ToyFaces


@pytest.mark.parametrize("image_size, width", [(32, 8), (64, 8), (32, 32)])
def test_generator_and_discriminator_shapes(image_size, width):
    g = gan.Generator(z_dim=16, image_size=image_size, width=width)
    d = gan.Discriminator(image_size=image_size, width=width)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, image_size, image_size)
    assert x.min() >= 0 and x.max() <= 1
    assert d(x).shape == (3,)


def test_standard_dcgan_64_has_the_paper_widths():
    g = gan.Generator(z_dim=100, image_size=64, width=64)
    first = g.net[0]
    # 4x4x1024 in the paper at 64 px is 512 here (ngf*8)
    assert isinstance(first, nn.ConvTranspose2d) and first.out_channels == 512
    n_up = sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert n_up == 5


def test_layer_norm_critic_has_no_batchnorm():
    d = gan.Discriminator(image_size=32, width=8, norm="layer")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert gan.GANConfig(loss="wgan-gp").d_norm == "layer"
    assert gan.GANConfig(loss="ns").d_norm == "batch"


@pytest.mark.parametrize("bad", [
    lambda: gan.Generator(image_size=48),
    lambda: gan.Discriminator(image_size=30),
    lambda: gan.Discriminator(image_size=32, norm="instance"),
    lambda: gan.GANConfig(loss="lsgan"),
    lambda: gan.GANConfig(ema_decay=1.0),
    lambda: gan.GANConfig(r1_weight=-1.0),
])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_wrong_input_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        gan.Generator(z_dim=16, image_size=32, width=8)(torch.randn(2, 8))
    with pytest.raises(ValueError, match="3, 32, 32"):
        gan.Discriminator(image_size=32, width=8)(torch.rand(2, 3, 64, 64))


def test_discriminator_loss_known_values():
    zeros = torch.zeros(4)
    assert gan.discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    perfect = gan.discriminator_loss(torch.full((4,), 50.0), torch.full((4,), -50.0))
    assert perfect.item() == pytest.approx(0.0, abs=1e-6)
    fooled = gan.discriminator_loss(torch.full((4,), -50.0), torch.full((4,), 50.0))
    assert fooled.item() == pytest.approx(100.0, rel=1e-4)


def test_generator_losses_known_values_and_saturation():
    assert gan.generator_loss(torch.zeros(4)).item() == pytest.approx(math.log(2), rel=1e-6)
    logits = torch.full((4,), -8.0, requires_grad=True)
    (g_ns,) = torch.autograd.grad(gan.generator_loss(logits), logits)
    (g_sat,) = torch.autograd.grad(gan.saturating_generator_loss(logits), logits)
    assert g_ns.abs().sum() > 100 * g_sat.abs().sum()   # the point of the non-saturating loss


def test_wgan_losses():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.0, -2.0])
    assert gan.critic_loss(real, fake).item() == pytest.approx(-3.0)
    assert gan.wgan_generator_loss(fake).item() == pytest.approx(1.0)


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    w = torch.randn(3 * 4 * 4)
    w = w / w.norm()
    critic = lambda x: x.flatten(1) @ w                      # noqa: E731  1-Lipschitz, gradient norm exactly 1
    real, fake = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    assert gan.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    critic2 = lambda x: x.flatten(1) @ (2 * w)               # noqa: E731  gradient norm 2 -> penalty (2-1)^2 = 1
    assert gan.gradient_penalty(critic2, real, fake).item() == pytest.approx(1.0, rel=1e-5)


def test_gradient_penalty_positive_and_trains_the_critic():
    d = gan.Discriminator(image_size=32, width=8, norm="layer")
    real, fake = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    gp = gan.gradient_penalty(d, real, fake)
    assert gp.item() > 0
    grads = torch.autograd.grad(gp, list(d.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)             # create_graph=True makes this possible


def test_gradient_penalty_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        gan.gradient_penalty(lambda x: x.sum(1), torch.rand(2, 3), torch.rand(3, 3))


def test_clip_weights():
    m = nn.Linear(4, 4)
    nn.init.normal_(m.weight, std=5.0)
    gan.clip_weights(m, 0.01)
    assert all(p.abs().max() <= 0.01 for p in m.parameters())


@pytest.mark.parametrize("loss", gan.LOSSES)
def test_a_few_steps_run_without_nan(loss):
    cfg = gan.GANConfig.for_profile("smoke", loss=loss, d_steps=2)
    g, d = gan.build(cfg)
    opt_g, opt_d = gan.make_optimizers(g, d, cfg)
    step = gan.make_step(g, d, opt_g, opt_d, cfg)
    before = [p.clone() for p in g.parameters()]
    real = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    logs = [step(real) for _ in range(4)]
    assert all(math.isfinite(v) for log in logs for v in log.values())
    assert "g_loss" not in logs[0] and "g_loss" in logs[1]   # G steps every d_steps calls
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters()))
    if loss == "wgan-clip":
        assert all(p.abs().max() <= cfg.clip + 1e-7 for p in d.parameters())
    x = gan.generate(g, 5, seed=1)
    assert x.shape == (5, 3, cfg.image_size, cfg.image_size) and torch.isfinite(x).all()
    assert g.training                                       # generate restores the mode
    assert torch.equal(x, gan.generate(g, 5, seed=1))       # same seed, same samples


def test_config_profiles():
    smoke, cpu, gpu = (gan.GANConfig.for_profile(p) for p in ("smoke", "cpu", "gpu"))
    assert smoke.steps < cpu.steps < gpu.steps
    assert (cpu.image_size, cpu.width) == (32, 32)
    assert (gpu.image_size, gpu.width) == (64, 64)
    assert dataclasses.replace(cpu, loss="wgan-gp").loss == "wgan-gp"


def test_pretrained_gan_trains_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    cfg = gan.GANConfig.for_profile("smoke", steps=3, train_size=32)
    first = gan.pretrained_gan(cfg, progress=False)
    second = gan.pretrained_gan(cfg, progress=False)
    assert not first.from_cache and second.from_cache
    assert set(second.model) == {"generator", "discriminator"}
    assert not second.model["generator"].training
    for a, b in zip(first.model["generator"].parameters(), second.model["generator"].parameters()):
        assert torch.equal(a.cpu(), b.cpu())


def test_a_gan_trained_while_measured_and_stored_is_the_one_pretrained_gan_loads(tmp_path, monkeypatch):
    """Chapter 03 trains its DCGAN with gan.train_gan and a measuring callback, then stores
    it for chapter 07: the measurements change nothing (the same weights as
    pretrained_gan's own training), and pretrained_gan then loads the stored models."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "reference"))
    cfg = gan.GANConfig.for_profile("smoke", steps=4, train_size=32, ema_decay=0.9)
    reference = gan.pretrained_gan(cfg, progress=False).model

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "chapter"))
    models, samples = gan.build_models(cfg), []
    measure = lambda step, history: samples.append(gan.generate(gan.sampler_generator(models), 8, seed=1))  # noqa: E731
    images = ToyFaces(split="train", size=cfg.train_size, image_size=cfg.image_size).images
    history = gan.train_gan(models, cfg, images=images, progress=False, callbacks=[(2, measure)])
    assert len(samples) == 2                                  # measured at steps 2 and 4
    for name in reference:
        for a, b in zip(reference[name].state_dict().values(), models[name].state_dict().values()):
            assert torch.equal(a.cpu(), b.cpu()), name
    path = gan.store_pretrained_gan(models, cfg, history)
    loaded = gan.pretrained_gan(cfg, progress=False)
    assert loaded.from_cache and loaded.path == path and len(loaded.history.records) == len(history.records)
    for a, b in zip(loaded.model["generator_ema"].parameters(), models["generator_ema"].parameters()):
        assert torch.equal(a.cpu(), b.cpu())


# ----------------------------------------------------------------------------- recipes (issue 14)
def test_hinge_loss_known_values_and_margin():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> mean 0.25; fake: relu(1-3)=0, relu(1+0)=1 -> mean 0.5
    assert gan.hinge_discriminator_loss(real, fake).item() == pytest.approx(0.75)
    assert gan.hinge_discriminator_loss(torch.ones(4) * 5, -torch.ones(4) * 5).item() == 0.0  # outside the margin


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 0.5])
    real = torch.randn(5, 3)
    penalty = gan.r1_penalty(lambda x: x @ w, real)
    assert penalty.item() == pytest.approx(float(w.pow(2).sum()))          # ||grad||^2 = ||w||^2 for every sample
    w2 = w.clone().requires_grad_(True)
    gan.r1_penalty(lambda x: x @ w2, real).backward()                        # differentiable in D's weights
    assert torch.allclose(w2.grad, 2 * w)


def test_update_ema_known_values_and_warm_up():
    ema, model = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    nn.init.constant_(ema.weight, 0.0)
    nn.init.constant_(model.weight, 1.0)
    gan.update_ema(ema, model, 0.9)
    assert ema.weight.item() == pytest.approx(0.1)                            # 0.9 * 0 + 0.1 * 1
    nn.init.constant_(ema.weight, 0.0)
    gan.update_ema(ema, model, 0.999, updates=1)                              # warm-up: d = 2 / 11
    assert ema.weight.item() == pytest.approx(1 - 2 / 11)
    bn_ema, bn = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    bn.running_mean.fill_(3.0)
    gan.update_ema(bn_ema, bn, 0.5)
    assert torch.equal(bn_ema.running_mean, bn.running_mean)                  # buffers are copied


def test_spectral_norm_discriminator_has_unit_spectral_norm_layers():
    config = gan.GANConfig(image_size=16, width=8, loss="hinge", spectral_norm=True)
    assert config.d_norm == "none"
    _, d = gan.build(config)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in d.modules())
    x = torch.rand(4, 3, 16, 16)
    for _ in range(30):                                                       # power iterations converge
        d(x)
    conv = next(m for m in d.modules() if isinstance(m, nn.Conv2d))
    assert torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_ema_copy_does_not_change_training_and_follows_the_generator():
    """Tracking an EMA reads G's weights and never feeds back: G and D train bit for bit the
    same with and without it; the copy differs from G but stays close."""
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    runs = {}
    for decay in (0.0, 0.9):
        config = gan.GANConfig.for_profile("smoke", ema_decay=decay, steps=5)
        models = gan.build_models(config)
        gan.train_gan(models, config, images=images, progress=False)
        runs[decay] = models
    assert set(runs[0.9]) == {"generator", "discriminator", "generator_ema"}
    assert set(runs[0.0]) == {"generator", "discriminator"}
    for name in ("generator", "discriminator"):
        for a, b in zip(runs[0.0][name].state_dict().values(), runs[0.9][name].state_dict().values()):
            assert torch.equal(a, b)
    g, e = runs[0.9]["generator"], runs[0.9]["generator_ema"]
    assert not all(torch.equal(a, b) for a, b in zip(g.parameters(), e.parameters()))
    assert gan.sampler_generator(runs[0.9]) is e and gan.sampler_generator(runs[0.0]) is runs[0.0]["generator"]


@pytest.mark.parametrize("extra", [dict(loss="hinge", spectral_norm=True), dict(r1_weight=1.0),
                                   dict(gan.PAPER_SETTINGS["wgan-gp"])])
def test_every_recipe_trains_a_few_steps_with_finite_losses(extra):
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    config = gan.GANConfig.for_profile("smoke", steps=10, **extra)
    history = gan.train_gan(gan.build_models(config), config, images=images, progress=False)
    assert all(math.isfinite(v) for v in history["d_loss"])
    if config.r1_weight:
        assert all(v > 0 for v in history["r1"])


def test_chapter_wgan_gp_is_the_dcgan_config_with_the_chapter_changes():
    base = gan.GANConfig.for_profile("cpu")
    w = gan.chapter_wgan_gp(base)
    assert (w.loss, w.d_steps, w.beta2, w.d_norm) == ("wgan-gp", 2, 0.9, "layer")
    assert dataclasses.replace(w, loss=base.loss, d_steps=base.d_steps, beta2=base.beta2) == base
