"""Which augmentations does SimCLR need on ToyFaces? Drop one at a time and probe the backbone.

Chen et al. (2020, Figure 5) found that no single augmentation gives good features and that
the composition of random cropping and colour distortion matters most. Here: SimCLR with all
three of :data:`course_lib.contrastive.AUGMENTATIONS` (crop, flip, colour = jitter + grayscale),
then without each one, every variant trained with the probe experiment's SimCLR config and
probed with its protocol (``experiments/pretext_probes.py``: every layer, C on validation,
the same faces). The "all" rows are the committed ``pretext_probes.json`` runs (same config);
the variants use fewer training seeds than the probe table (see ``seeds``), which the chapter says.

Run (writes course_lib/results_data/simclr_ablation.json, which chapter 05 loads; resumable:
finished runs are kept in the file and skipped when it is run again):

    .venv/bin/python experiments/simclr_ablation.py
    .venv/bin/python experiments/simclr_ablation.py tiny OUT.json   # seconds (the test)
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import contrastive
from course_lib.artifacts import write_result
from course_lib.probe import best_layer, probe_backbone
from course_lib.results import result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, RENDER_VERSION, ToyFaces

RESULTS = result_path("simclr_ablation")


def _probe_module():
    path = Path(__file__).with_name("pretext_probes.py")
    spec = importlib.util.spec_from_file_location("pretext_probes", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pretext_probes", mod)
    spec.loader.exec_module(mod)
    return sys.modules["pretext_probes"]


@dataclass(frozen=True)
class AblationExperiment:
    variants: tuple[str, ...] = ("all", "no crop", "no colour")  # "no X" drops augmentation X (flip: see the chapter)
    seeds: tuple[int, ...] = (0, 1)   # training seeds per variant (the probe table has 3: time)
    tiny: bool = False                # the test's sizes (ProbeExperiment.tiny)

    def augmentations(self, variant: str) -> tuple[str, ...]:
        if variant == "all":
            return contrastive.AUGMENTATIONS
        dropped = variant.removeprefix("no ")
        if dropped not in contrastive.AUGMENTATIONS:
            raise ValueError(f"variant must be 'all' or 'no X' with X in {contrastive.AUGMENTATIONS}, got {variant!r}")
        return tuple(a for a in contrastive.AUGMENTATIONS if a != dropped)


def run(exp: AblationExperiment, out: Path, *, log=print) -> dict:
    pp = _probe_module()
    probe_exp = pp.ProbeExperiment.tiny() if exp.tiny else pp.ProbeExperiment()
    size = contrastive.SimCLRConfig.for_profile(probe_exp.profile).image_size
    val = ToyFaces(split="val", size=probe_exp.probe_train + probe_exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=probe_exp.probe_test, image_size=size)
    splits = {"train": (val.images[:probe_exp.probe_train], val.labels[:probe_exp.probe_train]),
              "val": (val.images[probe_exp.probe_train:], val.labels[probe_exp.probe_train:]),
              "test": (test.images, test.labels)}
    base = lambda seed: pp._configs(probe_exp, seed)["simclr"]   # noqa: E731
    configs = {v: dataclasses.asdict(replace(base(exp.seeds[0]), augmentations=exp.augmentations(v)))
               for v in exp.variants}
    header = {"experiment": dataclasses.asdict(exp), "probe_experiment": dataclasses.asdict(probe_exp),
              "render_version": RENDER_VERSION, "configs": json.loads(json.dumps(configs))}
    previous = json.loads(out.read_text()) if out.is_file() else {}
    same = previous and all(previous.get(k) == json.loads(json.dumps(v)) for k, v in header.items())
    runs = list(previous.get("runs", [])) if same else []
    committed = {}
    if not exp.tiny and RESULTS.parent.joinpath("pretext_probes.json").is_file():
        probes = json.loads(RESULTS.parent.joinpath("pretext_probes.json").read_text())
        if probes["configs"].get("simclr") == header["configs"]["all"] and probes["render_version"] == RENDER_VERSION:
            # only runs probed with all probe_train labels, as this ablation probes (the label-budget
            # runs of pretext_probes.json hold per-budget scores instead: nothing to reuse then)
            committed = {r["seed"]: r for r in probes["runs"] if r["backbone"] == "simclr" and "probe" in r}
    for variant in exp.variants:
        for seed in exp.seeds:
            if any(r["variant"] == variant and r["seed"] == seed for r in runs):
                continue
            if variant == "all" and seed in committed:
                r = committed[seed]
                runs.append({"variant": variant, "seed": seed, "probe": r["probe"], "best_layer": r["best_layer"],
                             "per_layer": r["per_layer"], "per_attribute": r["per_attribute"],
                             "from": "pretext_probes.json"})
            else:
                t0 = time.perf_counter()
                config = replace(base(seed), augmentations=exp.augmentations(variant))
                trained = contrastive.pretrained_simclr(config, progress=False)
                t1 = time.perf_counter()
                scores = probe_backbone(trained.model.backbone, splits, names=ATTRIBUTE_NAMES, config=probe_exp.probe)
                layer = best_layer(scores)
                runs.append({"variant": variant, "seed": seed, "probe": scores[layer].mean, "best_layer": layer,
                             "per_layer": {layer: {"test": s.mean, "val": s.val_mean} for layer, s in scores.items()},
                             "per_attribute": scores[layer].per_attribute,
                             "train_seconds": round(t1 - t0, 1), "probe_seconds": round(time.perf_counter() - t1, 1)})
            log(f"{variant:10s} seed {seed}: probe {runs[-1]['probe']:.4f} ({runs[-1]['best_layer']})")
            result = {**header, "runs": runs, "summary": summarise(runs)}
            write_result(out, result)        # after every run: resumable
    return {**header, "runs": runs, "summary": summarise(runs)}


def summarise(runs: list[dict]) -> dict:
    """variant -> probe_mean, probe_std (ddof=1), seeds, per-layer and per-attribute means."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["variant"], []).append(r)
    return {v: {"probe_mean": float(np.mean([r["probe"] for r in rs])),
                "probe_std": float(np.std([r["probe"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0,
                "seeds": [r["probe"] for r in rs],
                "per_layer_mean": {layer: float(np.mean([r["per_layer"][layer]["test"] for r in rs]))
                                   for layer in rs[0]["per_layer"]},
                "per_attribute": {a: float(np.mean([r["per_attribute"][a] for r in rs]))
                                  for a in rs[0]["per_attribute"]}}
            for v, rs in by.items()}


def main(argv: list[str]) -> None:
    torch.set_num_threads(int(os.environ.get("PROBE_THREADS", "1")))
    tiny = len(argv) > 1 and argv[1] == "tiny"
    exp = AblationExperiment(tiny=True, seeds=(0,)) if tiny else AblationExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start, load = time.perf_counter(), os.getloadavg()[0]
    result = run(exp, out)
    write_result(out, result, script="experiments/simclr_ablation.py", argv=argv, start=start, load_at_start=load)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
