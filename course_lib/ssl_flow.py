"""Self-supervision inside the generator, chapter 12: chapter 09's flow model helped by
features nobody labelled.

Three ways a label-free representation can help a generator, each measured in
``experiments/ssl_generation.py``:

- **Representation alignment** (REPA; Yu et al. 2024): while the U-Net learns the velocity
  from a noisy ``x_t``, a small projector maps one of its hidden maps onto the features that a
  frozen self-supervised encoder computes from the *clean* image, and a cosine term pulls the
  two together (their eq. 8):

      L = L_flow + lambda * ( - mean_positions cos(proj(h_t), f(x_1)) ).

  The U-Net must then recover what the image *is* from a noisy view of it, which REPA finds
  speeds up training. Negative control: the same loss towards a frozen *random* encoder.
- **Dispersive loss** (Wang & He 2025): no encoder at all; push the hidden maps of the images
  of one batch apart, InfoNCE without positives, with the squared distance:

      L_disp = log mean_{i, j} exp( - ||h_i - h_j||^2 / (D tau) )     (D = numbers per map).

- **Self-guidance** (Hu et al. 2023): k-means clusters of the self-supervised features take
  the place of labels in classifier-free guidance (:mod:`course_lib.guidance`), so a
  "condition" exists without anyone labelling a face.

The U-Net's hidden map is its ``down2`` stage output, ``(B, 64, H/4, W/4)``: early in the
network, where REPA finds alignment works best; the encoder's target is its last stage,
``h3`` ``(B, 128, H/8, W/8)``, the projection average-pooled to that grid.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBackbone
from .diffusion_unet import ConditionalUNet
from .flow import FlowConfig, FlowModel
from .images import to_float
from .inputs import validate_fields
from .rcg import RepresentationEmbedding

METHODS = ("none", "repa", "dispersive")


@dataclass(frozen=True)
class HelpConfig:
    """How a flow model is helped (beside :class:`~course_lib.flow.FlowConfig`)."""

    method: str = "none"          # "none", "repa" (align with an encoder) or "dispersive" (no encoder)
    weight: float = 0.5           # lambda of the extra term (REPA's 0.5)
    tau: float = 0.5              # dispersive loss temperature (Wang & He's 0.5), on distances per number
    projector_hidden: int = 256   # REPA's projector: 1x1 convolutions 64 -> hidden -> hidden -> 128

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"HelpConfig.method must be one of {METHODS}, got {self.method!r}")
        validate_fields(self, {"weight": "float >= 0", "tau": "float > 0", "projector_hidden": "int >= 1"})


class HiddenUNet(nn.Module):
    """A velocity U-Net (:class:`~course_lib.diffusion_unet.TimeUNet` or its
    :class:`~course_lib.diffusion_unet.ConditionalUNet`) that keeps its ``down2`` output of the
    last call in ``.hidden`` ``(B, w2, H/4, W/4)``, and owns REPA's ``projector`` (so the
    optimiser that trains the U-Net trains it too). Calls pass straight through."""

    def __init__(self, *, unet: nn.Module, projector: nn.Module | None = None):
        super().__init__()
        self.unet, self.projector = unet, projector
        inner = unet.unet if isinstance(unet, ConditionalUNet) else unet
        inner.down2.register_forward_hook(self._keep)
        self.hidden: torch.Tensor | None = None

    def _keep(self, module, inputs, output):
        self.hidden = output

    def forward(self, *args):
        return self.unet(*args)


def projector(*, in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """REPA's projector, per position: three 1x1 convolutions with SiLU between them."""
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
                         nn.Conv2d(hidden, out_channels, 1))


def build_model(config: FlowConfig, help: HelpConfig, *, num_classes: tuple[int, ...] = (),
                rep_dim: int = 0, target_channels: int = 128) -> FlowModel:
    """Chapter 09's flow model for ``config``, its U-Net wrapped in a :class:`HiddenUNet`
    (with a projector onto ``target_channels`` for REPA), conditioned on labels with
    ``num_classes`` values per column when given: ``(k,)`` for one cluster id of k
    (self-guidance), the attributes' class counts for guidance by true labels; or, with
    ``rep_dim``, on representation vectors ``(B, rep_dim)`` (RCG: :mod:`course_lib.rcg`)."""
    if num_classes and rep_dim:
        raise ValueError("build_model: condition on labels (num_classes) or on representations (rep_dim), not both")
    net = dataclasses.replace(config, condition=()).build().net             # a plain TimeUNet
    if num_classes:
        net = ConditionalUNet(unet=net, num_classes=tuple(num_classes))
    elif rep_dim:
        net = ConditionalUNet(unet=net, embed=RepresentationEmbedding(rep_dim=rep_dim, dim=net.time_dim))
    proj = (projector(in_channels=config.widths[1], hidden=help.projector_hidden, out_channels=target_channels)
            if help.method == "repa" else None)
    return FlowModel(net=HiddenUNet(unet=net, projector=proj), image_size=config.image_size,
                     ema_decay=config.ema_decay, channels=config.channels)


