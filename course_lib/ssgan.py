"""SS-GAN: a GAN whose discriminator also predicts the rotation of its input (Chen et al. 2019).

Chen, Zhai, Ritter, Lucic and Houlsby ("Self-Supervised GANs via Auxiliary Rotation Loss", CVPR
2019) give the discriminator a second, 4-way head on its features that predicts by how many
quarter turns an image was rotated (Gidaris et al. 2018's pretext task, chapter 05). The
losses (their section 3; here D maximises V(G, D), the usual GAN value function, and the
generator uses the non-saturating form in practice), with Q_D the rotation head:

    L_D = -V(G, D) - beta  * E_{x ~ data}  E_r [log Q_D(r | rot(x, r))]
    L_G =  V(G, D) - alpha * E_{x ~ G}     E_r [log Q_D(r | rot(x, r))]

so D learns rotation on *real* images only, and G is rewarded for images whose rotation D
can tell: the paper's argument is that this keeps D's features from forgetting (a discriminator
under a moving generator forgets earlier classes of features) and pushes G towards images with
recognisable structure. The paper uses ``alpha = 0.2`` and ``beta = 1`` (:class:`SSGANConfig`).

Which images are rotated: as in Mimicry (Lee & Town 2020, ``_rotate_batch``), each image of a
batch gets one rotation, the first quarter 0 degrees, the next 90, 180, 270, so the rotation
loss costs one extra discriminator pass per batch. Everything else is chapter 03's DCGAN
(:mod:`course_lib.gan`: ``build``, the non-saturating loss, the optimizers, ``generate``),
used through its public functions; only the ``"ns"`` loss is supported.

:class:`DiscriminatorFeatures` exposes the discriminator's three stages as a backbone for
:mod:`course_lib.probe` (at 32 px with width 32 they have the shared backbone's shapes:
32x16x16, 64x8x8, 128x4x4), so both discriminators are probed by the course's one protocol.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import gan
from .images import to_float
from .inputs import check_float_images
from .loop import Step
from .pretext import rotation_batch
from .runtime import Runtime, backward_step
from .trainer import Recipe, fit


@dataclass(frozen=True)
class SSGANConfig:
    """Chapter 03's DCGAN config plus the rotation loss weights (Chen et al. 2019)."""

    gan: gan.GANConfig = field(default_factory=gan.GANConfig)  # the DCGAN it extends (loss must be "ns")
    alpha: float = 0.2             # weight of the rotation loss on generated images, in L_G (paper: 0.2)
    beta: float = 1.0              # weight of the rotation loss on real images, in L_D (paper: 1)

    def __post_init__(self) -> None:
        if self.gan.loss != "ns":
            raise ValueError(f"SS-GAN here extends the DCGAN (loss='ns'), got loss={self.gan.loss!r}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")

    @classmethod
    def for_profile(cls, name: str | None = None) -> SSGANConfig:
        """Chapter 03's DCGAN for the profile, with the paper's weights."""
        return cls(gan=gan.GANConfig.for_profile(name))


class SSDiscriminator(nn.Module):
    """A :class:`course_lib.gan.Discriminator` with a linear 4-way rotation head on its last
    feature map (the input of its output convolution).

    ``forward(x)`` is the wrapped discriminator's: (B, 3, H, W) in [0, 1] -> (B,) logits, so
    :mod:`course_lib.gan`'s losses and :func:`course_lib.gan.update_g`-style code apply.
    :meth:`rotation_logits`: (B, 3, H, W) -> (B, 4).
    """

    def __init__(self, *, discriminator: gan.Discriminator):
        super().__init__()
        self.discriminator = discriminator
        out_conv = discriminator.net[-1]                         # Conv2d(c, 1, 4, 1, 0) on (B, c, 4, 4)
        self.rotation_head = nn.Linear(out_conv.in_channels * 16, 4)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self.discriminator, x)
        return self.discriminator.net[:-1](x * 2 - 1)            # (B, c, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)                             # (B,)

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation_head(self.trunk(x).flatten(1))      # (B, 4)


class DiscriminatorFeatures(nn.Module):
    """A discriminator's three stride-2 stages as a probe backbone: ``features(x)`` returns
    their post-activation maps [(B, w, H/2, H/2), (B, 2w, H/4, H/4), (B, 4w, H/8, H/8)] for
    images (B, 3, H, H) in [0, 1]; at 32 px that is the whole trunk. Accepts a
    :class:`~course_lib.gan.Discriminator` or an :class:`SSDiscriminator`."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = getattr(discriminator, "discriminator", discriminator)
        acts = [i for i, m in enumerate(self.discriminator.net) if isinstance(m, nn.LeakyReLU)]
        if len(acts) < 3:
            raise ValueError(f"the discriminator has {len(acts)} stages; a probe needs 3 (image_size >= 32)")
        self.ends = acts[:3]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_input(self.discriminator, x)
        h, out = x * 2 - 1, []
        for i, module in enumerate(self.discriminator.net[:self.ends[-1] + 1]):
            h = module(h)
            if i in self.ends:
                out.append(h.clone())                             # LeakyReLU is in place: keep a copy
        return out


def _check_input(discriminator: gan.Discriminator, x: torch.Tensor) -> None:
    check_float_images(x, "discriminator input")
    expected = (discriminator.channels, discriminator.image_size, discriminator.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"the discriminator expects (B, {', '.join(map(str, expected))}) images, "
                         f"got {tuple(x.shape)}")


def quarter_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mimicry's rotation batch: image i rotated by ``(4 i // B) * 90`` degrees (counter-
    clockwise), label ``4 i // B``. (B, C, H, H) -> (rotated (B, C, H, H), labels (B,))."""
    if images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected square images (B, C, H, H), got {tuple(images.shape)}")
    b = images.shape[0]
    labels = torch.arange(b, device=images.device) * 4 // b
    rotated = torch.cat([torch.rot90(images[labels == k], k, dims=(2, 3)) for k in range(4)])
    return rotated, labels


