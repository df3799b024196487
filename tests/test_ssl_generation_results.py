"""The self-supervision-in-the-generator study (experiments/ssl_generation.py): the committed
file holds the registration the script writes, every (arm, seed) row, the compute accounting
the script computes now, and the verdicts its analysis gives from those rows."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from course_lib.facedraw import RENDER_VERSION
from course_lib.results import result_path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "ssl_generation.py"
RESULTS = result_path("ssl_generation")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("experiment_ssl_generation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result():
    return json.loads(RESULTS.read_text())


def test_registration_is_the_scripts_and_powered(script, result):
    reg = result["registration"]
    assert reg == json.loads(json.dumps(script.registration(reg["seeds"])))
    assert reg["data_version"] == RENDER_VERSION, "ToyFaces changed: rerun experiments/ssl_generation.py"
    assert len(reg["seeds"]) >= 5 and len(reg["seeds"]) >= reg["power"]["seeds_needed"]
    # controls stay outside the family of questions
    assert not set(map(tuple, reg["controls"].values())) & set(map(tuple, reg["primary_family"].values()))


def test_every_arm_and_seed_is_there_and_finite(script, result):
    seeds = result["registration"]["seeds"]
    assert {(r["arm"], r["seed"]) for r in result["rows"]} == {(a, s) for a in script.ARMS for s in seeds}
    for r in result["rows"]:
        assert r["steps"] == result["calibration"]["steps"][r["arm"]]
        for s in r["scores"]:
            assert all(math.isfinite(s[k]) for k in ("frechet", "kid", "fidelity", "diversity", "frechet_rotation"))


def test_compute_accounting_is_current(script, result):
    assert script.calibrate()["steps"] == result["calibration"]["steps"]


def test_verdicts_are_the_analysis_of_the_rows(script, result):
    assert json.loads(json.dumps(script.analyse(result))) == result["analysis"]
    analysis = result["analysis"]
    positives = [c for n, c in analysis["controls"].items() if n.startswith("positive")]
    if not all(c["verdict"] == "better" for c in positives):
        assert all(c["verdict"] == "cannot answer" for c in analysis["family"].values())


def test_the_figure_is_committed():
    assert (ROOT / "docs" / "figures" / "ssl_generation_grid.png").is_file()
