"""Chapter 08's measurements in words: the reference runs, where sampling starts, the live run.

The chapter's results cells call these functions, so the prose that reads a number is
written once, tested, and follows the number when a re-run changes it:

- :func:`snapshots`, :func:`plot_reference_runs`, :func:`reference_runs_report`: the committed
  table of the reference runs' snapshots (``load_result("ddpm_reference_steps")``, written by
  ``experiments/ddpm_reference.py --evaluate``), both prediction targets;
- :func:`amplification`: what forming ``x_0`` from ``x_t`` multiplies a noise prediction's
  error by, at each start (the reason an eps-predicting model cannot start at ``T - 1``);
- :func:`start_finding`: two starts (and an oracle start) compared over paired sample seeds;
- :func:`live_vs_snapshot`: the live model beside the reference run's snapshot at its step.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt

from .stats import BETTER, UNCLEAR, WORSE, compare_all

__all__ = ["snapshots", "floors", "plot_reference_runs", "reference_runs_report", "amplification",
           "start_finding", "live_vs_snapshot"]


def snapshots(table: dict) -> dict[str, list[dict]]:
    """The table's snapshot rows by prediction target (``{"v": [...], "eps": [...]}``), in step order."""
    runs: dict[str, list[dict]] = {}
    for row in table["rows"]:
        if row["step"] != "":
            runs.setdefault(row["prediction"], []).append(row)
    return {name: sorted(rows, key=lambda r: r["step"]) for name, rows in runs.items()}


def floors(table: dict) -> dict[str, dict]:
    """The reference rows without a step (real faces, the chapter-02 VAE), by their name."""
    return {row["samples"]: row for row in table["rows"] if row["step"] == ""}


def plot_reference_runs(table: dict, *, target: str, live_budget: int):
    """Frechet distance against training steps for every target, the floors as lines and the
    live budget as a red line. Returns the Axes."""
    _, ax = plt.subplots(figsize=(6, 3.2))
    for name, rows in snapshots(table).items():
        ax.plot([r["step"] for r in rows], [r["frechet"] for r in rows], "o-",
                label=f"predicting {name}{' (the reference)' if name == target else ''}: DDIM 25 steps")
    for (name, row), style in zip(floors(table).items(), ("--", ":")):
        ax.axhline(row["frechet"], color="k", ls=style, lw=0.9, label=name)
    ax.axvline(live_budget, color="C3", lw=0.9, label="the cpu profile's live budget")
    ax.set(xlabel="training steps (batch 32)", ylabel="domain Frechet distance", yscale="log",
           title="sample quality along the reference runs (n = 500, 32 px)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def reference_runs_report(table: dict, *, target: str, live_budget: int,
                          vae: str = "chapter-02 VAE (cpu profile)", real: str = "real faces (val split)") -> str:
    """The table's rows, when each target first beats the VAE, both targets at the same steps,
    and how much of the gap from the live budget's score to the real faces the rest of the
    ``target`` run closes."""
    lines = [table["metric"]]
    lines += [f"{r['samples']:<34}{str(r['step']):>7}  Frechet {r['frechet']:>7.1f}  "
              f"precision {r['precision']:.3f}  recall {r['recall']:.3f}" for r in table["rows"]]
    runs, base = snapshots(table), floors(table)
    for name, rows in runs.items():
        beats = [r["step"] for r in rows if r["frechet"] < base[vae]["frechet"]]
        lines.append(f"predicting {name}: first snapshot with a lower Frechet distance than the VAE: "
                     f"{beats[0] if beats else 'none'}; best {min(r['frechet'] for r in rows):.1f}")
    shared = sorted(set.intersection(*({r["step"] for r in rows} for rows in runs.values())))
    if len(runs) > 1 and shared:
        by = {name: {r["step"]: r["frechet"] for r in rows} for name, rows in runs.items()}
        lines.append("same steps, both targets: " + "; ".join(
            f"step {k}: " + ", ".join(f"{name} {by[name][k]:.1f}" for name in by) for k in shared))
    rows = runs[target]
    at_budget = [r for r in rows if r["step"] <= live_budget]
    best = min(rows, key=lambda r: r["frechet"])
    if at_budget:
        start = at_budget[-1]
        closed = (start["frechet"] - best["frechet"]) / (start["frechet"] - base[real]["frechet"])
        lines.append(f"the cpu profile's live budget, {live_budget} steps, is {live_budget / rows[-1]['step']:.0%} "
                     f"of the reference run; at step {start['step']} the run scored {start['frechet']:.1f}, its best "
                     f"snapshot {best['frechet']:.1f} (step {best['step']}): the rest of the run closes {closed:.0%} "
                     "of the distance from the live budget's score to the real-faces floor")
    return "\n".join(lines)


