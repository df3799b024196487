"""Inpainting as a pretext task (article sections 3.2.1 and 4.3; Pathak et al. 2016).

A U-Net style completion network whose encoder is the course's shared
:class:`~course_lib.backbone.ConvBackbone`: it sees the masked image (hole filled with a
constant) and predicts the whole image; the loss only counts the hole. Because the
encoder takes plain 3-channel images, its ``state_dict`` loads into the VAE encoder's
``.backbone`` unchanged (chapter 06). The network is told where the hole is through the
decoder: the mask is concatenated to every decoder stage, never to the shared encoder.

Also here: the classical baselines (fill with the mean colour of the known pixels, and
OpenCV's ``cv2.inpaint`` with Telea's fast marching or the Navier-Stokes method) that the
network has to beat, one training step, and ``pretrained_inpainter(profile)`` which chapter
06 reuses. Masks: 1 = hole (missing), 0 = known, shape ``(B, 1, H, W)`` (course_lib.masks).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .images import to_float, to_uint8
from .inputs import check_float_images, check_mask, validate_fields
from .loop import Step
from .masks import apply_mask, make_masks
from .profiles import choose
from .runtime import Runtime, backward_step, local_share, world_size
from .trainer import Recipe, fit


@dataclass(frozen=True)
class InpaintConfig:
    """Hyperparameters of the inpainting chapter; ``for_profile`` picks sizes."""

    image_size: int = 32            # square images; cpu 32 (as the VAE chapter), gpu 64
    decoder_widths: tuple[int, int, int] = (64, 32, 16)  # channels after each up stage
    mask_kinds: tuple[str, ...] = ("center", "blocks", "half", "freeform")  # sampled per batch
    coverage: tuple[float, float] = (0.15, 0.5)  # hole fraction drawn uniformly per batch
    fill: float = 0.5               # constant written into the hole before encoding
    train_size: int = 4000          # ToyFaces training images
    batch_size: int = 32            # small batches, more steps: what counts on a CPU budget
    steps: int = 800                # optimizer steps (step budget: results do not depend on load)
    lr: float = 2e-3                # Adam; Pathak et al. use 2e-4 at 128 px with far more steps
    adv_weight: float = 0.0         # Context Encoders' adversarial weight (0.001 in the paper)
    seed: int = 0

    def __post_init__(self) -> None:
        validate_fields(self, {
            "image_size": "int >= 8", "decoder_widths": "int >= 1", "coverage": "float in (0, 1)",
            "fill": "float in [0, 1]", "train_size": "int >= 1", "batch_size": "int >= 1", "steps": "int >= 1",
            "lr": "float > 0", "adv_weight": "float >= 0", "seed": "seed"})
        if not self.coverage[0] <= self.coverage[1]:
            raise ValueError(f"InpaintConfig.coverage must be (low, high) with low <= high, got {self.coverage}")

    @classmethod
    def for_profile(cls, name: str | None = None) -> InpaintConfig:
        """The chapter's sizes for profile ``name`` (default: the current profile)."""
        return choose(
            smoke=cls(image_size=16, train_size=128, batch_size=16, steps=6),
            cpu=cls(image_size=32, train_size=4000, batch_size=32, steps=800),
            gpu=cls(image_size=64, train_size=20000, batch_size=128, steps=4000),
            profile=name,
        )

    def build(self) -> InpaintingNet:
        """The untrained network this config describes, its initial weights drawn from
        ``seed`` (the global RNG is left as it was), so a run is reproducible end to end."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return InpaintingNet(decoder_widths=self.decoder_widths)


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    """Transposed 4x4 stride-2 conv (doubles H and W), then ReLU: the article's decoder stage."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.ReLU(inplace=True))


