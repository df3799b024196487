"""Contrastive self-supervision (SimCLR, Chen et al. 2020) on the shared backbone.

Two random *views* of every image (crop, mirror, colour), one network, one question: which
of the other 2N - 1 views in the batch comes from the same image? The answer is scored by
the NT-Xent loss (Chen et al. 2020, eq. 1), a softmax over cosine similarities divided by a
temperature. The backbone learns what survives the augmentations (shape, layout) and forgets
what they scramble (position, absolute colour): so *which* augmentations are used decides
what the features know, the lesson of the paper's Figure 5 and of chapter 05's ablation.

- :class:`SimCLRConfig`: sizes, temperature, augmentation strengths (profiles as instances).
- :func:`augment`: per-image random views, on the device, from a seeded ``torch.Generator``
  (exact resume). ``torchvision.transforms.v2`` draws *one* set of parameters per call, so on
  a (B, C, H, W) tensor every image gets the same crop and colour; a Python loop over images
  gives per-image randomness at several times the cost of one batched call (chapter 05
  measures the ratio). Here each operation is written batched with per-image parameters: the crop as an
  affine ``grid_sample``, the colour operations as the blends ``v2.functional`` computes
  (tests check each against it image by image), grayscale with ``v2.functional`` itself.
- :class:`SimCLRNet`: backbone + the paper's projection head (a 2-layer MLP).
- :func:`nt_xent`, :func:`simclr_step`, :func:`train_simclr`, :func:`pretrained_simclr`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .backbone import ConvBackbone
from .contrastive_report import ablation_finding  # noqa: F401  (moved there; chapter 05 imports it from here)
from .images import to_float
from .inputs import check_value, validate_fields
from .loop import Step
from .profiles import choose
from .runtime import Runtime, backward_step
from .trainer import Recipe, fit

AUGMENTATIONS = ("crop", "flip", "colour")


@dataclass(frozen=True)
class SimCLRConfig:
    """Hyperparameters of SimCLR on ToyFaces (Chen et al. 2020, scaled down)."""

    image_size: int = 32            # the resolution of chapter 05's rotation task
    train_size: int = 4000          # ToyFaces training images
    batch_size: int = 64            # images per step; 2 views each, so 128 through the backbone
    steps: int = 600                # optimizer steps
    lr: float = 2e-3                # Adam (the paper uses LARS at batch 4096; Adam suits small batches)
    temperature: float = 0.5        # tau of NT-Xent (the paper's CIFAR-10 setting)
    hidden: int = 256               # projection head: 512 -> hidden -> out_dim (paper: 2-layer MLP)
    out_dim: int = 64               # dimension of z, where the loss is computed
    augmentations: tuple[str, ...] = AUGMENTATIONS  # which of AUGMENTATIONS make the views
    crop_scale: tuple[float, float] = (0.3, 1.0)    # area fraction of the random resized crop
    jitter: float = 0.4             # brightness, contrast, saturation factors in [1 - j, 1 + j]
    jitter_p: float = 0.8           # probability of colour jitter per view (the paper: 0.8)
    gray_p: float = 0.2             # probability of grayscale per view (the paper: 0.2)
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"augmentations must be a subset of {AUGMENTATIONS}, got {self.augmentations!r}")
        validate_fields(self, {
            "image_size": "int >= 8", "train_size": "int >= 1", "batch_size": "int >= 2", "steps": "int >= 1",
            "lr": "float > 0", "temperature": "float", "hidden": "int >= 1", "out_dim": "int >= 1",
            "crop_scale": "float", "jitter": "float in [0, 1]", "jitter_p": "float in [0, 1]",
            "gray_p": "float in [0, 1]", "seed": "seed"})
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")

    @classmethod
    def for_profile(cls, name: str | None = None) -> SimCLRConfig:
        """Chapter 05's sizes: smoke = seconds, cpu = the chapter's budget, gpu = longer."""
        return choose(smoke=cls(image_size=16, train_size=128, batch_size=16, steps=6),
                      cpu=cls(),
                      gpu=cls(image_size=64, train_size=20000, batch_size=256, steps=5000),
                      profile=name)

    def build(self) -> SimCLRNet:
        return SimCLRNet(hidden=self.hidden, out_dim=self.out_dim)


class SimCLRNet(nn.Module):
    """Backbone f + projection head g (Chen et al. 2020, section 2.1): z = g(f(x)).

    Input (B, 3, H, W) floats in [0, 1]; output z (B, out_dim), not normalised (the loss
    normalises). The representation kept for downstream use is the backbone's, not z: the
    paper finds the layer *before* the head linearly more useful (its Figure 8).
    """

    def __init__(self, *, backbone: ConvBackbone | None = None, hidden: int = 256, out_dim: int = 64):
        super().__init__()
        self.backbone = backbone if backbone is not None else ConvBackbone()
        self.head = nn.Sequential(nn.Linear(self.backbone.out_channels * 4, hidden), nn.ReLU(),
                                  nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.adaptive_avg_pool2d(self.backbone(x), 2).flatten(1)   # (B, 512), as pretext.BackboneClassifier
        return self.head(h)                                          # (B, out_dim)


# --- augmentations ------------------------------------------------------------------------

def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """v2.functional's blend, per image: factor * x + (1 - factor) * other, clamped to [0, 1]."""
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def adjust_colour(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor) -> torch.Tensor:
    """Brightness, then contrast, then saturation, one factor per image ((B,) each), as
    ``v2.functional.adjust_brightness / adjust_contrast / adjust_saturation`` compute them
    on one image. x (B, 3, H, W) in [0, 1] -> same shape."""
    f = lambda t: t.view(-1, 1, 1, 1)                                      # noqa: E731
    x = (x * f(brightness)).clamp(0, 1)
    mean = TF.rgb_to_grayscale(x).mean((1, 2, 3), keepdim=True)           # (B, 1, 1, 1)
    x = _blend(x, mean, f(contrast))
    return _blend(x, TF.rgb_to_grayscale(x), f(saturation))


