"""Applications of the course's models (article section 5), as small measurable functions.

- **Editing**: a latent attribute direction (mean ``mu`` of faces with the attribute minus
  mean ``mu`` of faces without it; White 2016, "Sampling generative networks"; Radford et
  al. 2016 did the same vector arithmetic with DCGAN) and the edited decodings; whether an
  edit changes its attribute, and only it, more than a random push of the same length, at
  every step size (:func:`edit_verdicts`, :func:`edit_finding`).
- **Anomaly detection**: one score per image from each model (higher = more anomalous):
  the VAE's negative ELBO, the inpainting error over a fixed set of holes, minus the GAN
  discriminator's logit; :func:`auroc` and :func:`roc_curve` compare them.
- **Anomaly localisation**: a per-pixel heatmap, where the face is unusual: the inpainting
  error of holes slid over the image (:func:`inpainting_heatmap`) or the VAE's per-pixel
  reconstruction error (:func:`vae_heatmap`), scored against the known anomalous region
  (:func:`course_lib.facedraw.ood_region`) by a pixel-level AUROC (:func:`pixel_auroc`).
- **Restoration**: scratches and blotches with a known damage mask (:func:`damage_masks`),
  filled by the inpainter or by OpenCV (:mod:`course_lib.inpainting_eval`).
- **Data augmentation**: an attribute classifier trained on N real images vs on N real +
  generated images whose labels come from the ToyFaces attribute network
  (:func:`course_lib.feature_net.load_feature_net`), scored on real test images, with the
  controls of :data:`AUGMENT_ARMS` (:func:`augmentation_sets`, :func:`classical_augment`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve as sklearn_roc_curve
from torch import nn

from course_lib.facedraw import MIRRORED
from course_lib.images import to_float, to_uint8
from course_lib.inpainting import InpaintingNet, fill_hole
from course_lib.inputs import check_value, validate_fields
from course_lib.masks import make_masks
from course_lib.pretext import BackboneClassifier, RotationConfig, train_supervised
from course_lib.profiles import choose
from course_lib.runtime import runtime, seed_everything
from course_lib.stats import BETTER, Comparison, compare_shares
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES
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


def edit_verdicts(hits, *, alpha: float = 0.05) -> dict[tuple[str, float], Comparison]:
    """Does an edit change an attribute more often than a random push of the same length?

    ``hits[(attribute, alpha)] = (edited, pushed)``: per face, 1 where the attribute network
    reads the attribute as changed (or present) after adding ``alpha`` times the direction,
    resp. a random direction of the same length, to the same faces. One family
    (:func:`course_lib.stats.compare_shares`: paired over the faces, Holm across every key);
    "better" means the direction changes the attribute more often than the random push.
    """
    return compare_shares(hits, alpha=alpha)


def edit_finding(verdicts: dict[tuple[str, float], Comparison], *, target: str, side: str) -> str:
    """:func:`edit_verdicts` in words, at every step size: where the direction changes
    ``target`` more often than a random push, where it also changes ``side`` more often
    (it does not separate the two there), and where it is a clean edit."""
    alphas = sorted({a for (name, a) in verdicts if name == target})
    if not alphas or any((side, a) not in verdicts for a in alphas):
        raise ValueError(f"verdicts need ({target!r}, alpha) and ({side!r}, alpha) for the same alphas")

    def clause(a):
        t, s = verdicts[target, a], verdicts[side, a]
        return (f"alpha {a:g}: {target} {t.diff:+.2f} ({t.verdict}), {side} {s.diff:+.2f} ({s.verdict})")

    works = [a for a in alphas if verdicts[target, a].verdict == BETTER]
    clean = [a for a in works if verdicts[side, a].verdict != BETTER]
    text = ("Share of faces changed by the direction minus by a random push of the same length, per step size "
            "(paired over the faces, Holm over all of them): " + "; ".join(clause(a) for a in alphas) + ". ")
    if not works:
        return text + f"At no step size does the direction change {target} more often than a random push."
    listed = ", ".join(f"{a:g}" for a in works)
    if not clean:
        return text + (f"At every step size where it changes {target} more often than chance ({listed}), it also "
                       f"changes {side} more often than chance: the code does not separate the two.")
    return text + (f"It changes {target} more often than chance at {listed}, and without changing {side} more "
                   f"often than chance at {', '.join(f'{a:g}' for a in clean)}: a clean edit there.")


# ------------------------------------------------------------------ anomaly detection
def _labelled(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(truth, scores)`` for scikit-learn: 0 for a normal image, 1 for an anomaly, float64."""
    a, b = normal_scores.detach().double().flatten().cpu(), anomaly_scores.detach().double().flatten().cpu()
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError(f"{what} needs at least one normal and one anomalous score")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):  # NaN would rank as the highest score
        raise ValueError(f"{what} scores contain NaN or inf (a diverged model?); score finite values")
    return np.r_[np.zeros(a.numel()), np.ones(b.numel())], torch.cat([a, b]).numpy()


