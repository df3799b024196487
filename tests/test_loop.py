"""The loop helper: budgets, history, callbacks, NaN guard, Ctrl-C, progress output."""
import math
import time

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from course_lib.checkpoint import Checkpoint, read_checkpoint
from course_lib.loop import Budget, DivergenceError, EarlyStopping, History, StopTraining, train
from course_lib.runtime import DeviceLoader


def _loader(n=32, batch_size=8):
    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8)
    return DeviceLoader(images, batch_size=batch_size, device="cpu", seed=0)


def _counting_step():
    calls = []

    def step(batch):
        calls.append(batch.shape[0])
        return {"loss": torch.tensor(1.0 / len(calls)), "acc": 0.5}
    return step, calls


def test_budget_validation():
    with pytest.raises(ValueError, match="at least one"):
        Budget()
    with pytest.raises(ValueError, match="steps must be positive"):
        Budget(steps=0)
    assert Budget(epochs=1.5).max_steps(4) == 6
    assert Budget(steps=3, epochs=10).max_steps(4) == 3
    assert Budget(seconds=1).max_steps(None) is None
    with pytest.raises(ValueError, match="len"):
        Budget(epochs=1).max_steps(None)


def test_steps_and_epochs_budgets_count_exactly():
    step, calls = _counting_step()
    history = train(step, _loader(), budget=Budget(steps=7), progress=False)
    assert len(calls) == 7 and len(history) == 7
    assert [r["step"] for r in history.records] == list(range(1, 8))
    step, calls = _counting_step()
    train(step, _loader(), budget=Budget(epochs=2.5), progress=False)  # 4 batches per epoch
    assert len(calls) == 10


def test_seconds_budget_stops_first():
    def slow(batch):
        time.sleep(0.01)
        return {"loss": 1.0}
    history = train(slow, _loader(), budget=Budget(steps=100_000, seconds=0.1), progress=False)
    assert 1 <= len(history) < 100_000
    assert history.seconds >= 0.1


def test_plain_iterables_work_across_epochs():
    batches = [torch.zeros(2, 3, 4, 4)] * 3
    step, calls = _counting_step()
    train(step, batches, budget=Budget(epochs=2), progress=False)
    assert len(calls) == 6
    with pytest.raises(ValueError, match="no batches"):
        train(step, [], budget=Budget(steps=2), progress=False)


def test_history_is_data_and_plots():
    step, _ = _counting_step()
    history = train(step, _loader(), budget=Budget(steps=12), progress=False)
    assert history.keys() == ["loss", "acc"]
    assert history["loss"][0] == 1.0 and math.isclose(history["loss"][-1], 1 / 12, rel_tol=1e-6)
    assert history.last("acc", 5) == 0.5
    assert history.as_dict()["step"] == list(range(1, 13))
    with pytest.raises(KeyError, match="no metric 'nope'"):
        history["nope"]
    ax = history.plot(smooth=3, logy=True)
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 10
    assert ax.get_ylabel() == ""                                   # two metrics: no one label fits
    assert history.plot(["loss"]).get_ylabel() == "loss"           # one metric: its name on the y axis
    assert history.plot(["loss"], ylabel="loss (nats)").get_ylabel() == "loss (nats)"


def test_callbacks_run_every_n_steps_and_at_the_end():
    seen, seen3 = [], []
    step, _ = _counting_step()
    train(step, _loader(), budget=Budget(steps=10), progress=False, every=4,
          callbacks=[lambda s, h: seen.append((s, len(h))), (3, lambda s, h: seen3.append(s))])
    assert seen == [(4, 4), (8, 8), (10, 10)]  # the history is up to date when called
    assert seen3 == [3, 6, 9, 10]


def test_nan_guard_names_the_step_and_keeps_the_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 1)
    ckpt = Checkpoint(tmp_path / "run.pt", models=model, every=5)

    def step(batch):
        n = step.n = getattr(step, "n", 0) + 1
        return {"loss_d": float("nan") if n == 7 else 1.0}
    with pytest.raises(DivergenceError, match=r"loss_d = nan at step 7.*learning rate.*gradient penalty"):
        train(step, _loader(), budget=Budget(steps=20), progress=False, checkpoint=ckpt)
    assert read_checkpoint(ckpt.path)["step"] == 5  # the good state before the NaN


def test_inf_is_caught_too():
    with pytest.raises(DivergenceError, match="inf at step 1"):
        train(lambda b: {"loss": torch.tensor(float("inf"))}, _loader(), budget=Budget(steps=3),
              progress=False)


def test_step_fn_must_return_scalars():
    with pytest.raises(TypeError, match="dict of scalars"):
        train(lambda b: 1.0, _loader(), budget=Budget(steps=2), progress=False)
    with pytest.raises(ValueError, match=r"'loss' with shape \(8,\) at step 1"):
        train(lambda b: {"loss": b.flatten(1).mean(1)}, _loader(), budget=Budget(steps=2), progress=False)


