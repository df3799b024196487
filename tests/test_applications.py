"""Applications: latent edits, AUROC/ROC, anomaly scores, the augmentation classifier."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import applications as app
from course_lib.gan import Discriminator
from course_lib.inpainting import InpaintingNet
from course_lib.toyfaces import ToyFaces
from course_lib.vae import VAE, elbo_loss


def test_attribute_direction_known_values_and_errors():
    mu = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0], [0.0, 2.0]])
    has = torch.tensor([1, 1, 0, 0])
    assert torch.allclose(app.attribute_direction(mu, has), torch.tensor([2.0, 0.0]))
    with pytest.raises(ValueError, match="both groups"):
        app.attribute_direction(mu, torch.ones(4))
    with pytest.raises(ValueError, match="expected mu"):
        app.attribute_direction(mu, has[:3])


def test_edit_faces_alpha_zero_is_the_reconstruction():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, image_size=16)
    x = torch.rand(3, 3, 16, 16)
    out = app.edit_faces(vae, x, torch.ones(4), alphas=(-1.0, 0.0, 1.0))
    assert out.shape == (3, 3, 3, 16, 16)
    assert torch.allclose(out[1], vae.reconstruct(x), atol=1e-6)
    assert not torch.allclose(out[0], out[2])


def test_auroc_known_values_and_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    assert app.auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert app.auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert app.auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5  # ties count half
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, generator=g).round(decimals=1)
    b = (torch.randn(40, generator=g) + 0.7).round(decimals=1)
    expected = roc_auc_score([0] * 50 + [1] * 40, torch.cat([a, b]).numpy())
    assert app.auroc(a, b) == pytest.approx(expected, abs=1e-12)
    fpr, tpr = app.roc_curve(a, b)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert torch.all(fpr[1:] >= fpr[:-1]) and torch.all(tpr[1:] >= tpr[:-1])
    with pytest.raises(ValueError):
        app.auroc(torch.tensor([]), b)


def test_vae_scores_are_per_image_negative_elbo():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, image_size=16)
    x = torch.rand(5, 3, 16, 16)
    scores = app.vae_scores(vae, x, samples=3, batch_size=2)
    assert scores.shape == (5,)
    torch.manual_seed(1)
    x_logits, mu, logvar = vae(x)
    batch_mean = elbo_loss(x_logits, x, mu, logvar).loss.item()
    assert scores.mean().item() == pytest.approx(batch_mean, rel=0.05)  # same loss, other z
    u8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(app.vae_scores(vae, u8, samples=3), scores, rtol=0.05)


def test_inpainting_and_discriminator_scores_shapes():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    s = app.inpainting_scores(InpaintingNet(), x)
    assert s.shape == (4,) and torch.all(s >= 0)
    d = Discriminator(image_size=16) if "image_size" in Discriminator.__init__.__code__.co_varnames else None
    if d is not None:
        assert app.discriminator_scores(d, x).shape == (4,)


def test_attribute_classifier_learns_something():
    from course_lib.toyfaces import ToyFaces
    torch.manual_seed(0)
    train = ToyFaces(split="train", size=96, image_size=16, cache=False)
    test = ToyFaces(split="test", size=64, image_size=16, cache=False)
    cfg = app.AugmentConfig.for_profile("smoke")
    model = app.train_attribute_classifier(train.images, train.labels, cfg, seed=0)
    acc = app.classifier_accuracy(model, test.images, test.labels)
    assert 0.0 < acc <= 1.0
    chance = app.classifier_accuracy(app.train_attribute_classifier(
        train.images, train.labels, app.AugmentConfig(steps=0, batch_size=16), seed=0),
        test.images, test.labels)
    assert acc >= chance - 0.05


def test_auroc_by_ranks_equals_the_pairwise_definition_on_many_ties():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (300,), generator=g).float()
    b = torch.randint(1, 6, (200,), generator=g).float()
    pairwise = float(((b[:, None] > a[None, :]).double() + 0.5 * (b[:, None] == a[None, :]).double()).mean())
    assert app.auroc(a, b) == pytest.approx(pairwise, abs=1e-12)
    assert 0.5 < app.auroc(a, b) < 1.0


def test_roc_curve_has_one_point_per_score_and_its_area_is_the_auroc():
    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 6, (80,), generator=g).float()             # many ties, within and across
    b = torch.randint(2, 8, (50,), generator=g).float()
    fpr, tpr = app.roc_curve(a, b)
    assert fpr.dtype == tpr.dtype == torch.float64 and len(fpr) == len(torch.cat([a, b]).unique()) + 1
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())  # trapezoids: ties are diagonals
    assert area == pytest.approx(app.auroc(a, b), abs=1e-12)
    fpr, tpr = app.roc_curve(torch.tensor([0.2, 0.1]), torch.tensor([0.9, 0.3, 0.5]))  # no ties: every step
    assert fpr.tolist() == [0, 0, 0, 0, 0.5, 1] and tpr.tolist() == [0, 1 / 3, 2 / 3, 1, 1, 1]
    for bad in (torch.tensor([]), torch.tensor([1.0, math.inf])):
        with pytest.raises(ValueError, match="roc_curve"):
            app.roc_curve(bad, b)
    assert app.auroc(torch.ones(3, 2), torch.ones(4)) == 0.5    # all tied, any shape: chance


def test_ood_region_marks_the_anomalous_part_and_is_deterministic():
    from course_lib.faceattributes import sample_attributes
    from course_lib.facedraw import ood_faces, ood_region
    S = 32
    eye = ood_region("three_eyes", 6, S, seed=2)
    assert eye.shape == (6, 1, S, S) and set(eye.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(eye, ood_region("three_eyes", 6, S, seed=2))
    # the extra eye sits at (0, -0.27) in the face frame: above the face centre, small
    attrs = ood_faces("three_eyes", 6, S, seed=2)[1]
    names = ["head_x", "head_y", "head_scale", "tilt"]
    from course_lib.faceattributes import _INDEX
    for i in range(6):
        hx, hy, s, t = (float(attrs[i, _INDEX[k]]) for k in names)
        # image coordinates in [-1, 1]: c + s * R(tilt) (0, -0.27)
        ex, ey = hx + s * 0.27 * torch.sin(torch.tensor(t)).item(), hy - s * 0.27 * torch.cos(torch.tensor(t)).item()
        ys, xs = torch.nonzero(eye[i, 0], as_tuple=True)
        cy, cx = (ys.float().mean() + 0.5) / S * 2 - 1, (xs.float().mean() + 0.5) / S * 2 - 1
        assert abs(cx - ex) < 0.1 and abs(cy - ey) < 0.1, (i, cx, ex, cy, ey)
        assert 4 <= len(ys) <= 40   # an eye, not the face
    # a missing mouth is below the centre; green skin covers far more of the face
    mouth, skin = ood_region("no_mouth", 6, S, seed=2), ood_region("green_skin", 6, S, seed=2)
    rows = torch.arange(S).float().view(1, 1, S, 1)
    assert ((mouth * rows).sum((1, 2, 3)) / mouth.sum((1, 2, 3)) > S / 2).all()
    assert (skin.sum((1, 2, 3)) > 4 * mouth.sum((1, 2, 3))).all()
    # outside the region the anomalous face equals its normal twin
    face = ood_faces("no_mouth", 6, S, seed=2)[0]
    twin = __import__("course_lib.facedraw", fromlist=["render"]).render(
        sample_attributes(6, 2, split="test", start=10_000_000), S)
    assert torch.allclose(face * (1 - mouth), twin * (1 - mouth), atol=0.05)
    assert not torch.allclose(face, twin, atol=0.05)


class _GreyFill(torch.nn.Module):
    """An 'inpainter' that predicts grey everywhere: its hole error is (x - 0.5)^2."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, mask):
        return torch.full_like(x, 0.5)