def auroc(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random anomaly scores higher than a
    random normal image (ties count one half; Mann-Whitney U / (n0 * n1)). 1 = perfect,
    0.5 = chance (also when every score is tied). Both inputs are score tensors, flattened,
    higher = more anomalous; an empty one, NaN or inf raise a ValueError. Computed by
    scikit-learn's ``roc_auc_score`` (chapter 07's exercise counts the pairs itself)."""
    return float(roc_auc_score(*_labelled(normal_scores, anomaly_scores, "auroc")))


def roc_curve(normal_scores: torch.Tensor, anomaly_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(false positive rate, true positive rate) for plotting: float64 tensors from (0, 0) to
    (1, 1), one point per distinct score as the threshold falls (tied scores move both rates
    at once, so the area under the curve is :func:`auroc`). scikit-learn's ``roc_curve``
    with every threshold kept; inputs as for :func:`auroc`."""
    fpr, tpr, _ = sklearn_roc_curve(*_labelled(normal_scores, anomaly_scores, "roc_curve"), drop_intermediate=False)
    return torch.from_numpy(fpr), torch.from_numpy(tpr)


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


# --------------------------------------------------------------- anomaly localisation
@dataclass(frozen=True)
class LocaliseConfig:
    n_images: int = 40        # anomalous faces per kind (their pixels are pooled for the AUROC)
    hole: int = 8             # side of the square hole slid over the image (pixels)
    stride: int = 4           # step between hole positions (pixels); hole / stride holes cover each pixel
    batch_size: int = 250     # images per forward pass

    def __post_init__(self) -> None:
        validate_fields(self, {"n_images": "int >= 1", "hole": "int >= 1", "stride": "int >= 1",
                               "batch_size": "int >= 1"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> LocaliseConfig:
        return choose(smoke=cls(n_images=4, hole=8, stride=8),   # 16 px images: 4 holes
                      cpu=cls(),                                  # 32 px: 7 x 7 = 49 holes
                      gpu=cls(n_images=100, hole=12, stride=4),   # 64 px: 14 x 14 = 196 holes
                      profile=name)


def hole_positions(image_size: int, hole: int, stride: int) -> list[int]:
    """Top-left offsets (one axis) of the sliding hole: every ``stride`` pixels, plus the
    last one flush with the border, so every pixel is inside at least one hole."""
    if not 0 < hole <= image_size or stride <= 0:
        raise ValueError(f"need 0 < hole <= image_size and stride > 0, got hole={hole}, "
                         f"stride={stride}, image_size={image_size}")
    starts = list(range(0, image_size - hole + 1, stride))
    return starts if starts[-1] == image_size - hole else starts + [image_size - hole]


@torch.no_grad()
def inpainting_heatmap(model: nn.Module, images: torch.Tensor, config: LocaliseConfig = LocaliseConfig(),
                       *, fill: float = 0.5) -> torch.Tensor:
    """Per-pixel inpainting error: (N, S, S) on CPU, higher = less like a typical face.

    A ``config.hole``-pixel square is slid over each image (:func:`hole_positions`); at
    every position the network fills it (``model(filled, mask)`` sees the hole painted
    ``fill``) and each pixel inside it gets its squared error, mean over the 3 channels.
    A pixel inside several holes gets the mean of its errors. ``images``: (N, 3, S, S)
    float in [0, 1] or uint8."""
    model.eval()
    device = next(model.parameters()).device
    size = images.shape[-1]
    starts = hole_positions(size, config.hole, config.stride)
    out = []
    for i in range(0, len(images), config.batch_size):
        x = _as_float(images[i:i + config.batch_size], device)             # (B, 3, S, S)
        total = torch.zeros(len(x), size, size, device=device)              # summed errors
        count = torch.zeros(size, size, device=device)                      # holes per pixel
        for top in starts:
            for left in starts:
                mask = torch.zeros(1, 1, size, size, device=device)
                mask[..., top:top + config.hole, left:left + config.hole] = 1.0
                mask = mask.expand(len(x), 1, size, size)                     # (B, 1, S, S)
                error = ((model(fill_hole(x, mask, fill), mask) - x) ** 2).mean(1)  # (B, S, S)
                total += error * mask[:, 0]
                count += mask[0, 0]
        out.append((total / count).cpu())
    return torch.cat(out)


@torch.no_grad()
def vae_heatmap(vae: VAE, images: torch.Tensor, *, batch_size: int = 250) -> torch.Tensor:
    """Per-pixel squared error of the VAE's reconstruction decode(mu(x)), mean over the 3
    channels: (N, S, S) on CPU. ``images``: (N, 3, S, S) float in [0, 1] or uint8."""
    vae.eval()
    device = next(vae.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = _as_float(images[i:i + batch_size], device)
        out.append(((vae.reconstruct(x) - x) ** 2).mean(1).cpu())              # (B, S, S)
    return torch.cat(out)


def pixel_auroc(heatmaps: torch.Tensor, regions: torch.Tensor) -> float:
    """How well a heatmap finds the anomalous region: the :func:`auroc` of the heat of
    pixels inside the region against pixels outside it, pooled over all images.
    ``heatmaps``: (N, S, S) or (N, 1, S, S); ``regions``: the same shape up to the channel,
    1 = anomalous pixel."""
    heat = heatmaps.reshape(len(heatmaps), -1)
    inside = regions.reshape(len(regions), -1).bool()
    if heat.shape != inside.shape:
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and regions {tuple(regions.shape)} "
                         "must cover the same pixels")
    return auroc(heat[~inside], heat[inside])


# -------------------------------------------------------------------------- restoration
def damage_masks(batch: int, image_size: int, *, scratches: int = 3, blotches: int = 0,
                 seed: int = 0) -> torch.Tensor:
    """Damage of old photographs, as an inpainting mask: float (batch, 1, S, S), 1 = damaged.

    ``scratches``: straight lines across the image, about 1/20 of its side wide (at least
    1.2 px); ``blotches``: discs with radii 6-11% of the side. Random positions from
    ``seed`` (a CPU generator: the same masks everywhere)."""
    check_value(batch, "int >= 1", "damage_masks: batch")
    check_value(image_size, "int >= 8", "damage_masks: image_size")
    check_value(seed, "seed", "damage_masks: seed")
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(image_size, dtype=torch.float32) + 0.5
    ys, xs = grid.view(1, -1, 1), grid.view(1, 1, -1)                       # (1, S, 1), (1, 1, S)
    mask = torch.zeros(batch, image_size, image_size)
    half_width = max(0.6, image_size / 40)
    for _ in range(scratches):
        centre = torch.rand(batch, 2, generator=g) * image_size             # a point on the line
        angle = torch.rand(batch, generator=g) * math.pi
        ny, nx = torch.cos(angle).view(-1, 1, 1), -torch.sin(angle).view(-1, 1, 1)  # the normal
        distance = ((ys - centre[:, 0].view(-1, 1, 1)) * ny + (xs - centre[:, 1].view(-1, 1, 1)) * nx).abs()
        mask = torch.maximum(mask, (distance <= half_width).float())
    for _ in range(blotches):
        centre = torch.rand(batch, 2, generator=g) * image_size
        radius = (0.06 + 0.05 * torch.rand(batch, generator=g)) * image_size
        d2 = (ys - centre[:, 0].view(-1, 1, 1)) ** 2 + (xs - centre[:, 1].view(-1, 1, 1)) ** 2
        mask = torch.maximum(mask, (d2 <= radius.view(-1, 1, 1) ** 2).float())
    return mask.unsqueeze(1)


# ------------------------------------------------------------------ data augmentation
# The training sets of the augmentation experiment, each N real faces plus N more images
# (except "real"), trained with the same steps:
AUGMENT_ARMS = {
    "real": "N real faces, true labels",
    "+VAE": "+ N VAE samples, labels from the attribute network",
    "+classical": "+ N flipped / shifted / colour-jittered copies of the N real",
    "+real pseudo": "+ N other real faces, labels from the attribute network",
    "+real true": "+ N other real faces, true labels (the upper bound)",
}
# What each comparison (arm, reference) asks, one Holm family per run:
AUGMENT_COMPARISONS = {
    ("+VAE", "real"): "do VAE samples help?",
    ("+classical", "real"): "does classical augmentation help?",
    ("+real pseudo", "real"): "do pseudo-labelled real faces help?",
    ("+real true", "real"): "do more labelled real faces help?",
    ("+VAE", "+real pseudo"): "does the samples' distribution shift cost accuracy (same labeller, other images)?",
    ("+real pseudo", "+real true"): "does the pseudo-labels' noise cost accuracy (same images, other labels)?",
}
# MIRRORED (course_lib.facedraw): the attributes whose class mirrors under a horizontal flip
# (symmetric ranges, equal-width bins)


def classical_augment(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
                      max_shift: int = 1, jitter: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """One classical augmentation of each image: a horizontal flip with probability 1/2
    (the labels of :data:`MIRRORED` attributes flipped with it, so they stay true), a shift
    of up to ``max_shift`` pixels each way (border pixels repeated), and a brightness and
    per-channel colour jitter of up to ``jitter``. ``images`` uint8 (N, 3, S, S),
    ``labels`` int64 (N, A). Returns (uint8 (N, 3, S, S), int64 (N, A)).

    On ToyFaces a shift moves the head and a colour jitter changes tones, and both are
    labels here: a shift or jitter larger than the defaults would change the true class."""
    g = torch.Generator().manual_seed(seed)
    n, size = len(images), images.shape[-1]
    x = to_float(images)                                                     # (N, 3, S, S)
    y = labels.clone()
    flip = torch.rand(n, generator=g) < 0.5
    x[flip] = x[flip].flip(-1)
    for name in MIRRORED:
        j = ATTRIBUTE_NAMES.index(name)
        y[flip, j] = ATTRIBUTES[j].num_classes - 1 - y[flip, j]
    if max_shift > 0:
        padded = F.pad(x, (max_shift,) * 4, mode="replicate")               # (N, 3, S+2k, S+2k)
        dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=g))
        x = torch.stack([padded[i, :, dy[i]:dy[i] + size, dx[i]:dx[i] + size] for i in range(n)])
    scale = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)        # brightness
    tint = 1 + jitter * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)         # colour balance
    return to_uint8((x * scale * tint).clamp(0, 1)), y


