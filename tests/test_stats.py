"""course_lib.stats: Welch's test equals scipy's, the intervals cover what they claim, Holm
matches a hand-worked example, and bad input gets a clear error."""
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from course_lib import stats


def _samples(seed, na, nb, sd_a, sd_b, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, sd_a, na), rng.normal(0.0, sd_b, nb)


@pytest.mark.parametrize("na, nb, sd_a, sd_b", [
    (2, 2, 1.0, 1.0), (3, 3, 0.1, 5.0), (3, 7, 2.0, 0.5), (10, 4, 1.0, 3.0), (50, 200, 1.0, 0.2),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_equals_scipy(seed, na, nb, sd_a, sd_b):
    a, b = _samples(seed, na, nb, sd_a, sd_b, shift=0.7)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    t, p = stats.welch_t_test(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
    assert stats.welch_se_df(a, b)[1] == pytest.approx(ref.df, rel=1e-10)
    low, high = stats.diff_ci(a, b, level=0.9)
    ref_ci = ref.confidence_interval(confidence_level=0.9)
    assert (low, high) == pytest.approx((ref_ci.low, ref_ci.high), rel=1e-9)


def test_known_value_by_hand():
    # a = 1..4: mean 5/2, s^2 = 5/3; b = 2, 4, ..., 10: mean 6, s^2 = 10
    va, vb = Fraction(5, 3) / 4, Fraction(10, 5)
    t_exact = (Fraction(5, 2) - 6) / (va + vb) ** 0.5
    df_exact = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    t, p = stats.welch_t_test([1, 2, 3, 4], [2, 4, 6, 8, 10])
    se, df = stats.welch_se_df([1, 2, 3, 4], [2, 4, 6, 8, 10])
    assert t == pytest.approx(float(t_exact), rel=1e-12) and t == pytest.approx(-2.25144, abs=1e-5)
    assert df == pytest.approx(float(df_exact), rel=1e-12) and df == pytest.approx(5.52079, abs=1e-5)
    assert se == pytest.approx(float(va + vb) ** 0.5)
    assert p == pytest.approx(2 * scipy_stats.t.sf(abs(float(t_exact)), float(df_exact)), rel=1e-10)
    # antisymmetric in (a, b), and a sample against a shifted copy of itself
    assert stats.welch_t_test([2, 4, 6, 8, 10], [1, 2, 3, 4]) == pytest.approx((-t, p))
    assert stats.welch_t_test([1, 2, 3], [1, 2, 3]) == (0.0, 1.0)


def test_equal_sizes_reduce_to_students_t_statistic():
    # with n_a = n_b the Welch and pooled statistics coincide (only df differs)
    a, b = _samples(3, 6, 6, 1.0, 2.0, shift=1.0)
    assert stats.welch_t_test(a, b)[0] == pytest.approx(scipy_stats.ttest_ind(a, b).statistic)


def test_mean_ci_matches_the_t_interval_and_covers():
    a = np.array([3.1, 2.9, 3.4, 3.0])
    low, high = stats.mean_ci(a, level=0.95)
    ref = scipy_stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=scipy_stats.sem(a))
    assert (low, high) == pytest.approx(ref)
    # coverage over many draws of n = 3: about 95%, not the ~80% of mean +- 2 * std/sqrt(n) (ddof=0)
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 1.0, (4000, 3))
    covered = np.mean([lo <= 0 <= hi for lo, hi in map(stats.mean_ci, draws)])
    naive = np.mean(np.abs(draws.mean(1)) <= 2 * draws.std(1) / np.sqrt(3))
    assert 0.94 < covered < 0.96 and naive < 0.85


def test_diff_ci_excludes_zero_exactly_when_p_is_below_one_minus_level():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.normal(rng.uniform(0, 2), 1.0, 3), rng.normal(0.0, rng.uniform(0.2, 2), 4)
        low, high = stats.diff_ci(a, b, level=0.95)
        assert (low > 0 or high < 0) == (stats.welch_t_test(a, b)[1] < 0.05)


def test_one_constant_sample_is_fine_two_are_an_error():
    t, p = stats.welch_t_test([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert t == pytest.approx(-3.4641016) and stats.welch_se_df([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])[1] == 2
    with pytest.raises(ValueError, match="both samples are constant"):
        stats.welch_t_test([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="both samples are constant"):
        stats.compare([5, 5, 5], [5, 5])


@pytest.mark.parametrize("bad, pattern", [
    ([1.0], "at least 2 values"),
    ([], "at least 2 values"),
    ([1.0, float("nan"), 2.0], r"NaN or inf at positions \[1\]"),
    ([1.0, float("inf")], "NaN or inf"),
    ("1234", "1-D sequence of numbers, got str"),
    (None, "got NoneType"),
    ({"a": 1, "b": 2}, "got dict"),
    (["a", "b"], "1-D sequence of numbers"),
    ([[1, 2], [3, 4]], r"shape \(2, 2\)"),
    (3.0, r"shape \(\)"),
])
def test_bad_samples_raise_clear_errors(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        stats.welch_t_test(bad, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=pattern):
        stats.mean_ci(bad)


def test_accepts_lists_arrays_and_cpu_tensors():
    a, b = [0.1, 0.4, 0.35], [0.5, 0.7, 0.65, 0.9]
    ref = stats.welch_t_test(a, b)
    assert stats.welch_t_test(np.array(a), torch.tensor(b)) == pytest.approx(ref)
    assert stats.welch_t_test(tuple(a), np.array(b, dtype=np.float32)) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "0.95", None])
def test_bad_level_and_alpha(level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stats.mean_ci([1, 2, 3], level=level)
    with pytest.raises(ValueError, match="alpha must be"):
        stats.holm([0.01], alpha=level)


def test_holm_hand_worked_example():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # step down: 0.005 <= 0.05/4 yes, 0.01 <= 0.05/3 yes, 0.03 <= 0.05/2 no: stop (0.04 is not
    # rejected although 0.04 <= 0.05/1)
    assert stats.holm(p, alpha=0.05) == [True, False, False, True]
    assert stats.holm(p, alpha=0.1) == [True, True, True, True]
    assert stats.holm(p, alpha=0.025) == [False, False, False, True]


def test_holm_properties():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 30):
        p = rng.uniform(0, 0.2, m) ** 2
        adjusted = stats.holm_adjusted(p)
        assert np.all(adjusted >= p - 1e-15) and np.all(adjusted <= np.minimum(1, m * p) + 1e-15)
        assert np.all(np.diff(adjusted[np.argsort(p)]) >= 0)          # keeps the order of p
        rejected = stats.holm(p, alpha=0.05)
        assert all(r for r, q in zip(rejected, p) if q <= 0.05 / m)   # at least Bonferroni's
    assert stats.holm([0.7], alpha=0.05) == [False] and stats.holm([], alpha=0.05) == []
    assert stats.holm_adjusted([0.6, 0.9]).tolist() == [1.0, 1.0]     # capped at 1


def test_holm_controls_the_familywise_error():
    # 20 true null hypotheses, 3 seeds per arm: uncorrected, most families contain a false
    # "clear difference"; with Holm about alpha of them do
    rng = np.random.default_rng(2)
    any_false, any_false_holm = 0, 0
    trials = 400
    for _ in range(trials):
        p = [stats.welch_t_test(rng.normal(size=3), rng.normal(size=3))[1] for _ in range(20)]
        any_false += any(q <= 0.05 for q in p)
        any_false_holm += any(stats.holm(p, alpha=0.05))
    assert any_false / trials > 0.5 and any_false_holm / trials < 0.08


@pytest.mark.parametrize("bad", [[0.1, 1.2], [-0.01], [float("nan")], [[0.1, 0.2]], "0.1", [None]])
def test_holm_bad_pvalues(bad):
    with pytest.raises(ValueError, match="p-values"):
        stats.holm_adjusted(bad)


def test_compare_verdicts_and_directions():
    a, b = [10.0, 10.1, 9.9, 10.05], [5.0, 5.2, 4.9, 5.1]
    c = stats.compare(a, b)
    assert c.verdict == stats.BETTER and c.diff == pytest.approx(4.9625)
    assert c.low < c.diff < c.high and c.p == c.p_adjusted and (c.n_a, c.n_b) == (4, 4)
    assert stats.compare(a, b, higher_is_better=False).verdict == stats.WORSE
    assert stats.compare(b, a).verdict == stats.WORSE
    noisy = stats.compare([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert noisy.verdict == stats.UNCLEAR and noisy.low < 0 < noisy.high


def test_compare_all_adjusts_across_the_family():
    rng = np.random.default_rng(4)
    # one pair with p of about 0.015 on its own, among 9 pairs with no difference
    a = np.array([1.0, 1.4, 1.2])
    b = a - 0.7 + np.array([0.1, -0.15, 0.05])
    p_alone = stats.welch_t_test(a, b)[1]
    assert 0.01 < p_alone < 0.02
    pairs = {"real": (a, b), **{f"null {i}": (rng.normal(size=3), rng.normal(size=3)) for i in range(9)}}
    found = stats.compare_all(pairs, alpha=0.05)
    assert stats.compare(a, b).verdict == stats.BETTER
    assert found["real"].p == pytest.approx(p_alone)
    assert found["real"].p_adjusted == pytest.approx(stats.holm_adjusted([c.p for c in found.values()])[0])
    assert found["real"].p_adjusted > 0.05 > p_alone and found["real"].verdict == stats.UNCLEAR
    # a per-key direction
    found = stats.compare_all({"up": (a, b), "down": (a, b)}, higher_is_better={"up": True, "down": False})
    assert (found["up"].verdict, found["down"].verdict) == (stats.BETTER, stats.WORSE)
    assert stats.compare_all({}) == {}


def test_compare_all_names_the_bad_pair():
    with pytest.raises(ValueError, match=r"'second': a: needs at least 2 values"):
        stats.compare_all({"first": ([1, 2], [3, 4]), "second": ([1], [2, 3])})


# --- power, before an experiment runs ------------------------------------------------------

@pytest.mark.parametrize("effect, n, alpha, paired", [
    (1.0, 5, 0.05, False), (2.0, 5, 0.05 / 3, True), (0.5, 20, 0.01, False), (3.0, 3, 0.05, True)])
def test_power_equals_scipys_noncentral_t(effect, n, alpha, paired):
    df, ncp = (n - 1, effect * np.sqrt(n)) if paired else (2 * n - 2, effect * np.sqrt(n / 2))
    crit = scipy_stats.t.ppf(1 - alpha / 2, df)
    ref = scipy_stats.nct.sf(crit, df, ncp) + scipy_stats.nct.cdf(-crit, df, ncp)
    assert stats.power(effect, n, alpha=alpha, paired=paired) == pytest.approx(ref, abs=2e-4)


def test_power_is_what_a_simulated_t_test_finds():
    # 4000 simulated experiments of 5 seeds per arm, a true difference of 2 sd: the share the
    # pooled t-test calls at alpha = 0.05 is the computed power, within the simulation's error
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 1.0, (4000, 5)), rng.normal(0.0, 1.0, (4000, 5))
    share = np.mean(scipy_stats.ttest_ind(a, b, axis=1).pvalue < 0.05)
    assert share == pytest.approx(stats.power(2.0, 5), abs=3 * np.sqrt(0.25 / 4000))
    d = rng.normal(1.5, 1.0, (4000, 6))                       # paired: differences of 1.5 sd
    share = np.mean(scipy_stats.ttest_1samp(d, 0, axis=1).pvalue < 0.01)
    assert share == pytest.approx(stats.power(1.5, 6, alpha=0.01, paired=True), abs=3 * np.sqrt(0.25 / 4000))


def test_power_grows_with_effect_and_seeds_and_is_alpha_at_zero():
    assert stats.power(0.0, 7, alpha=0.05) == pytest.approx(0.05, abs=1e-3)
    assert stats.power(1.0, 5) < stats.power(2.0, 5) < stats.power(2.0, 10)
    assert stats.power(2.0, 5, alpha=0.05 / 72) < stats.power(2.0, 5, alpha=0.05)


def test_seeds_for_power_and_detectable_effect_invert_power():
    n = stats.seeds_for_power(1.0, at_least=2)
    assert stats.power(1.0, n) >= 0.8 > stats.power(1.0, n - 1)
    assert stats.seeds_for_power(5.0) == 5                       # never fewer than at_least
    d = stats.detectable_effect(5, alpha=0.05 / 3, paired=True)
    assert stats.power(d, 5, alpha=0.05 / 3, paired=True) == pytest.approx(0.8, abs=1e-6)
    # the warning, reproduced: 3 seeds against 72 comparisons detect only enormous effects
    assert stats.detectable_effect(3, alpha=0.05 / 72) > 9


@pytest.mark.parametrize("call, pattern", [
    (lambda: stats.power(1.0, 1), "n must be an integer >= 2"),
    (lambda: stats.power(1.0, 2.5), "n must be an integer"),
    (lambda: stats.power(float("nan"), 5), "effect must be a finite"),
    (lambda: stats.power(1.0, 5, alpha=1.5), "alpha"),
    (lambda: stats.seeds_for_power(0.0), "effect must be > 0"),
    (lambda: stats.seeds_for_power(0.01, at_most=10), "do not reach power"),
])
def test_power_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_paired_test_equals_scipy_and_pairing_removes_the_seed_spread():
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 10, 6)                        # most of the spread is the seed's
    a, b = seed_effect + 1.0 + rng.normal(0, 0.3, 6), seed_effect + rng.normal(0, 0.3, 6)
    t, p = stats.paired_t_test(a, b)
    ref = scipy_stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    paired, unpaired = stats.compare(a, b, higher_is_better=True, paired=True), stats.compare(a, b)
    assert paired.verdict == stats.BETTER and unpaired.verdict == stats.UNCLEAR
    assert paired.df == 5 and paired.low > 0 and unpaired.low < 0
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_t_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="paired differences are constant"):
        stats.paired_t_test([1, 2, 3], [0, 1, 2])


def test_compare_shares_pairs_yes_no_outcomes_and_handles_constant_differences():
    rng = np.random.default_rng(0)
    base = rng.random(300) < 0.2
    more = base | (rng.random(300) < 0.3)
    out = stats.compare_shares({"more": (more, base), "same": (base, base), "all": (np.ones(300), np.zeros(300))})
    assert out["more"].verdict == "better" and out["more"].p_adjusted < 1e-6
    assert out["same"].verdict == "no clear difference" and out["same"].p == 1.0
    assert out["all"].verdict == "better" and out["all"].diff == 1.0
    assert stats.compare_shares({"x": (more, base)}, higher_is_better=False)["x"].verdict == "worse"
    assert stats.compare_shares({"x": (more, base)})["x"].p == pytest.approx(
        stats.compare(more.astype(float), base.astype(float), paired=True).p)
    with pytest.raises(ValueError, match="0/1 samples"):
        stats.compare_shares({"x": (np.full(5, 0.5), np.zeros(5))})
