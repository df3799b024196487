"""Metrics that need no download: Frechet distance, precision/recall, PSNR/SSIM, probes.

- :func:`frechet_distance` between two sets of feature vectors (Heusel et al. 2017, the
  formula behind FID). :func:`domain_frechet` computes it in the feature space of the
  ToyFaces attribute network (:mod:`course_lib.feature_net`) with a fixed sample count.
  Always report it as a *domain-specific* Frechet distance with its ``n`` and image size
  (:func:`frechet_label`): it is not comparable with Inception FID numbers in papers,
  and it is biased upward for small ``n``, so only compare numbers with the same ``n``.
- :func:`kernel_distance`: KID's polynomial-kernel MMD (Binkowski et al. 2018) on the same
  features, unbiased in ``n``.
- :func:`precision_recall`: the k-NN manifold estimate of Kynkaanniemi et al. (2019):
  precision = share of generated samples inside the real manifold (fidelity), recall =
  share of real samples inside the generated manifold (coverage). One real ball is enough
  to let a sample in, so flat and blurred images pass (the gray and blurred rows of
  ``bench/sample_quality.py``'s table show it).
- :func:`density_coverage` (Naeem et al. 2020), the published answer to that, and
  :func:`fidelity_diversity`, which computes it from images in a feature space that also
  sees texture: the course's fidelity and diversity numbers.
- :func:`psnr_per_image` (the course's one PSNR, in float64) and its mean :func:`psnr`;
  :func:`ssim` via torchmetrics; per image then averaged, optionally restricted to a mask
  (1 = hole), which is what matters for inpainting.
- :func:`grain`: the mean absolute Laplacian of images, the energy of pixel-to-pixel change,
  to set beside the real faces' (grain raises it, blur lowers it): what a sampler's last
  step leaves, which a feature-space distance may not see.
- :func:`corrupt_images` damages images on purpose and :func:`sanity_report` shows how the
  feature net's Frechet distance responds (``python -m course_lib.metrics [image_size]``).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image.kid import poly_mmd

from course_lib.feature_net import feature_net_history, load_feature_net
from course_lib.images import to_float
from course_lib.inputs import check_value
from course_lib.profiles import current_profile
from course_lib.toyfaces import ToyFaces


def _features(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().double()
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, D)``, ``(M, D)``.

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})   (Heusel et al. 2017, eq. 6)

    Computed in float64 with unbiased covariances (as torchmetrics does). The matrix
    square root uses Tr (S_a S_b)^{1/2} = Tr (S_a^{1/2} S_b S_a^{1/2})^{1/2}, where the inner
    matrix is symmetric positive semi-definite, so two symmetric eigendecompositions
    replace scipy's general ``sqrtm`` and never return complex values.
    """
    a, b = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return float(d2.clamp_min(0))


def kernel_distance(feats_a, feats_b) -> float:
    """The kernel distance behind KID (Binkowski et al. 2018): the unbiased squared maximum
    mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``, from
    torchmetrics (``poly_mmd``, what its ``KernelInceptionDistance`` averages over subsets),
    on two feature sets ``(N, D)``, ``(M, D)``, in float64. Unlike the Frechet distance it is
    unbiased in ``n``, so it can be near 0 (or slightly below) for two samples of one set."""
    a, b = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    return float(poly_mmd(a, b))


def frechet_label(n: int, image_size: int) -> str:
    """How every Frechet number in the course is labelled."""
    return f"domain Frechet distance (ToyFaces attribute features, {image_size}px, n={n}; not Inception FID)"


