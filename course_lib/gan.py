"""Generative adversarial networks: DCGAN, WGAN (weight clipping) and WGAN-GP.

A generator maps noise ``z ~ N(0, I)`` to images; a discriminator (called *critic* in
the Wasserstein variants, because it outputs a score, not a probability) tells real
images from generated ones. They are trained in alternation (Goodfellow et al. 2014,
Algorithm 1): :func:`update_d` is one discriminator step, :func:`update_g` one
generator step. :func:`make_step` glues them into a ``step_fn(batch) -> dict`` for
``course_lib.loop.train``.

Images are float ``(B, 3, H, W)`` in ``[0, 1]`` as everywhere in the course. DCGAN works
in ``[-1, 1]`` with a ``tanh`` output (Radford et al. 2016); the generator therefore ends
in ``(tanh + 1) / 2`` and the discriminator maps its input back with ``2x - 1``.

Losses (``loss=`` in :class:`GANConfig`):

- ``"ns"``        the original GAN's discriminator loss with the *non-saturating*
                  generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, section 3).
- ``"wgan-clip"`` WGAN: critic maximises ``E[f(x)] - E[f(G(z))]``; weights clipped to
                  ``[-c, c]`` to keep ``f`` Lipschitz (Arjovsky et al. 2017, Algorithm 1).
- ``"wgan-gp"``   WGAN with the gradient penalty ``lambda * E[(||grad f(x_hat)||_2 - 1)^2]``
                  on random interpolates ``x_hat`` (Gulrajani et al. 2017, eq. 3, lambda=10).
- ``"hinge"``     the hinge loss (Lim & Ye 2017), usually with spectral normalisation of D
                  (``spectral_norm=True``, Miyato et al. 2018).

Add-ons any loss can take: an R1 penalty on real images (``r1_weight``, Mescheder et al.
2018) and an exponential moving average of the generator's weights (``ema_decay``; the copy
is what one samples from: Karras et al. 2018, Yazici et al. 2019). The losses live in
:mod:`course_lib.gan_losses`; ``bench/gan_recipes.py`` compares these recipes at equal wall time.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .checkpoint import store_trained
from .gan_losses import (  # noqa: F401 (re-exported)
    clip_weights,
    critic_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    hinge_discriminator_loss,
    r1_penalty,
    saturating_generator_loss,
    wgan_generator_loss,
)
from .gan_models import Discriminator, Generator, check_image_size, dcgan_init  # noqa: F401 (re-exported)
from .inputs import check_value, validate_fields
from .loop import Step
from .profiles import choose
from .runtime import Runtime, backward_step, local_share, world_size
from .trainer import Recipe, fit

LOSSES = ("ns", "wgan-clip", "wgan-gp", "hinge")
OPTIMIZERS = ("adam", "rmsprop")

# What each paper trains with; ``dataclasses.replace(cfg, **PAPER_SETTINGS["wgan-gp"])`` gives
# a config with them. Chapter 03's cpu runs keep DCGAN's and use other WGAN-GP settings (it says
# which and why); these are the published ones.
PAPER_SETTINGS: dict[str, dict] = {
    # Radford et al. 2016, section 4: Adam lr 2e-4, beta1 0.5 (beta2 stays Adam's 0.999)
    "dcgan": dict(loss="ns", optimizer="adam", lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, d_steps=1),
    # Arjovsky et al. 2017, Algorithm 1: RMSProp lr 5e-5, n_critic 5, clip c = 0.01 (momentum
    # made clipped training unstable, section 4.3)
    "wgan-clip": dict(loss="wgan-clip", optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, d_steps=5, clip=0.01),
    # Gulrajani et al. 2017, Algorithm 1: Adam lr 1e-4, beta1 0, beta2 0.9, n_critic 5, lambda 10
    "wgan-gp": dict(loss="wgan-gp", optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, d_steps=5,
                    gp_weight=10.0),
}


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class GANConfig:
    """Everything chapter 03 needs to build and train one GAN."""

    image_size: int = 32         # square image side: 32 (cpu profile) or 64 (gpu, the article's size)
    z_dim: int = 100             # noise dimension (DCGAN uses 100)
    width: int = 32              # ngf = ndf: channels of the widest-resolution layer (DCGAN: 64)
    loss: str = "ns"             # "ns" (DCGAN), "wgan-clip" or "wgan-gp"
    optimizer: str = "adam"      # "adam" or "rmsprop" (WGAN with clipping, Arjovsky et al. 2017)
    lr_g: float = 2e-4           # learning rate of the generator (DCGAN: 2e-4; WGAN-GP: 1e-4; WGAN: 5e-5)
    lr_d: float = 2e-4           # learning rate of the discriminator / critic
    beta1: float = 0.5           # Adam beta1 (DCGAN: 0.5; WGAN-GP paper: 0.0); unused by RMSProp
    beta2: float = 0.999         # Adam beta2 (DCGAN: 0.999; WGAN-GP paper: 0.9); unused by RMSProp
    d_steps: int = 1             # discriminator updates per generator update (both WGAN papers: 5)
    gp_weight: float = 10.0      # lambda of the gradient penalty (Gulrajani et al. 2017)
    clip: float = 0.01           # weight-clipping bound c (Arjovsky et al. 2017)
    batch_size: int = 64         # images per discriminator step
    steps: int = 500             # discriminator steps (calls of the step function)
    train_size: int = 6000     # ToyFaces training images (the chapter-02 VAE's set)
    seed: int = 0                # seeds data order, noise and initial weights
    spectral_norm: bool = False  # spectral normalisation of D's convs, no other norm in D (Miyato et al. 2018)
    r1_weight: float = 0.0       # gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real x
                                 # (Mescheder et al. 2018); 0 = off
    ema_decay: float = 0.0       # EMA of G's weights after each G step, e.g. 0.999 (Yazici et al. 2019); 0 = off

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        validate_fields(self, {
            "image_size": "int >= 8", "z_dim": "int >= 1", "width": "int >= 1",
            "lr_g": "float > 0", "lr_d": "float > 0", "beta1": "float in [0, 1)", "beta2": "float in [0, 1)",
            "d_steps": "int >= 1", "gp_weight": "float >= 0", "clip": "float > 0", "batch_size": "int >= 1",
            "steps": "int >= 1", "train_size": "int >= 1", "seed": "seed", "spectral_norm": "bool",
            "r1_weight": "float >= 0", "ema_decay": "float in [0, 1)"})  # ema_decay 0 = no EMA
        check_image_size(self.image_size)

    @property
    def d_norm(self) -> str:
        """BatchNorm for DCGAN; a per-sample norm for WGAN-GP (the penalty is per sample);
        none under spectral normalisation (SN-GAN's discriminator has no other norm)."""
        if self.spectral_norm:
            return "none"
        return "layer" if self.loss == "wgan-gp" else "batch"

    @classmethod
    def for_profile(cls, name: str | None = None, **overrides) -> GANConfig:
        """Sizes per profile (image sizes and data match the chapter-02 VAE's, so they compare):
        smoke = seconds at 16x16, cpu = slim DCGAN at 32x32, gpu = the standard DCGAN-64.
        cpu: 3000 steps, batch 64, no EMA: at 500 steps the samples were blobs, and
        ``bench/gan_recipes.py`` (its results in ``course_lib/results_data/gan_recipes.json``)
        found no recipe clearly better at this budget."""
        return replace(choose(
            smoke=cls(image_size=16, width=8, batch_size=16, steps=6, train_size=256),
            cpu=cls(image_size=32, width=32, batch_size=64, steps=3000, train_size=6000),
            gpu=cls(image_size=64, width=64, batch_size=128, steps=5000, train_size=30000),
            profile=name,
        ), **overrides)


def build(config: GANConfig, *, channels: int = 3) -> tuple[Generator, Discriminator]:
    """The generator and discriminator ``config`` describes (seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    generator = Generator(z_dim=config.z_dim, image_size=config.image_size, width=config.width, channels=channels)
    discriminator = Discriminator(image_size=config.image_size, width=config.width, channels=channels,
                                  norm=config.d_norm, spectral_norm=config.spectral_norm)
    return generator, discriminator


def build_models(config: GANConfig) -> dict[str, nn.Module]:
    """``{"generator", "discriminator"}`` and, with ``config.ema_decay > 0``, ``"generator_ema"``
    (a copy of the generator that :func:`make_step` averages into): what :func:`train_gan` and
    the cache store."""
    generator, discriminator = build(config)
    models = {"generator": generator, "discriminator": discriminator}
    if config.ema_decay > 0:
        models["generator_ema"] = copy.deepcopy(generator).requires_grad_(False)
    return models


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, *, updates: int | None = None) -> None:
    """``ema <- d * ema + (1 - d) * model`` for every weight; buffers (BatchNorm's running
    statistics) are copied. Averaging G over its last steps smooths the oscillation of the
    game (Yazici et al. 2019). With ``updates`` (G steps so far, from 1) the decay warms up
    as TensorFlow's ExponentialMovingAverage does, ``d = min(decay, (1 + updates) / (10 + updates))``,
    so a short run is not an average dominated by the initial weights (0.999^500 = 0.61)."""
    check_value(decay, "float in [0, 1]", "update_ema: decay")
    if updates is not None:
        decay = min(decay, (1 + updates) / (10 + updates))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def sample_z(n: int, z_dim: int, *, device=None, rng: torch.Generator | None = None) -> torch.Tensor:
    """``n`` noise vectors z ~ N(0, I), shape ``(n, z_dim)``, drawn from ``rng`` (a
    ``torch.Generator``; in this module ``generator`` always names the network G)."""
    check_value(n, "int >= 1", "sample_z: n")
    check_value(z_dim, "int >= 1", "sample_z: z_dim")
    return torch.randn(n, z_dim, device=device, generator=rng)


def chapter_wgan_gp(config: GANConfig) -> GANConfig:
    """Chapter 03's WGAN-GP beside the DCGAN ``config``: same data, size, width and budget of
    critic steps; loss "wgan-gp" with 2 critic steps per generator step and Adam beta2 0.9
    (a CPU-budget compromise the chapter states; ``PAPER_SETTINGS["wgan-gp"]`` is the paper's)."""
    return replace(config, loss="wgan-gp", d_steps=2, beta2=0.9)


# ----------------------------------------------------------------------------- training
def make_optimizers(generator: nn.Module, discriminator: nn.Module, config: GANConfig):
    """``(opt_g, opt_d)``: Adam with the config's learning rates and betas, or RMSProp
    (``optimizer="rmsprop"``, WGAN with clipping: Arjovsky et al. 2017, Algorithm 1)."""
    if config.optimizer == "rmsprop":
        return (torch.optim.RMSprop(generator.parameters(), lr=config.lr_g),
                torch.optim.RMSprop(discriminator.parameters(), lr=config.lr_d))
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas)
    return opt_g, opt_d


def update_d(*, generator: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer,
             real: torch.Tensor, z: torch.Tensor, config: GANConfig,
             d_loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """(1) Discriminator/critic step: push D(real) up and D(G(z)) down; G is frozen.
    Returns detached 0-d tensors (``d_loss``; WGANs also ``w_distance``, ``gp``).
    ``d_loss_fn(real_logits, fake_logits)``: the loss "ns" uses instead of
    :func:`discriminator_loss` (chapter 03 passes the student's)."""
    with torch.no_grad():
        fake = generator(z)                                  # (B, 3, H, W), no G gradients
    real_out, fake_out = discriminator(real), discriminator(fake)  # (B,), (B,)
    real_out, fake_out = real_out.float(), fake_out.float()      # losses in fp32 under autocast
    logs: dict[str, torch.Tensor] = {}
    if config.loss == "ns":
        loss = (d_loss_fn or discriminator_loss)(real_out, fake_out)
    elif config.loss == "hinge":
        loss = hinge_discriminator_loss(real_out, fake_out)
    else:
        loss = critic_loss(real_out, fake_out)
        logs["w_distance"] = -loss.detach()                   # E f(x) - E f(G(z)), the critic's estimate
        if config.loss == "wgan-gp":
            gp = gradient_penalty(discriminator, real, fake)
            logs["gp"] = gp.detach()
            loss = loss + config.gp_weight * gp
    r1_weight = getattr(config, "r1_weight", 0.0)            # the playground's config has none
    if r1_weight > 0:                                        # gamma / 2 * E||grad D(x)||^2 (Mescheder eq. 9)
        r1 = r1_penalty(discriminator, real)
        logs["r1"] = r1.detach()
        loss = loss + r1_weight / 2 * r1
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    if config.loss == "wgan-clip":
        clip_weights(discriminator, config.clip)
    logs["d_loss"] = loss.detach()
    return logs


def update_g(*, generator: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer,
             z: torch.Tensor, config: GANConfig, g_loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """(2) Generator step: make D call G(z) real. D's weights get gradients but are not stepped.
    ``g_loss_fn(fake_logits)``: the loss "ns" uses instead of :func:`generator_loss`."""
    fake_out = discriminator(generator(z)).float()           # (B,)
    ns_loss = g_loss_fn or generator_loss
    loss = ns_loss(fake_out) if config.loss == "ns" else wgan_generator_loss(fake_out)  # hinge: -E D(G(z))
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"g_loss": loss.detach()}


def make_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
              opt_d: torch.optim.Optimizer, config: GANConfig, *, ema: nn.Module | None = None,
              d_loss_fn: Callable | None = None, g_loss_fn: Callable | None = None) -> Step:
    """A ``step_fn(batch)``: one D step per call, one G step every ``config.d_steps`` calls.

    ``batch`` is a real image tensor ``(B, 3, H, W)`` in [0, 1] or a tuple whose first
    element is one. Returned dicts always hold ``d_loss`` and, on G steps, ``g_loss``.
    The noise generator and the call counter travel with checkpoints (a :class:`Step`), so
    a resumed run draws the same z and steps G at the same calls as an uninterrupted one.
    ``ema``: a copy of the generator (:func:`build_models`), averaged into after each G step
    with ``config.ema_decay``; required exactly when ``config.ema_decay > 0``.
    ``d_loss_fn``, ``g_loss_fn``: passed to :func:`update_d` and :func:`update_g`.
    """
    if (ema is not None) != (config.ema_decay > 0):
        raise ValueError(f"pass ema= (a copy of the generator) exactly when config.ema_decay > 0; "
                         f"got ema_decay={config.ema_decay} and ema={'a module' if ema is not None else None}")
    calls = {"n": 0}
    noise = torch.Generator().manual_seed(config.seed + 1)

    def step_fn(batch) -> dict[str, torch.Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        device = real.device
        generator.train()
        discriminator.train()
        n = real.shape[0] * world_size()  # the global batch: each rank keeps its share of z
        z = local_share(sample_z(n, config.z_dim, rng=noise)).to(device)
        logs = update_d(generator=generator, discriminator=discriminator, optimizer=opt_d,
                        real=real, z=z, config=config, d_loss_fn=d_loss_fn)
        calls["n"] += 1
        if calls["n"] % config.d_steps == 0:
            z = local_share(sample_z(n, config.z_dim, rng=noise)).to(device)
            logs.update(update_g(generator=generator, discriminator=discriminator, optimizer=opt_g,
                                 z=z, config=config, g_loss_fn=g_loss_fn))
            if ema is not None:
                update_ema(ema, generator, config.ema_decay, updates=calls["n"] // config.d_steps)
        return logs

    return Step(step_fn, generators=[noise], counters=calls)


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, z: torch.Tensor | None = None, seed: int = 0,
             batch_size: int = 256) -> torch.Tensor:
    """``n`` samples in eval mode (BatchNorm running stats), float ``(n, 3, H, W)`` in [0, 1]."""
    if z is None:
        check_value(n, "int >= 1", "generate: n")
    check_value(batch_size, "int >= 1", "generate: batch_size")
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    if z is None:
        z = sample_z(n, generator.z_dim, rng=torch.Generator().manual_seed(seed))
    out = torch.cat([generator(z[i:i + batch_size].to(device)).cpu() for i in range(0, len(z), batch_size)])
    generator.train(was_training)
    return out


def train_gan(models: dict[str, nn.Module], config: GANConfig, *, images: torch.Tensor | None = None,
              progress: bool | str = "auto", plan: Runtime | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
              callbacks=(), desc: str | None = None, d_loss_fn: Callable | None = None,
              g_loss_fn: Callable | None = None):
    """Train ``{"generator", "discriminator"}`` (and ``"generator_ema"`` when
    ``config.ema_decay > 0``: see :func:`build_models`) in place for ``config.steps``
    discriminator steps with :func:`make_step`; returns the History. ``images``: uint8 (N, 3, S, S),
    default the first ``config.train_size`` ToyFaces training images. Under torchrun both
    players are replicated without DDP wrappers (the discriminator runs twice per backward
    and the gradient penalty differentiates twice); :func:`~course_lib.runtime.backward_step`
    averages their gradients. Their BatchNorm layers normalise per rank's shard.
    ``d_loss_fn``, ``g_loss_fn``: the "ns" losses to use instead of the library's
    (:func:`update_d`, :func:`update_g`); chapter 03 passes the student's."""
    def setup(plan):
        g_net = plan.prepare(models["generator"], ddp=False)
        d_net = plan.prepare(models["discriminator"], ddp=False)
        ema = models.get("generator_ema")
        if ema is not None:
            plan.prepare(ema, ddp=False)            # on the device; averaged in place, never called here
        opt_g, opt_d = make_optimizers(models["generator"], models["discriminator"], config)
        step = make_step(g_net, d_net, opt_g, opt_d, config, ema=ema, d_loss_fn=d_loss_fn, g_loss_fn=g_loss_fn)
        return step, models, {"generator": opt_g, "discriminator": opt_d}

    return fit(config, setup, desc=desc or f"GAN {config.loss}", images=images, plan=plan, progress=progress,
               checkpoint=checkpoint, checkpoint_every=checkpoint_every, callbacks=callbacks)


RECIPES = {"gan": Recipe(cache_name="gan_ch03", config=GANConfig.for_profile, build=build_models,
                         train=train_gan)}


def pretrained_gan(config: GANConfig | None = None, *, progress: bool | str = "auto",
                   retrain: bool = False):
    """Chapter 03's GAN for ``config`` (default: ``GANConfig.for_profile()``), trained once on
    the first ``config.train_size`` ToyFaces training images by :func:`train_gan` and
    cached by :func:`course_lib.checkpoint.load_or_train` under the name ``gan_ch03``.
    Returns a :class:`~course_lib.checkpoint.Trained` whose ``model`` is
    ``{"generator": ..., "discriminator": ...}`` (and ``"generator_ema"`` with
    ``config.ema_decay > 0``), all in eval mode. :func:`sampler_generator` picks the one to sample."""
    return RECIPES["gan"].pretrained(config, progress=progress, retrain=retrain)


def store_pretrained_gan(models: dict[str, nn.Module], config: GANConfig, history=None) -> Path:
    """Cache ``models`` as :func:`pretrained_gan`'s model for ``config``, so it is loaded, not
    retrained. Only for models :func:`train_gan` trained for ``config`` on its default images
    (callbacks that only measure change nothing): chapter 03 trains its DCGAN that way while
    it watches, then stores it; chapter 07 loads it. Returns the cache file."""
    return store_trained("gan_ch03", models, config=config, history=history)


def sampler_generator(models: dict[str, nn.Module]) -> nn.Module:
    """The generator to sample from: the EMA copy when there is one, else the trained one."""
    return models.get("generator_ema", models["generator"])
