"""Linear probes with few labels: does a pretext task teach a backbone what faces are?

Self-supervised pretraining earns its keep when labels are scarce (Chen et al. 2020 probe
with 1% and 10% of ImageNet's labels), so every backbone here is probed with a *label
budget* of 20, 50 and 200 labelled faces, with the course's one protocol
(:func:`course_lib.probe.probe_budgets`: every layer, a scaler fitted on the n faces, C and
the layer chosen on a 500-face validation split, the test split scored once). At seed s
every backbone is probed on the same n faces and trained from the same seed, so backbones
are compared *paired by seed*.

The experiment is registered before it runs: :func:`registration` (the primary metric, the
primary contrasts and their Holm family, the controls outside it, alpha, and the power
computation that chose the number of seeds) is the first thing written to the results
file, before any training, and is kept unchanged when an interrupted run resumes.

- Primary metric: mean test accuracy over the 17 ToyFaces attributes, at the layer with
  the best validation mean, with a budget of 50 labelled faces.
- Primary contrasts (one Holm family, paired t-tests, alpha 0.05): jigsaw (Noroozi & Favaro
  2016), rotation (Gidaris et al. 2018) and SimCLR (Chen et al. 2020), each against random
  init: chapter 05's three pretext tasks.
- Controls, outside the family: random init (the negative control, the floor) and a network
  trained on the attributes themselves (the positive control, the ceiling). The positive
  control is tested alone (supervised vs random init, paired, alpha 0.05); if it is not
  clearly better, the file answers "cannot answer" for the family instead of reporting nulls.
- Scores are reported raw and normalised, (acc - random) / (supervised - random), per seed
  (the same seed's floor and ceiling), with 95% confidence intervals over seeds.

Cut to fit 55 minutes at one thread (the previous run, 8 backbones x 3 seeds at 2000
labels, took about 1000 s for 3 seeds): the flip backbone (its pretext accuracy stayed at
chance, 0.50-0.54: nothing to ask of it), the inpainting and VAE encoders (chapters 04 and
02's, not this chapter's pretext tasks), the all-2000-labels budget (its probe took 13-132 s per
backbone and seed in the previous run, as long as training a pretext backbone), and the supervised
network's steps, 18000 -> 6000 (the previous run's validation curve reached 0.782-0.792 at
6000 steps in all three seeds, within 0.01 of its 18000-step value). The cuts were estimated
from the previous run's times, measured under heavier load; this run took 34 minutes, so a
rerun registered for a 0.02 gain (``EFFECT = 0.02``: 10 seeds) would take about 55
minutes at this pace.

Run (writes course_lib/results_data/pretext_probes.json, which chapter 05 loads):

    .venv/bin/python experiments/pretext_probes.py                 # the committed run
    .venv/bin/python experiments/pretext_probes.py tiny OUT.json   # seconds (the test)

The file is rewritten after every (seed, backbone): rerunning the same command resumes an
interrupted run (its ``"status"`` is ``"running"`` until the last run is in). Trained
pretext models are also cached by ``pretrained_*`` under ``.cache/course_lib``.

``tests/test_pretext_probes.py`` fails when ``ProbeExperiment()``, the registration or
ToyFaces' render version no longer match the committed file: rerun the script then.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import contrastive, pretext, stats
from course_lib.artifacts import machine, write_result
from course_lib.probe import ProbeConfig, best_layer, layer_features, probe_budgets
from course_lib.results import result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES, RENDER_VERSION, ToyFaces

RESULTS = result_path("pretext_probes")  # package data: chapter 05 loads it with load_result
NEGATIVE, POSITIVE = "random init", "supervised"        # the controls
FAMILY = ("jigsaw", "rotation", "simclr")                # the primary contrasts: each vs NEGATIVE
BACKBONES = (NEGATIVE, POSITIVE, *FAMILY)
CANNOT_ANSWER = "cannot answer"
# what the previous run had and this one leaves out, to fit 55 minutes at one thread (the module docstring;
# estimated from the previous run's times, measured under heavier load: this run took 34 minutes)
LEFT_OUT = {
    "flip": "its pretext accuracy stayed at chance in the previous run (0.50-0.54): nothing to ask of it",
    "inpainting encoder, VAE encoder": "chapters 04 and 02's encoders, not this chapter's pretext tasks",
    "budget of all 2000 labels": "the previous run's probe at 2000 labels took 13-132 s per backbone and seed "
                                 "(its probe_seconds), as long as training a pretext backbone; the small budgets "
                                 "cost less (probe_seconds here)",
    "supervised steps 18000 -> 6000": "the previous run's validation curve reached 0.782-0.792 at 6000 steps "
                                      "in all three seeds, within 0.01 of its 18000-step value",
}

# The power computation's input, measured before this experiment: the committed run of
# commit 7fd7f92 (3 training seeds, all 2000 labels), standard deviation over seeds of the
# paired difference (backbone - random init, same seed) of the probe accuracy.
PILOT_SD = {"jigsaw": 0.01318, "rotation": 0.01066, "simclr": 0.02044}
PILOT_SOURCE = ("course_lib/results_data/pretext_probes.json at commit 7fd7f92: 3 seeds, 2000 labels, "
                "sd over seeds of (backbone - random init) per seed")


EFFECT = 0.03   # the accuracy gain the family is powered to detect (0.02 would need power_plan(0.02)["seeds"])


def power_plan(effect: float = EFFECT, alpha: float = 0.05, target: float = 0.8, at_least: int = 5) -> dict:
    """How many seeds the family needs: a paired t-test at Holm's first step (alpha / m)
    detecting ``effect`` accuracy with power ``target``, the sd of a paired difference taken
    as the root mean square of the pilot's (:data:`PILOT_SD`)."""
    m = len(FAMILY)
    sd = float(np.sqrt(np.mean([PILOT_SD[b] ** 2 for b in FAMILY])))
    seeds = stats.seeds_for_power(effect / sd, alpha=alpha / m, target=target, paired=True, at_least=at_least)
    return {"effect_accuracy": effect, "sd_paired_difference": round(sd, 5), "sd_source": PILOT_SOURCE,
            "sd_per_contrast": PILOT_SD, "effect_sd": round(effect / sd, 4), "family_size": m,
            "alpha_per_test": alpha / m, "target_power": target, "at_least": at_least, "seeds": seeds,
            "power_at_seeds": round(stats.power(effect / sd, seeds, alpha=alpha / m, paired=True), 4),
            "power_for_0.02_at_seeds": round(stats.power(0.02 / sd, seeds, alpha=alpha / m, paired=True), 4),
            "seeds_for_0.02": stats.seeds_for_power(0.02 / sd, alpha=alpha / m, target=target, paired=True,
                                                    at_least=at_least),
            "detectable_accuracy_at_seeds": round(stats.detectable_effect(seeds, alpha=alpha / m, target=target,
                                                                          paired=True) * sd, 4),
            "call": f"stats.seeds_for_power({effect} / {sd:.5f}, alpha=0.05 / {m}, target={target}, paired=True, "
                    f"at_least={at_least})"}


