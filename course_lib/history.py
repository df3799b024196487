"""Training history: the one format every trainer returns and every cache stores.

:func:`course_lib.loop.train` returns a :class:`History`; :func:`course_lib.checkpoint.load_or_train`
returns it again as ``Trained.history`` (stored in the checkpoint as its plain records, so
``torch.load(weights_only=True)`` reads it). A chapter plots it with :meth:`History.plot` and
reads one metric with ``history["loss"]``; a record is ``{"step": s, name: value, ...}``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["History"]


@dataclass
class History:
    """Training metrics as data: ``records`` is a list of ``{"step": s, name: value, ...}``.

    Read it by metric (``history["loss"]``, ``history.steps("loss")``, ``history.last("loss")``)
    or by record (``for r in history``, ``history[-1]``); ``len(history)`` counts records.
    """

    records: list[dict] = field(default_factory=list)  # one dict per step, in order
    interrupted: bool = False  # True if KeyboardInterrupt ended training early
    stopped_at: int | None = None  # the step a callback ended training at (loop.StopTraining)
    seconds: float = 0.0       # wall time of the train() call(s) that produced it

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[str]:
        """Metric names, in first-seen order (without ``step`` and ``time``)."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(k for k in r if k not in ("step", "time")))
        return list(seen)

    def __iter__(self) -> Iterator[dict]:
        """The records, in order (``for record in history``)."""
        return iter(self.records)

    def __getitem__(self, key):
        """``history["loss"]``: all values of one metric (steps that did not report it are
        skipped). ``history[-1]`` (an int or a slice): the record(s) at that position."""
        if isinstance(key, (int, slice)):
            return self.records[key]
        if key not in ("step", "time") and key not in self.keys():
            raise KeyError(f"no metric {key!r} in history; it has {self.keys()}")
        return [r[key] for r in self.records if key in r]

    def steps(self, key: str) -> list[int]:
        """The steps at which ``key`` was recorded."""
        return [r["step"] for r in self.records if key in r]

    def last(self, key: str, n: int = 1) -> float:
        """Mean of the last ``n`` values of ``key``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:  # [-0:] would be every value
            raise ValueError(f"n must be a positive int (how many of the last values), got {n!r}")
        values = self[key][-n:]
        return sum(values) / len(values)

    def as_dict(self) -> dict[str, list]:
        """Dict of lists, e.g. for ``pandas.DataFrame(history.as_dict())``."""
        return {k: [r.get(k, math.nan) for r in self.records] for k in ["step", *self.keys()]}

    def plot(self, keys: Sequence[str] | None = None, *, ax=None, smooth: int | None = None,
             logy: bool = False, title: str | None = None, ylabel: str | None = None):
        """Plot metrics against step (all of them, or ``keys``); ``smooth`` = moving-average
        window (default: a fiftieth of the run). The y axis is labelled ``ylabel``, by default
        the metric's name when one is plotted. Returns the Axes."""
        import matplotlib.pyplot as plt  # only a plot needs matplotlib, not a trainer

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        keys = list(keys or self.keys())
        smooth = smooth or max(1, len(self.records) // 50)
        for key in keys:
            xs, ys = self.steps(key), self[key]
            if smooth > 1 and len(ys) >= smooth:
                kernel = torch.ones(smooth) / smooth
                ys = torch.conv1d(torch.tensor(ys, dtype=torch.float64).view(1, 1, -1),
                                  kernel.double().view(1, 1, -1)).flatten().tolist()
                xs = xs[smooth - 1:]
            ax.plot(xs, ys, label=key)
        ax.set_xlabel("step")
        if ylabel or len(keys) == 1:
            ax.set_ylabel(ylabel or keys[0])
        if logy:
            ax.set_yscale("log")
        if title:
            ax.set_title(title)
        if keys:
            ax.legend()
        ax.grid(alpha=0.3)
        return ax
