"""What a training step and a sample cost in chapter 11's latent space against chapter 09's
pixel space, both timed in one run on one machine.

    python bench/latent_cost.py [--threads 2] [--repeats 5] [--force]

Models: chapter 09's flow model (``FlowConfig.for_profile("cpu")``: 32x32x3 images) and
chapter 11's latent flow (``LatentFlowConfig.for_profile("cpu")``: its U-Net on 8x8x8
latents, plus the autoencoder's decoder when sampling). Weights are random: the cost of a
step does not depend on them. A training step is :func:`course_lib.flow.flow_step` on one
batch (forward, backward, Adam, EMA), timed as the median over ``--repeats`` blocks of 10
steps, the two models' blocks interleaved so that drift on the machine hits both. A sample
costs 25 Euler steps for 100 images (and, for the latent model, decoding them), median of
``--repeats``. The encoder's one pass over the training set, which the latent model pays
once before training, is timed too. Writes ``course_lib/results_data/latent_cost.json``
(chapter 11 prints it); the ratios carry to another machine better than the seconds.
Refuses to start on a busy machine (1-minute load above 1 per core) unless ``--force``.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import torch

from course_lib import flow, latent
from course_lib.artifacts import write_result
from course_lib.flow import FlowConfig
from course_lib.latent import LatentFlowConfig
from course_lib.results import result_path

OUT = result_path("latent_cost")
BLOCK = 10                  # training steps per timed block
N_SAMPLES, SAMPLE_STEPS = 100, 25


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def trainer(model: flow.FlowModel, data: torch.Tensor, *, images: bool):
    """A closure running BLOCK flow matching steps on random batches of ``data``."""
    optimizer = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    step = functools.partial(flow.flow_step, time_sampling="logit_normal",
                             **({} if images else {"to_model": lambda z: z}))

    def run():
        for _ in range(BLOCK):
            idx = torch.randint(len(data), (32,), generator=g)
            step(model, optimizer, data[idx], g)
    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--force", action="store_true", help="time even on a busy machine")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) and not args.force:
        raise SystemExit(f"load average {load:.2f} is above 1 per core: wait for an idle machine or pass --force")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    torch.manual_seed(0)
    pcfg, lcfg = FlowConfig.for_profile("cpu"), LatentFlowConfig.for_profile("cpu")
    pixel, lat = pcfg.build(), lcfg.build()
    images = torch.randint(0, 256, (512, 3, pcfg.image_size, pcfg.image_size), dtype=torch.uint8)
    latents = torch.randn(512, lcfg.flow.channels, lcfg.flow.image_size, lcfg.flow.image_size)
    train_pixel, train_latent = trainer(pixel, images, images=True), trainer(lat.flow, latents, images=False)
    train_pixel(), train_latent()                                         # warm-up
    pixel_blocks, latent_blocks = [], []
    for _ in range(args.repeats):                                         # interleaved
        pixel_blocks.append(_median_seconds(train_pixel, 1))
        latent_blocks.append(_median_seconds(train_latent, 1))
    train_ms = {"pixel": 1000 * statistics.median(pixel_blocks) / BLOCK,
                "latent": 1000 * statistics.median(latent_blocks) / BLOCK}
    with torch.no_grad():
        sample_s = {"pixel": _median_seconds(lambda: flow.sample_flow(pixel, N_SAMPLES, steps=SAMPLE_STEPS),
                                             args.repeats),
                    "latent": _median_seconds(lambda: lat.sample(N_SAMPLES, steps=SAMPLE_STEPS), args.repeats)}
        faces = torch.randint(0, 256, (1000, 3, pcfg.image_size, pcfg.image_size), dtype=torch.uint8)
        encode_s = _median_seconds(lambda: latent.encode_dataset(lat.autoencoder, faces), args.repeats)
    params = {"pixel": sum(p.numel() for p in pixel.net.parameters()),
              "latent": sum(p.numel() for p in lat.flow.net.parameters())}
    result = {
        "what": "flow matching training step (batch 32) and sampling (100 images, Euler 25), chapter 09's pixel "
                "model vs chapter 11's latent model (decoding included), cpu configs, random weights",
        "train_ms_per_step": {k: round(v, 1) for k, v in train_ms.items()},
        "train_step_ratio_latent_to_pixel": round(train_ms["latent"] / train_ms["pixel"], 3),
        "sample_seconds_per_100": {k: round(v, 2) for k, v in sample_s.items()},
        "sample_ratio_latent_to_pixel": round(sample_s["latent"] / sample_s["pixel"], 3),
        "encode_seconds_per_1000_faces": round(encode_s, 2),
        "flow_parameters": params,
        "repeats": args.repeats,
    }
    write_result(OUT, result, script="bench/latent_cost.py", argv=sys.argv if argv is None else ["", *argv],
                 start=start, load_at_start=load)
    print(result)


if __name__ == "__main__":
    main()
