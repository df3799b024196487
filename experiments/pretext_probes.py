"""Linear probes on frozen backbone features: which pretext task teaches the most?

Every model here holds the same :class:`course_lib.backbone.ConvBackbone`. We freeze it,
extract features of ToyFaces images (``course_lib.pretext.probe_features``) and fit one
logistic regression per attribute (``course_lib.metrics.linear_probe``); the score is the
mean attribute accuracy on held-out faces, with its spread over probe seeds (each seed fits
on a different 80% subset of the probe training set; for random init the seed also changes
the initialisation).

Rows: random init; inpainting (chapter 04); jigsaw with 10 / 100 / 1000 max-Hamming
permutations and 100 random ones (Noroozi & Favaro 2016's permutation-count table, small);
jigsaw without gap/jitter/normalisation (the shortcut ablation); rotation (Gidaris et al.
2018); supervised on the attributes (upper bound). The chosen-profile models are cached by
``course_lib.checkpoint.load_or_train``, so chapters 04-06 reuse them.

Run (writes course_lib/results_data/pretext_probes.json, which chapter 05 loads):

    .venv/bin/python experiments/pretext_probes.py          # cpu profile, ~15 min on 2 cores
    .venv/bin/python experiments/pretext_probes.py tiny OUT.json   # seconds (the test)
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import inpainting, pretext
from course_lib.metrics import linear_probe
from course_lib.results import result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, ToyFaces

RESULTS = result_path("pretext_probes")  # package data: chapter 05 loads it with load_result


@dataclass(frozen=True)
class ProbeExperiment:
    profile: str = "cpu"            # sizes of the pretext trainings (course profiles)
    probe_train: int = 2000         # ToyFaces val images the probes are fitted on
    probe_test: int = 1000          # ToyFaces test images the probes are scored on
    seeds: tuple[int, ...] = (0, 1, 2)  # probe seeds (subsets; random init also re-seeded)
    jigsaw_sets: tuple[tuple[int, str], ...] = ((10, "max"), (100, "max"), (1000, "max"),
                                                (100, "random"), (100, "min"))
    shortcut_ablation: bool = True  # also train jigsaw 100 without gap, jitter, normalisation
    jigsaw_eval: int = 1000         # held-out puzzles for pretext accuracy
    steps_scale: float = 1.0        # multiply every profile's step count (tiny runs)

    @classmethod
    def tiny(cls) -> "ProbeExperiment":
        return cls(profile="smoke", probe_train=120, probe_test=60, seeds=(0, 1),
                   jigsaw_sets=((10, "max"), (100, "random")), jigsaw_eval=64)


def _scaled(config, scale: float):
    return replace(config, steps=max(1, int(round(config.steps * scale))))


def run(exp: ProbeExperiment, *, progress: bool | str = False, log=None) -> dict:
    log = log or (lambda *a: print(*a, flush=True))
    torch.set_num_threads(min(2, torch.get_num_threads()))
    size = pretext.RotationConfig.for_profile(exp.profile).image_size
    probe_tr = ToyFaces(split="val", size=exp.probe_train, image_size=size)
    probe_te = ToyFaces(split="test", size=exp.probe_test, image_size=size)
    rows: list[dict] = []
    chance = {}

    def add(name: str, backbone_for_seed, *, standardised=False, extra=None, seconds=0.0,
            reseed=False):
        # reseed: a new backbone per probe seed (random init); else one backbone, seeds = subsets
        results = []
        for seeds in ([(s,) for s in exp.seeds] if reseed else [exp.seeds]):
            bb = backbone_for_seed(seeds[0])
            ftr = pretext.probe_features(bb, probe_tr.images, standardised=standardised)
            fte = pretext.probe_features(bb, probe_te.images, standardised=standardised)
            results.append(linear_probe(ftr, probe_tr.labels, fte, probe_te.labels, seeds=seeds,
                                        names=ATTRIBUTE_NAMES))
        chance.update(results[0].chance)
        accs = [r.mean for r in results] if reseed else None
        mean = float(np.mean(accs)) if reseed else results[0].mean
        std = float(np.std(accs)) if reseed else results[0].std
        per_attr = {n: float(np.mean([r.per_attribute[n][0] for r in results])) for n in ATTRIBUTE_NAMES}
        row = {"model": name, "probe_acc_mean": mean, "probe_acc_std": std,
               "per_attribute": per_attr, "train_seconds": round(seconds, 1), **(extra or {})}
        rows.append(row)
        log(f"{name:32s} probe {row['probe_acc_mean']:.4f} +- {row['probe_acc_std']:.4f} {extra or ''}")

    def random_backbone(seed):
        torch.manual_seed(seed)
        return pretext.ConvBackbone()

    add("random init", random_backbone, reseed=True)

    cfg = _scaled(inpainting.InpaintConfig.for_profile(exp.profile), exp.steps_scale)
    t = inpainting.pretrained_inpainter(cfg, progress=progress)
    add("inpainting (ch04)", lambda s: t.model.backbone, seconds=t.seconds,
        extra={"final_hole_mse": t.history[-1]["loss"] if t.history else None})

    base = _scaled(pretext.JigsawConfig.for_profile(exp.profile), exp.steps_scale)
    test_big = ToyFaces(split="test", size=exp.jigsaw_eval, image_size=base.image_size).images
    variants = [(f"jigsaw {n} {m}-Hamming", replace(base, n_permutations=n, method=m))
                for n, m in exp.jigsaw_sets]
    if exp.shortcut_ablation:
        cell = base.image_size // base.grid
        variants.append(("jigsaw 100 max, no gap/norm",
                         replace(base, tile_size=cell, jitter=False, normalise=False)))
    from course_lib.tiles import permutation_stats
    for name, jc in variants:
        t = pretext.pretrained_jigsaw(jc, progress=progress)
        stats = permutation_stats(jc.permutations())
        extra = {"n_permutations": jc.n_permutations, "method": jc.method,
                 "mean_hamming": round(stats["mean"], 3), "min_hamming": stats["min"],
                 "gap_and_norm": jc.normalise,
                 "pretext_acc": jigsaw_accuracy_heldout(t.model, test_big, jc)}
        add(name, lambda s, m=t.model: m.backbone, standardised=jc.normalise, extra=extra,
            seconds=t.seconds)

    rc = _scaled(pretext.RotationConfig.for_profile(exp.profile), exp.steps_scale)
    t = pretext.pretrained_rotation(rc, progress=progress)
    add("rotation", lambda s: t.model.backbone, seconds=t.seconds,
        extra={"pretext_acc": pretext.rotation_accuracy(t.model, probe_te.images[:500])})
    t = pretext.pretrained_supervised(rc, progress=progress)
    add("supervised (upper bound)", lambda s: t.model.backbone, seconds=t.seconds)

    return {
        "experiment": dataclasses.asdict(exp),
        "attributes": list(ATTRIBUTE_NAMES),
        "majority_baseline": float(np.mean(list(chance.values()))),
        "chance": chance,
        "rows": rows,
    }


def jigsaw_accuracy_heldout(model, images, config) -> float:
    return round(pretext.jigsaw_accuracy(model, images, config), 4)


def main(argv: list[str]) -> None:
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # lbfgs at max_iter: fine for a probe
    tiny = len(argv) > 1 and argv[1] == "tiny"
    exp = ProbeExperiment.tiny() if tiny else ProbeExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start = time.perf_counter()
    result = run(exp, progress=False)
    result["command"] = "python " + " ".join(["experiments/pretext_probes.py", *argv[1:]])
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                         "torch": torch.__version__, "cpus": os.cpu_count(),
                         "threads": torch.get_num_threads(),
                         "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main(sys.argv)
