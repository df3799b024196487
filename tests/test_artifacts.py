"""course_lib.artifacts: one writer and one reader for reference weights, snapshots and result files."""
import json
import os
import time

import pytest
import torch

from course_lib import artifacts, results
from course_lib.artifacts import (
    read_snapshot,
    reference_info,
    snapshot_callback,
    snapshot_path,
    write_result,
    write_snapshot,
)
from course_lib.history import History


def test_write_result_writes_json_or_text_atomically(tmp_path):
    out = write_result(tmp_path / "sub" / "r.json", {"a": 1, "b": [1.5, 2]})
    assert out.read_text() == json.dumps({"a": 1, "b": [1.5, 2]}, indent=1) + "\n"   # what the scripts wrote
    write_result(tmp_path / "t.txt", "line 1\nline 2")
    assert (tmp_path / "t.txt").read_text() == "line 1\nline 2\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["r.json", "sub", "t.txt"]  # no temporary file left
    with pytest.raises(TypeError):
        write_result(tmp_path / "x.json", {"a": object()})
    write_result(tmp_path / "x.json", {"a": object()}, default=repr)               # the CLI trainer's metrics


def test_write_result_records_a_finished_run(tmp_path):
    start = time.perf_counter()
    result = {"rows": [1]}
    write_result(tmp_path / "r.json", result, script="experiments/x.py", argv=["x.py", "--evaluate"], start=start,
                 load_at_start=0.5)
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["command"] == "python experiments/x.py --evaluate" and stored["rows"] == [1]
    assert stored["machine"]["load_at_start"] == 0.5 and stored["machine"]["cpus"] == os.cpu_count()
    assert stored["wall_seconds_last_invocation"] >= 0
    with pytest.raises(ValueError, match="start=time.perf_counter"):
        write_result(tmp_path / "r.json", {}, script="experiments/x.py", argv=[])
    assert results.write_run is write_result and results.machine is artifacts.machine   # the old names


def test_snapshots_are_kept_every_n_steps_and_read_back(tmp_path):
    layer = torch.nn.Linear(2, 2)
    every, keep = snapshot_callback(tmp_path, every=2, prefix="ema_step", state=lambda: {"ema": layer.state_dict()},
                                    keep=lambda step: step != 4)
    history = History(records=[{"step": s, "loss": float(s)} for s in range(1, 7)])
    for step in range(1, 7):
        keep(step, history)
    assert every == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["ema_step000002.pt", "ema_step000006.pt"]
    snap = read_snapshot(snapshot_path(tmp_path, 6, prefix="ema_step"))
    assert list(snap) == ["step", "ema", "loss"] and snap["step"] == 6 and snap["loss"] == 3.5   # mean of 1..6
    assert torch.equal(snap["ema"]["weight"], layer.weight)
    write_snapshot(tmp_path / "g.pt", step=1, generator={"w": torch.ones(1)})
    assert read_snapshot(tmp_path / "g.pt") == {"step": 1, "generator": {"w": torch.ones(1)}}
    _, no_loss = snapshot_callback(tmp_path / "gan", every=1, state=lambda: {}, loss=None)
    no_loss(1, History())
    assert list(read_snapshot(snapshot_path(tmp_path / "gan", 1))) == ["step"]


@pytest.mark.parametrize("name", ["ddpm_reference", "flow_reference", "autoencoder_reference",
                                  "inpainting_reference", "dcgan_reference", "wgan_gp_reference"])
def test_every_committed_reference_file_reads_through_the_one_reader(name):
    """The committed .pt files (written before artifacts.py existed) still load: metadata by
    reference_info, and they hold float16 weights, a config, a data version and a command."""
    path = results.RESULTS_DIR / f"{name}.pt"
    if not path.is_file():
        pytest.skip(f"{path.name} not committed")
    key = "generator" if "gan" in name else "ema" if name in ("ddpm_reference", "flow_reference") else "weights"
    info = reference_info(path, key=key, what=name, rebuild="its script")
    assert set(artifacts.REFERENCE_KEYS) <= set(info) and key not in info and "python experiments/" in info["command"]
    weights = torch.load(path, weights_only=True)[key]
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())


def test_update_result_applies_changes_in_turn_and_claim_shares_a_queue(tmp_path):
    out = tmp_path / "r.json"
    for row in (1, 2):
        artifacts.update_result(out, lambda r, row=row: r.setdefault("rows", []).append(row), lock=tmp_path / "l",
                                script="x.py", argv=["x.py"], start=0.0, load_at_start=None)
    assert json.loads(out.read_text())["rows"] == [1, 2]
    unit = tmp_path / "a_seed0.claim"
    assert artifacts.claim(unit) and artifacts.claim(unit)      # taken, and still ours
    unit.write_text("1")                                         # held by a live process (init)
    assert not artifacts.claim(unit)
    unit.write_text("999999999")                                 # a process that has ended: taken over
    assert artifacts.claim(unit) and unit.read_text() == str(os.getpid())