def random_resized_crop(x: torch.Tensor, scale: torch.Tensor, log_ratio: torch.Tensor,
                        centre: torch.Tensor) -> torch.Tensor:
    """Per-image crops resized back to H x W (bilinear), as one ``grid_sample``.

    ``scale`` (B,) area fraction, ``log_ratio`` (B,) log aspect ratio, ``centre`` (B, 2) in
    [-1, 1]: where in the allowed range the crop sits. x (B, C, H, W) -> same shape."""
    w = (scale * log_ratio.exp()).sqrt().clamp(max=1)                    # crop width / image width
    h = (scale / log_ratio.exp()).sqrt().clamp(max=1)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2], theta[:, 1, 2] = centre[:, 0] * (1 - w), centre[:, 1] * (1 - h)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)       # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(images: torch.Tensor, config: SimCLRConfig, generator: torch.Generator) -> torch.Tensor:
    """One random view of every image: (B, 3, H, W) uint8 or float in [0, 1] -> float, same
    shape, on the images' device. Parameters are drawn per image on the CPU from
    ``generator`` (so a resumed run draws the same views), in the paper's order: crop and
    resize, flip, colour jitter (p = ``jitter_p``), grayscale (p = ``gray_p``)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"augment expects RGB images (B, 3, H, W), got {tuple(images.shape)}")
    x = to_float(images)
    b, dev = x.shape[0], x.device
    u = lambda *s: torch.rand(*s, generator=generator).to(dev)             # noqa: E731
    if "crop" in config.augmentations:
        low, high = config.crop_scale
        scale = low + (high - low) * u(b)
        log_ratio = (2 * u(b) - 1) * math.log(4 / 3)                        # ratio in [3/4, 4/3]
        x = random_resized_crop(x, scale, log_ratio, 2 * u(b, 2) - 1)
    if "flip" in config.augmentations:
        x = torch.where((u(b) < 0.5).view(-1, 1, 1, 1), x.flip(3), x)
    if "colour" in config.augmentations:
        j = config.jitter
        factors = 1 + j * (2 * u(3, b) - 1)                                 # (3, B)
        on = (u(b) < config.jitter_p).view(-1, 1, 1, 1)
        x = torch.where(on, adjust_colour(x, *factors), x)
        gray = (u(b) < config.gray_p).view(-1, 1, 1, 1)
        x = torch.where(gray, TF.rgb_to_grayscale(x, num_output_channels=3), x)
    return x


# --- the loss -------------------------------------------------------------------------------

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent, the normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1).

    ``z1``, ``z2`` (N, D): projections of the two views; row i of each comes from image i.
    With the 2N vectors normalised to unit length, s_ij = z_i . z_j / tau, and for every
    anchor i with positive p(i) (the other view of its image)
    ``l_i = -log exp(s_ip) / sum_{k != i} exp(s_ik)``: a (2N - 1)-way classification whose
    correct class is the positive; the anchor itself is excluded. Returns the mean over the
    2N anchors, a 0-d tensor.
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must be (N, D) of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:  # with one image there are no negatives: the loss is 0 whatever z is
        raise ValueError(f"NT-Xent needs N >= 2 images (the others are the negatives), got N = {z1.shape[0]}")
    if not isinstance(temperature, torch.Tensor):
        check_value(temperature, "float > 0", "temperature")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)                   # (2N, D), unit rows
    sim = z @ z.T / temperature                                           # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # p(i)
    return F.cross_entropy(sim, positive)


def positive_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Share of the 2N anchors whose most similar other vector is their positive (0-d)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = (z @ z.T).fill_diagonal_(-2)
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return (sim.argmax(1) == positive).float().mean()


# --- training -------------------------------------------------------------------------------

def simclr_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                config: SimCLRConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One update: two views of each image (B, 3, H, W), one forward of the 2B views, NT-Xent.
    Returns detached ``loss`` and ``acc`` (positive found among the 2B - 1 others)."""
    model.train()
    views = torch.cat([augment(images, config, generator), augment(images, config, generator)])
    z = model(views).float()                                              # (2B, out_dim)
    z1, z2 = z.chunk(2)
    loss = nt_xent(z1, z2, config.temperature)
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"loss": loss.detach(), "acc": positive_accuracy(z1.detach(), z2.detach())}


