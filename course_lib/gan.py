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
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import Checkpoint, load_or_train
from .loop import Budget, Step, train
from .profiles import choose
from .runtime import Runtime, backward_step, local_share, runtime, seed_everything, world_size
from .toyfaces import ToyFaces

LOSSES = ("ns", "wgan-clip", "wgan-gp")
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

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check_image_size(self.image_size)

    @property
    def d_norm(self) -> str:
        """BatchNorm for DCGAN; a per-sample norm for WGAN-GP (the penalty is per sample)."""
        return "layer" if self.loss == "wgan-gp" else "batch"

    @classmethod
    def for_profile(cls, name: str | None = None, **overrides) -> "GANConfig":
        """Sizes per profile (image sizes and data match the chapter-02 VAE's, so they compare):
        smoke = seconds at 16x16, cpu = slim DCGAN at 32x32, gpu = the standard DCGAN-64."""
        return replace(choose(
            smoke=cls(image_size=16, width=8, batch_size=16, steps=6, train_size=256),
            cpu=cls(image_size=32, width=32, batch_size=64, steps=500, train_size=6000),
            gpu=cls(image_size=64, width=64, batch_size=128, steps=5000, train_size=30000),
            profile=name,
        ), **overrides)


def _check_image_size(image_size: int) -> int:
    n_up = math.log2(image_size / 4) if image_size > 0 else -1
    if image_size < 8 or n_up != int(n_up):
        raise ValueError(f"image_size must be a power of two >= 8 (e.g. 32 or 64), got {image_size}")
    return int(n_up)


# ----------------------------------------------------------------------------- models
class Generator(nn.Module):
    """DCGAN generator (Radford et al. 2016, Fig. 1): z -> 4x4 -> ... -> image.

    Rules: fractionally-strided convolutions instead of upsampling, BatchNorm in every
    layer but the output, ReLU inside, tanh at the output (here rescaled to [0, 1]).

    Input:  ``z`` float ``(B, z_dim)``.
    Output: images float ``(B, channels, image_size, image_size)`` in ``[0, 1]``.
    """

    def __init__(self, *, z_dim: int = 100, image_size: int = 64, width: int = 64, channels: int = 3):
        super().__init__()
        n_up = _check_image_size(image_size)      # 64 -> 4 stride-2 layers after the 4x4 start
        self.z_dim, self.image_size = z_dim, image_size
        c = width * 2 ** (n_up - 1)               # 64x64, width 64: 512 channels at 4x4
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False),  # (B, c, 4, 4)
            nn.BatchNorm2d(c), nn.ReLU(True),
        ]
        for _ in range(n_up - 1):                 # each doubles H and W, halves channels
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers.append(nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False))  # (B, 3, H, W)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"Generator expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = self.net(z[:, :, None, None])         # (B, 3, H, W), unbounded
        return (torch.tanh(h) + 1) / 2            # [0, 1]


