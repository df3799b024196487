"""Latent generation (course_lib.latent): the autoencoder, its loss, the latent flow."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import flow, latent, metrics
from course_lib.feature_net import load_feature_net
from course_lib.runtime import DeviceLoader
from course_lib.toyfaces import ToyFaces


def test_autoencoder_shapes_and_ranges():
    model = latent.Autoencoder(latent_channels=4, width=16)
    images = ToyFaces(split="train", size=3, image_size=32).images          # uint8 (3, 3, 32, 32)
    mean, logvar = model.encode(images)
    assert mean.shape == logvar.shape == (3, 4, 8, 8)
    out = model(images)
    assert out.shape == (3, 3, 32, 32) and 0 <= out.min() and out.max() <= 1


def test_loss_terms_vanish_for_a_perfect_reconstruction_and_edges_see_a_shift():
    x = torch.rand(2, 3, 8, 8)
    dx, dy = latent.edges(x)
    assert dx.shape == (2, 3, 8, 7) and dy.shape == (2, 3, 7, 8)
    assert all(torch.equal(a, torch.zeros_like(a)) for a in latent.edges(torch.full((1, 3, 4, 4), 0.3)))
    model = latent.Autoencoder(latent_channels=4, width=16)
    out = latent.autoencoder_loss(model, torch.rand(2, 3, 32, 32), beta=0.0, edge_weight=0.0,
                                  generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out["loss"], out["l1"])                         # beta = edge_weight = 0: L1 only
    with_edges = latent.autoencoder_loss(model, torch.rand(2, 3, 32, 32), beta=1.0, edge_weight=2.0,
                                         generator=torch.Generator().manual_seed(0))
    total = with_edges["l1"] + 2 * with_edges["edge"] + with_edges["kl"]
    assert torch.allclose(with_edges["loss"], total) and with_edges["kl"] > 0


def test_latent_flow_config_must_match_the_autoencoder():
    ae = latent.AutoencoderConfig(latent_channels=4)
    with pytest.raises(ValueError, match="latents"):
        latent.LatentFlowConfig(autoencoder=ae)                           # the flow still models 8 channels
    with pytest.raises(ValueError, match="flip"):
        latent.LatentFlowConfig(flow=dataclasses.replace(latent.LatentFlowConfig().flow, flip=True))


def test_the_loader_takes_latents_only_when_asked():
    z = torch.randn(8, 4, 8, 8) * 3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DeviceLoader(z, batch_size=4)
    batch = next(iter(DeviceLoader(z, batch_size=4, unit_range=False, shuffle=False)))
    assert torch.equal(batch, z[:4])


def test_latent_flow_trains_deterministically_and_decodes_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    config = latent.LatentFlowConfig.for_profile("smoke")
    trained = latent.pretrained_latent_flow(config, progress="none")
    model = trained.model
    assert model.scale > 0 and model.flow.channels == config.autoencoder.latent_channels
    x = model.sample(5, steps=3, seed=2)
    assert x.shape == (5, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    again = latent.pretrained_latent_flow(config, progress="none").model       # from the cache
    assert again.scale == model.scale and torch.equal(again.sample(5, steps=3, seed=2), x)
    torch.manual_seed(0)
    fresh = config.build()
    latent.train_latent_flow(fresh, config, progress="none")
    torch.manual_seed(0)
    other = config.build()
    latent.train_latent_flow(other, config, progress="none")
    assert all(torch.equal(p, q) for p, q in zip(fresh.state_dict().values(), other.state_dict().values()))


def test_sample_scores_score_real_faces_as_real():
    net = load_feature_net(16)
    a = ToyFaces(split="test", size=200, image_size=16).images
    b = ToyFaces(split="val", size=200, image_size=16).images
    same, gray = metrics.sample_scores(a, b, net=net), metrics.sample_scores(a, torch.full_like(a, 128), net=net)
    assert set(same) == {"frechet", "kid", "fidelity", "diversity"}
    assert same["frechet"] < gray["frechet"] and same["kid"] < gray["kid"] and same["diversity"] > gray["diversity"]
    with pytest.raises(ValueError, match="as many"):
        metrics.sample_scores(a, b[:10], net=net)


def test_flow_model_on_latent_channels():
    config = dataclasses.replace(flow.FlowConfig.for_profile("smoke"), image_size=8, channels=5)
    model = config.build()
    assert model(torch.randn(2, 5, 8, 8), torch.rand(2)).shape == (2, 5, 8, 8)
    assert flow.sample_flow(model, 3, steps=2, to_output=lambda x: x).shape == (3, 5, 8, 8)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"latent_channels": 0}, ValueError, "latent_channels"),
    ({"beta": -1.0}, ValueError, "beta"),
    ({"width": 12}, ValueError, "GroupNorm"),
    ({"image_size": 30}, ValueError, "multiple of 4"),
    ({"steps": "10"}, TypeError, "steps"),
])
def test_autoencoder_config_refuses_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        latent.AutoencoderConfig(**kwargs)


def test_latent_flow_config_refuses_other_types():
    with pytest.raises(TypeError, match="AutoencoderConfig"):
        latent.LatentFlowConfig(autoencoder={"latent_channels": 8})


def test_committed_autoencoder_matches_the_config_and_the_chapter_uses_it(monkeypatch):
    """experiments/latent_reference.py --export wrote it for the cpu AutoencoderConfig at
    REFERENCE_STEPS (read_reference checks config and render version)."""
    model = latent.reference_autoencoder()
    assert model.steps == latent.REFERENCE_STEPS and not model.training
    config = latent.LatentFlowConfig.for_profile("cpu").autoencoder
    assert config == dataclasses.replace(latent.reference_config(), steps=latent.REFERENCE_STEPS)

    def no_training(*args, **kwargs):
        raise AssertionError("load_autoencoder trained instead of loading the committed reference")

    monkeypatch.setattr(latent, "pretrained_autoencoder", no_training)
    loaded = latent.load_autoencoder(config)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_the_committed_autoencoder_step_table_shows_the_exported_step():
    from course_lib.results import load_result

    table = load_result("autoencoder_reference_steps")
    rows = {r["step"]: r for r in table["rows"] if r["step"] != ""}
    assert latent.REFERENCE_STEPS in rows
    assert {"psnr", "frechet", "kid", "fidelity", "diversity"} <= set(rows[latent.REFERENCE_STEPS])
    expected = {k: v for k, v in dataclasses.asdict(latent.reference_config()).items() if k != "steps"}
    assert table["config"] == expected
