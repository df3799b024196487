"""Pretext models: shapes, the shared backbone, rotation batches, probe features, training steps."""
import dataclasses
import json

import pytest
import torch

from course_lib.backbone import ConvBackbone
from course_lib.jigsaw import JigsawConfig, JigsawNet, TilePositionNet, position_labels
from course_lib.pretext import (
    BackboneClassifier,
    RotationConfig,
    flip_batch,
    flip_finding,
    flip_hits,
    flip_step,
    jigsaw_step,
    mirror_twin_gap,
    position_step,
    probe_features,
    rotation_batch,
    rotation_step,
    supervised_step,
)
from course_lib.toyfaces import ToyFaces
from tests.script_loader import load_script


def test_jigsaw_shapes_and_shared_backbone():
    net = JigsawNet(n_permutations=10)
    tiles = torch.rand(2, 9, 3, 12, 12)
    assert net(tiles).shape == (2, 10)
    assert type(net.backbone) is ConvBackbone and net.backbone is net.encoder.backbone
    ConvBackbone().load_state_dict(net.backbone.state_dict())
    with pytest.raises(ValueError, match="tiles"):
        net(torch.rand(2, 3, 12, 12))


def test_tile_encoder_shares_weights_across_tiles():
    net = JigsawNet(n_permutations=5)
    tile = torch.rand(1, 1, 3, 12, 12).expand(1, 9, 3, 12, 12)
    f = net.encoder(tile)
    assert torch.allclose(f[0, 0], f[0, 8])


def test_position_net_shapes():
    net = TilePositionNet()
    assert net(torch.rand(2, 9, 3, 12, 12)).shape == (2, 9, 9)
    perms = torch.stack([torch.randperm(9) for _ in range(4)])
    assert torch.equal(position_labels(perms, torch.tensor([2, 0])), perms[[2, 0]])


def test_rotation_batch_order_and_labels():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    rot, labels = rotation_batch(x)
    assert rot.shape == (8, 1, 3, 3)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rot[:2], x)
    assert torch.equal(rot[2:4], torch.rot90(x, 1, dims=(2, 3)))
    # four quarter turns of the k=1 image give back ... the k=1 image; k=2 is 180 degrees
    assert torch.equal(rot[4:6], x.flip(2).flip(3))
    with pytest.raises(ValueError, match="square"):
        rotation_batch(torch.rand(1, 3, 4, 5))


def test_classifier_heads_and_loss():
    net = BackboneClassifier(num_classes=(2, 3))
    logits = net(torch.rand(4, 3, 16, 16))
    assert logits.shape == (4, 5)
    loss = net.loss(logits, torch.tensor([[0, 2], [1, 0], [1, 1], [0, 2]]))
    assert loss.ndim == 0 and loss.item() > 0


def test_probe_features_shape_dtype_and_frozen():
    bb = ConvBackbone()
    imgs = (torch.rand(5, 3, 32, 32) * 255).to(torch.uint8)
    f = probe_features(bb, imgs, batch_size=2)
    assert f.shape == (5, 128 * 4) and f.dtype == torch.float32 and not f.requires_grad
    assert torch.allclose(f, probe_features(bb, imgs.float() / 255), atol=1e-5)


def _structured_tiles(n, g):
    """Tiles whose content encodes their cell (a brightness ramp), then shuffled."""
    base = torch.linspace(0, 1, 9).view(1, 9, 1, 1, 1).expand(n, 9, 3, 8, 8).clone()
    base += 0.05 * torch.randn(base.shape, generator=g)
    return base


def test_jigsaw_steps_reduce_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    perms = torch.stack([torch.randperm(9, generator=g) for _ in range(4)])
    net = JigsawNet(n_permutations=4, tile_dim=16, hidden=32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    tiles = _structured_tiles(16, g)
    index = torch.randint(0, 4, (16,), generator=g)
    shuffled = torch.stack([tiles[b, perms[index[b]]] for b in range(16)])
    logs = [jigsaw_step(net, opt, shuffled, index) for _ in range(30)]
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]


def test_position_and_rotation_steps_reduce_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    net = TilePositionNet(tile_dim=16, hidden=32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    perms = torch.stack([torch.randperm(9, generator=g) for _ in range(8)])
    tiles = _structured_tiles(8, g)
    shuffled = torch.stack([tiles[b, perms[b]] for b in range(8)])
    logs = [position_step(net, opt, shuffled, perms) for _ in range(30)]
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]

    rot = BackboneClassifier(num_classes=(4,))
    opt = torch.optim.Adam(rot.parameters(), lr=3e-3)
    x = torch.zeros(4, 3, 16, 16)
    x[:, :, :4] = 1.0  # a bright top band: rotation is visible
    logs = [rotation_step(rot, opt, x) for _ in range(20)]
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]

    sup = BackboneClassifier(num_classes=(2,))
    opt = torch.optim.Adam(sup.parameters(), lr=3e-3)
    imgs = torch.cat([torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)])
    labels = torch.tensor([0] * 4 + [1] * 4).view(8, 1)
    logs = [supervised_step(sup, opt, imgs, labels) for _ in range(20)]
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]


def test_configs():
    cpu = JigsawConfig.for_profile("cpu")
    assert cpu.image_size % cpu.grid == 0 and cpu.tile_size <= cpu.image_size // cpu.grid
    smoke = JigsawConfig.for_profile("smoke")
    assert smoke.image_size % smoke.grid == 0 and smoke.steps < 20
    assert RotationConfig.for_profile("cpu").image_size == 32


