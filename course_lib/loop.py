"""One loop helper: run a step function over batches, with a budget, progress and history.

A chapter writes the step that it teaches (a VAE step, a GAN's ``update_d`` then
``update_g``) as a plain function ``step_fn(batch) -> {"loss": ..., ...}``;
:func:`train` adds only what every chapter would otherwise copy:

- a :class:`Budget` in steps, epochs or seconds, whichever comes first (the seconds
  budget lets the same chapter fit a laptop and a GPU);
- progress: a live one-line status in Jupyter (its last state is what the stored
  notebook keeps, so there is no widget noise in CI or the book), a ``tqdm`` bar in a
  terminal, a single summary line otherwise; ``COURSE_PROGRESS=live|bar|line|none``;
- callbacks every N steps (a sample grid, a live loss plot: :class:`LivePlot`);
- early stopping: a callback raises :class:`StopTraining` (:class:`EarlyStopping` does, after
  ``patience`` validation scores without improvement, and keeps the best weights);
- a divergence guard: a NaN/inf value stops training with :class:`DivergenceError`,
  naming the step and the usual fixes, before a checkpoint is overwritten;
- optional checkpoints (:class:`course_lib.checkpoint.Checkpoint`) and exact resume;
- Ctrl-C (KeyboardInterrupt, "stop" in Jupyter) ends cleanly: the last checkpoint is
  kept and the history so far is returned with ``interrupted=True``;
- the runtime plan (:func:`course_lib.runtime.runtime`): every step runs under the plan's
  autocast, and :func:`course_lib.runtime.backward_step` inside the step functions applies
  its GradScaler and, under ``torchrun``, the gradient averaging. Step functions return
  *detached tensors*; the loop converts them in one go every ``sync_every`` steps (one
  host sync, not one per metric per step) and, under ``torchrun``, averages them over
  the ranks; only rank 0 shows progress, runs callbacks and writes checkpoints. Every rank
  keeps the same random state: noise is drawn for the global batch and each rank keeps its
  share (``distributed.local_share``), so N processes draw what one process would.

Every trainer in ``course_lib`` (and ``python -m course_lib.train``) runs through
:func:`train`; it is the only step loop in the library.

The history is data (:class:`course_lib.history.History`, importable from here too): a list
of dicts, one per step (``History.records``), plottable with ``History.plot()``.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from course_lib import runtime as runtime_mod
from course_lib.checkpoint import Checkpoint
from course_lib.distributed import active
from course_lib.history import History  # noqa: F401  re-exported: trainers return it
from course_lib.runtime import Runtime, autocast

PROGRESS_ENV = "COURSE_PROGRESS"
StepFn = Callable[[Any], Mapping[str, Any]]
Callback = Callable[[int, "History"], None]


class DivergenceError(FloatingPointError):
    """A training metric became NaN or infinite."""


class StopTraining(Exception):
    """Raised by a callback to end training after the current step (early stopping). The
    loop writes its checkpoint as at the end of a budget and returns the history with
    ``history.stopped_at`` set to the step."""


@dataclass(frozen=True)
class Budget:
    """Stop after ``steps`` steps, ``epochs`` passes or ``seconds`` of wall time, whichever first.

    ``steps`` and ``epochs`` count from the start of training (a resumed run continues to
    the same total); ``seconds`` counts this call only.
    """

    steps: int | None = None      # optimizer steps (calls of step_fn), total
    epochs: float | None = None   # passes over the loader (needs len(loader)), total
    seconds: float | None = None  # wall-clock seconds for this call

    def __post_init__(self):
        if self.steps is None and self.epochs is None and self.seconds is None:
            raise ValueError("Budget needs at least one of steps=, epochs=, seconds=")
        for name in ("steps", "epochs", "seconds"):
            value = getattr(self, name)
            if value is None:
                continue
            whole = name == "steps"  # a step count is a whole number; epochs and seconds need not be
            kind = "a positive int" if whole else "a positive number"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    whole and not isinstance(value, int)):
                raise TypeError(f"Budget.{name} must be {kind}, got {value!r} "
                                f"({type(value).__name__})")
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(f"Budget.{name} must be positive and finite, got {value!r} "
                                 f"(expected {kind})")

    def max_steps(self, steps_per_epoch: int | None) -> int | None:
        """The step limit implied by ``steps`` and ``epochs`` (None: only seconds limit)."""
        limits = [self.steps] if self.steps is not None else []
        if self.epochs is not None:
            if steps_per_epoch is None:
                raise ValueError("Budget(epochs=...) needs a loader with len(); use steps= or seconds=")
            limits.append(max(1, math.ceil(self.epochs * steps_per_epoch)))
        return min(limits) if limits else None


# ---------------------------------------------------------------------------- progress

def _in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


def _progress_mode(progress: bool | str) -> str:
    if progress is False:
        return "none"
    mode = progress if isinstance(progress, str) else "auto"
    if mode == "auto":
        mode = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if mode == "auto":
        mode = "live" if _in_jupyter() else "bar" if sys.stderr.isatty() else "line"
    if mode not in ("live", "bar", "line", "none"):
        raise ValueError(f"progress must be True/False or one of auto, live, bar, line, none; got {mode!r}")
    return mode


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items() if k not in ("step", "time"))


class _Progress:
    """Shows progress in one of four modes; ``close`` prints/keeps the summary line."""

    def __init__(self, mode: str, *, desc: str, start: int, total: int | None, seconds: float | None):
        self.mode, self.desc, self.start, self.total, self.seconds = mode, desc, start, total, seconds
        self.bar = self.handle = None
        self.next_update = 0.0
        if mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)
        elif mode == "live":
            from IPython.display import display
            self.handle = display({"text/plain": f"{desc}: starting"}, raw=True, display_id=True)

    def update(self, step: int, elapsed: float, metrics: Mapping[str, float]) -> None:
        if self.mode in ("none", "line") or elapsed < self.next_update:
            return
        self.next_update = elapsed + 0.5  # redraw at most twice a second: cheap for fast steps
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(_fmt(metrics), refresh=True)
        elif self.handle is not None:
            rate = (step - self.start) / max(elapsed, 1e-9)
            of = f"/{self.total}" if self.total else ""
            self.handle.update({"text/plain": f"{self.desc}: step {step}{of}, {elapsed:.0f} s, "
                                              f"{rate:.1f} steps/s, {_fmt(metrics)}"}, raw=True)

    def close(self, summary: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.handle is not None:
            self.handle.update({"text/plain": summary}, raw=True)
        elif self.mode != "none":
            print(summary)


class LivePlot:
    """Callback redrawing ``history.plot()`` in place in Jupyter (no-op elsewhere)."""

    def __init__(self, keys: Sequence[str] | None = None, *, smooth: int | None = None):
        self.keys, self.smooth, self.handle = keys, smooth, None

    def __call__(self, step: int, history: History) -> None:
        if not _in_jupyter() or not history.records:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        ax = history.plot(self.keys, smooth=self.smooth, title=f"step {step}")
        fig = ax.figure
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


# ---------------------------------------------------------------------------- the loop

class Step:
    """A step function together with the private state it draws from.

    Trainers draw masks, tiles or GAN noise from their own ``torch.Generator`` (and a GAN
    counts calls to know when the generator steps). Wrapping the step in ``Step(fn,
    generators=[g], counters=calls)`` lets :func:`train` store that state in the
    checkpoint, so a resumed run draws exactly what an uninterrupted one would have.
    """

    def __init__(self, fn: StepFn, *, generators: Sequence[torch.Generator] = (),
                 counters: dict[str, int] | None = None):
        self.fn, self.generators = fn, list(generators)
        self.counters = counters if counters is not None else {}

    def __call__(self, batch) -> Mapping[str, Any]:
        return self.fn(batch)

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators], "counters": dict(self.counters)}

    def load_state_dict(self, state: Mapping) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"checkpoint holds {len(state['generators'])} step generators, "
                             f"this step function has {len(self.generators)}")
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)
        self.counters.update(state["counters"])


class EarlyStopping:
    """A callback for :func:`train`: each call computes ``score()`` (lower is better: a
    validation loss), records it in the step's history record as ``name``, keeps a copy of
    ``model``'s weights when the score improves, and raises :class:`StopTraining` after
    ``patience`` calls without improvement. :meth:`restore` loads the best weights back.

        stopper = EarlyStopping(model, lambda: val_loss(model), patience=4)
        train(step_fn, loader, budget=Budget(steps=3000), callbacks=[(250, stopper)])
        stopper.restore()          # the weights of stopper.best_step

    Its state (the best weights, the count) is not checkpointed: use it without a checkpoint
    or accept that a resumed run starts the count afresh.
    """

    def __init__(self, model: torch.nn.Module, score: Callable[[], float], *, patience: int,
                 name: str = "val_loss"):
        if patience < 1:
            raise ValueError(f"EarlyStopping needs patience >= 1 (scores without improvement), got {patience}")
        self.model, self.score, self.patience, self.name = model, score, patience, name
        self.best, self.best_step, self.best_state, self.bad = math.inf, 0, None, 0

    def __call__(self, step: int, history: History) -> None:
        value = float(self.score())
        history.records[-1][self.name] = value
        if value < self.best:
            self.best, self.best_step, self.bad = value, step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return
        self.bad += 1
        if self.bad >= self.patience:
            raise StopTraining(f"{self.name} has not improved on {self.best:.4g} (step {self.best_step}) "
                               f"for {self.patience} checks")

    def restore(self) -> torch.nn.Module:
        """Load the best weights seen into ``model`` (no-op if it was never called)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.model


