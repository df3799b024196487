"""How much does the loop helper cost? ``course_lib.loop.train`` vs a hand-written loop.

Same model (a small 32x32 conv autoencoder, about a VAE step's work), same data (an
in-memory uint8 set served by ``DeviceLoader``), same number of steps, on CPU. The two
loops run interleaved (A B B A ...) so load changes on a shared machine hit both; the
result is the ratio of median step times measured in this one run (target <= 1.03).
A second measurement with an empty step over ready-made batches gives the helper's fixed cost per step
in microseconds, which does not depend on the model.

    .venv/bin/python bench/bench_loop_overhead.py [--repeats 7] [--steps 40]

Writes ``bench/results/loop_overhead.txt``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from course_lib.artifacts import write_result
from course_lib.images import to_float
from course_lib.loop import Budget, train
from course_lib.runtime import DeviceLoader, seed_everything


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),          # (B, 64, 8, 8)
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1),  # (B, 3, 32, 32)
        nn.Sigmoid())


def make_step(model, optimizer):
    def step(x):
        x_hat = model(x)
        loss = nn.functional.mse_loss(x_hat, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}
    return step


def hand_loop(step, loader, steps):
    """What a chapter would write by hand: iterate epochs, call the step, keep the losses."""
    losses, done = [], 0
    while done < steps:
        for x in loader:
            losses.append(float(step(x)["loss"]))
            done += 1
            if done == steps:
                break
    return losses


def helper_loop(step, loader, steps):
    return train(step, loader, budget=Budget(steps=steps), progress=False)["loss"]


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(make, steps, repeats):
    """Interleaved repeats; returns (hand seconds list, helper seconds list)."""
    hand, helper = [], []
    for r in range(repeats):
        order = [("hand", hand_loop), ("helper", helper_loop)]
        if r % 2:
            order.reverse()
        for name, loop in order:
            step, loader = make()
            (hand if name == "hand" else helper).append(timed(loop, step, loader, steps))
    return hand, helper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loop_overhead.txt"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def make_model_run():
        seed_everything(0)
        model = make_model()
        return make_step(model, torch.optim.Adam(model.parameters(), lr=1e-3)), \
            DeviceLoader(images, batch_size=64, device="cpu", seed=0)

    batch = to_float(images[:64])

    def make_empty_run():  # a list of ready batches: only the loop's own cost remains
        return (lambda x: {"loss": 0.0}), [batch] * 16

    helper_loop(*make_model_run(), 3)  # warm-up (allocator, kernels)
    hand, helper = measure(make_model_run, args.steps, args.repeats)
    e_hand, e_helper = measure(make_empty_run, 2000, args.repeats)
    ratio = statistics.median(helper) / statistics.median(hand)
    pair_ratios = sorted(h / m for h, m in zip(helper, hand))
    fixed_us = (statistics.median(e_helper) - statistics.median(e_hand)) / 2000 * 1e6
    model_ms = statistics.median(hand) / args.steps * 1e3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# loop helper overhead: course_lib.loop.train vs a hand-written loop (same model, data, steps)",
        f"# command: .venv/bin/python bench/bench_loop_overhead.py --repeats {args.repeats} --steps {args.steps} "
        f"--threads {args.threads}",
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, load average at start of the summary {load:.1f}",
        f"model step (32x32 conv autoencoder, batch 64, hand loop): median {model_ms:.1f} ms/step",
        f"ratio helper/hand, medians of {args.repeats} interleaved runs of {args.steps} steps: {ratio:.3f}  "
        "(target <= 1.03)",
        f"per-pair ratios (sorted): {', '.join(f'{r:.3f}' for r in pair_ratios)}",
        f"fixed helper cost with an empty step (2000 steps, no model): {fixed_us:.1f} us/step "
        f"(= {fixed_us / 1e3 / model_ms * 100:.2f}% of this model's step)",
    ]
    write_result(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