def amplification(alpha_bar: Sequence[float], starts: Sequence[int]) -> str:
    """At each start t, the signal left in x_t (``sqrt(alpha_bar_t)``) and the factor
    ``1 / sqrt(alpha_bar_t)`` by which ``x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``
    multiplies an error in a predicted noise ``eps``."""
    return "; ".join(f"t = {t}: signal sqrt(alpha_bar) = {math.sqrt(float(alpha_bar[t])):.3g}, an eps error is "
                     f"multiplied by {1 / math.sqrt(float(alpha_bar[t])):.3g}" for t in starts)


def start_finding(frechet: Mapping[str, Sequence[float]], *, late: str, early: str, oracle: str | None = None,
                  default: str, alpha: float = 0.05) -> str:
    """Two sampling starts (and, if given, an oracle start at the early step) compared on the
    Frechet distance, paired over sample seeds (seed i draws the same noise at every start),
    Holm over the comparisons made. ``frechet[name]``: one value per seed; ``default``: the
    name of the start the library uses for this model."""
    pairs = {(early, late): (frechet[early], frechet[late])}
    if oracle is not None:
        pairs[(early, oracle)] = (frechet[early], frechet[oracle])
    tests = compare_all(pairs, higher_is_better=False, alpha=alpha, paired=True)
    n = len(frechet[early])
    mean = {k: sum(v) / len(v) for k, v in frechet.items()}
    c = tests[(early, late)]
    word = {BETTER: "lower than", WORSE: "higher than", UNCLEAR: "not clearly different from"}[c.verdict]
    text = (f"Frechet distance, mean over {n} sample seeds: " + "; ".join(f"{k}: {v:.1f}" for k, v in mean.items())
            + f". From {early} it is {word} from {late} ({c.diff:+.1f} [{c.low:+.1f}, {c.high:+.1f}], paired, "
            f"Holm p {c.p_adjusted:.3f}). ")
    if c.verdict == UNCLEAR:
        text += f"With {n} seeds the measurement cannot tell the two starts apart. "
    else:
        better = early if c.verdict == BETTER else late
        text += (f"The library's default for this model, {default}, "
                 + ("is the better of the two here. " if better == default else
                    f"is not supported by this measurement: {better} is clearly better for this model. "))
    if oracle is not None:
        o = tests[(early, oracle)]
        text += ({WORSE: f"Drawing x_t at {early} as pure noise costs against the oracle start, which draws it from "
                         f"real faces ({o.diff:+.1f}): the missing signal biases the samples.",
                  UNCLEAR: f"Drawing x_t at {early} as pure noise is not clearly worse than the oracle start, which "
                           f"draws it from real faces ({o.diff:+.1f}): no bias from the missing signal shows at "
                           f"{n} seeds.",
                  BETTER: f"Drawing x_t at {early} as pure noise scores better than the oracle start ({o.diff:+.1f}): "
                          "the missing signal does not hurt this model."}[o.verdict])
    return text.rstrip()


def live_vs_snapshot(live: float, snapshot: dict, *, live_steps: int, sample_spread: float | None = None) -> str:
    """The live model's Frechet distance beside the reference run's snapshot nearest to its
    step (same configuration, sampler, n and seed), and what one estimate each can say."""
    gap = live - snapshot["frechet"]
    text = (f"live model ({live_steps} steps): Frechet {live:.1f}; the reference run's snapshot at step "
            f"{snapshot['step']}: {snapshot['frechet']:.1f} ({'lower' if gap < 0 else 'higher'} by {abs(gap):.1f} "
            "for the live model). The two are runs of one recipe, not one run: the live run uses two threads and "
            "the script one, and training amplifies the difference in floating-point sums, so the live run is "
            "another draw of the same training, and the reference curve shows where the recipe goes, not where "
            "this run would go. One estimate each cannot tell run-to-run variation from the draw of samples")
    if sample_spread is not None:
        text += (f" (the draw of samples alone moves the live model's score by ±{sample_spread:.1f} in the quality "
                 "table)")
    return text + "."
