"""The variational autoencoder of chapter 02 (Kingma & Welling 2014, "Auto-Encoding
Variational Bayes"), in two versions:

- ``ArticleEncoder`` / ``ArticleDecoder``: the article's code (section 4.2) line for line,
  64x64 images, sigmoid output.
- ``Encoder`` / ``Decoder`` / ``VAE``: the library version. The encoder holds the course's
  shared :class:`~course_lib.backbone.ConvBackbone` as ``.backbone`` (so chapter 06 can
  transfer inpainting weights into it), the flattened size is computed from
  ``image_size`` (32x32 on CPU, 64x64 on GPU) and the decoder returns *logits*: the
  sigmoid is applied in :meth:`VAE.decode` / :meth:`VAE.reconstruct` and inside
  ``binary_cross_entropy_with_logits``, which is numerically stable and cheaper than BCE on
  sigmoid outputs. At 64x64 with widths (32, 64, 128) the
  library model has exactly the article's layers and parameter count.

Losses follow the paper: the negative ELBO (eq. 3) is a reconstruction term
-log p(x|z) summed over pixels plus the closed-form Gaussian KL (Appendix B), both per
image, averaged over the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .facedraw import RENDER_VERSION
from .images import to_float
from .inputs import check_float_images, check_unit_range, check_value, range_check_due, validate_fields
from .profiles import choose
from .runtime import Runtime, backward_step, randn_like_global
from .trainer import Recipe, fit

LIKELIHOODS = ("bernoulli", "gaussian")


# --------------------------------------------------------------------------------------
# The article's model, exactly as printed in section 4.2 (64x64 input, sigmoid output)
# --------------------------------------------------------------------------------------
class ArticleEncoder(nn.Module):
    """The article's encoder. ``(B, 3, 64, 64)`` in [0, 1] -> ``mu, logvar`` ``(B, latent_dim)``."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 4, 2, 1)
        self.conv2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.conv3 = nn.Conv2d(64, 128, 4, 2, 1)
        self.fc_mu = nn.Linear(128 * 8 * 8, latent_dim)
        self.fc_logvar = nn.Linear(128 * 8 * 8, latent_dim)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = x.view(-1, 128 * 8 * 8)
        mu = self.fc_mu(x)
        logvar = self.fc_logvar(x)
        return mu, logvar


class ArticleDecoder(nn.Module):
    """The article's decoder. ``z`` ``(B, latent_dim)`` -> images ``(B, 3, 64, 64)`` in (0, 1)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 128 * 8 * 8)
        self.conv1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.conv2 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.conv3 = nn.ConvTranspose2d(32, 3, 4, 2, 1)

    def forward(self, z):
        x = self.fc(z)
        x = x.view(-1, 128, 8, 8)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = torch.sigmoid(self.conv3(x))
        return x


# --------------------------------------------------------------------------------------
# The library model
# --------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """q(z|x): the shared conv backbone, then two linear heads for ``mu`` and ``logvar``.

    Input:  ``(B, 3, image_size, image_size)`` images in [0, 1].
    Output: ``mu, logvar``, each ``(B, latent_dim)``, unbounded (logvar = log sigma^2).
    """

    def __init__(self, *, latent_dim: int, image_size: int = 64,
                 widths: tuple[int, int, int] = (32, 64, 128), in_channels: int = 3):
        super().__init__()
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim}")
        self.latent_dim, self.image_size = latent_dim, image_size
        self.backbone = ConvBackbone(in_channels=in_channels, widths=widths)
        side = ConvBackbone.out_size(image_size)           # 8 at 64x64, 4 at 32x32
        self.flat = widths[2] * side * side                 # 128 * 8 * 8 in the article
        self.fc_mu = nn.Linear(self.flat, latent_dim)
        self.fc_logvar = nn.Linear(self.flat, latent_dim)
        self._range_checked = False  # the first batch's values are checked on any device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_float_images(x, "Encoder input")
        if x.dim() != 4 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f"Encoder built for (B, C, {self.image_size}, {self.image_size}) images, "
                f"got {tuple(x.shape)}"
            )
        if range_check_due(x, entry=not self._range_checked):   # 0..255 floats: say so once
            check_unit_range(x, "Encoder input")
            self._range_checked = True
        h = self.backbone(x).flatten(1)                     # (B, 128 * s * s)
        return self.fc_mu(h), self.fc_logvar(h)             # (B, latent_dim) each


class Decoder(nn.Module):
    """p(x|z): the encoder mirrored with transposed convolutions.

    Input:  ``z`` ``(B, latent_dim)``.
    Output: **logits** ``(B, out_channels, image_size, image_size)``; ``sigmoid(logits)`` is
    the image in (0, 1) (the Bernoulli mean). Same layer names as ``ArticleDecoder``.
    """

    def __init__(self, *, latent_dim: int, image_size: int = 64,
                 widths: tuple[int, int, int] = (32, 64, 128), out_channels: int = 3):
        super().__init__()
        self.latent_dim, self.image_size, self.widths = latent_dim, image_size, tuple(widths)
        self.side = ConvBackbone.out_size(image_size)
        self.fc = nn.Linear(latent_dim, widths[2] * self.side * self.side)
        self.conv1 = nn.ConvTranspose2d(widths[2], widths[1], 4, 2, 1)
        self.conv2 = nn.ConvTranspose2d(widths[1], widths[0], 4, 2, 1)
        self.conv3 = nn.ConvTranspose2d(widths[0], out_channels, 4, 2, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Decoder expects z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        h = self.fc(z).view(-1, self.widths[2], self.side, self.side)  # (B, 128, s, s)
        h = F.relu(self.conv1(h))                                       # (B, 64, 2s, 2s)
        h = F.relu(self.conv2(h))                                       # (B, 32, 4s, 4s)
        return self.conv3(h)                                            # (B, 3, 8s, 8s) logits


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I) and sigma = exp(logvar / 2) (Kingma & Welling
    2014, section 2.4): the noise is an input, so gradients flow to mu and logvar."""
    _check_posterior(mu, logvar)
    std = torch.exp(0.5 * logvar)
    return mu + std * randn_like_global(std)  # torch.randn_like(std); under torchrun the global batch's noise