def augmentation_sets(real: tuple[torch.Tensor, torch.Tensor], *, generated: tuple[torch.Tensor, torch.Tensor],
                      extra: tuple[torch.Tensor, torch.Tensor], extra_pseudo: torch.Tensor,
                      seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The training set of every arm of :data:`AUGMENT_ARMS`: name -> (uint8 images,
    int64 labels). ``real``: the N real faces and their labels; ``generated``: M samples
    and their pseudo-labels; ``extra``: M other real faces with their true labels, and
    ``extra_pseudo`` the attribute network's labels for the same faces. Every arm but
    "real" has N + M images and starts with the same N real faces."""
    x, y = real
    if not len(generated[0]) == len(extra[0]) == len(extra_pseudo):
        raise ValueError(f"generated ({len(generated[0])}), extra ({len(extra[0])}) and extra_pseudo "
                         f"({len(extra_pseudo)}) must hold the same number of images")
    m = len(extra[0])
    copies = torch.arange(m) % len(x)                                        # N copies when M = N
    both = lambda a, b: (torch.cat([x, a]), torch.cat([y, b]))              # noqa: E731
    return {"real": (x, y),
            "+VAE": both(*generated),
            "+classical": both(*classical_augment(x[copies], y[copies], seed=seed)),
            "+real pseudo": both(extra[0], extra_pseudo),
            "+real true": both(*extra)}


# ------------------------------------------------------------------ data augmentation (classifier)
# Classification Accuracy Score (Ravuri & Vinyals 2019, ImageNet at 256 px, ResNet-50 trained on
# real images or on class-conditional samples only, tested on real validation images): (top-1, top-5) %
CAS_IMAGENET_256 = {"real data": (73.09, 91.47), "BigGAN-deep": (42.65, 65.92), "VQ-VAE-2": (54.83, 77.59)}


def cas_finding(table: dict = CAS_IMAGENET_256, *, model: str = "BigGAN-deep") -> str:
    """What a classifier trained only on ``model``'s samples lost against real data, computed
    from the published accuracies: points of top-1 and top-5, and the share of each."""
    (r1, r5), (g1, g5) = table["real data"], table[model]
    return (f"a classifier trained only on {model} samples reaches {g1:.2f}% top-1 and {g5:.2f}% top-5 accuracy "
            f"against {r1:.2f}% and {r5:.2f}% when trained on real images: {r1 - g1:.1f} points of top-1 "
            f"({(r1 - g1) / r1:.1%} of it) and {r5 - g5:.1f} points of top-5 ({(r5 - g5) / r5:.1%})")


@dataclass(frozen=True)
class AugmentConfig:
    real_sizes: tuple[int, ...] = (100, 400)  # N real labelled images (small N: where augmentation could help)
    generated_per_real: int = 1   # generated images added per real one, labelled by the attribute network
    steps: int = 200              # classifier steps, the same for every arm (250 before the control
                                  # arms: lowered so that every arm's classifiers fit the cpu budget)
    batch_size: int = 64          # images per step
    lr: float = 2e-3              # Adam
    seeds: tuple[int, ...] = (0, 1, 2)  # classifier seeds; mean and spread are reported
    control_sizes: tuple[int, ...] = (100,)  # the N at which the control arms run too (AUGMENT_ARMS
                                             # beyond real / +VAE): each costs len(seeds) classifiers

    def __post_init__(self) -> None:  # steps=0 is allowed: the untrained control
        validate_fields(self, {"real_sizes": "int >= 1", "generated_per_real": "int >= 0", "steps": "int >= 0",
                               "batch_size": "int >= 1", "lr": "float > 0", "seeds": "seed",
                               "control_sizes": "int >= 1"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> AugmentConfig:
        return choose(smoke=cls(real_sizes=(48,), steps=5, batch_size=16, seeds=(0,), control_sizes=(48,)),
                      cpu=cls(),
                      gpu=cls(real_sizes=(100, 500, 2000), steps=2000, control_sizes=(100, 500, 2000)),
                      profile=name)

    def arms(self, n: int) -> tuple[str, ...]:
        """The arms of :data:`AUGMENT_ARMS` trained at size ``n``."""
        return tuple(AUGMENT_ARMS) if n in self.control_sizes else ("real", "+VAE")


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