def train_simclr(model: SimCLRNet, config: SimCLRConfig, *, images: torch.Tensor | None = None,
                 progress: bool | str = "auto", plan: Runtime | None = None,
                 checkpoint: str | os.PathLike | None = None, callbacks=()):
    """Train ``model`` in place on ToyFaces (uint8 ``images`` at ``config.image_size``;
    default the first ``config.train_size`` training faces) through ``course_lib.loop.train``."""
    def setup(plan):
        net = plan.prepare(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        g = torch.Generator().manual_seed(config.seed + 1_000_003 * plan.rank)   # this rank's views
        return Step(lambda x: simclr_step(net, optimizer, x, config, g), generators=[g]), model, optimizer

    return fit(config, setup, desc="SimCLR " + "+".join(config.augmentations), images=images, plan=plan,
               progress=progress, checkpoint=checkpoint, callbacks=callbacks)


RECIPES = {"simclr": Recipe(cache_name="simclr_ch05", config=SimCLRConfig.for_profile, build=SimCLRConfig.build,
                            train=train_simclr)}


def pretrained_simclr(config: SimCLRConfig | None = None, *, progress: bool | str = "auto",
                      retrain: bool = False):
    """Chapter 05's SimCLR network (default ``SimCLRConfig.for_profile()``), trained once and
    cached as ``simclr_ch05``; ``.model.backbone`` is the shared backbone."""
    return RECIPES["simclr"].pretrained(config, progress=progress, retrain=retrain)
