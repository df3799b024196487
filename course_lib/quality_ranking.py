"""Which generator leads the sample-quality table, and which ranks the seeds can tell apart.

``course_lib.results.sample_quality(profile)`` is the table ``bench/sample_quality.py``
writes: every model the course trains, scored over a few sample seeds (one trained model
each, so the spread is the sampling's, not the training's). A mean ranks the models; whether
a rank is real is a test. :func:`ranking` orders the models by one score; :func:`ranking_finding`
says in words who leads, which models the leader cannot be told apart from (Welch's test
over the sample seeds, Holm across the leader's comparisons) and where a model of interest
stands. Chapters 07 and 08 read the table through it, so no chapter names a winner by hand.
"""
from __future__ import annotations

from collections.abc import Sequence

from .stats import UNCLEAR, compare_all

__all__ = ["ranking", "ranking_finding"]


def ranking(table: dict, *, metric: str = "frechet", lower_is_better: bool = True,
            names: Sequence[str] | None = None) -> list[tuple[str, float, float]]:
    """``(model, mean, std)`` of the table's models (or ``names`` of them), best first."""
    models = table["models"]
    names = list(models) if names is None else list(names)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise KeyError(f"no models {unknown} in the {table.get('profile')} table; it has {list(models)}")
    rows = [(n, models[n][metric]["mean"], models[n][metric]["std"]) for n in names]
    return sorted(rows, key=lambda r: r[1], reverse=not lower_is_better)


def ranking_finding(table: dict, *, metric: str = "frechet", lower_is_better: bool = True,
                    names: Sequence[str] | None = None, focus: Sequence[str] = (), alpha: float = 0.05) -> str:
    """The table's leader on ``metric``, the models it is not clearly ahead of, and where each
    model in ``focus`` ranks, as one paragraph. One family: the leader against every other
    model (Welch over the sample seeds, Holm)."""
    rows = ranking(table, metric=metric, lower_is_better=lower_is_better, names=names)
    if len(rows) < 2:
        raise ValueError("ranking_finding needs at least two models")
    models = table["models"]
    leader = rows[0][0]
    tests = compare_all({n: (models[leader][metric]["values"], models[n][metric]["values"]) for n, _, _ in rows[1:]},
                        higher_is_better=not lower_is_better, alpha=alpha)
    tied = [n for n, c in tests.items() if c.verdict == UNCLEAR]
    seeds = len(models[leader][metric]["values"])
    label = {"frechet": "Frechet distance", "kid": "KID"}.get(metric, metric)
    text = (f"{'Lowest' if lower_is_better else 'Highest'} {label} of the {len(rows)} models: {leader} "
            f"({rows[0][1]:.1f} ± {rows[0][2]:.1f}). ")
    if tied:
        text += ("Not clearly ahead of " + ", ".join(
            f"{n} ({models[n][metric]['mean']:.1f} ± {models[n][metric]['std']:.1f}, Holm p {tests[n].p_adjusted:.2f})"
            for n in tied) + f" over {seeds} sample seeds, so the lead is not established; ")
        text += ("clearly ahead of the rest. " if len(tied) < len(rows) - 1 else "")
    else:
        text += f"Clearly ahead of every other model (Welch over {seeds} sample seeds, Holm). "
    place = {n: i + 1 for i, (n, _, _) in enumerate(rows)}
    for n in focus:
        if n not in place:
            raise KeyError(f"focus model {n!r} is not among the ranked models")
        if n != leader:
            text += (f"{n} ranks {place[n]} of {len(rows)} ({models[n][metric]['mean']:.1f} ± "
                     f"{models[n][metric]['std']:.1f}). ")
    return text + "The spreads are over sample seeds of one trained model each, not over retrained models."
