"""Linear probes on frozen backbones: which pretext task teaches the most about faces?

Every model here holds the same :class:`course_lib.backbone.ConvBackbone`. Each backbone
is trained with several seeds (so the spread is over *training*, not over probe subsets),
frozen, and probed with the course's one protocol, :mod:`course_lib.probe`: every layer
(h1, h2, h3), a scaler fitted on the probe's training faces, C chosen per attribute on a
validation split, the test split scored once. A backbone's score for one seed is the test
mean accuracy (over the 17 ToyFaces attributes) of the layer with the best *validation*
mean.

Backbones: random init (the floor); supervised on the attributes (the ceiling; its
validation accuracy is logged during training to show where it plateaus); jigsaw
(Noroozi & Favaro 2016); rotation (Gidaris et al. 2018); flip prediction (the article's
section 2.2); SimCLR (Chen et al. 2020, :mod:`course_lib.contrastive`); the inpainting
encoder (chapter 04); the VAE encoder (chapter 02).
Scores are reported raw and normalised, (acc - random) / (ceiling - random).

Run (writes course_lib/results_data/pretext_probes.json, which chapter 05 loads):

    .venv/bin/python experiments/pretext_probes.py                 # the committed run
    .venv/bin/python experiments/pretext_probes.py tiny OUT.json   # seconds (the test)
    .venv/bin/python experiments/pretext_probes.py reuse           # train only what changed

``reuse`` keeps the committed file's runs of every backbone whose config, seeds, probe
sizes and ToyFaces render version are unchanged, and trains and probes only the others
(the file lists them under ``"reused"``, with the machine that measured them).

``tests/test_pretext_probes.py`` fails when ``ProbeExperiment()`` or ToyFaces' render
version no longer match the committed file: rerun the script then.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import contrastive, inpainting, pretext, vae
from course_lib.checkpoint import atomic_write
from course_lib.probe import ProbeConfig, best_layer, normalised, probe_backbone
from course_lib.results import machine, result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES, RENDER_VERSION, ToyFaces

RESULTS = result_path("pretext_probes")  # package data: chapter 05 loads it with load_result
BACKBONES = ("random init", "supervised (ceiling)", "jigsaw", "rotation", "flip", "simclr",
             "inpainting encoder", "VAE encoder")
KEY = {"random init": None, "supervised (ceiling)": "supervised", "jigsaw": "jigsaw",
       "rotation": "rotation", "flip": "flip", "simclr": "simclr", "inpainting encoder": "inpainting",
       "VAE encoder": "vae"}  # backbone -> its entry in the configs


@dataclass(frozen=True)
class ProbeExperiment:
    profile: str = "cpu"              # image sizes and data of the course profile (32 px faces)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds of every backbone
    probe_train: int = 2000           # ToyFaces val images [0, probe_train): the probes' training split
    probe_val: int = 500              # the next probe_val val images: choose C and the layer
    probe_test: int = 1000            # ToyFaces test images: scored once
    # optimizer steps per backbone (the pretext tasks at their chapters' regime or beyond; the
    # ceiling long enough for its validation accuracy to level off: see its curve in the file)
    steps: tuple[tuple[str, int], ...] = (("supervised", 18000), ("jigsaw", 800), ("rotation", 800),
                                          ("flip", 400), ("inpainting", 800), ("vae", 1200),
                                          ("simclr", 1600))
    supervised_checks: int = 9        # the ceiling's validation accuracy is measured this often
    probe: ProbeConfig = ProbeConfig(Cs=(0.01, 0.03, 0.1, 0.3, 1.0))

    @classmethod
    def tiny(cls) -> ProbeExperiment:
        return cls(profile="smoke", seeds=(0, 1), probe_train=40, probe_val=20, probe_test=40,
                   steps=tuple((n, 3) for n, _ in cls().steps), supervised_checks=2)


def _configs(exp: ProbeExperiment, seed: int) -> dict:
    steps = dict(exp.steps)
    rc = pretext.RotationConfig.for_profile(exp.profile)
    return {
        "supervised": replace(rc, steps=steps["supervised"], seed=seed),
        "jigsaw": replace(pretext.JigsawConfig.for_profile(exp.profile), steps=steps["jigsaw"], seed=seed),
        "rotation": replace(rc, steps=steps["rotation"], seed=seed),
        "flip": replace(rc, steps=steps["flip"], seed=seed),
        "simclr": replace(contrastive.SimCLRConfig.for_profile(exp.profile), steps=steps["simclr"], seed=seed),
        "inpainting": replace(inpainting.InpaintConfig.for_profile(exp.profile), steps=steps["inpainting"],
                              seed=seed),
        "vae": replace(vae.VAEConfig.for_profile(exp.profile), steps=steps["vae"], seed=seed),
    }


@torch.no_grad()
def _head_accuracy(model: pretext.BackboneClassifier, images, labels) -> float:
    """Mean attribute accuracy of the supervised network's own heads."""
    model.eval()
    logits = torch.split(model(images.float() / 255), model.num_classes, dim=1)
    acc = np.mean([(z.argmax(1) == labels[:, i]).float().mean().item() for i, z in enumerate(logits)])
    model.train()
    return float(acc)


