"""Latent generation (Rombach et al. 2022): compress faces with an autoencoder, generate in
its small latent space, decode.

A generator in pixel space spends its capacity on every pixel; ToyFaces' 32x32x3 = 3072
numbers are drawn from a few dozen attributes. :class:`Autoencoder` maps a face to an
8x8xC latent (4x smaller per side) and back; a flow model (:mod:`course_lib.flow`, the same
U-Net with ``channels = C``) then learns the distribution of the latents, where one step
costs a fraction of a pixel-space step. What the decoder drops no latent model can put back,
so the autoencoder's reconstructions are scored like samples (:func:`reconstruction_scores`):
their Frechet distance is the floor of every latent model built on it.

The autoencoder is chapter 02's VAE with the KL weight turned almost off (``beta`` 1e-6,
as latent diffusion's "KL-f4" autoencoder): the KL only keeps the latents' scale in check;
the flow model, not a N(0, I) prior, learns their distribution. Its loss is L1 plus
``edge_weight`` times the L1 between the images' finite differences (their edges: eyes,
mouths and glasses rims are a few pixels of sharp edges that a plain L1 averages away).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch
from torch import nn

from .artifacts import reference_model
from .diffusion import fit_denoiser
from .facedraw import RENDER_VERSION
from .flow import FlowConfig, FlowModel, flow_step, integrate
from .images import to_float
from .inputs import validate_fields
from .profiles import choose, current_profile, resolve_profile
from .results import RESULTS_DIR
from .runtime import Runtime, backward_step
from .toyfaces import ToyFaces
from .trainer import Recipe, fit

__all__ = ["ConvBlock", "Autoencoder", "AutoencoderConfig", "edges", "edge_l1", "generate", "autoencoder_loss",
           "train_autoencoder", "pretrained_autoencoder", "REFERENCE_PATH", "reference_config",
           "reference_autoencoder", "encode_dataset", "LatentFlowModel", "LatentFlowConfig", "train_latent_flow",
           "pretrained_latent_flow", "RECIPES"]


class ConvBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 convolution, twice, plus the input (a residual block without
    the time embedding of :class:`course_lib.diffusion_unet.ResBlock`). (B, C, H, W) -> same."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Autoencoder(nn.Module):
    """Images ``(B, 3, S, S)`` in [0, 1] <-> latents ``(B, C, S/4, S/4)``.

    ``encode`` returns the posterior's mean and log-variance (each ``(B, C, S/4, S/4)``);
    ``decode`` maps latents to images in [0, 1] (a sigmoid). ``width``: channels at full
    resolution (doubled at S/2 and S/4)."""

    def __init__(self, *, latent_channels: int = 8, width: int = 32):
        super().__init__()
        w1, w2 = width, 2 * width
        self.latent_channels = latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1), ConvBlock(channels=w1),             # (B, w1, S, S)
            nn.Conv2d(w1, w2, 4, 2, 1), ConvBlock(channels=w2),                 # (B, w2, S/2, S/2)
            nn.Conv2d(w2, w2, 4, 2, 1), ConvBlock(channels=w2),                 # (B, w2, S/4, S/4)
            nn.GroupNorm(8, w2), nn.SiLU(), nn.Conv2d(w2, 2 * latent_channels, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w2, 3, padding=1), ConvBlock(channels=w2),       # (B, w2, S/4, S/4)
            nn.ConvTranspose2d(w2, w2, 4, 2, 1), ConvBlock(channels=w2),              # (B, w2, S/2, S/2)
            nn.ConvTranspose2d(w2, w1, 4, 2, 1), ConvBlock(channels=w1),              # (B, w1, S, S)
            nn.GroupNorm(8, w1), nn.SiLU(), nn.Conv2d(w1, 3, 3, padding=1))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(to_float(images) * 2 - 1).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] from the posterior means (no sampling)."""
        return self.decode(self.encode(images)[0])