def _batches(loader: Iterable, start_step: int) -> Iterator:
    if hasattr(loader, "batches"):  # DeviceLoader: exact position in the epoch order
        yield from loader.batches(start_step)
        return
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader produced no batches (empty data set, or batch_size "
                             "larger than the data with drop_last=True)")


def _check_metrics(step: int, metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    """Types and shapes only: cheap, no host sync."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"step_fn must return a dict of scalars like {{'loss': loss.detach()}}, "
                        f"got {type(metrics).__name__} at step {step}")
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ValueError(f"step_fn returned {key!r} with shape {tuple(value.shape)} at step {step}; "
                             f"return scalars (e.g. loss.detach() or loss.item())")
    return metrics


def _to_floats(pending: list[tuple[int, float, Mapping[str, Any]]], plan: Runtime) -> list[dict]:
    """The pending metrics as floats: one host sync for all of them (averaged over ranks)."""
    flat = [v.detach().reshape(()).to(plan.device, torch.float64) if isinstance(v, torch.Tensor)
            else torch.tensor(float(v), dtype=torch.float64, device=plan.device)
            for _, _, metrics in pending for v in metrics.values()]
    values = torch.stack(flat) if flat else torch.zeros(0, dtype=torch.float64)
    if plan.distributed and flat:
        import torch.distributed as dist
        dist.all_reduce(values)
        values /= plan.world_size
    numbers = iter(values.cpu().tolist())
    out = []
    for step, _, metrics in pending:
        record = {}
        for key in metrics:
            value = next(numbers)
            if not math.isfinite(value):
                raise DivergenceError(
                    f"training diverged: {key} = {value} at step {step}. Usual fixes: lower the "
                    f"learning rate (e.g. halve it), clip gradients (torch.nn.utils.clip_grad_norm_), "
                    f"for GANs use a gradient penalty (WGAN-GP) or a smaller discriminator lr, "
                    f"check that inputs are in the expected range, and for fp16 use a GradScaler. "
                    f"The last checkpoint (if any) was written before this step and is intact.")
            record[key] = value
        out.append(record)
    return out


def _elapsed(t0: float, plan: Runtime, budget: Budget) -> float:
    """Seconds since ``t0``. Under torchrun with a seconds budget, rank 0's clock, so every
    rank stops at the same step (one small collective per step)."""
    elapsed = time.perf_counter() - t0
    if plan.distributed and budget.seconds is not None:
        import torch.distributed as dist
        t = torch.tensor([elapsed], dtype=torch.float64,
                         device=plan.device if plan.device.type == "cuda" else "cpu")  # NCCL needs CUDA
        dist.broadcast(t, src=0)
        elapsed = float(t)
    return elapsed


def train(step_fn: StepFn, loader: Iterable, *, budget: Budget,
          progress: bool | str = "auto", callbacks: Sequence[Callback | tuple[int, Callback]] = (),
          every: int = 100, live_plot: bool = False, checkpoint: Checkpoint | None = None,
          history: History | None = None, sync_every: int = 10, desc: str = "train",
          plan: Runtime | None = None) -> History:
    """Call ``step_fn(batch)`` for each batch of ``loader`` until ``budget`` is spent.

    ``step_fn`` returns a dict of scalars (floats or 0-d tensors), e.g.
    ``{"loss": loss.detach()}``; tensors are converted every ``sync_every`` steps so a
    GPU is not forced to wait every step. ``callbacks`` are ``fn(step, history)`` run
    every ``every`` steps and at the end, or ``(n, fn)`` pairs with their own period.
    With ``checkpoint``, state is saved every ``checkpoint.every`` steps and at the end,
    and an existing checkpoint file is loaded first, continuing from its step; a ``step_fn``
    with ``state_dict``/``load_state_dict`` (a :class:`Step`) has its state saved and
    restored with it. ``plan`` is the runtime plan the trainer prepared its models with
    (default :func:`course_lib.runtime.runtime`). Returns the :class:`History` (also when
    interrupted with Ctrl-C).
    """
    if every <= 0 or sync_every <= 0:
        raise ValueError("every and sync_every must be positive")
    if plan is None:
        plan = runtime_mod.runtime()
    history = history if history is not None else History()  # a History to continue (in a notebook)
    start_step = history.records[-1]["step"] if history.records else 0
    if checkpoint is not None and checkpoint.exists():
        state = checkpoint.load()
        start_step, history = state["step"], History(records=list(state["history"]))
        if hasattr(step_fn, "load_state_dict") and "step_state" in state["extra"]:
            step_fn.load_state_dict(state["extra"]["step_state"])
    if not plan.is_main:  # one voice and one writer: rank 0
        progress, callbacks, live_plot = False, (), False
    try:
        per_epoch = len(loader)  # type: ignore[arg-type]
    except TypeError:
        per_epoch = None
    max_steps = budget.max_steps(per_epoch)
    periodic = [(every, cb) if callable(cb) else tuple(cb) for cb in callbacks]
    if live_plot:
        periodic.append((every, LivePlot()))
    bar = _Progress(_progress_mode(progress), desc=desc, start=start_step, total=max_steps,
                    seconds=budget.seconds)
    pending: list[tuple[int, float, Mapping[str, Any]]] = []

    def flush() -> None:
        for (s, t, _), values in zip(pending, _to_floats(pending, plan)):
            history.records.append({"step": s, **values, "time": t})
        pending.clear()

    def save(step: int) -> None:
        if hasattr(step_fn, "state_dict"):
            checkpoint.extra["step_state"] = step_fn.state_dict()
        if plan.is_main:
            checkpoint.save(step, history.records)

    step, t0 = start_step, time.perf_counter()
    elapsed = 0.0
    stream = _batches(loader, start_step)
    try:
        with active(plan):
            while (max_steps is None or step < max_steps) and (budget.seconds is None or elapsed < budget.seconds):
                batch = next(stream)
                with autocast(plan):
                    metrics = _check_metrics(step + 1, step_fn(batch))
                step += 1
                elapsed = _elapsed(t0, plan, budget)
                pending.append((step, elapsed, metrics))
                final = (max_steps is not None and step >= max_steps) or (
                    budget.seconds is not None and elapsed >= budget.seconds)
                due_cb = [cb for n, cb in periodic if step % n == 0 or final]
                due_ckpt = checkpoint is not None and (step % checkpoint.every == 0 or final)
                if len(pending) >= sync_every or due_cb or due_ckpt or final:
                    flush()  # raises DivergenceError before a bad state is checkpointed
                    bar.update(step, elapsed, history.records[-1])
                stop = False
                for cb in due_cb:
                    try:
                        cb(step, history)
                    except StopTraining:
                        stop = True
                if stop and plan.world_size > 1:
                    raise RuntimeError("StopTraining under torchrun is not supported: callbacks run on "
                                       "rank 0 only, so the other ranks would not stop; use a step budget")
                if due_ckpt or (stop and checkpoint is not None):
                    save(step)
                if stop:
                    history.stopped_at = step
                    break
    except KeyboardInterrupt:
        history.interrupted = True
        flush()  # finished steps only: the interrupted one never reached `step += 1`
    except BaseException:
        bar.close(f"{desc}: stopped at step {step}")
        raise
    elapsed = time.perf_counter() - t0
    history.seconds += elapsed
    done = step - start_step
    tail = {k: history.last(k, 10) for k in history.keys()} if history.records else {}
    summary = (f"{desc}: {done} steps (to step {step}) in {elapsed:.1f} s "
               f"({done / max(elapsed, 1e-9):.1f} steps/s)" + (f"; last 10 steps: {_fmt(tail)}" if tail else ""))
    if history.interrupted:
        kept = f"; checkpoint kept at {checkpoint.path}" if checkpoint is not None and checkpoint.exists() else ""
        summary = f"{desc}: interrupted after step {step}{kept}. " + summary
    bar.close(summary)
    return history
