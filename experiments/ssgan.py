"""SS-GAN vs the DCGAN it extends, at chapter 03's budget: a registered, powered comparison.

Chen et al. (CVPR 2019) add a rotation-prediction loss to the discriminator (and, weighted by
alpha, to the generator): :mod:`course_lib.ssgan`. Here both GANs are chapter 03's DCGAN at
``GANConfig.for_profile`` (the same architecture, data, optimizer and number of discriminator
steps; SS-GAN's discriminator has one extra linear head), trained with ``seeds`` (the seed sets
the initial weights, data order and noise, so the two GANs of seed s are paired). For every
trained GAN:

- **samples**: ``n`` generated faces against ``n`` held-out real faces (ToyFaces test split,
  data seed 0), scored with the sample-quality table's metrics (``bench/sample_quality.py``):
  the domain Frechet distance and fidelity / diversity on the attribute network's features;
- **discriminator features**: the course's label-budget probe (:mod:`course_lib.probe`, as
  ``experiments/pretext_probes.py`` runs it: every stage, C on a validation split) of the
  frozen discriminator's three stages, with 50 and with 2000 labelled faces; a randomly
  initialised discriminator (same seeds) beside them;
- SS-GAN's rotation accuracy on held-out real faces (chance 0.25).

What it asks was written into the results file before the first GAN trained
(:func:`registration`): two questions, one Holm family, each with its own positive control
outside the family, and the seed count from a power computation. A question is answered only
when its own control passes:

- samples (Frechet), controlled by the DCGAN against *itself half-way* (its snapshot at half
  the steps, from the same run): a measurement that cannot see what the second half of
  training buys cannot see a smaller change;
- discriminator features (probe, 50 labels), controlled by the trained DCGAN discriminator
  against the random one.

An earlier, unregistered run (3 seeds at 500 steps, a sixth of chapter 03's budget, with the
probe on every label) is replaced by this one.

    python experiments/ssgan.py                      # every unit (resumable; workers share a queue)
    python experiments/ssgan.py --analyse            # the verdicts into the file
    python experiments/ssgan.py --tiny OUT.json      # seconds (the test)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from course_lib import gan, ssgan, stats  # noqa: E402
from course_lib.artifacts import claim, read_snapshot, snapshot_callback, snapshot_path, update_result  # noqa: E402
from course_lib.faceattributes import ATTRIBUTE_NAMES  # noqa: E402
from course_lib.facedraw import RENDER_VERSION  # noqa: E402
from course_lib.feature_net import FeatureNetConfig, load_feature_net  # noqa: E402
from course_lib.metrics import frechet_label, sample_quality  # noqa: E402
from course_lib.probe import ProbeConfig, best_layer, probe_budgets  # noqa: E402
from course_lib.results import result_path  # noqa: E402
from course_lib.toyfaces import ToyFaces  # noqa: E402

RESULTS = result_path("ssgan")
VARIANTS = ("dcgan", "ssgan", "random discriminator")   # trained units; "dcgan@half" comes with "dcgan"
SAMPLE_SCORES = ("frechet", "fidelity", "diversity")
HIGHER_IS_BETTER = {"frechet": False, "fidelity": True, "diversity": True, "probe": True, "probe_all": True}
ALPHA = 0.05
UNTESTED = "untested: no spread"   # every seed's paired difference is the same
EFFECT_SD = 2.5      # the smallest effect worth detecting, in sd of the paired per-seed difference
QUESTIONS = {        # question -> (a, b, score): "is a better than b?", one Holm family
    "samples: SS-GAN vs DCGAN (Frechet)": ("ssgan", "dcgan", "frechet"),
    "discriminator features: SS-GAN vs DCGAN (probe, 50 labels)": ("ssgan", "dcgan", "probe"),
}
CONTROLS = {         # question -> its positive control (name, (a, b, score)), each at alpha
    "samples: SS-GAN vs DCGAN (Frechet)":
        ("positive: DCGAN, all its steps vs its half-way snapshot (Frechet)", ("dcgan", "dcgan@half", "frechet")),
    "discriminator features: SS-GAN vs DCGAN (probe, 50 labels)":
        ("positive: DCGAN's discriminator vs a random one (probe, 50 labels)",
         ("dcgan", "random discriminator", "probe")),
}
SECONDARY = {        # intervals to read, no verdict of their own
    "SS-GAN vs DCGAN, fidelity": ("ssgan", "dcgan", "fidelity"),
    "SS-GAN vs DCGAN, diversity": ("ssgan", "dcgan", "diversity"),
    "SS-GAN vs DCGAN, probe with 2000 labels": ("ssgan", "dcgan", "probe_all"),
    "SS-GAN's discriminator vs a random one (probe, 50 labels)": ("ssgan", "random discriminator", "probe"),
}


@dataclass(frozen=True)
class SSGANExperiment:
    profile: str = "cpu"                # chapter 03's GAN for this profile (architecture, data, optimizer)
    steps: int | None = None            # discriminator steps of both GANs (None: the profile's, chapter 03's)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # training seeds (>= the power computation's count)
    n: int = 1000                       # generated and real faces per sample-quality score
    k: int = 5                          # neighbours of density / coverage (Naeem et al. 2020)
    sample_seed: int = 0                # the noise of the scored samples
    budgets: tuple[int, ...] = (50, 2000)  # labelled faces of the probe (50: the primary, as chapter 05)
    probe_train: int = 2000             # as experiments/pretext_probes.py
    probe_val: int = 500
    probe_test: int = 1000
    probe: ProbeConfig = ProbeConfig(Cs=(0.01, 0.03, 0.1, 0.3, 1.0))
    alpha: float = 0.2                  # Chen et al. 2019's weights
    beta: float = 1.0

    @classmethod
    def tiny(cls) -> SSGANExperiment:
        return cls(profile="smoke", steps=None, seeds=(0, 1), n=40, budgets=(10, 40), probe_train=40, probe_val=20,
                   probe_test=40, probe=ProbeConfig(Cs=(0.1,), max_iter=50))

    def gan_config(self, seed: int) -> gan.GANConfig:
        cfg = gan.GANConfig.for_profile(self.profile)
        if cfg.image_size < 32:  # the discriminator needs 3 stages for the probe (tiny: 32 px, narrow)
            cfg = replace(cfg, image_size=32)
        return replace(cfg, seed=seed, **({} if self.steps is None else {"steps": self.steps}))

    def ssgan_config(self, seed: int) -> ssgan.SSGANConfig:
        return ssgan.SSGANConfig(gan=self.gan_config(seed), alpha=self.alpha, beta=self.beta)


def registration(exp: SSGANExperiment) -> dict:
    m = len(QUESTIONS)
    need = stats.seeds_for_power(EFFECT_SD, alpha=ALPHA / m, paired=True, at_least=5)
    steps = exp.gan_config(exp.seeds[0]).steps
    return {
        "primary_metrics": {"samples": f"domain Frechet distance, n = {exp.n} samples (sample seed "
                                       f"{exp.sample_seed}) vs as many test faces; lower is better",
                            "features": f"label-budget probe of the frozen discriminator, {exp.budgets[0]} labelled "
                                        "faces, mean test accuracy over the 17 attributes at the stage with the best "
                                        "validation mean; higher is better"},
        "test": "paired t-test over training seeds (the GANs of seed s share their initial generator, data order "
                "and noise), Holm over the questions; each control and secondary contrast at alpha",
        "alpha": ALPHA, "questions": QUESTIONS, "controls": CONTROLS, "secondary": SECONDARY,
        "rule": "a question is answered only if its own positive control is 'better'; else 'cannot answer'",
        "half_way_step": steps // 2,
        "power": {"effect_sd": EFFECT_SD, "alpha_per_test": ALPHA / m, "seeds_needed": need,
                  "power_at_seeds": round(stats.power(EFFECT_SD, len(exp.seeds), alpha=ALPHA / m, paired=True), 3)},
        "seeds": list(exp.seeds),
    }


def _splits(exp: SSGANExperiment, size: int) -> dict:
    val = ToyFaces(split="val", size=exp.probe_train + exp.probe_val, image_size=size)
    test = ToyFaces(split="test", size=exp.probe_test, image_size=size)
    return {"train": (val.images[:exp.probe_train], val.labels[:exp.probe_train]),
            "val": (val.images[exp.probe_train:], val.labels[exp.probe_train:]),
            "test": (test.images, test.labels)}


def _probe(exp: SSGANExperiment, discriminator, seed: int, splits) -> dict:
    scores = probe_budgets(ssgan.DiscriminatorFeatures(discriminator.cpu()), splits, exp.budgets, seed,
                           names=ATTRIBUTE_NAMES, config=exp.probe)
    out = {}
    for key, n in (("probe", exp.budgets[0]), ("probe_all", exp.budgets[-1])):  # the primary budget, all labels
        layer = best_layer(scores[n])
        out.update({key: scores[n][layer].mean, f"{key}_layer": layer, f"{key}_labels": n})
    return out


def _samples(exp: SSGANExperiment, generator, *, real, net) -> dict:
    fake = gan.generate(generator.cpu().eval(), exp.n, seed=exp.sample_seed)
    return sample_quality(real, fake, n=exp.n, net=net, k=exp.k, scores=SAMPLE_SCORES)


def unit(exp: SSGANExperiment, variant: str, seed: int, *, real, net, splits, run_dir: Path) -> list[dict]:
    """The records of one trained (or random) model: [dcgan, dcgan@half] for the DCGAN."""
    t0 = time.perf_counter()
    if variant == "random discriminator":
        _, discriminator = gan.build(exp.gan_config(seed))
        return [{"variant": variant, "seed": seed, **_probe(exp, discriminator, seed, splits),
                 "seconds": round(time.perf_counter() - t0, 1)}]
    half = exp.gan_config(seed).steps // 2
    prefix = f"{variant}_seed{seed}_step"
    if variant == "dcgan":
        cfg = exp.gan_config(seed)
        models = gan.build_models(cfg)
        keep = snapshot_callback(run_dir, every=half, keep=lambda s: s == half, prefix=prefix,
                                 state=lambda: {"generator": models["generator"].state_dict()}, loss=None)
        gan.train_gan(models, cfg, progress="line", checkpoint=run_dir / f"{variant}_seed{seed}.pt", callbacks=[keep])
    else:
        cfg = exp.ssgan_config(seed)
        models = ssgan.build(cfg)
        ssgan.train_ssgan(models, cfg, progress="line", checkpoint=run_dir / f"{variant}_seed{seed}.pt")
    train_seconds = round(time.perf_counter() - t0, 1)
    record = {"variant": variant, "seed": seed, "steps": cfg.steps if variant == "dcgan" else cfg.gan.steps,
              "train_seconds": train_seconds, **_samples(exp, models["generator"], real=real, net=net)}
    if variant == "ssgan":
        record["rotation_acc"] = round(ssgan.rotation_accuracy(models["discriminator"].cpu(),
                                                               splits["test"][0][:500]), 4)
    record.update(_probe(exp, models["discriminator"], seed, splits))
    records = [record]
    if variant == "dcgan":
        generator, _ = gan.build(cfg)
        generator.load_state_dict(read_snapshot(snapshot_path(run_dir, half, prefix=prefix))["generator"])
        records.append({"variant": "dcgan@half", "seed": seed, "steps": half,
                        **_samples(exp, generator, real=real, net=net)})
    return records


def summarise(runs: list[dict]) -> dict:
    """variant -> {score: {"mean", "std" (ddof=1), "values"}} over training seeds (in seed order)."""
    out: dict = {}
    for variant in ("dcgan", "dcgan@half", "ssgan", "random discriminator"):
        rs = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["seed"])
        if not rs:
            continue
        row = {}
        for m in (*SAMPLE_SCORES, *[k for k in HIGHER_IS_BETTER if k.startswith("probe")], "rotation_acc"):
            vals = [float(r[m]) for r in rs if m in r]
            if vals:
                row[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                          "values": vals}
        row["seeds"] = [r["seed"] for r in rs]
        out[variant] = row
    return out


def analyse(result: dict) -> dict | None:
    """Controls, questions (Holm, and the rule) and secondary contrasts from the runs; None
    until every registered (variant, seed) is there."""
    reg = result["registration"]
    by = {(r["variant"], r["seed"]): r for r in result["runs"]}

    def values(variant, score):
        if any((variant, s) not in by for s in reg["seeds"]):
            return None
        return [float(by[(variant, s)][score]) for s in reg["seeds"]]

    def pairs(contrasts):
        return {name: (values(a, score), values(b, score)) for name, (a, b, score) in contrasts.items()}

    controls = pairs({name: c for name, c in reg["controls"].values()})
    questions, secondary = pairs(reg["questions"]), pairs(reg["secondary"])
    if any(v is None for p in (controls, questions, secondary) for pair in p.values() for v in pair):
        return None
    hib = {name: HIGHER_IS_BETTER[c[-1]] for name, c in {**reg["questions"], **reg["secondary"],
                                                          **dict(reg["controls"].values())}.items()}

    def tested(family: dict, holm: bool) -> dict:
        """Paired tests (Holm across ``family`` if ``holm``); a pair whose per-seed differences
        are all equal has no spread to test against and is reported untested."""
        spread = {k: ab for k, ab in family.items() if np.ptp(np.subtract(*ab)) > 0}
        if holm:
            done = stats.compare_all(spread, higher_is_better={k: hib[k] for k in spread}, alpha=reg["alpha"],
                                     paired=True) if spread else {}
        else:
            done = {k: stats.compare(*ab, higher_is_better=hib[k], alpha=reg["alpha"], paired=True)
                    for k, ab in spread.items()}
        return {k: {**(dataclasses.asdict(done[k]) if k in done else
                       {"diff": float(np.mean(np.subtract(*ab))), "verdict": UNTESTED}), "a": ab[0], "b": ab[1]}
                for k, ab in family.items()}

    done_controls = tested(controls, holm=False)
    answered = {q: done_controls[reg["controls"][q][0]]["verdict"] == stats.BETTER for q in questions}
    done_questions = {q: {**c, "verdict_without_the_rule": c["verdict"],
                          "verdict": c["verdict"] if answered[q] else "cannot answer"}
                      for q, c in tested(questions, holm=True).items()}
    return {"controls": done_controls, "questions": done_questions, "answered": answered,
            "secondary": tested(secondary, holm=False)}


def _locked_update(out: Path, change, *, run_dir: Path, start: float, load_at_start: float, argv) -> dict:
    return update_result(out, change, lock=run_dir / "results.lock", script="experiments/ssgan.py", argv=argv,
                         start=start, load_at_start=load_at_start)


def run(exp: SSGANExperiment, out: Path, *, run_dir: Path, argv=("experiments/ssgan.py",), log=print) -> dict:
    start, load_at_start = time.perf_counter(), os.getloadavg()[0]
    size = exp.gan_config(exp.seeds[0]).image_size
    fn_cfg = FeatureNetConfig.for_profile(exp.profile, image_size=size)
    header = json.loads(json.dumps({
        "name": "ssgan", "experiment": dataclasses.asdict(exp), "render_version": RENDER_VERSION,
        "configs": {"dcgan": dataclasses.asdict(exp.gan_config(exp.seeds[0])),
                    "ssgan": dataclasses.asdict(exp.ssgan_config(exp.seeds[0]))},
        "frechet_label": frechet_label(exp.n, size), "feature_net": dataclasses.asdict(fn_cfg),
        "real_set": f"ToyFaces split='test', size={exp.n}, seed=0, render version {RENDER_VERSION}",
        "registration": registration(exp)}))

    def register(result):
        if result and any(result.get(k) != v for k, v in header.items()):
            raise SystemExit(f"{out} holds another experiment or registration; move it away to start anew")
        result.update(header)
        result.setdefault("runs", [])

    update = lambda change: _locked_update(out, change, run_dir=run_dir, start=start,  # noqa: E731
                                           load_at_start=load_at_start, argv=argv)
    update(register)
    net = load_feature_net(size, config=fn_cfg)
    real = ToyFaces(split="test", size=exp.n, image_size=size, seed=0).images
    splits = _splits(exp, size)
    for seed in exp.seeds:
        for variant in VARIANTS:
            done = json.loads(out.read_text())["runs"]
            if any(r["variant"] == variant and r["seed"] == seed for r in done):
                continue
            if not claim(run_dir / f"{variant.replace(' ', '_')}_seed{seed}.claim"):
                continue
            records = unit(exp, variant, seed, real=real, net=net, splits=splits, run_dir=run_dir)
            for r in records:
                log(f"seed {seed} {r['variant']:22s} " + " ".join(
                    f"{m} {r[m]:.3f}" for m in (*SAMPLE_SCORES, "probe", "rotation_acc") if m in r))

            def keep(result, records=records):
                names = {(r["variant"], r["seed"]) for r in records}
                result["runs"] = [r for r in result["runs"] if (r["variant"], r["seed"]) not in names] + records
                result["summary"] = summarise(result["runs"])
            update(keep)
    return update(lambda result: result.__setitem__("analysis", analyse(result)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", type=Path, default=None, metavar="OUT", help="a seconds-long run into OUT")
    parser.add_argument("--analyse", action="store_true", help="write the verdicts from the finished runs")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "ssgan")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    argv = ["experiments/ssgan.py", *(sys.argv[1:] if argv is None else argv)]
    if args.analyse:
        result = _locked_update(RESULTS, lambda r: r.__setitem__("analysis", analyse(r)), run_dir=args.run_dir,
                                start=time.perf_counter(), load_at_start=os.getloadavg()[0], argv=argv)
        print(json.dumps(result["analysis"], indent=1)[:3000])
        return
    exp, out = (SSGANExperiment.tiny(), args.tiny) if args.tiny else (SSGANExperiment(), RESULTS)
    run(exp, out, run_dir=args.run_dir if not args.tiny else args.tiny.parent / "ssgan_runs", argv=argv)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
