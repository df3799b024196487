"""SS-GAN vs the DCGAN it extends: samples and discriminator features, same budget, 3 seeds.

Chen et al. (CVPR 2019) add a rotation-prediction loss to the discriminator (and, weighted by
alpha, to the generator): :mod:`course_lib.ssgan`. Here both GANs are chapter 03's DCGAN at
``GANConfig.for_profile`` (the same architecture, data and optimizer) for ``steps``
discriminator steps each (SS-GAN's discriminator has one extra linear head), trained with
``seeds`` (the seed sets the initial weights, data order and noise). For every trained pair:

- **samples**: ``n`` generated faces against ``n`` held-out real faces (ToyFaces test split,
  data seed 0), scored with the sample-quality table's metrics (``bench/sample_quality.py``):
  the domain Frechet distance and fidelity / diversity (density / coverage) on the attribute
  network's features (:mod:`course_lib.metrics`);
- **discriminator features**: a linear probe of the frozen discriminator's three stages
  (:class:`course_lib.ssgan.DiscriminatorFeatures`) with the course's protocol
  (:mod:`course_lib.probe`, the sizes and C grid of ``experiments/pretext_probes.py``), on the
  17 ToyFaces attributes; a randomly initialised discriminator (same seeds) is the floor;
- SS-GAN's rotation accuracy on held-out real faces (chance 0.25).

Run (writes course_lib/results_data/ssgan.json, which chapter 06 loads; resumable: every
finished unit is written to the file at once and skipped when the script runs again):

    .venv/bin/python experiments/ssgan.py
    .venv/bin/python experiments/ssgan.py tiny OUT.json     # seconds (the test)
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import gan, ssgan
from course_lib.artifacts import write_result
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.metrics import frechet_label, sample_quality
from course_lib.probe import ProbeConfig, best_layer, probe_backbone
from course_lib.results import result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, RENDER_VERSION, ToyFaces

RESULTS = result_path("ssgan")
VARIANTS = ("dcgan", "ssgan", "random discriminator")
METRICS = ("frechet", "fidelity", "diversity")


@dataclass(frozen=True)
class SSGANExperiment:
    profile: str = "cpu"                # chapter 03's GAN for this profile (architecture, data, optimizer)
    steps: int | None = 500             # discriminator steps of both GANs (None: the profile's); 500 was
                                        # chapter 03's cpu budget when this ran (it is 3000 now: 6x longer)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds of both GANs
    n: int = 1000                       # generated and real faces per sample-quality score
    k: int = 5                          # neighbours of density / coverage (Naeem et al. 2020)
    sample_seed: int = 0                # the noise of the scored samples
    probe_train: int = 2000             # as experiments/pretext_probes.py
    probe_val: int = 500
    probe_test: int = 1000
    probe: ProbeConfig = ProbeConfig(Cs=(0.01, 0.03, 0.1, 0.3, 1.0))
    alpha: float = 0.2                  # Chen et al. 2019's weights
    beta: float = 1.0

    @classmethod
    def tiny(cls) -> SSGANExperiment:
        return cls(profile="smoke", steps=None, seeds=(0, 1), n=40, probe_train=40, probe_val=20, probe_test=40,
                   probe=ProbeConfig(Cs=(0.1,), max_iter=50))

    def gan_config(self, seed: int) -> gan.GANConfig:
        cfg = gan.GANConfig.for_profile(self.profile)
        if cfg.image_size < 32:  # the discriminator needs 3 stages for the probe (tiny: 32 px, narrow)
            cfg = replace(cfg, image_size=32)
        return replace(cfg, seed=seed, **({} if self.steps is None else {"steps": self.steps}))

    def ssgan_config(self, seed: int) -> ssgan.SSGANConfig:
        return ssgan.SSGANConfig(gan=self.gan_config(seed), alpha=self.alpha, beta=self.beta)


def _splits(exp: SSGANExperiment, size: int) -> dict:
    val = ToyFaces(split="val", size=exp.probe_train + exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=exp.probe_test, image_size=size)
    return {"train": (val.images[:exp.probe_train], val.labels[:exp.probe_train]),
            "val": (val.images[exp.probe_train:], val.labels[exp.probe_train:]),
            "test": (test.images, test.labels)}


def unit(exp: SSGANExperiment, variant: str, seed: int, *, real, net, splits) -> dict:
    """One trained (or random) model's record: train seconds, sample metrics, probe."""
    t0 = time.perf_counter()
    record: dict = {"variant": variant, "seed": seed}
    if variant == "random discriminator":
        generator, discriminator = gan.build(exp.gan_config(seed))
        generator = None
    elif variant == "dcgan":
        trained = gan.pretrained_gan(exp.gan_config(seed), progress=False)
        generator, discriminator = trained.model["generator"], trained.model["discriminator"]
    else:
        trained = ssgan.pretrained_ssgan(exp.ssgan_config(seed), progress=False)
        generator, discriminator = trained.model["generator"], trained.model["discriminator"]
        record["rotation_acc"] = round(ssgan.rotation_accuracy(discriminator.cpu(), splits["test"][0][:500]), 4)
    if generator is not None:
        record["train_seconds_cached"] = round(trained.seconds, 1)   # as measured when it was trained
        record["from_cache"] = trained.from_cache
        fake = gan.generate(generator.cpu(), exp.n, seed=exp.sample_seed)
        record.update(sample_quality(real, fake, n=exp.n, net=net, k=exp.k,
                                     scores=("frechet", "fidelity", "diversity")))
    t1 = time.perf_counter()
    scores = probe_backbone(ssgan.DiscriminatorFeatures(discriminator.cpu()), splits, names=ATTRIBUTE_NAMES,
                            config=exp.probe)
    layer = best_layer(scores)
    record.update({"probe": scores[layer].mean, "best_layer": layer,
                   "per_layer": {layer: {"test": s.mean, "val": s.val_mean} for layer, s in scores.items()},
                   "per_attribute": scores[layer].per_attribute,
                   "seconds": round(t1 - t0, 1), "probe_seconds": round(time.perf_counter() - t1, 1)})
    return record