def _pick(images_a: torch.Tensor, images_b: torch.Tensor, n: int, net, seed: int):
    """Exactly ``n`` images of each set (a seeded subset) and the feature net to judge them."""
    for name, images in (("images_a", images_a), ("images_b", images_b)):
        if images.dim() != 4:
            raise ValueError(f"{name} must be (N, C, H, W) images, got shape {tuple(images.shape)}")
        if images.shape[0] < n:
            raise ValueError(f"{name} has {images.shape[0]} images but n={n} were asked for; "
                             f"generate more or lower n (and compare only numbers with equal n)")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if net is None:
        net = load_feature_net(images_a.shape[-1])
    g = torch.Generator().manual_seed(seed)
    a, b = (x if x.shape[0] == n else x[torch.randperm(x.shape[0], generator=g)[:n]]
            for x in (images_a, images_b))
    return a, b, net


def domain_frechet(images_a: torch.Tensor, images_b: torch.Tensor, *, n: int, net=None,
                   seed: int = 0) -> float:
    """Frechet distance of two image sets in the ToyFaces attribute-net feature space:
    :func:`sample_quality`'s ``"frechet"`` alone.

    ``images_*``: ``(N, 3, H, W)`` uint8 or float in [0, 1]; exactly ``n`` images of each
    are used (a seeded random subset when there are more), because the estimate depends
    on ``n``. ``net`` defaults to :func:`course_lib.feature_net.load_feature_net` at the
    images' size.
    """
    return sample_quality(images_a, images_b, n=n, net=net, seed=seed, scores=("frechet",))["frechet"]


def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    return torch.cat([torch.cdist(a[i:i + chunk], b) for i in range(0, a.shape[0], chunk)])


def _radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each sample to its k-th nearest *other* sample of the same set."""
    if feats.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples per set, got {feats.shape[0]}")
    d = _pairwise(feats, feats)
    return d.kthvalue(k + 1, dim=1).values  # +1: the nearest one is the sample itself (0)


def precision_recall(real_feats, fake_feats, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, eq. 1-3), k-NN manifolds.

    A set's manifold is the union of balls around its samples, each with radius = the
    distance to that sample's k-th nearest neighbour in the set. precision = share of fake
    samples inside the real manifold; recall = share of real samples inside the fake one.
    Returns ``{"precision": p, "recall": r}`` in [0, 1].
    """
    real, fake = _features(real_feats, "real_feats"), _features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    check_value(k, "int >= 1", "k (nearest neighbours)")
    r_real, r_fake = _radii(real, k), _radii(fake, k)
    d = _pairwise(fake, real)  # (M fake, N real)
    precision = (d <= r_real.unsqueeze(0)).any(dim=1).double().mean()
    recall = (d.T <= r_fake.unsqueeze(0)).any(dim=1).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real_feats, fake_feats, *, k: int = 5) -> dict[str, float]:
    """Density (fidelity) and coverage (diversity) of Naeem et al. (2020), eq. 4-5.

    Balls are drawn around the *real* samples only, radius = distance to the k-th nearest
    other real sample (``NND_k``)::

        density  = 1/(k M) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]
        coverage = 1/N     sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]

    Why not precision/recall: a fake sample counts for precision when it falls in *any*
    real ball, and a few real outliers with huge balls swallow whole regions (the gray
    image, a blur). Density counts how many real balls hold each fake, so a fake in one
    outlier's ball scores 1/k instead of 1; real vs real gives about 1, a generator that
    piles onto dense real regions can exceed 1. Coverage asks whether each real sample's
    neighbourhood holds a fake, so it needs no balls around (possibly collapsed) fakes.
    ``real_feats`` ``(N, D)``, ``fake_feats`` ``(M, D)``; returns ``{"density": >= 0,
    "coverage": in [0, 1]}``. The paper uses k=5 and N = M = 10 000; the values depend on
    N, M and k, so compare only numbers with equal ones.
    """
    real, fake = _features(real_feats, "real_feats"), _features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    inside = _pairwise(real, fake) <= _radii(real, k).unsqueeze(1)  # (N real, M fake)
    density = inside.double().sum() / (k * fake.shape[0])
    coverage = inside.any(dim=1).double().mean()
    return {"density": float(density), "coverage": float(coverage)}


