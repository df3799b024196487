"""Fidelity and diversity (density and coverage, Naeem et al. 2020) that gray, noisy and
repeated images cannot fool, in the real attribute network's feature space.

The tests train the ``smoke`` profile's attribute net (16 px, 40 steps: seconds) and use
n = 400 images per set. The same cases at the ``cpu`` profile (32 px net, n = 1000) are
rows of ``bench/sample_quality.py``'s table. Measured with the ``cpu`` net, n = 1000, k = 5
(fidelity / diversity) while choosing the feature space: attribute features alone vs the
joint features. Other blocks tried: adding the channel means of all three stages, or the
third stage's spatial std, let gray 0.7 in (0.2) and gave no better blur response;
flattened stage-2/3 maps (6272 dims) rated blurred faces *above* real ones (1.66).

=====================  ==================  ==================
set                    attributes only     joint (the metric)
=====================  ==================  ==================
held-out real          1.06 / 0.98         1.03 / 0.98
blur sigma 1           1.20 / 0.93         0.71 / 0.75
blur sigma 2           1.24 / 0.68         0.24 / 0.21
gray 0.5               0.00 / 0.00         0.00 / 0.00
gray 0.7               1.40 / 0.01         0.00 / 0.00
each face's mean RGB   1.03 / 0.09         0.00 / 0.00
uniform noise          0.01 / 0.01         0.00 / 0.00
one face repeated      0.80 / 0.00         1.40 / 0.01
=====================  ==================  ==================
"""
import pytest
import torch

from course_lib import feature_net as fn
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.metrics import corrupt_images, density_coverage, fidelity_diversity, joint_features
from course_lib.toyfaces import ToyFaces

N = 400


@pytest.fixture(scope="module")
def smoke_net(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("COURSE_PROGRESS", "none")
    fn._LOADED.clear()
    net = load_feature_net(16, config=FeatureNetConfig.for_profile("smoke"), device="cpu")
    yield net
    fn._LOADED.clear()
    mp.undo()


@pytest.fixture(scope="module")
def faces():
    real = ToyFaces(split="test", size=N, image_size=16, seed=0).images
    held_out = ToyFaces(split="val", size=N, image_size=16, seed=0).images
    return real, held_out


def test_density_coverage_known_values():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    # k=1: every real ball has radius 1. 0.5 lies in the balls of 0 and 1, 2.0 in those of
    # 1, 2, 3, and 10 in none: density = (2 + 3 + 0) / (1 * 3); real 0..3 are covered, 4 is not.
    fake = torch.tensor([[0.5], [2.0], [10.0]])
    result = density_coverage(real, fake, k=1)
    assert result["density"] == pytest.approx(5 / 3)
    assert result["coverage"] == pytest.approx(4 / 5)
    # k=2: radii 2, 1, 1, 1, 2 -> 0.5 in balls of 0, 1; 2.0 in 0 (|2-0| <= 2), 1, 2, 3, 4
    result = density_coverage(real, fake, k=2)
    assert result["density"] == pytest.approx((2 + 5) / (2 * 3))
    with pytest.raises(ValueError, match="feature sizes differ"):
        density_coverage(real, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="more than k=5"):
        density_coverage(real, fake, k=5)


def test_density_ignores_a_real_outlier_that_precision_trusts():
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(300, 2, generator=g), torch.tensor([[30.0, 30.0]])])
    # fakes far from the data but inside the outlier's huge ball: one ball of k, not k
    fake = torch.full((50, 2), 25.0)
    assert density_coverage(real, fake, k=5)["density"] <= 1 / 5
    same = torch.randn(300, 2, generator=g)
    result = density_coverage(real, same, k=5)
    assert 0.8 < result["density"] < 1.2 and result["coverage"] > 0.9


def test_joint_features_weigh_blocks_equally():
    g = torch.Generator().manual_seed(0)
    real = {"a": torch.randn(200, 2, generator=g) * 100, "b": torch.randn(200, 50, generator=g)}
    fake = {"a": torch.randn(10, 2, generator=g), "b": torch.randn(10, 50, generator=g)}
    joint_real, joint_fake = joint_features(real, fake)
    assert joint_real.shape == (200, 52) and joint_fake.shape == (10, 52)
    # each block adds about 1 to a real sample's squared norm, whatever its size and scale
    assert joint_real[:, :2].pow(2).sum(1).mean() == pytest.approx(1.0, rel=0.02)
    assert joint_real[:, 2:].pow(2).sum(1).mean() == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="blocks differ"):
        joint_features(real, {"a": fake["a"]})


def test_held_out_real_faces_score_high_on_both(smoke_net, faces):
    real, held_out = faces
    result = fidelity_diversity(real, held_out, n=N, net=smoke_net)
    assert result["fidelity"] >= 0.8 and result["diversity"] >= 0.8, result


