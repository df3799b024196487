"""Every chapter-01 checker passes the reference, fails the stub, and fails plausible wrong
answers with a message that names the mistake."""
import pytest
import torch

from course_lib.checkers.ch01 import check_cluster_purity, check_pca
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


def ref_pca(x, k):
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    codes = (x - mean) @ vh[:k].T
    return codes, codes @ vh[:k] + mean


def no_centring(x, k):
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    codes = x @ vh[:k].T
    return codes, codes @ vh[:k]


def smallest_components(x, k):
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    codes = (x - mean) @ vh[-k:].T
    return codes, codes @ vh[-k:] + mean


def columns_not_rows(x, k):
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    codes = (x - mean) @ vh[:, :k]
    return codes, codes @ vh[:, :k].T + mean


def mean_not_added_back(x, k):
    codes, x_hat = ref_pca(x, k)
    return codes, x_hat - x.mean(0)


def whitened(x, k):
    mean = x.mean(0)
    u, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return u[:, :k], u[:, :k] @ torch.diag(s[:k]) @ vh[:k] + mean


def test_pca_reference_passes(capsys):
    check_pca(ref_pca)
    # sign flips of components are fine (SVD signs are arbitrary)
    def flipped(x, k):
        codes, x_hat = ref_pca(x, k)
        return codes * torch.tensor([-1.0, 1.0], dtype=codes.dtype), x_hat
    check_pca(flipped)
    # computed in float32 (x.float()): right to float32's precision, not "rescaled"
    check_pca(lambda x, k: ref_pca(x.float(), k))
    assert capsys.readouterr().out.count("\u2714 pca_by_svd") == 3


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (no_centring, "centre the data"),
    (smallest_components, "smallest components"),
    (columns_not_rows, "ROWS of V"),
    (mean_not_added_back, "add the mean back"),
    (whitened, "rescaled"),
    (lambda x, k: ref_pca(x, k)[0], "pair"),
    (lambda x, k: (ref_pca(x, k)[0].T, ref_pca(x, k)[1]), r"shape \(N, k\)"),
])
def test_pca_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_pca(wrong)


def ref_purity(clusters, labels):
    total = 0
    for c in clusters.unique():
        total += torch.bincount(labels[clusters == c]).max().item()
    return total / len(labels)


def test_purity_reference_passes(capsys):
    check_cluster_purity(ref_purity)
    assert "\u2714 cluster_purity" in capsys.readouterr().out


def count_not_fraction(clusters, labels):
    return ref_purity(clusters, labels) * len(labels)


def unweighted(clusters, labels):
    ids = clusters.unique()
    return sum(ref_purity(clusters[clusters == c], labels[clusters == c]) for c in ids) / len(ids)


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (count_not_fraction, "divide by the number"),
    (unweighted, "weight each cluster"),
    (lambda clusters, labels: ref_purity(labels, clusters), "swapped"),
    (lambda clusters, labels: 0.75, "one cluster should score"),  # hard-coded answer
    (lambda clusters, labels: [0.75], "return a number"),
])
def test_purity_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_cluster_purity(wrong)
