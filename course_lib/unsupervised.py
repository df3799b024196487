"""Classical unsupervised learning on images, for chapter 01 (and the PCA baseline of 02).

- PCA by singular value decomposition (Pearson 1901): fit, project, reconstruct. PCA is the
  optimal *linear* autoencoder: with k components, the projection ``codes = (x - mean) W^T``
  and the reconstruction ``x_hat = codes W + mean`` minimise the squared error among all
  rank-k linear maps. Chapter 02's VAE is the nonlinear, probabilistic version of it.
- A linear autoencoder trained by gradient descent (:func:`train_linear_autoencoder`): its
  error reaches PCA's and its decoder spans PCA's subspace (Baldi & Hornik 1989), which
  :func:`subspace_overlap` measures, so chapter 01 shows the optimality instead of asserting it.
- Cluster purity: how well clusters (K-Means, Lloyd 1982) agree with a known attribute, and
  beside it the information scores that purity cannot replace (:func:`cluster_scores`):
  normalised mutual information, the adjusted Rand index and a G-test of independence, read
  out in words by :func:`cluster_finding`. Purity is blind to an attribute whose majority
  class wins the vote in every cluster; mutual information is not.
- PSNR tables: reconstruction quality in decibels, the number compared across chapters
  (:func:`course_lib.metrics.psnr_per_image`, importable from here too).

Images enter as ``(N, C, H, W)`` (uint8 in [0, 255] or float in [0, 1]) and are flattened to
rows of a data matrix ``X`` ``(N, C*H*W)`` with values in [0, 1].
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy.stats import chi2_contingency
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch import nn

from .loop import Budget, train
from .metrics import psnr_per_image  # the course's one PSNR (chapters 01 and 02 import it from here)
from .runtime import backward_step, runtime
from .stats import holm_adjusted


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
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= min(n, d):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(n, d)}, got {k}")
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    vt = vt[:k]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
    return PCA(mean, vt * signs, s[:k].pow(2) / (n - 1))


def pca_project(x: torch.Tensor, pca: PCA) -> torch.Tensor:
    """Codes ``(N, k)``: coordinates of the centred data along the components."""
    x = as_matrix(x) if x.dim() != 2 else x.double()
    if x.shape[1] != pca.mean.shape[0]:
        raise ValueError(f"x has {x.shape[1]} values per row but the PCA was fitted on {pca.mean.shape[0]}: "
                         f"project images of the size (and channels) it was fitted on")
    return (x - pca.mean) @ pca.components.T


def pca_reconstruct(codes: torch.Tensor, pca: PCA) -> torch.Tensor:
    """Back to data space: ``(N, k)`` codes -> ``(N, D)`` rows (not clipped)."""
    return codes.double() @ pca.components + pca.mean


def pca_psnr_per_image(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Test PSNR (dB) of every test image, ``(N,)``, for PCA with ``k`` components fitted on
    ``train``; reconstructions clipped to [0, 1]. Per image, so that a model can be compared
    with PCA on the same images (paired differences)."""
    x_train, x_test = as_matrix(train), as_matrix(test)
    pca = pca_fit(x_train, k)
    return psnr_per_image(pca_reconstruct(pca_project(x_test, pca), pca).clamp(0, 1), x_test)


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
    if labels.numel() == 0:
        raise ValueError("majority_baseline needs at least one label, got none")
    return torch.bincount(labels - labels.min()).max().item() / labels.numel()


class ClusterScore(NamedTuple):
    """How a clustering relates to one attribute (one row of :func:`cluster_scores`)."""
    attribute: str
    classes: int        # classes the attribute takes in the data
    baseline: float     # share of the majority class: the purity of one single cluster
    purity: float
    gain: float         # purity - baseline
    nmi: float          # normalised mutual information, 0 (independent) .. 1 (one determines the other)
    ari: float          # adjusted Rand index: 0 for chance agreement, 1 for identical partitions
    p_adjusted: float   # G-test of independence (cluster x attribute table), Holm over the attributes


def cluster_scores(clusters: torch.Tensor, labels: torch.Tensor, names: Sequence[str]) -> list[ClusterScore]:
    """Purity, its gain over one cluster, NMI, ARI and an independence test per attribute.

    ``clusters``: int ``(N,)``; ``labels``: int ``(N, A)``, one column per name in ``names``.
    Purity lets each cluster vote for its majority class, so an attribute whose majority class
    wins in every cluster gains nothing even when the clusters' class frequencies differ;
    normalised mutual information (scikit-learn's arithmetic normalisation) and the adjusted
    Rand index see that dependence. The G-test (the likelihood-ratio test of independence of
    the clusters x classes table, ``G = 2 N MI`` in nats, chi-squared with (C-1)(L-1) degrees
    of freedom) asks whether it is more than chance; Holm corrects across the attributes.
    Rows come in the order of ``names``.
    """
    clusters = torch.as_tensor(clusters).long().flatten()
    labels = torch.as_tensor(labels).long()
    labels = labels[:, None] if labels.dim() == 1 else labels
    if labels.dim() != 2 or labels.shape[0] != clusters.numel() or labels.shape[1] != len(names):
        raise ValueError(f"labels must be (N, A) = ({clusters.numel()}, {len(names)}) for {len(names)} names, "
                         f"got {tuple(labels.shape)}")
    c = clusters.numpy()
    rows, pvalues = [], []
    for j, name in enumerate(names):
        y = labels[:, j]
        table = np.zeros((int(c.max()) + 1, int(y.max()) + 1))
        np.add.at(table, (c, y.numpy()), 1)
        table = table[table.sum(1) > 0][:, table.sum(0) > 0]          # clusters and classes that occur
        if min(table.shape) < 2:                                        # one cluster or one class: no test
            pvalues.append(1.0)
        else:
            pvalues.append(float(chi2_contingency(table, correction=False, lambda_="log-likelihood").pvalue))
        p, base = cluster_purity(clusters, y), majority_baseline(y)
        rows.append((name, int(table.shape[1]), base, p, p - base,
                     float(normalized_mutual_info_score(y.numpy(), c)), float(adjusted_rand_score(y.numpy(), c))))
    return [ClusterScore(*row, float(q)) for row, q in zip(rows, holm_adjusted(pvalues))]


