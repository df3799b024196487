"""What the course's experiments establish: the verdicts of chapters 06 and 07.

Each function takes the numbers an experiment produced (chapter 06: the committed
``fusion`` result, ``course_lib.results.load_result``; chapter 07: the classifier accuracies
it measures live), asks one question of them, and answers with :mod:`course_lib.stats`: a Welch test
per comparison, Holm's correction across the comparisons that question makes (its
*family*), and one word per comparison, ``"better"``, ``"worse"`` or
``"no clear difference"``.

One family per question, fixed before looking at the numbers:

- :func:`grid_verdicts`: every variant against the baseline, and the two +init variants
  against the compute-matched control ``baseline+steps``, at every size and score (72
  comparisons on the committed grid); :func:`fusion_finding` decides chapter 06's headline
  from them, :func:`fusion_answer` says "cannot answer" when the grid's positive control (more
  real faces) never passes, and :func:`fusion_headline` states it in words;
- :func:`data_efficiency`: does the baseline itself improve from N to M >= 4N real faces
  (only then can "a variant on N matches the baseline on M" mean data efficiency);
- :func:`lambda_verdicts`: each joint-loss weight against lambda = 0;
- :func:`cycle_verdicts`: the pretraining sources of the cycle experiment;
- :func:`long_budget_verdicts`: the long-budget run (``fusion.json["long_budget"]``, early
  stopping): every variant against the baseline and the three +init variants (inpainting,
  jigsaw, rotation) against ``baseline+steps``; :func:`long_budget_headline` states it, and
  :func:`long_budget_convergence` says whether the runs had stopped improving;
- :func:`augmentation_verdicts`: chapter 07, each augmented training set against its reference, per N.

A "no clear difference" is not evidence of no difference: with 3 seeds per cell only a
large, consistent gap survives a correction for 72 comparisons.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .stats import BETTER, UNCLEAR, VERDICTS, WORSE, Comparison, compare_all, detectable_effect

# score key in fusion.json -> (label, higher is better?)
FUSION_SCORES = {
    "test_nelbo": ("test negative ELBO (nats/image)", False),
    "psnr": ("reconstruction PSNR (dB)", True),
    "frechet": ("Frechet distance of samples", False),
    "probe": ("linear probe on mu (accuracy)", True),
}
BASELINE, CONTROL = "baseline", "baseline+steps"
# The reference that spends the same compute as each fusion variant: +joint trains as many
# steps as the baseline; the +init variants add the pretraining's steps, as does the control.
MATCHED_REFERENCE = {"init": CONTROL, "joint": BASELINE, "init+joint": CONTROL}
# the long-budget run: each pretrained initialisation against the compute-matched control
LONG_MATCHED = {"init": CONTROL, "init_jigsaw": CONTROL, "init_rotation": CONTROL}
CYCLE_FAMILY = (("real", "random"), ("generated", "random"), ("mixed", "random"),
                ("generated", "real"), ("mixed", "real"))


def values(records: Sequence[dict], key: str, **where) -> np.ndarray:
    """``key`` of every record whose fields equal ``where`` (one value per seed), e.g.
    ``values(results["runs"], "psnr", train_size=500, variant="init")``."""
    found = [r[key] for r in records if all(r.get(f) == v for f, v in where.items())]
    if not found:
        raise ValueError(f"no record with {where} has a {key!r}")
    return np.array(found, dtype=np.float64)


def _family(runs: Sequence[dict], spec: dict, matched: Mapping[str, str], *,
            alpha: float) -> dict[tuple[str, str, int, str], Comparison]:
    """Every variant against the baseline, and those whose matched reference is the
    compute-matched control against it too, at every size and score: one Holm family."""
    refs = [(v, BASELINE) for v in spec["variants"] if v != BASELINE]
    refs += [(v, matched[v]) for v in spec["variants"] if matched.get(v) == CONTROL]
    pairs = {(v, ref, n, k): (values(runs, k, train_size=n, variant=v), values(runs, k, train_size=n, variant=ref))
             for v, ref in refs for n in spec["train_sizes"] for k in FUSION_SCORES}
    return compare_all(pairs, higher_is_better={key: FUSION_SCORES[key[3]][1] for key in pairs}, alpha=alpha)


def grid_verdicts(results: dict, *, alpha: float = 0.05) -> dict[tuple[str, str, int, str], Comparison]:
    """(variant, reference, N, score) -> Comparison, one Holm family over the whole grid."""
    return _family(results["runs"], results["spec"], MATCHED_REFERENCE, alpha=alpha)


def long_budget_verdicts(results: dict, *, alpha: float = 0.05) -> dict[tuple[str, str, int, str], Comparison]:
    """(variant, reference, N, score) -> Comparison for the long-budget run
    (``results["long_budget"]``): one Holm family, the +init variants also against
    ``baseline+steps`` (:data:`LONG_MATCHED`)."""
    if "long_budget" not in results:
        raise ValueError("this fusion result has no 'long_budget' section: run `python experiments/fusion_long.py`")
    section = results["long_budget"]
    if not section.get("complete", True):
        missing = sorted(set(section["spec"]["seeds"]) - set(section["seeds_done"]))
        raise ValueError(f"the long-budget run has seeds {section['seeds_done']} of {section['spec']['seeds']}: "
                         f"run `python experiments/fusion_long.py --seeds {' '.join(map(str, missing))}`")
    return _family(section["runs"], section["spec"], LONG_MATCHED, alpha=alpha)


def long_budget_convergence(results: dict) -> dict[int, tuple[int, int]] | None:
    """How many runs of the long-budget run stopped improving, per training-set size:
    ``{N: (stopped, runs)}``. A run stopped improving when early stopping's patience ran out
    (``best_step + patience * eval_every <= steps_run``: no better check in its last
    ``patience``); one whose best check came later was still improving when its step cap ended
    it. None when the file does not record ``steps_run``, ``patience`` and ``eval_every``."""
    section = results["long_budget"]
    spec, runs = section["spec"], section["runs"]
    if "patience" not in spec or "eval_every" not in spec or any("steps_run" not in r for r in runs):
        return None
    window = spec["patience"] * spec["eval_every"]
    return {n: (sum(r["best_step"] + window <= r["steps_run"] for r in runs if r["train_size"] == n),
                sum(r["train_size"] == n for r in runs)) for n in spec["train_sizes"]}


def long_budget_headline(results: dict, *, alpha: float = 0.05) -> str:
    """The long-budget run in one Markdown paragraph: how long early stopping let each size
    train, the train/test gap of the baseline (overfitting), the clear differences after
    Holm, and each pretrained initialisation against the compute-matched control."""
    verdicts, section = long_budget_verdicts(results, alpha=alpha), results["long_budget"]
    runs, spec = section["runs"], section["spec"]
    max_steps = spec["config"]["steps"]
    parts = []
    for n in spec["train_sizes"]:
        best = values(runs, "best_step", train_size=n, variant=BASELINE)
        gap = (values(runs, "test_nelbo", train_size=n, variant=BASELINE)
               - values(runs, "train_nelbo", train_size=n, variant=BASELINE))
        parts.append(f"at N={n} the baseline's best validation check came at step {best.mean():.0f} on average "
                     f"({', '.join(f'{b:.0f}' for b in best)} of at most {max_steps}) and its test negative ELBO "
                     f"exceeds its training one by {gap.mean():.1f} nats")
    clear = {k: c for k, c in verdicts.items() if c.verdict != UNCLEAR}
    text = (f"**Measured verdict of the long-budget run (generated from the results file).** With early "
            f"stopping, {'; '.join(parts)}. The run makes {len(verdicts)} comparisons; after Holm's correction "
            f"{len(clear)} show a clear difference"
            + "".join(f"; {v} is {c.verdict} than {ref} at N={n} on the {FUSION_SCORES[key][0]}"
                      for (v, ref, n, key), c in clear.items())
            + ". Each pretrained initialisation against the compute-matched control: "
            + "; ".join(f"**{v}**: {counts_in_words(tally(verdicts, v, ref))}" for v, ref in LONG_MATCHED.items()))
    supported = [v for v, ref in LONG_MATCHED.items()
                 if (c := tally(verdicts, v, ref))[BETTER] > 0 and c[WORSE] == 0]
    convergence = long_budget_convergence(results)
    if convergence is None:
        text += (". The file does not record where early stopping ended each run, so whether these VAEs "
                 "were trained to convergence cannot be told")
        lead = "At this budget"
    else:
        running = {n: (k, m) for n, (k, m) in convergence.items() if k < m}
        if running:
            text += (". Not every run stopped improving: " + "; ".join(
                f"at N={n}, {k} of {m} runs had no better validation check in their last {spec['patience']} "
                f"(early stopping's patience ran out), the other {m - k} were still improving when they ended"
                for n, (k, m) in running.items())
                + f", so at N={', '.join(map(str, running))} this is the verdict at this budget, not at "
                "convergence")
            lead = "At this budget"
        else:
            text += (". Every run stopped improving: none had a better validation check in its last "
                     f"{spec['patience']} (early stopping's patience ran out)")
            lead = "Trained until the validation score stopped improving"
    if supported:
        return text + (f". {lead}, {', '.join(supported)} {'helps' if len(supported) == 1 else 'help'} "
                       "beyond what the same compute gives.")
    # a null from a design with no positive control: say how large an effect it could have missed
    seeds = len({r["seed"] for r in runs})
    effect = detectable_effect(seeds, alpha=alpha / len(verdicts))
    return text + (f". {lead}, no pretrained initialisation is clearly better than spending the same compute "
                   f"on the VAE itself. That is not evidence of no effect: with {seeds} seeds and {len(verdicts)} "
                   f"comparisons under Holm, 80% power needs a difference of about {effect:.1f} seed standard "
                   "deviations, and the run has no positive control to show it could see one.")


def tally(verdicts: Mapping[tuple, Comparison], variant: str, reference: str) -> dict[str, int]:
    """How many comparisons of ``variant`` with ``reference`` got each verdict word."""
    found = [c.verdict for (v, ref, *_), c in verdicts.items() if (v, ref) == (variant, reference)]
    if not found:
        raise ValueError(f"no comparison of {variant!r} with {reference!r} in these verdicts")
    return {word: found.count(word) for word in VERDICTS}


def ahead(verdicts: Mapping[tuple, Comparison], variant: str, reference: str) -> int:
    """In how many comparisons the *mean* of ``variant`` is ahead of ``reference`` (a
    description of the point estimates, not a test)."""
    return sum((c.diff > 0) == FUSION_SCORES[key[3]][1] and c.diff != 0
               for key, c in verdicts.items() if key[:2] == (variant, reference))


@dataclass(frozen=True)
class FusionFinding:
    """The chapter 06 headline, decided from :func:`grid_verdicts`."""
    vs_baseline: dict[str, dict[str, int]]   # variant -> verdict word -> count
    vs_matched: dict[str, dict[str, int]]    # fusion variant -> counts against MATCHED_REFERENCE
    n_comparisons: int                       # size of the Holm family
    supported: tuple[str, ...]               # fusion variants that beat their matched reference

    @property
    def supports_fusion(self) -> bool:
        """Some fusion variant is clearly better than the reference with the same compute in
        at least one comparison, and clearly worse in none."""
        return bool(self.supported)


def fusion_finding(results: dict, *, alpha: float = 0.05) -> FusionFinding:
    verdicts = grid_verdicts(results, alpha=alpha)
    variants = [v for v in results["spec"]["variants"] if v != BASELINE]
    vs_matched = {v: tally(verdicts, v, MATCHED_REFERENCE[v]) for v in variants if v in MATCHED_REFERENCE}
    supported = tuple(v for v, c in vs_matched.items() if c[BETTER] > 0 and c[WORSE] == 0)
    return FusionFinding(vs_baseline={v: tally(verdicts, v, BASELINE) for v in variants},
                         vs_matched=vs_matched, n_comparisons=len(verdicts), supported=supported)


def counts_in_words(counts: Mapping[str, int]) -> str:
    """``{"better": 1, "no clear difference": 11, "worse": 0}`` -> "1 better, 11 no clear
    difference, 0 worse" (a :func:`tally`)."""
    return ", ".join(f"{counts[word]} {word}" for word in VERDICTS)