def joint_features(real_blocks: dict[str, torch.Tensor], fake_blocks: dict[str, torch.Tensor]):
    """Concatenate feature blocks so that each block weighs the same: ``(real, fake)``.

    Every dimension is standardised with the *real* set's mean and standard deviation (a
    floor of 1e-3 times the block's mean deviation keeps near-constant dimensions from
    exploding), then each block is divided by sqrt(its size), so every block adds about 1
    to a real sample's squared norm however many dimensions it has.
    """
    if set(real_blocks) != set(fake_blocks):
        raise ValueError(f"feature blocks differ: {sorted(real_blocks)} vs {sorted(fake_blocks)}")
    real_parts, fake_parts = [], []
    for name in real_blocks:
        r, f = _features(real_blocks[name], f"real {name}"), _features(fake_blocks[name], f"fake {name}")
        if r.shape[1] != f.shape[1]:
            raise ValueError(f"block {name!r} has {r.shape[1]} real vs {f.shape[1]} fake dimensions")
        mean, std = r.mean(0), r.std(0)
        std = std.clamp_min(1e-3 * float(std.mean()) + 1e-12)
        real_parts.append((r - mean) / std / math.sqrt(r.shape[1]))
        fake_parts.append((f - mean) / std / math.sqrt(f.shape[1]))
    return torch.cat(real_parts, 1), torch.cat(fake_parts, 1)


def fidelity_diversity(real_images: torch.Tensor, fake_images: torch.Tensor, *, n: int, net=None,
                       k: int = 5, seed: int = 0) -> dict[str, float]:
    """Fidelity (density) and diversity (coverage) of ``fake_images`` against ``real_images``.

    :func:`density_coverage` on :func:`joint_features` of the attribute net's
    :meth:`~course_lib.feature_net.AttributeNet.layer_features`: the attribute features
    plus the texture statistics of its first two conv stages, each block weighing the
    same. In the attribute features alone, flat images of the right colours (each face's
    mean colour) and blurred faces pass as faces; the texture blocks reject them (the
    comparison is in ``tests/test_fidelity_diversity.py``'s docstring, the cases are rows of
    ``bench/sample_quality.py``'s table). Held-out real faces score about 1 on both. ``n``
    images of each set are used (a seeded subset), ``k`` = 5 as in Naeem et al. (2020).
    Returns ``{"fidelity": density >= 0, "diversity": coverage in [0, 1]}``.
    """
    real, fake, net = _pick(real_images, fake_images, n, net, seed)
    joint_real, joint_fake = joint_features(net.layer_features(real), net.layer_features(fake))
    result = density_coverage(joint_real, joint_fake, k=k)
    return {"fidelity": result["density"], "diversity": result["coverage"]}


QUALITY = ("frechet", "kid", "fidelity", "diversity")   # what the course reports for generated images
SCORES = (*QUALITY, "precision", "recall")              # and, for contrast, what flat images fool


