"""experiments/ssgan.py: a tiny run end to end and resumable, its analysis, and the committed
file current; course_lib.ssgan_results reads it."""
import copy
import dataclasses
import json
import warnings

import pytest

from course_lib import ssgan_results
from course_lib.results import load_result
from course_lib.toyfaces import RENDER_VERSION
from tests.script_loader import load_script


def _module(monkeypatch, name="ssgan_experiment"):
    return load_script("experiments/ssgan.py", name=name, monkeypatch=monkeypatch)


@pytest.mark.slow
def test_ssgan_experiment_tiny_and_resumable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    mod = _module(monkeypatch)
    exp = mod.SSGANExperiment.tiny()
    out = tmp_path / "ssgan.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mod.run(exp, out, run_dir=tmp_path / "runs", log=lambda *a: None)
        logs = []
        again = mod.run(exp, out, run_dir=tmp_path / "runs", log=logs.append)
    assert logs == [] and again["runs"] == result["runs"]
    assert set(result["summary"]) == {"dcgan", "dcgan@half", "ssgan", "random discriminator"}
    assert {"frechet", "fidelity", "diversity", "probe", "probe_all"} <= set(result["summary"]["ssgan"])
    assert "frechet" not in result["summary"]["random discriminator"]
    half = next(r for r in result["runs"] if r["variant"] == "dcgan@half")
    assert half["steps"] == result["registration"]["half_way_step"] == exp.gan_config(0).steps // 2
    a = result["analysis"]
    assert set(a["questions"]) == set(mod.QUESTIONS) and set(a["secondary"]) == set(mod.SECONDARY)
    for q, c in a["questions"].items():       # the rule: a question whose control failed is not answered
        control = a["controls"][mod.CONTROLS[q][0]]
        assert (c["verdict"] == "cannot answer") == (control["verdict"] != "better")
    with pytest.raises(SystemExit, match="another experiment"):
        mod.run(dataclasses.replace(exp, n=30), out, run_dir=tmp_path / "runs", log=lambda *a: None)


def test_analysis_needs_every_run(monkeypatch):
    mod = _module(monkeypatch)
    ss = copy.deepcopy(load_result("ssgan"))
    ss["runs"] = [r for r in ss["runs"] if r["seed"] != ss["registration"]["seeds"][-1]]
    assert mod.analyse(ss) is None


def test_committed_ssgan_results_are_current(monkeypatch):
    """ssgan.json was produced by the script's SSGANExperiment() and registration on the current
    ToyFaces and GANConfig, it is complete, and its verdicts are the analysis of its runs."""
    mod = _module(monkeypatch)
    result = load_result("ssgan")
    exp = mod.SSGANExperiment()
    assert result["name"] == "ssgan" and result["render_version"] == RENDER_VERSION
    assert result["experiment"] == json.loads(json.dumps(dataclasses.asdict(exp)))
    assert result["registration"] == json.loads(json.dumps(mod.registration(exp)))
    assert result["configs"]["dcgan"] == json.loads(json.dumps(dataclasses.asdict(exp.gan_config(exp.seeds[0])))), \
        "rerun experiments/ssgan.py: chapter 03's GANConfig changed"
    assert len(exp.seeds) >= result["registration"]["power"]["seeds_needed"] >= 5
    for variant in result["summary"]:
        assert result["summary"][variant]["seeds"] == list(exp.seeds), variant
    assert result["analysis"] == json.loads(json.dumps(mod.analyse(result)))
    assert result["command"].startswith("python experiments/ssgan.py")


def test_report_and_finding_read_the_committed_file():
    ss = load_result("ssgan")
    text = ssgan_results.report(ss)
    assert text.startswith("from: python experiments/ssgan.py") and "rotation accuracy" in text
    assert "controls (each question's own" in text and "questions (one Holm family" in text
    finding = ssgan_results.literature_finding(ss)
    assert "Mimicry, CelebA 64 px (FID)" in finding and "finding: " in finding
    assert ssgan_results.plot_seeds(ss) is not None


@pytest.mark.parametrize("verdict, words", [("better", "improves the samples"), ("worse", "makes the samples worse"),
                                            ("no clear difference", "does not change the sample quality measurably"),
                                            ("cannot answer", "positive control failed")])
def test_literature_finding_follows_the_registered_verdict(verdict, words):
    ss = copy.deepcopy(load_result("ssgan"))
    ss["analysis"]["questions"][ssgan_results.SAMPLES]["verdict"] = verdict
    assert words in ssgan_results.literature_finding(ss)
