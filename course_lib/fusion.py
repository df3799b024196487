"""Fusion of a generative model and a self-supervised task (article sections 3.3 and 4.4).

The article proposes three ways to combine a VAE with a pretext task; all three are
possible here without a new architecture because every encoder in the course holds the
same :class:`~course_lib.backbone.ConvBackbone` as ``.backbone``:

1. **Initialisation** (4.4, step 1): copy the backbone of a network trained on a pretext
   task (inpainting, jigsaw, rotation) into the VAE encoder: :func:`transfer_backbone`.
2. **Joint training** (4.4, step 2):  L = L_ELBO + lambda * L_inpainting, with one backbone
   shared by the VAE encoder and an inpainting head: :class:`JointModel`,
   :func:`inpainting_loss`, :func:`joint_loss`, :func:`joint_step`.
3. **The cycle** (3.3, point 2): samples of the generative model become training data for
   the pretext task. That needs no new code beyond :class:`Inpainter` and
   :func:`inpainter_step`; ``experiments/fusion.py`` and chapter 06 wire it up.

What the inpainting head sees and predicts (the article leaves it open, so we fix it):
the *masked* image ``x * (1 - mask) + 0.5 * mask`` (holes painted mid-grey) goes through
the shared backbone; the head is a U-Net style decoder over the backbone's three stages
and predicts the full image; the loss counts the **hole pixels only**, summed per image
and averaged over the batch, the same "sum over pixels, mean over images" convention as
the ELBO's reconstruction term, so ``lambda = 1`` weighs a hole pixel like a
reconstructed pixel.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from course_lib.backbone import ConvBackbone

HOLE_FILL = 0.5  # value painted into the holes before the image enters the backbone


# --------------------------------------------------------------------------- transfer
def find_backbone(module: nn.Module) -> tuple[str, ConvBackbone]:
    """The one :class:`ConvBackbone` inside ``module`` and its state_dict prefix.

    ``module`` may be a backbone itself (prefix ``""``), an encoder holding ``.backbone``
    (prefix ``"backbone."``), a VAE holding ``.encoder.backbone`` (``"encoder.backbone."``)...
    Raises ``ValueError`` when there is none or more than one.
    """
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, ConvBackbone)]
    if len(found) != 1:
        names = [n or "<root>" for n, _ in found]
        raise ValueError(
            f"expected exactly one ConvBackbone inside {type(module).__name__}, "
            f"found {len(found)}{': ' + ', '.join(names) if names else ''}. Every course "
            f"encoder holds one as `.backbone`; pass the model (or encoder) that holds it."
        )
    name, backbone = found[0]
    return (name + "." if name else ""), backbone


def transfer_backbone(src: nn.Module, dst: nn.Module, *, freeze: bool = False) -> list[str]:
    """Copy the backbone weights of ``src`` into ``dst``; leave everything else alone.

    ``src`` and ``dst`` are any two modules that each hold one ConvBackbone (for example
    a trained :class:`Inpainter` or jigsaw network and a fresh VAE). The values are
    *copied* (no parameter is shared afterwards). With ``freeze=True`` the destination
    backbone stops receiving gradients (``requires_grad=False``): "frozen" versus the
    default "fine-tuned" initialisation.

    Returns the ``dst`` state_dict keys that were overwritten, e.g.
    ``["encoder.backbone.conv1.weight", ...]``.
    """
    _, src_backbone = find_backbone(src)
    dst_prefix, dst_backbone = find_backbone(dst)
    src_state = src_backbone.state_dict()
    dst_state = dst_backbone.state_dict()
    for key, value in dst_state.items():
        if key not in src_state or src_state[key].shape != value.shape:
            got = tuple(src_state[key].shape) if key in src_state else "missing"
            raise ValueError(
                f"backbones differ at {key}: destination {tuple(value.shape)}, source {got}. "
                f"Both need the same in_channels and widths (source widths "
                f"{src_backbone.widths}, destination {dst_backbone.widths})."
            )
    with torch.no_grad():
        for key, value in dst_state.items():
            value.copy_(src_state[key])  # state_dict tensors alias the parameters
    for p in dst_backbone.parameters():
        p.requires_grad_(not freeze)
    return [dst_prefix + key for key in dst_state]


# ------------------------------------------------------------------- inpainting head
def mask_images(x: torch.Tensor, mask: torch.Tensor, fill: float = HOLE_FILL) -> torch.Tensor:
    """What the inpainting head sees: ``x`` with the holes (``mask == 1``) set to ``fill``.

    ``x``: (B, C, H, W) in [0, 1]; ``mask``: (B, 1, H, W) with 1 = hole, 0 = known.
    """
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching images {tuple(x.shape)}, got {tuple(mask.shape)}")
    return x * (1 - mask) + fill * mask


class InpaintingHead(nn.Module):
    """U-Net style decoder over the three backbone stages (article 4.3: "U-Net style").

    Input:  ``[h1, h2, h3]`` from ``ConvBackbone.features``, sizes H/2, H/4, H/8.
    Output: ``(B, out_channels, H, W)`` completed image in [0, 1] (sigmoid).
    """

    def __init__(self, *, widths: tuple[int, int, int] = (32, 64, 128), out_channels: int = 3):
        super().__init__()
        w1, w2, w3 = widths
        self.up3 = nn.ConvTranspose2d(w3, w2, 4, 2, 1)           # H/8 -> H/4
        self.up2 = nn.ConvTranspose2d(2 * w2, w1, 4, 2, 1)       # H/4 -> H/2 (after skip)
        self.up1 = nn.ConvTranspose2d(2 * w1, out_channels, 4, 2, 1)  # H/2 -> H

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        h1, h2, h3 = features
        u = torch.relu(self.up3(h3))                        # (B, 64, H/4, W/4)
        u = torch.relu(self.up2(torch.cat([u, h2], 1)))     # (B, 32, H/2, W/2)
        return torch.sigmoid(self.up1(torch.cat([u, h1], 1)))  # (B, 3, H, W)


class Inpainter(nn.Module):
    """The pretext network of this chapter: shared backbone + :class:`InpaintingHead`.

    ``forward(masked)`` maps a masked image (B, 3, H, W) in [0, 1] to the completed
    image (B, 3, H, W) in [0, 1]. Its ``.backbone`` is what :func:`transfer_backbone`
    copies into a VAE.
    """

    def __init__(self, *, widths: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        self.backbone = ConvBackbone(in_channels=3, widths=widths)
        self.head = InpaintingHead(widths=widths)

    def forward(self, masked: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.features(masked))


def inpainting_loss(fill: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_inpainting: squared error on the hole pixels, summed per image, mean over the batch.

    ``fill``, ``x``: (B, C, H, W); ``mask``: (B, 1, H, W), 1 = hole. Returns a scalar.
    Known pixels do not count: the task is to predict what is missing (Pathak et al. 2016).
    """
    return ((fill - x) ** 2 * mask).flatten(1).sum(1).mean()


