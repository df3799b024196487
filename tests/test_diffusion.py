"""Chapter 08's diffusion library: schedules, the forward process, the loss, the U-Net, the
samplers, RePaint, training and exact resume, and the committed reference weights.

The library is four modules (course_lib.diffusion_process, diffusion_unet, diffusion_sampling
and course_lib.diffusion, which trains and re-exports the others); the tests go through
course_lib.diffusion, the one module the chapter imports."""
import dataclasses
import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from course_lib import diffusion as dm
from course_lib.diffusion_process import cosine_schedule, diffusion_loss, q_sample, v_target
from course_lib.facedraw import RENDER_VERSION
from course_lib.masks import make_masks
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dm.DDPMConfig.for_profile("smoke")


# ----------------------------------------------------------------------- the modules
def test_the_chapter_module_re_exports_the_pieces_and_each_module_stays_short():
    from course_lib import diffusion_process, diffusion_sampling, diffusion_unet

    for name in dm.__all__:
        assert hasattr(dm, name), name
    assert dm.q_sample is diffusion_process.q_sample and dm.cosine_schedule is diffusion_process.cosine_schedule
    assert dm.TimeUNet is diffusion_unet.TimeUNet and dm.DDPM is diffusion_unet.DDPM
    assert dm.sample_ddim is diffusion_sampling.sample_ddim and dm.repaint is diffusion_sampling.repaint
    for module in (dm, diffusion_process, diffusion_sampling, diffusion_unet):
        lines = Path(module.__file__).read_text().count("\n")
        assert lines <= 300, f"{module.__name__} has {lines} lines (the style guide: about 300 at most)"


# ------------------------------------------------------------------------- schedules
def test_linear_schedule_has_ho_et_al_s_end_points_and_products():
    s = dm.linear_schedule(1000)
    assert s.T == 1000 and math.isclose(float(s.betas[0]), 1e-4) and math.isclose(float(s.betas[-1]), 0.02)
    assert torch.allclose(s.alpha_bar, torch.cumprod(1 - s.betas, 0))
    assert float(s.alpha_bar[-1]) < 1e-4                       # x_T is almost pure noise
    assert torch.equal(s.timesteps, torch.arange(1000))


def test_cosine_schedule_matches_nichol_and_dhariwal_eq_17():
    s = dm.cosine_schedule(1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 250, 500, 900):  # index t is the paper's t + 1
        assert math.isclose(float(s.alpha_bar[t]), f(t + 1) / f(0), rel_tol=1e-9)
    assert float(s.betas.max()) <= 0.999
    # it keeps more signal than the linear schedule in the middle (their Figure 5)
    assert float(s.alpha_bar[300]) > float(dm.linear_schedule(1000).alpha_bar[300])


def test_snr_falls_monotonically_and_schedules_reject_bad_input():
    for s in (dm.linear_schedule(200), dm.cosine_schedule(200)):
        snr = s.snr()
        assert (snr[1:] < snr[:-1]).all() and float(snr[0]) > 100 and float(snr[-1]) < 1e-2
    with pytest.raises(ValueError, match="schedule must be one of"):
        dm.make_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="T must be an int >= 2"):
        dm.linear_schedule(1)
    with pytest.raises(ValueError, match="values in \\(0, 1\\)"):
        dm.Schedule.from_betas(torch.tensor([0.1, 1.0]))


def test_respace_keeps_alpha_bar_at_the_kept_steps():
    s = dm.cosine_schedule(1000)
    r = dm.respace(s, 50)
    assert r.T == 50 and int(r.timesteps[0]) == 0 and int(r.timesteps[-1]) == 999
    assert torch.allclose(r.alpha_bar, s.alpha_bar[r.timesteps])
    full = dm.respace(s, 1000)
    assert torch.allclose(full.betas, s.betas) and torch.equal(full.timesteps, s.timesteps)
    head = dm.respace(s, 501, start=500)                  # every step up to 500: a truncation
    assert torch.allclose(head.betas, s.betas[:501]) and int(head.timesteps[-1]) == 500
    assert dm.ddim_timesteps(9, 4) == [9, 6, 3, 0]
    with pytest.raises(ValueError, match="steps must be in"):
        dm.ddim_timesteps(9, 11)