class VAE(nn.Module):
    """Encoder + decoder. Build with ``VAE(latent_dim=..., image_size=...)`` or pass your own
    ``VAE(encoder=..., decoder=...)``.

    ``forward(x)`` returns ``(x_logits, mu, logvar)`` for the loss; use :meth:`reconstruct`,
    :meth:`decode` and :meth:`sample` for images in (0, 1).
    """

    def __init__(self, *, encoder: nn.Module | None = None, decoder: nn.Module | None = None,
                 latent_dim: int | None = None, image_size: int = 64,
                 widths: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        if (encoder is None) != (decoder is None):
            raise ValueError("pass both encoder and decoder, or neither (then latent_dim)")
        if encoder is None:
            if latent_dim is None:
                raise ValueError("VAE needs latent_dim=... (or encoder=... and decoder=...)")
            encoder = Encoder(latent_dim=latent_dim, image_size=image_size, widths=widths)
            decoder = Decoder(latent_dim=latent_dim, image_size=image_size, widths=widths)
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = decoder.latent_dim

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encoder(x)                         # (B, D) each
        z = reparameterize(mu, logvar)                       # (B, D)
        return self.decoder(z), mu, logvar                   # logits (B, 3, H, W)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in (0, 1) from latents ``(B, latent_dim)``: the sigmoid lives here."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction ``x_hat = decode(mu(x))`` in (0, 1)."""
        return self.decode(self.encoder(x)[0])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from the prior z ~ N(0, I), in (0, 1)."""
        check_value(n, "int >= 1", "VAE.sample: n")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z)


# --------------------------------------------------------------------------------------
# Losses: closed-form KL and the negative ELBO
# --------------------------------------------------------------------------------------
def _check_posterior(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if mu.shape != logvar.shape or mu.dim() != 2:  # metadata only: cheap in every step
        raise ValueError(f"mu and logvar must both be (B, latent_dim), got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, summed over latent dims: ``(B,)``.

    Closed form (Kingma & Welling 2014, Appendix B):
    -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    _check_posterior(mu, logvar)
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


class ELBOTerms(NamedTuple):
    loss: torch.Tensor    # recon + beta * kl, batch mean (scalar): minimise this
    recon: torch.Tensor   # -log p(x|z) summed over pixels, batch mean (scalar)
    kl: torch.Tensor      # KL(q(z|x) || p(z)) summed over latent dims, batch mean (scalar)


def reconstruction_loss(x_logits: torch.Tensor, x: torch.Tensor, *,
                        likelihood: str = "bernoulli") -> torch.Tensor:
    """-log p(x|z) per image ``(B,)``, summed over channels and pixels.

    ``bernoulli``: BCE with logits (x in [0, 1] as soft targets).
    ``gaussian``:  squared error of ``sigmoid(x_logits)``; equals the Gaussian NLL with
    sigma^2 = 1/2 up to a constant (the "MSE" VAE).
    ``x`` must be float in [0, 1] (checked on the CPU, see :mod:`course_lib.inputs`).
    """
    check_float_images(x, "the target x")
    if range_check_due(x):  # on the CPU only: elsewhere a per-step host sync
        check_unit_range(x, "the target x")
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
    elif likelihood == "gaussian":
        per_pixel = (torch.sigmoid(x_logits) - x).pow(2)
    else:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return per_pixel.flatten(1).sum(1)


def elbo_loss(x_logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              *, beta: float = 1.0, likelihood: str = "bernoulli") -> ELBOTerms:
    """Negative ELBO (Kingma & Welling 2014, eq. 3), beta-weighted KL (Higgins et al. 2017).

    Both terms are *summed* per image and *averaged* over the batch; mixing a mean-reduced
    reconstruction with a summed KL shrinks the reconstruction by H*W*C and the model
    collapses to the prior (chapter 02 measures this).
    """
    if x_logits.shape != x.shape:
        raise ValueError(f"x_logits {tuple(x_logits.shape)} and x {tuple(x.shape)} must match")
    check_value(beta, "float >= 0", "beta (the KL weight; a negative one maximises the KL)")
    recon = reconstruction_loss(x_logits, x, likelihood=likelihood).mean()
    kl = kl_divergence(mu, logvar).mean()
    return ELBOTerms(recon + beta * kl, recon, kl)


def vae_step(model: VAE, optimizer: torch.optim.Optimizer, batch, *, beta: float = 1.0,
             likelihood: str = "bernoulli") -> dict[str, torch.Tensor]:
    """One optimisation step on ``batch`` (images ``(B, 3, H, W)`` in [0, 1], or a tuple
    whose first item is the images). Returns ``{"loss", "recon", "kl"}`` as detached 0-d
    tensors (the loop turns them into numbers when it logs: no host sync per step)."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    model.train()
    x_logits, mu, logvar = model(x)
    # the loss in fp32 even under autocast: BCE-with-logits summed over 3*H*W pixels
    terms = elbo_loss(x_logits.float(), x.float(), mu.float(), logvar.float(), beta=beta, likelihood=likelihood)
    optimizer.zero_grad(set_to_none=True)
    backward_step(terms.loss, optimizer)
    return {"loss": terms.loss.detach(), "recon": terms.recon.detach(), "kl": terms.kl.detach()}


# --------------------------------------------------------------------------------------
# Analysis helpers
# --------------------------------------------------------------------------------------
@torch.no_grad()
def encode(model: VAE, images: torch.Tensor, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``mu, logvar`` ``(N, D)`` on CPU for images (float in [0, 1] or uint8 in [0, 255])."""
    check_value(batch_size, "int >= 1", "encode: batch_size")
    model.eval()
    device = next(model.parameters()).device
    mus, logvars = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        x = to_float(x)
        mu, logvar = model.encoder(x)
        mus.append(mu.cpu()), logvars.append(logvar.cpu())
    return torch.cat(mus), torch.cat(logvars)


def active_units(mu: torch.Tensor, *, threshold: float = 1e-2) -> tuple[int, torch.Tensor]:
    """Active latent units (Burda et al. 2016): dims whose posterior mean varies across the
    data, Var_x(E_q[z_j|x]) > threshold. ``mu``: ``(N, D)``. Returns (count, variances (D,)).
    Collapsed dims (posterior = prior for every x) have variance ~0."""
    if mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(f"active_units expects mu of shape (N >= 2, D), got {tuple(mu.shape)}")
    var = mu.float().var(dim=0)
    return int((var > threshold).sum()), var


def collapse_finding(collapsed: dict, untrained: dict, *, majority: float, latent_dim: int) -> str:
    """What a probe on a collapsed code means, beside an untrained encoder of the same shape.

    ``collapsed`` and ``untrained``: ``{"active": int, "probe": float}`` (active units and the
    mean linear-probe accuracy of the two encoders' ``mu``); ``majority``: the accuracy of always
    predicting the most common class. Active units count posterior means that vary by more
    than the threshold; a probe that standardises each dimension reads variations far smaller,
    so the sentence compares the collapsed code with random features, not with zero.
    """
    text = (f"The collapsed model has {collapsed['active']} of {latent_dim} active units and its codes probe at "
            f"{collapsed['probe']:.3f}; an untrained encoder of the same shape ({untrained['active']} active "
            f"units) probes at {untrained['probe']:.3f}, always guessing the most common class at {majority:.3f}. ")
    if collapsed["probe"] <= majority:
        return text + "The collapsed code tells the probe nothing beyond the class frequencies."
    gap = untrained["probe"] - collapsed["probe"]
    if gap > 0:
        return text + (f"Collapse removed information that even random weights pass on ({gap:.3f} of accuracy), "
                       "but not all of it: an inactive unit still varies a little from face to face, and the "
                       "probe, which rescales every dimension, reads that variation. 'No active units' means "
                       "no variation above the threshold, not no information.")
    return text + ("The collapsed code carries at least as much as random features: 'no active units' means no "
                   "variation above the threshold, not no information, and the probe, which rescales every "
                   "dimension, reads the variation below it.")


# --------------------------------------------------------------------------------------
# Config, profiles and the cached model later chapters reuse
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig:
    image_size: int = 32                       # square input size (multiple of 8)
    latent_dim: int = 32                       # size of z
    widths: tuple[int, int, int] = (32, 64, 128)  # backbone widths (the article's)
    likelihood: str = "bernoulli"              # "bernoulli" (BCE) or "gaussian" (MSE)
    beta: float = 1.0                          # KL weight (beta-VAE; 1 = the ELBO)
    lr: float = 1e-3                           # Adam learning rate
    batch_size: int = 64                       # images per step
    steps: int = 2400                          # optimisation steps
    train_size: int = 6000                     # ToyFaces training images
    seed: int = 0                              # init, data order and data seed
    data_version: int = RENDER_VERSION         # ToyFaces drawing version: a new one retrains cached models

    def __post_init__(self) -> None:
        validate_fields(self, {
            "image_size": "int >= 8", "latent_dim": "int >= 1", "widths": "int >= 1",
            "likelihood": LIKELIHOODS, "beta": "float >= 0", "lr": "float > 0", "batch_size": "int >= 1",
            "steps": "int >= 1", "train_size": "int >= 1", "seed": "seed", "data_version": "int >= 0"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> VAEConfig:
        """smoke: 16x16, seconds; cpu: 32x32; gpu: 64x64.

        cpu's 2400 steps: the budget at which the VAE's test PSNR passes PCA's with the same
        code size, measured on 1000 test faces by a ``train_vae`` callback; chapter 02's "VAE
        against PCA" cell re-measures it, with an interval, at whatever budget this says."""
        return choose(
            smoke=cls(image_size=16, latent_dim=8, steps=30, train_size=256, batch_size=32),
            cpu=cls(image_size=32, latent_dim=32, steps=2400, train_size=6000),
            gpu=cls(image_size=64, latent_dim=64, steps=8000, train_size=30000, batch_size=128),
            profile=name,
        )

    def build(self) -> VAE:
        return VAE(latent_dim=self.latent_dim, image_size=self.image_size, widths=self.widths)


def train_vae(model: VAE, config: VAEConfig, *, images: torch.Tensor | None = None,
              progress: bool | str = "auto", plan: Runtime | None = None,
              checkpoint: str | os.PathLike | None = None, callbacks=(), step_fn=None):
    """Train ``model`` in place with Adam for ``config.steps`` steps; returns the
    :class:`~course_lib.loop.History`. ``images``: uint8 ``(N, 3, S, S)``; default: the first
    ``config.train_size`` ToyFaces training images at ``config.image_size``. ``plan``: the
    runtime plan (default :func:`course_lib.runtime.runtime`); ``checkpoint``: a file to
    save to and resume from (``python -m course_lib.train`` passes one). ``step_fn``: a
    ``step_fn(model, optimizer, x)`` returning the loss (a float or :func:`vae_step`'s dict)
    to train with instead of :func:`vae_step` (chapter 02 passes the student's step; it
    ignores ``config.beta`` and ``config.likelihood``)."""
    def setup(plan):
        net = plan.prepare(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

        def step(x):
            if step_fn is not None:
                out = step_fn(net, optimizer, x[0] if isinstance(x, (tuple, list)) else x)
                return out if isinstance(out, dict) else {"loss": out}
            return vae_step(net, optimizer, x, beta=config.beta, likelihood=config.likelihood)
        return step, model, optimizer

    return fit(config, setup, desc=f"VAE z={config.latent_dim} beta={config.beta}", images=images, plan=plan,
               progress=progress, checkpoint=checkpoint, callbacks=callbacks)


RECIPES = {"vae": Recipe(cache_name="vae_ch02", config=VAEConfig.for_profile, build=VAEConfig.build,
                         train=train_vae)}


def pretrained_vae(config: VAEConfig | None = None, *, progress: bool | str = "auto",
                   retrain: bool = False):
    """The chapter-02 VAE for ``config`` (default: ``VAEConfig.for_profile()``), trained once
    and cached by :func:`course_lib.checkpoint.load_or_train` under the name ``vae_ch02``.
    Chapters 03, 06 and 07 call this to get the same model. Returns a
    :class:`~course_lib.checkpoint.Trained` (``.model`` in eval mode, ``.history``, ``.seconds``)."""
    return RECIPES["vae"].pretrained(config, progress=progress, retrain=retrain)
