"""The self-supervision-in-the-generator study (experiments/ssl_generation.py): the committed
file holds the registration the script writes, every (arm, seed) row, the compute accounting
the script computes now, and the verdicts its analysis gives from those rows."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from course_lib.facedraw import RENDER_VERSION
from course_lib.results import result_path
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = result_path("ssl_generation")


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/ssl_generation.py", name="experiment_ssl_generation")


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
    assert {(r["arm"], r["seed"]) for r in result["rows"]} == {(a, s) for a in script.ARMS + script.LATER_ARMS
                                                               for s in seeds}
    steps = {**result["calibration"]["steps"], "rcg": result["addendum"]["calibration"]["steps"]}
    for r in result["rows"]:
        assert r["steps"] == steps[r["arm"]]
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


def test_rcg_was_registered_on_its_own_and_paid_for_its_extra_work(script, result):
    """The addendum is the script's, its power is computed, and RCG's steps are the plain
    arm's compute minus the encoding and the representation generator (counted now)."""
    add = result["addendum"]
    assert {k: v for k, v in add.items() if k != "calibration"} == json.loads(json.dumps(script.addendum(add["seeds"])))
    assert add["seeds"] == result["registration"]["seeds"]
    assert len(add["seeds"]) >= add["power"]["seeds_needed"]
    calib = script.calibrate_rcg(result["calibration"]["flops_per_step"]["none"])
    assert calib == add["calibration"]
    assert calib["steps"] < result["calibration"]["steps"]["none"]
    later = result["analysis"]["addendum"]
    assert set(later["question"]) == set(add["question"])
    for c in later["question"].values():
        assert c["verdict"] in ("better", "worse", "no clear difference", "cannot answer")
        assert c["low"] <= c["diff"] <= c["high"]


# ---------------------------------------------------------------- round 2 (--round 2)
@pytest.fixture(scope="module")
def round2():
    return json.loads(result_path("ssl_generation_round2").read_text())


def test_round2_registration_is_the_scripts_fresh_seeds_and_powered(script, round2, result):
    reg = round2["registration"]
    assert reg == json.loads(json.dumps(script.registration_round2(reg["seeds"])))
    assert not set(reg["seeds"]) & set(result["registration"]["seeds"]), "round 2 must not reuse round 1's seeds"
    assert len(reg["seeds"]) >= max(5, reg["power"]["seeds_needed"])
    assert not set(map(tuple, reg["controls"].values())) & set(map(tuple, reg["primary_family"].values()))


def test_round2_rows_complete_and_paid_for(script, round2):
    reg, calib = round2["registration"], round2["calibration"]
    assert {(r["arm"], r["seed"]) for r in round2["rows"]} == {(a, s) for a in reg["arms"] for s in reg["seeds"]}
    assert calib["rcg"] == script.calibrate_rcg(calib["flops_per_step"]["none"])
    assert {k: v for k, v in calib["steps"].items() if k != "rcg"} == script.calibrate(script.ROUND2_ARMS)["steps"]
    for r in round2["rows"]:
        assert r["steps"] == calib["steps"][r["arm"]]
        for s in r["scores"]:
            assert all(math.isfinite(s[k]) for k in ("frechet", "fidelity", "diversity", "diversity_rotation"))


@pytest.mark.parametrize("name", ["ssl_generation_round2", "ssl_generation_round3", "ssl_generation_round4"])
def test_later_rounds_verdicts_are_the_analysis_of_the_rows(script, name):
    later = json.loads(result_path(name).read_text())
    assert json.loads(json.dumps(script.analyse(later))) == later["analysis"]
    a = later["analysis"]
    assert a["answered"] == all(c["verdict"] == "better" for n, c in a["controls"].items() if n.startswith("positive"))
    if not a["answered"]:
        assert all(c["verdict"] == "cannot answer" for c in a["family"].values())


# ---------------------------------------------------------------- rounds 3 and 4 (--round R)
LATER = {3: "ssl_generation_round3", 4: "ssl_generation_round4"}


@pytest.fixture(scope="module")
def round3():
    return json.loads(result_path("ssl_generation_round3").read_text())


@pytest.mark.parametrize("round_", sorted(LATER))
def test_later_round_registration_is_the_scripts_fresh_seeds_and_powered(script, round_, round2, result):
    reg = json.loads(result_path(LATER[round_]).read_text())["registration"]
    assert reg == json.loads(json.dumps(script.ROUNDS[round_][3](reg["seeds"])))
    earlier = set(result["registration"]["seeds"]) | set(round2["registration"]["seeds"])
    for r in range(3, round_):
        earlier |= set(json.loads(result_path(LATER[r]).read_text())["registration"]["seeds"])
    assert not set(reg["seeds"]) & earlier, f"round {round_} must not reuse earlier rounds' seeds"
    assert len(reg["seeds"]) >= max(5, reg["power"]["seeds_needed"])
    assert not set(map(tuple, reg["controls"].values())) & set(map(tuple, reg["primary_family"].values()))
    # REPA's target here is the second feature space's encoder: no contrast of that arm reads that space
    contrasts = {**reg["primary_family"], **reg["controls"], **reg["secondary"]}.values()
    assert not [c for c in contrasts if "repa_rotation" in c[:2] and c[2].endswith("_rotation")]


@pytest.mark.parametrize("round_", sorted(LATER))
def test_later_round_rows_complete_and_paid_for(script, round_):
    later = json.loads(result_path(LATER[round_]).read_text())
    reg, calib = later["registration"], later["calibration"]
    assert {(r["arm"], r["seed"]) for r in later["rows"]} == {(a, s) for a in reg["arms"] for s in reg["seeds"]}
    assert calib["steps"] == script.calibrate(script.ROUNDS[round_][0],
                                              script.ROUND_STEPS.get(round_, script.STEPS))["steps"]
    for r in later["rows"]:
        assert r["steps"] == calib["steps"][r["arm"]]
        assert r.get("train_size", 6000) == script.train_size(r["arm"], round_)
        for s in r["scores"]:
            assert all(math.isfinite(s[k]) for k in ("frechet", "kid", "fidelity", "diversity", "frechet_rotation"))


def test_round4_asks_at_500_faces_with_more_data_as_its_control(script):
    reg = script.registration_round4(script.ROUND4_SEEDS)
    assert reg["train_size"] == 500 and reg["train_size_by_arm"] == {"none_6000": 6000}
    assert [c[:2] for n, c in reg["controls"].items() if n.startswith("positive")] == [("none_6000", "none")]
    pilot = reg["pilot"]["frechet"]   # the budget is where the pilot saw the data matter most
    assert pilot["N=500, 2400 steps"] - pilot["N=6000, 2400 steps"] > pilot["N=500, 800 steps"] - pilot[
        "N=6000, 800 steps"]
    assert reg["steps_plain"] == 2400
