"""experiments/flow_study.py's committed rows: every arm ran three training seeds with the
configuration the script gives it now, on the current ToyFaces, and was scored with the
registered primary sampler (25 network calls)."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from course_lib.facedraw import RENDER_VERSION
from course_lib.results import load_result
from tests.script_loader import load_script

LATER_FIELDS = {"channels": 3, "condition": [], "p_uncond": 0.2}   # images, unconditional: as before


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/flow_study.py", name="experiment_flow_study")


def test_every_arm_has_three_seeds_of_the_current_config(script):
    study = load_result("flow_study")
    assert study["data_version"] == RENDER_VERSION
    assert Counter(r["arm"] for r in study["rows"]) == {arm: 3 for arm in script.ARMS}
    for r in study["rows"]:
        config = json.loads(json.dumps(dataclasses.asdict(script.arm_config(r["arm"], r["seed"]))))
        # fields FlowConfig gained after the first rows ran, at values that change nothing for them
        # (DDPMConfig.min_snr: the row's own "min_snr", absent before the min-SNR arm: the plain loss)
        added = {k: v for k, v in config.items() if k not in r["config"]}
        later = {**LATER_FIELDS, "min_snr": r.get("min_snr")}
        assert added.items() <= later.items(), f"{r['arm']} seed {r['seed']}: new fields {added}"
        assert r["config"] == {k: v for k, v in config.items() if k in r["config"]}, \
            f"{r['arm']} seed {r['seed']}: rerun experiments/flow_study.py"
        assert r.get("min_snr") == script.MIN_SNR.get(r["arm"])   # rows before the min-SNR arm lack the key


def test_primary_score_is_the_25_call_sampler(script):
    for r in load_result("flow_study")["rows"]:
        primary = next(s for s in r["samplers"] if s["steps"] == 25 and s["method"] in ("ddim", "euler"))
        assert primary["nfe"] == 25 and r["frechet"] == primary["frechet"]
