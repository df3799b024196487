"""Is a difference real? Welch's t-test, confidence intervals and Holm's correction.

The course's experiments repeat each configuration over a few seeds and ask whether one
configuration beats another. Every chapter answers with the three standard tools below
and nothing else:

- :func:`welch_t_test`: the difference of two means when the two variances may differ
  (Welch 1947), with the Welch-Satterthwaite degrees of freedom (Satterthwaite 1946);
- :func:`mean_ci`, :func:`diff_ci`: confidence intervals for a mean and for a difference
  of means, built on the same standard errors;
- :func:`holm`, :func:`holm_adjusted`: Holm's step-down correction (Holm 1979), when one
  question is answered by many comparisons at once;
- :func:`compare` / :func:`compare_all`: all of the above for one pair or one family of
  pairs, ending in a word: ``"better"``, ``"worse"`` or ``"no clear difference"``;
  ``paired=True`` when both samples share their seeds (:func:`paired_t_test`);
  :func:`compare_shares` for paired yes/no outcomes (the same items under two treatments);
- :func:`power`, :func:`seeds_for_power`: before an experiment runs, the chance that it
  detects an effect of a given size, and the seeds it needs for 80% (Cohen 1988): an
  experiment that could not have detected an effect is no evidence that there is none.

Conventions. A *sample* is a 1-D sequence of finite numbers (list, NumPy array, CPU
tensor), one value per seed, at least 2 values. Variances are the unbiased sample
variances (``ddof=1``). Bad input raises ``ValueError`` saying what was expected. Two
samples that are both constant have no spread to test against: the t statistic is 0/0
or x/0 and :func:`welch_t_test` raises ``ValueError`` rather than return inf or NaN.

References:
    Welch, B. L. (1947). The generalization of "Student's" problem when several different
    population variances are involved. Biometrika 34(1-2), 28-35.
    Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance
    components. Biometrics Bulletin 2(6), 110-114.
    Holm, S. (1979). A simple sequentially rejective multiple test procedure.
    Scandinavian Journal of Statistics 6(2), 65-70.
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.stats import chi2, norm, t as student_t

BETTER, WORSE, UNCLEAR = "better", "worse", "no clear difference"
VERDICTS = (BETTER, UNCLEAR, WORSE)

K = TypeVar("K", bound=Hashable)


def as_sample(values, name: str = "sample") -> np.ndarray:
    """``values`` as a float64 array of shape (n,), n >= 2, all finite; else ValueError."""
    if isinstance(values, (str, bytes, Mapping)) or values is None:
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got {type(values).__name__}")
    try:
        sample = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got {values!r:.80}") from None
    if sample.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got shape {sample.shape}")
    if len(sample) < 2:
        raise ValueError(f"{name}: needs at least 2 values to estimate a variance (ddof=1), "
                         f"got {len(sample)}; run more seeds")
    if not np.isfinite(sample).all():
        raise ValueError(f"{name}: contains NaN or inf at positions "
                         f"{np.flatnonzero(~np.isfinite(sample)).tolist()}")
    return sample


def _check_level(level: float, name: str = "level") -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {level!r}")
    return float(level)


def welch_se_df(a, b) -> tuple[float, float]:
    """Standard error of ``mean(a) - mean(b)`` and its Welch-Satterthwaite degrees of freedom.

    With sample variances s^2 (ddof=1) and sizes n:

        se^2 = s_a^2 / n_a + s_b^2 / n_b
        df   = se^4 / ( (s_a^2/n_a)^2 / (n_a - 1) + (s_b^2/n_b)^2 / (n_b - 1) )

    df lies between min(n_a, n_b) - 1 and n_a + n_b - 2; it is small when one noisy sample
    dominates the standard error, which widens the t distribution accordingly.
    """
    a, b = as_sample(a, "a"), as_sample(b, "b")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)   # squared standard errors of each mean
    if va + vb == 0:
        raise ValueError("both samples are constant (zero variance): the Welch test has no spread "
                         "to compare the difference with; compare the values directly")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(np.sqrt(va + vb)), float(df)


def welch_t_test(a, b) -> tuple[float, float]:
    """Two-sided Welch t-test of "mean(a) == mean(b)": returns ``(t, p)``.

    t = (mean(a) - mean(b)) / se, and p = 2 P(T_df > |t|) for Student's t with the
    Welch-Satterthwaite df (:func:`welch_se_df`). The same numbers as
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``. Unlike Student's pooled test it does
    not assume that both samples have the same variance (a fine-tuned model and a model
    trained from scratch rarely vary equally over seeds).
    """
    se, df = welch_se_df(a, b)
    t = (as_sample(a, "a").mean() - as_sample(b, "b").mean()) / se
    return float(t), float(2 * student_t.sf(abs(t), df))


def paired_t_test(a, b) -> tuple[float, float]:
    """Two-sided paired t-test of "mean(a - b) == 0": ``(t, p)``, with ``a[i]`` and ``b[i]``
    measured on the same seed (same initialisation, data order and noise), so the seed's
    share of the spread cancels in ``a - b``. The same numbers as ``scipy.stats.ttest_rel``."""
    d = _differences(a, b)
    se = d.std(ddof=1) / np.sqrt(len(d))
    if se == 0:
        raise ValueError("the paired differences are constant (zero variance): the paired test has "
                         "no spread to compare the difference with; compare the values directly")
    t = d.mean() / se
    return float(t), float(2 * student_t.sf(abs(t), len(d) - 1))


def _differences(a, b) -> np.ndarray:
    a, b = as_sample(a, "a"), as_sample(b, "b")
    if len(a) != len(b):
        raise ValueError(f"paired samples need one value per seed in each: got {len(a)} and {len(b)}")
    return a - b


def power(effect: float, n: int, *, alpha: float = 0.05, paired: bool = False) -> float:
    """Probability that a two-sided t-test at level ``alpha`` finds a true difference of
    ``effect`` standard deviations with ``n`` seeds per arm.

    ``paired=False``: two independent samples of n with a common standard deviation sigma,
    ``effect = delta / sigma``; t follows a noncentral t with 2n - 2 degrees of freedom and
    noncentrality ``effect * sqrt(n / 2)`` (Welch's test has the same power here, to within
    a few percent). ``paired=True``: ``effect`` is in standard deviations of the per-seed
    *difference*, df = n - 1, noncentrality ``effect * sqrt(n)``. For a family of m planned
    comparisons corrected by Holm, pass ``alpha / m`` (Holm's first step, the worst case)."""
    _check_level(alpha, "alpha")
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n must be an integer >= 2 seeds per arm, got {n!r}")
    if not np.isfinite(effect):
        raise ValueError(f"effect must be a finite number of standard deviations, got {effect!r}")
    df, ncp = (n - 1, effect * np.sqrt(n)) if paired else (2 * n - 2, effect * np.sqrt(n / 2))
    crit = student_t.ppf(1 - alpha / 2, df)
    # P(|Z + ncp| > crit * S), S = sqrt(chi2_df / df): the noncentral t, averaged over 4000
    # quantiles of S (scipy's nct returns NaN far in its tails, where power is near 1)
    s = np.sqrt(chi2.ppf((np.arange(4000) + 0.5) / 4000, df) / df)
    return float(np.mean(norm.sf(crit * s - ncp) + norm.cdf(-crit * s - ncp)))


def seeds_for_power(effect: float, *, alpha: float = 0.05, target: float = 0.8, paired: bool = False,
                    at_least: int = 5, at_most: int = 1000) -> int:
    """The fewest seeds per arm (>= ``at_least``) whose :func:`power` to detect ``effect``
    standard deviations reaches ``target``; ValueError when even ``at_most`` seeds do not."""
    _check_level(target, "target")
    if not effect > 0:
        raise ValueError(f"effect must be > 0 standard deviations, got {effect!r}")
    for n in range(max(at_least, 2), at_most + 1):
        if power(effect, n, alpha=alpha, paired=paired) >= target:
            return n
    raise ValueError(f"{at_most} seeds per arm do not reach power {target} for an effect of {effect} sd "
                     f"at alpha {alpha}: ask a bigger question or measure with less noise")


def detectable_effect(n: int, *, alpha: float = 0.05, target: float = 0.8, paired: bool = False) -> float:
    """The smallest effect, in standard deviations, that ``n`` seeds per arm detect with
    probability ``target`` (the inverse of :func:`power` in ``effect``, by bisection)."""
    _check_level(target, "target")
    low, high = 0.0, 1.0
    while power(high, n, alpha=alpha, paired=paired) < target:
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if power(mid, n, alpha=alpha, paired=paired) < target else (low, mid)
    return float(high)


def mean_ci(a, *, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval for the mean of ``a``: mean +- t_{(1+level)/2, n-1} s / sqrt(n)."""
    a, level = as_sample(a, "a"), _check_level(level)
    half = student_t.ppf((1 + level) / 2, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))
    return float(a.mean() - half), float(a.mean() + half)


def diff_ci(a, b, *, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval for ``mean(a) - mean(b)``: diff +- t_{(1+level)/2, df} se, with the
    Welch se and df. It excludes 0 exactly when :func:`welch_t_test` gives p < 1 - level."""
    se, df = welch_se_df(a, b)
    diff = as_sample(a, "a").mean() - as_sample(b, "b").mean()
    half = student_t.ppf((1 + _check_level(level)) / 2, df) * se
    return float(diff - half), float(diff + half)


def _pvalues(pvalues) -> np.ndarray:
    try:
        p = np.asarray(pvalues, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"expected a 1-D sequence of p-values, got {pvalues!r:.80}") from None
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):   # NaN fails the comparison too
        raise ValueError(f"expected a 1-D sequence of p-values in [0, 1], got {pvalues!r:.80}")
    return p


def holm_adjusted(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order.

    Sort the m p-values, p_(1) <= ... <= p_(m). The adjusted value of the i-th smallest is

        p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)),

    so the smallest p is multiplied by m (as Bonferroni would), the next by m - 1, and so on;
    the running maximum keeps the order. Rejecting every hypothesis with p~ <= alpha is
    Holm's procedure: the probability of *any* false "clear difference" in the family stays
    <= alpha, whatever the dependence between the tests, and it rejects at least what
    Bonferroni (p <= alpha / m) rejects.
    """
    p = _pvalues(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])   # (m - j + 1) p_(j), j from 1
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def holm(pvalues: Sequence[float], *, alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``.

    Walk through the sorted p-values: reject H_(1) if p_(1) <= alpha / m, then H_(2) if
    p_(2) <= alpha / (m - 1), ..., and stop at the first that fails; nothing after it is
    rejected. Returns one bool per input p-value, in the input's order.
    """
    alpha = _check_level(alpha, "alpha")
    return [bool(q <= alpha) for q in holm_adjusted(pvalues)]