@pytest.mark.parametrize("kind", ["gray", "noise"])
def test_gray_and_noise_images_have_no_fidelity(smoke_net, faces, kind):
    real, _ = faces
    g = torch.Generator().manual_seed(0)
    fake = torch.full((N, 3, 16, 16), 0.5) if kind == "gray" else torch.rand(N, 3, 16, 16, generator=g)
    result = fidelity_diversity(real, fake, n=N, net=smoke_net)
    assert result["fidelity"] < 0.1 and result["diversity"] < 0.1, result


def test_one_face_repeated_has_no_diversity(smoke_net, faces):
    real, held_out = faces
    repeated = held_out[:1].expand(N, -1, -1, -1).contiguous()
    assert fidelity_diversity(real, repeated, n=N, net=smoke_net)["diversity"] < 0.1


def test_fidelity_sees_blur(smoke_net, faces):
    """The attribute features alone rate blurred faces *higher* than real ones."""
    real, held_out = faces
    sharp = fidelity_diversity(real, held_out, n=N, net=smoke_net)["fidelity"]
    blur2 = fidelity_diversity(real, corrupt_images(held_out, kind="blur", strength=2.0), n=N,
                               net=smoke_net)["fidelity"]
    assert blur2 < 0.5 * sharp, (sharp, blur2)


def test_layer_features_shapes_and_forward_unchanged(smoke_net, faces):
    _, held_out = faces
    blocks = smoke_net.layer_features(held_out[:10], batch_size=4)
    w = FeatureNetConfig.for_profile("smoke").width
    assert {k: tuple(v.shape) for k, v in blocks.items()} == {
        "attributes": (10, smoke_net.num_features), "texture1": (10, w), "texture2": (10, 2 * w)}
    # batches of 4 vs one of 10: the same features up to float summation order
    torch.testing.assert_close(blocks["attributes"], smoke_net.features(held_out[:10]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        smoke_net.layer_features(held_out[:0])


def test_the_one_sample_scorer_gives_the_numbers_of_the_compositions_it_replaced(smoke_net, faces):
    """metrics.sample_quality replaced six hand-written compositions of the same metrics (bench/
    sample_quality.py, bench/gan_recipes.py, experiments/ssgan.py, guidance.guidance_sweep,
    experiments/ddpm_reference.py, experiments/gan_reference.py) and domain_frechet: the same
    numbers, to the last bit."""
    from course_lib.metrics import (
        domain_frechet,
        frechet_distance,
        kernel_distance,
        precision_recall,
        sample_quality,
        sample_scores,
    )

    real, held_out = faces
    net, n = smoke_net, 200
    real, fake = real[:n], corrupt_images(held_out[:n], kind="blur", strength=1.0)
    real_feats, feats = net.features(real), net.features(fake)
    old = {"frechet": frechet_distance(real_feats, feats), "kid": kernel_distance(real_feats, feats),
           **fidelity_diversity(real, fake, n=n, net=net, k=5), **precision_recall(real_feats, feats, k=3)}
    new = sample_quality(real, fake, n=n, net=net, scores=("frechet", "kid", "fidelity", "diversity", "precision",
                                                           "recall"))
    assert new == old and list(new) == ["frechet", "kid", "fidelity", "diversity", "precision", "recall"]
    assert sample_quality(real, fake, n=n, net=net, real_feats=real_feats, k=3) == {
        "frechet": old["frechet"], "kid": old["kid"], **fidelity_diversity(real, fake, n=n, net=net, k=3)}
    # sample_scores: the old rounding (Frechet 2 decimals, KID 4 digits, the rest 3 decimals)
    assert sample_scores(real, fake, net=net) == {
        "frechet": round(old["frechet"], 2), "kid": float(f"{old['kid']:.4g}"),
        "fidelity": round(old["fidelity"], 3), "diversity": round(old["diversity"], 3)}
    assert sample_scores(real, fake, net=net, scores=("frechet", "precision", "recall")) == {
        "frechet": round(old["frechet"], 2), "precision": round(old["precision"], 3),
        "recall": round(old["recall"], 3)}
    # domain_frechet with more images than n: the same seeded subsets as before
    g = torch.Generator().manual_seed(0)
    a, b = (x[torch.randperm(x.shape[0], generator=g)[:150]] for x in (faces[0], held_out))
    assert domain_frechet(faces[0], held_out, n=150, net=net) == frechet_distance(net.features(a), net.features(b))
    with pytest.raises(ValueError, match="real_feats must be the features of the 150 real images"):
        sample_quality(faces[0], held_out, n=150, net=net, real_feats=net.features(faces[0]))
    with pytest.raises(ValueError, match="scores must be a non-empty selection"):
        sample_quality(real, fake, n=n, net=net, scores=("fid",))
