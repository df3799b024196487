"""course_lib.flow_report: the capacity study's sentences follow the numbers in the file."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from course_lib import flow_report  # noqa: E402

EMA, LONG = "1 - 9 / (10 + k)", "1 - 3 / (10 + k)"


def _result(wide: dict, wide_long: dict, base: dict | None = None) -> dict:
    base = base or {2000: 112.0, 4000: 88.0, 6000: 80.0, 8000: 79.0, 10000: 78.0, 12000: 80.0}
    rows = [{"arm": "base", "ema": EMA, "step": s, "sampler": "heun 6", "frechet": f} for s, f in base.items()]
    rows += [{"arm": "wide", "ema": EMA, "step": s, "sampler": "heun 6", "frechet": f} for s, f in wide.items()]
    rows += [{"arm": "wide", "ema": LONG, "step": s, "sampler": "heun 6", "frechet": f} for s, f in wide_long.items()]
    rows += [{"arm": "wide", "ema": EMA, "step": 2000, "sampler": "euler 25", "frechet": 200.0}]
    return {"rows": rows, "averages": {"ema": EMA, "long_ema": LONG},
            "timing": {"wide_over_base": 2.4, "equal_time_steps": 5000}}


def test_curve_picks_the_arm_average_and_sampler():
    r = _result({2000: 95.0, 5000: 70.0}, {2000: 99.0})
    assert flow_report.curve(r, "wide") == {2000: 95.0, 5000: 70.0}
    assert flow_report.curve(r, "wide", ema=LONG) == {2000: 99.0}
    assert flow_report.curve(r, "wide", sampler="euler 25") == {2000: 200.0}
    with pytest.raises(KeyError, match="no 'wide' rows with sampler 'heun 12'"):
        flow_report.curve(r, "wide", sampler="heun 12")


def test_finding_sets_each_difference_against_the_seed_spread():
    r = _result({2000: 95.0, 4000: 79.0, 5000: 70.0, 10000: 60.0}, {2000: 99.0, 10000: 59.0})
    text = flow_report.capacity_finding(r, spread=5.0)
    assert "At equal CPU time (5000 wide steps cost what 12000 steps" in text
    assert "scores 70.0 against 80.0: lower by 10.0, 2.0 times the spread of training seeds (5.0), too little" in text
    assert "Trained to 10000 steps (2.0x the old reference's CPU time), it scores 60.0" in text
    assert "between 78.0 and 80.0 over its second half" in text
    assert "at step 10000: 59.0 against 60.0, better by 1.0, 0.2 times" in text
    big = flow_report.capacity_finding(_result({5000: 50.0, 10000: 45.0}, {10000: 52.0}), spread=5.0)
    assert "lower by 30.0, 6.0 times the spread of training seeds (5.0)." in big
    assert "worse by 7.0, 1.4 times" in big


def test_the_equal_time_sentence_waits_for_its_snapshot():
    text = flow_report.capacity_finding(_result({2000: 95.0, 4000: 79.0}, {4000: 80.0}), spread=5.0)
    assert "equal CPU time" not in text and "Trained to 4000 steps" in text


def test_plot_draws_three_curves_and_the_floor():
    fig = flow_report.plot_capacity(_result({2000: 95.0, 5000: 70.0}, {2000: 99.0, 5000: 72.0}), floor=40.0)
    ax = fig.axes[0]
    assert len(ax.lines) == 5                       # three curves, the equal-time line, the floor
    wide = ax.lines[1]
    assert list(wide.get_xdata()) == [2000 * 2.4, 5000 * 2.4]   # x is CPU time in base steps


def _probes(**best: float) -> dict:
    """A probes file: baselines 65 (unguided) and 58 (guided), one row per family at ``best``."""
    scores = {"kid": 100.0, "fidelity": 1.2, "diversity": 0.95}
    rows = [{"probe": "baseline", "what": "reference alone", "frechet": 65.0, **scores},
            {"probe": "baseline", "what": "autoguided", "weak": "live 2000", "scale": 1.5, "frechet": 58.0, **scores}]
    rows += [{"probe": family, "what": f"{family} try", "frechet": value, **scores} for family, value in best.items()]
    rows += [{"probe": family, "what": f"{family} worse try", "frechet": value + 20, **scores}
             for family, value in best.items()]
    return {"rows": rows}


def test_each_probe_family_is_set_against_the_baseline_it_changes():
    text = flow_report.probes_finding(_probes(sampler=64.0, weak=57.5, interval=50.0, cooldown=66.0), margin=2.0)
    assert "sampler: best sampler try, Frechet 64.0 against 65.0 (reference alone): -1.0" in text
    assert "weak: best weak try, Frechet 57.5 against 58.0 (autoguided): -0.5" in text
    assert "cooldown: best cooldown try, Frechet 66.0 against 65.0 (reference alone): +1.0" in text
    assert text.endswith("families that beat their baseline by more than 2.0: interval")


def test_no_family_beyond_the_margin_says_none():
    text = flow_report.probes_finding(_probes(sampler=64.0, weak=57.0), margin=2.0)
    assert text.endswith("by more than 2.0: none") and "interval" not in text
    assert len(flow_report.probes_table(_probes(sampler=64.0)).splitlines()) == 1 + 4
