"""The training engine: one loop for every trainer, the runtime plan inside it, exact
resume, the command-line trainer, and torchrun (gloo on CPU) matching one process."""
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import course_lib
from course_lib import distributed, fusion, gan, inpainting, loop, vae
from course_lib.loop import Budget, train
from course_lib.runtime import DeviceLoader, backward_step, local_share, runtime
from course_lib.toyfaces import ToyFaces
from course_lib.train import main as cli_main

LIB = Path(course_lib.__file__).parent
PYTHON = sys.executable


def test_no_step_loop_outside_the_loop_module():
    """Every trainer goes through loop.train: no bare `for ... in zip(range(steps), batches)`."""
    offenders = []
    for path in LIB.rglob("*.py"):
        if path.name == "loop.py" or "checkers" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"zip\(range\(.*\)\s*,\s*\w+\.batches\(", text) or re.search(r"\.batches\(\)\)", text):
            offenders.append(path.name)
    assert not offenders, f"bare step loops in {offenders}"


def test_backward_step_without_and_with_a_cpu_plan_is_the_plain_update():
    def run(plan):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(torch.ones(2, 4)).pow(2).mean()
        opt.zero_grad()
        if plan is None:
            backward_step(loss, opt)
        else:
            with distributed.active(plan):
                backward_step(loss, opt)
        return model.weight.detach().clone()

    torch.manual_seed(0)
    ref = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    ref(torch.ones(2, 4)).pow(2).mean().backward()
    opt.step()
    assert torch.equal(run(None), ref.weight) and torch.equal(run(runtime("cpu", amp="off")), ref.weight)


def test_step_functions_return_detached_tensors_and_the_loop_syncs_only_when_it_logs(monkeypatch):
    model = vae.VAE(latent_dim=4, image_size=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = vae.vae_step(model, opt, torch.rand(4, 3, 16, 16))
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in out.values())
    calls = []
    real = loop._to_floats
    monkeypatch.setattr(loop, "_to_floats", lambda pending, plan: calls.append(len(pending)) or real(pending, plan))
    loader = DeviceLoader(torch.rand(32, 3, 16, 16), batch_size=8, device="cpu")
    history = train(lambda x: vae.vae_step(model, opt, x), loader, budget=Budget(steps=20),
                    progress=False, sync_every=10, every=1000)
    assert calls == [10, 10] and len(history) == 20 and isinstance(history["loss"][0], float)


def test_device_loader_shards_each_global_batch_across_ranks():
    images = torch.arange(24, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 3, 2, 2).contiguous()
    whole = DeviceLoader(images, batch_size=8, device="cpu", seed=3)
    shards = [DeviceLoader(images, batch_size=8, device="cpu", seed=3, rank=r, world_size=2) for r in (0, 1)]
    for step, (full, a, b) in enumerate(zip(whole.batches(), shards[0].batches(), shards[1].batches())):
        assert torch.equal(torch.cat([a, b]), full)
        if step == 5:
            break
    with pytest.raises(ValueError, match="divisible by world_size"):
        DeviceLoader(images, batch_size=7, device="cpu", rank=0, world_size=2)
    assert torch.equal(local_share(torch.arange(6)), torch.arange(6))  # outside torchrun: all of it


def _gan_run(tmp_path, steps, *, resume_at=None, config):
    torch.manual_seed(0)
    models = gan.build_models(config)
    images = ToyFaces(split="train", size=64, image_size=config.image_size).images
    ckpt = tmp_path / "gan.pt"
    if resume_at is not None:
        gan.train_gan(models, replace(config, steps=resume_at), images=images, progress=False, checkpoint=ckpt)
        torch.manual_seed(123)  # a fresh process: nothing carries over but the file
        models = gan.build_models(config)
    gan.train_gan(models, replace(config, steps=steps), images=images, progress=False,
                  checkpoint=ckpt if resume_at is not None else None)
    return {f"{k}.{n}": v for k, m in models.items() for n, v in m.state_dict().items()}


