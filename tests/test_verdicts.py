"""course_lib.verdicts: on the committed fusion grid the verdicts equal an independent
computation (scipy's Welch test, a hand-written Holm step-down); on synthetic grids whose
answer is known by construction they give that answer."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from course_lib import stats, verdicts
from course_lib.results import load_result

SCORES = {"test_nelbo": -1, "psnr": +1, "frechet": -1, "probe": +1}   # +1: higher is better


def _holm_step_down(pvalues, alpha):
    """Holm (1979) as he wrote it: walk up the sorted p-values, stop at the first failure."""
    m, rejected = len(pvalues), [False] * len(pvalues)
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        if pvalues[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def _independent_grid(results, alpha):
    runs, spec = results["runs"], results["spec"]

    def cell(n, v, k):
        return [r[k] for r in runs if r["train_size"] == n and r["variant"] == v]

    family = [(v, "baseline") for v in spec["variants"] if v != "baseline"]
    family += [("init", "baseline+steps"), ("init+joint", "baseline+steps")]
    keys = [(v, ref, n, k) for v, ref in family for n in spec["train_sizes"] for k in SCORES]
    tests = [scipy_stats.ttest_ind(cell(n, v, k), cell(n, ref, k), equal_var=False) for v, ref, n, k in keys]
    rejected = _holm_step_down([t.pvalue for t in tests], alpha)
    words = {key: ("no clear difference" if not rej else "better" if SCORES[key[3]] * t.statistic > 0 else "worse")
             for key, t, rej in zip(keys, tests, rejected)}
    return words, {key: t.pvalue for key, t in zip(keys, tests)}


@pytest.fixture(scope="module")
def committed():
    return load_result("fusion")


@pytest.mark.parametrize("alpha", [0.05, 0.8])
def test_committed_grid_matches_an_independent_computation(committed, alpha):
    words, pvalues = _independent_grid(committed, alpha)
    found = verdicts.grid_verdicts(committed, alpha=alpha)
    assert set(found) == set(words)
    assert len(found) == len(committed["spec"]["train_sizes"]) * len(SCORES) * 6   # 4 vs baseline, 2 vs control
    assert {k: c.verdict for k, c in found.items()} == words
    assert {k: c.p for k, c in found.items()} == pytest.approx(pvalues, rel=1e-9)
    for v, ref in {(k[0], k[1]) for k in words}:
        counts = verdicts.tally(found, v, ref)
        assert counts == {w: sum(1 for k, x in words.items() if k[:2] == (v, ref) and x == w)
                          for w in stats.VERDICTS}
    if alpha == 0.8:   # a loose alpha, so that the comparison above also covers "better" and "worse"
        assert {"better", "worse"} <= set(words.values())


def test_committed_finding_counts(committed):
    finding = verdicts.fusion_finding(committed)
    words, pvalues = _independent_grid(committed, 0.05)
    assert finding.n_comparisons == len(words)
    for v, ref in verdicts.MATCHED_REFERENCE.items():
        assert sum(finding.vs_matched[v].values()) == len(committed["spec"]["train_sizes"]) * len(SCORES)
        assert finding.vs_matched[v]["better"] == sum(w == "better" for k, w in words.items() if k[:2] == (v, ref))
    # what the chapter's old rule hid: at p < 0.05 *uncorrected*, +init beats the baseline in
    # only some of the comparisons its "2 standard errors" called clear in all
    uncorrected = sum(p < 0.05 for k, p in pvalues.items() if k[:2] == ("init", "baseline"))
    assert uncorrected == sum(c.p < 0.05 for k, c in verdicts.grid_verdicts(committed).items()
                              if k[:2] == ("init", "baseline"))
    assert finding.supports_fusion == bool(finding.supported)


def test_committed_data_efficiency_lambda_and_cycle(committed):
    cases = verdicts.data_efficiency(committed)
    runs = committed["runs"]
    keys = [(c.score, c.n, c.m) for c in cases]
    p = [scipy_stats.ttest_ind(verdicts.values(runs, k, train_size=m, variant="baseline"),
                               verdicts.values(runs, k, train_size=n, variant="baseline"), equal_var=False).pvalue
         for k, n, m in keys]
    assert [c.baseline_gain.p for c in cases] == pytest.approx(p)
    assert [c.baseline_gain.p_adjusted for c in cases] == pytest.approx(stats.holm_adjusted(p))
    assert all(c.matching == () and not c.control_matches for c in cases if not c.testable)
    lam = verdicts.lambda_verdicts(committed)
    by_lam = verdicts.lambda_runs(committed)
    assert sorted(by_lam) == [0.0, 1.0, 4.0, 16.0] and all(len(rs) == 3 for rs in by_lam.values())
    p = [scipy_stats.ttest_ind([r[k] for r in by_lam[lam_value]], [r[k] for r in by_lam[0.0]], equal_var=False).pvalue
         for lam_value, k in lam]
    assert [c.p_adjusted for c in lam.values()] == pytest.approx(stats.holm_adjusted(p))
    cyc = verdicts.cycle_verdicts(committed)
    assert list(cyc) == list(verdicts.CYCLE_FAMILY)
    real = [c["probe"] for c in committed["cycle"] if c["source"] == "real"]
    rand = [c["probe"] for c in committed["cycle"] if c["source"] == "random"]
    assert cyc[("real", "random")].p == pytest.approx(scipy_stats.ttest_ind(real, rand, equal_var=False).pvalue)


# ---- synthetic grids: the answer is known by construction ----------------------------------

NOISE = np.array([-1.0, 0.0, 1.0, 0.5])   # one offset per seed: spread 1 in every cell
VARIANTS = ("baseline", "init", "joint", "init+joint", "baseline+steps")


def _cell(mean, shuffle=False):
    return list(mean + (NOISE[::-1] if shuffle else NOISE))


def _synthetic(shift):
    """A grid where ``shift[variant](n)`` moves each score by that many spreads (positive =
    better): the baseline improves with N by 30 spreads, except on the probe."""
    sizes, runs = [100, 1000], []
    for n in sizes:
        for v in VARIANTS:
            for k, sign in SCORES.items():
                gain = (30.0 if (n == 1000 and k != "probe") else 0.0) + shift[v](n)
                # same mean and spread as the baseline when gain is equal: shuffle, so samples differ
                for seed, value in enumerate(_cell(100.0 + sign * gain, shuffle=v != "baseline")):
                    runs.append({"train_size": n, "variant": v, "seed": seed, k: value})
    merged = {}
    for r in runs:
        merged.setdefault((r["train_size"], r["variant"], r["seed"]), {}).update(r)
    return {"spec": {"train_sizes": sizes, "variants": list(VARIANTS)}, "runs": list(merged.values())}



def test_synthetic_grid_known_verdicts():
    results = _synthetic({"baseline": lambda n: 0, "init": lambda n: 20, "joint": lambda n: 0,
                          "init+joint": lambda n: -20, "baseline+steps": lambda n: 20})
    found = verdicts.grid_verdicts(results)
    assert verdicts.tally(found, "init", "baseline") == {"better": 8, "no clear difference": 0, "worse": 0}
    assert verdicts.tally(found, "joint", "baseline") == {"better": 0, "no clear difference": 8, "worse": 0}
    assert verdicts.tally(found, "init+joint", "baseline")["worse"] == 8
    assert verdicts.tally(found, "init", "baseline+steps")["no clear difference"] == 8
    assert verdicts.tally(found, "init+joint", "baseline+steps")["worse"] == 8
    assert verdicts.ahead(found, "init", "baseline") == 8 and verdicts.ahead(found, "joint", "baseline") == 0
    finding = verdicts.fusion_finding(results)
    assert finding.supported == () and not finding.supports_fusion
    # the sign convention: a lower negative ELBO is better
    c = found[("init", "baseline", 100, "test_nelbo")]
    assert c.diff == pytest.approx(-20.0) and c.verdict == "better"


def test_synthetic_grid_where_init_beats_its_control():
    results = _synthetic({"baseline": lambda n: 0, "init": lambda n: 40, "joint": lambda n: 0,
                          "init+joint": lambda n: 0, "baseline+steps": lambda n: 20})
    finding = verdicts.fusion_finding(results)
    assert finding.vs_matched["init"] == {"better": 8, "no clear difference": 0, "worse": 0}
    assert finding.supported == ("init",) and finding.supports_fusion


def test_synthetic_data_efficiency():
    # init on 100 faces is as good as the baseline on 1000; the control on 100 is not
    results = _synthetic({"baseline": lambda n: 0, "init": lambda n: 30 if n == 100 else 0,
                          "joint": lambda n: 0, "init+joint": lambda n: 0, "baseline+steps": lambda n: 5})
    cases = {c.score: c for c in verdicts.data_efficiency(results)}
    assert set(cases) == set(SCORES) and all((c.n, c.m) == (100, 1000) for c in cases.values())
    for k in ("test_nelbo", "psnr", "frechet"):
        assert cases[k].testable and cases[k].matching == ("init",) and not cases[k].control_matches
    # on the probe the baseline does not improve with data: nothing to match
    assert not cases["probe"].testable and cases["probe"].matching == ()


def test_synthetic_lambda_and_cycle():
    runs = [{"train_size": 50, "variant": v, "seed": s, **{k: 100.0 + x for k in SCORES}}
            for v in ("baseline", "joint") for s, x in enumerate(NOISE)]
    sweep = [{"train_size": 50, "lam": 16.0, "seed": s, **{k: 100.0 + SCORES[k] * -25 + x for k in SCORES}}
             for s, x in enumerate(NOISE)]
    cycle = [{"source": src, "seed": s, "probe": 0.6 + 0.001 * x + (0.05 if src == "random" else 0)}
             for src in ("random", "real", "generated", "mixed") for s, x in enumerate(NOISE)]
    results = {"spec": {"lambda_sweep": {"train_size": 50}, "config": {"lam": 4.0}},
               "runs": runs, "lambda_sweep": sweep, "cycle": cycle}
    lam = verdicts.lambda_verdicts(results)
    assert {k: c.verdict for k, c in lam.items() if k[0] == 16.0} == {(16.0, k): "worse" for k in SCORES}
    assert {c.verdict for k, c in lam.items() if k[0] == 4.0} == {"no clear difference"}
    cyc = verdicts.cycle_verdicts(results)
    assert [cyc[(s, "random")].verdict for s in ("real", "generated", "mixed")] == ["worse"] * 3
    assert cyc[("generated", "real")].verdict == "no clear difference"


def test_augmentation_verdicts():
    accuracies = {100: ([0.70, 0.71, 0.705], [0.60, 0.61, 0.605]),   # clearly helps
                  400: ([0.70, 0.72, 0.69], [0.71, 0.70, 0.72])}     # noise
    found = verdicts.augmentation_verdicts(accuracies)
    assert found[100].verdict == "better" and found[400].verdict == "no clear difference"
    assert [c.p_adjusted for c in found.values()] == pytest.approx(stats.holm_adjusted([c.p for c in found.values()]))
    assert found[100].p < found[100].p_adjusted < 0.05
    with pytest.raises(ValueError, match="at least 2 values"):
        verdicts.augmentation_verdicts({48: ([0.5], [0.6])})


def test_bad_input():
    with pytest.raises(ValueError, match="no record with"):
        verdicts.values([{"variant": "baseline", "psnr": 1.0}], "psnr", variant="init")
    with pytest.raises(ValueError, match="no comparison of 'init' with 'nothing'"):
        verdicts.tally({}, "init", "nothing")


def test_counts_in_words():
    assert verdicts.counts_in_words({"better": 1, "no clear difference": 11, "worse": 0}) == \
        "1 better, 11 no clear difference, 0 worse"


def test_fusion_headline_states_what_the_verdicts_decided():
    """The chapter 06 headline, on grids whose answer is known by construction."""
    beats = verdicts.fusion_headline(_synthetic({"baseline": lambda n: 0, "init": lambda n: 40, "joint": lambda n: 0,
                                                 "init+joint": lambda n: 0, "baseline+steps": lambda n: 20}))
    assert "The grid **supports**" in beats and "nor does it" not in beats
    assert "**init** against baseline+steps: 8 better, 0 no clear difference, 0 worse" in beats
    assert "init is better than baseline+steps at N=100 on the test negative ELBO" in beats
    hurts = verdicts.fusion_headline(_synthetic({"baseline": lambda n: 0, "init": lambda n: 0, "joint": lambda n: -40,
                                                 "init+joint": lambda n: 0, "baseline+steps": lambda n: 0}))
    assert "The grid **does not support**" in hurts and "; it shows the fusion hurting." in hurts
    # the baseline gains from 10x the data on three scores: the data-efficiency question is asked
    assert "clearly gains from more real faces in 3 of 4 size-by-score cases; data-efficiency cases" in hurts


def test_fusion_headline_cannot_answer_when_more_data_never_helps():
    """The grid's positive control is the baseline's gain from more real faces: where it never
    passes, a null is no evidence, and the headline says 'cannot answer', with the power."""
    flat = lambda n: -30 if n == 1000 else 0            # cancels the synthetic grid's gain from N  # noqa: E731
    grid = _synthetic({v: flat for v in VARIANTS})
    text = verdicts.fusion_headline(grid)
    assert "the grid **cannot answer**" in text and "does not support" not in text
    assert verdicts.fusion_answer(grid) == verdicts.CANNOT_ANSWER
    seeds = len({r["seed"] for r in grid["runs"]})
    effect = stats.detectable_effect(seeds, alpha=0.05 / verdicts.fusion_finding(grid).n_comparisons)
    assert f"with {seeds} seeds" in text
    assert f"about {effect:.1f} seed standard deviations" in text
    # where a variant clearly beats its matched reference, the grid still supports the fusion
    beats = verdicts.fusion_headline(_synthetic({**{v: flat for v in VARIANTS}, "init": lambda n: 40 + flat(n)}))
    assert "**supports**" in beats and "cannot answer" not in beats


def test_fusion_headline_on_the_committed_grid(committed):
    text = verdicts.fusion_headline(committed)
    finding, cases = verdicts.fusion_finding(committed), verdicts.data_efficiency(committed)
    assert text.startswith(f"**Measured verdict (generated from the results file).** The grid makes "
                           f"{finding.n_comparisons} comparisons")
    assert ("cannot ask the data-efficiency question" in text) == (not any(c.testable for c in cases))
    assert ("**supports**" in text) == finding.supports_fusion
    assert ("**cannot answer**" in text) == (not finding.supports_fusion and not any(c.testable for c in cases))


def test_long_budget_verdicts_and_headline():
    long_variants = ("baseline", "init", "baseline+steps", "init_jigsaw", "init_rotation")
    shift = {"baseline": 0, "init": 40, "baseline+steps": 20, "init_jigsaw": 0, "init_rotation": 20}
    sizes, runs = [100, 1000], []
    for n in sizes:
        for v in long_variants:
            for seed, off in enumerate(_cell(0.0, shuffle=v != "baseline")):
                r = {"train_size": n, "variant": v, "seed": seed, "best_step": 500 + 100 * seed}
                for k, sign in SCORES.items():
                    r[k] = 100.0 + sign * shift[v] + off
                r["train_nelbo"] = r["test_nelbo"] - (30.0 if n == 100 else 2.0)   # overfits at N=100
                runs.append(r)
    results = {"long_budget": {"spec": {"train_sizes": sizes, "variants": list(long_variants),
                                        "config": {"steps": 3000}}, "runs": runs}}
    found = verdicts.long_budget_verdicts(results)
    assert verdicts.tally(found, "init", "baseline+steps") == {"better": 8, "no clear difference": 0, "worse": 0}
    assert verdicts.tally(found, "init_jigsaw", "baseline+steps")["worse"] == 8
    assert verdicts.tally(found, "init_rotation", "baseline+steps")["no clear difference"] == 8
    text = verdicts.long_budget_headline(results)
    assert "step 650 on average (" in text and "of at most 3000)" in text
    assert "by 30.0 nats" in text and "by 2.0 nats" in text
    assert "**init**: 8 better, 0 no clear difference, 0 worse" in text and "init helps beyond" in text
    assert "not evidence of no effect" not in text        # a supported variant: no power caveat
    nothing = {"long_budget": {**results["long_budget"], "runs": [{**r, **{k: 100.0 + i % 3 for k in SCORES}}
                                                                  for i, r in enumerate(runs)]}}
    null = verdicts.long_budget_headline(nothing)
    n_found = len(verdicts.long_budget_verdicts(nothing))
    effect = stats.detectable_effect(len({r["seed"] for r in runs}), alpha=0.05 / n_found)
    assert "not evidence of no effect" in null and f"about {effect:.1f} seed standard deviations" in null
    with pytest.raises(ValueError, match="fusion_long.py"):
        verdicts.long_budget_verdicts({"runs": [], "spec": {}})


def test_lambda_and_cycle_findings_in_words():
    results = _synthetic({"baseline": lambda n: 0, "init": lambda n: 0, "joint": lambda n: -20,
                          "init+joint": lambda n: 0, "baseline+steps": lambda n: 0})
    results["spec"]["config"] = {"lam": 4.0}
    results["spec"]["lambda_sweep"] = {"train_size": 100, "lams": [1.0]}
    results["lambda_sweep"] = [{**r, "lam": 1.0} for r in results["runs"]
                               if r["train_size"] == 100 and r["variant"] == "baseline"]
    text = verdicts.lambda_finding(results)
    assert "clearly worse: lambda = 4 on the test negative ELBO" in text
    assert "no weight of the inpainting term makes a clearly better VAE" in text
    assert "lambda = 4 has the worst mean on 4 of the 4 scores" in text
    cycle = [{"source": s, "seed": i, "probe": base + off}
             for s, base in {"random": 0.70, "real": 0.60, "generated": 0.60, "mixed": 0.61}.items()
             for i, off in enumerate([0.0, 0.001, -0.001, 0.0005])]
    text = verdicts.cycle_finding({"cycle": cycle})
    assert "samples are not clearly different from features pretrained on the real faces" in text
    assert "**random**'s (0.700" in text and "real is worse than random" in text


def test_long_budget_headline_says_whether_the_runs_converged():
    def results(best, steps_run, record=True):
        runs = []
        for n in (100, 1000):
            for v in ("baseline", "init", "baseline+steps", "init_jigsaw", "init_rotation"):
                for seed in range(3):
                    r = {"train_size": n, "variant": v, "seed": seed, "best_step": best[n],
                         "test_nelbo": 100.0 + seed, "train_nelbo": 99.0 + seed,
                         **{k: 1.0 + seed for k in SCORES if k != "test_nelbo"}}
                    if record:
                        r["steps_run"] = steps_run[n]
                    runs.append(r)
        spec = {"train_sizes": [100, 1000], "variants": ["baseline", "init", "baseline+steps", "init_jigsaw",
                                                          "init_rotation"], "config": {"steps": 3000}, "patience": 4,
                "eval_every": 250}
        return {"long_budget": {"spec": spec, "runs": runs}}

    still = verdicts.long_budget_headline(results({100: 1500, 1000: 3000}, {100: 2500, 1000: 3000}))
    assert verdicts.long_budget_convergence(results({100: 1500, 1000: 3000}, {100: 2500, 1000: 3000})) == {
        100: (15, 15), 1000: (0, 15)}
    assert "at N=1000, 0 of 15 runs had no better validation check" in still
    assert "not at convergence" in still and "At this budget, no pretrained" in still
    done = verdicts.long_budget_headline(results({100: 1500, 1000: 1500}, {100: 2500, 1000: 2500}))
    assert "Every run stopped improving" in done and "Trained until the validation score stopped improving" in done
    unknown = verdicts.long_budget_headline(results({100: 1500, 1000: 1500}, {}, record=False))
    assert "cannot be told" in unknown
