"""Checkpoints: round trip, exact resume, atomic writes, clear errors, the model cache."""
import dataclasses
import os
import subprocess
import sys
import textwrap

import matplotlib
import pytest
import torch

from course_lib.artifacts import config_diff, read_reference, reference_mismatch, write_reference
from course_lib.atomic import _HOST, clean_orphans
from course_lib.cache import cache_path, load_or_build
from course_lib.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_or_train,
    read_checkpoint,
    save_checkpoint,
)
from course_lib.facedraw import RENDER_VERSION
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
    with pytest.raises(CheckpointError,
                       match=r"c.pt does not fit model 'encoder'.*weight: file \(8, 4\) vs model \(6, 4\)"):
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
    assert isinstance(second.history, History) and isinstance(first.history, History)
    assert second.history.records == first.history.records == [{"step": 1, "loss": 0.1}]
    assert second.history["loss"] == [0.1] and second.history[-1]["step"] == 1
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
    assert result.history.interrupted


def test_a_cache_file_written_with_plain_records_loads_as_a_history(tmp_path):
    """Cache files store the history as plain records (a list of dicts), as they always did:
    a file written before Trained.history became a History loads (weights_only=True) as one."""
    config, build = TinyConfig(), (lambda c: torch.nn.Linear(2, c.width))
    path, text = cache_path("old", config, cache_dir=tmp_path, data_version=RENDER_VERSION)
    records = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    save_checkpoint(path, models=build(config), history=records, step=2,
                    extra={"config": text, "name": "old", "seconds": 3.0})
    assert torch.load(path, weights_only=True)["history"] == records  # the stored format
    trained = load_or_train("old", lambda m, c: pytest.fail("must not retrain"), config=config,
                            build=build, cache_dir=tmp_path, device="cpu")
    assert trained.from_cache and isinstance(trained.history, History)
    assert trained.history["loss"] == [0.5, 0.25] and trained.history.steps("loss") == [1, 2]
    assert [r["step"] for r in trained.history] == [1, 2] and len(trained.history) == 2
    assert trained.history.seconds == trained.seconds == 3.0
    matplotlib.use("Agg")
    assert len(trained.history.plot().lines) == 1