def cluster_finding(scores: Sequence[ClusterScore], *, alpha: float = 0.05, flat: float = 0.005) -> str:
    """What the clustering follows, in one paragraph, from :func:`cluster_scores`' rows.

    Ranks the attributes by NMI, names the attributes where purity gains at most ``flat``
    while the independence test still rejects (purity is blind there, and says why), and
    the attributes with no dependence the test can detect.
    """
    if not scores:
        raise ValueError("cluster_finding needs at least one ClusterScore")
    ranked = sorted(scores, key=lambda s: -s.nmi)
    top, bottom = ranked[0], ranked[-1]
    text = (f"Ranked by normalised mutual information, the clusters follow {top.attribute} most "
            f"(NMI {top.nmi:.3f}, purity gain {top.gain:+.3f}) and {bottom.attribute} least "
            f"(NMI {bottom.nmi:.3f}, purity gain {bottom.gain:+.3f}).")
    blind = [s for s in ranked if s.gain <= flat and s.p_adjusted <= alpha]
    if blind:
        parts = [f"{s.attribute} (majority class {s.baseline:.0%}, NMI {s.nmi:.3f}, Holm p {s.p_adjusted:.2g})"
                 for s in blind]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        text += (f" Purity misses part of it: for {listed} the purity gain is at most {flat}, yet the clusters "
                 "are not independent of the attribute: its majority class wins the vote in every cluster, so "
                 "purity cannot move, while the class frequencies still differ between clusters (NMI says by "
                 "how much).")
    none = [s.attribute for s in ranked if s.p_adjusted > alpha]
    text += (f" No dependence the test can detect (Holm p > {alpha}): {', '.join(none)}." if none else
             f" Every attribute depends on the clusters beyond chance (Holm p <= {alpha}); NMI says how much.")
    return text


class LinearAutoencoder(nn.Module):
    """``x_hat = decoder(encoder(x - mean)) + mean`` with linear maps and no biases:
    ``(N, D)`` -> codes ``(N, k)`` -> ``(N, D)``. The mean is fixed (the data mean), so the
    model can only learn what PCA chooses: a rank-k map of the centred data."""

    def __init__(self, *, dim: int, k: int, mean: torch.Tensor):
        super().__init__()
        self.encoder = nn.Linear(dim, k, bias=False)
        self.decoder = nn.Linear(k, dim, bias=False)
        self.register_buffer("mean", mean.float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x - self.mean)) + self.mean          # (N, D)


def train_linear_autoencoder(x: torch.Tensor, k: int, *, steps: int = 500, lr: float = 3e-3, seed: int = 0):
    """Fit a :class:`LinearAutoencoder` with ``k`` code units to the data matrix ``x`` ``(N, D)``
    by full-batch Adam on the mean squared error, through :func:`course_lib.loop.train`.
    Returns ``(model, history)``; ``history`` records ``mse`` (per value, like PCA's)."""
    x = (as_matrix(x) if x.dim() != 2 else x).float()
    torch.manual_seed(seed)
    model = LinearAutoencoder(dim=x.shape[1], k=k, mean=x.mean(0))
    for layer in (model.encoder, model.decoder):                         # small start: no early blow-up
        nn.init.normal_(layer.weight, std=0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch):
        loss = (model(batch) - batch).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        backward_step(loss, optimizer)
        return {"mse": loss.detach()}

    history = train(step, itertools.repeat(x), budget=Budget(steps=steps), progress=False, every=max(steps // 20, 1),
                    desc="linear autoencoder", plan=runtime("cpu", amp="off", channels_last=False, compile=False))
    return model.eval(), history


def subspace_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """How much of the subspace spanned by the rows of ``a`` ``(k, D)`` lies in that of ``b``
    ``(m, D)``: the mean squared cosine of the principal angles, in [0, 1] (1: ``a``'s span is
    inside ``b``'s; a random k-dim subspace of R^D scores about m / D)."""
    qa = torch.linalg.qr(a.double().T).Q                                   # (D, k) orthonormal
    qb = torch.linalg.qr(b.double().T).Q                                   # (D, m)
    return (qa.T @ qb).pow(2).sum().item() / qa.shape[1]