CANNOT_ANSWER = "cannot answer"


def fusion_answer(results: dict, *, alpha: float = 0.05) -> str:
    """The grid's answer to "does the fusion improve performance?": ``"supports"`` (a fusion
    variant clearly beats its compute-matched reference and is never worse), ``"cannot
    answer"`` (otherwise, when the grid's positive control, the baseline's gain from more real
    faces, is clear in no case: a null there is no evidence), else ``"does not support"``."""
    return _answer(fusion_finding(results, alpha=alpha), data_efficiency(results, alpha=alpha))


def _answer(finding: FusionFinding, cases: Sequence[EfficiencyCase]) -> str:
    if finding.supports_fusion:
        return "supports"
    return "does not support" if any(c.testable for c in cases) else CANNOT_ANSWER


def fusion_headline(results: dict, *, alpha: float = 0.05) -> str:
    """Chapter 06's measured verdict, one Markdown paragraph, decided by :func:`fusion_finding`
    (Holm over :func:`grid_verdicts`) and :func:`data_efficiency`: the clear differences, each
    fusion variant against the reference with the same compute, the point estimates (labelled
    as such), whether the data-efficiency question can be asked, and the answer."""
    finding, grid = fusion_finding(results, alpha=alpha), grid_verdicts(results, alpha=alpha)
    cases = data_efficiency(results, alpha=alpha)
    testable = [c for c in cases if c.testable]
    clear = {k: c for k, c in grid.items() if c.verdict != UNCLEAR}
    n_cells = len(results["spec"]["train_sizes"]) * len(FUSION_SCORES)
    refuted = any(c[WORSE] for c in finding.vs_matched.values())
    text = (f"**Measured verdict (generated from the results file).** The grid makes {finding.n_comparisons} "
            f"comparisons; after Holm's correction {len(clear)} show a clear difference"
            + "".join(f"; {v} is {c.verdict} than {ref} at N={n} on the {FUSION_SCORES[key][0]}"
                      for (v, ref, n, key), c in clear.items())
            + ". Against the reference that spends the same compute, "
            + "; ".join(f"**{v}** against {MATCHED_REFERENCE[v]}: {counts_in_words(c)}"
                        for v, c in finding.vs_matched.items())
            + f". The point estimates, which no test backs here: the mean of +init is ahead of the baseline in "
            f"{ahead(grid, 'init', BASELINE)} of {n_cells} comparisons, {CONTROL} in "
            f"{ahead(grid, CONTROL, BASELINE)}, and +init ahead of {CONTROL} in "
            f"{ahead(grid, 'init', CONTROL)}. The baseline itself clearly gains from more real "
            f"faces in {len(testable)} of {len(cases)} size-by-score cases")
    if not testable:
        text += ", so this grid cannot ask the data-efficiency question"
    else:
        n_efficient = sum(len(c.matching) for c in testable)
        beyond = sum(len(c.matching) for c in testable if not c.control_matches)
        text += f"; data-efficiency cases: {n_efficient}, {beyond} not explained by extra compute"
    if _answer(finding, cases) == CANNOT_ANSWER:
        # the grid's positive control (more real faces) never passed: a null here is no evidence
        seeds = len({r["seed"] for r in results["runs"]})
        effect = detectable_effect(seeds, alpha=alpha / finding.n_comparisons)
        return text + (f". Its positive control, more real faces, is never clearly better, so by the rule the "
                       f"registered studies follow (a study whose positive control fails cannot answer), the grid "
                       f"**cannot answer** whether \"the fusion improves performance\": with {seeds} seeds and "
                       f"{finding.n_comparisons} comparisons under Holm, 80% power needs a difference of about "
                       f"{effect:.1f} seed standard deviations (a two-sample t-test at alpha / "
                       f"{finding.n_comparisons}, Holm's first step).")
    text += (f". The grid **{'supports' if finding.supports_fusion else 'does not support'}** \"the fusion "
             f"improves performance\" on this data and budget once compute is held equal")
    if not finding.supports_fusion:
        text += "; it shows the fusion hurting" if refuted else "; nor does it show the fusion hurting"
    return text + "."


