"""Chapter 04's evaluation (the five test masks, hole PSNR per seed, the margin over the
classical methods and its verdict), the reference script on a tiny config, and the
committed reference weights and results."""
import argparse
import dataclasses
import json

import pytest
import torch

from course_lib import inpainting_eval as ie
from course_lib.facedraw import RENDER_VERSION
from course_lib.inpainting import InpaintConfig, mean_fill
from tests.script_loader import load_script

script = load_script("experiments/inpainting_reference.py", name="inpainting_reference")


def _faces(n=6, s=16):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, s, s, generator=g) * 0.5 + 0.25


def test_the_five_masks_are_the_chapter_settings_with_their_coverage():
    assert list(ie.EVAL_MASKS) == ["centre", "half", "blocks25", "blocks40", "freeform"]
    assert ie.EVAL_MASKS["blocks40"] == ("blocks", 0.40) and ie.EVAL_MASKS["half"] == ("half", 0.5)
    assert set(ie.BAR_DB) == {"centre", "half", "blocks25"}


def test_hole_psnr_by_seed_scores_every_filler_on_every_mask_for_every_seed():
    x = _faces()
    got = ie.hole_psnr_by_seed({"truth+noise": lambda im, m: (im + 0.01 * m).clamp(0, 1), "mean": mean_fill},
                               x, seeds=[1, 2])
    assert set(got) == set(ie.EVAL_MASKS)
    for row in got.values():
        assert len(row["mean"]) == 2 and len(row["truth+noise"]) == 2
        assert min(row["truth+noise"]) > max(row["mean"])      # nearly right beats the mean colour
        assert abs(row["truth+noise"][0] - 40.0) < 0.1        # error 0.01 on the hole -> 40 dB
    # the seed moves the random masks, not the centre block
    assert got["centre"]["mean"][0] == got["centre"]["mean"][1]
    assert got["blocks25"]["mean"][0] != got["blocks25"]["mean"][1]


def test_hole_psnr_by_seed_takes_a_mask_function():
    seen = []

    def stripe(batch, size, seed):
        seen.append((batch, size, seed))
        m = torch.zeros(batch, 1, size, size)
        m[:, :, seed] = 1.0                                   # row `seed` is the hole
        return m

    x = _faces()
    got = ie.hole_psnr_by_seed({"truth+noise": lambda im, m: (im + 0.01 * m).clamp(0, 1), "mean": mean_fill},
                               x, seeds=[1, 2], masks={"stripe": stripe})
    assert seen == [(6, 16, 1), (6, 16, 2)] and list(got) == ["stripe"]
    assert got["stripe"]["truth+noise"] == pytest.approx([40.0, 40.0], abs=0.1)


def test_hole_psnr_by_seed_rejects_uint8_images_and_empty_inputs():
    with pytest.raises(ValueError, match="float"):
        ie.hole_psnr_by_seed({"m": mean_fill}, torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="fillers is empty"):
        ie.hole_psnr_by_seed({}, _faces())
    with pytest.raises(ValueError, match="seeds is empty"):
        ie.hole_psnr_by_seed({"m": mean_fill}, _faces(), seeds=[])


def test_margin_is_over_the_better_classical_method_and_the_verdict_uses_the_bar():
    assert ie.margin_over_classical({"net": 20.0, "telea": 17.0, "ns": 18.5}) == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"lacks \['ns'\]"):
        ie.margin_over_classical({"net": 20.0, "telea": 17.0})
    v = ie.margin_verdicts({"centre": {"net": 20.0, "telea": 17.0, "ns": 17.5},
                            "half": {"net": 19.0, "telea": 17.5, "ns": 17.6},
                            "blocks25": {"net": 19.0, "telea": 19.0, "ns": 18.0},
                            "freeform": {"net": 20.0, "telea": 22.0, "ns": 23.0}})
    assert v["centre"]["met"] and not v["half"]["met"] and v["blocks25"]["met"]   # 2.5, 1.4, 0.0 dB
    assert v["freeform"]["met"] is None and v["freeform"]["best"] == "ns" and v["freeform"]["margin_db"] == -3.0
    assert ie.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5)) and ie.mean_std([4.0]) == (4.0, 0.0)


def test_the_reference_config_is_the_chapter_cpu_config():
    assert ie.reference_config() == InpaintConfig.for_profile("cpu")
    assert script.keep_snapshot(200, 200) and script.keep_snapshot(6000, 200) and not script.keep_snapshot(4200, 200)


