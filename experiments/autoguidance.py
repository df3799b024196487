"""Autoguidance (Karras et al. 2024) of chapter 09's reference flow model: its scale, chosen on
validation faces.

The good model is the committed reference (``course_lib.flow.reference_flow``, 12000 steps);
the weak one is the same configuration stopped at the live budget: chapter 09's live model
(``flow.pretrained_flow(FlowConfig.for_profile("cpu"))``, 2000 steps, training seed 0, trained
once and cached). The sampler is the reference's best per network call, Heun with 6 steps;
autoguidance calls both models at every evaluation, so a guided sample costs 24 network calls
(12 of each) where the plain one costs 12.

For each scale in :data:`SCALES` (1 = the reference alone): ``N_EVAL`` samples (sample seed
``SAMPLE_SEED``) scored against as many ToyFaces *validation* faces (the domain Frechet
distance, KID, fidelity, diversity and the grain). The chosen scale is the one with the lowest
Frechet distance there. The test faces stay unseen: ``bench/sample_quality.py`` scores the
chosen scale on them (row ``flow_reference_autoguided``), as it scores every other generator.

    python experiments/autoguidance.py        # writes course_lib/results_data/autoguidance.json

Chapter 09 reads the file. A few minutes on one core once the live model is cached.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import torch

from course_lib import flow, guidance, metrics
from course_lib.artifacts import write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

OUT = result_path("autoguidance")
SCALES = (1.0, 1.25, 1.5, 1.75, 2.0)
SAMPLER = ("heun", 6)
N_EVAL, SAMPLE_SEED = 500, 1       # flow_reference.py's n and sample seed


def weak_config() -> flow.FlowConfig:
    """The weak model's configuration: chapter 09's live model (the reference's, stopped early)."""
    return flow.FlowConfig.for_profile("cpu")


def choose_scale(rows: list[dict]) -> float:
    """The scale whose samples have the lowest Frechet distance to the validation faces."""
    return min(rows, key=lambda r: r["frechet"])["scale"]


def run() -> dict:
    start, load = time.perf_counter(), os.getloadavg()[0]
    good = flow.reference_flow()
    weak = flow.pretrained_flow(weak_config(), progress="line").model.cpu().eval()
    net = load_feature_net(good.image_size)
    real = ToyFaces(split="val", size=N_EVAL, image_size=good.image_size).images
    real_feats = net.features(real)
    method, steps = SAMPLER
    rows = []
    for scale in SCALES:
        images = flow.sample_flow(good, N_EVAL, steps=steps, method=method, seed=SAMPLE_SEED,
                                  velocity=guidance.autoguided_velocity(good, weak, scale))
        rows.append({"scale": scale, **metrics.sample_scores(real, images, net=net, real_feats=real_feats),
                     "grain": round(float(metrics.grain(images)), 4)})
        print(rows[-1], flush=True)
    result = {
        "metric": metrics.frechet_label(N_EVAL, good.image_size) + ", against ToyFaces validation faces",
        "good": "course_lib/results_data/flow_reference.pt (chapter 09's reference)",
        "weak": {"config": dataclasses.asdict(weak_config()), "what": "chapter 09's live model (cached)"},
        "sampler": list(SAMPLER), "n": N_EVAL, "sample_seed": SAMPLE_SEED, "real_set": "ToyFaces split='val'",
        "data_version": RENDER_VERSION, "rows": rows, "chosen_scale": choose_scale(rows),
    }
    write_result(OUT, result, script="experiments/autoguidance.py", argv=sys.argv, start=start,
                 load_at_start=load)
    print(f"wrote {OUT}: chosen scale {result['chosen_scale']}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run()


if __name__ == "__main__":
    main()
