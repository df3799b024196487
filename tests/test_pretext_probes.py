"""experiments/pretext_probes.py: label-budget probes, registered before they run, resumable,
"cannot answer" when the positive control fails; and the committed file is current."""
import dataclasses
import json
import warnings

import numpy as np
import pytest

from course_lib import stats
from tests.script_loader import load_script


@pytest.fixture
def mod(monkeypatch):
    # dataclasses look their module up
    return load_script("experiments/pretext_probes.py", name="pretext_probes", monkeypatch=monkeypatch)


def _quick(mod, seeds=(0, 1)):
    exp = mod.ProbeExperiment.tiny()
    return dataclasses.replace(exp, seeds=seeds, probe=dataclasses.replace(exp.probe, Cs=(0.1,), layers=("h3",),
                                                                           max_iter=50))


@pytest.mark.slow
def test_probe_experiment_tiny_end_to_end(tmp_path, monkeypatch, mod):
    """The tiny experiment trains every backbone, probes every budget and writes a complete
    file: registration, per-budget rows with intervals, the control and the family's verdicts."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    exp = _quick(mod)
    out = tmp_path / "pp.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # 50 iterations on purpose: this test checks plumbing
        result = mod.run(exp, out, log=lambda *a: None)
    assert json.loads(out.read_text())["status"] == "complete" == result["status"]
    assert set(result["by_budget"]) == {str(n) for n in exp.budgets}
    assert list(result["summary"]) == list(mod.BACKBONES)
    for row in result["summary"].values():
        assert 0.0 <= row["probe_mean"] <= 1.0 and len(row["seeds"]) == len(exp.seeds)
        assert row["ci"][0] <= row["probe_mean"] <= row["ci"][1]
        assert set(row["per_attribute"]) == set(result["attributes"])
    for n in result["verdicts"].values():
        assert set(n["family"]) == set(mod.FAMILY) and "passes" in n["positive_control"]
    assert result["registration"]["power"]["seeds"] == mod.PLANNED_SEEDS
    assert result["configs"]["jigsaw"]["steps"] == 3 and result["render_version"]


def test_the_registration_is_written_before_any_training(tmp_path, monkeypatch, mod):
    out = tmp_path / "pp.json"

    def refuse(*args, **kwargs):
        seen = json.loads(out.read_text())
        assert seen["status"] == "running" and seen["runs"] == []
        assert seen["registration"] == json.loads(json.dumps(mod.registration(exp)))
        raise RuntimeError("stop here")

    exp = _quick(mod)
    monkeypatch.setattr(mod, "train_backbone", refuse)
    with pytest.raises(RuntimeError, match="stop here"):
        mod.run(exp, out, log=lambda *a: None)


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch, mod):
    """Runs already in the file are kept; only the missing (seed, backbone) pairs train."""
    import torch

    from course_lib.backbone import ConvBackbone

    trained = []

    def fake(name, config, splits, exp, log):
        trained.append((name, config if isinstance(config, int) else config.seed))
        torch.manual_seed(len(trained))
        return ConvBackbone(), False, {}

    monkeypatch.setattr(mod, "train_backbone", fake)
    exp, out = _quick(mod), tmp_path / "pp.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = mod.run(exp, out, log=lambda *a: None)
        assert len(trained) == len(mod.BACKBONES) * len(exp.seeds)
        partial = {**first, "status": "running", "runs": first["runs"][:-2]}
        out.write_text(json.dumps(partial))
        trained.clear()
        again = mod.run(exp, out, log=lambda *a: None)
    assert trained == [(r["backbone"], r["seed"]) for r in first["runs"][-2:]]
    assert again["registered"] == first["registered"] and again["runs"][:-2] == first["runs"][:-2]
    # a file of another experiment is not resumed from
    trained.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod.run(dataclasses.replace(exp, effect=0.05), out, log=lambda *a: None)
    assert len(trained) == len(mod.BACKBONES) * len(exp.seeds)


def _runs(mod, scores: dict, budgets=(12,)):
    """Synthetic run records: backbone -> per-seed accuracy (the same at every budget)."""
    return [{"backbone": b, "seed": s, "budgets": {str(n): {
        "best_layer": "h1", "probe": float(v), "per_layer": {"h1": {"test": float(v), "val": float(v)}},
        "per_attribute": {a: float(v) for a in mod.ATTRIBUTE_NAMES}, "C": {}} for n in budgets}}
        for b, values in scores.items() for s, v in enumerate(values)]


def test_cannot_answer_when_the_positive_control_fails(mod):
    exp = dataclasses.replace(mod.ProbeExperiment.tiny(), seeds=(0, 1, 2, 3, 4), budgets=(12,), primary_budget=12)
    floor = np.array([0.50, 0.52, 0.49, 0.51, 0.50])
    good = {"random init": floor, "jigsaw": floor + [0.001, -0.002, 0.0, 0.002, -0.001],
            "rotation": floor + [0.05, 0.06, 0.055, 0.05, 0.058], "simclr": floor + [0.02, 0.03, 0.01, 0.025, 0.02]}
    passed = mod.analyse(_runs(mod, {**good, "supervised": floor + [0.10, 0.11, 0.09, 0.1, 0.12]}), exp)
    assert passed["primary"]["positive_control_passes"]
    assert passed["primary"]["answer"]["rotation"] == "better"
    assert passed["primary"]["answer"]["jigsaw"] == "no clear difference"
    expected = stats.compare_all({b: (good[b], floor) for b in mod.FAMILY}, paired=True)
    assert {b: v["p_adjusted"] for b, v in passed["verdicts"]["12"]["family"].items()} == \
        {b: c.p_adjusted for b, c in expected.items()}
    assert passed["summary"]["rotation"]["normalised_mean"] == pytest.approx(
        np.mean((good["rotation"] - floor) / (np.array([0.10, 0.11, 0.09, 0.1, 0.12]))))
    failed = mod.analyse(_runs(mod, {**good, "supervised": floor + [0.01, -0.02, 0.0, 0.01, -0.01]}), exp)
    assert not failed["primary"]["positive_control_passes"]
    assert set(failed["primary"]["answer"].values()) == {mod.CANNOT_ANSWER}
    assert failed["summary"]["rotation"]["normalised_mean"] is None   # a ceiling below the floor scales nothing


def test_the_seed_count_comes_from_the_power_computation(mod):
    plan = mod.power_plan()
    sd = np.sqrt(np.mean([v ** 2 for v in mod.PILOT_SD.values()]))
    assert plan["seeds"] == stats.seeds_for_power(0.03 / sd, alpha=0.05 / 3, paired=True, at_least=5)
    assert len(mod.ProbeExperiment().seeds) == plan["seeds"] >= 5
    n = plan["seeds"]
    assert plan["power_at_seeds"] >= 0.8
    assert n == 5 or stats.power(0.03 / sd, n - 1, alpha=0.05 / 3, paired=True) < 0.8   # the fewest that reach it


def test_committed_probe_results_are_current(mod):
    """pretext_probes.json was produced, to the end, by the script's current ProbeExperiment()
    and registration on the current ToyFaces drawing; its verdicts are what analyse() gives
    on its runs. Change any of them and this fails until `python experiments/pretext_probes.py` reruns."""
    from course_lib.results import load_result

    result = load_result("pretext_probes")
    exp = mod.ProbeExperiment()
    assert result["status"] == "complete", "the committed run did not finish"
    for key, value in mod._header(exp).items():
        assert result[key] == value, f"rerun experiments/pretext_probes.py: {key} changed"
    assert result["registered"]["git_commit"] and result["left_out"] == mod.LEFT_OUT
    pairs = sorted((r["backbone"], r["seed"]) for r in result["runs"])
    assert pairs == sorted((b, s) for b in mod.BACKBONES for s in exp.seeds)
    assert len(exp.seeds) >= 5
    again = json.loads(json.dumps(mod.analyse(result["runs"], exp)))
    assert again["verdicts"] == result["verdicts"] and again["primary"] == result["primary"]