def sample_quality(real_images: torch.Tensor, fake_images: torch.Tensor, *, n: int, net=None,
                   real_feats: torch.Tensor | None = None, scores: Sequence[str] = QUALITY, k: int = 5,
                   k_precision: int = 3, seed: int = 0) -> dict[str, float]:
    """The course's one sample scorer: ``n`` generated images against ``n`` real ones.

    ``real_images``, ``fake_images``: ``(N, 3, S, S)`` uint8 or float in [0, 1]; exactly ``n``
    of each are scored (a seeded random subset, ``seed``, when a set has more), because every
    score depends on ``n``. ``net``: the attribute net of that size (default
    :func:`course_lib.feature_net.load_feature_net`); ``real_feats``: ``net.features`` of the
    ``n`` real images when already computed (the caller scores many sets against one real set).
    ``scores``, any of :data:`SCORES`:

    - ``"frechet"``: :func:`frechet_distance` of the attribute features (label it with
      :func:`frechet_label`),
    - ``"kid"``: :func:`kernel_distance` of the same features,
    - ``"fidelity"``, ``"diversity"``: :func:`fidelity_diversity` (``k`` neighbours),
    - ``"precision"``, ``"recall"``: :func:`precision_recall` of the attribute features
      (``k_precision`` neighbours): for contrast only, flat and blurred images fool them.

    Returns ``{score: value}`` in the order of ``scores``, unrounded (:func:`sample_scores`
    rounds them as the results files store them).
    """
    unknown = [name for name in scores if name not in SCORES]
    if unknown or not scores:
        raise ValueError(f"scores must be a non-empty selection of {SCORES}, got {tuple(scores)!r}")
    real, fake, net = _pick(real_images, fake_images, n, net, seed)
    if real_feats is not None and (real is not real_images or len(real_feats) != n):
        raise ValueError(f"real_feats must be the features of the {n} real images scored, got "
                         f"{len(real_feats)} rows for {len(real_images)} real images")
    out = {}
    if any(name in scores for name in ("frechet", "kid", "precision", "recall")):
        real_feats = net.features(real) if real_feats is None else real_feats
        feats = net.features(fake)
        if "frechet" in scores:
            out["frechet"] = frechet_distance(real_feats, feats)
        if "kid" in scores:
            out["kid"] = kernel_distance(real_feats, feats)
        if "precision" in scores or "recall" in scores:
            out.update(precision_recall(real_feats, feats, k=k_precision))
    if "fidelity" in scores or "diversity" in scores:
        out.update(fidelity_diversity(real, fake, n=n, net=net, k=k))
    return {name: out[name] for name in scores}


def sample_scores(real_images: torch.Tensor, fake_images: torch.Tensor, *, net,
                  real_feats: torch.Tensor | None = None, scores: Sequence[str] = QUALITY,
                  k_precision: int = 3) -> dict[str, float]:
    """:func:`sample_quality` of as many generated images as real ones (all of them), rounded
    as the results files store them: Frechet distance to 2 decimals, the kernel distance to 4
    significant digits, the others to 3 decimals."""
    if len(real_images) != len(fake_images):
        raise ValueError(f"score as many samples as real images: {len(fake_images)} vs {len(real_images)}")
    values = sample_quality(real_images, fake_images, n=len(real_images), net=net, real_feats=real_feats,
                            scores=scores, k_precision=k_precision)
    return {name: (round(v, 2) if name == "frechet" else float(f"{v:.4g}") if name == "kid" else round(v, 3))
            for name, v in values.items()}


