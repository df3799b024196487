"""Tests for course_lib.vae: shapes, the article's parameter count, KL and ELBO values,
and that a few training steps reduce the loss."""
import math

import pytest
import torch

from course_lib.vae import (
    VAE,
    ArticleDecoder,
    ArticleEncoder,
    Decoder,
    Encoder,
    VAEConfig,
    active_units,
    collapse_finding,
    elbo_loss,
    encode,
    kl_divergence,
    reconstruction_loss,
    reparameterize,
    vae_step,
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def article_param_count(latent_dim):
    """By hand: conv weights in*out*4*4 + bias, linear in*out + bias."""
    flat = 128 * 8 * 8
    enc = (3 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (64 * 128 * 16 + 128) + 2 * (flat * latent_dim + latent_dim)
    dec = (latent_dim * flat + flat) + (128 * 64 * 16 + 64) + (64 * 32 * 16 + 32) + (32 * 3 * 16 + 3)
    return enc, dec


@pytest.mark.parametrize("latent_dim", [16, 128])
def test_article_parameter_count_exact(latent_dim):
    enc, dec = article_param_count(latent_dim)
    assert n_params(ArticleEncoder(latent_dim)) == enc
    assert n_params(ArticleDecoder(latent_dim)) == dec
    # the numbers spelled out once, for latent_dim = 128
    if latent_dim == 128:
        assert enc + dec == 3_485_251  # 2,263,008 + 1,222,243


def test_library_vae_at_64_equals_article_count_and_loads_its_weights():
    torch.manual_seed(0)
    article_enc, article_dec = ArticleEncoder(32), ArticleDecoder(32)
    model = VAE(latent_dim=32, image_size=64)
    assert n_params(model.encoder) == n_params(article_enc)
    assert n_params(model.decoder) == n_params(article_dec)
    # same layers: the article's state dict loads (encoder convs under "backbone.")
    renamed = {("backbone." + k if k.startswith("conv") else k): v
               for k, v in article_enc.state_dict().items()}
    model.encoder.load_state_dict(renamed)
    model.decoder.load_state_dict(article_dec.state_dict())
    x = torch.rand(2, 3, 64, 64)
    mu_a, logvar_a = article_enc(x)
    mu_l, logvar_l = model.encoder(x)
    torch.testing.assert_close(mu_l, mu_a)
    torch.testing.assert_close(logvar_l, logvar_a)
    z = torch.randn(2, 32)
    torch.testing.assert_close(model.decode(z), article_dec(z))  # sigmoid moved, same output


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_shapes(image_size):
    model = VAE(latent_dim=8, image_size=image_size)
    x = torch.rand(3, 3, image_size, image_size)
    x_logits, mu, logvar = model(x)
    assert x_logits.shape == x.shape
    assert mu.shape == logvar.shape == (3, 8)
    out = model.reconstruct(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert model.sample(5).shape == (5, 3, image_size, image_size)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="multiple of 8"):
        Encoder(latent_dim=4, image_size=30)
    with pytest.raises(ValueError, match="32, 32"):
        Encoder(latent_dim=4, image_size=32)(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        Decoder(latent_dim=4, image_size=32)(torch.rand(1, 5))
    with pytest.raises(ValueError, match="latent_dim"):
        VAE()
    with pytest.raises(ValueError, match="likelihood"):
        reconstruction_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), likelihood="poisson")


def test_reparameterize_statistics_and_gradients():
    torch.manual_seed(0)
    mu = torch.full((200_000, 1), 2.0, requires_grad=True)
    logvar = torch.full((200_000, 1), math.log(9.0), requires_grad=True)
    z = reparameterize(mu, logvar)
    assert abs(z.mean().item() - 2.0) < 0.03
    assert abs(z.std().item() - 3.0) < 0.03
    z.sum().backward()
    # z = mu + exp(logvar / 2) * eps: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) * eps / 2 = (z - mu) / 2
    assert torch.equal(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, 0.5 * (z - mu).detach(), atol=1e-5)


def test_kl_of_standard_normal_with_itself_is_zero():
    kl = kl_divergence(torch.zeros(4, 10), torch.zeros(4, 10))
    assert kl.shape == (4,)
    assert torch.equal(kl, torch.zeros(4))


def test_kl_known_value_and_monte_carlo():
    # mu = 1, sigma = 1 in each of D dims -> KL = D / 2
    assert kl_divergence(torch.ones(1, 6), torch.zeros(1, 6)).item() == pytest.approx(3.0)
    torch.manual_seed(0)
    mu, logvar = torch.randn(1, 5), torch.randn(1, 5) * 0.5
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean().item()
    closed = kl_divergence(mu, logvar).item()
    assert closed == pytest.approx(mc, abs=0.02)
    assert closed == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item(), rel=1e-5)


