"""The article's fusion re-asked where an experiment can answer (issue 31, item 4).

Chapter 06's grid (``experiments/fusion.py``) could not have shown an effect: three seeds,
Holm families of 7 to 72 comparisons, a VAE that barely overfits at N = 500 and a negative
ELBO that is almost all Bernoulli floor. ``experiments/fusion_reasked.py`` asks again, in a
regime picked by a pilot (a training size where the VAE overfits, a metric on test images
the encoder moves), with its registration written before the first run. This module holds
what that script and chapter 06 share, so both are tested:

- :func:`bernoulli_floor`: the smallest value the Bernoulli reconstruction term can take on
  an image whose pixels are not 0 or 1 (the sum of their binary entropies);
- :func:`analyse`: the registered verdicts from the results file's rows (controls alone at
  alpha, the questions under Holm, "cannot answer" when the positive control fails);
- :func:`verdict_lines`: the chapter's sentences, generated from the file.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from course_lib import stats
from course_lib.images import to_float

CANNOT_ANSWER = "cannot answer"


@torch.no_grad()
def bernoulli_floor(images: torch.Tensor) -> torch.Tensor:
    """Per-image minimum of the Bernoulli reconstruction term ``-log p(x|z)``, in nats.

    ``images``: uint8 or [0, 1] float ``(N, C, H, W)``; returns ``(N,)``. For a pixel value
    x in [0, 1] the binary cross-entropy ``-x log p - (1 - x) log(1 - p)`` is smallest at
    p = x, where it equals the binary entropy H(x) = -x log x - (1 - x) log(1 - x) (0 at
    x in {0, 1}, log 2 at x = 1/2). No decoder can score below the sum of H over the
    pixels, so a negative ELBO near that sum says little about the model: subtract it.
    """
    x = to_float(images).double().clamp(0, 1)
    h = -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x))   # xlogy(0, 0) = 0
    return h.flatten(1).sum(1).float()


def _summary(values) -> dict:
    low, high = stats.mean_ci(values)
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "ci": [low, high]}


def analyse(result: dict) -> dict | None:
    """The registered verdicts from ``result`` (the results file as a dict: its
    ``registration`` and its ``rows``, one per (arm, seed) with the primary metric under
    ``registration["primary_key"]``). ``None`` while any registered (arm, seed) is missing.

    Controls are each compared alone at ``alpha``; the questions of ``primary_family`` are one
    Holm family; all paired by seed. When a positive control is not "better", every question's
    verdict becomes "cannot answer" (the tests' own verdicts stay under ``family_without_the_rule``).
    """
    reg = result["registration"]
    key, up, alpha, seeds = reg["primary_key"], reg["higher_is_better"], reg["alpha"], reg["seeds"]
    by = {(r["arm"], r["seed"]): r for r in result.get("rows", [])}

    def sample(arm, metric=key):
        if any((arm, s) not in by for s in seeds):
            return None
        return [by[arm, s][metric] for s in seeds]

    def table(contrasts, family: bool):
        pairs = {name: (sample(a), sample(b)) for name, (a, b) in contrasts.items()}
        if any(a is None or b is None for a, b in pairs.values()):
            return None
        comps = (stats.compare_all(pairs, higher_is_better=up, alpha=alpha, paired=True) if family else
                 {k: stats.compare(a, b, higher_is_better=up, alpha=alpha, paired=True) for k, (a, b) in pairs.items()})
        return {k: {**dataclasses.asdict(c), "a": pairs[k][0], "b": pairs[k][1]} for k, c in comps.items()}

    controls, family = table(reg["controls"], False), table(reg["primary_family"], True)
    if controls is None or family is None:
        return None
    answered = all(v["verdict"] == stats.BETTER for k, v in controls.items() if k.startswith("positive"))
    unruled = {k: v["verdict"] for k, v in family.items()}
    if not answered:
        for v in family.values():
            v["verdict"] = CANNOT_ANSWER
    arms = sorted({a for pair in [*reg["primary_family"].values(), *reg["controls"].values()] for a in pair})
    summary = {arm: {m: _summary(sample(arm, m)) for m in reg["reported_metrics"] if sample(arm, m) is not None}
               for arm in arms}
    return {"controls": controls, "family": family, "answered": answered,
            "family_without_the_rule": unruled, "summary": summary,
            "secondary": table(reg.get("secondary", {}), False)}


def _interval(c: dict, unit: str, *, holm: bool = True) -> str:
    """"+0.42 dB (95% CI +0.10 to +0.74, p = 0.02[, Holm-adjusted 0.05])": mean paired difference."""
    adjusted = f", Holm-adjusted {c['p_adjusted']:.3g}" if holm else ""
    return (f"{c['diff']:+.2f} {unit} (95% CI {c['low']:+.2f} to {c['high']:+.2f}, "
            f"p = {c['p']:.3g}{adjusted})")


def verdict_lines(result: dict) -> list[str]:
    """Chapter 06's sentences about the re-asked fusion, from the results file ``result``:
    the regime, each control, then one line per registered question with its interval and
    verdict ("cannot answer" for every question when a positive control failed)."""
    reg = result["registration"]
    analysis = analyse(result)
    n_done = len({r["seed"] for r in result.get("rows", [])})
    if analysis is None:
        return [f"The study is not finished: {len(result.get('rows', []))} runs of "
                f"{len(reg['arms']) * len(reg['seeds'])} are in ({n_done} seeds started); no verdict yet."]
    unit = reg["unit"]
    lines = [f"Regime: {reg['regime']}. Primary metric: {reg['primary_metric']}. "
             f"{len(reg['seeds'])} seeds, paired by seed; the {len(reg['primary_family'])} questions "
             f"are one Holm family at alpha {reg['alpha']:g}, the controls are tested alone."]
    for name, c in analysis["controls"].items():
        lines.append(f"Control, {name}: {_interval(c, unit, holm=False)}: {c['verdict']}.")
    if not analysis["answered"]:
        lines.append(f"The positive control did not pass, so the study {CANNOT_ANSWER}: "
                     "an experiment that cannot see the known effect cannot see a smaller one.")
    for name, c in analysis["family"].items():
        shown = c["verdict"] if analysis["answered"] else (
            f"{CANNOT_ANSWER} (the test alone: {analysis['family_without_the_rule'][name]})")
        lines.append(f"Question, {name}: {_interval(c, unit)}: {shown}.")
    positive = [c for k, c in analysis["controls"].items() if k.startswith("positive")]
    if analysis["answered"] and positive and reg["higher_is_better"]:   # how large a gain the data rule out
        known = min(c["diff"] for c in positive)
        top = max(c["high"] for c in analysis["family"].values())
        lines.append(f"Bound: every question's 95% interval ends at or below {top:+.2f} {unit}, "
                     f"{top / known:.0%} of the smallest positive control's effect ({known:+.2f} {unit}).")
    for name, c in (analysis.get("secondary") or {}).items():
        lines.append(f"Beside (no verdict), {name}: {_interval(c, unit, holm=False)}.")
    power = reg["power"]
    lines.append(f"Power: {len(reg['seeds'])} seeds detect a difference of "
                 f"{power['detectable_effect_sd_at_80']:.2f} standard deviations of the per-seed "
                 f"difference with probability 0.8 at alpha {power['alpha_per_test']:.3g} per test.")
    return lines


def arm_table(result: dict) -> list[str]:
    """Markdown rows: each arm's mean over seeds with its 95% interval, on test and training
    faces (their difference is the overfitting), and the negative ELBO above the floor."""
    analysis = analyse(result)
    if analysis is None:
        return ["(the study is not finished)"]
    rows = ["| arm | test PSNR (dB) | train PSNR (dB) | test -ELBO - floor (nats) |", "|---|---|---|---|"]

    def cell(s: dict, digits: int) -> str:
        return f"{s['mean']:.{digits}f} [{s['ci'][0]:.{digits}f}, {s['ci'][1]:.{digits}f}]"
    for arm in result["registration"]["arms"]:
        s = analysis["summary"].get(arm)
        if s:
            rows.append(f"| {arm} | {cell(s['test_psnr'], 2)} | {cell(s['train_psnr'], 2)} | "
                        f"{cell(s['test_excess'], 1)} |")
    return rows


def gap_table(pilot: dict) -> list[str]:
    """The pilot's rows as Markdown (train size, train and test values, their gap, the
    twenty-times-data run's test value), to show why the regime was picked."""
    rows = ["| N | test PSNR (dB) | train PSNR | gap | 20N test PSNR | test -ELBO - floor (nats) | "
            "floor (nats) | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in pilot["rows"]:
        big = r.get("twenty_times")
        rows.append(f"| {r['train_size']} | {r['test_psnr']:.2f} | {r['train_psnr']:.2f} | "
                    f"{r['train_psnr'] - r['test_psnr']:.2f} | "
                    f"{'-' if big is None else format(big['test_psnr'], '.2f')} | "
                    f"{r['test_excess']:.1f} | {r['test_floor']:.1f} | {r['seconds']:.0f} |")
    return rows