@dataclass(frozen=True)
class Comparison:
    """One comparison of sample ``a`` with sample ``b``, in the units of the score."""
    diff: float        # mean(a) - mean(b)
    low: float         # confidence interval for diff at `level` (not corrected for the family)
    high: float
    level: float       # e.g. 0.95
    t: float           # Welch's t statistic
    df: float          # Welch-Satterthwaite degrees of freedom
    p: float           # two-sided p of this comparison alone
    p_adjusted: float  # Holm-adjusted over its family (= p for a family of one)
    n_a: int
    n_b: int
    verdict: str       # "better" / "worse" (a is better / worse than b) / "no clear difference"


def compare_all(pairs: Mapping[K, tuple[Sequence[float], Sequence[float]]], *,
                higher_is_better: bool | Mapping[K, bool] = True, alpha: float = 0.05,
                level: float = 0.95, paired: bool = False) -> dict[K, Comparison]:
    """Compare every pair ``key -> (a, b)`` of one family, Holm-correcting across the family.

    Each pair gets a Welch test; the verdict is ``"better"`` when the Holm-adjusted p is
    <= alpha and ``a`` is ahead in the score's good direction (``higher_is_better``: one
    bool for all, or one per key), ``"worse"`` when it is behind, else
    ``"no clear difference"``. The confidence interval is per comparison, so within a large
    family a 95% interval can exclude 0 while the verdict stays "no clear difference".
    ``paired=True``: ``a[i]`` and ``b[i]`` share seed i; the paired t-test, its n - 1 degrees
    of freedom and its interval replace Welch's.
    """
    alpha, level = _check_level(alpha, "alpha"), _check_level(level)
    rows = {}
    for key, (a, b) in pairs.items():
        a, b = as_sample(a, f"{key!r}: a"), as_sample(b, f"{key!r}: b")
        if paired:
            d = _differences(a, b)
            half = student_t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            rows[key] = (a, b, *paired_t_test(a, b), float(len(d) - 1), (d.mean() - half, d.mean() + half))
        else:
            rows[key] = (a, b, *welch_t_test(a, b), welch_se_df(a, b)[1], diff_ci(a, b, level=level))
    adjusted = holm_adjusted([p for _, _, _, p, _, _ in rows.values()])
    result = {}
    for (key, (a, b, t, p, df, (low, high))), q in zip(rows.items(), adjusted):
        up = higher_is_better[key] if isinstance(higher_is_better, Mapping) else higher_is_better
        ahead = (a.mean() > b.mean()) == bool(up)
        verdict = UNCLEAR if q > alpha else BETTER if ahead else WORSE
        result[key] = Comparison(diff=float(a.mean() - b.mean()), low=float(low), high=float(high), level=level,
                                 t=t, df=df, p=p, p_adjusted=float(q), n_a=len(a), n_b=len(b),
                                 verdict=verdict)
    return result