def test_hole_positions_cover_every_pixel():
    assert app.hole_positions(32, 8, 4) == [0, 4, 8, 12, 16, 20, 24]
    assert app.hole_positions(30, 8, 4) == [0, 4, 8, 12, 16, 20, 22]
    with pytest.raises(ValueError):
        app.hole_positions(8, 9, 4)


def test_inpainting_heatmap_finds_a_known_square_and_pixel_auroc_scores_it():
    x = torch.full((2, 3, 16, 16), 0.5)
    x[0, :, 2:6, 9:13] = 1.0                        # a white square on image 0 only
    region = torch.zeros(2, 1, 16, 16)
    region[0, :, 2:6, 9:13] = 1.0
    cfg = app.LocaliseConfig(hole=4, stride=4)
    heat = app.inpainting_heatmap(_GreyFill(), x, cfg)
    assert heat.shape == (2, 16, 16)
    assert torch.allclose(heat, ((x - 0.5) ** 2).mean(1))    # non-overlapping holes: exact error
    heat_overlap = app.inpainting_heatmap(_GreyFill(), x, app.LocaliseConfig(hole=4, stride=2))
    assert torch.allclose(heat_overlap, heat)                 # the mean of equal errors
    assert app.pixel_auroc(heat, region) == 1.0
    assert app.pixel_auroc(-heat, region) == 0.0
    assert app.pixel_auroc(torch.zeros(2, 16, 16), region) == 0.5
    with pytest.raises(ValueError, match="same pixels"):
        app.pixel_auroc(heat, region[:, :, :8])
    # a real (untrained) network: shape and sign
    h = app.inpainting_heatmap(InpaintingNet(), x, cfg)
    assert h.shape == (2, 16, 16) and torch.all(h >= 0)