def _check_pair(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, data_range: float, *,
                images: bool = True):
    """``(x, y, mask)`` checked (``images``: ``(B, C, H, W)`` batches; else also ``(N, D)`` rows),
    detached, ``mask`` as float on ``x``'s device."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"expected two torch.Tensor image batches, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape or (x.dim() != 4 if images or mask is not None else x.dim() < 2):
        shapes = "(B, C, H, W) batches" if images or mask is not None else "(B, C, H, W) batches or (N, D) rows"
        raise ValueError(f"expected two {shapes} of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}: "
                         f"x_hat and x must match")
    if x.dtype != y.dtype and not (x.is_floating_point() and y.is_floating_point()):
        raise TypeError(f"x_hat and x must have the same dtype, got {x.dtype} and {y.dtype}: convert "
                        f"uint8 images with images.float() / 255")  # uint8 against float: 0..255 with 0..1
    if not (isinstance(data_range, (int, float)) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    x, y = x.detach(), y.detach()
    for name, t in (("x_hat", x), ("x", y)):  # a metric reads its values anyway: no extra sync
        if not t.numel():
            continue
        lo, hi = torch.aminmax(t)
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf")
        if lo < 0 or hi > data_range:
            raise ValueError(f"{name} must lie in [0, data_range={data_range:g}], got values in "
                             f"[{lo.item():.3g}, {hi.item():.3g}]: clamp it, or pass data_range=255 "
                             f"for 0..255 images")
    if mask is not None:
        if mask.dim() != 4 or mask.shape[0] != x.shape[0] or mask.shape[1] != 1 or mask.shape[2:] != x.shape[2:]:
            raise ValueError(f"mask must be (B, 1, H, W) = ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}), "
                             f"got {tuple(mask.shape)}")
        mask = mask.detach().float().to(x.device)
        if (mask.flatten(1).sum(1) == 0).any():
            raise ValueError("mask has an image with no hole pixels (mask is 1 = hole, 0 = known)")
    return x, y, mask


def psnr_per_image(x_hat: torch.Tensor, x: torch.Tensor, *, mask: torch.Tensor | None = None,
                   data_range: float = 1.0) -> torch.Tensor:
    """The course's one PSNR: 10 log10(data_range^2 / MSE) of each image, in dB, ``(N,)`` float64.

    ``x_hat``, ``x``: ``(B, C, H, W)`` images (or ``(N, D)`` rows of a data matrix) in
    [0, data_range], of the same shape (float dtypes may differ; uint8 against float is refused).
    With ``mask`` (``(B, 1, H, W)``, 1 = hole), the MSE is taken over the hole pixels only (all
    channels). Computed in float64; the MSE is floored at 1e-12, so identical images score
    10 log10(data_range^2 / 1e-12) (120 dB at data_range 1) instead of infinity.
    """
    x_hat, x, mask = _check_pair(x_hat, x, mask, data_range, images=False)
    se = (x_hat.double() - x.double()).pow(2)                          # (N, ...) squared errors
    if mask is None:
        mse = se.flatten(1).mean(1)                                    # (N,)
    else:
        mse = (se * mask.double()).flatten(1).sum(1) / (mask.double().flatten(1).sum(1) * x.shape[1])
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))


def psnr(x_hat: torch.Tensor, x: torch.Tensor, *, mask: torch.Tensor | None = None,
         data_range: float = 1.0) -> float:
    """Mean over images of :func:`psnr_per_image`, in dB (one number for a batch)."""
    return float(psnr_per_image(x_hat, x, mask=mask, data_range=data_range).mean())


def ssim(x_hat: torch.Tensor, x: torch.Tensor, *, mask: torch.Tensor | None = None,
         data_range: float = 1.0, kernel_size: int = 7) -> float:
    """Mean SSIM (Wang et al. 2004) over images; with ``mask``, averaged over the hole only.

    ``kernel_size`` 7 (Gaussian, sigma 1.5) suits the course's 32-64 px images (the usual
    11 is for photos of hundreds of pixels).
    """
    if not (isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2):
        raise ValueError(f"kernel_size must be an odd positive int (the window has a centre pixel), "
                         f"got {kernel_size!r}")
    x_hat, x, mask = _check_pair(x_hat, x, mask, data_range)
    x_hat, x = x_hat.float(), x.float()
    if min(x.shape[-2:]) < kernel_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} px are smaller than kernel_size={kernel_size}")
    _, full = structural_similarity_index_measure(x_hat, x, data_range=data_range, kernel_size=kernel_size,
                                                  return_full_image=True, reduction="none")
    smap = full.mean(1, keepdim=True)  # (B, 1, H, W) SSIM map, averaged over channels
    if mask is None:
        return float(smap.flatten(1).mean(1).mean())
    return float(((smap * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)).mean())


def grain(images: torch.Tensor) -> float:
    """Mean absolute 4-neighbour Laplacian of ``images`` ``(B, C, H, W)`` (uint8, or floats in
    [0, 1]), over the interior pixels: 0 for flat images, larger for grain and noise, smaller
    for blur. Compare with the same statistic of real images of the same size."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or min(images.shape[-2:]) < 3:
        raise ValueError(f"grain expects a (B, C, H, W) image tensor with H, W >= 3, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    lap = (x[..., 1:-1, :-2] + x[..., 1:-1, 2:] + x[..., :-2, 1:-1] + x[..., 2:, 1:-1]
           - 4 * x[..., 1:-1, 1:-1])                                      # (B, C, H-2, W-2)
    return lap.abs().mean().item()


