"""The SimCLR ablation's verdict sentences, from hand-made result files (course_lib.contrastive_report)."""
import json

import pytest

from course_lib import contrastive, contrastive_report as R
from course_lib.results import load_result

REGISTRATION = {"family": {"members": ["no crop", "no colour"], "against": "all", "alpha": 0.05},
                "positive_control": {"variant": "no augmentation", "against": "all", "alpha": 0.05}}
BASE = [0.500, 0.512, 0.505, 0.498, 0.515, 0.503, 0.509]        # "all", 7 seeds
JITTER = [0.001, -0.002, 0.0015, -0.001, 0.002, -0.0005, 0.0]    # seed noise of a paired difference


def _file(no_crop: float, no_colour: float, control: float, *, status="complete") -> dict:
    """A registered ablation file whose variants sit ``shift`` accuracy from "all" at every seed."""
    def row(shift, colour_shift=0.0):
        seeds = [b + shift + j for b, j in zip(BASE, JITTER)]
        return {"seeds": seeds, "colour": [s - 0.1 + colour_shift for s in seeds], "rest": [s + 0.02 for s in seeds]}
    summary = {"all": {"seeds": BASE, "colour": [b - 0.1 for b in BASE], "rest": [b + 0.02 for b in BASE]},
               "no crop": row(no_crop), "no colour": row(no_colour, colour_shift=0.03),
               "no augmentation": row(control)}
    configs = {"all": {"augmentations": ["crop", "flip", "colour"]}, "no crop": {"augmentations": ["flip", "colour"]},
               "no colour": {"augmentations": ["crop", "flip"]}, "no augmentation": {"augmentations": []}}
    return {"registration": REGISTRATION, "status": status, "summary": summary, "configs": configs}


def test_clear_verdicts_when_the_control_passes():
    result = _file(no_crop=-0.03, no_colour=0.02, control=-0.06)
    a = R.ablation_analysis(result)
    assert a["positive_control"]["passes"]
    assert a["answer"] == {"no crop": "worse", "no colour": "better"}
    assert a["colour"]["no colour"].diff == pytest.approx(0.05, abs=1e-3)   # beside, outside the family
    text = R.ablation_finding(result)
    assert "the control passes" in text and "no crop is worse than all" in text
    assert "no colour is better than all" in text and "colour attributes +0.050" in text
    assert "could have been missed" not in text


def test_no_clear_difference_says_what_could_have_been_missed():
    text = R.ablation_finding(_file(no_crop=0.0, no_colour=0.0005, control=-0.06))
    assert "the control passes" in text and "no crop vs all: no clear difference" in text
    assert "could have been missed" in text and "cannot answer" not in text


def test_a_failed_positive_control_makes_every_contrast_cannot_answer():
    result = _file(no_crop=-0.03, no_colour=0.02, control=0.0)
    a = R.ablation_analysis(result)
    assert not a["positive_control"]["passes"]
    assert a["family"]["no crop"].verdict == "worse"                  # measured, but not reported as a verdict
    assert a["answer"] == {"no crop": R.CANNOT_ANSWER, "no colour": R.CANNOT_ANSWER}
    text = R.ablation_finding(result)
    assert "cannot answer" in text and "worse" not in text and "better" not in text


def test_a_control_that_moves_the_other_way_still_passes():
    """Two-sided: identical views may make a better probe (colour kept); the probe saw the change."""
    assert R.ablation_analysis(_file(no_crop=0.0, no_colour=0.0, control=0.05))["positive_control"]["passes"]


def test_an_unfinished_or_uneven_file_gives_no_verdict():
    assert "not finished" in R.ablation_finding(_file(-0.03, 0.02, -0.06, status="running"))
    uneven = _file(-0.03, 0.02, -0.06)
    uneven["summary"]["no crop"]["seeds"] = uneven["summary"]["no crop"]["seeds"][:3]
    with pytest.raises(ValueError, match="same >= 2 seeds"):
        R.ablation_analysis(uneven)


def test_the_table_has_a_row_per_variant():
    table = R.ablation_table(_file(-0.03, 0.02, -0.06))
    assert "no augmentation (identity)" in table and "all (crop+flip+colour)" in table


def test_the_committed_file_is_read_whichever_schema_it_has():
    ablation = load_result("simclr_ablation")
    assert contrastive.ablation_finding is R.ablation_finding
    assert R.ablation_finding(ablation) and len(R.ablation_table(ablation).splitlines()) == len(ablation["summary"]) + 1
    json.dumps(ablation)


def test_a_file_without_registration_is_refused():
    with pytest.raises(ValueError, match="registration"):
        R.ablation_finding({"summary": {}})
