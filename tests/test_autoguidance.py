"""Autoguidance (course_lib.guidance.autoguided_velocity) and its committed scale
(experiments/autoguidance.py): the formula, its refusals, and a results file that is the
script's choice on validation faces, for the current ToyFaces and the current live model."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from course_lib import flow, guidance
from course_lib.facedraw import RENDER_VERSION
from course_lib.results import load_result
from tests.script_loader import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/autoguidance.py", name="experiment_autoguidance")


def _models():
    config = flow.FlowConfig.for_profile("smoke")
    torch.manual_seed(0)
    good, weak = config.build().eval(), config.build().eval()
    return good, weak


def test_scale_one_is_the_good_model_and_above_one_moves_away_from_the_weak():
    good, weak = _models()
    x, t = torch.randn(3, 3, good.image_size, good.image_size), torch.rand(3)
    with torch.no_grad():
        u_good, u_weak = good(x, t), weak(x, t)
        assert torch.equal(guidance.autoguided_velocity(good, weak, 1.0)(x, t), u_good)
        assert torch.allclose(guidance.autoguided_velocity(good, weak, 2.0)(x, t), 2 * u_good - u_weak, atol=1e-6)
        assert torch.allclose(guidance.autoguided_velocity(good, weak, 0.0)(x, t), u_weak, atol=1e-6)


def test_refuses_models_of_different_images_and_a_scale_that_is_not_a_number():
    good, _ = _models()
    other = dataclasses.replace(flow.FlowConfig.for_profile("smoke"), image_size=24).build()
    with pytest.raises(ValueError, match="one kind of image"):
        guidance.autoguided_velocity(good, other, 1.5)
    with pytest.raises((TypeError, ValueError), match="autoguidance scale"):
        guidance.autoguided_velocity(good, good, "1.5")


def test_autoguided_samples_are_images():
    good, weak = _models()
    images = flow.sample_flow(good, 4, steps=2, method="heun", velocity=guidance.autoguided_velocity(good, weak, 1.5))
    assert images.shape == (4, 3, good.image_size, good.image_size)
    assert images.min() >= 0 and images.max() <= 1


def test_committed_scale_is_the_scripts_choice_on_validation_faces(script):
    result = load_result("autoguidance")
    assert result["data_version"] == RENDER_VERSION, "ToyFaces changed: rerun experiments/autoguidance.py"
    assert [r["scale"] for r in result["rows"]] == list(script.SCALES)
    assert result["chosen_scale"] == script.choose_scale(result["rows"])
    assert result["real_set"] == "ToyFaces split='val'"                  # chosen without the test faces
    assert result["weak"]["config"] == json.loads(json.dumps(dataclasses.asdict(script.weak_config())))
    assert result["sampler"] == list(script.SAMPLER) and result["n"] == script.N_EVAL
    for row in result["rows"]:
        assert all(math.isfinite(row[k]) for k in ("frechet", "kid", "fidelity", "diversity", "grain"))


def test_the_sample_quality_table_scores_the_chosen_scale_on_test_faces():
    table = load_result("sample_quality_cpu")
    assert "flow_reference_autoguided" in table["models"], \
        "run python bench/sample_quality.py --profile cpu --only flow_reference_autoguided"
