"""Checkers for chapter 02 (the VAE): reparameterize, kl_divergence, the ELBO loss, and a
training step that must return the reference ELBO on a fixed batch and seed, then beat a
reconstruction bar.

Each checker calls the student's function on inputs chosen so that the usual mistakes give
different numbers, recognises those mistakes by recomputing them, and says which one it saw.
"""
from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..images import to_float
from ..metrics import psnr_per_image
from ..toyfaces import ToyFaces
from ..vae import VAE, elbo_loss, kl_divergence, reconstruction_loss, reparameterize, vae_step
from .core import ExerciseError, check_close, check_dtype, own_work, passed, run_student, unwatched


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=tol, rtol=tol)


# ----------------------------------------------------------------------------- reparameterize
@own_work(reparameterize)
def check_reparameterize(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """z = mu + exp(0.5 logvar) * eps: right dtype, mean and spread, Gaussian noise (not
    just any noise with those moments), independent across latent dimensions, fresh noise
    every call, gradients flow."""
    name = "reparameterize"
    n = 20_000
    mu = torch.tensor([[-2.0, 0.0, 3.0]]).repeat(n, 1).requires_grad_(True)
    logvar = torch.tensor([[math.log(4.0), math.log(0.25), 0.0]]).repeat(n, 1).requires_grad_(True)
    torch.manual_seed(0)
    z = run_student(name, student, mu, logvar)
    if not isinstance(z, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(z).__name__}.")
    if z.shape != mu.shape:
        raise ExerciseError(f"{name}: z must have mu's shape {tuple(mu.shape)}, got {tuple(z.shape)}.")
    if not torch.isfinite(z).all():
        raise ExerciseError(f"{name}: z contains NaN or inf.")
    check_dtype(name, z, mu.dtype, hint="Draw the noise with torch.randn_like(std): it has "
                "std's dtype and device (np.random gives float64).")
    std = z.detach().std(0)              # expected (2, 0.5, 1)
    mean = z.detach().mean(0)            # expected (-2, 0, 3)
    if std.max() < 1e-6:
        raise ExerciseError(f"{name}: z has no randomness (it equals mu?). Add noise: "
                            "mu + std * torch.randn_like(std).")
    expected_std = torch.tensor([2.0, 0.5, 1.0])
    if not torch.allclose(std, expected_std, rtol=0.05):
        got = ", ".join(f"{v:.2f}" for v in std)
        hint = "the standard deviation is exp(0.5 * logvar), because logvar = log(sigma^2)."
        if torch.allclose(std, torch.tensor([4.0, 0.25, 1.0]), rtol=0.05):
            hint = "you used std = exp(logvar), which is the variance; use exp(0.5 * logvar)."
        elif torch.allclose(std, torch.tensor([0.5, 2.0, 1.0]), rtol=0.05):
            hint = "the sign in the exponent is flipped: std = exp(+0.5 * logvar), not exp(-0.5 * logvar)."
        elif torch.allclose(std, torch.tensor([math.log(4.0), -math.log(0.25), 1e-9]).abs(), rtol=0.05, atol=0.05):
            hint = "you used logvar itself as the scale; use std = exp(0.5 * logvar)."
        raise ExerciseError(f"{name}: for logvar = log(4), log(0.25), 0 the samples have std "
                            f"({got}), expected (2.00, 0.50, 1.00). Hint: {hint}")
    if not torch.allclose(mean, mu[0].detach(), atol=0.1):
        raise ExerciseError(f"{name}: the samples are not centred on mu (mean "
                            f"{[round(v, 2) for v in mean.tolist()]}, expected [-2, 0, 3]). Add mu.")
    # Right mean and spread are not enough: eps must be standard *normal*. Its kurtosis is 3
    # (uniform noise: 1.8, Laplace: 6); with 20,000 draws the estimate is within +-0.1.
    eps = (z.detach() - mean) / std                                      # (n, 3)
    kurtosis = eps.pow(4).mean(0)
    if ((kurtosis - 3).abs() > 0.3).any():
        got = ", ".join(f"{v:.2f}" for v in kurtosis)
        hint = (" It looks uniform: torch.rand / rand_like draws from U(0, 1)." if (kurtosis < 2.2).all()
                else "")
        raise ExerciseError(f"{name}: the noise has the right mean and spread but is not Gaussian "
                            f"(kurtosis {got}; a normal's is 3).{hint} Draw eps ~ N(0, I) with "
                            "torch.randn_like(std).")
    # eps ~ N(0, I): independent dimensions, so the sample correlations are ~0 (+-0.02 here)
    corr = (eps.T @ eps / n).fill_diagonal_(0).abs().max().item()
    if corr > 0.1:
        raise ExerciseError(f"{name}: the latent dimensions share their noise (correlation {corr:.2f}, "
                            "expected ~0): torch.randn(B, 1) draws one value per sample. Draw one per "
                            "value, eps = torch.randn_like(std), so each dimension gets its own.")
    if not z.requires_grad:
        raise ExerciseError(f"{name}: no gradient flows from z to mu and logvar. Build z from "
                            "mu and logvar with ordinary tensor operations; draw only eps at random.")
    z.sum().backward()
    if mu.grad is None or logvar.grad is None or not torch.allclose(mu.grad, torch.ones_like(mu)):
        raise ExerciseError(f"{name}: dz/dmu should be 1 and logvar should get a gradient; "
                            "z = mu + std * eps does that (do not detach or sample with torch.normal).")
    z2 = run_student(name, student, mu.detach()[:5], logvar.detach()[:5])
    z3 = run_student(name, student, mu.detach()[:5], logvar.detach()[:5])
    if torch.equal(z2, z3):
        raise ExerciseError(f"{name}: two calls returned the same z; draw fresh noise every call.")
    passed(name, "mean mu, std exp(0.5*logvar), gradients flow")


# ----------------------------------------------------------------------------- KL
def _kl_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(4, 6, generator=g) * 1.5, torch.randn(4, 6, generator=g)


@own_work(kl_divergence)
def check_kl_divergence(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Closed-form KL(N(mu, sigma^2) || N(0, I)) per sample, summed over latent dims: (B,),
    in the inputs' dtype, with the gradients the VAE trains on."""
    name = "kl_divergence"
    zero = run_student(name, student, torch.zeros(3, 5), torch.zeros(3, 5))
    mu, logvar = _kl_inputs()
    got = run_student(name, student, mu, logvar)
    expected = kl_divergence(mu, logvar)
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        hint = ("one KL value per sample: sum over the latent dimension only (dim=1), "
                "keep the batch dimension.")
        raise ExerciseError(f"{name}: expected shape {tuple(expected.shape)} (one value per "
                            f"sample), got {tuple(got.shape)}. Hint: {hint}")
    if isinstance(zero, torch.Tensor) and zero.shape == (3,) and zero.abs().max() > 1e-6:
        raise ExerciseError(f"{name}: KL(N(0, 1) || N(0, 1)) must be 0, you returned "
                            f"{zero.tolist()}. Check the constant term: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).")
    terms = 1 + logvar - mu.pow(2) - logvar.exp()
    known = {
        "the sign is flipped: KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) is never negative.":
            0.5 * terms.sum(1),
        "you averaged over the latent dimensions; the KL of independent dims is their sum.":
            -0.5 * terms.mean(1),
        "the mu^2 term is missing.": -0.5 * (1 + logvar - logvar.exp()).sum(1),
        "the exp(logvar) (= sigma^2) term is missing.": -0.5 * (1 + logvar - mu.pow(2)).sum(1),
        "you used sigma instead of sigma^2: the last term is exp(logvar), not exp(0.5 * logvar).":
            -0.5 * (1 + logvar - mu.pow(2) - (0.5 * logvar).exp()).sum(1),
        "the factor 0.5 is missing.": -terms.sum(1),
    }
    if not _close(got, expected):
        for hint, wrong in known.items():
            if _close(got, wrong):
                raise ExerciseError(f"{name}: {hint}")
    check_close(name, got, expected, hint="Use -0.5 * sum(1 + logvar - mu^2 - exp(logvar), dim=1).")
    check_dtype(name, got, mu.dtype)
    # the VAE trains on this KL: dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2
    mu_g, logvar_g = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    out = run_student(name, student, mu_g, logvar_g)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise ExerciseError(f"{name}: the values are right but no gradient flows back to mu and logvar, so "
                            "the KL cannot train the encoder. Do not .detach(), call .item() or go through "
                            "NumPy; build it from mu and logvar with torch operations.")
    grads = torch.autograd.grad(out.sum(), (mu_g, logvar_g), allow_unused=True)
    for g, want, what in zip(grads, (mu, (logvar.exp() - 1) / 2), ("mu", "logvar")):
        if g is None or not torch.allclose(g, want, atol=1e-4, rtol=1e-4):
            raise ExerciseError(f"{name}: the values are right but the gradient w.r.t. {what} is not "
                                "(part of the formula detached?); build every term from mu and logvar.")
    passed(name, "closed form, summed over latent dims, one value per sample, gradients flow")


# ----------------------------------------------------------------------------- ELBO
def _elbo_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 8, 8, generator=g)
    x_logits = torch.randn(5, 3, 8, 8, generator=g) * 2
    mu, logvar = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 0.5
    return x_logits, x, mu, logvar


def _reduction_mistakes(bce: torch.Tensor, kl: torch.Tensor, *, pixels: int,
                        latent: int) -> dict[str, torch.Tensor]:
    """Every mix of reductions of the two terms but the right one, keyed by what went wrong.

    ``bce`` and ``kl`` are per image, summed (B,). Right: both summed per image, averaged
    over the batch. Each way to reduce a term, with the words that name it:
    """
    B = len(bce)
    recon = {"summed per image and averaged over the batch": bce.mean(),
             "averaged over every value (reduction='mean')": bce.mean() / pixels,
             "summed over the whole batch (reduction='sum')": bce.sum(),
             "averaged over pixels, then summed over the batch": bce.sum() / pixels}
    kls = {"summed per image and averaged over the batch": kl.mean(),
           "summed over the whole batch": kl.sum(),
           "averaged over every value (torch.mean over batch and latent dims)": kl.mean() / latent,
           "averaged over latent dims, then summed over the batch": kl.sum() / latent}
    right = "summed per image and averaged over the batch"
    out = {}
    for (r_words, r), (k_words, k) in itertools.product(recon.items(), kls.items()):
        if r_words == k_words == right:
            continue
        if r is recon["summed over the whole batch (reduction='sum')"] and k is kls["summed over the whole batch"]:
            hint = ("both terms are summed over the batch: the loss then grows with the batch "
                    f"size ({B} here). Average the per-image loss over the batch (.mean()).")
        elif r is recon["averaged over every value (reduction='mean')"] and k_words == right:
            hint = ("the reconstruction is averaged over pixels (reduction='mean') while the KL is "
                    "summed: the KL then weighs C*H*W times too much. Sum the BCE over each image's pixels.")
        else:
            hint = (f"the terms are not reduced the same way: the reconstruction is {r_words}, "
                    f"the KL is {k_words}. Sum each term over its image's values (pixels; latent "
                    "dims) and average both over the batch; otherwise one term outweighs the other "
                    "(by C*H*W for a mean-reduced BCE) and the model ignores the KL or collapses "
                    "onto the prior.")
        out[hint] = r + k
    return out


@own_work(elbo_loss, reconstruction_loss)
def check_elbo_loss(student: Callable[..., torch.Tensor]) -> None:
    """Negative ELBO: BCE-with-logits summed per image + KL summed per image, batch mean,
    with the reference's gradients w.r.t. x_logits, mu and logvar."""
    name = "elbo_loss"
    x_logits, x, mu, logvar = _elbo_inputs()
    got = run_student(name, student, x_logits, x, mu, logvar)
    if isinstance(got, tuple):
        got = got[0]
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a scalar torch.Tensor, got {type(got).__name__}.")
    if got.dim() != 0:
        raise ExerciseError(f"{name}: expected a scalar (0-d tensor), got shape {tuple(got.shape)}. "
                            "Average the per-image losses over the batch with .mean().")
    expected = elbo_loss(x_logits, x, mu, logvar).loss
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)  # (B,)
    kl = kl_divergence(mu, logvar)                                                             # (B,)
    known = {
        "the KL term is missing: loss = reconstruction + KL.": bce.mean(),
        **_reduction_mistakes(bce, kl, pixels=x[0].numel(), latent=mu.shape[1]),
        "the KL is subtracted; the loss to minimise is reconstruction + KL (the negative ELBO).":
            (bce - kl).mean(),
        "the reconstruction is a squared error; this exercise uses the Bernoulli likelihood, "
        "binary_cross_entropy_with_logits(x_logits, x).":
            (torch.sigmoid(x_logits) - x).pow(2).flatten(1).sum(1).mean() + kl.mean(),
        "sigmoid was applied before BCE-with-logits (applied twice): pass the logits directly.":
            F.binary_cross_entropy_with_logits(torch.sigmoid(x_logits), x, reduction="none").flatten(1).sum(1).mean()
            + kl.mean(),
        "the arguments of the BCE are swapped: binary_cross_entropy_with_logits(x_logits, x).":
            F.binary_cross_entropy_with_logits(x, x_logits, reduction="none").flatten(1).sum(1).mean() + kl.mean(),
    }
    if not _close(got, expected, 1e-3):
        for hint, wrong in known.items():
            if _close(got, wrong, 1e-3):
                raise ExerciseError(f"{name}: {hint}")
    check_close(name, got, expected, atol=1e-3, rtol=1e-4,
                hint="loss = mean over the batch of [sum of BCE-with-logits over pixels + KL].")
    inputs = [v.clone().requires_grad_(True) for v in (x_logits, mu, logvar)]
    out = run_student(name, student, inputs[0], x, inputs[1], inputs[2])
    out = out[0] if isinstance(out, tuple) else out
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise ExerciseError(f"{name}: the value is right but no gradient flows back to x_logits, mu and "
                            "logvar, so the VAE cannot learn from it. Do not .detach() or call .item(); "
                            "build the loss with torch operations.")
    grads = torch.autograd.grad(out, inputs, allow_unused=True)
    ref_inputs = [v.clone().requires_grad_(True) for v in (x_logits, mu, logvar)]
    ref_grads = torch.autograd.grad(elbo_loss(ref_inputs[0], x, ref_inputs[1], ref_inputs[2]).loss, ref_inputs)
    for g, want, what in zip(grads, ref_grads, ("x_logits", "mu", "logvar")):
        if g is None or not torch.allclose(g, want, atol=1e-5, rtol=1e-4):
            term = "reconstruction" if what == "x_logits" else "KL"
            raise ExerciseError(f"{name}: the value is right but {what} gets {'no' if g is None else 'a wrong'} "
                                f"gradient: the {term} term was added as a number (.item(), .detach() or "
                                "NumPy), so it cannot train the model. Keep both terms torch tensors.")
    passed(name, f"{got.item():.2f} = reconstruction + KL, summed per image, batch mean")


