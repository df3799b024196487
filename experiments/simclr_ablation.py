"""Which augmentations does SimCLR need on ToyFaces? A registered ablation, probed with few labels.

Chen et al. (2020, Figure 5) found that no single augmentation gives good features and that
the composition of random cropping and colour distortion matters most. Here SimCLR is
trained with all three of :data:`course_lib.contrastive.AUGMENTATIONS` (crop, flip,
colour = jitter + grayscale), without crop, without colour, and with no augmentation at
all, every variant with the probe experiment's SimCLR config (``experiments/pretext_probes.py``)
and probed with its label-budget protocol (:func:`course_lib.probe.probe_budgets`: every
layer, C and the layer on validation, the same nested label subsets per seed for every
variant, so variants are compared *paired by seed*).

The experiment is registered before it runs (:func:`registration`, written first into the
file and kept when a run resumes):

- Primary metric: pretext_probes' primary, the mean test accuracy over the 17 attributes at
  the layer with the best validation mean, probe trained on 50 labelled faces. Reported beside
  it, outside the family: the same score over the colour attributes
  (:data:`course_lib.contrastive_report.COLOUR_ATTRIBUTES`) and over the rest, because colour
  jitter is what asks SimCLR to ignore colour.
- Primary contrasts (one Holm family, paired t-tests, alpha 0.05): "no crop" vs "all" and
  "no colour" vs "all".
- Positive control, outside the family: "no augmentation" (two identical views) vs "all",
  paired, alpha 0.05, two-sided. Two identical views make the contrastive task solvable
  without learning any invariance, the largest change of augmentations there is; a probe that
  cannot tell that network from the full-augmentation one cannot tell augmentations apart,
  and then every primary contrast reads "cannot answer".
- Seeds: :func:`power_plan` (``stats.seeds_for_power``), for a 0.02 accuracy gap, the gap
  between the supervised and the random-init backbone at 50 labels in pretext_probes.json,
  with the sd of pretext_probes.json's six SimCLR runs at 50 labels.

Reuse: pretext_probes.json holds six seeds of SimCLR "all" (the same config) probed with this
protocol. They are reused when its SimCLR config, probe protocol and render version equal this
run's, *and* re-probing one reused seed here (:func:`reuse_check`, retrained through the same
code path or loaded from the model cache) reproduces its stored scores; otherwise "all" is
trained here too.

Run (writes course_lib/results_data/simclr_ablation.json, which chapter 05 loads; resumable:
the file is rewritten after every run, finished runs are skipped when it is run again):

    .venv/bin/python experiments/simclr_ablation.py
    .venv/bin/python experiments/simclr_ablation.py tiny OUT.json   # seconds (the test)
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from course_lib import contrastive, stats
from course_lib.artifacts import write_result
from course_lib.contrastive_report import COLOUR_ATTRIBUTES, ablation_analysis
from course_lib.results import result_path
from course_lib.toyfaces import ATTRIBUTE_NAMES, RENDER_VERSION, ToyFaces

RESULTS = result_path("simclr_ablation")
PROBES = result_path("pretext_probes")
ALL, CONTROL = "all", "no augmentation"
FAMILY = ("no crop", "no colour")                 # the primary contrasts: each vs ALL
VARIANTS = (ALL, *FAMILY, CONTROL)
EFFECT = 0.02       # supervised - random init at 50 labels in pretext_probes.json: 0.021


def _probe_module():
    path = Path(__file__).with_name("pretext_probes.py")
    spec = importlib.util.spec_from_file_location("pretext_probes", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pretext_probes", mod)
    spec.loader.exec_module(mod)
    return sys.modules["pretext_probes"]


def _simclr_scores(probes: dict, budget: int) -> list[float]:
    runs = sorted((r for r in probes["runs"] if r["backbone"] == "simclr"), key=lambda r: r["seed"])
    return [r["budgets"][str(budget)]["probe"] for r in runs]


def power_plan(effect: float = EFFECT, alpha: float = 0.05, target: float = 0.8, at_least: int = 5,
               probes: dict | None = None, budget: int = 50) -> dict:
    """Seeds for the family: a paired t-test at Holm's first step (alpha / 2) detecting ``effect``
    with power ``target``. The sd of a paired difference of two SimCLR variants is taken as
    sqrt(2) times the sd over seeds of pretext_probes.json's SimCLR runs at ``budget`` labels,
    i.e. crediting the pairing with nothing (its subsets are shared, so the real sd is smaller)."""
    probes = probes if probes is not None else json.loads(PROBES.read_text())
    scores = _simclr_scores(probes, budget)
    sd = float(np.sqrt(2) * np.std(scores, ddof=1))
    m = len(FAMILY)
    seeds = stats.seeds_for_power(effect / sd, alpha=alpha / m, target=target, paired=True, at_least=at_least)
    return {"effect_accuracy": effect, "effect_source": "supervised - random init at 50 labels in "
                                                        "pretext_probes.json (0.021): the positive control's gap",
            "sd_simclr_runs": round(float(np.std(scores, ddof=1)), 5), "sd_source":
                f"pretext_probes.json: sd over its {len(scores)} SimCLR seeds at {budget} labels",
            "sd_paired_difference": round(sd, 5), "effect_sd": round(effect / sd, 4), "family_size": m,
            "alpha_per_test": alpha / m, "target_power": target, "at_least": at_least, "seeds": seeds,
            "power_at_seeds": round(stats.power(effect / sd, seeds, alpha=alpha / m, paired=True), 4),
            "call": f"stats.seeds_for_power({effect} / {sd:.5f}, alpha=0.05 / {m}, target={target}, "
                    f"paired=True, at_least={at_least})"}


@dataclass(frozen=True)
class AblationExperiment:
    variants: tuple[str, ...] = VARIANTS    # "no X" drops augmentation X; CONTROL drops all (identical views)
    seeds: tuple[int, ...] = tuple(range(power_plan()["seeds"]))   # training seeds per variant (power_plan)
    effect: float = EFFECT                  # the accuracy gap the family is powered to detect
    alpha: float = 0.05
    tiny: bool = False                      # the test's sizes (ProbeExperiment.tiny)

    def augmentations(self, variant: str) -> tuple[str, ...]:
        if variant == ALL:
            return contrastive.AUGMENTATIONS
        if variant == CONTROL:
            return ()
        dropped = variant.removeprefix("no ")
        if dropped not in contrastive.AUGMENTATIONS:
            raise ValueError(f"variant must be {ALL!r}, {CONTROL!r} or 'no X' with X in "
                             f"{contrastive.AUGMENTATIONS}, got {variant!r}")
        return tuple(a for a in contrastive.AUGMENTATIONS if a != dropped)


def registration(exp: AblationExperiment, probe_exp, plan: dict) -> dict:
    """What the experiment asks, decided before it runs (written first into the file)."""
    return {
        "primary_metric": (f"mean test accuracy over the {len(ATTRIBUTE_NAMES)} attributes, at the layer with the "
                           f"best validation mean, probe trained on {probe_exp.primary_budget} labelled faces"),
        "primary_budget": probe_exp.primary_budget,
        "primary_contrasts": [f"{v} vs {ALL}" for v in FAMILY],
        "family": {"members": list(FAMILY), "against": ALL, "correction": "Holm", "alpha": exp.alpha,
                   "test": "paired t-test over training seeds (stats.compare_all(..., paired=True))"},
        "positive_control": {"variant": CONTROL, "against": ALL, "alpha": exp.alpha,
                             "test": "paired t-test, a family of one, two-sided",
                             "why": "two identical views make the task solvable without learning any invariance: "
                                    "the largest change of augmentations there is",
                             "rule": "if it is 'no clear difference', every primary contrast reads 'cannot answer'"},
        "beside": {"colour_attributes": list(COLOUR_ATTRIBUTES),
                   "what": "the same contrasts on the colour attributes' mean and on the rest's (not in the family)"},
        "power": plan,
        "seeds_run": len(exp.seeds),
    }


def _run_record(variant, seed, backbone, splits, probe_exp, extra, seconds, pp, standardised) -> dict:
    """Probe ``backbone`` exactly as pretext_probes.run does (its ``probe_record``) and record it
    in its run format."""
    budgets, n_warnings = pp.probe_record(backbone, splits, probe_exp, seed, standardised=standardised)
    return {"variant": variant, "seed": seed, "budgets": budgets, "train_seconds": round(seconds[0], 1),
            "probe_seconds": round(time.perf_counter() - seconds[1], 1), "convergence_warnings": n_warnings,
            **extra}


def train_and_probe(exp, probe_exp, variant, seed, splits, pp) -> dict:
    t0 = time.perf_counter()
    config = replace(pp._configs(probe_exp, seed)["simclr"], augmentations=exp.augmentations(variant))
    backbone, standardised, extra = pp.train_backbone("simclr", config, splits, probe_exp, lambda *a: None)
    t1 = time.perf_counter()
    return _run_record(variant, seed, backbone, splits, probe_exp, extra, (t1 - t0, t1), pp, standardised)


def reusable(probes: dict | None, header: dict, probe_exp) -> bool:
    """pretext_probes.json was made with this run's SimCLR config, probe protocol and data."""
    if not probes or probes.get("status") != "complete" or probes["render_version"] != RENDER_VERSION:
        return False
    mine = json.loads(json.dumps(dataclasses.asdict(probe_exp)))
    same = ("profile", "budgets", "primary_budget", "probe_train", "probe_val", "probe_test", "probe")
    return (probes["configs"].get("simclr") == header["configs"][ALL]
            and all(probes["experiment"][k] == mine[k] for k in same))


