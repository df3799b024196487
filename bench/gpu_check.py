"""GPU check: what does the runtime plan buy each course trainer, and is it still correct?

For every trainer of ``python -m course_lib.train`` (vae, dcgan, wgan-gp, inpainting,
jigsaw, rotation), in one run on one card, with the ``gpu`` profile's config (64x64):

- **course**: the chapter's own trainer (``train_vae``, ``train_gan``, ...) through
  ``course_lib.loop.train`` with the runtime plan (``runtime()``: bf16 autocast where the
  card has it, fp16 + GradScaler where not, channels_last, data resident on the GPU,
  metrics fetched once per ``sync_every`` steps);
- **naive**: the same model and the same library step function in fp32, fed by a
  ``torch.utils.data.DataLoader`` that copies every batch from the host, ``float(loss)``
  every step: what a hand-written loop does;
- **correctness**: the course trainer under the plan and under a plain fp32 plan from the
  same seed: the mean loss over the last quarter of the run must agree within 5%.

    python bench/gpu_check.py                 # on a CUDA machine; writes bench/results/gpu_check.txt
    python bench/gpu_check.py --cpu-dry-run   # smoke sizes on the CPU: checks the script itself

Images/s count real images per step (per discriminator step for the GANs). Without CUDA
and without ``--cpu-dry-run`` it exits with a message (exit code 2).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from course_lib import gan, inpainting, pretext
from course_lib.artifacts import write_result
from course_lib.runtime import runtime, seed_everything
from course_lib.toyfaces import ToyFaces
from course_lib.train import MODELS
from course_lib.vae import vae_step

FAMILIES = ("vae", "dcgan", "wgan-gp", "inpainting", "jigsaw", "rotation")
LOSS_KEY = {"dcgan": "d_loss", "wgan-gp": "d_loss"}  # the others log "loss"


def naive_step(family: str, models, config):
    """The library's step function for ``family`` on plain fp32 modules (no plan active)."""
    if family in ("dcgan", "wgan-gp"):
        opt_g, opt_d = gan.make_optimizers(models["generator"], models["discriminator"], config)
        return gan.make_step(models["generator"], models["discriminator"], opt_g, opt_d, config)
    optimizer = torch.optim.Adam(models.parameters(), lr=config.lr)
    if family == "vae":
        return lambda x: vae_step(models, optimizer, x, beta=config.beta, likelihood=config.likelihood)
    g = torch.Generator().manual_seed(config.seed)
    if family == "inpainting":
        return lambda x: inpainting.inpainting_step(
            models, optimizer, x, inpainting.sample_masks(config, len(x), g, x.device), fill=config.fill)
    if family == "jigsaw":
        perms = config.permutations()
        return lambda x: pretext.jigsaw_step(models, optimizer, *pretext.jigsaw_batch(x, perms, config, g))
    return lambda x: pretext.rotation_step(models, optimizer, x)


def _to(models, device):
    for m in (models.values() if isinstance(models, dict) else [models]):
        m.to(device)
    return models


def naive_run(family, config, images, device, steps) -> tuple[float, list[float]]:
    seed_everything(config.seed)
    models = _to(MODELS[family].build(config), device)
    step = naive_step(family, models, config)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=config.batch_size,
                                         shuffle=True, drop_last=True, num_workers=0)
    losses, done = [], 0
    key = LOSS_KEY.get(family, "loss")
    sync()
    start = time.perf_counter()
    while done < steps:
        for (xb,) in loader:
            losses.append(float(step(xb.to(device).float().div(255))[key]))  # a sync every step
            done += 1
            if done == steps:
                break
    sync()
    return steps * config.batch_size / (time.perf_counter() - start), losses


def course_run(family, config, images, plan, steps) -> tuple[float, list[float]]:
    spec = MODELS[family]
    seed_everything(config.seed)
    models = spec.build(config)
    sync()
    history = spec.train(models, replace(config, steps=steps), images=images, plan=plan, progress=False)
    sync()
    return steps * config.batch_size / history.seconds, history[LOSS_KEY.get(family, "loss")]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def tail_mean(losses: list[float]) -> float:
    return statistics.fmean(losses[-max(1, len(losses) // 4):])


def main() -> int:
    parser = argparse.ArgumentParser(description="per-trainer GPU throughput and correctness")
    parser.add_argument("--cpu-dry-run", action="store_true", help="smoke sizes on the CPU (tests the script)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per row")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.txt"))
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print("gpu_check: no CUDA device here, nothing to measure. Run it on a CUDA machine "
              "(e.g. Colab with a GPU runtime): python bench/gpu_check.py", file=sys.stderr)
        return 2
    profile, steps = ("smoke", 3) if args.cpu_dry_run else ("gpu", args.steps)
    device = torch.device("cpu" if args.cpu_dry_run else "cuda")
    plan = runtime(device)
    fp32 = runtime(device, amp="off", channels_last=False, compile=False)
    card = "CPU dry run (smoke sizes, numbers meaningless)" if args.cpu_dry_run else torch.cuda.get_device_name(0)
    lines = [f"# bench/gpu_check.py on {card}, torch {torch.__version__}, profile {profile}, {steps} timed steps",
             f"# plan: {plan.describe()}", "",
             "| trainer | size | batch | naive fp32 + DataLoader (img/s) | course trainer + plan (img/s) | speed-up "
             "| last-quarter loss fp32 | with plan | rel. diff | agree |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    start = time.perf_counter()
    for family in args.families:
        config = MODELS[family].config(profile)
        images = ToyFaces(split="train", size=max(8 * config.batch_size, 512 if args.cpu_dry_run else 4096),
                          image_size=config.image_size).images
        course_run(family, config, images, plan, max(3, steps // 10))  # warm-up: cuDNN autotune, allocator
        naive, _ = naive_run(family, config, images, device, steps)
        fast, fast_losses = course_run(family, config, images, plan, steps)
        _, ref_losses = course_run(family, config, images, fp32, steps)
        a, b = tail_mean(ref_losses), tail_mean(fast_losses)
        diff = abs(a - b) / max(abs(a), 1e-12)
        lines.append(f"| {family} | {config.image_size} | {config.batch_size} | {naive:.0f} | {fast:.0f} | "
                     f"{fast / naive:.2f}x | {a:.4g} | {b:.4g} | {diff:.1e} | {'ok' if diff < 0.05 else 'CHECK'} |")
        print(lines[-1], flush=True)
    lines.append(f"\n# total {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines)
    print(text)
    if not args.cpu_dry_run:
        write_result(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
