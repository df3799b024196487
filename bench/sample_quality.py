"""One sample-quality table: every generator and every reference set, judged the same way.

Run: ``python bench/sample_quality.py --profile cpu --json bench/results/sample_quality_cpu.json``

Each row holds the domain Frechet distance (:func:`course_lib.metrics.frechet_distance` on
the attribute net's features), fidelity and diversity (density and coverage, Naeem et al.
2020: :func:`course_lib.metrics.fidelity_diversity`) and, for contrast, the k-NN
precision and recall (Kynkaanniemi et al. 2019) that gray and blurred images fool. Every
number is the mean over sample seeds with its standard deviation and the per-seed values,
against one fixed real set: ``n`` ToyFaces test images (split ``"test"``, data seed 0).

References (what a metric must tell apart): ``real`` (held-out faces: split ``"val"``,
data seed = sample seed), ``blur1`` / ``blur2`` (those, Gaussian blur sigma 1 / 2 px),
``noise`` (uniform random pixels), ``gray`` (constant 0.5: a GAN at step 0), ``repeated``
(one held-out face n times). Models: the chapter-02 VAE (``pretrained_vae``, samples from
its prior), chapter 03's DCGAN and WGAN-GP at the profile's budget (``pretrained_gan``,
trained once and cached), chapter 08's diffusion model at the profile's budget
(``ddpm_live``) and its committed reference model (``ddpm_reference``, when the table's image
size is the reference's), each sampled with DDIM in 25 steps, and the reference generators
of ``experiments/weights/`` when those files exist (rows are left out, and listed under
``"missing"``, when they do not). Sampling time is measured in chapter 08 (quality vs seconds).

Cached models come from ``$COURSE_CACHE`` (what is missing is trained first: at ``cpu``
the VAE, the DCGAN and the WGAN-GP, a few minutes on 2 idle cores). No timing is
reported: training is deterministic on CPU, so a busy machine changes the wall time, not
the numbers; the JSON still records the 1-minute load average at the start.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from course_lib import diffusion, gan
from course_lib.checkpoint import load_checkpoint, read_checkpoint
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.metrics import (corrupt_images, fidelity_diversity, frechet_distance,
                                frechet_label, precision_recall)
from course_lib.toyfaces import RENDER_VERSION, ToyFaces
from course_lib.vae import VAEConfig, pretrained_vae

REFERENCE_NAMES = ("real", "blur1", "blur2", "noise", "gray", "repeated")
ROOT = Path(__file__).resolve().parents[1]
DDIM_STEPS = 25  # chapter 08 samples with DDIM in 25 steps (its quality-vs-seconds sweep shows why)
METRICS = ("frechet", "fidelity", "diversity", "precision", "recall")
# Reference generators (issue 14, item 4): course checkpoints (course_lib.checkpoint
# .save_checkpoint) holding a "generator" and, in ``extra["config"]``, the GANConfig as
# written by course_lib.checkpoint.config_key. Until experiments/ commits them, no row.
REFERENCE_WEIGHTS = {"dcgan_reference": ROOT / "experiments" / "weights" / "dcgan_reference.pt",
                     "wgan_gp_reference": ROOT / "experiments" / "weights" / "wgan_gp_reference.pt"}

Sampler = Callable[[int, int], torch.Tensor]  # (n, seed) -> images (n, 3, S, S) in [0, 1] or uint8


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Sizes of one table."""

    n: int = 1000                # images per set (every number depends on n: compare equal n only)
    seeds: tuple[int, ...] = (0, 1, 2)  # sample seeds: the spreads are over these
    k: int = 5                   # neighbours of density and coverage (Naeem et al. 2020: 5)
    k_precision: int = 3         # neighbours of the k-NN precision/recall (Kynkaanniemi et al.: 3)

    @classmethod
    def for_profile(cls, profile: str) -> "QualityConfig":
        # A chapter that sets its own live numbers beside these rows must use the JSON's "n".
        return {"smoke": cls(n=64), "cpu": cls(n=1000), "gpu": cls(n=2000)}[profile]


