"""Applications: latent edits, AUROC/ROC, anomaly scores, the augmentation classifier."""
from __future__ import annotations

import pytest
import torch

from course_lib import applications as app
from course_lib.gan import Discriminator
from course_lib.inpainting import InpaintingNet
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