def edges(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences of ``(B, C, H, W)`` images:
    ``(B, C, H, W-1)`` and ``(B, C, H-1, W)``."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


def edge_l1(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The L1 distance between two batches' edges: the mean absolute difference of their
    horizontal finite differences plus that of their vertical ones (a scalar)."""
    return sum((a - b).abs().mean() for a, b in zip(edges(recon), edges(images)))


def generate(velocity, decode, scale: float | torch.Tensor, noise: torch.Tensor, steps: int, *,
             method: str = "euler") -> torch.Tensor:
    """Latent generation: integrate the flow from ``noise`` ``(B, C, h, w)`` (t = 0) to t = 1
    in the scaled latent space, undo the scale, decode: ``decode(z_1 / scale)``."""
    return decode(integrate(velocity, noise, steps=steps, method=method) / scale)


def autoencoder_loss(model: Autoencoder, images: torch.Tensor, *, beta: float, edge_weight: float,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``L1(x_hat, x) + edge_weight * L1(edges) + beta * KL`` (means over pixels, the KL's
    over latent entries). ``x_hat`` decodes a sample ``z = mean + std * eps`` of the posterior."""
    x = to_float(images)
    mean, logvar = model.encode(x)
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    recon = model.decode(mean + (0.5 * logvar).exp() * eps)
    l1 = (recon - x).abs().mean()
    edge = edge_l1(recon, x)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
    return {"loss": l1 + edge_weight * edge + beta * kl, "l1": l1, "edge": edge, "kl": kl}


@dataclass(frozen=True)
class AutoencoderConfig:
    image_size: int = 32                       # square input size (multiple of 4)
    latent_channels: int = 8                   # C of the (C, S/4, S/4) latent
    width: int = 32                            # channels at full resolution
    beta: float = 1e-6                         # KL weight (latent diffusion's KL-f4: almost off)
    edge_weight: float = 1.0                   # weight of the L1 between the images' edges
    lr: float = 1e-3                           # Adam learning rate
    batch_size: int = 64                       # images per step
    steps: int = 4000                          # optimisation steps
    train_size: int = 6000                     # ToyFaces training images
    seed: int = 0                              # init, data order and posterior noise
    data_version: int = RENDER_VERSION         # ToyFaces drawing version: a new one retrains cached models

    def __post_init__(self):
        validate_fields(self, {
            "image_size": "int >= 4", "latent_channels": "int >= 1", "width": "int >= 8", "beta": "float >= 0",
            "edge_weight": "float >= 0", "lr": "float > 0", "batch_size": "int >= 1", "steps": "int >= 1",
            "train_size": "int >= 1", "seed": "seed", "data_version": "int >= 0"})
        if self.image_size % 4 or self.width % 8:
            raise ValueError(f"AutoencoderConfig: image_size must be a multiple of 4 and width of 8 (GroupNorm's "
                             f"8 groups), got image_size={self.image_size}, width={self.width}")

    @classmethod
    def for_profile(cls, name: str | None = None) -> AutoencoderConfig:
        # smoke stays at 32 px: its 8x8 latents are the smallest the U-Net takes (sides 8k)
        return choose(
            smoke=cls(image_size=32, width=16, steps=30, train_size=256, batch_size=32),
            cpu=cls(),
            gpu=cls(image_size=64, width=64, steps=20000, train_size=30000, batch_size=128),
            profile=name,
        )

    def build(self) -> Autoencoder:
        return Autoencoder(latent_channels=self.latent_channels, width=self.width)


def train_autoencoder(model: Autoencoder, config: AutoencoderConfig, *, images: torch.Tensor | None = None,
                      progress: bool | str = "auto", plan: Runtime | None = None,
                      checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Train ``model`` in place with Adam for ``config.steps`` steps; returns the
    :class:`~course_lib.loop.History`. Arguments as :func:`course_lib.vae.train_vae`."""
    def setup(plan):
        model.to(plan.device)       # moved, not prepared: the loss calls .encode/.decode, which no wrapper wraps
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        g = torch.Generator().manual_seed(config.seed)

        def step(x):
            model.train()
            out = autoencoder_loss(model, x, beta=config.beta, edge_weight=config.edge_weight, generator=g)
            optimizer.zero_grad(set_to_none=True)
            backward_step(out["loss"], optimizer)
            return {k: v.detach() for k, v in out.items()}
        return step, model, optimizer

    desc = f"autoencoder {config.latent_channels}x{config.image_size // 4}x{config.image_size // 4}"
    return fit(config, setup, desc=desc, images=images, plan=plan, progress=progress, checkpoint=checkpoint,
               callbacks=callbacks)


RECIPES = {"autoencoder": Recipe(cache_name="autoencoder", config=AutoencoderConfig.for_profile,
                                 build=AutoencoderConfig.build, train=train_autoencoder)}


def pretrained_autoencoder(config: AutoencoderConfig | None = None, *, progress: bool | str = "auto",
                           retrain: bool = False):
    """The autoencoder for ``config`` (default ``AutoencoderConfig.for_profile()``), trained
    once and cached as ``autoencoder``. Returns a :class:`~course_lib.checkpoint.Trained`."""
    return RECIPES["autoencoder"].pretrained(config, progress=progress, retrain=retrain)


REFERENCE_PATH = RESULTS_DIR / "autoencoder_reference.pt"  # package data: pip install carries it (Colab)
REFERENCE_STEPS = 3000                                        # the committed file's steps (a test checks)


def reference_config() -> AutoencoderConfig:
    """The committed autoencoder's configuration (``experiments/latent_reference.py``): the
    ``cpu`` profile's; ``steps`` is the file's."""
    return AutoencoderConfig.for_profile("cpu")


def reference_autoencoder(path: str | os.PathLike = REFERENCE_PATH) -> Autoencoder:
    """The committed autoencoder in eval mode on the CPU, ``.steps`` set; refuses a file
    written for another configuration or drawing, an LFS pointer, a truncated or foreign file."""
    return reference_model(path, config=reference_config(), data_version=RENDER_VERSION, what="autoencoder reference",
                           rebuild="python experiments/latent_reference.py --steps 3000, then --export 3000")


@torch.no_grad()
def encode_dataset(model: Autoencoder, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """The posterior means of ``images`` ``(N, 3, S, S)``: ``(N, C, S/4, S/4)`` on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode(images[i:i + batch_size].to(device))[0].cpu()
                      for i in range(0, len(images), batch_size)])



# --------------------------------------------------------------------------------------
# A flow model in the latent space
# --------------------------------------------------------------------------------------
class LatentFlowModel(nn.Module):
    """A frozen :class:`Autoencoder` and a :class:`~course_lib.flow.FlowModel` over its
    latents scaled by ``scale`` (a buffer: one over the training latents' standard deviation,
    latent diffusion's "scale factor", so the flow sees unit-variance data as in pixel space)."""

    def __init__(self, *, autoencoder: Autoencoder, flow: FlowModel):
        super().__init__()
        self.autoencoder, self.flow = autoencoder.requires_grad_(False), flow
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def sample(self, n: int, *, steps: int = 25, method: str = "euler", seed: int = 0,
               batch_size: int = 256) -> torch.Tensor:
        """``n`` images ``(n, 3, S, S)`` in [0, 1] on the CPU: :func:`generate` from the
        noise :func:`course_lib.flow.sample_flow` would draw (same seeds, same samplers)."""
        self.eval()
        device, size, out = self.scale.device, self.flow.image_size, []
        for first in range(0, n, batch_size):                  # seeded as flow.sample_flow
            g = torch.Generator().manual_seed(seed + first)
            noise = torch.randn((min(batch_size, n - first), self.flow.channels, size, size), generator=g)
            out.append(generate(self.flow, self.autoencoder.decode, self.scale, noise.to(device), steps=steps,
                                method=method).cpu())
        return torch.cat(out)


@dataclass(frozen=True)
class LatentFlowConfig:
    autoencoder: AutoencoderConfig = AutoencoderConfig()
    flow: FlowConfig = FlowConfig(image_size=8, channels=8, stem=32, widths=(64, 128, 128),
                                  decoder_widths=(128, 64, 32))

    def __post_init__(self):
        if not (isinstance(self.autoencoder, AutoencoderConfig) and isinstance(self.flow, FlowConfig)):
            raise TypeError(f"LatentFlowConfig takes an AutoencoderConfig and a FlowConfig, got "
                            f"{type(self.autoencoder).__name__} and {type(self.flow).__name__}")
        ae, fl = self.autoencoder, self.flow
        if fl.image_size != ae.image_size // 4 or fl.channels != ae.latent_channels:
            raise ValueError(f"the flow must model the autoencoder's latents ({ae.latent_channels}, "
                             f"{ae.image_size // 4}, {ae.image_size // 4}); got flow image_size={fl.image_size}, "
                             f"channels={fl.channels}")
        if fl.flip or fl.condition:
            raise ValueError("a latent flow has no flip (a mirrored latent is not a mirrored face's latent) "
                             "and no condition")

    @classmethod
    def for_profile(cls, name: str | None = None) -> LatentFlowConfig:
        """smoke: a small autoencoder trained live; cpu: the committed reference autoencoder
        (its config at ``REFERENCE_STEPS``); gpu: a 64 px one, trained once and cached."""
        profile = current_profile() if name is None else resolve_profile(name)
        ae = AutoencoderConfig.for_profile(profile)
        if profile == "cpu":
            ae = dataclasses.replace(ae, steps=REFERENCE_STEPS)
        small = dict(stem=16, widths=(16, 32, 32), decoder_widths=(32, 16, 16), steps=30, train_size=256)
        flow = choose(smoke=FlowConfig(image_size=ae.image_size // 4, channels=ae.latent_channels, **small),
                      cpu=cls.flow, gpu=dataclasses.replace(cls.flow, image_size=16, steps=20000, batch_size=128),
                      profile=profile)
        return cls(autoencoder=ae, flow=flow)

    def build(self) -> LatentFlowModel:
        return LatentFlowModel(autoencoder=self.autoencoder.build(), flow=self.flow.build())


def load_autoencoder(config: AutoencoderConfig, *, progress: bool | str = "auto") -> Autoencoder:
    """The trained autoencoder of ``config``: the committed reference when ``config`` is its
    configuration (steps included), else trained once and cached (:func:`pretrained_autoencoder`)."""
    if config == dataclasses.replace(reference_config(), steps=REFERENCE_STEPS) and REFERENCE_PATH.is_file():
        return reference_autoencoder()
    return pretrained_autoencoder(config, progress=progress).model


def train_latent_flow(model: LatentFlowModel, config: LatentFlowConfig, *, progress: bool | str = "auto",
                      plan: Runtime | None = None, checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Load the trained autoencoder of ``config.autoencoder`` (:func:`load_autoencoder`) into ``model``, encode the
    training faces once, then train the flow on their scaled latents (flow matching steps of
    :func:`course_lib.flow.flow_step`, the set-up of :func:`course_lib.diffusion.fit_denoiser`)."""
    model.autoencoder.load_state_dict(load_autoencoder(config.autoencoder, progress=progress).state_dict())
    images = ToyFaces(split="train", size=config.flow.train_size, image_size=config.autoencoder.image_size).images
    latents = encode_dataset(model.autoencoder, images)                              # (N, C, S/4, S/4)
    model.scale.fill_(1 / latents.std().item())
    step_fn = functools.partial(flow_step, time_sampling=config.flow.time_sampling, to_model=lambda z: z)
    return fit_denoiser(model.flow, config.flow, step_fn, desc="latent flow", images=latents * model.scale,
                        progress=progress, plan=plan, checkpoint=checkpoint, callbacks=callbacks, unit_range=False)


RECIPES["latent_flow"] = Recipe(cache_name="latent_flow", config=LatentFlowConfig.for_profile,
                                build=LatentFlowConfig.build, train=train_latent_flow)


def pretrained_latent_flow(config: LatentFlowConfig | None = None, *, progress: bool | str = "auto",
                           retrain: bool = False):
    """The latent flow model for ``config`` (default ``LatentFlowConfig.for_profile()``),
    trained once and cached as ``latent_flow``. Returns a :class:`~course_lib.checkpoint.Trained`."""
    return RECIPES["latent_flow"].pretrained(config, progress=progress, retrain=retrain)
