"""The course's probe protocol (course_lib.probe): known values, the scaler's data, bad inputs."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from course_lib.backbone import ConvBackbone
from course_lib.probe import (
    ProbeConfig,
    best_layer,
    budget_subsets,
    fit_probe,
    layer_features,
    normalised,
    pooled_grid,
    probe_backbone,
    probe_budgets,
)


def _split(n, d, seed, signal=True):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, d))
    y = np.stack([(x[:, 0] > 0).astype(int), x[:, 1:4].argmax(1)], 1)   # binary and 3-way, both linear
    if not signal:
        y = g.integers(0, 2, size=(n, 2))
    return x, y


def test_features_that_encode_the_label_reach_one():
    score = fit_probe(_split(400, 10, 0), _split(200, 10, 1), _split(300, 10, 2), names=["a", "b"])
    assert score.per_attribute["a"] > 0.97 and score.per_attribute["b"] > 0.9
    assert set(score.C) == {"a", "b"} and all(c in ProbeConfig().Cs for c in score.C.values())


def test_noise_features_stay_at_chance():
    score = fit_probe(_split(400, 50, 0, False), _split(200, 50, 1, False), _split(1000, 50, 2, False))
    assert abs(score.mean - 0.5) < 0.05


def test_same_predictions_as_scikit_learn_logistic_regression():
    """The joint L-BFGS fit minimises scikit-learn's objective: same test predictions."""
    (xtr, ytr), (xte, yte) = _split(300, 8, 3), _split(300, 8, 4)
    cfg = ProbeConfig(Cs=(0.1,), tol=1e-4, max_iter=5000)
    ours = fit_probe((xtr, ytr), (xte, yte), (xte, yte), config=cfg)
    scaler = StandardScaler().fit(xtr)
    for a in range(2):
        clf = LogisticRegression(C=0.1, max_iter=5000, tol=1e-8).fit(scaler.transform(xtr), ytr[:, a])
        sk = float(np.mean(clf.predict(scaler.transform(xte)) == yte[:, a]))
        assert ours.per_attribute[f"attr{a}"] == pytest.approx(sk, abs=0.004)


def test_more_features_than_faces_gives_the_same_answer():
    """The row-space shortcut (D > N) is exact: padding with features changes nothing it shouldn't."""
    (xtr, ytr), (xva, yva) = _split(60, 100, 5), _split(200, 100, 6)
    cfg = ProbeConfig(Cs=(0.05,), tol=1e-4, max_iter=5000)
    ours = fit_probe((xtr, ytr), (xva, yva), (xva, yva), config=cfg)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=0.05, max_iter=5000, tol=1e-8).fit(scaler.transform(xtr), ytr[:, 0])
    sk = float(np.mean(clf.predict(scaler.transform(xva)) == yva[:, 0]))
    assert ours.per_attribute["attr0"] == pytest.approx(sk, abs=0.011)


def test_the_scaler_sees_the_training_split_only():
    train, val, test = _split(200, 4, 0), _split(100, 4, 1), _split(100, 4, 2)
    val, test = (val[0] + 100.0, val[1]), (test[0] - 50.0, test[1])   # far-away statistics
    score = fit_probe(train, val, test)
    np.testing.assert_allclose(score.scaler_mean, train[0].mean(0))


def test_c_is_chosen_on_validation_not_test():
    """Validation and test disagree on purpose: the chosen C follows validation."""
    (xtr, ytr) = _split(200, 30, 0)
    x, y = _split(200, 30, 1)
    flipped = (x, 1 - y)               # a test split whose labels are inverted
    a = fit_probe((xtr, ytr), (x, y), flipped, config=ProbeConfig(Cs=(0.001, 1.0)))
    b = fit_probe((xtr, ytr), (x, y), (x, y), config=ProbeConfig(Cs=(0.001, 1.0)))
    assert a.C == b.C and a.val_per_attribute == b.val_per_attribute


def test_convergence_is_reported_not_silenced():
    with pytest.warns(Warning, match="raise ProbeConfig.max_iter"):
        fit_probe(_split(200, 20, 0), _split(50, 20, 1), _split(50, 20, 2),
                  config=ProbeConfig(Cs=(10.0,), max_iter=2, tol=1e-9))


def test_layer_features_shapes_pooling_and_eval_mode():
    bb = ConvBackbone().train()
    imgs = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    f = layer_features(bb, imgs, batch_size=2)
    assert {k: tuple(v.shape) for k, v in f.items()} == {"h1": (5, 32 * 8 * 8), "h2": (5, 64 * 4 * 4),
                                                          "h3": (5, 128 * 4 * 4)}
    assert bb.training
    h3 = bb.eval()(imgs.float() / 255).flatten(1)
    assert torch.allclose(f["h3"], h3, atol=1e-5)     # h3 is the whole map
    assert pooled_grid(32, 16, 2048) == 8 and pooled_grid(128, 4, 2048) == 4 and pooled_grid(64, 8, 10) == 1


def test_probe_backbone_every_layer_and_best_on_validation():
    bb = ConvBackbone()
    imgs = torch.rand(60, 3, 16, 16)
    labels = (imgs.mean((1, 2, 3)) > imgs.mean()).long()
    splits = {"train": (imgs[:30], labels[:30]), "val": (imgs[30:45], labels[30:45]),
              "test": (imgs[45:], labels[45:])}
    scores = probe_backbone(bb, splits, names=["bright"], config=ProbeConfig(max_iter=3000))
    assert set(scores) == {"h1", "h2", "h3"}
    assert best_layer(scores) == max(scores, key=lambda layer: scores[layer].val_mean)