def wgan_gp_config(profile: str) -> gan.GANConfig:
    """Chapter 03's WGAN-GP: the profile's DCGAN config with loss "wgan-gp", 2 critic steps
    per generator step and Adam beta2 = 0.9 (``solutions/03_gan.md``, cell ``wgan_cfg``).
    Keep the two in step until the config lives in course_lib.gan."""
    return dataclasses.replace(gan.GANConfig.for_profile(profile), loss="wgan-gp", d_steps=2, beta2=0.9)


def reference_samplers(held_out: Callable[[int, int], torch.Tensor], image_size: int) -> dict[str, Sampler]:
    """The six reference sets as samplers; ``held_out(n, seed)`` gives real uint8 faces."""
    def noise(n, seed):
        return torch.rand(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))

    return {
        "real": held_out,
        "blur1": lambda n, s: corrupt_images(held_out(n, s), kind="blur", strength=1.0),
        "blur2": lambda n, s: corrupt_images(held_out(n, s), kind="blur", strength=2.0),
        "noise": noise,
        "gray": lambda n, s: torch.full((n, 3, image_size, image_size), 0.5),
        "repeated": lambda n, s: held_out(1, s).expand(n, -1, -1, -1).contiguous(),
    }


def gan_sampler(generator: torch.nn.Module) -> Sampler:
    return lambda n, seed: gan.generate(generator, n, seed=seed)


def load_reference_generator(path: Path) -> tuple[torch.nn.Module, gan.GANConfig]:
    """The generator of a reference checkpoint (format: see ``REFERENCE_WEIGHTS``)."""
    config = json.loads(read_checkpoint(path)["extra"]["config"])
    config.pop("__class__", None)
    cfg = gan.GANConfig(**config)
    generator, _ = gan.build(cfg)
    load_checkpoint(path, models={"generator": generator}, restore_rng=False)
    return generator.eval(), cfg


def model_samplers(profile: str, *, progress: bool | str = False) -> tuple[dict[str, Sampler], dict[str, str]]:
    """``({row name: sampler}, {missing row: why})`` for the profile's generators.
    Trains (once, then cached) what the cache does not hold yet."""
    vae = pretrained_vae(VAEConfig.for_profile(profile), progress=progress).model.cpu()

    @torch.no_grad()
    def vae_sampler(n: int, seed: int) -> torch.Tensor:
        return vae.sample(n, generator=torch.Generator().manual_seed(seed))

    live = diffusion.pretrained_ddpm(diffusion.DDPMConfig.for_profile(profile), progress=progress).model.cpu()
    samplers: dict[str, Sampler] = {
        "vae": vae_sampler,
        "ddpm_live": ddpm_sampler(live),
        "dcgan_live": gan_sampler(gan.pretrained_gan(gan.GANConfig.for_profile(profile),
                                                     progress=progress).model["generator"].cpu()),
        "wgan_gp_live": gan_sampler(gan.pretrained_gan(wgan_gp_config(profile),
                                                       progress=progress).model["generator"].cpu()),
    }
    image_size = gan.GANConfig.for_profile(profile).image_size
    references, missing = reference_generator_samplers(image_size)
    if diffusion.reference_config().image_size == image_size:  # chapter 08's committed model
        references["ddpm_reference"] = ddpm_sampler(diffusion.reference_ddpm())
    else:
        missing["ddpm_reference"] = (f"the committed DDPM generates {diffusion.reference_config().image_size}px "
                                     f"images, this table is {image_size}px")
    return {**samplers, **references}, missing


def ddpm_sampler(model) -> Sampler:
    """Chapter 08's DDIM sampler with its 25 steps (the chapter's table uses the same)."""
    return lambda n, seed: diffusion.sample_ddim(model, n, steps=DDIM_STEPS, seed=seed)


def reference_generator_samplers(image_size: int) -> tuple[dict[str, Sampler], dict[str, str]]:
    """Samplers for the files of ``REFERENCE_WEIGHTS`` that exist at ``image_size``, and why
    the others give no row."""
    samplers, missing = {}, {}
    for name, path in REFERENCE_WEIGHTS.items():
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if not path.is_file():
            missing[name] = f"{shown} not found (issue 14, item 4)"
            continue
        generator, cfg = load_reference_generator(path)
        if cfg.image_size != image_size:
            missing[name] = f"{shown} generates {cfg.image_size}px images, this table is {image_size}px"
            continue
        samplers[name] = gan_sampler(generator)
    return samplers, missing