# ------------------------------------------------------------------ killed writes, bad files
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_killed_write_keeps_the_old_checkpoint_and_its_temp_file_is_cleaned(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, models=torch.nn.Linear(3, 3), step=1)
    # a real kill -9 half-way through the next write: the bytes are in the temporary file,
    # the process dies before the rename (atomic.atomic_write flushes, fsyncs, renames)
    script = textwrap.dedent(f"""
        import os, signal, torch
        from course_lib import atomic, checkpoint
        def dying_fsync(fd):
            os.kill(os.getpid(), signal.SIGKILL)
        atomic.os.fsync = dying_fsync
        checkpoint.save_checkpoint({str(path)!r}, models=torch.nn.Linear(3, 3), step=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True)
    assert proc.returncode == -9, proc.stderr
    orphans = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert len(orphans) == 1 and orphans[0].startswith(".c.pt."), os.listdir(tmp_path)
    assert read_checkpoint(path)["step"] == 1          # the old one loads, and the load cleans up
    assert os.listdir(tmp_path) == ["c.pt"]
    (tmp_path / orphans[0]).write_bytes(b"x")           # the same orphan again: a save cleans it too
    save_checkpoint(path, models=torch.nn.Linear(3, 3), step=3)
    assert os.listdir(tmp_path) == ["c.pt"] and read_checkpoint(path)["step"] == 3


def test_temp_files_of_live_writers_and_other_checkpoints_are_kept(tmp_path):
    path = tmp_path / "c.pt"
    mine = tmp_path / f".c.pt.{os.getpid()}-{_HOST}.abcd1234.tmp"        # a write in progress here
    parent = tmp_path / f".c.pt.{os.getppid()}-{_HOST}.abcd1234.tmp"     # a live process's write
    remote = tmp_path / f".c.pt.{os.getpid()}-otherhost.abcd1234.tmp"    # another machine's write
    old_style_new = tmp_path / ".c.pt.k2j3h4g5.tmp"                       # an older version's, fresh
    old_style_old = tmp_path / ".c.pt.q9w8e7r6.tmp"                       # ... and two hours old
    stale = tmp_path / f".c.pt.{os.getppid()}-{_HOST}.zzzz9999.tmp"      # live pid, but 2 h old: reused pid
    other = tmp_path / ".d.pt.999999999-x.abcd1234.tmp"                   # another checkpoint's
    for p in (mine, parent, remote, old_style_new, old_style_old, stale, other):
        p.write_bytes(b"")
    for p in (old_style_old, stale, other):
        os.utime(p, (os.path.getmtime(p) - 7200,) * 2)
    removed = clean_orphans(path)
    assert sorted(removed) == sorted([old_style_old, stale])
    assert all(p.exists() for p in (mine, parent, remote, old_style_new, other))


def test_a_corrupt_file_says_what_to_do_not_weights_only(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x80\x02garbage" * 50)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "weights_only" not in message and "Delete the file" in message and "load_or_train" in message
    good = save_checkpoint(tmp_path / "good.pt", models=torch.nn.Linear(2, 2))
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:200])   # a zip cut short
    with pytest.raises(CheckpointError, match="truncated.pt is corrupted.*Delete the file"):
        read_checkpoint(tmp_path / "truncated.pt")


def test_a_corrupt_cache_file_moved_aside_is_retrained(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        width: int = 3

    calls = []

    def train_fn(model, cfg):
        calls.append(1)
        return []

    def build(cfg):
        return torch.nn.Linear(cfg.width, 1)

    first = load_or_train("tiny", train_fn, config=Cfg(), build=build, cache_dir=tmp_path, device="cpu")
    first.path.write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="move it aside.*load_or_train then retrains"):
        load_or_train("tiny", train_fn, config=Cfg(), build=build, cache_dir=tmp_path, device="cpu")
    first.path.rename(tmp_path / "kept.pt")
    again = load_or_train("tiny", train_fn, config=Cfg(), build=build, cache_dir=tmp_path, device="cpu")
    assert not again.from_cache and len(calls) == 2


def test_an_optimizer_state_does_not_load_into_another_optimizer_class(tmp_path):
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    adam.step()
    path = save_checkpoint(tmp_path / "c.pt", models=model, optimizers={"opt": adam})
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match=r"optimizer 'opt' was saved from Adam, but you passed a SGD"):
        load_checkpoint(path, models=model, optimizers={"opt": sgd})
    load_checkpoint(path, models=model, optimizers={"opt": torch.optim.Adam(model.parameters())})  # same class: fine
    # a file written before classes were recorded: the optimizer's settings tell them apart
    payload = torch.load(path, weights_only=True)
    del payload["optimizer_classes"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"saved from an optimizer with settings \[.*'betas'"):
        load_checkpoint(tmp_path / "old.pt", models=model, optimizers={"opt": sgd})


def test_the_cache_is_keyed_by_the_toyfaces_drawing_too(tmp_path):
    """A new ToyFaces render version retrains every cached model, not only the VAE."""
    calls = []

    def fit(model, config):
        calls.append(1)
        return []

    build = lambda c: torch.nn.Linear(2, 1)  # noqa: E731
    config = {"width": 2}
    a = load_or_train("m", fit, config=config, build=build, cache_dir=tmp_path, data_version=4)
    b = load_or_train("m", fit, config=config, build=build, cache_dir=tmp_path, data_version=4)
    c = load_or_train("m", fit, config=config, build=build, cache_dir=tmp_path, data_version=5)
    assert (a.from_cache, b.from_cache, c.from_cache) == (False, True, False) and len(calls) == 2
    assert a.path == b.path != c.path


def test_load_or_build_caches_data_and_rebuilds_a_corrupt_file(tmp_path):
    """The data cache (ToyFaces, CelebA, the fusion grid's weights): one file per key and data
    version; a torn or foreign file is rebuilt and overwritten, never returned."""
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.arange(6).reshape(2, 3) * len(calls)}

    first = load_or_build("set", build, key={"n": 2}, cache_dir=tmp_path, data_version=5)
    again = load_or_build("set", build, key={"n": 2}, cache_dir=tmp_path, data_version=5)
    assert len(calls) == 1 and torch.equal(again["x"], first["x"])
    path, _ = cache_path("set", {"n": 2}, folder="data", cache_dir=tmp_path, data_version=5)
    assert path.is_file() and path.parent == tmp_path / "data"
    for damage in (b"", b"cut short", path.read_bytes()[:40]):
        path.write_bytes(damage)
        rebuilt = load_or_build("set", build, key={"n": 2}, cache_dir=tmp_path, data_version=5)
        assert torch.equal(rebuilt["x"], torch.arange(6).reshape(2, 3) * len(calls))
        assert torch.load(path, weights_only=True)["data"]["x"].equal(rebuilt["x"])  # rewritten whole
    assert len(calls) == 4
    # a file written for another key (renamed by hand, a hash collision) is not trusted either
    other, _ = cache_path("set", {"n": 3}, folder="data", cache_dir=tmp_path, data_version=5)
    other.write_bytes(path.read_bytes())
    load_or_build("set", build, key={"n": 3}, cache_dir=tmp_path, data_version=5)
    assert len(calls) == 5
    # another data version (ToyFaces' drawing changed), another file
    load_or_build("set", build, key={"n": 2}, cache_dir=tmp_path, data_version=4)
    assert len(calls) == 6
    with pytest.raises(ValueError, match="simple identifier"):
        load_or_build("a/b", build, key={}, cache_dir=tmp_path, data_version=5)


def test_reference_round_trip_refuses_another_config_and_drawing(tmp_path):
    from course_lib.latent import AutoencoderConfig

    config = AutoencoderConfig(width=16, steps=7)
    model = config.build()
    path = write_reference(tmp_path / "ae.pt", state=model.state_dict(), config=config, steps=7, command="make it",
                           data_version=RENDER_VERSION, note="extra")
    payload = read_reference(path, config=dataclasses.replace(config, steps=999), data_version=RENDER_VERSION,
                             what="test AE", rebuild="make it")
    assert payload["steps"] == 7 and payload["note"] == "extra" and payload["data_version"] == RENDER_VERSION
    assert all(v.dtype == torch.float32 for v in payload["weights"].values())     # stored in float16, read back
    assert config_diff(payload["config"], config) == {}
    assert config_diff(payload["config"], dataclasses.replace(config, width=32)) == {"width": (16, 32)}
    # the one staleness check: config fields but steps, and the data version
    assert reference_mismatch(payload, config=config, data_version=RENDER_VERSION) == {}
    assert reference_mismatch(payload, config=dataclasses.replace(config, width=32),
                              data_version=RENDER_VERSION + 1) == {"width": (16, 32),
                                                                   "data_version": (RENDER_VERSION, RENDER_VERSION + 1)}
    with pytest.raises(ValueError, match=r"does not match AutoencoderConfig.*'width': \(16, 32\).*rerun: make it"):
        read_reference(path, config=dataclasses.replace(config, width=32), data_version=RENDER_VERSION,
                       what="test AE", rebuild="make it")
    stale = torch.load(path, weights_only=True)
    stale["data_version"] = RENDER_VERSION - 1
    torch.save(stale, path)
    with pytest.raises(ValueError, match="render version"):
        read_reference(path, config=config, data_version=RENDER_VERSION, what="test AE", rebuild="make it")
