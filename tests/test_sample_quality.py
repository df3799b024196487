"""bench/sample_quality.py: the table's schema, its reference rows, the reference-weights hook."""
import dataclasses
import json
import math

import pytest
import torch

from course_lib import feature_net as fn, gan, gan_reference, results
from course_lib.facedraw import RENDER_VERSION
from tests.script_loader import load_script


@pytest.fixture(scope="module")
def sq(tmp_path_factory):
    """The script as a module, with a fresh cache (the smoke feature net trains in seconds)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("COURSE_PROGRESS", "none")
    fn._LOADED.clear()
    # dataclasses look their module up in sys.modules
    module = load_script("bench/sample_quality.py", name="sample_quality", monkeypatch=mp)
    yield module
    fn._LOADED.clear()
    mp.undo()


def _tiny_generator(seed=0):
    cfg = gan.GANConfig.for_profile("smoke", seed=seed)
    torch.manual_seed(seed)
    return gan.build(cfg)[0].eval(), cfg


def test_main_writes_the_table_with_every_row_and_spread(sq, tmp_path, monkeypatch, capsys):
    generator, _ = _tiny_generator()
    # the models are stand-ins (training the VAE and two GANs is the script's job, not a unit test's)
    monkeypatch.setattr(sq, "model_samplers", lambda profile, only=(): (
        {"dcgan_live": sq.gan_sampler(generator), "noise_model": lambda n, s: torch.rand(n, 3, 16, 16)},
        {"dcgan_reference": "not there"}))
    out = tmp_path / "table.json"
    sq.main(["--profile", "smoke", "--json", str(out)])
    with pytest.raises(SystemExit, match="larger than k"):
        sq.main(["--profile", "smoke", "--json", str(out), "--n", "3"])
    result = json.loads(out.read_text())
    assert set(result["references"]) == {"real", "blur1", "blur2", "noise", "gray", "repeated"}
    assert set(result["models"]) == {"dcgan_live", "noise_model"}
    assert result["missing"] == {"dcgan_reference": "not there"}
    assert result["profile"] == "smoke" and result["seeds"] == [0, 1, 2] and result["n"] == 64
    assert isinstance(result["load_average_start"], float)
    for row in [*result["references"].values(), *result["models"].values()]:
        for metric in ("frechet", "fidelity", "diversity"):
            assert set(row[metric]) == {"mean", "std", "values"} and len(row[metric]["values"]) == 3
            assert all(math.isfinite(v) for v in row[metric]["values"])
    refs = result["references"]
    assert refs["real"]["fidelity"]["mean"] >= 0.8 and refs["real"]["diversity"]["mean"] >= 0.8
    assert refs["gray"]["fidelity"]["mean"] < 0.1 and refs["noise"]["fidelity"]["mean"] < 0.1
    assert refs["repeated"]["diversity"]["mean"] < 0.2   # n=64 here: one ball of 64 is 0.016
    assert refs["gray"]["frechet"]["std"] == 0.0      # the same images for every seed
    assert refs["real"]["frechet"]["std"] > 0.0       # other faces for every seed
    assert "real" in capsys.readouterr().out


def test_only_merges_new_rows_into_a_table_measured_the_same_way(sq, tmp_path, monkeypatch):
    generator, _ = _tiny_generator()
    rows = {"dcgan_live": sq.gan_sampler(generator), "noise_model": lambda n, s: torch.rand(n, 3, 16, 16)}
    monkeypatch.setattr(sq, "model_samplers", lambda profile, only=(): (
        {k: v for k, v in rows.items() if not only or k in only}, {"noise_model": "later"}))
    out = tmp_path / "table.json"
    sq.main(["--profile", "smoke", "--json", str(out)])
    before = json.loads(out.read_text())
    rows["flow_live"] = lambda n, s: torch.full((n, 3, 16, 16), 0.25)
    sq.main(["--profile", "smoke", "--json", str(out), "--only", "flow_live"])
    after = json.loads(out.read_text())
    assert after["references"] == before["references"] and set(after["models"]) == {*before["models"], "flow_live"}
    assert after["models"]["dcgan_live"] == before["models"]["dcgan_live"]
    assert after["row_commands"]["flow_live"].endswith("--only flow_live") and after["command"] == before["command"]
    # a table measured otherwise (another n, another feature net) is not merged into
    with pytest.raises(SystemExit, match="not measured as the table was"):
        sq.main(["--profile", "smoke", "--json", str(out), "--only", "flow_live", "--n", "32"])
    edited = dict(after, references={**after["references"], "real": {
        **after["references"]["real"], "frechet": {**after["references"]["real"]["frechet"], "mean": 1.0}}})
    out.write_text(json.dumps(edited))
    with pytest.raises(SystemExit, match="references.real"):
        sq.main(["--profile", "smoke", "--json", str(out), "--only", "flow_live"])


def test_reference_generators_load_when_present_and_say_why_not(sq, tmp_path, monkeypatch):
    generator, cfg = _tiny_generator(seed=3)
    monkeypatch.setattr(gan_reference, "reference_config", lambda name: cfg)   # chapter 03's config, shrunk
    path = tmp_path / "dcgan_reference.pt"
    torch.save({"generator": {k: v.half() if v.is_floating_point() else v for k, v in generator.state_dict().items()},
                "config": dataclasses.asdict(cfg), "data_version": RENDER_VERSION, "steps": 60, "command": "c"}, path)
    monkeypatch.setattr(sq, "REFERENCE_WEIGHTS", {"dcgan_reference": path,
                                                  "wgan_gp_reference": tmp_path / "absent.pt"})
    samplers, missing = sq.reference_generator_samplers(cfg.image_size)
    assert set(samplers) == {"dcgan_reference"} and "absent.pt not found" in missing["wgan_gp_reference"]
    assert "experiments/gan_reference.py" in missing["wgan_gp_reference"]
    expected = gan.generate(gan_reference.reference_generator("dcgan", path), 4, seed=0)
    assert torch.equal(samplers["dcgan_reference"](4, 0), expected)
    samplers, missing = sq.reference_generator_samplers(32)
    assert not samplers and "16px" in missing["dcgan_reference"]


def test_committed_cpu_table_holds_the_cases(sq):
    """course_lib/results_data/sample_quality_cpu.json: written by the script at its cpu
    defaults on a machine that was not busy, and the cases the metrics promise hold at the cpu
    profile, and so do issue 14's bars (the live DCGAN below the VAE, the reference DCGAN below
    blur sigma 1), which chapters 03 and 07 print from this file."""
    result = results.load_result("sample_quality_cpu")
    # the cpu defaults; the thread count only changes the feature net's last digits (recorded as "threads")
    assert result["command"] in ("python bench/sample_quality.py --profile cpu",
                                 f"python bench/sample_quality.py --profile cpu --threads {result['threads']}")
    defaults = sq.QualityConfig.for_profile("cpu")
    assert (result["n"], tuple(result["seeds"]), result["k"]) == (defaults.n, defaults.seeds, defaults.k)
    assert result["load_average_start"] <= 2.5
    assert set(result["references"]) == set(sq.REFERENCE_NAMES) | {"ae_recon"}   # + chapter 11's autoencoder
    assert {"vae", "dcgan_live", "wgan_gp_live", "flow_live", "latent_flow_live"} <= set(result["models"])
    assert set(result["models"]) | set(result["missing"]) >= set(sq.REFERENCE_WEIGHTS)
    refs = {name: {m: row[m]["mean"] for m in ("frechet", "fidelity", "diversity")}
            for name, row in result["references"].items()}
    assert refs["real"]["fidelity"] >= 0.8 and refs["real"]["diversity"] >= 0.8
    assert refs["gray"]["fidelity"] < 0.1 and refs["noise"]["fidelity"] < 0.1
    assert refs["repeated"]["diversity"] < 0.1
    assert refs["real"]["fidelity"] > refs["blur1"]["fidelity"] > refs["blur2"]["fidelity"]
    assert refs["real"]["frechet"] < refs["blur1"]["frechet"] < refs["blur2"]["frechet"]
    models = {name: row["frechet"]["mean"] for name, row in result["models"].items()}
    assert models["dcgan_live"] < models["vae"]
    assert models["dcgan_reference"] < refs["blur1"]["frechet"]
    # issue 28's live bar, and the autoencoder's reconstructions far nearer the real faces than blur
    assert min(v for k, v in models.items() if "_live" in k) <= 100
    assert refs["real"]["frechet"] < refs["ae_recon"]["frechet"] < refs["blur1"]["frechet"]


def test_the_table_renders_the_rows_asked_for_and_says_what_it_lacks():
    table = results.load_result("sample_quality_cpu")
    text = results.sample_quality_markdown(table, ["real", "dcgan_live", "ddpm_reference"])
    assert table["frechet_label"] in text.splitlines()[0] and "profile cpu" in text.splitlines()[0]
    rows = [line for line in text.splitlines() if line.startswith("| ") and "±" in line]
    assert [r.split(" (")[0] for r in rows] == ["| real", "| dcgan_live", "| ddpm_reference"]
    frechet = table["models"]["dcgan_live"]["frechet"]
    assert f"{frechet['mean']:.1f} ± {frechet['std']:.1f}" in rows[1]
    with pytest.raises(KeyError, match="no rows \\['dcgn_live'\\]"):
        results.sample_quality_markdown(table, ["dcgn_live"])
    absent = {**table, "missing": {"wgan_gp_reference": "not trained yet"}}
    assert "wgan_gp_reference: no row (not trained yet)" in results.sample_quality_markdown(absent)
    assert results.sample_quality("gpu")["profile"] == "cpu"   # no gpu table: the cpu one, labelled
    note = "`python bench/sample_quality.py --profile gpu` writes theirs"
    assert note in results.sample_quality_markdown(table, ["real"], profile="gpu")
    assert "writes theirs" not in results.sample_quality_markdown(table, ["real"], profile="cpu")


def test_training_spread_needs_every_training_seed(sq):
    def row(f):
        return {"frechet": {"mean": f, "std": 0.0, "values": [f]}}

    models = {"flow_live_heun6": row(80.0), sq.training_seed_row("flow_live_heun6", 1): row(90.0),
              sq.training_seed_row("flow_live_heun6", 2): row(85.0), "ddpm_live": row(170.0),
              sq.training_seed_row("ddpm_live", 1): row(180.0)}          # ddpm's seed 2 is missing
    spread = sq.training_spread(models)
    assert set(spread) == {"flow_live_heun6"}
    assert spread["flow_live_heun6"]["frechet"] == [80.0, 90.0, 85.0]
    assert spread["flow_live_heun6"]["mean"] == pytest.approx(85.0)
    assert spread["flow_live_heun6"]["std"] == pytest.approx(5.0)
    text = results.training_spread_markdown({"training_spread": spread})
    assert "**flow_live_heun6** over training seeds [0, 1, 2]: 80.0, 90.0, 85.0 (mean 85.0 ± 5.0)" in text
    assert results.training_spread_markdown({"models": models}) == ""


def test_the_committed_table_holds_the_live_models_training_spread():
    table = results.load_result("sample_quality_cpu")
    spread = table["training_spread"]
    assert set(spread) == {"flow_live_heun6", "ddpm_live"}
    for name, row in spread.items():
        assert row["frechet"][0] == table["models"][name]["frechet"]["mean"]   # seed 0 is the table's own row
    assert max(spread["flow_live_heun6"]["frechet"]) <= 100                      # the live bar at every seed
