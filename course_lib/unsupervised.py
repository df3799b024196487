"""Classical unsupervised learning on images, for chapter 01 (and the PCA baseline of 02).

- PCA by singular value decomposition (Pearson 1901): fit, project, reconstruct. PCA is the
  optimal *linear* autoencoder: with k components, the projection ``codes = (x - mean) W^T``
  and the reconstruction ``x_hat = codes W + mean`` minimise the squared error among all
  rank-k linear maps. Chapter 02's VAE is the nonlinear, probabilistic version of it.
- Cluster purity: how well clusters (K-Means, Lloyd 1982) agree with a known attribute.
- PSNR tables: reconstruction quality in decibels, the number compared across chapters.

Images enter as ``(N, C, H, W)`` (uint8 in [0, 255] or float in [0, 1]) and are flattened to
rows of a data matrix ``X`` ``(N, C*H*W)`` with values in [0, 1].
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch


def as_matrix(images: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` (uint8 or float) -> float64 data matrix ``(N, C*H*W)`` in [0, 1]."""
    if images.dim() < 2:
        raise ValueError(f"expected images (N, C, H, W) or a matrix (N, D), got {tuple(images.shape)}")
    x = images.double() / 255.0 if images.dtype == torch.uint8 else images.double()
    return x.flatten(1)


class PCA(NamedTuple):
    mean: torch.Tensor                # (D,) the data mean
    components: torch.Tensor          # (k, D) orthonormal rows, largest variance first
    explained_variance: torch.Tensor  # (k,) variance of the data along each component


def pca_fit(x: torch.Tensor, k: int) -> PCA:
    """PCA with ``k`` components by SVD of the centred data matrix ``x`` ``(N, D)``.

    X - mean = U S V^T; the components are the first k rows of V^T and the variance along
    component j is S_j^2 / (N - 1) (what scikit-learn's ``PCA`` reports). Signs are fixed
    so that the largest-magnitude entry of each component is positive (SVD signs are
    arbitrary).
    """
    x = as_matrix(x) if x.dim() != 2 else x.double()
    n, d = x.shape
    if not 1 <= k <= min(n, d):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(n, d)}, got {k}")
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    vt = vt[:k]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
    return PCA(mean, vt * signs, s[:k].pow(2) / (n - 1))


def pca_project(x: torch.Tensor, pca: PCA) -> torch.Tensor:
    """Codes ``(N, k)``: coordinates of the centred data along the components."""
    x = as_matrix(x) if x.dim() != 2 else x.double()
    return (x - pca.mean) @ pca.components.T


def pca_reconstruct(codes: torch.Tensor, pca: PCA) -> torch.Tensor:
    """Back to data space: ``(N, k)`` codes -> ``(N, D)`` rows (not clipped)."""
    return codes.double() @ pca.components + pca.mean


def psnr_per_image(x_hat: torch.Tensor, x: torch.Tensor, *, max_value: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each row/image, ``(N,)``: 10 log10(max^2 / MSE). Inputs in [0, max_value]."""
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} must match")
    mse = (x_hat.double() - x.double()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(max_value ** 2 / mse)


def pca_psnr_table(train: torch.Tensor, test: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Fit PCA on ``train`` images once and report the mean test PSNR (dB) for each k.

    Reconstructions are clipped to [0, 1], as a decoder's sigmoid output would be.
    """
    x_train, x_test = as_matrix(train), as_matrix(test)
    full = pca_fit(x_train, max(ks))
    table = {}
    for k in ks:
        pca = PCA(full.mean, full.components[:k], full.explained_variance[:k])
        x_hat = pca_reconstruct(pca_project(x_test, pca), pca).clamp(0, 1)
        table[int(k)] = psnr_per_image(x_hat, x_test).mean().item()
    return table


def cluster_purity(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """Purity of a clustering against known labels, in [0, 1].

    purity = (1/N) * sum over clusters c of max over labels l of |{i : c_i = c, y_i = l}|:
    each cluster votes for its most common label; purity is the fraction of points that
    match their cluster's vote. 1 = every cluster is pure. A single cluster scores the
    frequency of the majority label (the baseline to beat).
    """
    clusters, labels = torch.as_tensor(clusters).long().flatten(), torch.as_tensor(labels).long().flatten()
    if clusters.shape != labels.shape or clusters.numel() == 0:
        raise ValueError(f"clusters and labels must be non-empty and the same length, "
                         f"got {tuple(clusters.shape)} and {tuple(labels.shape)}")
    _, c = torch.unique(clusters, return_inverse=True)
    _, y = torch.unique(labels, return_inverse=True)
    counts = torch.zeros(int(c.max()) + 1, int(y.max()) + 1, dtype=torch.long)
    counts.index_put_((c, y), torch.ones_like(c), accumulate=True)  # (clusters, labels) contingency
    return counts.max(1).values.sum().item() / clusters.numel()


def majority_baseline(labels: torch.Tensor) -> float:
    """Frequency of the most common label: the purity of putting everything in one cluster."""
    labels = torch.as_tensor(labels).long().flatten()
    return torch.bincount(labels - labels.min()).max().item() / labels.numel()