@dataclass(frozen=True)
class EfficiencyCase:
    """Can a variant on N real faces stand in for the baseline on M >= 4N, on one score?"""
    score: str
    n: int
    m: int
    baseline_gain: Comparison     # baseline on M against baseline on N (Holm over all cases)
    matching: tuple[str, ...]     # fusion variants whose mean on N reaches the baseline's on M
    control_matches: bool         # baseline+steps on N reaches it too (extra compute explains it)

    @property
    def testable(self) -> bool:
        """Only where more data clearly helps the baseline does "matching it" mean anything."""
        return self.baseline_gain.verdict == BETTER


def data_efficiency(results: dict, *, alpha: float = 0.05, ratio: int = 4) -> list[EfficiencyCase]:
    """One case per (score, N, M >= ratio N). ``matching`` is filled only for testable cases;
    it compares means, because "as good as" cannot be established by a failed test."""
    runs, spec = results["runs"], results["spec"]
    fusion_variants = [v for v in spec["variants"] if v in MATCHED_REFERENCE]
    cells = [(k, n, m) for k in FUSION_SCORES for n in spec["train_sizes"] for m in spec["train_sizes"]
             if m >= ratio * n]
    gains = compare_all({c: (values(runs, c[0], train_size=c[2], variant=BASELINE),
                             values(runs, c[0], train_size=c[1], variant=BASELINE)) for c in cells},
                        higher_is_better={c: FUSION_SCORES[c[0]][1] for c in cells}, alpha=alpha)
    cases = []
    for (k, n, m), gain in gains.items():
        sign = 1 if FUSION_SCORES[k][1] else -1
        target = values(runs, k, train_size=m, variant=BASELINE).mean()
        testable = gain.verdict == BETTER
        # which variants reach, at N, the baseline's mean at M (asked of testable cases only)
        reaches = {v: sign * (values(runs, k, train_size=n, variant=v).mean() - target) >= 0
                   for v in (*fusion_variants, CONTROL)} if testable else {}
        cases.append(EfficiencyCase(score=k, n=n, m=m, baseline_gain=gain,
                                    matching=tuple(v for v in fusion_variants if testable and reaches[v]),
                                    control_matches=testable and reaches[CONTROL]))
    return cases


