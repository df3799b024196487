"""course_lib.ssl_flow: REPA's alignment term, the dispersive loss, the hidden map a U-Net
keeps, clusters as labels, and flow_step's extra loss."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import flow, ssl_flow
from course_lib.backbone import ConvBackbone


def _config(**kw):
    return dataclasses.replace(flow.FlowConfig.for_profile("smoke"), **kw)


def test_repa_loss_is_minus_one_when_aligned_and_pools_to_the_target_grid():
    hidden = torch.randn(2, 4, 8, 8)
    ident = torch.nn.Identity()
    target = torch.nn.functional.adaptive_avg_pool2d(hidden, 4) * 3.0          # same direction, any length
    assert ssl_flow.repa_loss(hidden, target, ident).item() == pytest.approx(-1.0, abs=1e-6)
    assert ssl_flow.repa_loss(hidden, -target, ident).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="channels"):
        ssl_flow.repa_loss(hidden, torch.randn(2, 5, 4, 4), ident)


def test_dispersive_loss_is_zero_for_a_collapsed_batch_and_falls_as_it_spreads():
    same = torch.ones(6, 3, 4, 4)
    assert ssl_flow.dispersive_loss(same).item() == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(6, 3, 4, 4, generator=g)
    assert ssl_flow.dispersive_loss(2 * spread).item() < ssl_flow.dispersive_loss(spread).item() < 0
    # by hand: log mean_ij exp(-||h_i - h_j||^2 / (D tau)) for two 1-number "maps" 0 and 1
    two = torch.tensor([[0.0], [1.0]])
    expected = torch.log((2 + 2 * torch.exp(torch.tensor(-1 / 0.5))) / 4)
    assert ssl_flow.dispersive_loss(two, 0.5).item() == pytest.approx(expected.item(), abs=1e-6)


def test_hidden_unet_keeps_the_down2_map_and_passes_calls_through():
    cfg = _config()
    model = ssl_flow.build_model(cfg, ssl_flow.HelpConfig(method="repa"))
    x = torch.randn(3, 3, cfg.image_size, cfg.image_size)
    out = model.net(x, torch.full((3,), 500.0))
    assert out.shape == x.shape
    assert model.net.hidden.shape == (3, cfg.widths[1], cfg.image_size // 4, cfg.image_size // 4)
    model.ema(x, torch.full((3,), 500.0))                                      # the EMA copy keeps its own
    assert model.ema.hidden is not model.net.hidden
    plain = ssl_flow.build_model(cfg, ssl_flow.HelpConfig())
    assert plain.net.projector is None and ssl_flow.help_term(plain, ssl_flow.HelpConfig()) is None


def test_repa_step_trains_the_projector_and_reports_the_term():
    cfg = _config()
    help = ssl_flow.HelpConfig(method="repa", weight=0.5)
    model = ssl_flow.build_model(cfg, help)
    encoder = ConvBackbone().requires_grad_(False)
    aux = ssl_flow.help_term(model, help, encoder)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    before = [p.clone() for p in model.net.projector.parameters()]
    images = torch.randint(0, 256, (4, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    out = flow.flow_step(model, opt, images, torch.Generator().manual_seed(0), aux=aux)
    assert set(out) == {"loss", "aux"} and -0.5 <= out["aux"].item() <= 0.5
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net.projector.parameters()))
    with pytest.raises(ValueError, match="frozen encoder"):
        ssl_flow.help_term(model, help, None)


def test_conditional_model_on_cluster_ids_trains_and_samples_guided():
    from course_lib import guidance

    cfg = _config()
    model = ssl_flow.build_model(cfg, ssl_flow.HelpConfig(method="dispersive"), num_classes=(4,))
    aux = ssl_flow.help_term(model, ssl_flow.HelpConfig(method="dispersive"))
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (4, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    labels = torch.tensor([[0], [1], [2], [3]])
    out = flow.flow_step(model, opt, (images, labels), torch.Generator().manual_seed(0), p_uncond=0.5, aux=aux)
    assert out["aux"].item() <= 0
    x = guidance.sample_guided(model, labels, scale=2.0, steps=2, seed=0)
    assert x.shape == (4, 3, cfg.image_size, cfg.image_size) and 0 <= x.min() and x.max() <= 1


def test_clusters_and_conditions():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    feats = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    ids, found = ssl_flow.cluster_labels(feats, 3)
    assert ids.shape == (60, 1) and found.shape == (3, 2)
    assert all(len(set(ids[i * 20:(i + 1) * 20, 0].tolist())) == 1 for i in range(3))   # each blob one cluster
    assert len(set(ids[:, 0].tolist())) == 3
    with pytest.raises(ValueError, match="k must be between 2"):
        ssl_flow.cluster_labels(feats, 1)
    drawn = ssl_flow.draw_conditions(ids, 10, seed=3)
    assert drawn.shape == (10, 1) and torch.equal(drawn, ssl_flow.draw_conditions(ids, 10, seed=3))
    feats = ssl_flow.global_features(ConvBackbone(), torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8))
    assert feats.shape == (5, 128) and torch.allclose(feats.norm(dim=1), torch.ones(5), atol=1e-5)


@pytest.mark.parametrize("kw, pattern", [
    ({"method": "repa2"}, "method must be one of"), ({"weight": -1.0}, "weight"), ({"tau": 0.0}, "tau"),
    ({"projector_hidden": 0}, "projector_hidden")])
def test_help_config_bad_values(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        ssl_flow.HelpConfig(**kw)