def test_elbo_known_values():
    x = torch.zeros(2, 3, 2, 2)                  # 12 values per image
    logits = torch.zeros(2, 3, 2, 2)             # sigmoid = 1/2
    mu, logvar = torch.ones(2, 4), torch.zeros(2, 4)  # KL = 4 / 2 = 2 per image
    terms = elbo_loss(logits, x, mu, logvar)
    assert terms.recon.item() == pytest.approx(12 * math.log(2))
    assert terms.kl.item() == pytest.approx(2.0)
    assert terms.loss.item() == pytest.approx(12 * math.log(2) + 2.0)
    beta4 = elbo_loss(logits, x, mu, logvar, beta=4.0)
    assert beta4.loss.item() == pytest.approx(12 * math.log(2) + 8.0)
    gauss = elbo_loss(logits, x, mu, logvar, likelihood="gaussian")
    assert gauss.recon.item() == pytest.approx(12 * 0.25)
    # batch mean, not batch sum: doubling the batch leaves the loss unchanged
    twice = elbo_loss(torch.cat([logits] * 2), torch.cat([x] * 2), torch.cat([mu] * 2), torch.cat([logvar] * 2))
    assert twice.loss.item() == pytest.approx(terms.loss.item())


def test_bce_with_logits_equals_bce_on_sigmoid():
    torch.manual_seed(0)
    logits, x = torch.randn(3, 3, 8, 8) * 3, torch.rand(3, 3, 8, 8)
    ours = reconstruction_loss(logits, x)
    plain = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(ours, plain, rtol=1e-4, atol=1e-3)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, image_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(16, 3, 16, 16).round()  # fixed batch of binary images
    first = vae_step(model, optimizer, x)
    assert set(first) == {"loss", "recon", "kl"}
    for _ in range(25):
        last = vae_step(model, optimizer, (x, None))
    assert last["loss"] < first["loss"] - 5.0


def test_encode_and_active_units():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, image_size=16)
    images = (torch.rand(10, 3, 16, 16) * 255).to(torch.uint8)
    mu, logvar = encode(model, images, batch_size=4)
    assert mu.shape == logvar.shape == (10, 4)
    # two varying dims, two collapsed ones
    fake_mu = torch.cat([torch.randn(500, 2), torch.full((500, 2), 0.3) + 1e-3 * torch.randn(500, 2)], 1)
    count, var = active_units(fake_mu)
    assert count == 2 and var.shape == (4,)
    with pytest.raises(ValueError):
        active_units(torch.zeros(5))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_config_profiles_build(profile):
    cfg = VAEConfig.for_profile(profile)
    model = cfg.build()
    assert model.encoder.image_size == cfg.image_size and model.latent_dim == cfg.latent_dim


def test_collapse_finding_compares_with_random_features():
    untrained = {"active": 3, "probe": 0.70}
    below = collapse_finding({"active": 0, "probe": 0.62}, untrained, majority=0.415, latent_dim=32)
    assert "0 of 32 active units" in below and "removed information that even random weights" in below
    above = collapse_finding({"active": 0, "probe": 0.75}, untrained, majority=0.415, latent_dim=32)
    assert "at least as much as random features" in above
    nothing = collapse_finding({"active": 0, "probe": 0.40}, untrained, majority=0.415, latent_dim=32)
    assert "nothing beyond the class frequencies" in nothing
