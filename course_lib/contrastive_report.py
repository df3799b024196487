"""Chapter 05's SimCLR augmentation ablation (``load_result("simclr_ablation")``) in words.

The ablation is a registered experiment (``experiments/simclr_ablation.py``): its file says,
before any training, the primary metric, the primary contrasts (one Holm family, paired by
seed) and the positive control outside the family. Everything here is computed from the
per-seed scores in the file, so a hand-made dict of the same shape tests it:

- :func:`ablation_analysis`: the positive control, the family's verdicts and, beside them
  (not in the family), the same contrasts on the colour attributes and on the rest.
- :func:`ablation_finding`: the verdicts as sentences; "cannot answer" for every contrast
  when the positive control fails (a measurement that cannot see the largest change of
  augmentations says nothing about smaller ones).
- :func:`ablation_table`: the table the chapter prints.

A file without ``"registration"`` (the earlier, unregistered run) is refused.
"""
from __future__ import annotations

import numpy as np

from .stats import UNCLEAR, compare, compare_all, detectable_effect

CANNOT_ANSWER = "cannot answer"
# the attributes that colour jitter and grayscale ask the network to ignore
COLOUR_ATTRIBUTES = ("skin", "hair_color", "eye_color", "background")


def _contrasts(summary: dict, members, against: str, key: str, alpha: float) -> dict:
    """Paired t-tests of ``summary[v][key]`` against ``summary[against][key]``, Holm over ``members``."""
    return compare_all({v: (summary[v][key], summary[against][key]) for v in members}, alpha=alpha, paired=True)


def ablation_analysis(result: dict) -> dict:
    """The registered analysis of a (finished) ablation file: ``{"positive_control": {...},
    "family": {variant: Comparison}, "answer": {variant: verdict or "cannot answer"},
    "colour": {...}, "rest": {...}, "detectable": float}``.

    ``result["summary"][variant]`` holds ``"seeds"`` (the primary metric per training seed,
    in seed order, the same seeds in every variant), and ``"colour"`` / ``"rest"`` (the
    same at the primary budget, averaged over :data:`COLOUR_ATTRIBUTES` / the others)."""
    reg, summary = result["registration"], result["summary"]
    family, control = reg["family"], reg["positive_control"]
    alpha, against = family["alpha"], family["against"]
    lengths = {len(row["seeds"]) for row in summary.values()}
    if len(lengths) != 1 or lengths.pop() < 2:
        raise ValueError(f"every variant needs the same >= 2 seeds, got "
                         f"{ {v: len(r['seeds']) for v, r in summary.items()} }")
    pc = compare(summary[control["variant"]]["seeds"], summary[control["against"]]["seeds"],
                 alpha=control["alpha"], paired=True)
    passes = pc.verdict != UNCLEAR        # two-sided: the control asks "can the probe see a change at all?"
    verdicts = _contrasts(summary, family["members"], against, "seeds", alpha)
    n = len(summary[against]["seeds"])
    sd = float(np.sqrt(np.mean([np.var(np.subtract(summary[v]["seeds"], summary[against]["seeds"]), ddof=1)
                                for v in family["members"]])))
    extra = {part: _contrasts(summary, family["members"], against, part, alpha)
             for part in ("colour", "rest") if all(part in summary[v] for v in summary)}
    return {"positive_control": {"comparison": pc, "passes": passes}, "family": verdicts,
            "answer": {v: (c.verdict if passes else CANNOT_ANSWER) for v, c in verdicts.items()},
            **extra, "sd_paired_difference": sd,
            "detectable": float(detectable_effect(n, alpha=alpha / len(verdicts), paired=True) * sd)}


def _interval(c) -> str:
    return f"{c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"


def ablation_finding(ablation: dict, *, alpha: float = 0.05) -> str:
    """The ablation's verdicts in words, generated from the file (see the module docstring)."""
    if "registration" not in ablation:
        raise ValueError("simclr_ablation.json has no registration: rerun python experiments/simclr_ablation.py")
    if ablation.get("status", "complete") != "complete":
        done = {v: len(r["seeds"]) for v, r in ablation.get("summary", {}).items()}
        return f"the registered run is not finished (seeds done per variant: {done}): no verdict yet."
    reg, a = ablation["registration"], ablation_analysis(ablation)
    control, pc = reg["positive_control"], a["positive_control"]["comparison"]
    n = len(ablation["summary"][reg["family"]["against"]]["seeds"])
    head = (f"Positive control ({control['variant']} - {control['against']}, paired over {n} seeds): "
            f"{_interval(pc)}, p {pc.p:.3f}: ")
    if not a["positive_control"]["passes"]:
        return head + (f"no clear difference, so the probe cannot see even that change of augmentations, and "
                       f"every contrast reads {CANNOT_ANSWER!r}: " + "; ".join(
                           f"{v} - {reg['family']['against']} {_interval(c)}" for v, c in a["family"].items())
                       + ". That is not evidence that the augmentations do not matter.")
    lines = []
    for v, c in a["family"].items():
        words = (f"{v} is {c.verdict} than {reg['family']['against']}" if c.verdict != UNCLEAR
                 else f"{v} vs {reg['family']['against']}: no clear difference")
        side = "".join(f", {part} attributes {_interval(a[part][v])}" for part in ("colour", "rest") if part in a)
        lines.append(f"{words} ({_interval(c)}, Holm p {c.p_adjusted:.3f}{side})")
    text = head + f"{pc.verdict}, the control passes. " + "; ".join(lines) + "."
    if any(c.verdict == UNCLEAR for c in a["family"].values()):
        text += (f" A 'no clear difference' here means a gap below about {a['detectable']:.3f} accuracy could "
                 f"have been missed (power 0.8 at the measured sd of the paired differences, "
                 f"{a['sd_paired_difference']:.4f}), not that the augmentation does not matter.")
    return text


def ablation_table(ablation: dict) -> str:
    """One row per variant: its augmentations, the primary metric's mean +/- sd over seeds,
    the colour attributes and the rest (registered file), or the earlier file's columns."""
    summary = ablation["summary"]
    registered = "registration" in ablation
    head = f"{'views made with':<34}{'probe acc':>16}{'colour attrs':>14}{'all others':>12}"
    rows = [head]
    for v, row in summary.items():
        augs = "+".join(ablation["configs"][v]["augmentations"]) or "identity"
        seeds = np.asarray(row["seeds"], dtype=float)
        if registered:
            colour, rest = np.mean(row["colour"]), np.mean(row["rest"])
        else:
            pa = row["per_attribute"]
            colour = np.mean([pa[k] for k in COLOUR_ATTRIBUTES])
            rest = np.mean([x for k, x in pa.items() if k not in COLOUR_ATTRIBUTES])
        sd = seeds.std(ddof=1) if len(seeds) > 1 else 0.0
        rows.append(f"{v + ' (' + augs + ')':<34}{seeds.mean():>9.3f} ± {sd:.3f}{colour:>14.3f}{rest:>12.3f}")
    return "\n".join(rows)
