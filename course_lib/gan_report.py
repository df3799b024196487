"""Chapters 03 and 03b's measurements in words: one tested function per finding.

A results cell reads as one call. The function gets what the chapter computed (or a committed
result), returns the sentence, and words it from the numbers, so the words change when the
numbers do; ``tests/test_gan_report.py`` feeds each one a small dict, including the cases where
its verdict flips. Chapter 03: the playground (:func:`playground_summary`) and its clipping
control (:func:`clipping_control`). Chapter 03b: what fools each score
(:func:`precision_blind_spots`), the critic's curve (:func:`critic_curve`), two rows compared
(:func:`versus`, :func:`classic_pattern`), the run (:func:`measured_summary`), the committed
sample-quality table (:func:`table_versus`) and the recipe screen (:func:`recipe_table`,
:func:`recipe_family`, :func:`recipe_findings`).

Conventions. A *row* is a dict of scores for one set of samples: ``frechet`` (lower is closer
to the real faces), ``fidelity`` (density, Naeem et al. 2020: about 1 for real faces against
real faces; below, samples off the data; above, samples crowding its dense regions, so the
value nearer the real faces' is the better one, not the higher), ``diversity`` (coverage, in
[0, 1]: higher is better, up to the real faces' value), and optionally ``precision`` and
``recall`` (Kynkaanniemi et al. 2019).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from .history import History
from .stats import BETTER, UNCLEAR, Comparison, compare, detectable_effect, holm_adjusted

REAL = "real vs real"          # the reference row every model row is read against


def _join(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _span(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


# ----------------------------------------------------------------------------- chapter 03: the playground
def playground_kind(modes: Sequence[int], on_mode: Sequence[float]) -> str:
    """What final mode counts (of 8) and on-mode shares over seeds say about a setting."""
    if max(modes) <= 2 and min(on_mode) >= 0.5:
        return "mode collapse: few modes, but the points that are there are sharp"
    if min(modes) >= 6 and min(on_mode) >= 0.5:
        return "covers the ring"
    if max(on_mode) < 0.25:
        return "has not found the ring: most points lie off every mode"
    return "in between"


def playground_summary(coverage: Mapping[str, Sequence]) -> str:
    """One line per preset: ``coverage[name]`` is a list of ``playground.SeedCoverage``."""
    lines = []
    for name, runs in coverage.items():
        modes, on_mode = [c.modes for c in runs], [c.high_quality_fraction for c in runs]
        lines.append(f"{name}: {_span(modes)} modes, {_span(on_mode, '{:.0%}')} of the points on a mode "
                     f"-> {playground_kind(modes, on_mode)}")
    return "\n".join(lines)


def clipping_control(paper: Sequence, control: Sequence, *, lr_paper: float, lr_control: float,
                     penalty: Sequence | None = None, control_name: str = "the other presets' rate") -> str:
    """Separate the two ways the clipped WGAN preset differs from the others: weight clipping and
    a smaller learning rate. ``paper``: its seeds at its own rate; ``control``: the same clipping
    at ``lr_control`` (``control_name`` says whose rate); ``penalty``: the WGAN-GP preset's seeds, for scale.
    "Helps" means at least 2 more modes or 5 points more of the points on a mode, on average."""
    pm, ps = [c.modes for c in paper], [c.high_quality_fraction for c in paper]
    cm, cs = [c.modes for c in control], [c.high_quality_fraction for c in control]
    text = (f"Clipped WGAN at lr {lr_paper:g} (its paper's): {_span(pm)} modes, {_span(ps, '{:.0%}')} of the points "
            f"on a mode. Same clipping, optimizer and critic steps at lr {lr_control:g} "
            f"({lr_control / lr_paper:.0f}x, {control_name}): {_span(cm)} modes, {_span(cs, '{:.0%}')}. ")
    kind = playground_kind(cm, cs)
    if kind == "covers the ring":
        return text + ("So the learning rate, not clipping, held it back here: at the faster rate the clipped "
                       "critic trains a generator that covers the ring.")
    scale = (f" (the gradient penalty puts {_span([c.high_quality_fraction for c in penalty], '{:.0%}')} of the "
             f"points on a mode)" if penalty else "")
    if np.mean(cm) >= np.mean(pm) + 2 or np.mean(cs) >= np.mean(ps) + 0.05:
        return text + (f"So the small learning rate explains part of the failure, and clipping the rest: at the "
                       f"faster rate the clipped WGAN {kind}{scale}.")
    return text + (f"Raising the learning rate does not help, so clipping itself is what fails here: at both rates "
                   f"the clipped WGAN {kind}{scale}.")


# ----------------------------------------------------------------------------- chapter 03b: scores and models
def fidelity_reading(value: float, real: float, *, tolerance: float = 0.1) -> str:
    """Where a fidelity (density) value sits against the real faces' value at the same n."""
    if abs(value - real) <= tolerance:
        return "about as often inside real neighbourhoods as real faces"
    if value < real:
        return "below real faces: part of the samples lies off the data"
    return "above real faces: samples crowd into the dense regions of the data"