def compare(a, b, *, higher_is_better: bool = True, alpha: float = 0.05,
            level: float = 0.95, paired: bool = False) -> Comparison:
    """:func:`compare_all` for a family of one: a single planned comparison of ``a`` with ``b``."""
    return compare_all({0: (a, b)}, higher_is_better=higher_is_better, alpha=alpha, level=level,
                       paired=paired)[0]


def compare_shares(pairs: Mapping[K, tuple[Sequence[float], Sequence[float]]], *,
                   higher_is_better: bool | Mapping[K, bool] = True, alpha: float = 0.05) -> dict[K, Comparison]:
    """:func:`compare_all` with ``paired=True`` for 0/1 outcomes of the same items under two
    treatments (e.g. "does the attribute network see glasses on face i" after two edits).

    ``pairs[key] = (a, b)``: one 0/1 value per item in each, ``a[i]`` and ``b[i]`` for the
    same item. The paired t-test over the items is the normal approximation of McNemar's
    test. A pair whose difference is the same on every item has no spread to test: its
    verdict is that difference's sign (``"no clear difference"`` when it is 0) with p and
    the adjusted p set to 0 or 1, and it does not count in the Holm family.
    """
    checked = {}
    for key, (a, b) in pairs.items():
        a, b = as_sample(a, f"{key!r}: a"), as_sample(b, f"{key!r}: b")
        if len(a) != len(b) or not np.isin(np.concatenate([a, b]), (0.0, 1.0)).all():
            raise ValueError(f"{key!r}: expected two 0/1 samples of one length (one value per item), "
                             f"got lengths {len(a)} and {len(b)}")
        checked[key] = (a, b)
    testable = {k: v for k, v in checked.items() if np.ptp(v[0] - v[1]) > 0}
    hib = (lambda k: higher_is_better[k]) if isinstance(higher_is_better, Mapping) else (lambda k: higher_is_better)
    result = compare_all(testable, higher_is_better={k: hib(k) for k in testable}, alpha=alpha,
                         paired=True) if testable else {}
    for key, (a, b) in checked.items():
        if key not in testable:
            d = float((a - b)[0])
            verdict = UNCLEAR if d == 0 else BETTER if (d > 0) == bool(hib(key)) else WORSE
            result[key] = Comparison(diff=d, low=d, high=d, level=0.95, t=float("nan"), df=float("nan"),
                                     p=float(d == 0), p_adjusted=float(d == 0), n_a=len(a), n_b=len(b),
                                     verdict=verdict)
    return {key: result[key] for key in checked}