PLANNED_SEEDS = power_plan()["seeds"]


@dataclass(frozen=True)
class ProbeExperiment:
    profile: str = "cpu"              # image sizes and data of the course profile (32 px faces)
    seeds: tuple[int, ...] = tuple(range(PLANNED_SEEDS))  # training seeds of every backbone (power_plan)
    budgets: tuple[int, ...] = (20, 50, 200)  # labelled faces the probe is trained on
    primary_budget: int = 50
    probe_train: int = 2000           # ToyFaces val images [0, probe_train): the pool the budgets are drawn from
    probe_val: int = 500              # the next probe_val val images: choose C and the layer
    probe_test: int = 1000            # ToyFaces test images: scored once
    # optimizer steps per backbone (the pretext tasks at twice their chapter's steps or beyond;
    # the ceiling where its validation curve has levelled: see "val_curve" in the file)
    steps: tuple[tuple[str, int], ...] = (("supervised", 6000), ("jigsaw", 800), ("rotation", 800),
                                          ("simclr", 1600))
    supervised_checks: int = 6        # the ceiling's validation accuracy is measured this often
    probe: ProbeConfig = ProbeConfig(Cs=(0.01, 0.03, 0.1, 0.3, 1.0))
    effect: float = EFFECT            # the accuracy gain the family is powered to detect (seeds above)
    alpha: float = 0.05

    @classmethod
    def tiny(cls) -> ProbeExperiment:
        return cls(profile="smoke", seeds=(0, 1, 2), budgets=(6, 12, 30), primary_budget=12, probe_train=40,
                   probe_val=20, probe_test=40, steps=tuple((n, 3) for n, _ in cls().steps), supervised_checks=2)