def lambda_runs(results: dict) -> dict[float, list[dict]]:
    """lambda -> the runs at the sweep's size: 0 is the grid's baseline, the grid's lambda
    its +joint cell, the others come from ``results["lambda_sweep"]``."""
    n = results["spec"]["lambda_sweep"]["train_size"]
    runs = {0.0: [r for r in results["runs"] if r["train_size"] == n and r["variant"] == BASELINE],
            float(results["spec"]["config"]["lam"]): [r for r in results["runs"]
                                                      if r["train_size"] == n and r["variant"] == "joint"]}
    for r in results["lambda_sweep"]:
        runs.setdefault(float(r["lam"]), []).append(r)
    return dict(sorted(runs.items()))


def lambda_verdicts(results: dict, *, alpha: float = 0.05) -> dict[tuple[float, str], Comparison]:
    """(lambda, score) -> Comparison with lambda = 0, one Holm family over the sweep."""
    by_lam = lambda_runs(results)
    pairs = {(lam, k): (values(rs, k), values(by_lam[0.0], k))
             for lam, rs in by_lam.items() if lam != 0.0 for k in FUSION_SCORES}
    return compare_all(pairs, higher_is_better={key: FUSION_SCORES[key[1]][1] for key in pairs}, alpha=alpha)


def cycle_verdicts(results: dict, *, alpha: float = 0.05) -> dict[tuple[str, str], Comparison]:
    """(source, reference) -> Comparison of the probe accuracy, over :data:`CYCLE_FAMILY`."""
    cycle = results["cycle"]
    return compare_all({(s, ref): (values(cycle, "probe", source=s), values(cycle, "probe", source=ref))
                        for s, ref in CYCLE_FAMILY}, alpha=alpha)