def test_budget_subsets_are_nested_seeded_and_backbone_free():
    a, b = budget_subsets(100, (5, 20, 100), seed=3), budget_subsets(100, (5, 20, 100), seed=3)
    assert all(np.array_equal(a[n], b[n]) for n in a)                # the seed alone decides
    assert set(a[5]) <= set(a[20]) <= set(a[100]) and list(a[100]) == list(range(100))
    assert all(len(np.unique(a[n])) == n for n in a)
    assert not np.array_equal(budget_subsets(100, (20,), seed=4)[20], a[20])


def _budget_splits(seed=0):
    bb = ConvBackbone()
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(140, 3, 16, 16, generator=g)
    labels = torch.stack([(imgs[:, 0].mean((1, 2)) > imgs[:, 0].mean()).long(),
                          (imgs[:, 2].mean((1, 2)) > imgs[:, 2].mean()).long()], 1)
    return bb, {"train": (imgs[:80], labels[:80]), "val": (imgs[80:110], labels[80:110]),
                "test": (imgs[110:], labels[110:])}


def test_probe_budgets_fit_on_the_subset_and_reuse_features():
    """A budget of n faces is fit_probe on exactly those n rows, for every layer; features
    given once give the same scores as features computed inside."""
    bb, splits = _budget_splits()
    cfg = ProbeConfig(Cs=(0.1, 1.0), max_iter=3000, layers=("h2", "h3"))
    out = probe_budgets(bb, splits, (10, 80), seed=1, names=["red", "blue"], config=cfg)
    assert set(out) == {10, 80} and all(set(v) == {"h2", "h3"} for v in out.values())
    feats = {s: layer_features(bb, splits[s][0], layers=cfg.layers) for s in splits}
    rows = torch.from_numpy(budget_subsets(80, (10,), seed=1)[10])
    direct = fit_probe((feats["train"]["h3"][rows], splits["train"][1][rows]),
                       (feats["val"]["h3"], splits["val"][1]), (feats["test"]["h3"], splits["test"][1]),
                       names=["red", "blue"], config=cfg)
    assert out[10]["h3"].per_attribute == direct.per_attribute
    again = probe_budgets(None, splits, (10,), seed=1, names=["red", "blue"], config=cfg, features=feats)
    assert again[10]["h3"].per_attribute == out[10]["h3"].per_attribute
    # the full budget is probe_backbone's probe
    full = probe_backbone(bb, splits, names=["red", "blue"], config=cfg)
    assert out[80]["h2"].per_attribute == full["h2"].per_attribute


def test_a_budget_with_one_class_predicts_that_class():
    """Two faces can hold one class of an attribute: the probe predicts it everywhere."""
    bb, splits = _budget_splits()
    x, y = splits["train"]
    y = y.clone()
    y[:, 1] = 1                                      # one class in every training face
    splits = {**splits, "train": (x, y)}
    out = probe_budgets(bb, splits, (2,), seed=0, names=["red", "blue"], config=ProbeConfig(Cs=(0.1,), layers=("h3",)))
    assert out[2]["h3"].per_attribute["blue"] == pytest.approx(float((splits["test"][1][:, 1] == 1).float().mean()))


def test_normalised_scale():
    assert normalised(0.7, 0.6, 0.8) == pytest.approx(0.5)
    np.testing.assert_allclose(normalised([0.6, 0.8], 0.6, 0.8), [0.0, 1.0])


@pytest.mark.parametrize("call, match", [
    (lambda: fit_probe((np.zeros((4, 3)), np.zeros(4)), (np.zeros((4, 2)), np.zeros(4)),
                       (np.zeros((4, 3)), np.zeros(4))), "share D"),
    (lambda: fit_probe((np.zeros((4, 3)), np.zeros(5)), (np.zeros((4, 3)), np.zeros(4)),
                       (np.zeros((4, 3)), np.zeros(4))), "4 feature rows for 5 label rows"),
    (lambda: fit_probe((np.zeros(4), np.zeros(4)), (np.zeros((4, 3)), np.zeros(4)),
                       (np.zeros((4, 3)), np.zeros(4))), r"train features must be 2-d"),
    (lambda: fit_probe((np.full((4, 3), np.nan), np.zeros(4)), (np.zeros((4, 3)), np.zeros(4)),
                       (np.zeros((4, 3)), np.zeros(4))), "NaN"),
    (lambda: ProbeConfig(Cs=(0.0,)), "Cs must be positive"),
    (lambda: ProbeConfig(layers=("h4",)), "subset of"),
    (lambda: layer_features(ConvBackbone(), torch.rand(2, 16, 16)), r"\(N, 3, H, W\)"),
    (lambda: probe_backbone(ConvBackbone(), {"train": None}), "missing"),
    (lambda: normalised(0.7, 0.8, 0.8), "must be above"),
    (lambda: budget_subsets(100, (1, 50), seed=0), "label budgets"),
    (lambda: budget_subsets(100, (200,), seed=0), r"\[2, 100\]"),
    (lambda: probe_budgets(ConvBackbone(), {"train": None}, (10,), seed=0), "missing"),
])
def test_bad_inputs_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
