"""Applications of the course's models (article section 5), as small measurable functions.

- **Editing**: a latent attribute direction (mean ``mu`` of faces with the attribute minus
  mean ``mu`` of faces without it; White 2016, "Sampling generative networks"; Radford et
  al. 2016 did the same vector arithmetic with DCGAN) and the edited decodings.
- **Anomaly detection**: one score per image from each model (higher = more anomalous):
  the VAE's negative ELBO, the inpainting error over a fixed set of holes, minus the GAN
  discriminator's logit; :func:`auroc` and :func:`roc_curve` compare them.
- **Data augmentation**: an attribute classifier trained on N real images vs on N real +
  generated images whose labels come from the ToyFaces attribute network
  (:func:`course_lib.feature_net.load_feature_net`), scored on real test images.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from course_lib.images import to_float
from course_lib.inpainting import InpaintingNet, fill_hole
from course_lib.masks import make_masks
from course_lib.pretext import BackboneClassifier, RotationConfig, train_supervised
from course_lib.profiles import choose
from course_lib.runtime import runtime, seed_everything
from course_lib.toyfaces import ATTRIBUTES
from course_lib.vae import VAE, kl_divergence, reconstruction_loss


def _as_float(images: torch.Tensor, device) -> torch.Tensor:
    x = images.to(device)
    return to_float(x)


# ---------------------------------------------------------------------------- editing
def attribute_direction(mu: torch.Tensor, has_attribute: torch.Tensor) -> torch.Tensor:
    """Latent direction of a binary attribute: mean of ``mu`` where it is present minus
    mean where it is absent. ``mu``: (N, D); ``has_attribute``: (N,) bool or 0/1.
    Returns (D,). Raises ValueError when one of the two groups is empty."""
    has = has_attribute.bool()
    if mu.dim() != 2 or has.shape != (mu.shape[0],):
        raise ValueError(f"expected mu (N, D) and has_attribute (N,), got {tuple(mu.shape)} "
                         f"and {tuple(has_attribute.shape)}")
    if has.all() or not has.any():
        raise ValueError("both groups (with and without the attribute) need at least one face")
    return mu[has].mean(0) - mu[~has].mean(0)


@torch.no_grad()
def edit_faces(vae: VAE, images: torch.Tensor, direction: torch.Tensor,
               alphas: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0)) -> torch.Tensor:
    """Decode ``mu(x) + alpha * direction`` for each alpha: (len(alphas), B, 3, H, W) in (0, 1).
    ``images``: (B, 3, H, W) float in [0, 1] or uint8."""
    vae.eval()
    device = next(vae.parameters()).device
    mu, _ = vae.encoder(_as_float(images, device))                       # (B, D)
    d = direction.to(device)
    return torch.stack([vae.decode(mu + a * d) for a in alphas]).cpu()   # (A, B, 3, H, W)


# ------------------------------------------------------------------ anomaly detection
def auroc(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random anomaly scores higher than a
    random normal image (ties count one half; Mann-Whitney U / (n0 * n1)). 1 = perfect,
    0.5 = chance. Both inputs are 1-D score tensors, higher = more anomalous."""
    a, b = normal_scores.double().flatten(), anomaly_scores.double().flatten()
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError("auroc needs at least one normal and one anomalous score")
    greater = (b[:, None] > a[None, :]).double().sum()
    ties = (b[:, None] == a[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (a.numel() * b.numel()))


def roc_curve(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(false positive rate, true positive rate) over all thresholds, for plotting."""
    scores = torch.cat([normal_scores, anomaly_scores]).double()
    truth = torch.cat([torch.zeros(len(normal_scores)), torch.ones(len(anomaly_scores))]).double()
    order = torch.argsort(scores, descending=True)
    tp = torch.cumsum(truth[order], 0)
    fp = torch.cumsum(1 - truth[order], 0)
    zero = torch.zeros(1, dtype=torch.double)
    return torch.cat([zero, fp / len(normal_scores)]), torch.cat([zero, tp / len(anomaly_scores)])


@torch.no_grad()
def vae_scores(vae: VAE, images: torch.Tensor, *, samples: int = 4, seed: int = 0,
               batch_size: int = 250) -> torch.Tensor:
    """Negative ELBO per image (nats), averaged over ``samples`` draws of z: (N,) on CPU."""
    vae.eval()
    device = next(vae.parameters()).device
    torch.manual_seed(seed)
    out = []
    for i in range(0, len(images), batch_size):
        x = _as_float(images[i:i + batch_size], device)
        total = torch.zeros(len(x), device=device)
        for _ in range(samples):
            x_logits, mu, logvar = vae(x)  # per-image terms of chapter 02's negative ELBO
            total += reconstruction_loss(x_logits, x) + kl_divergence(mu, logvar)
        out.append((total / samples).cpu())
    return torch.cat(out)


@torch.no_grad()
def inpainting_scores(model: InpaintingNet, images: torch.Tensor, *, kinds=("center", "half"),
                      coverage: float = 0.25, batch_size: int = 250) -> torch.Tensor:
    """Mean squared error inside the hole, averaged over fixed masks (a centre block and the
    bottom half by default): a face the network cannot complete is unusual. (N,) on CPU."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = _as_float(images[i:i + batch_size], device)
        err = torch.zeros(len(x), device=device)
        for kind in kinds:
            mask = make_masks(kind, batch=len(x), image_size=x.shape[-1],
                              coverage=0.5 if kind == "half" else coverage, seed=0, device=device)
            x_hat = model(fill_hole(x, mask), mask)
            err += ((x_hat - x) ** 2 * mask).flatten(1).sum(1) / (mask.flatten(1).sum(1) * 3)
        out.append((err / len(kinds)).cpu())
    return torch.cat(out)


@torch.no_grad()
def discriminator_scores(discriminator: nn.Module, images: torch.Tensor, *,
                         batch_size: int = 250) -> torch.Tensor:
    """Minus the discriminator's logit (or critic score): "looks fake" = anomalous. (N,)."""
    discriminator.eval()
    device = next(discriminator.parameters()).device
    return torch.cat([-discriminator(_as_float(images[i:i + batch_size], device)).flatten().cpu()
                      for i in range(0, len(images), batch_size)])


# ------------------------------------------------------------------ data augmentation
@dataclass(frozen=True)
class AugmentConfig:
    real_sizes: tuple[int, ...] = (100, 400)  # N real labelled images (small N: where augmentation could help)
    generated_per_real: int = 1   # generated images added per real one, labelled by the attribute network
    steps: int = 250              # classifier steps (the same with and without generated data)
    batch_size: int = 64          # images per step
    lr: float = 2e-3              # Adam
    seeds: tuple[int, ...] = (0, 1, 2)  # classifier seeds; mean and spread are reported

    @classmethod
    def for_profile(cls, name: str | None = None) -> "AugmentConfig":
        return choose(smoke=cls(real_sizes=(48,), steps=5, batch_size=16, seeds=(0,)),
                      cpu=cls(),
                      gpu=cls(real_sizes=(100, 500, 2000), steps=2000),
                      profile=name)


def train_attribute_classifier(images: torch.Tensor, labels: torch.Tensor, config: AugmentConfig,
                               *, seed: int, device=None) -> BackboneClassifier:
    """Chapter 05's BackboneClassifier with one head per ToyFaces attribute, trained on
    ``images`` (uint8 (N, 3, S, S)) and ``labels`` (int64 (N, A)) by chapter 05's
    :func:`~course_lib.pretext.train_supervised` with this config's steps, batch and lr
    (``steps=0``: the untrained network, a chance-level control)."""
    seed_everything(seed)
    model = BackboneClassifier(num_classes=tuple(a.num_classes for a in ATTRIBUTES))
    if config.steps == 0:
        return model.to(runtime(device).device).eval()
    supervised = replace(RotationConfig(), image_size=images.shape[-1], train_size=len(images),
                         batch_size=config.batch_size, steps=config.steps, lr=config.lr, seed=seed)
    train_supervised(model, supervised, images=images, labels=labels, progress=False,
                     plan=runtime(device))
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: BackboneClassifier, images: torch.Tensor, labels: torch.Tensor,
                        *, batch_size: int = 500) -> float:
    """Mean over attributes of the test accuracy (labels int64 (N, A))."""
    device = next(model.parameters()).device
    preds = []
    for i in range(0, len(images), batch_size):
        parts = torch.split(model(_as_float(images[i:i + batch_size], device)), model.num_classes, dim=1)
        preds.append(torch.stack([p.argmax(1) for p in parts], 1).cpu())
    return float((torch.cat(preds) == labels).float().mean())