def repa_loss(hidden: torch.Tensor, target: torch.Tensor, proj: nn.Module) -> torch.Tensor:
    """``- mean cos(proj(hidden), target)`` over images and positions: ``hidden`` ``(B, C, h, w)``,
    ``target`` ``(B, D, h', w')`` with ``h'`` dividing ``h`` (the projection is average-pooled
    to the target's grid). In [-1, 1]; -1 when every position points the target's way."""
    z = proj(hidden)                                                      # (B, D, h, w)
    if z.shape[1] != target.shape[1]:
        raise ValueError(f"projector gives {z.shape[1]} channels, the target has {target.shape[1]}")
    z = F.adaptive_avg_pool2d(z, target.shape[-2:])                       # (B, D, h', w')
    return -F.cosine_similarity(z, target, dim=1).mean()


def dispersive_loss(hidden: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """``log mean_{i,j} exp(-||h_i - h_j||^2 / (D tau))`` over the batch's pairs (the pairs
    i = j included, as Wang & He write it), ``hidden`` ``(B, ...)`` flattened to D numbers per
    image. At most 0 (every image the same), lower the more the batch is spread out."""
    h = hidden.flatten(1)                                                 # (B, D)
    d2 = torch.cdist(h, h).pow(2) / h.shape[1]                            # (B, B) mean squared difference
    return torch.logsumexp(-d2.flatten() / tau, 0) - np.log(d2.numel())


@torch.no_grad()
def encoder_targets(encoder: ConvBackbone, x1: torch.Tensor) -> torch.Tensor:
    """The frozen encoder's last map for clean images ``x1`` in model range [-1, 1]:
    ``(B, 128, H/8, W/8)`` (the encoder sees [0, 1] images, as everywhere in the course)."""
    return encoder.features((x1 + 1) / 2)[2]


def help_term(model: FlowModel, help: HelpConfig, encoder: ConvBackbone | None = None):
    """``aux(x1) -> scalar`` for :func:`course_lib.flow.flow_step`: the extra loss of ``help``
    (weight included), read from the hidden map the step's forward pass just kept. ``None``
    for ``method="none"``."""
    if help.method == "none":
        return None
    net = model.net
    if help.method == "repa" and (encoder is None or net.projector is None):
        raise ValueError("REPA needs a frozen encoder and a model built with a projector "
                         "(build_model(..., HelpConfig(method='repa')))")

    def aux(x1: torch.Tensor) -> torch.Tensor:
        if help.method == "repa":
            return help.weight * repa_loss(net.hidden, encoder_targets(encoder, x1), net.projector)
        return help.weight * dispersive_loss(net.hidden, help.tau)

    return aux


# --------------------------------------------------------------------------------------
# Self-guidance: clusters as labels
# --------------------------------------------------------------------------------------
@torch.no_grad()
def global_features(encoder: ConvBackbone, images: torch.Tensor, *, normalise: bool = True,
                    batch_size: int = 500) -> torch.Tensor:
    """One vector per image: the encoder's last map, average-pooled (and L2-normalised unless
    ``normalise=False``), ``(N, 128)``, from uint8 or [0, 1] ``images`` ``(N, 3, H, W)``."""
    encoder.eval()
    out = torch.cat([F.adaptive_avg_pool2d(encoder.features(to_float(images[i:i + batch_size]))[2], 1).flatten(1)
                     for i in range(0, len(images), batch_size)])
    return F.normalize(out, dim=1) if normalise else out


def cluster_labels(features: torch.Tensor, k: int, *, seed: int = 0):
    """k-means (scikit-learn, k-means++ and 4 restarts) on ``features`` ``(N, D)``: returns
    ``(labels (N, 1) int64, centres (k, D))``, the labels shaped as one "attribute" for
    :class:`~course_lib.diffusion_unet.ConditionalUNet`."""
    from sklearn.cluster import KMeans

    if not 2 <= k <= len(features):
        raise ValueError(f"k must be between 2 and the number of images ({len(features)}), got {k}")
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(features.double().numpy())
    return torch.from_numpy(km.labels_.astype(np.int64))[:, None], torch.from_numpy(km.cluster_centers_).float()


def draw_conditions(labels: torch.Tensor, n: int, *, seed: int) -> torch.Tensor:
    """``n`` rows of ``labels`` ``(N, K)`` drawn with replacement (seeded): conditions with the
    training set's frequencies, for sampling without choosing any."""
    g = torch.Generator().manual_seed(seed)
    return labels[torch.randint(len(labels), (n,), generator=g)]


__all__ = ["METHODS", "HelpConfig", "HiddenUNet", "projector", "build_model", "repa_loss", "dispersive_loss",
           "encoder_targets", "help_term", "global_features", "cluster_labels", "draw_conditions"]
