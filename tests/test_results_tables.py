"""The Results page shows every table of a results file, not only the first list."""
import json
from pathlib import Path

from course_lib import results
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
results_tables = load_script("book/results_tables.py", name="results_tables")


def test_every_list_and_keyed_summary_of_a_json_file_becomes_a_table(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "command": "python experiments/x.py",
        "runs": [{"variant": "baseline", "elbo": 1.5}],
        "lambda_sweep": [{"lam": 4.0, "elbo": 2.5}],
        "summary": {"rotation_s": {"probe_mean": 0.81, "seeds": [0.8, 0.82]}},
        "long_budget": {"config": {"steps": 6000}, "rows": [{"N": 500, "test_elbo": 3.5}]},
    }))
    text = results_tables.result_file_markdown(path)
    assert "`python experiments/x.py`" in text
    for key in ("*runs*", "*lambda_sweep*", "*summary*", "*rows*"):
        assert key in text, key
    assert "| baseline | 1.5 |" in text and "| 4.0 | 2.5 |" in text
    assert "| rotation_s | 0.81 | [0.8, 0.82] |" in text
    assert "| 500 | 3.5 |" in text


def test_the_committed_results_files_render_every_section():
    data = json.loads((ROOT / "course_lib" / "results_data" / "fusion.json").read_text())
    text = results_tables.result_file_markdown(ROOT / "course_lib" / "results_data" / "fusion.json")
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            assert f"*{key}*" in text, key


def test_mean_std_cells_are_shown_as_mean_plus_minus_std(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"summary": {"ssgan": {"frechet": {"mean": 301.23456, "std": 12.5, "values": [1, 2]},
                                                      "seeds": [0, 1]}}}))
    text = results_tables.result_file_markdown(path)
    assert "| ssgan | 301.2 ± 12 | [0, 1] |" in text


def test_the_contrastive_and_ssgan_results_are_on_the_page():
    """Issue 19: the probe table's SimCLR row, the augmentation ablation and SS-GAN vs DCGAN."""
    data_dir = ROOT / "course_lib" / "results_data"
    probes = results_tables.result_file_markdown(data_dir / "pretext_probes.json")
    assert "| simclr |" in probes
    ablation = results_tables.result_file_markdown(data_dir / "simclr_ablation.json")
    assert "| no colour |" in ablation and "| all |" in ablation
    ssgan = results_tables.result_file_markdown(data_dir / "ssgan.json")
    assert "| ssgan |" in ssgan and "| dcgan |" in ssgan and " ± " in ssgan


def test_the_inpainting_results_render_their_summaries_and_verdicts():
    path = ROOT / "course_lib" / "results_data" / "inpainting.json"
    text = results_tables.result_file_markdown(path)
    for key in ("*summary*", "*summary_live*", "*steps_curve*", "*verdicts_reference*", "*live_runs*"):
        assert key in text, key
    assert "| centre |" in text and "| blocks25 |" in text


def test_the_sample_quality_table_has_its_own_section_ranked_by_frechet():
    """Issue 14: the Results page reads the sample-quality table (once: not again in the listing)."""
    text = results_tables.sample_quality_section()
    table = results.load_result("sample_quality_cpu")
    names = [line.split(" (")[0].removeprefix("| ") for line in text.splitlines()
             if line.startswith("| ") and "±" in line]
    rows = {**table["references"], **table["models"]}
    assert sorted(names) == sorted(rows)
    assert [rows[n]["frechet"]["mean"] for n in names] == sorted(rows[n]["frechet"]["mean"] for n in names)
    assert table["command"] in text and "recall" in text
    listing = results_tables.result_files_markdown(results.RESULTS_DIR, "course_lib/results_data", "x")
    assert "sample_quality_cpu.json" not in listing and "fusion.json" in listing