# ----------------------------------------------------------------------------- train and beat a bar
def bar_data(image_size: int = 16, n: int = 256) -> torch.Tensor:
    """The fixed ToyFaces set the training check uses: float ``(n, 3, S, S)`` in [0, 1]."""
    return to_float(ToyFaces(split="train", size=n, image_size=image_size, seed=0, cache=False).images)


def _loss_value(name: str, loss) -> float:
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ExerciseError(f"{name}: return the loss as one number (loss.item()), got a tensor of "
                                f"shape {tuple(loss.shape)}.")
        return float(loss.detach())
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise ExerciseError(f"{name}: return the loss as a float (loss.item()), got {type(loss).__name__}.") from None


def _first_step_candidates(model: VAE, x: torch.Tensor,
                           seed: int) -> tuple[float, list[tuple[str, float]], float, float]:
    """The reference loss of one step on ``x`` with the noise of ``torch.manual_seed(seed)``,
    the losses the usual mistakes return on the same batch and noise, and the step's
    reconstruction and KL terms (for the beta a wrong answer used)."""
    with torch.no_grad():
        torch.manual_seed(seed)
        x_logits, mu, logvar = model(x)                       # z sampled exactly as the student's model(x)
        terms = elbo_loss(x_logits, x, mu, logvar)
        logits_mu = model.decoder(mu)                        # no sampling: decode the mean
        at_mu = elbo_loss(logits_mu, x, mu, logvar)
        kl = terms.kl
        mse_sum = lambda logits: (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1).mean()  # noqa: E731
        mse_mean = lambda logits: F.mse_loss(torch.sigmoid(logits), x)                       # noqa: E731
    no_kl = "the KL term is missing: you returned (and minimised) only the reconstruction term. Use " \
            "reference_elbo_loss(x_logits, x, mu, logvar).loss, which is reconstruction + KL."
    no_sample = "you decoded mu instead of a sample z: the VAE's decoder must see z = mu + sigma * eps " \
                "(what model(x) returns logits for), otherwise sigma gets no gradient from the " \
                "reconstruction and the model is a plain autoencoder with a KL penalty."
    autoencoder = "this is a plain autoencoder with a squared error (no KL, no Bernoulli likelihood). " \
                  "The VAE minimises the negative ELBO: reference_elbo_loss(x_logits, x, mu, logvar).loss."
    candidates = [                                        # (what went wrong, the loss it returns)
        (no_kl, terms.recon.item()),
        (no_sample, at_mu.loss.item()),
        ("the KL term is missing and " + no_sample[4:], at_mu.recon.item()),
        *[(autoencoder, mse(logits).item()) for mse in (mse_sum, mse_mean) for logits in (x_logits, logits_mu)],
        ("the reconstruction is a squared error; this exercise uses the Bernoulli likelihood of "
         "reference_elbo_loss (binary cross-entropy with logits), plus the KL.", (mse_sum(x_logits) + kl).item()),
        ("the KL is subtracted: the loss to minimise is reconstruction + KL.", (terms.recon - kl).item()),
        ("the reconstruction is averaged over pixels (reduction='mean') while the KL is summed: the KL "
         "then weighs C*H*W times too much and the posterior collapses onto the prior. Use "
         "reference_elbo_loss, which sums both per image.", (terms.recon / x[0].numel() + kl).item()),
    ]
    return terms.loss.item(), candidates, terms.recon.item(), kl.item()


