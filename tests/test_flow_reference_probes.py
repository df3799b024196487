"""experiments/flow_reference_probes.py: its helpers, and its committed rows (every probe the
script lists, scored on the current ToyFaces with autoguidance.py's protocol, whose numbers its
baseline rows repeat)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib.facedraw import RENDER_VERSION
from course_lib.results import load_result
from tests.script_loader import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/flow_reference_probes.py")


def test_time_grids_run_from_noise_to_data_denser_where_rho_says(script):
    for rho in (0.7, 1.0, 1.5):
        grid = script.time_grid(6, rho)
        assert grid[0] == 0 and grid[-1] == pytest.approx(1) and grid == sorted(grid)
    steps = lambda g: [b - a for a, b in zip(g[:-1], g[1:])]   # noqa: E731
    assert steps(script.time_grid(6, 1.5))[-1] < steps(script.time_grid(6, 1.0))[-1]   # finer near the data
    assert steps(script.time_grid(6, 0.7))[0] < steps(script.time_grid(6, 1.0))[0]     # finer near the noise


def test_the_sde_sampler_keeps_the_flow_marginals_on_gaussian_data(script):
    """For data N(m, s^2) per pixel the exact velocity is known in closed form; at every noise
    level lam the sampler must end at that distribution (a wrong score sign or noise scale
    would change its spread)."""
    m, s = 0.2, 0.3

    def velocity(x, t):
        t = t.reshape(-1, 1, 1, 1)
        var = (1 - t) ** 2 + t ** 2 * s ** 2                 # Var(x_t)
        return m + (t * s ** 2 - (1 - t)) * (x - t * m) / var
    for lam in (0.0, 1.0, 3.0):
        x = script.sample_sde(velocity, 8, steps=50, lam=lam, seed=0) * 2 - 1   # back to model range
        assert x.mean().item() == pytest.approx(m, abs=0.02), lam
        assert x.std().item() == pytest.approx(s, abs=0.02), lam


def test_the_guidance_interval_guides_only_inside_it(script):
    good = lambda x, t: torch.zeros_like(x)                    # noqa: E731
    guided = lambda x, t: torch.ones_like(x)                   # noqa: E731
    velocity = script.guided_in(guided, good, 0.3, 0.7)
    x = torch.zeros(2, 3, 4, 4)
    assert velocity(x, torch.full((2,), 0.5)).eq(1).all()
    assert velocity(x, torch.full((2,), 0.1)).eq(0).all() and velocity(x, torch.full((2,), 0.9)).eq(0).all()


def test_the_chosen_weak_model_is_autoguidance_json_s(script):
    autoguidance = load_script("experiments/autoguidance.py")
    assert script.weak_configs()["live 2000"] == autoguidance.weak_config()
    half = script.weak_configs()["half width 2000"]
    live = autoguidance.weak_config()
    assert half.widths == tuple(w // 2 for w in live.widths) and half.stem == live.stem // 2
    assert dataclasses.replace(half, stem=live.stem, widths=live.widths, decoder_widths=live.decoder_widths) == live


def test_every_probe_was_scored_on_the_current_toyfaces(script):
    result = load_result("flow_reference_probes")
    assert result["data_version"] == RENDER_VERSION
    assert [r["what"] for r in result["rows"]] == [p["what"] for p in script.probes()]
    assert all(r["frechet"] > 0 and 0 <= r["diversity"] for r in result["rows"])
    assert result["cooldown"] == script.COOLDOWN


def test_the_baselines_repeat_autoguidance_json(script):
    """Same reference, samples, seed and validation faces: the same numbers, so every probe is
    compared with the chosen autoguidance on one footing."""
    rows = {r["what"]: r for r in load_result("flow_reference_probes")["rows"]}
    by_scale = {r["scale"]: r for r in load_result("autoguidance")["rows"]}
    assert rows["reference alone, Heun 6"]["frechet"] == pytest.approx(by_scale[1.0]["frechet"], abs=0.05)
    guided = next(r for r in rows.values() if r["probe"] == "baseline" and "weak" in r)
    assert guided["frechet"] == pytest.approx(by_scale[guided["scale"]]["frechet"], abs=0.05)