class InpaintingNet(nn.Module):
    """U-Net completion network around the shared backbone.

    Input:  ``x`` (B, 3, H, W) masked images in [0, 1] (hole already filled), ``mask``
            (B, 1, H, W) with 1 = hole; H, W multiples of 8.
    Output: ``x_hat`` (B, 3, H, W) in [0, 1], a prediction of the whole image. Use
            :func:`composite` to keep the known pixels.

    ``skips=False`` drops the U-Net skip connections (an encoder-decoder like Context
    Encoders) so the chapter can show what the skips buy.
    """

    def __init__(
        self,
        *,
        decoder_widths: tuple[int, int, int] = (64, 32, 16),
        skips: bool = True,
        backbone: ConvBackbone | None = None,
    ):
        super().__init__()
        self.backbone = backbone if backbone is not None else ConvBackbone()
        if self.backbone.in_channels != 3:
            raise ValueError("the shared backbone must take 3-channel images")
        c1, c2, c3 = self.backbone.widths
        d3, d2, d1 = decoder_widths
        self.skips = skips
        s = 1 if skips else 0
        # every decoder stage also receives the mask (+1 channel)
        self.up3 = _up(c3 + 1, d3)                    # H/8 -> H/4
        self.up2 = _up(d3 + s * c2 + 1, d2)           # H/4 -> H/2
        self.up1 = _up(d2 + s * c1 + 1, d1)           # H/2 -> H
        self.head = nn.Conv2d(d1 + s * 3 + 1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_pair(x, mask)
        check_float_images(x, "InpaintingNet input")
        if x.shape[-2] % 8 or x.shape[-1] % 8:  # three stride-2 stages, then skips of equal size
            h, w = x.shape[-2:]
            raise ValueError(f"InpaintingNet needs H and W divisible by 8, got {h}x{w}: resize or "
                             f"crop to {h // 8 * 8 or 8}x{w // 8 * 8 or 8} or {(h // 8 + 1) * 8}x{(w // 8 + 1) * 8}")
        h1, h2, h3 = self.backbone.features(x)        # (B,32,H/2) (B,64,H/4) (B,128,H/8)

        def cat(t: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
            m = F.interpolate(mask, size=t.shape[-2:], mode="area")
            parts = [t, skip, m] if (self.skips and skip is not None) else [t, m]
            return torch.cat(parts, dim=1)

        u = self.up3(cat(h3, None))                   # (B, d3, H/4, W/4)
        u = self.up2(cat(u, h2))                      # (B, d2, H/2, W/2)
        u = self.up1(cat(u, h1))                      # (B, d1, H, W)
        return torch.sigmoid(self.head(cat(u, x)))    # (B, 3, H, W) in [0, 1]


class ContextDiscriminator(nn.Module):
    """Small DCGAN-style critic for the optional adversarial term (Pathak et al. 2016, eq. 3).

    Input (B, 3, H, W) in [0, 1]; output (B,) logits (real > 0).
    """

    def __init__(self, *, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _check_pair(images: torch.Tensor, mask: torch.Tensor) -> None:
    check_mask(mask)
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != images.shape[0] \
            or mask.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"expected a mask of shape ({images.shape[0]}, 1, {images.shape[2]}, "
            f"{images.shape[3]}) with 1 = hole, got {tuple(mask.shape)}"
        )


def masked_mse_loss(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole only (Pathak et al. 2016, eq. 1).

    ``sum(mask * (x_hat - x)^2) / (number of hole pixels * channels)``, both sums over the
    whole batch: pixels outside the hole contribute nothing, and the mean is over the batch's
    hole values (each counts once), not over the whole image and not image by image.
    """
    _check_pair(x, mask)
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} must match")
    count = mask.sum() * x.shape[1]
    # Checked where it costs nothing: on a GPU reading the count would stall every step; an
    # empty mask there gives 0/0 = NaN, which the training loop reports as divergence.
    if count.device.type == "cpu" and count.item() == 0:
        raise ValueError("the mask has no hole pixels (expected 1 = hole somewhere)")
    return (mask * (x_hat - x) ** 2).sum() / count


def composite(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the known pixels of ``x`` and take the hole from ``x_hat``."""
    return mask * x_hat + (1 - mask) * x


def fill_hole(images: torch.Tensor, mask: torch.Tensor, value: float = 0.5) -> torch.Tensor:
    """The network's input: hole pixels set to ``value`` (:func:`course_lib.masks.apply_mask`)."""
    _check_pair(images, mask)
    return apply_mask(images, mask, value)


# --- classical baselines -------------------------------------------------------------

def mean_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill each image's hole with the mean colour of its known pixels. (B,3,H,W) in [0,1]."""
    _check_pair(images, mask)
    known = 1 - mask
    mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
    return images * known + mean * mask


_CV_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def opencv_inpaint(
    images: torch.Tensor, mask: torch.Tensor, *, method: str = "telea", radius: int = 3
) -> torch.Tensor:
    """OpenCV's classical inpainting on a batch of float tensors.

    ``method``: ``"telea"`` (Telea 2004, fast marching) or ``"ns"`` (Bertalmio et al.
    2001, Navier-Stokes). Input (B, C, H, W) floats in [0, 1] (C = 1 or 3) and a
    (B, 1, H, W) mask (1 = hole); output the same shape, in [0, 1], on the input's device.
    OpenCV works on 8-bit images, so values are quantised to 1/255.
    """
    if method not in _CV_METHODS:
        raise ValueError(f"method must be one of {sorted(_CV_METHODS)}, got {method!r}")
    _check_pair(images, mask)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"OpenCV inpainting needs 1 or 3 channels, got {images.shape[1]}")
    imgs = to_uint8(images.float()).cpu()
    holes = (mask.detach() > 0.5).to(torch.uint8).cpu() * 255
    out = []
    for img, hole in zip(imgs, holes):
        arr = np.ascontiguousarray(img.permute(1, 2, 0).numpy())   # (H, W, C) uint8
        filled = cv2.inpaint(arr, np.ascontiguousarray(hole[0].numpy()), radius,
                             _CV_METHODS[method])
        out.append(torch.from_numpy(filled.reshape(arr.shape)).permute(2, 0, 1))
    return to_float(torch.stack(out)).to(images.device)


# --- training ----------------------------------------------------------------------------

def inpainting_step(
    model: InpaintingNet,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    mask: torch.Tensor,
    *,
    fill: float = 0.5,
    discriminator: nn.Module | None = None,
    d_optimizer: torch.optim.Optimizer | None = None,
    adv_weight: float = 0.0,
) -> dict[str, float]:
    """One update: L = (1 - adv_weight) * L_rec(hole) + adv_weight * L_adv (Pathak eq. 4).

    With ``adv_weight > 0`` the discriminator first takes one step on real images vs
    completed ones (the prediction in the hole, the known pixels around it: Iizuka et al.
    2017's convention; Pathak et al. score the network's prediction itself), then the
    completion network takes its step with the non-saturating
    generator loss. Returns the losses as detached 0-d tensors.
    """
    model.train()
    logs: dict[str, torch.Tensor] = {}
    x_hat = model(fill_hole(images, mask, fill), mask).float()    # (B, 3, H, W)
    rec = masked_mse_loss(x_hat, images, mask)
    loss = rec
    if adv_weight > 0:
        if discriminator is None or d_optimizer is None:
            raise ValueError("adv_weight > 0 needs a discriminator and a d_optimizer")
        fake = composite(x_hat, images, mask)
        # discriminator half: real -> 1, completed -> 0
        d_real = discriminator(images)
        d_fake = discriminator(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        d_optimizer.zero_grad(set_to_none=True)
        backward_step(d_loss, d_optimizer)
        # generator half: make the completed image look real
        g_logits = discriminator(fake)
        adv = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        loss = (1 - adv_weight) * rec + adv_weight * adv
        logs.update(d_loss=d_loss.detach(), adv=adv.detach())
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    logs["loss"] = rec.detach()
    return logs


def sample_masks(config: InpaintConfig, batch: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Training masks: one kind from ``config.mask_kinds`` and a coverage drawn uniformly from
    ``config.coverage`` per batch (Pathak et al. train on a mixture of hole shapes).
    ``half`` masks hide the bottom (the article's "given the top half, predict the bottom").
    A single kind, or a fixed coverage ``(c, c)``, draws nothing for it from ``generator``."""
    kinds = config.mask_kinds
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))] if len(kinds) > 1 else kinds[0]
    lo, hi = config.coverage
    coverage = lo + (hi - lo) * float(torch.rand((), generator=generator)) if hi > lo else lo
    return make_masks(kind, batch=batch, image_size=config.image_size, coverage=coverage,
                      generator=generator, device=device, side="bottom")


def train_inpainter(model: InpaintingNet, config: InpaintConfig, *,
                    images: torch.Tensor | None = None, progress: bool | str = "auto",
                    plan: Runtime | None = None, checkpoint: str | os.PathLike | None = None,
                    callbacks=()):
    """Train ``model`` in place for ``config.steps`` Adam steps; returns the History.

    ``images``: uint8 (N, 3, S, S); default the first ``config.train_size`` ToyFaces training
    images at ``config.image_size``. With ``config.adv_weight > 0`` a
    :class:`ContextDiscriminator` is trained alongside (and discarded afterwards).
    ``plan``/``checkpoint`` as in :func:`course_lib.vae.train_vae`. Chapter 06's
    pretraining calls this too, with its own images and a single mask kind.
    """
    def setup(plan):
        net = plan.prepare(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        disc = d_opt = None
        if config.adv_weight > 0:
            disc = plan.prepare(ContextDiscriminator(), ddp=False)
            # Pathak et al.: the discriminator learns 10x slower than the completion network
            d_opt = torch.optim.Adam(disc.parameters(), lr=config.lr / 10, betas=(0.5, 0.999))
        g = torch.Generator().manual_seed(config.seed)

        def step(x):  # masks drawn for the global batch, this rank's share kept
            mask = local_share(sample_masks(config, x.shape[0] * world_size(), g, x.device))
            return inpainting_step(net, optimizer, x, mask, fill=config.fill, discriminator=disc,
                                   d_optimizer=d_opt, adv_weight=config.adv_weight)
        models = model if disc is None else {"model": model, "discriminator": disc}
        optimizers = optimizer if d_opt is None else {"optimizer": optimizer, "discriminator": d_opt}
        return Step(step, generators=[g]), models, optimizers

    return fit(config, setup, desc="inpainting", images=images, plan=plan, progress=progress,
               checkpoint=checkpoint, callbacks=callbacks)


RECIPES = {"inpainter": Recipe(cache_name="inpainter_ch04", config=InpaintConfig.for_profile,
                               build=InpaintConfig.build, train=train_inpainter)}


def pretrained_inpainter(config: InpaintConfig | None = None, *, progress: bool | str = "auto",
                         retrain: bool = False):
    """The chapter-04 inpainting network (default ``InpaintConfig.for_profile()``), trained
    once and cached by :func:`course_lib.checkpoint.load_or_train` as ``inpainter_ch04``.
    Chapter 06 takes ``.model.backbone`` from it. Returns a ``Trained`` (model in eval mode)."""
    return RECIPES["inpainter"].pretrained(config, progress=progress, retrain=retrain)


@torch.no_grad()
def complete(model: InpaintingNet, images: torch.Tensor, mask: torch.Tensor,
             *, fill: float = 0.5) -> torch.Tensor:
    """Inpaint with a trained network: known pixels kept, hole predicted. (B,3,H,W) in [0,1]."""
    model.eval()
    device = next(model.parameters()).device
    x, m = images.to(device).float(), mask.to(device).float()
    return composite(model(fill_hole(x, m, fill), m), x, m).to(images.device)
