"""course_lib.diffusion_report: chapter 08's sentences follow its numbers."""
import math

import pytest

from course_lib import diffusion_report as report
from course_lib.diffusion_process import cosine_schedule
from course_lib.results import load_result


def test_the_reference_runs_report_reads_the_committed_table():
    table = load_result("ddpm_reference_steps")
    runs = report.snapshots(table)
    assert set(runs) == {"v", "eps"} and [r["step"] for r in runs["v"]] == sorted(r["step"] for r in runs["v"])
    text = report.reference_runs_report(table, target="v", live_budget=2000)
    vae = report.floors(table)["chapter-02 VAE (cpu profile)"]["frechet"]
    first_v = next(r["step"] for r in runs["v"] if r["frechet"] < vae)
    assert f"predicting v: first snapshot with a lower Frechet distance than the VAE: {first_v};" in text
    assert "predicting eps: first snapshot with a lower Frechet distance than the VAE: " in text
    assert "the cpu profile's live budget, 2000 steps" in text
    assert report.plot_reference_runs(table, target="v", live_budget=2000) is not None


def test_amplification_is_one_over_the_signal_left():
    a_bar = cosine_schedule(1000).alpha_bar
    text = report.amplification(a_bar, [898, 999])
    assert f"multiplied by {1 / math.sqrt(float(a_bar[999])):.3g}" in text and "t = 898" in text


def test_start_finding_says_which_start_wins_and_when_it_cannot_tell():
    late, early = [230.0, 228.0, 231.0], [202.0, 204.0, 201.0]
    text = report.start_finding({"T-1": late, "898": early, "oracle": [201.0, 205.0, 200.0]},
                                late="T-1", early="898", oracle="oracle", default="T-1")
    assert "From 898 it is lower than from T-1" in text and "is not supported by this measurement" in text
    assert "not clearly worse than the oracle start" in text
    tied = report.start_finding({"T-1": [230.0, 200.0, 215.0], "898": [220.0, 210.0, 214.0]},
                                late="T-1", early="898", default="T-1")
    assert "cannot tell the two starts apart" in tied
    kept = report.start_finding({"T-1": early, "898": late, "oracle": [150.0, 152.0, 151.0]},
                                late="T-1", early="898", oracle="oracle", default="T-1")
    assert "is the better of the two here" in kept and "costs against the oracle start" in kept


def test_live_vs_snapshot_does_not_claim_one_run():
    text = report.live_vs_snapshot(191.4, {"step": 2000, "frechet": 227.3}, live_steps=2000, sample_spread=7.5)
    assert "lower by 35.9" in text and "not one run" in text and "±7.5" in text
    assert "higher by" in report.live_vs_snapshot(240.0, {"step": 2000, "frechet": 227.3}, live_steps=2000)


def test_start_finding_needs_the_named_starts():
    with pytest.raises(KeyError):
        report.start_finding({"T-1": [1.0, 2.0]}, late="T-1", early="898", default="T-1")
