"""The capacity and EMA study of the reference flow model (experiments/flow_capacity.py): its
second average follows the formula it states, its wide arm fits the committed-weights budget,
and the committed file holds what the script measures."""
from __future__ import annotations

import pytest
import torch

from course_lib import flow
from course_lib.results import RESULTS_DIR, load_result
from tests.script_loader import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/flow_capacity.py", name="experiment_flow_capacity")


def test_the_second_average_is_the_stated_formula(script):
    torch.manual_seed(0)
    model = flow.FlowConfig.for_profile("smoke").build()
    every, update = script.attach_long_ema(model)
    assert every == 1 and any(k.startswith("long_ema.") for k in model.state_dict())  # checkpoints carry it
    expected = [p.detach().clone() for p in model.long_ema.parameters()]
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(torch.randn_like(p))
        update(step, None)
        d = 1 - 3 / (10 + step)
        expected = [d * e + (1 - d) * p for e, p in zip(expected, model.net.parameters())]
    for e, got in zip(expected, model.long_ema.parameters()):
        torch.testing.assert_close(got, e)


def test_the_wide_arm_fits_the_weights_budget_in_float16(script):
    base = sum(p.numel() for p in script.arm_config("base").build().net.parameters())
    wide = sum(p.numel() for p in script.arm_config("wide").build().net.parameters())
    assert wide > 1.4 * base
    others = sum(p.stat().st_size for p in RESULTS_DIR.glob("*.pt") if p.name != "flow_reference.pt")
    assert others + 2 * wide + 50_000 <= 10_000_000, "a wide reference in float16 would not fit the 10 MB"


def test_the_committed_timing_sets_the_equal_time_step():
    timing = load_result("flow_capacity")["timing"]
    per_step = timing["seconds_per_step"]
    assert timing["wide_over_base"] == pytest.approx(per_step["wide"] / per_step["base"])
    assert timing["equal_time_steps"] == round(12000 / timing["wide_over_base"], -3)