def rotation_loss(discriminator: SSDiscriminator, images: torch.Tensor) -> torch.Tensor:
    """The auxiliary task: cross-entropy of the rotation head on ``images`` (B, 3, H, H), each
    quarter of the batch turned by one multiple of 90 degrees (:func:`quarter_rotations`)."""
    rotated, labels = quarter_rotations(images)
    return F.cross_entropy(discriminator.rotation_logits(rotated).float(), labels)


def update_d(*, generator: nn.Module, discriminator: SSDiscriminator, optimizer: torch.optim.Optimizer,
             real: torch.Tensor, z: torch.Tensor, config: SSGANConfig) -> dict[str, torch.Tensor]:
    """(1) D step: the DCGAN loss plus ``beta`` x the rotation loss on real images."""
    with torch.no_grad():
        fake = generator(z)                                       # (B, 3, H, W)
    adv = gan.discriminator_loss(discriminator(real).float(), discriminator(fake).float())
    rot = rotation_loss(discriminator, real)
    loss = adv + config.beta * rot
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"d_loss": adv.detach(), "d_rotation": rot.detach()}


def update_g(*, generator: nn.Module, discriminator: SSDiscriminator, optimizer: torch.optim.Optimizer,
             z: torch.Tensor, config: SSGANConfig) -> dict[str, torch.Tensor]:
    """(2) G step: the non-saturating loss plus ``alpha`` x the rotation loss on G(z)."""
    fake = generator(z)
    adv = gan.generator_loss(discriminator(fake).float())
    rot = rotation_loss(discriminator, fake)
    loss = adv + config.alpha * rot
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"g_loss": adv.detach(), "g_rotation": rot.detach()}


def make_step(generator: nn.Module, discriminator: SSDiscriminator, opt_g: torch.optim.Optimizer,
              opt_d: torch.optim.Optimizer, config: SSGANConfig) -> Step:
    """As :func:`course_lib.gan.make_step`: one D step per call, a G step every ``d_steps``;
    the noise generator and the call counter travel with checkpoints."""
    calls, noise = {"n": 0}, torch.Generator().manual_seed(config.gan.seed + 1)

    def step_fn(batch) -> dict[str, torch.Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        generator.train()
        discriminator.train()
        z = torch.randn(real.shape[0], config.gan.z_dim, generator=noise).to(real.device)
        logs = update_d(generator=generator, discriminator=discriminator, optimizer=opt_d,
                        real=real, z=z, config=config)
        calls["n"] += 1
        if calls["n"] % config.gan.d_steps == 0:
            z = torch.randn(real.shape[0], config.gan.z_dim, generator=noise).to(real.device)
            logs.update(update_g(generator=generator, discriminator=discriminator, optimizer=opt_g,
                                 z=z, config=config))
        return logs

    return Step(step_fn, generators=[noise], counters=calls)


def build(config: SSGANConfig) -> dict[str, nn.Module]:
    """``{"generator", "discriminator"}``: :func:`course_lib.gan.build`'s pair (the same initial
    weights as the DCGAN of that config), the discriminator wrapped with its rotation head."""
    generator, discriminator = gan.build(config.gan)
    torch.manual_seed(config.gan.seed + 7)                        # the head's own draw: G and D stay the DCGAN's
    return {"generator": generator, "discriminator": SSDiscriminator(discriminator=discriminator)}


def train_ssgan(models: dict[str, nn.Module], config: SSGANConfig, *, images: torch.Tensor | None = None,
                progress: bool | str = "auto", plan: Runtime | None = None,
                checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Train ``{"generator", "discriminator"}`` (from :func:`build`) in place through
    ``course_lib.loop.train``, as :func:`course_lib.gan.train_gan` trains the DCGAN (one process;
    ``images`` uint8 (N, 3, S, S), default the config's ToyFaces training images)."""
    def setup(plan):
        generator = plan.prepare(models["generator"], ddp=False)
        discriminator = plan.prepare(models["discriminator"], ddp=False)
        opt_g, opt_d = gan.make_optimizers(models["generator"], models["discriminator"], config.gan)
        step = make_step(generator, discriminator, opt_g, opt_d, config)
        return step, models, {"generator": opt_g, "discriminator": opt_d}

    return fit(config.gan, setup, desc="SS-GAN", images=images, plan=plan, progress=progress,
               checkpoint=checkpoint, callbacks=callbacks)


RECIPES = {"ssgan": Recipe(cache_name="ssgan", config=SSGANConfig.for_profile, build=build, train=train_ssgan)}


def pretrained_ssgan(config: SSGANConfig | None = None, *, progress: bool | str = "auto", retrain: bool = False):
    """The SS-GAN for ``config`` (default the profile's), trained once and cached as ``ssgan``."""
    return RECIPES["ssgan"].pretrained(config, progress=progress, retrain=retrain)


@torch.no_grad()
def rotation_accuracy(discriminator: SSDiscriminator, images: torch.Tensor) -> float:
    """Share of images (uint8 or float (N, 3, H, H)), each in all four rotations, whose rotation
    the discriminator's head predicts (chance 0.25)."""
    was = discriminator.training
    discriminator.eval()
    x = to_float(images).to(next(discriminator.parameters()).device)
    rotated, labels = rotation_batch(x)
    acc = (discriminator.rotation_logits(rotated).argmax(1) == labels).float().mean().item()
    discriminator.train(was)
    return acc