def reuse_check(stored: dict, fresh: dict) -> dict:
    """Scores of one reused seed, stored vs re-probed here: equal per budget (to 1e-9) or not."""
    diffs = {n: abs(stored["budgets"][n]["probe"] - fresh["budgets"][n]["probe"]) for n in fresh["budgets"]}
    return {"seed": fresh["seed"], "stored": {n: stored["budgets"][n]["probe"] for n in diffs},
            "reprobed": {n: fresh["budgets"][n]["probe"] for n in diffs}, "max_abs_diff": max(diffs.values()),
            "identical": max(diffs.values()) <= 1e-9}


def summarise(runs: list[dict], exp: AblationExperiment, budget: int) -> dict:
    """variant -> per-seed primary metric (seed order), colour / rest means, per-layer means."""
    out = {}
    for v in exp.variants:
        rs = sorted((r for r in runs if r["variant"] == v), key=lambda r: r["seed"])
        if not rs:
            continue
        b = [r["budgets"][str(budget)] for r in rs]
        out[v] = {"seeds": [x["probe"] for x in b], "seed_ids": [r["seed"] for r in rs],
                  "probe_mean": float(np.mean([x["probe"] for x in b])),
                  "probe_std": float(np.std([x["probe"] for x in b], ddof=1)) if len(b) > 1 else 0.0,
                  "colour": [float(np.mean([x["per_attribute"][a] for a in COLOUR_ATTRIBUTES])) for x in b],
                  "rest": [float(np.mean([s for a, s in x["per_attribute"].items() if a not in COLOUR_ATTRIBUTES]))
                           for x in b],
                  "best_layers": [x["best_layer"] for x in b],
                  "by_budget_mean": {n: float(np.mean([r["budgets"][n]["probe"] for r in rs]))
                                     for n in rs[0]["budgets"]},
                  **({"pretext_acc": [r["pretext_acc"] for r in rs]} if "pretext_acc" in rs[0] else {})}
    return out


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: dataclasses.asdict(o)))