def test_the_script_trains_resumes_exports_and_evaluates_a_tiny_config(tmp_path, monkeypatch):
    tiny = dataclasses.replace(InpaintConfig.for_profile("smoke"), train_size=32)
    monkeypatch.setattr(script, "reference_config", lambda: tiny)
    monkeypatch.setattr(ie, "reference_config", lambda: tiny)
    monkeypatch.setattr(script, "EVAL_MASKS", {"centre": ("center", 0.25)})
    run = tmp_path / "run"
    script.main(["--steps", "2", "--snapshot-every", "2", "--run-dir", str(run)])
    script.main(["--steps", "4", "--snapshot-every", "2", "--run-dir", str(run)])  # resumes
    assert sorted(p.name for p in run.glob("step*.pt")) == ["step000002.pt", "step000004.pt"]
    # the long run passes through the model a short run of the same config ends with
    short = dataclasses.replace(tiny, steps=2)
    fresh = short.build()
    script.train_inpainter(fresh, short, progress=False)
    snap = torch.load(run / "step000002.pt", weights_only=True)["weights"]
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in snap.items())
    weights = tmp_path / "ref.pt"
    parsed = argparse.Namespace(run_dir=run, export=4)
    script.export(parsed, tiny, path=weights)
    model = ie.reference_inpainter(weights)
    assert model.steps == 4 and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    payload = torch.load(weights, weights_only=True)
    assert payload["data_version"] == RENDER_VERSION and "--export 4" in payload["command"]
    assert all(v.dtype == torch.float16 for v in payload["weights"].values())
    ns = argparse.Namespace(
        run_dir=run, n_test=8, mask_seeds=[7, 8], train_seeds=[0], live_profile="smoke", live_steps=2,
        reference=weights)
    out = tmp_path / "inpainting.json"
    monkeypatch.setattr(script, "hole_psnr_by_seed",
                        lambda f, x, seeds: ie.hole_psnr_by_seed(f, x, seeds=seeds, masks={"centre": ("center", 0.25)}))
    result = script.evaluate(ns, tiny, path=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    row = result["summary"]["centre"]
    assert {"net", "telea", "ns", "mean", "net_std"} <= set(row)
    assert [r["step"] for r in result["steps_curve"]] == [2, 4]
    assert result["reference_config"]["steps"] == 4 and result["live_config"]["steps"] == 2
    assert result["verdicts_live"]["centre"]["bar_db"] == 2.0 and "margin_db" in result["verdicts_reference"]["centre"]


def test_reference_loading_names_a_mismatch(tmp_path):
    tiny = dataclasses.replace(InpaintConfig.for_profile("cpu"), steps=3)
    payload = {"weights": {}, "config": {**dataclasses.asdict(tiny), "lr": 1.0}, "data_version": RENDER_VERSION,
               "steps": 3, "command": "python experiments/inpainting_reference.py --steps 3"}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"does not match InpaintConfig.*'lr': \(1.0, 0.002\)"):
        ie.reference_inpainter(tmp_path / "bad.pt")
    payload["config"]["lr"] = tiny.lr
    payload["data_version"] = RENDER_VERSION - 1
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="render version"):
        ie.reference_inpainter(tmp_path / "old.pt")


# ------------------------------------------------------------ committed weights and results
def test_the_committed_reference_matches_the_config_and_the_toyfaces_drawing():
    """experiments/inpainting_reference.py wrote them for InpaintConfig's cpu profile and this
    ToyFaces render version; retrain with the command stored in the file if this fails."""
    payload = torch.load(ie.REFERENCE_PATH, map_location="cpu", weights_only=True)
    assert payload["data_version"] == RENDER_VERSION
    config = dataclasses.replace(ie.reference_config(), steps=payload["steps"])
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
    stored["coverage"] = tuple(stored["coverage"])
    assert stored == dataclasses.asdict(config)
    assert payload["steps"] >= 10 * InpaintConfig.for_profile("cpu").steps   # ten times the live budget
    assert ie.REFERENCE_PATH.stat().st_size <= 800_000                        # the course's weight budget
    model = ie.reference_inpainter()
    assert all(p.dtype == torch.float32 for p in model.parameters()) and not model.training


def test_the_committed_evaluation_is_current_and_has_every_mask_and_method():
    """inpainting.json (``--evaluate``) was measured for this drawing, the live cpu config and
    the committed reference; rerun the command it names if this fails."""
    result = json.loads(script.RESULT_PATH.read_text())
    assert result["data_version"] == RENDER_VERSION
    assert result["live_config"] == json.loads(json.dumps(dataclasses.asdict(InpaintConfig.for_profile("cpu"))))
    payload = torch.load(ie.REFERENCE_PATH, map_location="cpu", weights_only=True)
    assert result["reference_config"]["steps"] == payload["steps"]
    for key in ("summary", "summary_live"):
        assert list(result[key]) == list(ie.EVAL_MASKS)
        for row in result[key].values():
            assert {"net", "telea", "ns", "mean", "net_std"} <= set(row)
    assert len(result["live_runs"]) >= 3 and "--evaluate" in result["command"]
    # the verdicts stored beside the numbers are the ones the library computes from them
    assert result["verdicts_reference"] == json.loads(json.dumps(ie.margin_verdicts(result["summary"])))


def test_glasses_removal_finding_reads_traces_and_painted_eyes():
    g = torch.Generator().manual_seed(0)

    def share(p, n=200):
        return (torch.rand(n, generator=g) < p).float().numpy()

    truth, before = share(0.05), share(0.95)
    seen = {"ground truth": truth, "with glasses": before, "mean fill": truth, "network": share(0.5)}
    eyes = {"mean fill": share(0.3), "network": share(0.9)}
    text = ie.glasses_removal_finding(seen, eyes, truth="ground truth", before="with glasses", no_eyes="mean fill")
    assert "a trace of the glasses is left: network." in text
    assert "network paints eyes back that the attribute network can read" in text
    clean = {**seen, "network": truth}
    text = ie.glasses_removal_finding(clean, {"mean fill": eyes["mean fill"], "network": eyes["mean fill"]},
                                      truth="ground truth", before="with glasses", no_eyes="mean fill")
    assert "No method leaves glasses" in text and "no method paints eyes back" in text
    with pytest.raises(ValueError, match="needs"):
        ie.glasses_removal_finding(seen, eyes, truth="truth", before="with glasses", no_eyes="mean fill")