def versus(rows: Mapping[str, dict], a: str, b: str, *, real: str = REAL) -> list[str]:
    """Three lines comparing rows ``a`` and ``b``: fidelity by nearness to the real faces' value
    (not by size), diversity higher-is-better, Frechet lower-is-better."""
    out = []
    ra, rb, rr = rows[a], rows[b], rows[real]
    fa, fb = abs(ra["fidelity"] - rr["fidelity"]), abs(rb["fidelity"] - rr["fidelity"])
    near = "a tie" if round(fa, 2) == round(fb, 2) else f"{a if fa < fb else b} is nearer"
    out.append(f"fidelity: {a} {ra['fidelity']:.2f} vs {b} {rb['fidelity']:.2f} (real faces {rr['fidelity']:.2f}) "
               f"-> {near}; {a} {fidelity_reading(ra['fidelity'], rr['fidelity'])}")
    for key, up in (("diversity", True), ("frechet", False)):
        qa, qb = ra[key], rb[key]
        better = "a tie" if round(qa, 2) == round(qb, 2) else f"{a if (qa > qb) == up else b} is better"
        out.append(f"{key}: {a} {qa:.2f} vs {b} {qb:.2f} -> {better}")
    return out


def classic_pattern(rows: Mapping[str, dict], gan: str, vae: str) -> str:
    """Whether the run shows the textbook pattern: a GAN's samples sit inside the data more often
    than a VAE's (higher fidelity) but cover less of it (lower diversity)."""
    g, v = rows[gan], rows[vae]
    seen = g["fidelity"] > v["fidelity"] and g["diversity"] < v["diversity"]
    parts = (f"fidelity {g['fidelity']:.2f} vs {v['fidelity']:.2f}, diversity {g['diversity']:.2f} vs "
             f"{v['diversity']:.2f}")
    return (f"Classic pattern (GAN: higher fidelity, lower diversity than the VAE) "
            f"{'reproduced' if seen else 'NOT reproduced'} by {gan} in this run ({parts}).")


def precision_blind_spots(rows: Mapping[str, dict], *, flat: Sequence[str], blur: str, real: str = REAL,
                          table: Mapping[str, float] | None = None, accept: float = 0.5) -> str:
    """What precision lets through and fidelity does not: the ``flat`` rows (e.g. uniform gray
    sets) and a ``blur`` row, against the real faces. A score "accepts" a flat set when it gives
    it at least ``accept`` times the real faces' value. ``table``: precision of the same kind of
    sets in another measurement (name -> value), quoted beside the chapter's own."""
    real_p, real_f = rows[real]["precision"], rows[real]["fidelity"]
    by_precision = [f for f in flat if rows[f]["precision"] >= accept * real_p]
    by_fidelity = [f for f in flat if rows[f]["fidelity"] >= accept * real_f]
    shown = ", ".join(f"{f} {rows[f]['precision']:.2f} (fidelity {rows[f]['fidelity']:.2f})" for f in flat)
    text = f"Precision of the flat sets: {shown}; real faces {real_p:.2f} ({real_f:.2f}). "
    if by_precision:
        text += (f"Precision accepts {_join(by_precision)}: one real image with a large k-NN ball is enough to "
                 "let a sample in, so whether a flat set passes depends on where its one feature vector lands, "
                 "not on whether it looks like a face. ")
    else:
        text += "Here precision rejects every flat set. "
    text += (f"Fidelity, which counts the balls, accepts {_join(by_fidelity)}. " if by_fidelity
             else "Fidelity, which counts the balls, rejects every flat set. ")
    text += (f"Under blur, precision goes {real_p:.2f} -> {rows[blur]['precision']:.2f} ({blur}) while fidelity "
             f"goes {real_f:.2f} -> {rows[blur]['fidelity']:.2f}.")
    if table:
        text += " For comparison: " + ", ".join(f"{k}: precision {v:.2f}" for k, v in table.items()) + "."
    return text


def _smoothed(history: History, key: str, step: int, window: int) -> float:
    values = [v for s, v in zip(history.steps(key), history[key]) if step - window < s <= step]
    return float(np.mean(values)) if values else float("nan")