def corrupt_images(images: torch.Tensor, *, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """Damage images on purpose, to check that a metric notices (``tests/test_feature_net.py``).

    ``images``: ``(N, 3, H, W)`` uint8 or float in [0, 1]; returns float in [0, 1].
    ``kind``: ``"noise"`` (Gaussian, std = ``strength``), ``"blur"`` (Gaussian blur,
    sigma = ``strength`` pixels) or ``"shuffle"`` (a share ``strength`` of the images has
    its 4x4 grid of tiles permuted at random).
    """
    from torchvision.transforms.functional import gaussian_blur

    x = to_float(images).clone()  # (B, 3, H, W) in [0, 1], a copy: corrupted in place below
    check_value(strength, "float", "strength")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (x + strength * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)
    if kind == "blur":
        if strength == 0:
            return x
        size = 2 * math.ceil(3 * strength) + 1
        return gaussian_blur(x, [size, size], [strength, strength])
    if kind == "shuffle":
        if not 0 <= strength <= 1:
            raise ValueError(f"shuffle strength is a share of images in [0, 1], got {strength}")
        n, c, h, w = x.shape
        if h % 4 or w % 4:
            raise ValueError(f"shuffle needs H and W divisible by 4, got {h}x{w}")
        th, tw = h // 4, w // 4
        chosen = torch.randperm(n, generator=g)[:round(strength * n)]
        tiles = x[chosen].reshape(-1, c, 4, th, 4, tw).permute(0, 2, 4, 1, 3, 5).reshape(-1, 16, c, th, tw)
        perms = torch.stack([torch.randperm(16, generator=g) for _ in range(len(chosen))]) if len(chosen) else \
            torch.zeros(0, 16, dtype=torch.long)
        tiles = torch.gather(tiles, 1, perms.to(x.device).view(-1, 16, 1, 1, 1).expand_as(tiles))
        x[chosen] = tiles.reshape(-1, 4, 4, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(-1, c, h, w)
        return x
    raise ValueError(f"kind must be 'noise', 'blur' or 'shuffle', got {kind!r}")


def sanity_report(image_size: int | None = None, *, n: int = 1000) -> str:
    """The feature net's validation accuracy and the Frechet distance's response to damage, as text.

    Run it with ``python -m course_lib.metrics [image_size]`` (current profile). The
    corrupted sets are *other* faces than the reference set, so strength 0 shows the
    sampling floor of two clean sets at this ``n``.
    """
    net = load_feature_net(image_size)
    size = net.image_size
    last = feature_net_history(net)[-1]
    ref = ToyFaces(split="test", size=n, image_size=size, seed=0).images
    other = ToyFaces(split="val", size=n, image_size=size, seed=1).images
    lines = [f"feature net {size}px, profile {current_profile()}: mean validation accuracy "
             f"{last['val_acc_mean']:.3f} over {len(net.num_classes)} attributes",
             "  " + ", ".join(f"{k[8:]} {v:.2f}" for k, v in last.items() if k.startswith("val_acc/")),
             f"{frechet_label(n, size)} between clean test faces and damaged other faces:"]
    for kind, strengths in (("noise", (0.0, 0.05, 0.1, 0.2)), ("blur", (0.0, 0.5, 1.0, 2.0)),
                            ("shuffle", (0.0, 0.25, 0.5, 1.0))):
        values = [domain_frechet(ref, corrupt_images(other, kind=kind, strength=s), n=n, net=net)
                  for s in strengths]
        lines.append(f"  {kind:8s} " + "  ".join(f"{s:g}: {v:.1f}" for s, v in zip(strengths, values)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(sanity_report(int(sys.argv[1]) if len(sys.argv) > 1 else None))