def test_vae_heatmap_is_the_per_pixel_reconstruction_error():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, image_size=16)
    x = torch.rand(3, 3, 16, 16)
    heat = app.vae_heatmap(vae, x, batch_size=2)
    assert heat.shape == (3, 16, 16)
    assert torch.allclose(heat, ((vae.reconstruct(x) - x) ** 2).mean(1), atol=1e-6)


def test_damage_masks_are_seeded_thin_scratches_and_round_blotches():
    m = app.damage_masks(4, 32, scratches=3, seed=1)
    assert m.shape == (4, 1, 32, 32) and set(m.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(m, app.damage_masks(4, 32, scratches=3, seed=1))
    assert not torch.equal(m, app.damage_masks(4, 32, scratches=3, seed=2))
    assert (m.mean((1, 2, 3)) < 0.35).all() and (m.mean((1, 2, 3)) > 0.02).all()
    b = app.damage_masks(4, 32, scratches=0, blotches=1, seed=1)
    area = b.sum((1, 2, 3))
    assert ((area > 3.14 * (0.06 * 32) ** 2 * 0.3) & (area < 3.14 * (0.11 * 32) ** 2 * 1.3)).all()
    assert app.damage_masks(2, 32, scratches=0, blotches=0).sum() == 0


def test_classical_augment_keeps_labels_true_under_a_flip():
    from course_lib.toyfaces import ATTRIBUTE_NAMES, ToyFaces, attributes_to_labels, render, sample_attributes
    faces = ToyFaces(split="train", size=64, image_size=16, cache=False)
    x, y = app.classical_augment(faces.images, faces.labels, seed=0, max_shift=0, jitter=0.0)
    assert x.dtype == torch.uint8 and x.shape == faces.images.shape and y.shape == faces.labels.shape
    flipped = (x != faces.images).flatten(1).any(1)
    assert 10 < int(flipped.sum()) < 54                              # about half
    assert torch.equal(x[flipped], faces.images[flipped].flip(-1))
    assert torch.equal(x[~flipped], faces.images[~flipped])
    # a mirrored face drawn from mirrored attributes has the labels classical_augment gives
    attrs = sample_attributes(8, 5)
    mirrored = attrs.clone()
    for name in app.MIRRORED:
        mirrored[:, ATTRIBUTE_NAMES.index(name)] *= -1
    labels = attributes_to_labels(attrs)
    _, y_flip = app.classical_augment(torch.zeros(8, 3, 16, 16, dtype=torch.uint8), labels, seed=0,
                                      max_shift=0, jitter=0.0)
    assert torch.allclose(render(mirrored, 16), render(attrs, 16).flip(-1), atol=0.02)
    was_flipped = (y_flip != labels).any(1)
    assert torch.equal(y_flip[was_flipped], attributes_to_labels(mirrored)[was_flipped])
    # shifts and jitter change pixels but not the labels of unflipped faces
    x2, y2 = app.classical_augment(faces.images, faces.labels, seed=1)
    assert not torch.equal(x2, faces.images)
    kept = (y2 == faces.labels).all(1)
    assert 10 < int(kept.sum()) < 64                  # the unflipped faces keep every label
    assert (x2.float() - faces.images.float()).abs().mean() < 40   # small changes, not new images


def test_augmentation_sets_have_the_same_real_faces_and_sizes():
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)  # noqa: E731
    lab = lambda n: torch.randint(0, 2, (n, 17), generator=g)  # noqa: E731
    real, gen, extra, pseudo = (img(5), lab(5)), (img(5), lab(5)), (img(5), lab(5)), lab(5)
    sets = app.augmentation_sets(real, generated=gen, extra=extra, extra_pseudo=pseudo)
    assert list(sets) == list(app.AUGMENT_ARMS)
    for name, (x, y) in sets.items():
        assert len(x) == len(y) == (5 if name == "real" else 10)
        assert torch.equal(x[:5], real[0]) and torch.equal(y[:5], real[1])
    assert torch.equal(sets["+real pseudo"][0][5:], sets["+real true"][0][5:])
    assert torch.equal(sets["+real pseudo"][1][5:], pseudo) and torch.equal(sets["+real true"][1][5:], extra[1])
    assert torch.equal(sets["+VAE"][1][5:], gen[1])
    assert {a for pair in app.AUGMENT_COMPARISONS for a in pair} <= set(app.AUGMENT_ARMS)
    with pytest.raises(ValueError, match="same number"):
        app.augmentation_sets(real, generated=gen, extra=extra, extra_pseudo=pseudo[:3])