def joint_loss(elbo: torch.Tensor, fill: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
               *, lam: float) -> torch.Tensor:
    """Article eq. (4.4): L = L_ELBO + lambda * L_inpainting (``elbo`` is the negative ELBO,
    a scalar to minimise; at ``lam = 0`` this is exactly ``elbo``)."""
    return elbo + lam * inpainting_loss(fill, x, mask)


class JointModel(nn.Module):
    """A VAE and an inpainting head sharing one backbone (the VAE encoder's).

    Built around a VAE passed in (``vae.encoder.backbone`` must exist and ``vae(x)`` must
    return ``(x_hat, mu, logvar)``). ``forward(x, mask)`` returns a dict with ``x_hat``,
    ``mu``, ``logvar`` (the VAE on the clean image) and ``fill`` (the head's completion
    of the masked image, (B, 3, H, W) in [0, 1]).
    """

    def __init__(self, *, vae: nn.Module, head: InpaintingHead | None = None):
        super().__init__()
        self.vae = vae
        _, backbone = find_backbone(vae)
        self.head = head if head is not None else InpaintingHead(widths=backbone.widths)

    @property
    def backbone(self) -> ConvBackbone:
        return find_backbone(self.vae)[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x_hat, mu, logvar = self.vae(x)
        fill = self.head(self.backbone.features(mask_images(x, mask)))
        return {"x_hat": x_hat, "mu": mu, "logvar": logvar, "fill": fill}


def joint_step(model: JointModel, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               mask: torch.Tensor, *, lam: float,
               elbo_fn: Callable[..., torch.Tensor]) -> dict[str, float]:
    """One optimisation step of L = L_ELBO + lam * L_inpainting.

    ``elbo_fn(x, x_hat, mu, logvar)`` returns the negative ELBO (scalar). With ``lam == 0``
    the head gets no gradient and the step is an ordinary VAE step (the head is skipped).
    Returns floats ``loss``, ``elbo``, ``inpaint``.
    """
    model.train()
    if lam == 0:
        x_hat, mu, logvar = model.vae(x)
        elbo = elbo_fn(x, x_hat, mu, logvar)
        loss, inpaint = elbo, torch.zeros(())
    else:
        out = model(x, mask)
        elbo = elbo_fn(x, out["x_hat"], out["mu"], out["logvar"])
        inpaint = inpainting_loss(out["fill"], x, mask)
        loss = elbo + lam * inpaint
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "elbo": elbo.item(), "inpaint": inpaint.item()}


def inpainter_step(model: Inpainter, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   mask: torch.Tensor) -> dict[str, float]:
    """One step of pretext training: complete the masked ``x``; loss on the holes only."""
    model.train()
    loss = inpainting_loss(model(mask_images(x, mask)), x, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"inpaint": loss.item()}


@torch.no_grad()
def backbone_features(module: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Global-average-pooled backbone features (N, C) of images (N, 3, H, W) in [0, 1]
    (or uint8 in [0, 255]): the input of the cycle experiment's linear probe."""
    _, backbone = find_backbone(module)
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        xb = images[i:i + batch_size].to(device)
        xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
        out.append(F.adaptive_avg_pool2d(backbone(xb), 1).flatten(1).cpu())
    backbone.train(was_training)
    return torch.cat(out)