@pytest.mark.parametrize("loss, extra", [
    ("ns", {}), ("wgan-gp", {"d_steps": 2}),
    ("hinge", {"spectral_norm": True, "ema_decay": 0.9}),       # SN's power-iteration vectors, the EMA copy
    ("ns", {"r1_weight": 1.0, "lr_d": 4e-4, "lr_g": 1e-4}),
])
def test_gan_resumes_exactly(tmp_path, loss, extra):
    """The noise generator and the D/G call counter travel in the checkpoint (loop.Step)."""
    config = gan.GANConfig.for_profile("smoke", loss=loss, **extra)
    straight = _gan_run(tmp_path / "a", 8, config=config)
    resumed = _gan_run(tmp_path / "b", 8, resume_at=3, config=config)
    differ = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not differ, f"{len(differ)} of {len(straight)} tensors differ after resume: {differ[:3]}"


def test_inpainter_resumes_exactly(tmp_path):
    """The mask generator travels in the checkpoint too."""
    config = replace(inpainting.InpaintConfig.for_profile("smoke"), steps=6)
    images = ToyFaces(split="train", size=48, image_size=config.image_size).images

    def run(resume_at=None):
        torch.manual_seed(0)
        model = config.build()
        ckpt = tmp_path / f"inp-{resume_at}.pt"
        if resume_at:
            inpainting.train_inpainter(model, replace(config, steps=resume_at), images=images,
                                       progress=False, checkpoint=ckpt)
            torch.manual_seed(7)
            model = config.build()
        inpainting.train_inpainter(model, config, images=images, progress=False,
                                   checkpoint=ckpt if resume_at else None)
        return model.state_dict()

    straight, resumed = run(), run(resume_at=2)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_joint_step_at_lambda_zero_is_chapter_02s_vae_step():
    x = torch.rand(6, 3, 16, 16)
    torch.manual_seed(0)
    a = vae.VAE(latent_dim=4, image_size=16)
    b = vae.VAE(latent_dim=4, image_size=16)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    joint = fusion.JointModel(vae=b)
    torch.manual_seed(1)  # the same reparameterisation noise
    out_a = vae.vae_step(a, opt_a, x)
    torch.manual_seed(1)
    out_b = fusion.joint_step(joint, opt_b, x, torch.zeros(6, 1, 16, 16), lam=0.0)
    assert torch.equal(out_a["loss"], out_b["loss"])
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# ------------------------------------------------------------------------------ the CLI
CLI_ARGS = ["--data", "toyfaces", "--image-size", "32", "--batch-size", "32", "--seed", "0"]


def test_cli_writes_metrics_samples_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    out = tmp_path / "run"
    first = cli_main(["vae", *CLI_ARGS, "--steps", "4", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and [r["step"] for r in metrics["history"]] == [1, 2, 3, 4]
    assert {"loss", "recon", "kl"} <= set(metrics["history"][0])
    assert (out / "samples.png").stat().st_size > 0 and (out / "checkpoint.pt").is_file()
    assert metrics["config"]["image_size"] == 32 and first["processes"] == 1
    with pytest.raises(SystemExit, match="another configuration"):  # same folder, other config
        cli_main(["vae", *CLI_ARGS, "--steps", "4", "--seed", "1", "--out", str(out)])
    # the same command with more steps continues from step 4 and ends where 6 straight steps end
    resumed = cli_main(["vae", *CLI_ARGS, "--steps", "6", "--out", str(out)])
    straight = cli_main(["vae", *CLI_ARGS, "--steps", "6", "--out", str(tmp_path / "straight")])
    assert [r["step"] for r in resumed["history"]] == list(range(1, 7))
    assert resumed["history"][-1]["loss"] == straight["history"][-1]["loss"]


@pytest.mark.parametrize("model", ["dcgan", "wgan-gp", "inpainting", "jigsaw", "rotation", "ddpm"])
def test_cli_trains_every_model_family(tmp_path, monkeypatch, model):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    size = "30" if model == "jigsaw" else "16"
    result = cli_main([model, "--image-size", size, "--steps", "2", "--batch-size", "8",
                       "--train-size", "32", "--out", str(tmp_path / model)])
    assert result["steps"] == 2 and len(result["history"]) == 2
    assert (tmp_path / model / "metrics.json").is_file()


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(PYTHON).parent)) is None and
                    shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_two_processes_match_one(tmp_path):
    """Same global batch and seed: 2 gloo processes end within 1e-3 of 1 process."""
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    cmd = ["vae", *CLI_ARGS, "--steps", "12"]
    subprocess.run([PYTHON, "-m", "course_lib.train", *cmd, "--out", str(tmp_path / "one")],
                   check=True, env=env, capture_output=True, timeout=300)
    two = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "course_lib.train", *cmd, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    one_m = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two_m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two_m["processes"] == 2 and "rank 0 of 2" in two_m["runtime"]
    a, b = one_m["history"][-1]["loss"], two_m["history"][-1]["loss"]
    assert abs(a - b) / abs(a) < 1e-3, (a, b)
    assert one_m["history"][0]["loss"] == pytest.approx(two_m["history"][0]["loss"], rel=1e-4)  # same start