def test_flip_batch_and_step():
    x = torch.rand(3, 3, 8, 8)
    flipped, labels = flip_batch(x)
    assert flipped.shape == (6, 3, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(flipped[3:], x.flip(3)) and torch.equal(flipped[:3], x)
    torch.manual_seed(0)
    net = BackboneClassifier(num_classes=(2,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = torch.zeros(4, 3, 16, 16)
    x[:, :, :, :4] = 1.0  # a bright left band: the flip is visible
    logs = [flip_step(net, opt, x) for _ in range(20)]
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        flip_batch(torch.rand(3, 8, 8))


# experiments/pretext_probes.py and its committed file: tests/test_pretext_probes.py


def _ablation_module(name):
    return load_script("experiments/simclr_ablation.py", name=name, register=True)


@pytest.mark.slow
def test_simclr_ablation_tiny_registered_resumable_and_reuses_identical_runs(tmp_path, monkeypatch):
    """The registration is in the file, a rerun trains nothing, and "all" runs from a probe
    file are reused only after re-probing one of them reproduces its stored scores."""
    import warnings

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    mod = _ablation_module("simclr_ablation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a stand-in for pretext_probes.json: its SimCLR runs are this protocol's "all" runs
        first = mod.run(mod.AblationExperiment(tiny=True, seeds=(0, 1), variants=("all",)), None, log=lambda *a: None)
        probes = {"status": "complete", "render_version": first["render_version"],
                  "experiment": first["probe_experiment"], "configs": {"simclr": first["configs"]["all"]},
                  "runs": [{**r, "backbone": "simclr"} for r in first["runs"]]}
        (tmp_path / "probes.json").write_text(json.dumps(probes))
        exp = mod.AblationExperiment(tiny=True, seeds=(0, 1), variants=("all", "no colour"))
        out = tmp_path / "abl.json"
        result = mod.run(exp, out, log=lambda *a: None, probes_file=tmp_path / "probes.json")
        logs = []
        mod.run(exp, out, log=logs.append, probes_file=tmp_path / "probes.json")   # all in the file: nothing reruns
    assert logs == []
    assert result["reuse"]["identical"] and result["reuse"]["max_abs_diff"] == 0
    assert [r.get("from") for r in result["runs"] if r["variant"] == "all"] == ["pretext_probes.json"] * 2
    assert result["configs"]["no colour"]["augmentations"] == ["crop", "flip"]
    reg = json.loads(out.read_text())["registration"]
    assert reg["primary_contrasts"] == ["no crop vs all", "no colour vs all"]
    assert reg["positive_control"]["variant"] == "no augmentation" and reg["power"]["seeds"] >= 5
    assert set(result["summary"]) == {"all", "no colour"} and len(result["summary"]["all"]["colour"]) == 2
    stored = {"budgets": {"12": {"probe": 0.5}}}
    assert not mod.reuse_check(stored, {"seed": 0, "budgets": {"12": {"probe": 0.51}}})["identical"]
    with pytest.raises(ValueError, match="variant"):
        exp.augmentations("no blur")
    assert exp.augmentations("no augmentation") == ()


def test_simclr_ablation_power_plan_uses_the_probe_files_simclr_spread():
    mod = _ablation_module("simclr_ablation_plan")
    plan = mod.power_plan()
    assert plan["seeds"] >= 5 and plan["power_at_seeds"] >= 0.8
    assert mod.AblationExperiment().seeds == tuple(range(plan["seeds"]))
    assert plan["sd_paired_difference"] == pytest.approx(2 ** 0.5 * plan["sd_simclr_runs"], rel=1e-3)


def test_committed_simclr_ablation_is_current():
    """simclr_ablation.json matches the script's AblationExperiment, registration and the probe
    table's SimCLR config; rerun `python experiments/simclr_ablation.py` when either changes."""
    from course_lib.results import load_result
    from course_lib.toyfaces import RENDER_VERSION

    result = load_result("simclr_ablation")
    assert "registration" in result, "simclr_ablation.json must be the registered run"
    mod = _ablation_module("simclr_ablation_current")
    exp = mod.AblationExperiment()
    assert result["status"] == "complete", ("simclr_ablation.json is an unfinished run (the script rewrites it "
                                            "after every run): let it finish before committing it")
    assert result["render_version"] == RENDER_VERSION
    assert result["experiment"] == json.loads(json.dumps(dataclasses.asdict(exp)))
    probes = load_result("pretext_probes")
    assert result["configs"]["all"] == probes["configs"]["simclr"]
    assert result["registration"]["power"] == json.loads(json.dumps(mod.power_plan()))
    for variant in exp.variants:
        assert result["summary"][variant]["seed_ids"] == list(exp.seeds), variant


def test_flip_finding_explains_why_chance_is_the_ceiling():
    faces = ToyFaces(split="test", size=16, image_size=16, cache=False)
    twin, mirror = mirror_twin_gap(faces.attributes, 16)
    assert twin < 1e-6 < mirror
    model = BackboneClassifier(num_classes=(2,))
    hits = flip_hits(model, faces.images)
    assert hits.shape == (32,) and set(hits.tolist()) <= {0.0, 1.0}
    chance = flip_finding(torch.tensor([1.0, 0.0] * 50), twin_gap=twin, mirror_gap=mirror, spread={"head_x": 0.3})
    assert "no classifier can beat 0.5" in chance and ": chance." in chance and "classes of head_x" in chance
    above = flip_finding(torch.ones(80).index_fill(0, torch.arange(10), 0.0), twin_gap=twin, mirror_gap=mirror,
                         spread={})
    assert "above chance, which the symmetry rules out" in above
    broken = flip_finding(torch.tensor([1.0, 0.0] * 50), twin_gap=mirror, mirror_gap=mirror, spread={})
    assert "something is left to learn" in broken

