"""The re-asked fusion study (experiments/fusion_reasked.py): the committed file holds the
registration the script writes (primary metric, questions, controls outside them, alpha, the
power computation, >= 5 seeds), the pilot, every (arm, seed) row, and a verdict per question
that is the analysis of those rows."""
from __future__ import annotations

import json
import math

import pytest

from course_lib.facedraw import RENDER_VERSION
from course_lib.fusion_reasked import CANNOT_ANSWER, analyse, arm_table, verdict_lines
from course_lib.results import load_result
from tests.script_loader import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/fusion_reasked.py", name="experiment_fusion_reasked")


@pytest.fixture(scope="module")
def result():
    return load_result("fusion_reasked")


def test_registration_is_the_scripts_and_powered(script, result):
    reg = result["registration"]
    assert reg == json.loads(json.dumps(script.registration(reg["seeds"])))
    for field in ("primary_metric", "primary_key", "primary_family", "controls", "alpha", "power", "seeds", "rule"):
        assert field in reg, field
    assert reg["data_version"] == RENDER_VERSION, "ToyFaces changed: rerun experiments/fusion_reasked.py"
    assert len(reg["seeds"]) >= 5 and len(reg["seeds"]) >= reg["power"]["seeds_needed"]
    assert not set(map(tuple, reg["controls"].values())) & set(map(tuple, reg["primary_family"].values()))
    assert any(name.startswith("positive") for name in reg["controls"])


def test_the_pilot_is_recorded_as_a_pilot(result):
    pilot = result["pilot"]
    assert "not evidence" in pilot["what"]
    assert result["registration"]["train_size"] in {r["train_size"] for r in pilot["rows"]}


def test_every_arm_and_seed_is_there_and_finite(result):
    reg = result["registration"]
    assert {(r["arm"], r["seed"]) for r in result["rows"]} == {(a, s) for a in reg["arms"] for s in reg["seeds"]}
    for r in result["rows"]:
        assert all(math.isfinite(r[k]) for k in reg["reported_metrics"])


def test_a_verdict_per_question_from_the_rows(result):
    assert result["status"] == "finished"
    assert json.loads(json.dumps(analyse(result))) == result["analysis"]
    analysis = result["analysis"]
    assert set(analysis["family"]) == set(result["registration"]["primary_family"])
    allowed = {"better", "worse", "no clear difference", CANNOT_ANSWER}
    assert all(c["verdict"] in allowed for c in analysis["family"].values())
    if not analysis["answered"]:
        assert all(c["verdict"] == CANNOT_ANSWER for c in analysis["family"].values())
    lines = verdict_lines(result)
    assert sum(line.startswith("Question") for line in lines) == len(analysis["family"])
    assert len(arm_table(result)) == 2 + len(result["registration"]["arms"])
