"""Tests for course_lib.unsupervised: PCA by SVD against scikit-learn, PSNR, purity."""
import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.metrics import normalized_mutual_info_score

from course_lib.unsupervised import (
    as_matrix,
    cluster_finding,
    cluster_purity,
    cluster_scores,
    majority_baseline,
    pca_fit,
    pca_project,
    pca_psnr_per_image,
    pca_psnr_table,
    pca_reconstruct,
    psnr_per_image,
)


def data(n=60, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(4, d, generator=g, dtype=torch.float64)
    signal = torch.randn(n, 4, generator=g, dtype=torch.float64) @ basis   # drawn before the noise (same stream)
    return signal + 0.01 * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_pca_matches_scikit_learn():
    x = data()
    ours = pca_fit(x, 3)
    sk = SkPCA(n_components=3, svd_solver="full").fit(x.numpy())
    np.testing.assert_allclose(ours.explained_variance.numpy(), sk.explained_variance_, rtol=1e-8)
    # components agree up to sign
    for a, b in zip(ours.components.numpy(), sk.components_):
        assert min(np.abs(a - b).max(), np.abs(a + b).max()) < 1e-8
    codes = pca_project(x, ours)
    sk_codes = sk.transform(x.numpy())
    np.testing.assert_allclose(np.abs(codes.numpy()), np.abs(sk_codes), atol=1e-8)
    np.testing.assert_allclose(pca_reconstruct(codes, ours).numpy(), sk.inverse_transform(sk_codes), atol=1e-8)


def test_pca_components_orthonormal_and_full_rank_is_exact():
    x = data(n=10, d=6)
    pca = pca_fit(x, 6)
    torch.testing.assert_close(pca.components @ pca.components.T, torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(pca_reconstruct(pca_project(x, pca), pca), x)
    with pytest.raises(ValueError, match="between 1 and"):
        pca_fit(x, 11)


def test_as_matrix_scales_uint8():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    m = as_matrix(images)
    assert m.shape == (2, 48) and m.max().item() == 1.0


def test_psnr_known_value():
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.full((2, 3, 4, 4), 0.1)   # MSE 0.01 -> 20 dB
    torch.testing.assert_close(psnr_per_image(x_hat, x), torch.full((2,), 20.0, dtype=torch.float64))
    with pytest.raises(ValueError):
        psnr_per_image(x_hat, x[:1])


def test_pca_psnr_table_increases_with_k():
    g = torch.Generator().manual_seed(1)
    low_rank = (torch.rand(80, 3, generator=g) @ torch.rand(3, 3 * 8 * 8, generator=g)) / 3
    images = (low_rank.clamp(0, 1).view(80, 3, 8, 8) * 255).to(torch.uint8)
    table = pca_psnr_table(images[:60], images[60:], [1, 2, 3])
    assert list(table) == [1, 2, 3]
    assert table[1] < table[2] < table[3]
    assert table[3] > 40  # rank-3 data: 3 components reconstruct up to uint8 rounding
    per_image = pca_psnr_per_image(images[:60], images[60:], 2)
    assert per_image.shape == (20,) and abs(per_image.mean().item() - table[2]) < 1e-9


def test_cluster_purity_known_values():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert cluster_purity(torch.tensor([5, 5, 5, 7, 7, 7]), labels) == 1.0
    assert cluster_purity(torch.tensor([0, 0, 1, 1, 2, 2]), labels) == pytest.approx(5 / 6)
    assert cluster_purity(torch.zeros(6), labels) == 0.5 == majority_baseline(labels)
    with pytest.raises(ValueError):
        cluster_purity(torch.zeros(5), labels)


def test_cluster_purity_matches_contingency_matrix():
    from sklearn.metrics.cluster import contingency_matrix
    rng = np.random.default_rng(0)
    clusters, labels = rng.integers(0, 5, 300), rng.integers(0, 3, 300)
    expected = contingency_matrix(labels, clusters).max(0).sum() / 300
    assert math.isclose(cluster_purity(torch.from_numpy(clusters), torch.from_numpy(labels)), expected)


def test_linear_autoencoder_reaches_pca_and_spans_its_subspace():
    """Baldi & Hornik 1989: a linear autoencoder's minimum is PCA's error, its decoder spanning
    the top-k principal subspace. Gradient descent gets there on data with a clear spectrum."""
    from course_lib.unsupervised import subspace_overlap, train_linear_autoencoder

    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 2.0, 1.5, 0.1, 0.05, 0.02])
    scaled = torch.randn(300, 6, generator=g) * scales                     # drawn before the rotation
    x = 0.5 + 0.05 * scaled @ torch.linalg.qr(torch.randn(6, 48, generator=g).T).Q.T
    pca = pca_fit(x.double(), 3)
    pca_mse = (pca_reconstruct(pca_project(x.double(), pca), pca) - x.double()).pow(2).mean().item()
    model, history = train_linear_autoencoder(x, 3, steps=600, lr=1e-2)
    ae_mse = history["mse"][-1]
    assert ae_mse <= 1.02 * pca_mse
    assert subspace_overlap(pca.components, model.decoder.weight.detach().T) > 0.99
    assert subspace_overlap(pca.components, torch.randn(3, 48, generator=g)) < 0.5


def _clusters_with_a_hidden_minority(seed=0, n=3000):
    """Six random clusters; the minority class of a 2-class attribute is enriched in cluster 0
    but stays a minority there: purity cannot see it, mutual information can."""
    g = torch.Generator().manual_seed(seed)
    clusters = torch.randint(0, 6, (n,), generator=g)
    hat = (torch.rand(n, generator=g) < 0.2).long()
    hat[(clusters == 0) & (torch.rand(n, generator=g) < 0.3)] = 1
    noise = torch.randint(0, 3, (n,), generator=g)        # independent of the clusters
    return clusters, torch.stack([hat, noise], 1)


def test_cluster_scores_see_what_purity_cannot():
    clusters, labels = _clusters_with_a_hidden_minority()
    hat, noise = cluster_scores(clusters, labels, ["hat", "noise"])
    assert hat.gain == 0 and hat.purity == hat.baseline == majority_baseline(labels[:, 0])
    assert hat.nmi > 0.01 and hat.p_adjusted < 1e-6
    assert noise.p_adjusted > 0.05 and abs(noise.ari) < 0.01
    assert hat.nmi == pytest.approx(normalized_mutual_info_score(labels[:, 0].numpy(), clusters.numpy()))
    with pytest.raises(ValueError, match="labels must be"):
        cluster_scores(clusters, labels, ["hat"])


def test_cluster_finding_flips_with_the_data():
    clusters, labels = _clusters_with_a_hidden_minority()
    text = cluster_finding(cluster_scores(clusters, labels, ["hat", "noise"]))
    assert text.startswith("Ranked by normalised mutual information, the clusters follow hat most")
    assert "Purity misses part of it: for hat" in text and "No dependence the test can detect" in text
    # the same clusters against labels they determine: no blind spot, every attribute depends on them
    pure = cluster_finding(cluster_scores(clusters, torch.stack([clusters % 2, clusters % 3], 1), ["a", "b"]))
    assert "Purity misses" not in pure and "Every attribute depends on the clusters" in pure
