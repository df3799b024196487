"""course_lib.ssl_report: rounds 2 and 3's tables, verdicts and sentences, from hand-made files."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from course_lib import ssl_report  # noqa: E402


def _c(diff, low, high, verdict, p=0.01, p_adjusted=None):
    return {"diff": diff, "low": low, "high": high, "verdict": verdict, "p": p,
            "p_adjusted": p if p_adjusted is None else p_adjusted}


def _s(cov, fid=1.0, fd=150.0, rot=0.8):
    return {"diversity": {"mean": cov, "sd": 0.01, "ci": [cov - 0.02, cov + 0.02]},
            "fidelity": {"mean": fid, "sd": 0.05, "ci": [fid - 0.1, fid + 0.1]},
            "frechet": {"mean": fd, "sd": 5.0, "ci": [fd - 6, fd + 6]},
            "diversity_rotation": {"mean": rot, "sd": 0.02, "ci": [rot - 0.03, rot + 0.03]}}


def _result(control="better", family_verdict="better"):
    reg = {"seeds": [5, 6, 7, 8, 9],
           "primary_family": {"clusters vs none (coverage)": ["clusters", "none", "diversity"],
                              "rcg vs none (coverage)": ["rcg", "none", "diversity"]},
           "controls": {"positive: true attributes vs none (coverage)": ["attributes", "none", "diversity"]},
           "secondary": {"clusters vs none, Frechet": ["clusters", "none", "frechet"]}}
    answered = control == "better"
    fam = {"clusters vs none (coverage)": _c(0.06, 0.04, 0.08, family_verdict if answered else "cannot answer",
                                             p_adjusted=0.02),
           "rcg vs none (coverage)": _c(0.01, -0.02, 0.04, "no clear difference" if answered else "cannot answer",
                                        p=0.4, p_adjusted=0.4)}
    summary = {"none": _s(0.86), "attributes w=0": _s(0.7), "attributes w=1": _s(0.97, 1.5),
               "attributes w=2": _s(0.94, 1.0), "clusters w=1": _s(0.92), "rcg w=1": _s(0.88)}
    return {"registration": reg, "analysis": {
        "controls": {"positive: true attributes vs none (coverage)": _c(0.11, 0.09, 0.13, control)},
        "family": fam, "answered": answered,
        "secondary": {"clusters vs none, Frechet": _c(4.0, -9.0, 17.0, "no clear difference", p=0.45)},
        "summary": summary}}


def test_table_lists_the_arms_present_with_their_coverage_interval():
    table = ssl_report.round_table(_result())
    assert "true attributes" in table and "RCG, generated reps" in table
    assert "clusters, random encoder" not in table          # not in the hand-made file
    assert "0.970 [0.950, 0.990]" in table


def test_verdict_lines_name_the_score_of_each_contrast():
    text = ssl_report.round_verdicts(_result())
    assert "+0.110 coverage, 95% CI [+0.090, +0.130]" in text
    assert "+4.0 Frechet" in text                            # the secondary contrast's own score
    assert "Holm 0.02" in text and "CANNOT ANSWER" not in text


def test_finding_answers_only_when_the_control_passes():
    yes = ssl_report.round_finding(_result())
    assert "questions are answered" in yes and "Positive control (true attributes" in yes
    assert "clusters vs none (coverage): yes" in yes
    assert "no clear difference at 5 seeds" in yes
    worse = ssl_report.round_finding(_result(family_verdict="worse"))
    assert "no, it is worse" in worse
    failed = ssl_report.round_finding(_result(control="no clear difference"))
    assert "cannot answer its 2 questions" in failed and ": yes" not in failed
    assert "CANNOT ANSWER" in ssl_report.round_verdicts(_result(control="no clear difference"))


def test_tradeoff_plot_draws_each_conditional_arm_and_the_plain_point():
    ax = ssl_report.plot_tradeoff(_result())
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["attributes", "clusters", "rcg", "none"]
    assert list(ax.get_lines()[0].get_xdata()) == [0.7, 0.97, 0.94]   # w = 0, 1, 2 in order


def _round3(positive="better", family_verdict="worse"):
    reg = {"seeds": [10, 11, 12, 13, 14],
           "primary_family": {"REPA (rotation encoder) vs none (Frechet)": ["repa_rotation", "none", "frechet"],
                              "dispersive vs none (Frechet)": ["dispersive", "none", "frechet"]},
           "controls": {"positive: twice the steps vs none (Frechet)": ["none_2x", "none", "frechet"],
                        "negative: REPA (random encoder) vs none (Frechet)": ["repa_random", "none", "frechet"]},
           "secondary": {"REPA (rotation) vs none, KID": ["repa_rotation", "none", "kid"]}}
    answered = positive == "better"
    fam = {name: _c(20.0, 12.0, 28.0, family_verdict if answered else "cannot answer", p_adjusted=0.01)
           for name in reg["primary_family"]}
    summary = {"none": {**_s(0.86, fd=150.0), "kid": {"mean": 800.0, "sd": 50.0, "ci": [740.0, 860.0]}},
               "none_2x": _s(0.9, fd=110.0), "repa_rotation": _s(0.85, fd=170.0)}
    return {"registration": reg, "analysis": {
        "controls": {"positive: twice the steps vs none (Frechet)": _c(-39.0, -50.0, -28.0, positive),
                     "negative: REPA (random encoder) vs none (Frechet)": _c(24.0, 21.0, 27.0, "worse")},
        "family": fam, "answered": answered,
        "secondary": {"REPA (rotation) vs none, KID": _c(120.0, 40.0, 200.0, "worse")}, "summary": summary}}


def test_round3_table_leads_with_its_own_primary_score():
    table = ssl_report.round_table(_round3())
    assert table.splitlines()[0].split()[1] == "Frechet"        # round 3's primary score, not coverage
    assert "none, twice the steps" in table and "REPA, rotation encoder" in table
    assert "150.0 [144.0, 156.0]" in table and "dispersive loss" not in table   # absent from the file
    assert "800" in table                                       # KID where the file has it


def test_round3_finding_names_both_controls_and_answers_under_the_positive_one():
    text = ssl_report.round_finding(_round3())
    assert "Positive control (twice the steps vs none (Frechet)): better, -39.0 Frechet" in text
    assert "Negative control (REPA (random encoder) vs none (Frechet)): worse" in text
    assert "REPA (rotation encoder) vs none (Frechet): no, it is worse (+20.0 Frechet, 95% CI [+12.0, +28.0]" in text
    failed = ssl_report.round_finding(_round3(positive="no clear difference"))
    assert "cannot answer its 2 questions" in failed and "it is worse" not in failed
    assert "+120 KID" in ssl_report.round_verdicts(_round3())
