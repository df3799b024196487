"""The fusion experiment: the script runs end to end on a tiny config, and the committed
results file covers the full grid and is current with the script's config."""
from __future__ import annotations

import json
import math

import pytest

from course_lib import verdicts
from course_lib.results import result_path
from tests.script_loader import load_script

RESULTS = result_path("fusion")


def _script(stem: str = "fusion"):
    return load_script(f"experiments/{stem}.py", name=f"experiment_{stem}")


def _check_complete(result: dict, grid: dict, variants) -> None:
    runs = result["runs"]
    expected = {(n, v, s) for n in grid["train_sizes"] for v in variants for s in grid["seeds"]}
    assert {(r["train_size"], r["variant"], r["seed"]) for r in runs} == expected
    assert len(runs) == len(expected)
    for r in runs:
        for key in ("test_nelbo", "psnr", "frechet", "probe"):
            assert math.isfinite(r[key]), (r, key)
        assert 0.0 <= r["probe"] <= 1.0 and r["frechet"] >= 0 and r["test_nelbo"] > 0
    sweep = grid["lambda_sweep"]
    assert {(r["lam"], r["seed"]) for r in result["lambda_sweep"]} == {
        (lam, s) for lam in sweep["lams"] for s in grid["seeds"]}
    assert all(r["train_size"] == sweep["train_size"] and math.isfinite(r["test_nelbo"])
               for r in result["lambda_sweep"])
    sources = {(c["source"], c["seed"]) for c in result["cycle"]}
    assert sources == {(s, seed) for s in ("random", "real", "generated", "mixed") for seed in grid["seeds"]}
    assert result["command"].startswith("python experiments/fusion.py")
    assert result["machine"]["cpu_count"] >= 1


def test_tiny_config_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    script = _script()
    out = tmp_path / "fusion_tiny.json"
    script.main(["--tiny", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["spec"] == script.grid_spec(script.TINY)
    _check_complete(result, script.TINY, script.fusion.VARIANTS)
    assert list((tmp_path / "cache" / "fusion_grid").glob("vae_init+joint_48_0-*.pt"))  # weights cached


def test_long_budget_tiny_runs_end_to_end_and_keeps_the_grid(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    script = _script("fusion_long")
    out = tmp_path / "fusion.json"
    out.write_text(json.dumps({"runs": ["the grid's runs"]}))
    script.main(["--tiny", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["runs"] == ["the grid's runs"]                     # the rest of the file is kept
    section = result["long_budget"]
    assert section["spec"] == script.long_spec(script.TINY)
    grid, cfg = script.TINY, script.TINY["config"]
    assert {(r["train_size"], r["variant"], r["seed"]) for r in section["runs"]} == {
        (n, v, s) for n in grid["train_sizes"] for v in script.VARIANTS for s in grid["seeds"]}
    for r in section["runs"]:
        assert all(math.isfinite(r[k]) for k in ("train_nelbo", "test_nelbo", "psnr", "frechet", "probe", "val_nelbo"))
        limit = cfg.steps + (cfg.pretrain_steps if r["variant"] == "baseline+steps" else 0)
        assert 0 < r["best_step"] <= r["steps_run"] <= limit
        assert r["val_nelbo"] == pytest.approx(min(v for _, v in r["val_curve"]), abs=0.01)
    assert list((tmp_path / "cache" / "fusion_long").glob("vae_init_jigsaw_scaled_48_0-*.pt"))   # match_scale names it
    assert section["seeds_done"] == list(grid["seeds"]) and section["complete"]
    assert set(section["by_seed"]) == {str(s) for s in grid["seeds"]}


def test_long_budget_merges_one_seed_at_a_time():
    script = _script("fusion_long")
    spec = {"seeds": [0, 1, 2], "config": {"steps": 3}}
    run = lambda seed, n=500: {"seed": seed, "train_size": n, "variant": "baseline", "test_nelbo": float(seed)}  # noqa: E731
    first = script.merge_seeds(None, spec, [run(0), run(0, 10000)], {"0": {"command": "--seeds 0"}},
                               log=lambda *a: None)
    assert first["seeds_done"] == [0] and not first["complete"]
    second = script.merge_seeds(first, spec, [run(2)], {"2": {"command": "--seeds 2"}}, log=lambda *a: None)
    assert second["seeds_done"] == [0, 2] and set(second["by_seed"]) == {"0", "2"}
    assert len(second["runs"]) == 3
    redo = script.merge_seeds(second, spec, [run(0)], {"0": {"command": "again"}}, log=lambda *a: None)
    assert len(redo["runs"]) == 2 and redo["by_seed"]["0"]["command"] == "again"   # seed 0 replaced
    final = script.merge_seeds(redo, spec, [run(1)], {"1": {}}, log=lambda *a: None)
    assert final["complete"] and final["seeds_done"] == [0, 1, 2]
    messages = []
    other = script.merge_seeds(final, {**spec, "config": {"steps": 4}}, [run(1)], {"1": {}}, log=messages.append)
    assert other["seeds_done"] == [1] and messages                   # another spec: the old runs are dropped
    with pytest.raises(ValueError, match="--seeds 0 2"):
        verdicts.long_budget_verdicts({"long_budget": other})


def test_committed_results_cover_the_grid_and_are_current():
    assert RESULTS.exists(), "run `python experiments/fusion.py` and commit course_lib/results_data/fusion.json"
    result = json.loads(RESULTS.read_text())
    script = _script()
    spec = {k: v for k, v in script.grid_spec(script.FULL).items() if k != "data_version"}
    assert {k: v for k, v in result["spec"].items() if k != "data_version"} == spec, (
        "course_lib/results_data/fusion.json was produced with another config than the script's FULL "
        "grid: rerun `python experiments/fusion.py` and commit the file")
    assert list(script.FULL["train_sizes"]) == [500, 2000, 10000] and len(script.FULL["seeds"]) == 3
    _check_complete(result, script.FULL, script.fusion.VARIANTS)


def test_committed_grid_was_measured_on_this_drawing():
    from course_lib.facedraw import RENDER_VERSION
    result = json.loads(RESULTS.read_text())
    assert result["spec"].get("data_version") == RENDER_VERSION