def test_sampling_starts_where_the_snr_has_fallen_to_start_snr():
    for s in (dm.cosine_schedule(1000), dm.linear_schedule(1000), dm.cosine_schedule(100)):
        start = dm.sampling_start(s)
        assert float(s.snr()[start]) >= dm.START_SNR > float(s.snr()[start + 1])
    assert dm.sampling_start(dm.cosine_schedule(1000)) == 898
    assert dm.sampling_start(dm.cosine_schedule(1000), min_snr=0.0) == 999


# ----------------------------------------------------------------- forward process, loss
def test_q_sample_has_the_closed_form_mean_and_variance():
    s = dm.linear_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((4000, 3, 2, 2), 0.5)
    for t in (0, 300, 999):
        xt = dm.q_sample(x0, torch.full((4000,), t), torch.randn(x0.shape, generator=g), s)
        a = float(s.alpha_bar[t])
        assert abs(xt.mean().item() - math.sqrt(a) * 0.5) < 0.01
        assert abs(xt.var().item() - (1 - a)) < 0.02 * max(1 - a, 0.05)
    with pytest.raises(ValueError, match="time indices must be in"):
        dm.q_sample(x0[:2], torch.tensor([0, 1000]), x0[:2], s)


def test_loss_is_zero_for_the_true_noise_and_the_noise_power_for_zero():
    s = dm.linear_schedule(100)
    x0, noise, t = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 50, 99])

    def oracle(x_t, t_):  # recovers the noise exactly from x_t and x0
        a = s.alpha_bar[t_].float().view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    assert dm.diffusion_loss(oracle, x0, t, noise, s).item() < 1e-8
    zero = lambda x_t, t_: torch.zeros_like(x_t)  # noqa: E731
    assert math.isclose(dm.diffusion_loss(zero, x0, t, noise, s).item(), noise.pow(2).mean().item(), rel_tol=1e-6)


def test_v_prediction_target_conversion_and_loss():
    s = dm.cosine_schedule(1000)
    x0, noise, t = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 500, 999])
    v = dm.v_target(x0, t, noise, s)
    x_t = dm.q_sample(x0, t, noise, s)
    a = s.alpha_bar[t].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(v, a.sqrt() * noise - (1 - a).sqrt() * x0)
    torch.testing.assert_close(dm.v_to_eps(v, x_t, t, s), noise, atol=1e-5, rtol=1e-5)
    # x_0 from v needs no division: bounded even at t = T-1, where alpha_bar is 2e-9
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * v, x0, atol=1e-5, rtol=1e-5)
    true_v = lambda x_t_, t_: v  # noqa: E731
    assert dm.diffusion_loss(true_v, x0, t, noise, s, prediction="v").item() < 1e-10
    assert dm.diffusion_loss(true_v, x0, t, noise, s).item() > 0.1      # eps is the default target
    with pytest.raises(ValueError, match="prediction must be one of"):
        dm.diffusion_loss(true_v, x0, t, noise, s, prediction="x0")


def test_a_v_model_returns_the_noise_and_samples_from_t_minus_1():
    torch.manual_seed(0)
    v_model = dataclasses.replace(SMOKE, prediction="v").build().eval()
    eps_model = dataclasses.replace(SMOKE, prediction="eps").build().eval()
    assert dm.start_for(v_model) == v_model.schedule.T - 1
    assert dm.start_for(eps_model) == dm.sampling_start(eps_model.schedule) < eps_model.schedule.T - 1
    x_t, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 90])
    with torch.no_grad():
        out = v_model.ema(x_t, t)
        torch.testing.assert_close(v_model(x_t, t), dm.v_to_eps(out, x_t, t, v_model.schedule))
    with pytest.raises(ValueError, match="prediction must be one of"):
        dataclasses.replace(SMOKE, prediction="x0").build()


def test_reverse_step_is_algorithm_2_and_adds_no_noise_at_the_last_step():
    s = dm.cosine_schedule(50)
    x, eps, z = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t = 20
    a, b, ab = float(s.alphas[t]), float(s.betas[t]), float(s.alpha_bar[t])
    expected = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a) + math.sqrt(b) * z
    assert torch.allclose(dm.reverse_step(x, eps, t, s, z), expected, atol=1e-6)
    assert torch.equal(dm.reverse_step(x, eps, 0, s, z), dm.reverse_step(x, eps, 0, s, torch.zeros_like(z)))


