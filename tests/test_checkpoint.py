"""Checkpoints: round trip, exact resume, atomic writes, clear errors, the model cache."""
import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from course_lib.checkpoint import (Checkpoint, CheckpointError, load_checkpoint, load_or_train,
                                   read_checkpoint, save_checkpoint)
from course_lib.loop import Budget, History, train
from course_lib.runtime import DeviceLoader, seed_everything


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))


def test_round_trip_restores_models_optimizers_rng_history(tmp_path):
    model = _model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 12)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", models={"net": model}, optimizers={"opt": opt}, step=3,
                           history=[{"step": 1, "loss": 0.5}], extra={"note": "hi"})
    expected_next = torch.rand(3)
    other = _model(1)
    other_opt = torch.optim.Adam(other.parameters(), lr=1e-2)
    state = load_checkpoint(path, models={"net": other}, optimizers={"opt": other_opt})
    assert state == {"step": 3, "history": [{"step": 1, "loss": 0.5}], "extra": {"note": "hi"}}
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert other_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert torch.equal(torch.rand(3), expected_next)  # RNG restored to the moment of saving


def _run(tmp_path, *, interrupt_at=None, fresh_seed=0):
    """Train a dropout net 20 steps; optionally Ctrl-C at a step, checkpoint every 6."""
    seed_everything(0)
    images = torch.randint(0, 256, (40, 3, 2, 2), dtype=torch.uint8)
    loader = DeviceLoader(images, batch_size=8, device="cpu", seed=1)
    model = _model(fresh_seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(batch):
        if step.calls == interrupt_at:
            raise KeyboardInterrupt
        step.calls += 1
        loss = (model(batch.flatten(1)) - torch.randn(batch.shape[0], 1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}
    step.calls = 0
    ckpt = Checkpoint(tmp_path / "run.pt", models=model, optimizers=opt, every=6)
    history = train(step, loader, budget=Budget(steps=20), progress=False, checkpoint=ckpt)
    return model, history


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    reference, ref_history = _run(tmp_path / "a")
    _, partial = _run(tmp_path / "b", interrupt_at=15)
    assert partial.interrupted and len(partial) == 15
    resumed, history = _run(tmp_path / "b", fresh_seed=123)  # different init: must be overwritten
    for a, b in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert history["loss"] == ref_history["loss"]  # history restored from step 12, then continued


def test_write_killed_half_way_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from course_lib.checkpoint import save_checkpoint
        model = torch.nn.Linear(300, 300)
        save_checkpoint({str(path)!r}, models=model, step=1)
        real_save = torch.save
        def dying_save(obj, f):
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the write
        torch.save = dying_save
        save_checkpoint({str(path)!r}, models=model, step=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert read_checkpoint(path)["step"] == 1
    load_checkpoint(path, models=torch.nn.Linear(300, 300))


def test_failed_write_in_process_cleans_up(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 3)
    save_checkpoint(tmp_path / "c.pt", models=model, step=1)

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.pt", models=model, step=2)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "c.pt")["step"] == 1
    assert os.listdir(tmp_path) == ["c.pt"]  # no temp file left behind


def test_corrupted_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt is corrupted"):
        load_checkpoint(path, models=torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "missing.pt")


def test_mismatched_checkpoint_names_file_and_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", models={"encoder": torch.nn.Linear(4, 8)})
    with pytest.raises(CheckpointError, match=r"c.pt does not fit model 'encoder'.*weight: file \(8, 4\) vs model \(6, 4\)"):
        load_checkpoint(path, models={"encoder": torch.nn.Linear(4, 6)})
    with pytest.raises(CheckpointError, match=r"has no model \['decoder'\]"):
        load_checkpoint(path, models={"decoder": torch.nn.Linear(4, 8)})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(path, models={"encoder": torch.nn.Sequential(torch.nn.Linear(4, 8))})
    torch.save({"something": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="format"):
        read_checkpoint(tmp_path / "foreign.pt")


@dataclasses.dataclass
class TinyConfig:
    width: int = 4  # hidden units
    steps: int = 3  # training steps


def test_load_or_train_caches_by_name_and_config(tmp_path):
    calls = []

    def build(cfg):
        return torch.nn.Linear(2, cfg.width)

    def train_fn(model, cfg):
        calls.append(cfg)
        with torch.no_grad():
            model.weight.fill_(len(calls))
        return History(records=[{"step": 1, "loss": 0.1}])

    first = load_or_train("tiny", train_fn, config=TinyConfig(), build=build, cache_dir=tmp_path, device="cpu")
    assert not first.from_cache and len(calls) == 1 and first.path.is_file()
    second = load_or_train("tiny", train_fn, config=TinyConfig(), build=build, cache_dir=tmp_path, device="cpu")
    assert second.from_cache and len(calls) == 1
    assert torch.equal(second.model.weight, first.model.weight)
    assert second.history == [{"step": 1, "loss": 0.1}]
    third = load_or_train("tiny", train_fn, config=TinyConfig(steps=4), build=build, cache_dir=tmp_path, device="cpu")
    assert not third.from_cache and len(calls) == 2 and third.path != first.path
    with pytest.raises(ValueError, match="simple identifier"):
        load_or_train("a/b", train_fn, config=TinyConfig(), build=build, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="dataclass"):
        load_or_train("tiny", train_fn, config=3, build=build, cache_dir=tmp_path)


def test_load_or_train_does_not_cache_interrupted_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    result = load_or_train("cut", lambda m, c: History(interrupted=True), config=TinyConfig(),
                           build=lambda c: torch.nn.Linear(1, 1), device="cpu")
    assert not result.path.exists() and result.path.parent == tmp_path
