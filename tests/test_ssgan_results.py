"""experiments/ssgan.py: a tiny run end to end, resumable, and the committed file is current;
course_lib.ssgan_results reads it."""
import copy
import dataclasses
import importlib.util
import json
import pathlib
import sys
import warnings

import pytest

from course_lib import ssgan_results
from course_lib.results import load_result

ROOT = pathlib.Path(__file__).parents[1]


def _module(monkeypatch, name="ssgan_experiment"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "ssgan.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_ssgan_experiment_tiny_and_resumable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    mod = _module(monkeypatch)
    exp = dataclasses.replace(mod.SSGANExperiment.tiny(), seeds=(0,))
    out = tmp_path / "ssgan.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mod.run(exp, out, log=lambda *a: None)
        logs = []
        mod.run(exp, out, log=logs.append)
    assert logs == [] and result["name"] == "ssgan"
    assert set(result["summary"]) == set(mod.VARIANTS)
    assert {"frechet", "fidelity", "diversity", "probe"} <= set(result["summary"]["ssgan"])
    assert "rotation_acc" in result["summary"]["ssgan"] and "frechet" not in result["summary"]["random discriminator"]
    assert result["configs"]["ssgan"]["gan"] == result["configs"]["dcgan"]


def test_committed_ssgan_results_are_current(monkeypatch):
    """ssgan.json was produced by the script's SSGANExperiment() on the current ToyFaces and
    GANConfig; rerun `python experiments/ssgan.py` when one changes."""
    from course_lib.results import load_result
    from course_lib.toyfaces import RENDER_VERSION

    mod = _module(monkeypatch)
    result = load_result("ssgan")
    exp = mod.SSGANExperiment()
    assert result["name"] == "ssgan" and result["render_version"] == RENDER_VERSION
    assert result["experiment"] == json.loads(json.dumps(dataclasses.asdict(exp)))
    assert result["configs"]["dcgan"] == json.loads(json.dumps(dataclasses.asdict(exp.gan_config(exp.seeds[0])))), \
        "rerun experiments/ssgan.py: chapter 03's GANConfig changed"
    for variant in mod.VARIANTS:
        assert result["summary"][variant]["seeds"] == list(exp.seeds), variant
    assert result["command"].startswith("python experiments/ssgan.py")


def test_report_and_finding_read_the_committed_file():
    ss = load_result("ssgan")
    text = ssgan_results.report(ss)
    assert text.startswith("from: python experiments/ssgan.py") and "rotation accuracy" in text
    assert "discriminator probe vs a random discriminator" in text
    finding = ssgan_results.literature_finding(ss)
    assert "Mimicry, CelebA 64 px (FID)" in finding and "finding: " in finding
    assert ssgan_results.plot_seeds(ss) is not None


def test_literature_finding_flips_with_the_measured_direction():
    ss = copy.deepcopy(load_result("ssgan"))
    summary = ss["summary"]
    summary["dcgan"]["frechet"]["values"] = [400.0, 401.0, 402.0]
    summary["ssgan"]["frechet"]["values"] = [300.0, 301.0, 302.0]
    summary["dcgan"]["frechet"]["mean"], summary["ssgan"]["frechet"]["mean"] = 401.0, 301.0
    better = ssgan_results.literature_finding(ss)
    assert "SS-GAN better (Welch" in better and "improves the samples" in better
    summary["dcgan"]["frechet"]["values"] = [300.0, 301.0, 302.0]
    summary["ssgan"]["frechet"]["values"] = [400.0, 401.0, 402.0]
    assert "makes the samples worse" in ssgan_results.literature_finding(ss)