def train_backbone(name: str, config, splits, exp: ProbeExperiment, log):
    """(backbone, standardised inputs?, extra record fields) for one seed's ``config``."""
    if name == "random init":
        torch.manual_seed(config)
        return pretext.ConvBackbone(), False, {}
    if name == "supervised (ceiling)":
        model = pretext.BackboneClassifier(num_classes=tuple(a.num_classes for a in ATTRIBUTES))
        curve = []
        images, labels = splits["val"]
        def check(step, history):
            curve.append((step, round(_head_accuracy(model, images, labels), 4)))
        every = max(config.steps // exp.supervised_checks, 1)
        pretext.train_supervised(model, config, progress=False, callbacks=[(every, check)])
        log(f"    supervised validation accuracy by step: {curve}")
        return model.backbone, False, {"val_curve": curve}
    if name == "jigsaw":
        t = pretext.pretrained_jigsaw(config, progress=False)
        return t.model.backbone, config.normalise, {"pretext_acc": round(pretext.jigsaw_accuracy(
            t.model, ToyFaces(split="test", size=500, image_size=config.image_size).images, config), 4)}
    if name == "rotation":
        t = pretext.pretrained_rotation(config, progress=False)
        return t.model.backbone, False, {"pretext_acc": round(pretext.rotation_accuracy(
            t.model, splits["test"][0][:500]), 4)}
    if name == "flip":
        t = pretext.pretrained_flip(config, progress=False)
        return t.model.backbone, False, {"pretext_acc": round(pretext.flip_accuracy(
            t.model, splits["test"][0][:500]), 4)}
    if name == "simclr":
        t = contrastive.pretrained_simclr(config, progress=False)
        tail = t.history.records[-max(len(t.history.records) // 10, 1):]   # the last 10% of steps
        # its pretext accuracy: the positive found among the batch's 2B - 1 other views (training batches)
        return t.model.backbone, False, {"pretext_acc": round(float(np.mean([r["acc"] for r in tail])), 4)}
    if name == "inpainting encoder":
        return inpainting.pretrained_inpainter(config, progress=False).model.backbone, False, {}
    if name == "VAE encoder":
        return vae.pretrained_vae(config, progress=False).model.encoder.backbone, False, {}
    raise ValueError(f"unknown backbone {name!r}")


def _jsonable(x):
    return json.loads(json.dumps(x))


def reusable(previous: dict | None, exp: ProbeExperiment) -> dict[str, list[dict]]:
    """backbone -> its runs in ``previous`` (a committed result) that this experiment would
    reproduce: same render version, seeds, probe sizes and settings, and the same config of
    that backbone for every seed (checked on seed 0's config, the others differ only by seed)."""
    if not previous or previous.get("render_version") != RENDER_VERSION:
        return {}
    now, then = _jsonable(dataclasses.asdict(exp)), _jsonable(previous["experiment"])
    if any(now[k] != then.get(k) for k in ("profile", "seeds", "probe_train", "probe_val", "probe_test", "probe")):
        return {}
    configs = _jsonable({k: dataclasses.asdict(v) for k, v in _configs(exp, exp.seeds[0]).items()})
    out = {}
    for name in BACKBONES:
        key = KEY[name]
        runs = [r for r in previous["runs"] if r["backbone"] == name]
        same = key is None or _jsonable(previous["configs"].get(key)) == configs[key]
        if name == "supervised (ceiling)":
            same = same and dict(then["steps"]).get("supervised") == dict(now["steps"])["supervised"] \
                and then.get("supervised_checks") == now["supervised_checks"]
        if same and sorted(r["seed"] for r in runs) == sorted(exp.seeds):
            out[name] = runs
    return out


def run(exp: ProbeExperiment, *, log=None, previous: dict | None = None) -> dict:
    """Train and probe every backbone for every seed; with ``previous`` (a committed result),
    keep its runs where :func:`reusable` says they are this experiment's."""
    log = log or (lambda *a: print(*a, flush=True))
    kept = reusable(previous, exp)
    size = pretext.RotationConfig.for_profile(exp.profile).image_size
    val = ToyFaces(split="val", size=exp.probe_train + exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=exp.probe_test, image_size=size)
    splits = {"train": (val.images[:exp.probe_train], val.labels[:exp.probe_train]),
              "val": (val.images[exp.probe_train:], val.labels[exp.probe_train:]),
              "test": (test.images, test.labels)}
    runs, n_warnings = [], 0
    for seed in exp.seeds:
        configs = _configs(exp, seed)
        for name in BACKBONES:
            if name in kept:
                runs.append(next(r for r in kept[name] if r["seed"] == seed))
                log(f"seed {seed} {name:22s} probe {runs[-1]['probe']:.4f} (reused)")
                continue
            t0 = time.perf_counter()
            config = seed if KEY[name] is None else configs[KEY[name]]
            backbone, standardised, extra = train_backbone(name, config, splits, exp, log)
            t1 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scores = probe_backbone(backbone, splits, names=ATTRIBUTE_NAMES, config=exp.probe,
                                        standardised=standardised)
            n_warnings += sum("max_iter" in str(w.message) for w in caught)
            for w in caught:
                log(f"    warning: {w.message}")
            layer = best_layer(scores)
            runs.append({"backbone": name, "seed": seed, "best_layer": layer, "probe": scores[layer].mean,
                         "per_layer": {layer: {"test": s.mean, "val": s.val_mean} for layer, s in scores.items()},
                         "per_attribute": scores[layer].per_attribute, "C": scores[layer].C,
                         "train_seconds": round(t1 - t0, 1), "probe_seconds": round(time.perf_counter() - t1, 1),
                         **extra})
            log(f"seed {seed} {name:22s} probe {scores[layer].mean:.4f} ({layer}; "
                + ", ".join(f"{layer} {s.mean:.3f}" for layer, s in scores.items())
                + f") {extra.get('pretext_acc', '')} train {t1 - t0:.0f} s, probe {time.perf_counter() - t1:.0f} s")
    return {"experiment": dataclasses.asdict(exp), "render_version": RENDER_VERSION,
            "attributes": list(ATTRIBUTE_NAMES),
            "configs": {k: dataclasses.asdict(v) for k, v in _configs(exp, exp.seeds[0]).items()},
            "chance": {n: float(np.bincount(test.labels[:, a].numpy()).max() / len(test))
                       for a, n in enumerate(ATTRIBUTE_NAMES)},
            "convergence_warnings": n_warnings + (previous or {}).get("convergence_warnings", 0) * bool(kept),
            "reused": sorted(kept), "runs": runs, "summary": summarise(runs)}


def summarise(runs: list[dict]) -> dict:
    """backbone -> probe_mean, probe_std (ddof=1, over training seeds), seeds, normalised_mean,
    per-layer means and the per-attribute accuracies averaged over seeds."""
    by = {}
    for r in runs:
        by.setdefault(r["backbone"], []).append(r)
    floor = float(np.mean([r["probe"] for r in by["random init"]]))
    ceiling = float(np.mean([r["probe"] for r in by["supervised (ceiling)"]]))
    summary = {}
    for name, rs in by.items():
        seeds = [r["probe"] for r in rs]
        summary[name] = {
            "probe_mean": float(np.mean(seeds)),
            "probe_std": float(np.std(seeds, ddof=1)) if len(seeds) > 1 else 0.0,
            "seeds": seeds,
            "normalised_mean": float(normalised(np.mean(seeds), floor, ceiling)) if ceiling > floor else None,
            "best_layers": [r["best_layer"] for r in rs],
            "per_layer_mean": {layer: float(np.mean([r["per_layer"][layer]["test"] for r in rs]))
                               for layer in rs[0]["per_layer"]},
            "per_attribute": {a: float(np.mean([r["per_attribute"][a] for r in rs])) for a in rs[0]["per_attribute"]},
            **({"pretext_acc": [r["pretext_acc"] for r in rs]} if "pretext_acc" in rs[0] else {}),
        }
    return summary


def main(argv: list[str]) -> None:
    threads = int(os.environ.get("PROBE_THREADS", "1"))
    torch.set_num_threads(threads)
    tiny = len(argv) > 1 and argv[1] == "tiny"
    reuse = len(argv) > 1 and argv[1] == "reuse"
    exp = ProbeExperiment.tiny() if tiny else ProbeExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start, load = time.perf_counter(), os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    previous = json.loads(RESULTS.read_text()) if reuse and RESULTS.is_file() else None
    result = run(exp, previous=previous)
    if previous is not None and result["reused"]:
        result["reused_from"] = {k: previous.get(k) for k in ("command", "machine", "wall_seconds")}
        # the previous file's reused-from record travels on, so the oldest measurement stays named
        if "reused_from" in previous:
            result["reused_from"]["reused_from"] = previous["reused_from"]
    result["command"] = "python " + " ".join(["experiments/pretext_probes.py", *argv[1:]])
    result["machine"] = machine(load)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main(sys.argv)