def summarise(runs: list[dict]) -> dict:
    """variant -> {metric: {"mean", "std" (ddof=1), "values"}} over training seeds."""
    out: dict = {}
    for variant in VARIANTS:
        rs = [r for r in runs if r["variant"] == variant]
        if not rs:
            continue
        row = {}
        for m in (*METRICS, "probe", "rotation_acc"):
            vals = [float(r[m]) for r in rs if m in r]
            if vals:
                row[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                          "values": vals}
        row["seeds"] = [r["seed"] for r in rs]
        row["per_layer_mean"] = {layer: float(np.mean([r["per_layer"][layer]["test"] for r in rs]))
                                 for layer in rs[0]["per_layer"]}
        row["best_layers"] = [r["best_layer"] for r in rs]
        out[variant] = row
    return out


def run(exp: SSGANExperiment, out: Path, *, log=print) -> dict:
    size = exp.gan_config(exp.seeds[0]).image_size
    header = {"name": "ssgan", "experiment": dataclasses.asdict(exp), "render_version": RENDER_VERSION,
              "configs": {"dcgan": dataclasses.asdict(exp.gan_config(exp.seeds[0])),
                          "ssgan": dataclasses.asdict(exp.ssgan_config(exp.seeds[0]))},
              "frechet_label": frechet_label(exp.n, size),
              "real_set": f"ToyFaces split='test', size={exp.n}, seed=0, render version {RENDER_VERSION}"}
    header = json.loads(json.dumps(header))
    previous = json.loads(out.read_text()) if out.is_file() else {}
    same = previous and all(previous.get(k) == v for k, v in header.items())
    runs = list(previous.get("runs", [])) if same else []
    fn_cfg = FeatureNetConfig.for_profile(exp.profile, image_size=size)
    net = load_feature_net(size, config=fn_cfg)
    real = ToyFaces(split="test", size=exp.n, image_size=size, seed=0).images
    splits = _splits(exp, size)
    for variant in VARIANTS:          # the GANs first, the random floor last
        for seed in exp.seeds:
            if any(r["variant"] == variant and r["seed"] == seed for r in runs):
                continue
            runs.append(unit(exp, variant, seed, real=real, net=net, splits=splits))
            r = runs[-1]
            log(f"seed {seed} {variant:22s} "
                + " ".join(f"{m} {r[m]:.3f}" for m in (*METRICS, "rotation_acc") if m in r)
                + f" probe {r['probe']:.4f} ({r['best_layer']}) {r['seconds']:.0f} s")
            write_result(out, {**header, "feature_net": dataclasses.asdict(fn_cfg), "runs": runs,
                               "summary": summarise(runs)})
    return {**header, "feature_net": dataclasses.asdict(fn_cfg), "runs": runs, "summary": summarise(runs)}


def main(argv: list[str]) -> None:
    torch.set_num_threads(int(os.environ.get("SSGAN_THREADS", "1")))
    tiny = len(argv) > 1 and argv[1] == "tiny"
    exp = SSGANExperiment.tiny() if tiny else SSGANExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start, load = time.perf_counter(), os.getloadavg()[0]
    result = run(exp, out)
    write_result(out, result, script="experiments/ssgan.py", argv=argv, start=start, load_at_start=load)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