class Discriminator(nn.Module):
    """DCGAN discriminator: image -> one logit (or critic score) per image.

    Rules: strided convolutions instead of pooling, LeakyReLU(0.2), no norm on the first
    layer. ``norm="batch"`` is DCGAN; WGAN-GP must not use BatchNorm (it couples the
    samples of a batch, and the penalty is per sample), so ``"layer"`` (a per-sample
    GroupNorm with one group, as Gulrajani et al. suggest) or ``"none"``.

    Input:  images float ``(B, channels, image_size, image_size)`` in ``[0, 1]``.
    Output: float ``(B,)``: a logit for ``"ns"`` (sigmoid = P(real)), a score for WGAN.
    """

    def __init__(self, *, image_size: int = 64, width: int = 64, channels: int = 3, norm: str = "batch"):
        super().__init__()
        n_down = _check_image_size(image_size)
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        self.image_size, self.channels = image_size, channels
        c = width
        layers: list[nn.Module] = [nn.Conv2d(channels, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):               # (B, width, H/2) -> ... -> (B, c, 4, 4)
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), _norm(norm, c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"Discriminator expects (B, {', '.join(map(str, expected))}) images, got {tuple(x.shape)}")
        return self.net(x * 2 - 1).flatten()      # (B,)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)          # normalises (C, H, W) of each sample
    return nn.Identity()


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(config: GANConfig, *, channels: int = 3) -> tuple[Generator, Discriminator]:
    """The generator and discriminator ``config`` describes (seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    generator = Generator(z_dim=config.z_dim, image_size=config.image_size, width=config.width, channels=channels)
    discriminator = Discriminator(image_size=config.image_size, width=config.width, channels=channels,
                                  norm=config.d_norm)
    return generator, discriminator


def sample_z(n: int, z_dim: int, *, device=None, rng: torch.Generator | None = None) -> torch.Tensor:
    """``n`` noise vectors z ~ N(0, I), shape ``(n, z_dim)``, drawn from ``rng`` (a
    ``torch.Generator``; in this module ``generator`` always names the network G)."""
    return torch.randn(n, z_dim, device=device, generator=rng)


# ----------------------------------------------------------------------------- losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x)] - [log(1 - D(G(z)))], each averaged over its batch (Goodfellow eq. 1).

    ``D = sigmoid(logit)``; written with ``softplus`` (= BCE-with-logits), which is stable
    where ``log(sigmoid(.))`` underflows: ``-log sigmoid(a) = softplus(-a)`` and
    ``-log(1 - sigmoid(a)) = softplus(a)``. A perfect discriminator gives 0.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E[log D(G(z))] (Goodfellow et al. 2014, section 3).

    Same fixed point as minimising log(1 - D(G(z))), but strong gradients exactly when
    the discriminator confidently rejects the samples (early in training).
    """
    return F.softplus(-fake_logits).mean()


def saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss E[log(1 - D(G(z)))]: what eq. 1 literally asks for."""
    return -F.softplus(fake_logits).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss E[f(G(z))] - E[f(x)] (minimised; Arjovsky et al. 2017, Algorithm 1)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -E[f(G(z))]."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad_x_hat f(x_hat)||_2 - 1)^2] on x_hat = eps x + (1 - eps) G(z) (Gulrajani eq. 3).

    ``real`` and ``fake``: ``(B, ...)`` of the same shape. ``eps``: ``(B, 1, ..., 1)`` in
    [0, 1], one per sample (drawn uniformly when ``None``). The norm is taken per sample
    over *all* non-batch dimensions. ``create_graph=True`` keeps the gradient itself
    differentiable, so the penalty trains the critic's weights. Returns an unweighted
    scalar; multiply by lambda (10 in the paper).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if eps is None:  # one per sample of the global batch, this rank's share (all of it outside torchrun)
        n = real.shape[0] * world_size()
        eps = local_share(torch.rand(n, *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # (B, ...)
    scores = critic(x_hat)
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)          # (B, ...)
    norms = grads.flatten(1).norm(2, dim=1)                                         # (B,)
    return ((norms - 1) ** 2).mean()


def clip_weights(module: nn.Module, clip: float) -> None:
    """WGAN's crude Lipschitz constraint: clamp every parameter to [-clip, clip]."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-clip, clip)


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
             real: torch.Tensor, z: torch.Tensor, config: GANConfig) -> dict[str, torch.Tensor]:
    """(1) Discriminator/critic step: push D(real) up and D(G(z)) down; G is frozen.
    Returns detached 0-d tensors (``d_loss``; WGANs also ``w_distance``, ``gp``)."""
    with torch.no_grad():
        fake = generator(z)                                  # (B, 3, H, W), no G gradients
    real_out, fake_out = discriminator(real), discriminator(fake)  # (B,), (B,)
    real_out, fake_out = real_out.float(), fake_out.float()      # losses in fp32 under autocast
    logs: dict[str, torch.Tensor] = {}
    if config.loss == "ns":
        loss = discriminator_loss(real_out, fake_out)
    else:
        loss = critic_loss(real_out, fake_out)
        logs["w_distance"] = -loss.detach()                   # E f(x) - E f(G(z)), the critic's estimate
        if config.loss == "wgan-gp":
            gp = gradient_penalty(discriminator, real, fake)
            logs["gp"] = gp.detach()
            loss = loss + config.gp_weight * gp
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    if config.loss == "wgan-clip":
        clip_weights(discriminator, config.clip)
    logs["d_loss"] = loss.detach()
    return logs