def critic_curve(history: History, evals: Sequence[dict], *, critic_steps: int, key: str = "w_distance",
                 window: int = 100, flat: float = 0.1) -> str:
    """Does the critic's Wasserstein estimate follow the samples' progress? Compares its mean
    over the ``window`` steps before each measurement (``evals``: dicts with ``step`` and
    ``frechet``, step 0 skipped: no critic yet) with the Frechet distance there.
    ``critic_steps``: critic steps per generator step. ``flat``: a relative change below this
    counts as no change."""
    points = [(e["step"], _smoothed(history, key, e["step"], window), e["frechet"]) for e in evals if e["step"] > 0]
    (s0, w0, f0), (s1, w1, f1) = points[0], points[-1]
    dw, df = (w1 - w0) / abs(w0), (f1 - f0) / f0
    text = (f"From step {s0} to {s1} the critic's estimate (mean of the {window} steps before each measurement) "
            f"went {w0:.2f} -> {w1:.2f} ({dw:+.0%}) while the Frechet distance went {f0:.0f} -> {f1:.0f} ({df:+.0%}): ")
    if df > -flat:
        return text + "the samples did not improve much either, so the curve has nothing to follow."
    if dw <= -flat:
        return text + "the estimate fell as the samples improved; here it tracked progress."
    return text + ("the samples improved while the estimate " + ("stayed flat" if abs(dw) < flat else "rose")
                   + f". It estimates a distance only for an optimal critic; this one takes {critic_steps} "
                     f"step{'s' if critic_steps > 1 else ''} per generator step and improves along with the generator, "
                     "so read progress from the Frechet distance.")


def measured_summary(rows: Mapping[str, dict], *, models: Sequence[str], corruptions: Sequence[str],
                     steps: Mapping[str, int], real: str = REAL) -> str:
    """The run in three sentences: the ``models`` ranked by Frechet distance (with their
    ``steps``), which ``corruptions`` reference each stays below, and their coverage."""
    ranked = sorted(models, key=lambda m: rows[m]["frechet"])
    lines = ["Ranked by Frechet distance (lower is nearer the real faces): "
             + " < ".join(f"{m} {rows[m]['frechet']:.0f} ({steps[m]} steps)" for m in ranked)
             + f"; held-out real faces {rows[real]['frechet']:.0f}."]
    for m in models:
        below = [c for c in corruptions if rows[m]["frechet"] < rows[c]["frechet"]]
        lines.append(f"{m} is below the {_join(below)} reference{'s' if len(below) > 1 else ''}." if below
                     else f"{m} is above every corruption reference ({', '.join(corruptions)}).")
    coverage = ", ".join(f"{m} {rows[m]['diversity']:.2f}" for m in models)
    lines.append(f"Diversity (coverage of the real faces): {coverage}, against {rows[real]['diversity']:.2f} for "
                 "held-out real faces.")
    return "\n".join(lines)


def table_versus(table: dict, pairs: Sequence[tuple[str, str]], *, metric: str = "frechet") -> str:
    """``'a below b (m ± s vs m ± s)'`` for each pair of rows of a sample-quality table."""
    rows = {**table["references"], **table["models"]}
    out = []
    for a, b in pairs:
        fa, fb = rows[a][metric], rows[b][metric]
        out.append(f"{a} {'below' if fa['mean'] < fb['mean'] else 'NOT below'} {b} ({fa['mean']:.1f} ± "
                   f"{fa['std']:.1f} vs {fb['mean']:.1f} ± {fb['std']:.1f})")
    return f"Over sample seeds {table['seeds']}: " + "; ".join(out) + "."


# ----------------------------------------------------------------------------- chapter 03b: the recipe screen
def recipe_run(row: str) -> str:
    """The recipe whose training runs a row was sampled from: "EMA" is the baseline's weight
    average, "X + EMA" is X's; every other row is its own recipe."""
    return "baseline" if row == "EMA" else row.removesuffix(" + EMA")


def _cost_key(row: str) -> str:
    """The row's key in the study's ``cost_ratios`` and ``budgets`` ("EMA" was timed on its own)."""
    return "EMA" if row == "EMA" else recipe_run(row)


def recipe_values(recipes: dict, row: str, metric: str = "frechet") -> list[float]:
    """One value per training seed (seed order) of a row of ``bench/gan_recipes.py``'s result."""
    runs = sorted(recipes["runs"].values(), key=lambda r: r["seed"])
    return [run["rows"][row][metric] for run in runs if row in run["rows"]]


