"""course_lib.fusion_reasked: the Bernoulli floor's known values, and the verdicts and
sentences it generates from a results file (answered, positive control failed, unfinished)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.fusion_reasked import CANNOT_ANSWER, analyse, arm_table, bernoulli_floor, gap_table, verdict_lines


def test_floor_known_values():
    black_white = torch.tensor([0, 255], dtype=torch.uint8).repeat(2, 3, 4, 2)   # (2, 3, 4, 4)... of 0/255
    assert torch.equal(bernoulli_floor(black_white), torch.zeros(2))
    grey = torch.full((3, 3, 4, 4), 0.5)
    assert torch.allclose(bernoulli_floor(grey), torch.full((3,), 48 * math.log(2)))


def test_floor_is_the_smallest_bernoulli_reconstruction_term():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(0.01, 0.99)
    at_x = F.binary_cross_entropy_with_logits(torch.logit(x), x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(at_x, bernoulli_floor(x), rtol=1e-4)
    other = F.binary_cross_entropy_with_logits(torch.logit(x) + 0.3, x, reduction="none").flatten(1).sum(1)
    assert bool((other > bernoulli_floor(x)).all())


def registration(seeds=(0, 1, 2, 3, 4)):
    return {
        "regime": "N = 100", "regime_reason": "pilot", "primary_metric": "test PSNR", "primary_key": "test_psnr",
        "higher_is_better": True, "unit": "dB", "reported_metrics": ["test_psnr"], "alpha": 0.05,
        "primary_family": {"init vs baseline": ["init", "baseline"], "joint vs baseline": ["joint", "baseline"]},
        "controls": {"positive: more data vs baseline": ["big", "baseline"],
                     "negative: random init vs baseline": ["rand", "baseline"]},
        "secondary": {}, "seeds": list(seeds), "arms": ["baseline", "big", "rand", "init", "joint"],
        "power": {"alpha_per_test": 0.025, "detectable_effect_sd_at_80": 2.3},
    }


def rows(gains: dict, seeds=(0, 1, 2, 3, 4)):
    rng = np.random.default_rng(0)
    out = []
    for s in seeds:
        base = 20 + rng.normal(0, 0.5)
        for arm, gain in gains.items():
            out.append({"arm": arm, "seed": s, "test_psnr": base + gain + rng.normal(0, 0.05)})
    return out


def test_answered_when_the_positive_control_passes():
    result = {"registration": registration(),
              "rows": rows({"baseline": 0, "big": 2.0, "rand": 0, "init": 1.0, "joint": 0})}
    analysis = analyse(result)
    assert analysis["answered"]
    assert analysis["controls"]["positive: more data vs baseline"]["verdict"] == "better"
    assert analysis["family"]["init vs baseline"]["verdict"] == "better"
    assert analysis["family"]["joint vs baseline"]["verdict"] == "no clear difference"
    text = "\n".join(verdict_lines(result))
    assert CANNOT_ANSWER not in text
    assert re.search(r"Question, init vs baseline: \+(0\.9|1\.0)\d dB \(95% CI .*\): better\.", text)
    assert "95% CI" in text and "Holm-adjusted" in text
    (bound,) = [line for line in verdict_lines(result) if line.startswith("Bound")]
    top = max(c["high"] for c in analysis["family"].values())
    known = analysis["controls"]["positive: more data vs baseline"]["diff"]
    assert f"{top:+.2f} dB" in bound and f"of the smallest positive control's effect ({known:+.2f} dB)" in bound


def test_cannot_answer_when_the_positive_control_fails():
    result = {"registration": registration(),
              "rows": rows({"baseline": 0, "big": 0.0, "rand": 0, "init": 1.0, "joint": 0})}
    analysis = analyse(result)
    assert not analysis["answered"]
    assert all(v["verdict"] == CANNOT_ANSWER for v in analysis["family"].values())
    assert analysis["family_without_the_rule"]["init vs baseline"] == "better"   # kept beside, labelled
    lines = verdict_lines(result)
    assert any("did not pass" in line and CANNOT_ANSWER in line for line in lines)
    questions = [line for line in lines if line.startswith("Question")]
    assert len(questions) == 2 and all(CANNOT_ANSWER in q for q in questions)
    assert not any(line.startswith("Bound") for line in lines)   # no bound from a study that cannot answer


def test_unfinished_study_gives_no_verdict():
    result = {"registration": registration(), "rows": rows({"baseline": 0, "big": 2.0}, seeds=(0, 1))}
    assert analyse(result) is None
    (line,) = verdict_lines(result)
    assert "not finished" in line and "4 runs of 25" in line


def test_gap_table_has_a_row_per_size():
    pilot = {"rows": [{"train_size": n, "test_psnr": 20.0, "train_psnr": 25.0, "test_excess": 100.0,
                       "test_floor": 1800.0, "seconds": 30.0, "twenty_times": {"test_psnr": 22.0}}
                      for n in (50, 100)]}
    table = gap_table(pilot)
    assert len(table) == 4 and "| 50 | 20.00 | 25.00 | 5.00 | 22.00 |" in table[2]


@pytest.mark.parametrize("bad", [{"rows": []}])
def test_analyse_needs_a_registration(bad):
    with pytest.raises(KeyError):
        analyse(bad)


def test_arm_table_gives_means_and_intervals():
    reg = {**registration(), "reported_metrics": ["test_psnr", "train_psnr", "test_excess"]}
    result = {"registration": reg, "rows": [{**r, "train_psnr": r["test_psnr"] + 5, "test_excess": 80.0}
                                            for r in rows({"baseline": 0, "big": 2.0, "rand": 0, "init": 1.0,
                                                           "joint": 0})]}
    table = arm_table(result)
    assert len(table) == 2 + 5 and table[2].startswith("| baseline | 2") and "[" in table[2]