def run(exp: AblationExperiment, out: Path | None = None, *, log=print, probes_file: Path | None = None) -> dict:
    """Train and probe every variant for every seed (seed-major, so a partial file is balanced).
    With ``out``: the registration first, the file rewritten after every run, a matching
    previous file's runs kept (resume)."""
    pp = _probe_module()
    probe_exp = pp.ProbeExperiment.tiny() if exp.tiny else pp.ProbeExperiment()
    probes_file = probes_file if probes_file is not None else (None if exp.tiny else PROBES)
    probes = json.loads(probes_file.read_text()) if probes_file is not None and probes_file.is_file() else None
    plan = (power_plan(exp.effect, exp.alpha, probes=probes, budget=probe_exp.primary_budget)
            if probes and len(_simclr_scores(probes, probe_exp.primary_budget)) >= 2 else None)
    configs = {v: dataclasses.asdict(replace(pp._configs(probe_exp, exp.seeds[0])["simclr"],
                                             augmentations=exp.augmentations(v))) for v in exp.variants}
    header = _jsonable({"experiment": dataclasses.asdict(exp), "probe_experiment": dataclasses.asdict(probe_exp),
                        "render_version": RENDER_VERSION, "attributes": list(ATTRIBUTE_NAMES), "configs": configs,
                        "registration": registration(exp, probe_exp, plan)})
    previous = json.loads(out.read_text()) if out is not None and out.is_file() else {}
    same = bool(previous) and all(previous.get(k) == v for k, v in header.items())
    runs = list(previous.get("runs", [])) if same else []
    registered = previous.get("registered") if same else {
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": pp._git_commit()}
    reuse = previous.get("reuse") if same else None
    started, before = time.perf_counter(), previous.get("wall_seconds", 0.0) if same else 0.0
    size = contrastive.SimCLRConfig.for_profile(probe_exp.profile).image_size
    val = ToyFaces(split="val", size=probe_exp.probe_train + probe_exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=probe_exp.probe_test, image_size=size)
    splits = {"train": (val.images[:probe_exp.probe_train], val.labels[:probe_exp.probe_train]),
              "val": (val.images[probe_exp.probe_train:], val.labels[probe_exp.probe_train:]),
              "test": (test.images, test.labels)}

    def result(status: str) -> dict:
        body = {**header, "registered": registered, "status": status, "reuse": reuse,
                "wall_seconds": round(before + time.perf_counter() - started, 1), "runs": runs,
                "summary": summarise(runs, exp, probe_exp.primary_budget)}
        if status == "complete" and set(VARIANTS) <= set(exp.variants) and len(exp.seeds) >= 2:
            a = ablation_analysis(body)
            body["analysis"] = _jsonable(a)
            body["primary"] = {"positive_control_passes": a["positive_control"]["passes"], "answer": a["answer"]}
        return body

    def save(status: str) -> None:
        if out is not None:
            write_result(out, result(status))

    save("running")                                   # the registration, before any training
    stored = {}
    if reuse is None and reusable(probes, header, probe_exp):
        stored = {r["seed"]: r for r in probes["runs"] if r["backbone"] == "simclr" and r["seed"] in exp.seeds}
        seed = min(stored)
        fresh = train_and_probe(exp, probe_exp, ALL, seed, splits, pp)
        reuse = {"source": "pretext_probes.json", **reuse_check(stored[seed], fresh)}
        log(f"reuse check, seed {seed}: max |stored - reprobed| = {reuse['max_abs_diff']:.2e}")
        if not reuse["identical"]:
            stored = {}
        save("running")
    elif reuse and reuse.get("identical"):
        stored = {r["seed"]: r for r in probes["runs"] if r["backbone"] == "simclr" and r["seed"] in exp.seeds}
    for seed in exp.seeds:
        for variant in exp.variants:
            if any(r["variant"] == variant and r["seed"] == seed for r in runs):
                continue
            if variant == ALL and seed in stored:
                r = stored[seed]
                rec = {"variant": ALL, "seed": seed, "from": "pretext_probes.json",
                       **{k: r[k] for k in ("budgets", "train_seconds", "probe_seconds", "pretext_acc") if k in r}}
            else:
                rec = train_and_probe(exp, probe_exp, variant, seed, splits, pp)
            runs.append(rec)
            log(f"seed {seed} {variant:16s} " + ", ".join(f"{n}: {b['probe']:.4f} ({b['best_layer']})"
                                                          for n, b in rec["budgets"].items())
                + f" train {rec['train_seconds']:.0f} s, probe {rec['probe_seconds']:.0f} s"
                + (" (reused)" if "from" in rec else ""))
            save("running")
    save("complete")
    return result("complete")


def main(argv: list[str]) -> None:
    torch.set_num_threads(int(os.environ.get("PROBE_THREADS", "1")))
    tiny = len(argv) > 1 and argv[1] == "tiny"
    exp = AblationExperiment(tiny=True, seeds=(0, 1, 2)) if tiny else AblationExperiment()
    out = Path(argv[2]) if len(argv) > 2 else RESULTS
    start, load = time.perf_counter(), os.getloadavg()[0]
    result = run(exp, out, log=lambda *a: print(*a, flush=True))
    write_result(out, result, script="experiments/simclr_ablation.py", argv=argv, start=start, load_at_start=load)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
