"""bench/gan_recipes.py: equal-wall-time budgets, the run bookkeeping, verdicts, a tiny end-to-end run."""
import json

import pytest
import torch

from course_lib import feature_net as fn, gan
from tests.script_loader import load_script


@pytest.fixture()
def gr(tmp_path, monkeypatch):
    """The script as a module at the smoke profile, with a fresh cache."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_PROGRESS", "none")
    fn._LOADED.clear()
    module = load_script("bench/gan_recipes.py", name="gan_recipes", monkeypatch=monkeypatch)
    monkeypatch.setattr(module, "PROFILE", "smoke")
    yield module
    fn._LOADED.clear()


def test_every_recipe_is_a_valid_config_that_changes_one_thing(gr):
    base = gan.GANConfig.for_profile("smoke")
    for name in gr.RECIPES:
        config = gr.recipe_config(name)
        changed = {k for k in base.__dataclass_fields__ if getattr(config, k) != getattr(base, k)}
        assert changed == set(gr.RECIPES[name]) - {k for k, v in gr.RECIPES[name].items() if getattr(base, k) == v}
    assert gr.recipe_config("WGAN-GP (paper)").d_steps == 5 and "EMA" not in gr.TRAINED
    with pytest.raises(ValueError, match="recipe must be one of"):
        gr.recipe_config("dropout")


def test_budgets_give_equal_time_in_whole_generator_steps(gr):
    configs = {"baseline": gan.GANConfig(), "slow": gan.GANConfig(), "fast": gan.GANConfig(),
               "wgan": gan.GANConfig(d_steps=5)}
    seconds = {"baseline": 0.1, "slow": 0.3, "fast": 0.05, "wgan": 0.12}
    out = gr.budgets(seconds, configs, 600)
    assert out == {"baseline": 600, "slow": 200, "fast": 1200, "wgan": 500}
    assert gr.budgets({"baseline": 1.0, "wgan": 1000.0}, configs, 10)["wgan"] == 5   # at least one G step


def test_time_steps_measures_every_config_interleaved(gr):
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    configs = {name: gr.recipe_config(name) for name in ("baseline", "EMA", "R1")}
    seconds = gr.time_steps(configs, images, rounds=2, calls=2)
    assert set(seconds) == set(configs) and all(t > 0 for t in seconds.values())
    with pytest.raises(ValueError, match="rounds and calls must be >= 1"):
        gr.time_steps(configs, images, rounds=0)


def _result(rows_by_seed):
    runs = {}
    for seed, rows in rows_by_seed.items():
        for recipe, rowvals in rows.items():
            runs[f"{recipe} | seed {seed}"] = {"recipe": recipe, "seed": seed, "rows": {
                r: {"frechet": f, "fidelity": 0.5, "diversity": 0.5} for r, f in rowvals.items()}}
    return {"runs": runs, "base_steps": 10, "frechet_label": "x", "render_version": 5, "command": "c",
            "cost_ratios": {"baseline": 1.0, "EMA": 1.01, "TTUR": 1.0},
            "budgets": {"baseline": 10, "EMA": 10, "TTUR": 10}}


def test_leaders_verdicts_and_winner_from_synthetic_runs(gr):
    result = _result({
        0: {"baseline": {"baseline": 100, "EMA": 80}, "TTUR": {"TTUR": 99, "TTUR + EMA": 90}},
        1: {"baseline": {"baseline": 102, "EMA": 81}, "TTUR": {"TTUR": 101, "TTUR + EMA": 103}},
        2: {"baseline": {"baseline": 101, "EMA": 82}, "TTUR": {"TTUR": 100, "TTUR + EMA": 95}},
    })
    assert gr.leaders(result) == ["EMA", "TTUR + EMA"]
    assert gr.row_values(result, "EMA", "frechet") == [80, 81, 82]
    assert gr.row_recipe("EMA") == "baseline" and gr.row_recipe("TTUR + EMA") == "TTUR"
    result["verdicts"] = gr.verdicts(result)
    assert set(result["verdicts"]) == {"EMA on baseline", "TTUR vs baseline", "EMA on TTUR"}
    assert result["verdicts"]["EMA on baseline"]["verdict"] == "better"
    assert result["verdicts"]["TTUR vs baseline"]["verdict"] == "no clear difference"
    assert result["verdicts"]["EMA on TTUR"]["verdict"] == "no clear difference"
    assert gr.winner(result) == "EMA"
    # an EMA row and its base row are the same runs: paired by seed (n - 1 degrees of freedom), not Welch
    assert result["verdicts"]["EMA on baseline"]["df"] == 2
    assert result["verdicts"]["TTUR vs baseline"]["df"] != 2
    # EMA clearly better than TTUR is not a row better than the baseline
    shifted = _result({s: {"baseline": {"baseline": 100 + s, "EMA": 101 + s * s},
                           "TTUR": {"TTUR": 99 + 3 * s, "TTUR + EMA": 80 + 3 * s + s * s / 2}} for s in range(3)})
    shifted["verdicts"] = gr.verdicts(shifted)
    assert shifted["verdicts"]["EMA on TTUR"]["verdict"] == "better" and gr.winner(shifted) == "baseline"
    result["verdicts"] = {k: {**v, "verdict": "no clear difference"} for k, v in result["verdicts"].items()}
    assert gr.winner(result) == "baseline"
    assert "EMA" in gr.format_table(result)
    assert gr.verdicts(_result({0: {"baseline": {"baseline": 100, "EMA": 80}}})) == {}   # one seed: no test


def test_main_runs_screen_and_seeds_resumes_and_reports(gr, tmp_path):
    out = tmp_path / "recipes"
    files = ["--json", str(out.with_suffix(".json")), "--txt", str(out.with_suffix(".txt"))]
    args = ["--base-steps", "4", "--n", "32", "--rounds", "1", "--recipes", "baseline", "TTUR",
            "--seeds", "2", *files]
    gr.main(args)
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["budgets"]) == {"baseline", "EMA", "TTUR"} and result["cost_ratios"]["baseline"] == 1.0
    assert {r["seed"] for r in result["runs"].values()} == {0, 1}
    assert set(result["runs"]["baseline | seed 0"]["rows"]) == {"baseline", "EMA"}
    assert "winner" in result and out.with_suffix(".txt").read_text().startswith("GAN recipes at equal wall time")
    before = out.with_suffix(".json").read_text()
    gr.main(args)                                            # everything done: nothing retrained
    assert json.loads(out.with_suffix(".json").read_text())["runs"] == json.loads(before)["runs"]
    gr.main(["--report", *files])
    half = json.loads(before)
    half["runs"] = {k: v for k, v in half["runs"].items() if "baseline" in k}
    (tmp_path / "half.json").write_text(json.dumps(half))
    other = {**json.loads(before), "runs": {k: v for k, v in json.loads(before)["runs"].items() if "TTUR" in k}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    gr.main(["--merge", str(tmp_path / "half.json"), str(tmp_path / "other.json"), *files])
    assert json.loads(out.with_suffix(".json").read_text())["runs"] == json.loads(before)["runs"]
    with pytest.raises(SystemExit):
        gr.main(["--merge", str(tmp_path / "half.json"), str(tmp_path / "absent.json"), *files])
    with pytest.raises(SystemExit, match="2"):
        gr.main(["--worker", "2/2", *files])
    gr.main(["--runs", "TTUR:5", *files])                    # one explicit run, added to the file
    assert "TTUR | seed 5" in json.loads(out.with_suffix(".json").read_text())["runs"]
    with pytest.raises(SystemExit):
        gr.main(["--runs", "EMA:1", *files])