def test_with_the_true_noise_one_reverse_step_moves_towards_x0():
    """Given the exact eps, the posterior mean is closer to x0 than x_t is."""
    s = dm.linear_schedule(1000)
    x0 = torch.rand(8, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    t = 100
    xt = dm.q_sample(x0, torch.full((8,), t), noise, s)
    prev = dm.reverse_step(xt, noise, t, s, torch.zeros_like(x0))
    a_prev = float(s.alpha_bar[t - 1])
    # the mean of q(x_{t-1} | x_t, x_0) (Ho et al. eq. 7) with the true noise
    assert (prev - math.sqrt(a_prev) * x0).pow(2).mean() < (xt - math.sqrt(float(s.alpha_bar[t])) * x0).pow(2).mean()


# ------------------------------------------------------------------------------ model
def test_time_unet_shapes_time_dependence_and_errors():
    net = SMOKE.build().net
    x = torch.randn(3, 3, 16, 16)
    out = net(x, torch.tensor([0, 5, 99]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0   # the head starts at zero
    torch.nn.init.normal_(net.head[-1].weight)
    a, b = net(x, torch.zeros(3, dtype=torch.long)), net(x, torch.full((3,), 90))
    assert not torch.allclose(a, b)                                  # the step changes the output
    assert dm.timestep_embedding(torch.tensor([0, 1]), 8).shape == (2, 8)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.randn(1, 3, 12, 12), torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError):
        dm.TimeUNet((16, 32, 64))                                    # keyword-only


def test_config_profiles_build_and_carry_the_render_version():
    for name in ("smoke", "cpu", "gpu"):
        config = dm.DDPMConfig.for_profile(name)
        assert config.data_version == RENDER_VERSION
    cpu = dm.DDPMConfig.for_profile("cpu").build()
    assert cpu.image_size == 32 and cpu.schedule.T == 1000
    assert sum(p.numel() for p in cpu.ema.parameters()) < 1_400_000   # about 2.6 MB in float16


# --------------------------------------------------------------------------- training
def _images(n=64, size=16):
    return ToyFaces(split="train", size=n, image_size=size).images


def test_train_ddpm_weights_the_loss_with_the_configs_min_snr():
    """DDPMConfig.min_snr reaches the loss: the same seed and data give another first loss
    with Min-SNR-5 than with the plain loss, and the profiles train with MIN_SNR."""
    first = {}
    for gamma in (None, 5.0):
        config = dataclasses.replace(SMOKE, steps=1, min_snr=gamma)
        first[gamma] = dm.train_ddpm(config.build(), config, images=_images(), progress=False)["loss"][0]
    assert first[None] != pytest.approx(first[5.0], rel=1e-3)
    assert all(dm.DDPMConfig.for_profile(p).min_snr == dm.MIN_SNR for p in ("smoke", "cpu", "gpu"))
    with pytest.raises(ValueError, match="DDPMConfig.min_snr must be a number > 0"):
        dm.DDPMConfig(min_snr=0.0)


def test_a_few_training_steps_reduce_the_loss_and_move_the_ema():
    torch.manual_seed(0)
    model = SMOKE.build()
    before = [p.clone() for p in model.ema.parameters()]
    history = dm.train_ddpm(model, dataclasses.replace(SMOKE, steps=80, lr=2e-3), images=_images(),
                            progress=False)
    losses = history["loss"]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert any(not torch.equal(a, b) for a, b in zip(before, model.ema.parameters()))
    step = dm.ddpm_step(model, torch.optim.Adam(model.net.parameters()), _images(8), torch.Generator())
    assert set(step) == {"loss"} and not step["loss"].requires_grad


def test_the_ema_decay_warms_up_to_the_config_s_and_counts_its_updates():
    model = dataclasses.replace(SMOKE, ema_decay=0.9995).build()
    assert model.current_decay() == pytest.approx(0.1)          # (1 + 0) / (10 + 0): the first update copies 90%
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    ema0 = [p.clone() for p in model.ema.parameters()]
    model.update_ema()
    live = list(model.net.parameters())
    # the first update moves the average 90% of the way to the live weights
    assert all(torch.allclose(e, 0.1 * a + 0.9 * b) for e, a, b in zip(model.ema.parameters(), ema0, live))
    assert int(model.ema_updates) == 1 and "ema_updates" in model.state_dict()
    model.ema_updates.fill_(990)
    assert model.current_decay() == pytest.approx(991 / 1000)     # a live run's end: a ~100-step average
    model.ema_updates.fill_(100000)
    assert model.current_decay() == 0.9995                         # a long run: the config's decay


def test_training_resumes_exactly(tmp_path):
    config = dataclasses.replace(SMOKE, steps=6)
    images = _images(48)

    def run(resume_at=None):
        torch.manual_seed(0)
        model = config.build()
        ckpt = tmp_path / f"ddpm-{resume_at}.pt"
        if resume_at:
            dm.train_ddpm(model, dataclasses.replace(config, steps=resume_at), images=images,
                          progress=False, checkpoint=ckpt)
            torch.manual_seed(7)  # a fresh process: only the file carries over
            model = config.build()
        dm.train_ddpm(model, config, images=images, progress=False, checkpoint=ckpt if resume_at else None)
        return model.state_dict()

    straight, resumed = run(), run(resume_at=2)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


# --------------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = SMOKE.build()
    dm.train_ddpm(model, dataclasses.replace(SMOKE, steps=30), images=_images(), progress=False)
    return model


def test_samplers_return_images_in_range_and_are_seeded(trained):
    for images in (dm.sample_ddpm(trained, 4, seed=1), dm.sample_ddpm(trained, 4, steps=10, seed=1),
                   dm.sample_ddim(trained, 4, steps=5, seed=1)):
        assert images.shape == (4, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(dm.sample_ddim(trained, 3, steps=5, seed=2), dm.sample_ddim(trained, 3, steps=5, seed=2))
    assert not torch.equal(dm.sample_ddim(trained, 3, steps=5, seed=2), dm.sample_ddim(trained, 3, steps=5, seed=3))


def test_ddim_from_a_given_start_equals_ddim_from_the_same_noise(trained):
    size = trained.image_size
    x = torch.randn((3, 3, size, size), generator=torch.Generator().manual_seed(4))
    assert torch.equal(dm.sample_ddim(trained, 3, steps=3, seed=4), dm.sample_ddim(trained, 3, steps=3, x_start=x))
    with pytest.raises(ValueError, match="x_start must be"):
        dm.sample_ddim(trained, 2, steps=3, x_start=x)


def test_repaint_keeps_the_known_pixels_exactly(trained):
    images = _images(4).float() / 255
    mask = make_masks("center", batch=4, image_size=16, coverage=0.3)
    for out in (dm.repaint(trained, images, mask, steps=10), dm.repaint(trained, images, mask, steps=5, resample=2)):
        known = (mask < 0.5).expand_as(images)
        assert torch.equal(out[known], images[known])
        assert not torch.equal(out[~known], images[~known]) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(dm.repaint(trained, _images(4), mask, steps=4)[known], images[known])  # uint8 in
    with pytest.raises(ValueError, match="expected images"):
        dm.repaint(trained, images, mask[:, :, :8])
    with pytest.raises(ValueError, match="generates 16px"):
        dm.repaint(trained, torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


class _Oracle(torch.nn.Module):
    """Knows the one image every sample should become: predicts the exact noise for it."""

    def __init__(self, x0, schedule):
        super().__init__()
        self.p, self.x0, self.schedule, self.image_size = torch.nn.Parameter(torch.zeros(1)), x0, schedule, x0.shape[-1]

    def forward(self, x, t):
        a = self.schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0) / (1 - a).sqrt()


def test_with_the_exact_noise_every_sampler_returns_the_image():
    x0 = dm.to_model_range(_images(3, 8))
    oracle = _Oracle(x0, dm.cosine_schedule(1000))
    target = dm.to_image_range(x0)
    assert (dm.sample_ddim(oracle, 3, steps=10) - target).abs().max() < 1e-4
    assert (dm.sample_ddim(oracle, 3, steps=10, start=999) - target).abs().max() < 1e-4
    assert (dm.sample_ddpm(oracle, 3, steps=50) - target).abs().max() < 1e-4
# ------------------------------------------------------------------ reference weights
def test_the_committed_reference_matches_the_config_and_the_toyfaces_drawing():
    """experiments/ddpm_reference.py wrote them for DDPMConfig's cpu profile and this
    ToyFaces render version; retrain with the command stored in the file if this fails."""
    payload = torch.load(dm.REFERENCE_PATH, map_location="cpu", weights_only=True)
    assert payload["data_version"] == RENDER_VERSION
    config = dataclasses.replace(dm.reference_config(), steps=payload["steps"])
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
    assert stored == dataclasses.asdict(config)
    model = dm.reference_ddpm()
    assert all(p.dtype == torch.float32 for p in model.parameters()) and not model.training


def test_committed_weight_files_stay_under_10_mb():
    files = subprocess.run(["git", "ls-files", "*.pt", "*.pth", "*.safetensors"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    total = sum((ROOT / f).stat().st_size for f in files if (ROOT / f).is_file())
    assert total <= 10_000_000, f"committed weights take {total / 1e6:.1f} MB: {files}"


def test_reference_loading_names_a_mismatch(tmp_path):
    payload = torch.load(dm.REFERENCE_PATH, map_location="cpu", weights_only=True)
    payload["config"] = {**payload["config"], "T": 500}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not match DDPMConfig"):
        dm.reference_ddpm(tmp_path / "bad.pt")


def test_the_committed_step_table_was_measured_for_this_config_and_drawing():
    """experiments/ddpm_reference.py --evaluate wrote it from the reference run's snapshots."""
    table = json.loads((dm.REFERENCE_PATH.parent / "ddpm_reference_steps.json").read_text())
    assert table["data_version"] == RENDER_VERSION
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in table["config"].items() if k != "steps"}
    # the config without its step budget and prediction target: each row names its target
    assert stored == {k: v for k, v in dataclasses.asdict(dm.reference_config()).items()
                      if k not in ("steps", "prediction")}
    predictions = {r["prediction"] for r in table["rows"] if r["step"] != ""}
    assert dm.reference_config().prediction in predictions and predictions <= set(dm.PREDICTIONS)
    for target in predictions:
        steps = [r["step"] for r in table["rows"] if r["step"] != "" and r["prediction"] == target]
        assert steps == sorted(steps) and len(steps) >= 2
    ours = [r["step"] for r in table["rows"] if r["step"] != "" and r["prediction"] == dm.reference_config().prediction]
    payload = torch.load(dm.REFERENCE_PATH, map_location="cpu", weights_only=True)
    assert payload["steps"] in ours    # the committed weights are one of the scored snapshots


def test_min_snr_weights_each_image_by_min_snr_gamma():
    """Min-SNR-gamma (Hang et al. 2023): with gamma above every step's SNR the v loss weights an
    image by SNR / (SNR + 1) and the eps loss by 1; a huge gamma on eps is the plain loss."""
    torch.manual_seed(0)
    schedule = cosine_schedule(50)
    x0, noise = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    t = torch.tensor([0, 5, 10, 25, 40, 49])
    net = lambda x, tt: 0.5 * x    # noqa: E731  any fixed prediction
    plain = diffusion_loss(net, x0, t, noise, schedule, prediction="eps")
    assert diffusion_loss(net, x0, t, noise, schedule, prediction="eps", min_snr=1e12) == pytest.approx(plain.item())
    snr = schedule.snr()[t].float()
    gamma = 2.0
    err = (net(q_sample(x0, t, noise, schedule), t) - v_target(x0, t, noise, schedule)).pow(2).flatten(1).mean(1)
    expected = (snr.clamp(max=gamma) / (snr + 1) * err).mean()
    got = diffusion_loss(net, x0, t, noise, schedule, prediction="v", min_snr=gamma)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert got < diffusion_loss(net, x0, t, noise, schedule, prediction="v")   # every weight is below 1
    with pytest.raises(ValueError, match="min_snr must be a positive number"):
        diffusion_loss(net, x0, t, noise, schedule, min_snr=0)
