"""Representation-conditioned generation (RCG; Li, Katabi & He 2023), chapter 12: draw a
self-supervised representation first, then the image conditioned on it.

An unconditional generator must decide *what* to draw and *how* to draw it at once. RCG
splits the two:

1. a frozen self-supervised encoder maps every training image to a vector ``r`` (here chapter
   05's SimCLR encoder, its pooled and normalised last map, ``(N, 128)``);
2. a small MLP flow model learns the distribution of those vectors (their "representation
   diffusion model"; flow matching here, as chapter 09);
3. the image generator (chapter 09's U-Net) is conditioned on ``r``, with condition dropout
   as in classifier-free guidance (:mod:`course_lib.guidance`), so guidance works too.

Sampling: ``r ~`` the representation generator, then ``x ~ p(x | r)``. Nobody labelled
anything, and the whole pipeline is an unconditional generator of images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion_unet import NULL_LABEL
from .flow import integrate
from .flow_toy import fit_velocity
from .inputs import validate_fields
from .playground import mlp


class RepresentationEmbedding(nn.Module):
    """Representations ``(B, D)`` -> the U-Net's condition ``(B, dim)``: a two-layer MLP. A row
    whose entries are all :data:`~course_lib.diffusion_unet.NULL_LABEL` (the condition dropout
    of :func:`course_lib.flow.flow_step`, and guidance's unconditional half) takes a learned
    "no representation" vector instead (a normalised representation is never all -1)."""

    def __init__(self, *, rep_dim: int, dim: int):
        super().__init__()
        self.rep_dim = rep_dim
        self.mlp = nn.Sequential(nn.Linear(rep_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, reps: torch.Tensor) -> torch.Tensor:
        if reps.dim() != 2 or reps.shape[1] != self.rep_dim:
            raise ValueError(f"representations must be (B, {self.rep_dim}), got {tuple(reps.shape)}")
        dropped = (reps == NULL_LABEL).all(dim=1, keepdim=True)                 # (B, 1)
        return torch.where(dropped, self.null.expand(len(reps), -1), self.mlp(reps.float()))  # (B, dim)


class RepVelocity(nn.Module):
    """The representation generator's velocity ``u(r, t)``: an MLP on ``(r, t)``; ``r``
    ``(B, D)`` standardised, ``t`` ``(B,)`` in [0, 1] (0 = noise) -> ``(B, D)``."""

    def __init__(self, *, rep_dim: int, width: int = 256, depth: int = 3):
        super().__init__()
        self.net = mlp(n_in=rep_dim + 1, n_out=rep_dim, width=width, depth=depth)

    def forward(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([r, t.reshape(-1, 1).to(r)], dim=1))


@dataclass(frozen=True)
class RepFlowConfig:
    """The representation generator (RCG's "RDM", a flow here)."""

    steps: int = 2000            # Adam steps
    batch_size: int = 256        # representations per step
    lr: float = 1e-3             # Adam learning rate
    width: int = 256             # MLP hidden width
    depth: int = 3               # MLP hidden layers
    seed: int = 0                # init, noise, times and batches
    sample_steps: int = 50       # Euler steps when drawing representations

    def __post_init__(self):
        validate_fields(self, {"steps": "int >= 1", "batch_size": "int >= 1", "lr": "float > 0",
                               "width": "int >= 1", "depth": "int >= 1", "seed": "seed",
                               "sample_steps": "int >= 1"})


class RepGenerator(nn.Module):
    """A trained representation generator: the velocity MLP and the standardisation of the
    training representations (flow matching works on standardised numbers; a normalised
    128-d vector has entries of about 0.09)."""

    def __init__(self, *, velocity: RepVelocity, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.velocity = velocity
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, steps: int = 50) -> torch.Tensor:
        """``n`` representations ``(n, D)``, L2-normalised like the encoder's (Euler, seeded)."""
        g = torch.Generator().manual_seed(seed)
        r0 = torch.randn(n, len(self.mean), generator=g)
        z = integrate(self.velocity, r0, steps=steps, method="euler")
        return F.normalize(z * self.std + self.mean, dim=1)


def train_rep_generator(reps: torch.Tensor, config: RepFlowConfig = RepFlowConfig()) -> tuple[RepGenerator, list]:
    """Fit the representation generator to ``reps`` ``(N, D)`` with the flow matching loss
    (:func:`course_lib.flow_toy.fit_velocity`: uniform times, independent coupling). Returns
    the generator (eval mode) and its loss per step."""
    if reps.dim() != 2 or len(reps) < 2:
        raise ValueError(f"reps must be (N >= 2, D), got {tuple(reps.shape)}")
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    mean, std = reps.mean(0), reps.std(0).clamp_min(1e-6)
    z = (reps - mean) / std                                                   # (N, D) standardised
    velocity = RepVelocity(rep_dim=reps.shape[1], width=config.width, depth=config.depth)

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = z[torch.randint(len(z), (config.batch_size,), generator=g)]
        return torch.randn(x1.shape, generator=g), x1

    losses = fit_velocity(velocity, draw, steps=config.steps, lr=config.lr, generator=g)
    return RepGenerator(velocity=velocity.eval(), mean=mean, std=std).eval(), losses


def nearest_cosine(samples: torch.Tensor, reps: torch.Tensor) -> torch.Tensor:
    """For each generated representation ``(n, D)``, its highest cosine similarity to a
    training representation ``(N, D)`` (both normalised): near 1 everywhere is a generator
    that copies; the real representations' own spread is the yardstick."""
    return (samples @ reps.T).max(dim=1).values


__all__ = ["RepresentationEmbedding", "RepVelocity", "RepFlowConfig", "RepGenerator", "train_rep_generator",
           "nearest_cosine"]
