"""Why chapter 08's noise-predicting model could not beat the VAE: where sampling starts.

Scores one snapshot of a reference run (``experiments/ddpm_reference.py``) sampled by DDIM
(25 steps, n = 500, seed 1) from several starts, against 500 test faces with the chapter's
domain Frechet distance, and prints how far the attribute network's class frequencies of the
samples are from the real ones (total variation) for the global attributes. Two extra rows:

- an *oracle* start: ``x_t`` at ``sampling_start`` drawn from ``q(x_t | x_0)`` of 500
  validation faces instead of pure noise (what the model would see if the start were right);
- for the noise-predicting run, starts above ``sampling_start``, where its ``x_0`` estimate
  divides by ``sqrt(alpha_bar_t)``.

    python experiments/ddpm_start_diagnosis.py --run-dir .cache/ddpm_eps --prediction eps --step 12000
    python experiments/ddpm_start_diagnosis.py --run-dir .cache/ddpm_reference --step 12000

One thread; about 25 s per row on an idle core. Prints only (the chapter measures the
committed reference's start itself).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from course_lib import metrics
from course_lib.artifacts import read_snapshot, snapshot_path
from course_lib.diffusion import PREDICTIONS, reference_config, sample_ddim, sampling_start, start_for, to_model_range
from course_lib.feature_net import load_feature_net
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES, ToyFaces

GLOBAL = ("skin", "background", "head_scale", "hat")
N = 500


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--step", type=int, required=True)
    parser.add_argument("--prediction", choices=PREDICTIONS, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = reference_config(args.prediction)
    model = config.build()
    snap = read_snapshot(snapshot_path(args.run_dir, args.step, prefix="ema_step"))
    model.ema.load_state_dict(snap["ema"])
    model.eval()
    net = load_feature_net(config.image_size)
    real = ToyFaces(split="test", size=N, image_size=config.image_size).images
    real_feats, real_attrs = net.features(real), net.predict_attributes(real)

    def report(name: str, images: torch.Tensor) -> None:
        attrs = net.predict_attributes(images)
        tv = {}
        for j, a in enumerate(ATTRIBUTES):
            if ATTRIBUTE_NAMES[j] in GLOBAL:
                diff = (torch.bincount(attrs[:, j], minlength=a.num_classes)
                        - torch.bincount(real_attrs[:, j], minlength=a.num_classes))
                tv[ATTRIBUTE_NAMES[j]] = round(0.5 * diff.abs().sum().item() / N, 2)
        frechet = metrics.sample_quality(real, images, n=N, net=net, real_feats=real_feats, scores=("frechet",))
        print(f"{name:<52} Frechet {frechet['frechet']:8.1f}  "
              f"total variation of {tv}", flush=True)

    start = sampling_start(model.schedule)
    print(f"{config.prediction}-predicting model, step {args.step}; library default start {start_for(model)}")
    for t0 in sorted({start, model.schedule.T - 1, *((950, 980) if config.prediction == "eps" else ())}):
        report(f"pure noise at t = {t0}", sample_ddim(model, N, steps=25, start=t0, seed=1))
    g = torch.Generator().manual_seed(1)
    noise = torch.randn((N, 3, config.image_size, config.image_size), generator=g)
    a = float(model.schedule.alpha_bar[start])
    val = to_model_range(ToyFaces(split="val", size=N, image_size=config.image_size).images)
    x_start = math.sqrt(a) * val + math.sqrt(1 - a) * noise
    report(f"oracle: x_t at t = {start} from q(x_t | val faces)",
           sample_ddim(model, N, steps=25, start=start, x_start=x_start))


if __name__ == "__main__":
    main()