def _configs(exp: ProbeExperiment, seed: int) -> dict:
    steps = dict(exp.steps)
    rc = pretext.RotationConfig.for_profile(exp.profile)
    return {
        "supervised": replace(rc, steps=steps["supervised"], seed=seed),
        "jigsaw": replace(pretext.JigsawConfig.for_profile(exp.profile), steps=steps["jigsaw"], seed=seed),
        "rotation": replace(rc, steps=steps["rotation"], seed=seed),
        "simclr": replace(contrastive.SimCLRConfig.for_profile(exp.profile), steps=steps["simclr"], seed=seed),
    }


def registration(exp: ProbeExperiment) -> dict:
    """What the experiment asks, decided before it runs (written first into the file)."""
    plan = power_plan(exp.effect, exp.alpha)
    return {
        "primary_metric": (f"mean test accuracy over the {len(ATTRIBUTE_NAMES)} attributes, at the layer with the "
                           f"best validation mean, probe trained on {exp.primary_budget} labelled faces"),
        "primary_budget": exp.primary_budget,
        "primary_contrasts": [f"{b} vs {NEGATIVE}" for b in FAMILY],
        "family": {"members": list(FAMILY), "against": NEGATIVE, "correction": "Holm", "alpha": exp.alpha,
                   "test": "paired t-test over training seeds (stats.compare_all(..., paired=True))"},
        "positive_control": {"contrast": f"{POSITIVE} vs {NEGATIVE}", "budget": exp.primary_budget,
                             "alpha": exp.alpha, "test": "paired t-test, a family of one",
                             "rule": "if it is not 'better', every primary contrast reads 'cannot answer'"},
        "negative_control": NEGATIVE,
        "secondary": ("the same family and control at every other budget, each budget its own Holm family; "
                      "normalised scores (acc - random) / (supervised - random) per seed, with 95% intervals"),
        "power": plan,
        "seeds_run": len(exp.seeds),
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
    if name == NEGATIVE:
        torch.manual_seed(config)
        return pretext.ConvBackbone(), False, {}
    if name == POSITIVE:
        torch.manual_seed(config.seed)        # its initial weights from the seed, as random init's
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
    if name == "simclr":
        t = contrastive.pretrained_simclr(config, progress=False)
        tail = t.history.records[-max(len(t.history.records) // 10, 1):]   # the last 10% of steps
        # its pretext accuracy: the positive found among the batch's 2B - 1 other views (training batches)
        return t.model.backbone, False, {"pretext_acc": round(float(np.mean([r["acc"] for r in tail])), 4)}
    raise ValueError(f"unknown backbone {name!r}")


def _jsonable(x):
    return json.loads(json.dumps(x))


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _header(exp: ProbeExperiment) -> dict:
    """The parts of the file that say which experiment it is (a resumed run must match them)."""
    return _jsonable({"experiment": dataclasses.asdict(exp), "render_version": RENDER_VERSION,
                      "attributes": list(ATTRIBUTE_NAMES), "backbones": list(BACKBONES),
                      "configs": {k: dataclasses.asdict(v) for k, v in _configs(exp, exp.seeds[0]).items()},
                      "registration": registration(exp)})


def run(exp: ProbeExperiment, out: Path | None = None, *, log=None) -> dict:
    """Train and probe every backbone for every seed. With ``out``: the registration is
    written there before any training, the file is rewritten after every (seed, backbone),
    and the runs of a previous, matching file at ``out`` are kept (resume)."""
    log = log or (lambda *a: print(*a, flush=True))
    header = _header(exp)
    previous = json.loads(out.read_text()) if out is not None and out.is_file() else {}
    same = bool(previous) and all(previous.get(k) == v for k, v in header.items())
    runs = list(previous.get("runs", [])) if same else []
    registered = previous.get("registered") if same else {
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit()}
    started, before = time.perf_counter(), previous.get("wall_seconds", 0.0) if same else 0.0
    size = pretext.RotationConfig.for_profile(exp.profile).image_size
    val = ToyFaces(split="val", size=exp.probe_train + exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=exp.probe_test, image_size=size)
    splits = {"train": (val.images[:exp.probe_train], val.labels[:exp.probe_train]),
              "val": (val.images[exp.probe_train:], val.labels[exp.probe_train:]),
              "test": (test.images, test.labels)}
    chance = {n: float(np.bincount(test.labels[:, a].numpy()).max() / len(test))
              for a, n in enumerate(ATTRIBUTE_NAMES)}

    def result(status: str) -> dict:
        body = {**header, "registered": registered, "status": status, "left_out": LEFT_OUT, "chance": chance,
                "wall_seconds": round(before + time.perf_counter() - started, 1),  # over every session of the run
                "convergence_warnings": sum(r.get("convergence_warnings", 0) for r in runs), "runs": runs}
        if status == "complete":
            body.update(analyse(runs, exp))
        return body

    def save(status: str) -> None:
        if out is not None:
            write_result(out, result(status))

    save("running")                                   # the registration, before any training
    for seed in exp.seeds:
        configs = _configs(exp, seed)
        for name in BACKBONES:
            if any(r["backbone"] == name and r["seed"] == seed for r in runs):
                continue
            t0 = time.perf_counter()
            config = seed if name == NEGATIVE else configs[name]
            backbone, standardised, extra = train_backbone(name, config, splits, exp, log)
            t1 = time.perf_counter()
            budgets, n_warnings = probe_record(backbone, splits, exp, seed, standardised=standardised, log=log)
            runs.append({"backbone": name, "seed": seed, "budgets": budgets, "train_seconds": round(t1 - t0, 1),
                         "probe_seconds": round(time.perf_counter() - t1, 1), "convergence_warnings": n_warnings,
                         **extra})
            log(f"seed {seed} {name:12s} " + ", ".join(f"{n}: {b['probe']:.4f} ({b['best_layer']})"
                                                       for n, b in budgets.items())
                + f" {extra.get('pretext_acc', '')} train {t1 - t0:.0f} s, probe {time.perf_counter() - t1:.0f} s")
            save("running")
    save("complete")
    return result("complete")


def probe_record(backbone, splits: dict, exp: ProbeExperiment, seed: int, *, standardised: bool,
                 log=None) -> tuple[dict, int]:
    """Probe ``backbone`` at every budget of ``exp`` (``course_lib.probe.probe_budgets``, seed
    ``seed``'s nested subsets) and return ``({budget: its run record}, convergence warnings)``,
    the record this file keeps per run (best layer by validation, its test mean, every layer,
    per-attribute accuracies, C). ``log``: where to print the solver's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = {s: layer_features(backbone, splits[s][0], layers=exp.probe.layers,
                                   max_dim=exp.probe.max_dim, standardised=standardised)
                 for s in ("train", "val", "test")}
        scores = probe_budgets(backbone, splits, exp.budgets, seed, names=ATTRIBUTE_NAMES,
                               config=exp.probe, features=feats)
    for w in caught if log else ():
        log(f"    warning: {w.message}")
    budgets = {}
    for n, by_layer in scores.items():
        layer = best_layer(by_layer)
        budgets[str(n)] = {"best_layer": layer, "probe": by_layer[layer].mean,
                           "per_layer": {k: {"test": s.mean, "val": s.val_mean} for k, s in by_layer.items()},
                           "per_attribute": by_layer[layer].per_attribute, "C": by_layer[layer].C}
    return budgets, sum("max_iter" in str(w.message) for w in caught)


def _family(pairs: dict, alpha: float) -> dict:
    """stats.compare_all(paired=True) over ``pairs``; a pair whose per-seed differences are
    all equal has no spread to test against and is reported untested (not a verdict)."""
    testable = {k: v for k, v in pairs.items() if np.ptp(np.subtract(*map(np.asarray, v))) > 0}
    done = stats.compare_all(testable, alpha=alpha, paired=True) if testable else {}
    out = {}
    for k, (a, b) in pairs.items():
        if k in done:
            out[k] = dataclasses.asdict(done[k])
        else:
            d = float(np.mean(a) - np.mean(b))
            out[k] = {"diff": d, "low": d, "high": d, "p": None, "p_adjusted": None, "n_a": len(a), "n_b": len(b),
                      "verdict": "not tested: the paired differences are constant"}
    return out


def analyse(runs: list[dict], exp: ProbeExperiment) -> dict:
    """Per budget: every backbone's raw and normalised scores with 95% intervals over seeds,
    the positive control and the Holm family's verdicts; ``summary``: the primary budget's rows."""
    seeds = list(exp.seeds)
    by = {(r["backbone"], r["seed"]): r for r in runs}
    by_budget, verdicts = {}, {}
    for n in map(str, exp.budgets):
        acc = {b: np.array([by[b, s]["budgets"][n]["probe"] for s in seeds]) for b in BACKBONES}
        floor, ceiling = acc[NEGATIVE], acc[POSITIVE]
        gap = ceiling - floor
        rows = {}
        for b in BACKBONES:
            rs = [by[b, s] for s in seeds]
            norm = (acc[b] - floor) / gap if np.all(gap > 0) else None
            rows[b] = {
                "probe_mean": float(acc[b].mean()), "probe_std": float(acc[b].std(ddof=1)),
                "ci": list(stats.mean_ci(acc[b])), "seeds": acc[b].tolist(),
                "normalised_mean": None if norm is None else float(norm.mean()),
                "normalised_ci": None if norm is None or np.ptp(norm) == 0 else list(stats.mean_ci(norm)),
                "normalised_seeds": None if norm is None else norm.tolist(),
                "best_layers": [r["budgets"][n]["best_layer"] for r in rs],
                "per_layer_mean": {k: float(np.mean([r["budgets"][n]["per_layer"][k]["test"] for r in rs]))
                                   for k in rs[0]["budgets"][n]["per_layer"]},
                "per_attribute": {a: float(np.mean([r["budgets"][n]["per_attribute"][a] for r in rs]))
                                  for a in ATTRIBUTE_NAMES},
                **({"pretext_acc": [r["pretext_acc"] for r in rs]} if "pretext_acc" in rs[0] else {}),
            }
        by_budget[n] = rows
        control = _family({POSITIVE: (ceiling, floor)}, exp.alpha)[POSITIVE]
        passes = control["verdict"] == stats.BETTER
        family = _family({b: (acc[b], floor) for b in FAMILY}, exp.alpha)
        diffs = {b: acc[b] - floor for b in FAMILY}
        sd = float(np.sqrt(np.mean([d.std(ddof=1) ** 2 for d in diffs.values()])))
        verdicts[n] = {
            "positive_control": {**control, "passes": passes},
            "family": family,
            "answer": {b: (family[b]["verdict"] if passes else CANNOT_ANSWER) for b in FAMILY},
            "sd_paired_difference_measured": sd,
            "detectable_accuracy_measured_sd": (
                float(stats.detectable_effect(len(seeds), alpha=exp.alpha / len(FAMILY), paired=True) * sd)
                if len(seeds) >= 2 else None),
        }
    primary = str(exp.primary_budget)
    return {"by_budget": by_budget, "verdicts": verdicts, "summary": by_budget[primary],
            "primary": {"budget": exp.primary_budget, "positive_control_passes":
                        verdicts[primary]["positive_control"]["passes"], "answer": verdicts[primary]["answer"]}}


def main(argv: list[str]) -> None:
    threads = int(os.environ.get("PROBE_THREADS", "1"))
    torch.set_num_threads(threads)
    tiny = len(argv) > 1 and argv[1] == "tiny"
    exp = ProbeExperiment.tiny() if tiny else ProbeExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start, load = time.perf_counter(), os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = run(exp, out)
    result["command"] = "python " + " ".join(["experiments/pretext_probes.py", *argv[1:]])
    result["machine"] = machine(load)
    write_result(out, result)
    print(f"wrote {out}: {result['wall_seconds']} s over every session, {time.perf_counter() - start:.0f} s this one")


if __name__ == "__main__":
    main(sys.argv)
