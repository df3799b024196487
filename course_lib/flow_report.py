"""Chapter 09's committed capacity study and the probes of its reference, in words and one figure.

``load_result("flow_capacity")`` (written by ``experiments/flow_capacity.py``) holds the
reference flow model's run (``arm == "base"``, chapter 08's U-Net) and a wider U-Net's run
(``"wide"``), each scored every 2000 steps (n = 500, sample seed 1), the wide run also with a
second, longer average of its weights, and the seconds per step of each arm. Chapter 09 reads
it through these functions:

- :func:`curve`: one arm's Frechet distance by step, for an average and a sampler;
- :func:`plot_capacity`: both arms against CPU time (in the base model's steps);
- :func:`capacity_finding`: equal CPU time, the longest run and the longer average, in words,
  each difference set against the spread of training seeds it must beat.

``load_result("flow_reference_probes")`` (``experiments/flow_reference_probes.py``) holds the
reference scored with other samplers, other weak models and guidance intervals, and after a
learning-rate cooldown; :func:`probes_table` lists them, :func:`probes_finding` sets each
family's best against the baseline it changes.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["PRIMARY", "curve", "plot_capacity", "capacity_finding", "PROBE_FAMILIES", "probes_table",
           "probes_finding"]

PRIMARY = "heun 6"   # the study's primary sampler (12 network calls)


def curve(result: dict, arm: str, *, ema: str | None = None, sampler: str = PRIMARY) -> dict[int, float]:
    """``{step: Frechet}`` of ``arm``'s rows for one average (default: the model's own EMA,
    ``result["averages"]["ema"]``) and one sampler, in step order."""
    rows = [r for r in result["rows"] if r["arm"] == arm and r["sampler"] == sampler]
    if not rows:
        raise KeyError(f"no {arm!r} rows with sampler {sampler!r} in the capacity results")
    ema = ema or result["averages"]["ema"]
    return dict(sorted((r["step"], r["frechet"]) for r in rows if r["ema"] == ema))


def _ratio(result: dict) -> float:
    return result["timing"]["wide_over_base"]


def plot_capacity(result: dict, *, floor: float | None = None):
    """Both arms' primary curve against CPU time (wide steps x the measured cost ratio), the
    wide run's longer average beside it, and ``floor`` (held-out real faces) as a line."""
    long_ema = result["averages"]["long_ema"]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for label, arm, ema, scale, style in (("chapter 08's U-Net (the old reference)", "base", None, 1.0, "o-"),
                                          ("wide U-Net, its EMA", "wide", None, _ratio(result), "s-"),
                                          ("wide U-Net, 3x longer average", "wide", long_ema, _ratio(result), "^--")):
        points = curve(result, arm, ema=ema)
        ax.plot([s * scale for s in points], list(points.values()), style, label=label)
    equal = result["timing"]["equal_time_steps"] * _ratio(result)
    ax.axvline(equal, color="gray", lw=1, ls="--")
    if floor is not None:
        ax.axhline(floor, color="gray", lw=1, ls=":", label="held-out real faces")
    ax.set_xlabel("CPU time, in the old reference's training steps")
    ax.set_ylabel(f"domain Frechet (n = 500, {PRIMARY})")
    ax.legend(fontsize=8)
    ax.set_title("what a wider U-Net buys at equal CPU time (dashed: the equal-time point)")
    fig.tight_layout()
    return fig


def capacity_finding(result: dict, *, spread: float) -> str:
    """The study in sentences: the wide model at equal CPU time against the base model's whole
    run, the wide model's longest run, and the longer average against the model's own EMA.
    ``spread``: the standard deviation of the primary Frechet distance over training seeds of
    one recipe (chapter 09's flow study), the noise one run of each arm carries."""
    base, wide = curve(result, "base"), curve(result, "wide")
    long_ema = result["averages"]["long_ema"]
    wide_long = curve(result, "wide", ema=long_ema)
    equal, base_end, wide_end = result["timing"]["equal_time_steps"], max(base), max(wide)

    def size(diff: float) -> str:
        k = abs(diff) / spread
        return (f"{k:.1f} times the spread of training seeds ({spread:.1f})"
                + ("" if k >= 3 else ", too little to call with one run of each"))

    lines = []
    if equal in wide:
        d = wide[equal] - base[base_end]
        lines.append(f"At equal CPU time ({equal} wide steps cost what {base_end} steps of chapter 08's U-Net cost, "
                     f"{_ratio(result):.2f}x per step), the wide U-Net scores {wide[equal]:.1f} against "
                     f"{base[base_end]:.1f}: {'lower' if d < 0 else 'higher'} by {abs(d):.1f}, {size(d)}.")
    lines.append(f"Trained to {wide_end} steps ({wide_end * _ratio(result) / base_end:.1f}x the old reference's CPU "
                 f"time), it scores {wide[wide_end]:.1f}; the old reference stayed between {min(base.values()):.1f} "
                 f"and {max(v for s, v in base.items() if s >= base_end / 2):.1f} over its second half.")
    common = max(set(wide) & set(wide_long))
    d = wide_long[common] - wide[common]
    lines.append(f"The longer average (about the last k/3 steps instead of k/9) at step {common}: "
                 f"{wide_long[common]:.1f} against {wide[common]:.1f}, "
                 f"{'better' if d < 0 else 'worse'} by {abs(d):.1f}, {size(d)}.")
    return "\n".join(lines)


# each probe family of flow_reference_probes.json, and the baseline row it changes: the samplers
# and the cooldown change the unguided reference, the weak models and intervals its autoguidance
PROBE_FAMILIES = {"sampler": "unguided", "cooldown": "unguided", "weak": "guided", "interval": "guided",
                  "cooldown_guided": "guided"}


def _baselines(result: dict) -> dict[str, dict]:
    rows = [r for r in result["rows"] if r["probe"] == "baseline"]
    return {"unguided": next(r for r in rows if "weak" not in r), "guided": next(r for r in rows if "weak" in r)}


def probes_table(result: dict) -> str:
    """Every row of the probes file: family, what was tried, and its scores."""
    lines = [f"{'probe':10}{'what':68}{'Frechet':>8}{'KID':>8}{'fidelity':>9}{'diversity':>10}"]
    lines += [f"{r['probe']:10}{r['what']:68}{r['frechet']:8.1f}{r['kid']:8.0f}{r['fidelity']:9.3f}"
              f"{r['diversity']:10.3f}" for r in result["rows"]]
    return "\n".join(lines)


def probes_finding(result: dict, *, margin: float) -> str:
    """Each probe family's lowest Frechet distance against the baseline it changes (the reference
    alone, or autoguided at the chosen scale), and whether any family beats its baseline by more
    than ``margin`` (a spread the difference must exceed, e.g. the sample-seed standard deviation)."""
    base = _baselines(result)
    lines, better = [], []
    for family, which in PROBE_FAMILIES.items():
        rows = [r for r in result["rows"] if r["probe"] == family]
        if not rows:
            continue
        best = min(rows, key=lambda r: r["frechet"])
        diff = best["frechet"] - base[which]["frechet"]
        if diff < -margin:
            better.append(family)
        lines.append(f"{family}: best {best['what']}, Frechet {best['frechet']:.1f} against "
                     f"{base[which]['frechet']:.1f} ({base[which]['what']}): {diff:+.1f}")
    lines.append(f"families that beat their baseline by more than {margin:.1f}: "
                 + (", ".join(better) if better else "none"))
    return "\n".join(lines)