def augmentation_verdicts(accuracies: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]], *,
                          alpha: float = 0.05) -> dict[Hashable, Comparison]:
    """Chapter 07: key -> Comparison of test accuracies (one per seed) of a training set
    against its reference, ``accuracies[key] = (arm, reference)``, e.g. ``key = N`` with
    (real + generated, real only), or ``key = (N, arm, reference)`` for every comparison
    of :data:`course_lib.applications.AUGMENT_COMPARISONS`; one Holm family over all keys.
    Needs at least 2 seeds per cell (ValueError otherwise)."""
    return compare_all(dict(accuracies), higher_is_better=True, alpha=alpha)


def _relation(c: Comparison) -> str:
    """A comparison as words between its two sides: "clearly better than" / "clearly worse
    than" / "not clearly different from"."""
    return {BETTER: "clearly better than", WORSE: "clearly worse than"}.get(c.verdict, "not clearly different from")


def lambda_finding(results: dict, *, alpha: float = 0.05) -> str:
    """Chapter 06's reading of the lambda sweep (:func:`lambda_verdicts`), in words: which
    weights are clearly better or worse than lambda = 0 on which score, and where the point
    estimates are worst (labelled as such)."""
    found, by_lam = lambda_verdicts(results, alpha=alpha), lambda_runs(results)
    listed = {word: [f"lambda = {lam:g} on the {FUSION_SCORES[k][0]}" for (lam, k), c in found.items()
                     if c.verdict == word] for word in (BETTER, WORSE)}
    text = (f"Against lambda = 0, after Holm's correction over {len(found)} comparisons, "
            + (f"clearly better: {'; '.join(listed[BETTER])}" if listed[BETTER]
               else "no weight of the inpainting term makes a clearly better VAE")
            + (f"; clearly worse: {'; '.join(listed[WORSE])}" if listed[WORSE] else ", and none a clearly worse one"))
    worst = {}
    for k, (_, higher) in FUSION_SCORES.items():
        means = {lam: values(runs, k).mean() for lam, runs in by_lam.items()}
        lam = (min if higher else max)(means, key=means.get)
        worst.setdefault(lam, []).append(k)
    lam, keys = max(worst.items(), key=lambda item: len(item[1]))
    text += (f". The point estimates, which no test backs: lambda = {lam:g} has the worst mean on "
             f"{len(keys)} of the {len(FUSION_SCORES)} scores")
    return text + (". At the weights tried, the joint loss buys nothing measurable at this size."
                   if not listed[BETTER] else ".")


def cycle_finding(results: dict, *, alpha: float = 0.05) -> str:
    """Chapter 06's reading of the cycle experiment (:func:`cycle_verdicts`), in words."""
    found, cycle = cycle_verdicts(results, alpha=alpha), results["cycle"]
    means = {s: values(cycle, "probe", source=s).mean() for s in ("random", "real", "generated", "mixed")}
    top = max(means, key=means.get)
    vs_random = [f"{s} is {c.verdict} than random" for (s, ref), c in found.items()
                 if ref == "random" and c.verdict != UNCLEAR]
    return (f"Features pretrained on the VAE's samples are {_relation(found[('generated', 'real')])} features "
            f"pretrained on the real faces, and mixing both is {_relation(found[('mixed', 'real')])} real alone "
            f"(Holm over {len(found)} comparisons). The highest mean probe accuracy is **{top}**'s "
            f"({means[top]:.3f}; a point estimate). Against the untrained backbone: "
            + ("; ".join(vs_random) if vs_random else "no pretraining source is clearly better or worse")
            + ".")