def recipe_table(recipes: dict) -> str:
    """The screen as a table, rows by mean Frechet distance, with the budget each row had."""
    rows = sorted({r for run in recipes["runs"].values() for r in run["rows"]},
                  key=lambda r: np.mean(recipe_values(recipes, r)))
    lines = [f"screen: {recipes['base_steps']} discriminator steps for the baseline; {recipes['frechet_label']}",
             f"{'':>22} {'step cost':>9} {'D steps':>7} {'Frechet':>15} {'fidelity':>8} {'diversity':>9} seeds"]
    for r in rows:
        fr = recipe_values(recipes, r)
        spread = f" +/- {np.std(fr, ddof=1):4.1f}" if len(fr) > 1 else ""
        lines.append(f"{r:>22} {recipes['cost_ratios'][_cost_key(r)]:8.2f}x {recipes['budgets'][_cost_key(r)]:7d} "
                     f"{np.mean(fr):7.1f}{spread:<8} {np.mean(recipe_values(recipes, r, 'fidelity')):8.2f} "
                     f"{np.mean(recipe_values(recipes, r, 'diversity')):9.2f} {len(fr)}")
    return "\n".join(lines)


def recipe_family(recipes: dict, *, alpha: float = 0.05) -> dict[str, Comparison]:
    """The screen's questions with three seeds, Holm-corrected as one family. A recipe against
    the baseline is two sets of training runs (Welch); an EMA row against the row it averages
    is the *same* runs sampled two ways (paired by seed), so its question is "does averaging
    help this recipe", e.g. ``"EMA on batch 32"``."""
    tested = [r for r in {r for run in recipes["runs"].values() for r in run["rows"]}
              if len(recipe_values(recipes, r)) >= 2]
    items = {}
    for row in sorted(tested):
        base = recipe_run(row)
        if row.endswith("EMA"):
            items[f"EMA on {base}"] = (recipe_values(recipes, row), recipe_values(recipes, base), True)
        elif row != "baseline":
            items[f"{row} vs baseline"] = (recipe_values(recipes, row), recipe_values(recipes, "baseline"), False)
    raw = {k: compare(a, b, higher_is_better=False, alpha=alpha, paired=p) for k, (a, b, p) in items.items()}
    adjusted = holm_adjusted([c.p for c in raw.values()]) if raw else []
    family = {}
    for (key, c), q in zip(raw.items(), adjusted):
        verdict = c.verdict if q <= alpha else UNCLEAR
        family[key] = replace(c, p_adjusted=float(q), verdict=verdict)
    return family


def recipe_findings(recipes: dict, *, chapter_steps: int, alpha: float = 0.05) -> str:
    """What the screen can and cannot say, from its file: its limits (budget, seeds, the load
    its costs were timed at), the Holm-corrected family (:func:`recipe_family`) and its power."""
    rows = sorted({r for run in recipes["runs"].values() for r in run["rows"]})
    seeds = {r: len(recipe_values(recipes, r)) for r in rows}
    single = [r for r in rows if seeds[r] == 1]
    load = recipes.get("timing", {}).get("load_average_1min")
    family = recipe_family(recipes, alpha=alpha)
    lines = [f"A screen, not a ranking: {recipes['base_steps']} discriminator steps for the baseline (the live "
             f"DCGAN trains {chapter_steps}), one training seed for {len(single)} of the {len(rows)} rows, and "
             "step costs timed "
             + (f"at a load average of {load:g} on a shared machine, so the equal-time budgets are approximate."
                if load is not None else "once.")]
    for key, c in family.items():
        how = "paired by seed" if key.startswith("EMA on") else "Welch"
        lines.append(f"{key} ({c.n_a} seeds, {how}): Frechet {c.diff:+.1f} (95% CI {c.low:+.1f} to {c.high:+.1f}), "
                     f"Holm-adjusted p {c.p_adjusted:.3f}: {c.verdict}.")
    winners = [k for k, c in family.items() if c.verdict == BETTER]
    if winners:
        lines.append(f"Better than what it was compared with, after Holm's correction: {', '.join(winners)}.")
    elif family:
        base = recipe_values(recipes, "baseline")
        effect = detectable_effect(len(base), alpha=alpha / len(family))
        lines.append(f"None of the {len(family)} questions has a clear answer. With {len(base)} seeds per arm and "
                     f"Holm's first threshold, a recipe must differ from the baseline by about {effect:.1f} standard "
                     f"deviations to be found 4 times in 5: {effect * np.std(base, ddof=1):.0f} Frechet units at the "
                     f"baseline's spread ({', '.join(f'{v:.0f}' for v in base)}).")
    stuck = [r for r in rows if r == recipe_run(r) and max(recipe_values(recipes, r, "fidelity")) < 0.01
             and max(recipe_values(recipes, r, "diversity")) < 0.01]
    if stuck:
        budgets = [recipes["budgets"][_cost_key(r)] for r in stuck]
        lines.append(f"{_join(stuck)} had not drawn a single sample inside a real face's neighbourhood "
                     f"(fidelity and diversity 0.00) after their {_span(budgets)} steps: a screen this short "
                     "cannot say whether they end worse or only start slower.")
    if single:
        lines.append(f"The {len(single)} one-seed rows are candidates, not results; rerun the ones worth a longer "
                     "study with more seeds.")
    return "\n".join(lines)