def _summary(values: list[float]) -> dict:
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(values) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "values": [float(v) for v in values]}


def score_rows(samplers: dict[str, Sampler], real: torch.Tensor, net, config: QualityConfig) -> dict[str, dict]:
    """Every metric of every sampler, per seed, against ``real`` ``(n, 3, S, S)``."""
    real_feats = net.features(real)
    rows = {}
    for name, sample in samplers.items():
        per_seed = {m: [] for m in METRICS}
        for seed in config.seeds:
            images = sample(config.n, seed)
            if images.shape[0] != config.n:
                raise ValueError(f"{name} gave {images.shape[0]} images for n={config.n}")
            feats = net.features(images)
            per_seed["frechet"].append(frechet_distance(real_feats, feats))
            fd = fidelity_diversity(real, images, n=config.n, net=net, k=config.k)
            per_seed["fidelity"].append(fd["fidelity"])
            per_seed["diversity"].append(fd["diversity"])
            pr = precision_recall(real_feats, feats, k=config.k_precision)
            per_seed["precision"].append(pr["precision"])
            per_seed["recall"].append(pr["recall"])
        rows[name] = {m: _summary(v) for m, v in per_seed.items()}
    return rows


def sample_quality(profile: str, *, config: QualityConfig | None = None,
                   models: dict[str, Sampler] | None = None, missing: dict[str, str] | None = None,
                   load_average: float | None = None) -> dict:
    """The whole table as a JSON-ready dict; ``models`` defaults to :func:`model_samplers`."""
    config = config or QualityConfig.for_profile(profile)
    image_size = gan.GANConfig.for_profile(profile).image_size
    net = load_feature_net(image_size, config=FeatureNetConfig.for_profile(profile, image_size=image_size))
    real = ToyFaces(split="test", size=config.n, image_size=image_size, seed=0).images

    def held_out(n, seed):
        return ToyFaces(split="val", size=n, image_size=image_size, seed=seed).images

    if models is None:
        models, missing = model_samplers(profile)
    result = {
        "profile": profile,
        "image_size": image_size,
        "n": config.n,
        "seeds": list(config.seeds),
        "k": config.k,
        "k_precision": config.k_precision,
        "frechet_label": frechet_label(config.n, image_size),
        "real_set": f"ToyFaces split='test', size={config.n}, seed=0, render version {RENDER_VERSION}",
        "feature_net": dataclasses.asdict(FeatureNetConfig.for_profile(profile, image_size=image_size)),
        "load_average_start": load_average,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "references": score_rows(reference_samplers(held_out, image_size), real, net, config),
        "models": score_rows(models, real, net, config),
        "missing": dict(missing or {}),
    }
    return result


def format_table(result: dict) -> str:
    lines = [result["frechet_label"] + f"; mean +/- std over seeds {result['seeds']}",
             f"{'':>18} " + " ".join(f"{m:>17}" for m in METRICS)]
    for group in ("references", "models"):
        for name, row in result[group].items():
            lines.append(f"{name:>18} " + " ".join(f"{row[m]['mean']:9.3f} +/- {row[m]['std']:5.3f}"
                                                   for m in METRICS))
    lines += [f"{name:>18}  (no row: {why})" for name, why in result["missing"].items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default="cpu")
    parser.add_argument("--json", type=Path, required=True, help="where to write the table")
    parser.add_argument("--n", type=int, help="images per set (default: the profile's, 1000 at cpu)")
    args = parser.parse_args(argv)
    config = QualityConfig.for_profile(args.profile)
    if args.n is not None:
        if args.n <= config.k:
            raise SystemExit(f"--n must be larger than k={config.k}, got {args.n}")
        config = dataclasses.replace(config, n=args.n)
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the start: {load:.2f} on {os.cpu_count()} cores")
    result = sample_quality(args.profile, config=config, load_average=round(load, 2))
    result["command"] = " ".join(["python bench/sample_quality.py", *(argv if argv is not None else sys.argv[1:])])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
