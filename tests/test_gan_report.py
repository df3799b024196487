"""course_lib.gan_report: each sentence from small hand-made numbers, including the cases where
its verdict flips, and the recipe screen's tests against scipy's."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from course_lib import gan_report as reports, stats
from course_lib.history import History
from course_lib.playground import SeedCoverage
from course_lib.results import load_result


def _cov(*pairs):
    return [SeedCoverage(seed, modes, share) for seed, (modes, share) in enumerate(pairs)]


# ----------------------------------------------------------------------------- the playground
@pytest.mark.parametrize("modes, share, kind", [
    ([1, 1, 2], [0.99, 0.95, 0.74], "mode collapse"),
    ([7, 8, 8], [0.65, 0.62, 0.77], "covers the ring"),
    ([0, 1, 0], [0.02, 0.02, 0.03], "has not found the ring"),
    ([4, 6, 2], [0.30, 0.19, 0.05], "in between"),
])
def test_playground_kind(modes, share, kind):
    assert reports.playground_kind(modes, share).startswith(kind)


def test_playground_summary_has_one_line_per_preset_with_ranges():
    text = reports.playground_summary({"ns": _cov((7, 0.71), (7, 0.72), (8, 0.83)), "x": _cov((0, 0.0))})
    assert text.splitlines() == [
        "ns: 7-8 modes, 71%-83% of the points on a mode -> covers the ring",
        "x: 0 modes, 0% of the points on a mode -> has not found the ring: most points lie off every mode"]


PAPER = _cov((1, 0.02), (0, 0.02), (0, 0.03))
PENALTY = _cov((8, 0.65), (8, 0.62), (8, 0.77))


@pytest.mark.parametrize("control, verdict", [
    (_cov((8, 0.70), (7, 0.60), (8, 0.66)), "the learning rate, not clipping, held it back"),
    (_cov((4, 0.10), (6, 0.19), (2, 0.05)), "explains part of the failure, and clipping the rest"),
    (_cov((1, 0.03), (0, 0.02), (0, 0.02)), "Raising the learning rate does not help"),
])
def test_clipping_control_blames_what_the_control_shows(control, verdict):
    text = reports.clipping_control(PAPER, control, lr_paper=5e-5, lr_control=2e-3, penalty=PENALTY)
    assert verdict in text
    assert "40x" in text and "0-1 modes, 2%-3%" in text


# ----------------------------------------------------------------------------- scores
ROWS = {
    "real vs real": {"frechet": 41.0, "fidelity": 0.97, "diversity": 0.97, "precision": 0.91, "recall": 0.92},
    "blur sigma=1": {"frechet": 215.0, "fidelity": 0.64, "diversity": 0.67, "precision": 0.96, "recall": 0.45},
    "blur sigma=2": {"frechet": 610.0, "fidelity": 0.25, "diversity": 0.19, "precision": 0.92, "recall": 0.02},
    "gray 0.5": {"frechet": 3500.0, "fidelity": 0.0, "diversity": 0.0, "precision": 0.0, "recall": 0.0},
    "gray 0.7": {"frechet": 3400.0, "fidelity": 0.0, "diversity": 0.0, "precision": 1.0, "recall": 0.0},
    "GAN": {"frechet": 160.0, "fidelity": 1.24, "diversity": 0.90, "precision": 0.97, "recall": 0.36},
    "VAE": {"frechet": 310.0, "fidelity": 0.73, "diversity": 0.69, "precision": 0.97, "recall": 0.20},
}


def test_fidelity_is_read_by_nearness_to_the_real_faces_not_by_size():
    fidelity, diversity, frechet = reports.versus(ROWS, "GAN", "VAE")
    # 1.24 is 0.27 above real, 0.73 is 0.24 below: the VAE is nearer although the GAN is higher
    assert "-> VAE is nearer" in fidelity and "GAN above real faces: samples crowd" in fidelity
    assert diversity.endswith("-> GAN is better") and frechet.endswith("-> GAN is better")
    rows = {**ROWS, "GAN": {**ROWS["GAN"], "fidelity": 1.10}}      # 0.13 above: now the GAN is nearer
    assert "-> GAN is nearer" in reports.versus(rows, "GAN", "VAE")[0]
    assert "a tie" in reports.versus(ROWS, "VAE", "VAE")[0]


@pytest.mark.parametrize("value, words", [(0.95, "about as often"), (0.5, "below real faces"), (1.3, "above real")])
def test_fidelity_reading(value, words):
    assert words in reports.fidelity_reading(value, 1.0)


def test_classic_pattern_flips_with_the_numbers():
    assert "NOT reproduced" in reports.classic_pattern(ROWS, "GAN", "VAE")    # higher fidelity, but more diversity
    rows = {**ROWS, "GAN": {**ROWS["GAN"], "diversity": 0.5}}
    assert " reproduced by GAN" in reports.classic_pattern(rows, "GAN", "VAE")


def test_precision_blind_spots_say_which_flat_set_passes():
    text = reports.precision_blind_spots(ROWS, flat=["gray 0.5", "gray 0.7"], blur="blur sigma=1",
                                         table={"gray 0.5, table": 0.0})
    assert "Precision accepts gray 0.7:" in text and "accepts gray 0.5" not in text
    assert "Fidelity, which counts the balls, rejects every flat set" in text
    assert "precision goes 0.91 -> 0.96 (blur sigma=1) while fidelity goes 0.97 -> 0.64" in text
    assert text.endswith("gray 0.5, table: precision 0.00.")
    rows = {**ROWS, "gray 0.7": {**ROWS["gray 0.7"], "precision": 0.1, "fidelity": 0.9}}
    text = reports.precision_blind_spots(rows, flat=["gray 0.5", "gray 0.7"], blur="blur sigma=1")
    assert "precision rejects every flat set" in text and "accepts gray 0.7" in text


def _history(values_by_step):
    return History(records=[{"step": s, "w_distance": v, "gp": 0.1} for s, v in values_by_step])


def test_critic_curve_says_whether_the_estimate_followed_the_samples():
    evals = [{"step": 0, "frechet": 3500.0}, {"step": 600, "frechet": 1170.0}, {"step": 3000, "frechet": 506.0}]
    flat = _history([(s, 1.7 + 0.01 * (s % 3)) for s in range(1, 3001)])
    text = reports.critic_curve(flat, evals, critic_steps=2)
    assert "From step 600 to 3000" in text and "stayed flat" in text and "2 steps per generator step" in text
    falling = _history([(s, 4.0 - s / 1000) for s in range(1, 3001)])
    assert "tracked progress" in reports.critic_curve(falling, evals, critic_steps=2)
    rising = _history([(s, 1.0 + s / 1000) for s in range(1, 3001)])
    assert "estimate rose" in reports.critic_curve(rising, evals, critic_steps=1)
    stuck = [{**e, "frechet": 1000.0} for e in evals]
    assert "did not improve much either" in reports.critic_curve(falling, stuck, critic_steps=2)


def test_measured_summary_ranks_and_places_each_model():
    text = reports.measured_summary(ROWS, models=["VAE", "GAN"], corruptions=["blur sigma=1", "blur sigma=2"],
                                    steps={"VAE": 2400, "GAN": 30000})
    first, vae_line, gan_line, coverage = text.splitlines()
    assert first.startswith("Ranked by Frechet distance") and "GAN 160 (30000 steps) < VAE 310 (2400 steps)" in first
    assert vae_line == "VAE is below the blur sigma=2 reference."
    assert gan_line == "GAN is below the blur sigma=1 and blur sigma=2 references."
    rows = {**ROWS, "VAE": {**ROWS["VAE"], "frechet": 700.0}}
    assert "VAE is above every corruption reference" in reports.measured_summary(
        rows, models=["VAE"], corruptions=["blur sigma=1", "blur sigma=2"], steps={"VAE": 1})
    assert coverage.endswith("against 0.97 for held-out real faces.")


def test_table_versus():
    table = {"seeds": [0, 1, 2], "references": {"blur1": {"frechet": {"mean": 196.4, "std": 6.9}}},
             "models": {"a": {"frechet": {"mean": 154.2, "std": 2.3}}, "b": {"frechet": {"mean": 200.0, "std": 1.0}}}}
    text = reports.table_versus(table, [("a", "blur1"), ("b", "blur1")])
    assert text == ("Over sample seeds [0, 1, 2]: a below blur1 (154.2 ± 2.3 vs 196.4 ± 6.9); "
                    "b NOT below blur1 (200.0 ± 1.0 vs 196.4 ± 6.9).")


# ----------------------------------------------------------------------------- the recipe screen
def _recipes(rows_by_seed, budgets=None):
    """A gan_recipes-shaped result: {seed: {recipe: {row: frechet}}}."""
    runs = {}
    for seed, recipes in rows_by_seed.items():
        for recipe, rows in recipes.items():
            runs[f"{recipe} | seed {seed}"] = {"recipe": recipe, "seed": seed, "rows": {
                r: {"frechet": f, "fidelity": 0.0 if f > 1000 else 0.5, "diversity": 0.0 if f > 1000 else 0.5}
                for r, f in rows.items()}}
    budgets = budgets or {"baseline": 500, "EMA": 510, "batch 32": 856, "TTUR": 488}
    return {"runs": runs, "base_steps": 500, "frechet_label": "x", "budgets": budgets,
            "cost_ratios": {k: 500 / v for k, v in budgets.items()}, "timing": {"load_average_1min": 10.43}}


def test_ema_rows_are_tested_paired_with_the_runs_they_average():
    # EMA is 5 below its own run on every seed; the seeds spread by 100: paired sees it, Welch cannot
    ema = [395.0, 494.0, 595.5]
    result = _recipes({s: {"baseline": {"baseline": 400.0 + 100 * s, "EMA": ema[s]}} for s in range(3)})
    family = reports.recipe_family(result)
    assert list(family) == ["EMA on baseline"]
    c = family["EMA on baseline"]
    assert c.verdict == "better" and c.df == 2
    assert c.p == pytest.approx(scipy_stats.ttest_rel(ema, [400, 500, 600]).pvalue)
    assert stats.welch_t_test(ema, [400, 500, 600])[1] > 0.9   # what the unpaired test would say


def test_recipe_family_is_holm_corrected_and_a_recipe_against_the_baseline_is_welch():
    base, b32 = [441.0, 482.0, 367.0], [291.0, 298.0, 329.0]
    result = _recipes({s: {"baseline": {"baseline": base[s], "EMA": base[s] - 10 - s},
                           "batch 32": {"batch 32": b32[s], "batch 32 + EMA": b32[s] + 5 * (-1) ** s}}
                       for s in range(3)})
    family = reports.recipe_family(result)
    assert set(family) == {"EMA on baseline", "EMA on batch 32", "batch 32 vs baseline"}
    welch = family["batch 32 vs baseline"]
    assert welch.p == pytest.approx(scipy_stats.ttest_ind(b32, base, equal_var=False).pvalue)
    raw = [c.p for c in family.values()]
    assert [c.p_adjusted for c in family.values()] == pytest.approx(list(stats.holm_adjusted(raw)))


def test_recipe_findings_reads_a_screen_and_flips_when_a_row_wins():
    base = [441.0, 482.0, 367.0]
    result = _recipes({**{s: {"baseline": {"baseline": base[s], "EMA": base[s] - 5 + 9 * s},
                              "batch 32": {"batch 32": base[s] - 30 * s, "batch 32 + EMA": base[s]}}
                          for s in range(3)},
                       7: {"TTUR": {"TTUR": 1522.0, "TTUR + EMA": 1836.0}}})
    text = reports.recipe_findings(result, chapter_steps=3000)
    assert text.startswith("A screen, not a ranking: 500 discriminator steps for the baseline (the live DCGAN "
                           "trains 3000), one training seed for 2 of the 6 rows")
    assert "load average of 10.43" in text and "None of the 3 questions has a clear answer" in text
    assert "TTUR had not drawn a single sample" in text and "after their 488 steps" in text
    effect = stats.detectable_effect(3, alpha=0.05 / 3)
    assert f"about {effect:.1f} standard deviations" in text and f"{effect * np.std(base, ddof=1):.0f} Frechet" in text
    # batch 32 far ahead on every seed: now it wins, and the sentence says so
    winning = _recipes({s: {"baseline": {"baseline": base[s], "EMA": base[s] + 3 - 2 * s},
                            "batch 32": {"batch 32": 100.0 + s, "batch 32 + EMA": 101.0 + 2 * s}} for s in range(3)})
    text = reports.recipe_findings(winning, chapter_steps=3000)
    assert "batch 32 vs baseline (3 seeds, Welch)" in text and "Better than what it was compared with" in text
    assert "None of the" not in text


def test_recipe_table_and_findings_read_the_committed_study():
    recipes = load_result("gan_recipes")
    table = reports.recipe_table(recipes).splitlines()
    assert len(table) == 2 + len({r for run in recipes["runs"].values() for r in run["rows"]})
    text = reports.recipe_findings(recipes, chapter_steps=3000)
    assert "paired by seed" in text and "Welch" in text