def test_keyboard_interrupt_returns_history_and_keeps_checkpoint(tmp_path, capsys):
    model = torch.nn.Linear(2, 1)
    ckpt = Checkpoint(tmp_path / "run.pt", models=model, every=5)

    def step(batch):
        n = step.n = getattr(step, "n", 0) + 1
        if n == 8:
            raise KeyboardInterrupt
        return {"loss": 1.0}
    history = train(step, _loader(), budget=Budget(steps=20), progress="line", checkpoint=ckpt)
    assert history.interrupted and len(history) == 7
    assert read_checkpoint(ckpt.path)["step"] == 5
    out = capsys.readouterr().out
    assert "interrupted after step 7" in out and "run.pt" in out


def test_progress_modes(capsys, monkeypatch):
    step, _ = _counting_step()
    train(step, _loader(), budget=Budget(steps=3), progress="line", desc="vae")
    assert capsys.readouterr().out.startswith("vae: 3 steps (to step 3) in ")
    train(step, _loader(), budget=Budget(steps=3), progress="none")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("COURSE_PROGRESS", "none")
    train(step, _loader(), budget=Budget(steps=3))
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="progress must be"):
        train(step, _loader(), budget=Budget(steps=3), progress="fancy")


def test_continuing_with_a_history_appends():
    step, _ = _counting_step()
    loader = _loader()
    history = train(step, loader, budget=Budget(steps=4), progress=False)
    history = train(step, loader, budget=Budget(steps=6), progress=False, history=history)
    assert [r["step"] for r in history.records] == [1, 2, 3, 4, 5, 6]
    assert isinstance(history, History)


class _FakeHandle:
    def __init__(self, log, obj):
        self.log = log
        log.append(("display", obj))

    def update(self, obj, **kwargs):
        self.log.append(("update", obj))


def test_jupyter_live_line_and_plot_keep_only_their_final_state(monkeypatch):
    import IPython.display

    from course_lib import loop
    log = []
    monkeypatch.setattr(loop, "_in_jupyter", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: _FakeHandle(log, obj))
    step, _ = _counting_step()
    train(step, _loader(), budget=Budget(steps=6), every=3, live_plot=True, desc="gan")
    texts = [obj["text/plain"] for kind, obj in log if isinstance(obj, dict)]
    figures = [obj for kind, obj in log if not isinstance(obj, dict)]
    assert texts[0] == "gan: starting" and texts[-1].startswith("gan: 6 steps (to step 6)")
    assert len(figures) == 2  # at steps 3 and 6: one display, then one update in place
    assert sum(1 for kind, obj in log if kind == "display") == 2  # one text line, one figure


def test_live_plot_is_a_noop_outside_jupyter(monkeypatch):
    import IPython.display

    from course_lib.loop import LivePlot
    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **kw: calls.append("display"))
    monkeypatch.setattr(History, "plot", lambda self, *a, **kw: calls.append("plot"))
    plot = LivePlot()
    plot(1, History(records=[{"step": 1, "loss": 1.0}]))  # pytest is no Jupyter kernel
    assert calls == [] and plot.handle is None


def test_history_reads_by_record_too():
    """Trained.history is a History: code written for the old list of dicts still reads it."""
    history = History(records=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "acc": 0.5}])
    assert [r["step"] for r in history] == [1, 2] and history[-1]["acc"] == 0.5
    assert history[:1] == [{"step": 1, "loss": 2.0}] and bool(history) and not History()
    assert history["acc"] == [0.5] and history.steps("acc") == [2]


def test_a_callback_can_stop_training_and_the_checkpoint_is_written(tmp_path):
    step, calls = _counting_step()

    def stop_at_5(s, history):
        if s == 5:
            raise StopTraining("enough")
    ckpt = Checkpoint(tmp_path / "c.pt", models=torch.nn.Linear(1, 1), every=100)
    history = train(step, _loader(), budget=Budget(steps=50), callbacks=[(1, stop_at_5)],
                    progress=False, checkpoint=ckpt)
    assert len(calls) == 5 and history.stopped_at == 5 and not history.interrupted
    assert read_checkpoint(tmp_path / "c.pt")["step"] == 5


def test_early_stopping_keeps_and_restores_the_best_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    scores = iter([3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.5])   # best at the third check, then 3 worse
    weights = iter(range(100))

    def step(batch):
        with torch.no_grad():
            model.weight.fill_(float(next(weights)))
        return {"loss": 0.0}
    stopper = EarlyStopping(model, lambda: next(scores), patience=3, name="val")
    history = train(step, _loader(), budget=Budget(steps=100), callbacks=[(2, stopper)], progress=False)
    assert history.stopped_at == 12 and stopper.best_step == 6 and stopper.best == 1.0
    assert history["val"] == [3.0, 2.0, 1.0, 1.5, 1.2, 1.1]       # recorded in the history
    assert model.weight.item() == 11.0                             # the last step's weights...
    stopper.restore()
    assert model.weight.item() == 5.0                              # ...and the best step's (step 6)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(model, lambda: 0.0, patience=0)
