"""Checkers for chapter 01: PCA by SVD (matching scikit-learn) and cluster purity."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..unsupervised import cluster_purity, pca_fit, pca_project, pca_reconstruct
from .core import ExerciseError, own_work, passed, run_student


def _pca_data() -> torch.Tensor:
    """60 points in 12-D with a clear 3-D structure and a mean far from 0 (float64)."""
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(3, 12, generator=g, dtype=torch.float64)
    scales = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    x = (torch.randn(60, 3, generator=g, dtype=torch.float64) * scales) @ basis
    return x + 0.05 * torch.randn(60, 12, generator=g, dtype=torch.float64) + 2.0


def _same_up_to_sign(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-6) -> bool:
    """Columns of ``a`` equal columns of ``b`` up to a sign flip per column."""
    if a.shape != b.shape:
        return False
    a, b = a.double(), b.double()
    return bool(torch.minimum((a - b).abs().amax(0), (a + b).abs().amax(0)).max() < tol)


@own_work(pca_fit, pca_project, pca_reconstruct)
def check_pca(student: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``pca_by_svd(x, k) -> (codes (N, k), x_hat (N, D))`` must match PCA (scikit-learn's
    up to the sign of each component). float32 answers are compared at float32's precision."""
    name = "pca_by_svd"
    x, k = _pca_data(), 2
    result = run_student(name, student, x.clone(), k)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ExerciseError(f"{name}: return a pair (codes, x_hat), got {type(result).__name__}.")
    codes, x_hat = (torch.as_tensor(r) for r in result)
    # float64 data gives float64 answers to 1e-6; an answer computed in float32 (x.float())
    # is just as right, to float32's ~1e-7 relative precision, a few 1e-6 here
    single = any(r.dtype not in (torch.float64, torch.complex128) for r in (codes, x_hat))
    codes, x_hat = codes.double(), x_hat.double()
    tol = 1e-4 * max(1.0, x.abs().max().item()) if single else 1e-6
    pca = pca_fit(x, k)
    ref_codes = pca_project(x, pca)
    ref_x_hat = pca_reconstruct(ref_codes, pca)
    n, d = x.shape
    if codes.shape != (n, k):
        hint = ""
        if codes.shape == (n, n) or codes.shape == (n, d):
            hint = " Keep only the first k components."
        if codes.shape == (k, n) or codes.shape == (d, k):
            hint = " Project the rows: codes = (x - mean) @ V[:k].T, where V^T comes from torch.linalg.svd."
        raise ExerciseError(f"{name}: codes should have shape (N, k) = {(n, k)}, got {tuple(codes.shape)}.{hint}")
    if x_hat.shape != x.shape:
        raise ExerciseError(f"{name}: x_hat should have the data's shape {tuple(x.shape)}, got {tuple(x_hat.shape)}.")
    if not _same_up_to_sign(codes, ref_codes, tol):
        uncentred = x @ pca.components.T
        _, _, vt = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        smallest = (x - x.mean(0)) @ vt[-k:].T
        columns = (x - x.mean(0)) @ vt[:, :k]
        _, _, vt_raw = torch.linalg.svd(x, full_matrices=False)
        no_centre = x @ vt_raw[:k].T
        if _same_up_to_sign(codes, uncentred, tol) or _same_up_to_sign(codes, no_centre, tol):
            hint = "centre the data first: subtract the mean of each feature (x - x.mean(0))."
        elif _same_up_to_sign(codes, smallest, tol):
            hint = "you kept the smallest components; SVD sorts singular values largest first, keep V^T[:k]."
        elif _same_up_to_sign(codes, columns, tol):
            hint = "the components are the ROWS of V^T (Vh[:k]), not its columns."
        elif _same_up_to_sign(codes / codes.std(0).clamp_min(1e-12), ref_codes / ref_codes.std(0), tol):
            hint = "the codes are rescaled; project onto the unit-length components without dividing by S."
        else:
            hint = "codes = (x - mean) @ Vh[:k].T with U, S, Vh = torch.linalg.svd(x - mean, full_matrices=False)."
        raise ExerciseError(f"{name}: the codes do not match PCA's (up to sign). Hint: {hint}")
    if not torch.allclose(x_hat, ref_x_hat, atol=tol):
        if torch.allclose(x_hat + x.mean(0), ref_x_hat, atol=tol):
            hint = "add the mean back after mapping the codes to data space."
        else:
            hint = "x_hat = codes @ Vh[:k] + mean."
        raise ExerciseError(f"{name}: the codes are right but the reconstruction is not. Hint: {hint}")
    try:
        from sklearn.decomposition import PCA as SkPCA
        sk_codes = torch.from_numpy(SkPCA(n_components=k, svd_solver="full").fit_transform(x.numpy()))
        agrees = _same_up_to_sign(codes, sk_codes, tol)
    except ImportError:  # the check itself does not need scikit-learn
        agrees = True
    if not agrees:
        raise ExerciseError(f"{name}: the codes differ from scikit-learn's PCA beyond a sign flip.")
    passed(name, "codes equal scikit-learn's up to sign, reconstruction exact")


def _purity_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Clusters of unequal sizes and purities, so weighted and unweighted answers differ."""
    clusters = torch.tensor([0] * 8 + [1] * 6 + [2] * 6)
    labels = torch.tensor([0] * 4 + [1] * 4 + [2] * 5 + [0] + [2] * 6)
    return clusters, labels


@own_work(cluster_purity)
def check_cluster_purity(student: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """``cluster_purity(clusters, labels) -> float`` in [0, 1]."""
    name = "cluster_purity"
    clusters, labels = _purity_data()
    got = run_student(name, student, clusters.clone(), labels.clone())
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise ExerciseError(f"{name}: return a number (a float in [0, 1]), got {type(got).__name__}.") from None
    expected = cluster_purity(clusters, labels)          # (4 + 5 + 6) / 20 = 0.75
    if abs(value - expected) > 1e-6:
        per_cluster = [cluster_purity(clusters[clusters == c], labels[clusters == c]) for c in range(3)]
        if abs(value - expected * len(labels)) < 1e-6:
            hint = "you returned the count of matching points; divide by the number of points."
        elif abs(value - sum(per_cluster) / 3) < 1e-6:
            hint = ("you averaged the per-cluster purities; weight each cluster by its size "
                    "(sum the majority counts, then divide by N).")
        elif abs(value - cluster_purity(labels, clusters)) < 1e-6:
            hint = "clusters and labels are swapped: each CLUSTER votes for its most common LABEL."
        elif value > 1 or value < 0:
            hint = "purity is a fraction in [0, 1]."
        else:
            hint = "for each cluster count its most common label; sum these counts; divide by N."
        raise ExerciseError(f"{name}: got {value:.4f}, expected {expected:.4f}. Hint: {hint}")
    one = run_student(name, student, torch.zeros(6, dtype=torch.long), torch.tensor([0, 0, 0, 0, 1, 1]))
    if abs(float(one) - 4 / 6) > 1e-6:
        raise ExerciseError(f"{name}: one cluster should score the majority label's share (0.6667), "
                            f"got {float(one):.4f}.")
    passed(name, f"purity {value:.2f} on the test clustering")