def test_augment_config_runs_the_controls_only_at_control_sizes():
    cfg = app.AugmentConfig.for_profile("cpu")
    assert set(cfg.control_sizes) <= set(cfg.real_sizes)
    assert cfg.arms(cfg.control_sizes[0]) == tuple(app.AUGMENT_ARMS)
    others = [n for n in cfg.real_sizes if n not in cfg.control_sizes]
    assert all(cfg.arms(n) == ("real", "+VAE") for n in others)
    smoke = app.AugmentConfig.for_profile("smoke")
    assert all(smoke.arms(n) == tuple(app.AUGMENT_ARMS) for n in smoke.real_sizes)  # CI runs every arm


def _edit_hits(side_effect: bool, n=400, seed=0):
    """Per-face 0/1 hits of a glasses direction and a random push at alphas 1, 2."""
    rng = np.random.default_rng(seed)
    hits = {}
    for a in (1.0, 2.0):
        hits["glasses", a] = (rng.random(n) < 0.3 * a, rng.random(n) < 0.03)
        pushed = rng.random(n) < 0.2
        hits["skin", a] = (pushed | (rng.random(n) < (0.4 if side_effect else 0.0)), pushed)
    return hits


def test_edit_finding_says_whether_the_edit_is_clean():
    confounded = app.edit_verdicts(_edit_hits(side_effect=True))
    assert {c.verdict for c in confounded.values()} == {"better"}
    text = app.edit_finding(confounded, target="glasses", side="skin")
    assert "alpha 1: glasses" in text and "the code does not separate the two" in text
    clean = app.edit_finding(app.edit_verdicts(_edit_hits(side_effect=False)), target="glasses", side="skin")
    assert "a clean edit there" in clean and "does not separate" not in clean
    flat = {key: (b, b) for key, (_, b) in _edit_hits(side_effect=False).items()}   # the direction does nothing
    verdicts = app.edit_verdicts(flat)
    assert all(c.verdict == "no clear difference" and c.p == 1.0 for c in verdicts.values())
    assert "At no step size" in app.edit_finding(verdicts, target="glasses", side="skin")
    with pytest.raises(ValueError, match="same alphas"):
        app.edit_finding(verdicts, target="glasses", side="hat")


def test_cas_finding_computes_the_drop_from_the_published_table():
    text = app.cas_finding()
    assert "42.65% top-1" in text and "30.4 points of top-1 (41.6% of it)" in text and "(27.9%)" in text
    assert "18.3 points of top-1" in app.cas_finding(model="VQ-VAE-2")


def test_the_classifier_seed_reaches_training():
    train = ToyFaces(split="train", size=64, image_size=16, cache=False)
    cfg = app.AugmentConfig(steps=5, batch_size=16)
    weights = [next(app.train_attribute_classifier(train.images, train.labels, cfg, seed=s).parameters()).detach()
               for s in (0, 0, 1)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