def test_gpu_check_runs_every_trainer_on_the_cpu(tmp_path):
    """bench/gpu_check.py's dry run: every trainer, both loops, the correctness column."""
    out = subprocess.run([PYTHON, str(LIB.parent / "bench" / "gpu_check.py"), "--cpu-dry-run"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COURSE_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "trainer" not in line]
    trainers = ["vae", "dcgan", "wgan-gp", "inpainting", "jigsaw", "rotation"]
    assert [r.split("|")[1].strip() for r in rows[:6]] == trainers
    assert all(r.rstrip(" |").endswith("ok") for r in rows[:6])  # fp32 plan == plan on a CPU


def _documented(variable: str) -> list[str]:
    """The values README lists for an environment variable: `VAR` (`a`, `b`, ...)."""
    text = (LIB.parent / "README.md").read_text()
    match = re.search(rf"`{variable}`\s*\(((?:`[^`]+`(?:,|/|\s)*)+)", text)
    assert match, f"README does not document {variable}"
    return re.findall(r"`([^`]+)`", match.group(1))


def test_every_documented_environment_value_works(monkeypatch):
    for name in ("COURSE_DEVICE", "COURSE_AMP", "COURSE_CHANNELS_LAST", "COURSE_COMPILE", "COURSE_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set(_documented("COURSE_AMP")) == {"auto", "off", "bf16", "fp16"}
    for value in _documented("COURSE_AMP"):
        monkeypatch.setenv("COURSE_AMP", value)
        if value == "fp16":  # needs a GPU: the message says so
            with pytest.raises(ValueError, match="fp16 autocast is not supported on CPU"):
                runtime()
        else:
            assert runtime().precision in ("fp32", "bf16")
    monkeypatch.delenv("COURSE_AMP")
    for value in _documented("COURSE_DEVICE"):
        monkeypatch.setenv("COURSE_DEVICE", value.replace(":N", ":0"))
        if value == "cpu":
            assert runtime().device.type == "cpu"
        else:  # not on this machine: a clear error naming what is available
            with pytest.raises(RuntimeError, match="is not available here"):
                runtime()
    monkeypatch.delenv("COURSE_DEVICE")
    for name, attr in (("COURSE_CHANNELS_LAST", "channels_last"), ("COURSE_COMPILE", "compile")):
        for value in _documented(name):
            monkeypatch.setenv(name, value)
            assert getattr(runtime(), attr) is (value == "1")
        monkeypatch.delenv(name)
    for value in _documented("COURSE_PROGRESS"):
        monkeypatch.setenv("COURSE_PROGRESS", value)
        assert loop._progress_mode("auto") == value