def update_g(*, generator: nn.Module, discriminator: nn.Module, optimizer: torch.optim.Optimizer,
             z: torch.Tensor, config: GANConfig) -> dict[str, torch.Tensor]:
    """(2) Generator step: make D call G(z) real. D's weights get gradients but are not stepped."""
    fake_out = discriminator(generator(z)).float()           # (B,)
    loss = generator_loss(fake_out) if config.loss == "ns" else wgan_generator_loss(fake_out)
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"g_loss": loss.detach()}


def make_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
              opt_d: torch.optim.Optimizer, config: GANConfig) -> Step:
    """A ``step_fn(batch)``: one D step per call, one G step every ``config.d_steps`` calls.

    ``batch`` is a real image tensor ``(B, 3, H, W)`` in [0, 1] or a tuple whose first
    element is one. Returned dicts always hold ``d_loss`` and, on G steps, ``g_loss``.
    The noise generator and the call counter travel with checkpoints (a :class:`Step`), so
    a resumed run draws the same z and steps G at the same calls as an uninterrupted one.
    """
    calls = {"n": 0}
    noise = torch.Generator().manual_seed(config.seed + 1)

    def step_fn(batch) -> dict[str, torch.Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        device = real.device
        generator.train(); discriminator.train()
        n = real.shape[0] * world_size()  # the global batch: each rank keeps its share of z
        z = local_share(sample_z(n, config.z_dim, rng=noise)).to(device)
        logs = update_d(generator=generator, discriminator=discriminator, optimizer=opt_d,
                        real=real, z=z, config=config)
        calls["n"] += 1
        if calls["n"] % config.d_steps == 0:
            z = local_share(sample_z(n, config.z_dim, rng=noise)).to(device)
            logs.update(update_g(generator=generator, discriminator=discriminator, optimizer=opt_g,
                                 z=z, config=config))
        return logs

    return Step(step_fn, generators=[noise], counters=calls)


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, z: torch.Tensor | None = None, seed: int = 0,
             batch_size: int = 256) -> torch.Tensor:
    """``n`` samples in eval mode (BatchNorm running stats), float ``(n, 3, H, W)`` in [0, 1]."""
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
              checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Train ``{"generator", "discriminator"}`` in place for ``config.steps`` discriminator
    steps with :func:`make_step`; returns the History. ``images``: uint8 (N, 3, S, S),
    default the first ``config.train_size`` ToyFaces training images. Under torchrun both
    players are replicated without DDP wrappers (the discriminator runs twice per backward
    and the gradient penalty differentiates twice); :func:`~course_lib.runtime.backward_step`
    averages their gradients. Their BatchNorm layers normalise per rank's shard."""
    seed_everything(config.seed)
    generator, discriminator = models["generator"], models["discriminator"]
    rt = plan or runtime()
    g_net, d_net = rt.prepare(generator, ddp=False), rt.prepare(discriminator, ddp=False)
    opt_g, opt_d = make_optimizers(generator, discriminator, config)
    if images is None:
        images = ToyFaces(split="train", size=config.train_size, image_size=config.image_size).images
    loader = rt.loader(images, batch_size=config.batch_size, seed=config.seed)
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, models=models, optimizers={"generator": opt_g, "discriminator": opt_d},
        every=max(config.steps // 10, 1))
    return train(make_step(g_net, d_net, opt_g, opt_d, config), loader, budget=Budget(steps=config.steps),
                 progress=progress, plan=rt, checkpoint=ckpt, callbacks=callbacks,
                 every=max(config.steps // 10, 1), desc=f"GAN {config.loss}")


def pretrained_gan(config: GANConfig | None = None, *, progress: bool | str = "auto",
                   retrain: bool = False):
    """Chapter 03's GAN for ``config`` (default: ``GANConfig.for_profile()``), trained once on
    the first ``config.train_size`` ToyFaces training images by :func:`train_gan` and
    cached by :func:`course_lib.checkpoint.load_or_train` under the name ``gan_ch03``.
    Returns a :class:`~course_lib.checkpoint.Trained` whose ``model`` is
    ``{"generator": ..., "discriminator": ...}``, both in eval mode."""
    config = config or GANConfig.for_profile()
    trained = load_or_train("gan_ch03", lambda models, cfg: train_gan(models, cfg, progress=progress),
                            config=config, retrain=retrain,
                            build=lambda c: dict(zip(("generator", "discriminator"), build(c))))
    for module in trained.model.values():
        module.eval()
    return trained
