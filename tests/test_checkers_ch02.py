"""Every chapter-02 checker passes the reference, fails the stub, and fails plausible wrong
answers with a message that names the mistake."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checkers.ch02 import check_elbo_loss, check_kl_divergence, check_reparameterize, check_train_step
from course_lib.checkers.core import ExerciseError
from course_lib.vae import elbo_loss, kl_divergence

from exercise_stub import stub


# ----------------------------------------------------------------------------- reparameterize
def reparameterize(mu, logvar):
    std = torch.exp(0.5 * logvar)
    return mu + std * torch.randn_like(std)


def test_reparameterize_reference_passes(capsys):
    check_reparameterize(reparameterize)
    assert "\u2714 reparameterize" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu), r"exp\(logvar\), which is the variance"),
    (lambda mu, logvar: mu + torch.exp(-0.5 * logvar) * torch.randn_like(mu), "sign in the exponent"),
    (lambda mu, logvar: mu + 0 * logvar, "no randomness"),
    (lambda mu, logvar: torch.exp(0.5 * logvar) * torch.randn_like(mu), "not centred on mu"),
    (lambda mu, logvar: (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach(), "no gradient"),
    (lambda mu, logvar: torch.normal(mu.detach(), torch.exp(0.5 * logvar.detach())), "no gradient"),
    (lambda mu, logvar: mu + torch.exp(0.5 * logvar)
     * torch.randn(mu.shape[1], generator=torch.Generator().manual_seed(0)),
     "std|same z"),
    # uniform and Laplace noise with the right mean and std: not Gaussian
    (lambda mu, logvar: mu + torch.exp(0.5 * logvar) * (torch.rand_like(mu) - 0.5) * 12 ** 0.5,
     r"not Gaussian \(kurtosis 1\.8.*looks uniform"),
    (lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.distributions.Laplace(0.0, 2 ** -0.5).sample(mu.shape),
     r"not Gaussian \(kurtosis [56]"),
    # float64 noise from NumPy: explained, not "Double did not match Float"
    (lambda mu, logvar: mu + torch.exp(0.5 * logvar)
     * torch.from_numpy(np.random.default_rng().standard_normal(tuple(mu.shape))),
     r"dtype torch.float64, but the inputs are torch.float32.*randn_like"),
    # one noise value per sample, shared by every latent dimension
    (lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[0], 1),
     r"share their noise \(correlation 1\.00.*randn_like"),
])
def test_reparameterize_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_reparameterize(wrong)


# ----------------------------------------------------------------------------- KL
def test_kl_reference_passes(capsys):
    check_kl_divergence(lambda mu, lv: -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp(), dim=1))
    assert "\u2714 kl_divergence" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (lambda mu, lv: 0.5 * torch.sum(1 + lv - mu ** 2 - lv.exp(), dim=1), "sign is flipped"),
    (lambda mu, lv: -0.5 * torch.mean(1 + lv - mu ** 2 - lv.exp(), dim=1), "averaged over the latent"),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - mu ** 2 - lv.exp()), "expected shape"),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - lv.exp(), dim=1), "mu\\^2 term is missing"),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - mu ** 2 - (0.5 * lv).exp(), dim=1), "sigma instead of sigma\\^2"),
    (lambda mu, lv: -0.5 * torch.sum(lv - mu ** 2 - lv.exp(), dim=1), "must be 0"),
    # right values, but no gradient for the encoder: NumPy (float64) or detached
    (lambda mu, lv: torch.from_numpy(-0.5 * np.sum(1 + lv.numpy() - mu.numpy() ** 2 - np.exp(lv.numpy()), axis=1)),
     "carry gradients.*not NumPy"),
    (lambda mu, lv: torch.from_numpy(-0.5 * np.sum(1 + lv.detach().numpy() - mu.detach().numpy() ** 2
                                                    - np.exp(lv.detach().numpy()), axis=1)).float(),
     "no gradient flows back to mu and logvar"),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp(), dim=1).detach(), "no gradient flows back"),
    (lambda mu, lv: -0.5 * torch.sum(1 + lv - mu.detach().pow(2) - lv.exp(), dim=1), "gradient w.r.t. mu"),
])
def test_kl_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_kl_divergence(wrong)


# ----------------------------------------------------------------------------- ELBO
def ref_elbo(x_logits, x, mu, logvar):
    return (bce_sum(x_logits, x) + kl_divergence(mu, logvar)).mean()


def bce_sum(x_logits, x):
    return F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)


def test_elbo_reference_passes(capsys):
    check_elbo_loss(ref_elbo)
    check_elbo_loss(lambda xl, x, mu, lv: F.binary_cross_entropy_with_logits(xl, x, reduction="sum") / len(x)
                    + kl_divergence(mu, lv).mean())
    assert capsys.readouterr().out.count("\u2714 elbo_loss") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (lambda xl, x, mu, lv: bce_sum(xl, x).mean(), "KL term is missing"),
    (lambda xl, x, mu, lv: F.binary_cross_entropy_with_logits(xl, x) + kl_divergence(mu, lv).mean(),
     r"reconstruction is averaged over pixels \(reduction='mean'\) while the KL is summed: the KL then weighs C\*H\*W"),
    (lambda xl, x, mu, lv: (bce_sum(xl, x) + kl_divergence(mu, lv)).sum(), "both terms are summed over the batch"),
    # the reduction mismatches: reconstruction averaged, KL summed (and the other mixes)
    (lambda xl, x, mu, lv: F.binary_cross_entropy_with_logits(xl, x) + kl_divergence(mu, lv).sum(),
     r"reconstruction is averaged over every value.*the KL is summed over the whole batch"),
    (lambda xl, x, mu, lv: F.binary_cross_entropy_with_logits(xl, x, reduction="sum") + kl_divergence(mu, lv).mean(),
     r"reconstruction is summed over the whole batch.*the KL is summed per image"),
    (lambda xl, x, mu, lv: bce_sum(xl, x).mean() - 0.5 * torch.mean(1 + lv - mu ** 2 - lv.exp()),
     r"reconstruction is summed per image.*the KL is averaged over every value"),
    (lambda xl, x, mu, lv: F.binary_cross_entropy_with_logits(xl, x) - 0.5 * torch.mean(1 + lv - mu ** 2 - lv.exp()),
     r"reconstruction is averaged over every value.*the KL is averaged over every value"),
    (lambda xl, x, mu, lv: (bce_sum(xl, x) - kl_divergence(mu, lv)).mean(), "KL is subtracted"),
    (lambda xl, x, mu, lv: bce_sum(torch.sigmoid(xl), x).mean() + kl_divergence(mu, lv).mean(), "applied twice"),
    (lambda xl, x, mu, lv: bce_sum(xl, x) + kl_divergence(mu, lv), "scalar"),
    (lambda xl, x, mu, lv: F.binary_cross_entropy(xl, x, reduction="sum") / len(x), "raised"),
    (lambda xl, x, mu, lv: ref_elbo(xl, x, mu, lv).detach(), "no gradient flows back"),
    # the KL added as a number: the loss still has a gradient, but not for the encoder's mu, logvar
    (lambda xl, x, mu, lv: bce_sum(xl, x).mean() + kl_divergence(mu, lv).mean().item(),
     "mu gets no gradient: the KL term was added as a number"),
    (lambda xl, x, mu, lv: bce_sum(xl, x).mean().item() + kl_divergence(mu, lv).mean(),
     "x_logits gets no gradient: the reconstruction term"),
])
def test_elbo_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_elbo_loss(wrong)


# ----------------------------------------------------------------------------- train and beat the bar
def ref_step(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    loss = elbo_loss(x_logits, x, mu, logvar).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_train_step_reference_passes(capsys):
    check_train_step(ref_step)
    assert "\u2714 train_step" in capsys.readouterr().out


def no_optimizer_step(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    return elbo_loss(x_logits, x, mu, logvar).loss.item()


def no_kl(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    loss = elbo_loss(x_logits, x, mu, logvar).recon
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def mean_reconstruction(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    loss = F.binary_cross_entropy_with_logits(x_logits, x) + kl_divergence(mu, logvar).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def beta_four(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    loss = elbo_loss(x_logits, x, mu, logvar, beta=4.0).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def no_sampling(model, optimizer, x):
    mu, logvar = model.encoder(x)
    loss = elbo_loss(model.decoder(mu), x, mu, logvar).loss     # mu decoded instead of z
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def mse_autoencoder(model, optimizer, x):
    mu, _ = model.encoder(x)
    loss = F.mse_loss(model.decode(mu), x)                     # no KL, no sampling, squared error
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def loss_after_update(model, optimizer, x):
    ref_step(model, optimizer, x)
    x_logits, mu, logvar = model(x)
    return elbo_loss(x_logits, x, mu, logvar).loss.item()


def steps_on_another_loss(model, optimizer, x):
    x_logits, mu, logvar = model(x)
    terms = elbo_loss(x_logits, x, mu, logvar)
    optimizer.zero_grad()
    terms.recon.backward()                                      # the returned loss is not the one stepped on
    optimizer.step()
    return terms.loss.item()


def new_adam_every_call(model, optimizer, x):
    return ref_step(model, torch.optim.Adam(model.parameters(), lr=2e-3), x)


def steps_twice(model, optimizer, x):
    for _ in range(2):
        value = ref_step(model, optimizer, x)
    return value


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (no_optimizer_step, "weights did not change"),
    (no_kl, "KL term is missing: you returned"),
    (mean_reconstruction, "posterior collapses"),
    (beta_four, r"reconstruction \+ 4 x KL.*beta = 1"),
    (no_sampling, "you decoded mu instead of a sample z"),
    (mse_autoencoder, "plain autoencoder with a squared error"),
    (loss_after_update, "reference negative ELBO is"),
    (steps_twice, "reference negative ELBO is"),
    (steps_on_another_loss, "weights moved differently"),
    (new_adam_every_call, "`optimizer` never stepped.*new optimizer inside train_step"),
    (lambda model, optimizer, x: torch.zeros(2), "one number"),
])
def test_train_step_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_train_step(wrong)


def test_train_step_accepts_a_tensor_loss_and_separate_calls(capsys):
    """The usual variants of a right answer pass: a 0-d tensor returned, encoder/reparameterize/
    decoder called one by one instead of model(x)."""
    from course_lib.vae import reparameterize

    def by_parts(model, optimizer, x):
        mu, logvar = model.encoder(x)
        loss = elbo_loss(model.decoder(reparameterize(mu, logvar)), x, mu, logvar).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()
    check_train_step(by_parts, steps=80, min_psnr=0.0)
    assert "\u2714 train_step" in capsys.readouterr().out