@own_work(vae_step)
def check_train_step(student: Callable[..., float], *, steps: int = 300, min_psnr: float = 17.5,
                     image_size: int = 16, latent_dim: int = 8, max_kl: float = 25.0) -> None:
    """Two checks. (1) One step on a fixed batch with a fixed seed: the returned loss must
    be the reference negative ELBO of that batch and noise (beta = 1, z sampled, the KL
    included) and the weights must move as one Adam step on it moves them; the usual
    mistakes (no KL, another beta, decoding mu, a plain MSE autoencoder) are recognised
    by recomputing them. (2) Train a fresh small VAE with ``train_step(model, optimizer, x)``
    for ``steps`` Adam steps and require a mean reconstruction PSNR >= ``min_psnr`` dB on
    the training images, with a KL below ``max_kl`` nats."""
    name = "train_step"
    images = bar_data(image_size)
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim, image_size=image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    # (1) the first step, compared with the reference on the same batch and noise. A fresh
    # encoder puts every mu near 0 (KL ~ 0.003 nats), where a loss without the KL would pass:
    # spreading mu (x60) gives the KL a few nats, so each mistake changes the loss visibly.
    with torch.no_grad():
        model.encoder.fc_mu.weight.mul_(60.0)
    seed, x0 = 1234, images[:32]
    expected, mistakes, recon, kl0 = _first_step_candidates(model, x0, seed)
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=2e-3)
    torch.manual_seed(seed)
    x_logits, mu, logvar = ref_model(x0)
    ref_opt.zero_grad()
    elbo_loss(x_logits, x0, mu, logvar).loss.backward()
    ref_opt.step()
    start = [p.detach().clone() for p in model.parameters()]
    stepped = []                                   # the optimizer passed in must do the update
    hook = optimizer.register_step_pre_hook(lambda *_: stepped.append(1))
    torch.manual_seed(seed)
    try:
        got = _loss_value(name, run_student(name, student, model, optimizer, x0))
    finally:
        hook.remove()
    if not math.isfinite(got):
        raise ExerciseError(f"{name}: the loss is {got}; check the loss.")
    tol = 1e-5 * abs(expected) + 1e-3
    if abs(got - expected) > tol:
        for hint, wrong in mistakes:
            if abs(got - wrong) <= 1e-5 * abs(wrong) + 1e-3:
                raise ExerciseError(f"{name}: on a fixed batch and seed your step returned {got:.2f}, the "
                                    f"negative ELBO is {expected:.2f}: {hint}")
        beta = (got - recon) / kl0 if kl0 > 1e-6 else float("nan")
        if math.isfinite(beta) and abs(beta - round(beta * 4) / 4) < 1e-3 and abs(beta - 1) > 1e-3:
            raise ExerciseError(f"{name}: your loss is reconstruction + {beta:g} x KL; the ELBO weighs the KL "
                                f"by beta = 1 (beta != 1 is the beta-VAE of the sweep below, not this exercise). "
                                "Call reference_elbo_loss(x_logits, x, mu, logvar) without beta.")
        raise ExerciseError(f"{name}: on a fixed batch and seed your step returned {got:.2f}, the reference "
                            f"negative ELBO is {expected:.2f} (reconstruction {recon:.2f} + KL {kl0:.2f}). Run "
                            "model(x) once, compute reference_elbo_loss(x_logits, x, mu, logvar).loss, and "
                            "return loss.item() (the loss before the update).")
    moved = any(not torch.equal(a, p.detach()) for a, p in zip(start, model.parameters()))
    if not moved:
        raise ExerciseError(f"{name}: the loss is right ({got:.2f}) but the weights did not change. "
                            "Call optimizer.zero_grad(), loss.backward() and optimizer.step().")
    if not stepped:
        raise ExerciseError(f"{name}: the weights changed but `optimizer` never stepped: did you build a new "
                            "optimizer inside train_step? A fresh Adam every call forgets its running "
                            "averages (each step is then a plain sign step). Use the optimizer passed in.")
    if len(stepped) > 1:
        raise ExerciseError(f"{name}: optimizer.step() ran {len(stepped)} times in one call; step once.")
    drift = max((a.detach() - b.detach()).abs().max().item()
                for a, b in zip(model.parameters(), ref_model.parameters()))
    if drift > 1e-4:
        raise ExerciseError(f"{name}: the loss is right but the weights moved differently from one Adam step "
                            f"on it (max difference {drift:.2g}): step on the loss you return, once, "
                            "after zeroing the gradients.")

    # (2) train a fresh model and beat the bar
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim, image_size=image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    before = psnr_per_image(model.reconstruct(images), images).mean().item()
    with unwatched():                               # the first step was watched
        for step in range(steps):
            x = images[torch.randint(0, len(images), (32,), generator=g)]
            value = _loss_value(name, run_student(name, student, model, optimizer, x))
            if not math.isfinite(value):
                raise ExerciseError(f"{name}: the loss became {value} at step {step}; check the loss.")
    model.eval()
    after = psnr_per_image(model.reconstruct(images), images).mean().item()
    with torch.no_grad():
        kl = kl_divergence(*model.encoder(images)).mean().item()
    if abs(after - before) < 1e-3:
        raise ExerciseError(f"{name}: after {steps} steps the reconstructions are unchanged "
                            f"({after:.1f} dB): the weights did not change. Call loss.backward() "
                            "and optimizer.step().")
    if kl < 0.5:
        raise ExerciseError(f"{name}: the KL is {kl:.2f} nats after {steps} steps: the posterior "
                            "collapsed onto the prior and the code carries no information. Is the "
                            "reconstruction averaged over pixels instead of summed per image?")
    if after < min_psnr:
        hint = ("minimise the loss (do not maximise it), zero the gradients every step "
                "(optimizer.zero_grad()), and use the reference elbo_loss.")
        raise ExerciseError(f"{name}: after {steps} steps the reconstruction PSNR is {after:.1f} dB "
                            f"(untrained: {before:.1f} dB); the bar is {min_psnr:.1f} dB. Hint: {hint}")
    if kl > max_kl:
        raise ExerciseError(f"{name}: reconstructions are good ({after:.1f} dB) but the KL is "
                            f"{kl:.0f} nats (bar: below {max_kl:.0f}): did the KL term go missing from the loss?")
    passed(name, f"first step = the reference ELBO ({expected:.1f} nats) and its Adam update; {steps} steps: "
                 f"PSNR {before:.1f} -> {after:.1f} dB (bar {min_psnr:.1f}), KL {kl:.1f} nats")
