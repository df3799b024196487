"""Flow matching (course_lib.flow, course_lib.flow_toy) and the kernel distance."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import flow, flow_toy, metrics
from course_lib.diffusion import DDPMConfig


def test_interpolant_ends_and_its_velocity():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    assert torch.equal(flow.interpolant(x0, x1, torch.zeros(2)), x0)
    assert torch.allclose(flow.interpolant(x0, x1, torch.ones(2)), x1)
    t, h = torch.tensor([0.2, 0.7]), 1e-3  # d x_t / dt by finite differences is the target, at every t
    slope = (flow.interpolant(x0, x1, t + h) - flow.interpolant(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(slope, flow.velocity_target(x0, x1), atol=1e-3)


def test_sample_times():
    g = torch.Generator().manual_seed(0)
    u, ln = flow.sample_times(20000, generator=g), flow.sample_times(20000, kind="logit_normal", generator=g)
    assert 0 <= u.min() and u.max() <= 1 and 0 < ln.min() and ln.max() < 1
    middle = lambda t: ((t > 0.25) & (t < 0.75)).float().mean()  # noqa: E731
    assert abs(middle(u) - 0.5) < 0.02 and middle(ln) > 0.65  # logit-normal puts more mass mid-path
    with pytest.raises(ValueError, match="uniform"):
        flow.sample_times(3, kind="beta")


def test_euler_is_exact_for_constant_velocity_and_heun_for_linear_in_time():
    x = torch.zeros(4, 2)
    const = lambda x, t: torch.ones_like(x)  # noqa: E731
    assert torch.allclose(flow.integrate(const, x, steps=3), torch.ones(4, 2))
    linear = lambda x, t: t[:, None].expand_as(x)  # noqa: E731  dx/dt = t -> x(1) = 1/2
    assert torch.allclose(flow.integrate(linear, x, steps=1, method="heun"), torch.full((4, 2), 0.5))
    assert torch.allclose(flow.integrate(linear, x, steps=1, method="euler"), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="euler"):
        flow.integrate(const, x, steps=2, method="rk4")
    with pytest.raises(ValueError, match="steps"):
        flow.integrate(const, x, steps=0)


def test_heun_euler_last_takes_heun_steps_then_one_euler_step():
    x = torch.zeros(4, 2)
    calls = []

    def linear(x, t):                       # dx/dt = t: Heun is exact, Euler is not
        calls.append(float(t[0]))
        return t[:, None].expand_as(x)
    got = flow.integrate(linear, x, steps=2, method="heun_euler_last")
    # Heun over [0, 1/2] is exact (1/8); Euler over [1/2, 1] adds 1/2 * 1/2
    assert torch.allclose(got, torch.full((4, 2), 1 / 8 + 1 / 4))
    assert calls == [0.0, 0.5, 0.5] and len(calls) == flow.nfe("heun_euler_last", 2)
    assert torch.equal(flow.integrate(linear, x, steps=1, method="heun_euler_last"),
                       flow.integrate(linear, x, steps=1, method="euler"))
    assert [flow.nfe(m, 6) for m in flow.SAMPLERS] == [6, 12, 11]


def test_config_rejects_unknown_time_sampling():
    with pytest.raises(ValueError, match="time_sampling"):
        flow.FlowConfig(time_sampling="cosine")


def test_flow_model_shares_chapter_08s_unet_and_calls_its_average():
    config = flow.FlowConfig.for_profile("cpu")
    ddpm = DDPMConfig.for_profile("cpu").build()
    model = config.build()
    assert sum(p.numel() for p in model.net.parameters()) == sum(p.numel() for p in ddpm.net.parameters())
    small = flow.FlowConfig.for_profile("smoke").build().eval()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.25, 0.5])
    with torch.no_grad():
        torch.nn.init.normal_(small.ema.head[-1].weight)
        assert torch.equal(small(x, t), small.ema(x, t * flow.TIME_SCALE))


def _step_loss(images, flip):
    torch.manual_seed(0)
    model = flow.FlowConfig.for_profile("smoke").build()
    optimizer = torch.optim.SGD(model.net.parameters(), lr=0.0)
    return flow.flow_step(model, optimizer, images, torch.Generator().manual_seed(1), flip=flip)["loss"]


def test_flips_change_nothing_on_mirror_symmetric_images_and_something_otherwise():
    g = torch.Generator().manual_seed(0)
    half = torch.rand(8, 3, 16, 8, generator=g)
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)
    assert torch.equal(_step_loss(symmetric, True), _step_loss(symmetric, False))
    lopsided = torch.cat([half, torch.zeros_like(half)], dim=-1)
    assert not torch.equal(_step_loss(lopsided, True), _step_loss(lopsided, False))


def test_training_is_deterministic_and_lowers_the_loss(tmp_path):
    config = dataclasses.replace(flow.FlowConfig.for_profile("smoke"), steps=30, time_sampling="logit_normal",
                                 flip=True)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the initial weights; train_flow seeds the rest from config.seed
        model = config.build()
        history = flow.train_flow(model, config, progress="none")
        runs.append((model, [r["loss"] for r in history.records]))
    (a, losses), (b, _) = runs
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert sum(losses[-5:]) < sum(losses[:5])
    x = flow.sample_flow(a, 5, steps=3, method="heun", seed=4)
    assert x.shape == (5, 3, 16, 16) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, flow.sample_flow(a, 5, steps=3, method="heun", seed=4))


def test_reflow_straightens_the_ring_flow_and_one_step_lands_on_the_modes():
    config = flow_toy.Flow2DConfig(steps=800)
    first, _ = flow_toy.train_velocity_2d(config)
    second, _ = flow_toy.train_velocity_2d(config, pairs=flow_toy.reflow_pairs(first, 4000))
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
    bend = [flow_toy.straightness(flow_toy.trajectories(m, x0, steps=20)) for m in (first, second)]
    assert bend[1] < bend[0] / 10
    one_step = [flow_toy.quality_by_steps(m, (1,), n=1000)[1] for m in (first, second)]
    assert one_step[0] < 0.2 and one_step[1] > 0.5


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g)
    same, shifted = metrics.kernel_distance(a, b), metrics.kernel_distance(a, b + 0.5)
    assert abs(same) < 0.01 < shifted
    with pytest.raises(ValueError, match="feature sizes"):
        metrics.kernel_distance(a, b[:, :8])


# ----------------------------------------------------------------------------- guidance
def test_attribute_embedding_has_an_unknown_vector_per_attribute():
    from course_lib.diffusion_unet import NULL_LABEL, AttributeEmbedding

    torch.manual_seed(0)
    embed = AttributeEmbedding(num_classes=(2, 3), dim=4)
    labels = torch.tensor([[0, 2], [NULL_LABEL, 2], [NULL_LABEL, NULL_LABEL]])
    out = embed(labels)
    assert out.shape == (3, 4)
    assert torch.allclose(out[1], embed.tables[0].weight[2] + embed.tables[1].weight[2])
    assert torch.allclose(out[2], embed.tables[0].weight[2] + embed.tables[1].weight[3])
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        embed(torch.zeros(3, 3, dtype=torch.long))


def test_config_checks_the_condition():
    with pytest.raises(ValueError, match="unknown attributes"):
        flow.FlowConfig(condition=("glases",))
    with pytest.raises(ValueError, match="p_uncond"):
        flow.FlowConfig(condition=("hat",), p_uncond=1.0)
    assert flow.FlowConfig(condition=("hat", "skin")).condition_index() == [10, 0]


def test_condition_dropout_drops_whole_label_rows_at_the_asked_rate():
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, s, labels):
            seen.append(labels.clone())
            return self.w * x

    model = flow.FlowModel(net=Spy(), image_size=8)
    optimizer = torch.optim.SGD(model.net.parameters(), lr=0.0)
    images, labels = torch.rand(4000, 3, 8, 8), torch.ones(4000, 2, dtype=torch.long)
    flow.flow_step(model, optimizer, (images, labels), torch.Generator().manual_seed(0), p_uncond=0.25)
    (got,) = seen
    dropped = (got == flow.NULL_LABEL).all(1)
    assert ((got == 1).all(1) | dropped).all()           # a row is kept or dropped whole
    assert abs(dropped.float().mean() - 0.25) < 0.03


def test_guide_is_the_unconditional_velocity_plus_scale_times_the_difference():
    from course_lib import guidance

    u_c, u_u = torch.tensor([3.0]), torch.tensor([1.0])
    assert guidance.guide(u_c, u_u, 0.0) == u_u and guidance.guide(u_c, u_u, 1.0) == u_c
    assert guidance.guide(u_c, u_u, 3.0) == torch.tensor([7.0])


def test_guided_sampling_matches_conditional_and_unconditional_calls():
    from course_lib import guidance

    config = dataclasses.replace(flow.FlowConfig.for_profile("smoke"), condition=("hat", "glasses"), steps=5)
    torch.manual_seed(0)
    model = config.build().eval()
    with torch.no_grad():
        for p in model.ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
    labels = torch.tensor([[1, 0], [0, 1], [1, 1]])
    x, t = torch.randn(3, 3, 16, 16), torch.full((3,), 0.4)
    with torch.no_grad():
        u_c, u_u = model(x, t, labels), model(x, t, torch.full_like(labels, flow.NULL_LABEL))
        assert not torch.allclose(u_c, u_u)
        for scale in (0.0, 1.0, 2.5):
            got = guidance.guided_velocity(model, labels, scale)(x, t)
            assert torch.allclose(got, u_u + scale * (u_c - u_u), atol=1e-5)
    a = guidance.sample_guided(model, labels, scale=2.0, steps=2, seed=3)
    assert a.shape == (3, 3, 16, 16) and torch.equal(a, guidance.sample_guided(model, labels, scale=2.0, steps=2,
                                                                                seed=3))


def test_an_unconditional_step_draws_only_times_and_noise():
    """The dropout draw happens only when labels are given (and the flip draw only with
    flips), so an unconditional run sees the t and noise it saw before guidance existed."""
    torch.manual_seed(0)
    model = flow.FlowConfig.for_profile("smoke").build()
    optimizer = torch.optim.SGD(model.net.parameters(), lr=0.0)
    images = torch.rand(6, 3, 16, 16)
    g = torch.Generator().manual_seed(5)
    flow.flow_step(model, optimizer, images, g, p_uncond=0.5)
    expected = torch.Generator().manual_seed(5)
    flow.sample_times(6, generator=expected)
    torch.randn((6, 3, 16, 16), generator=expected)
    assert torch.equal(g.get_state(), expected.get_state())


def test_committed_flow_reference_matches_the_config_and_drawing():
    """experiments/flow_reference.py --export wrote it for chapter 09's cpu config (read_reference
    checks the config and the ToyFaces render version); retrain with its command if this fails."""
    model = flow.reference_flow()
    assert model.steps == 12000 and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = flow.sample_flow(model, 2, steps=2, seed=0)
    assert x.shape == (2, 3, 32, 32)


def test_the_committed_flow_step_table_was_measured_for_this_config():
    from course_lib.facedraw import RENDER_VERSION
    from course_lib.results import load_result

    table = load_result("flow_reference_steps")
    assert table["data_version"] == RENDER_VERSION
    expected = {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(flow.reference_config()).items() if k != "steps"}
    assert table["config"] == expected
    steps = {r["step"] for r in table["rows"] if r["step"] != ""}
    assert max(steps) == 12000
