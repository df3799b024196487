"""One sample-quality table: every generator and every reference set, judged the same way.

Run: ``python bench/sample_quality.py --profile cpu`` (writes ``course_lib/results_data/sample_quality_cpu.json``,
package data: chapters 03, 07 and 08 and the book's Results page read it with
``course_lib.results.sample_quality``; ``--json OUT`` writes elsewhere)

Each row holds, as :func:`course_lib.metrics.sample_quality` scores them, the domain Frechet
distance (:func:`course_lib.metrics.frechet_distance` on the attribute net's features), the
kernel distance behind KID on the same features (:func:`course_lib.metrics.kernel_distance`,
unbiased in n), fidelity and diversity (density and coverage, Naeem et al. 2020:
:func:`course_lib.metrics.fidelity_diversity`) and, for contrast, the k-NN precision and
recall (Kynkaanniemi et al. 2019) that gray and blurred images fool. Every
number is the mean over sample seeds with its standard deviation and the per-seed values,
against one fixed real set: ``n`` ToyFaces test images (split ``"test"``, data seed 0).

References (what a metric must tell apart): ``real`` (held-out faces: split ``"val"``,
data seed = sample seed), ``blur1`` / ``blur2`` (those, Gaussian blur sigma 1 / 2 px),
``noise`` (uniform random pixels), ``gray`` (constant 0.5: a GAN at step 0), ``repeated``
(one held-out face n times). Models: the chapter-02 VAE (``pretrained_vae``, samples from
its prior), chapter 03's DCGAN and WGAN-GP at the profile's budget (``pretrained_gan``,
trained once and cached), chapter 08's diffusion model at the profile's budget
(``ddpm_live``) and its committed reference model (``ddpm_reference``, when the table's image
size is the reference's), each sampled with DDIM in 25 steps, and chapter 03's reference
generators (``course_lib.gan_reference``: the chapter's DCGAN and WGAN-GP trained by
``experiments/gan_reference.py`` for >= 10x the chapter's steps) when those files exist (rows
are left out, and listed under ``"missing"``, when they do not). Chapter 09's flow model
(``flow_live``: Euler 25 steps; ``flow_live_heun6``: Heun 6 steps, 12 calls;
``flow_live_heun6_eulerlast``: the same with an Euler last step, 11 calls) and its committed
reference (``flow_reference``, ``flow_reference_heun6``, ``flow_reference_heun6_eulerlast``, and
``flow_reference_autoguided``: Heun 6 autoguided by the live model at the scale
``experiments/autoguidance.py`` chose on validation faces, 24 calls, and its ``_eulerlast`` twin),
chapter 11's latent flow (``latent_flow_live``, ``latent_flow_live_heun6``) and, among the
references, ``ae_recon``: chapter 11's autoencoder's reconstructions of the held-out faces (the
floor of the latent models). ``--figure`` draws ``docs/figures/best_generators.png`` from the
committed table: real faces, the best live row and the best reference row, each followed by
its ``_eulerlast`` twin when the table has one (the same model, without the last corrector's
grain), the first 32 samples of seed 0 each (no selection). A GAN whose config keeps an
EMA of its generator is sampled from the EMA copy (``gan.sampler_generator``). Sampling time is
measured in chapter 08 (quality vs seconds).

Cached models come from ``$COURSE_CACHE`` (what is missing is trained first: at ``cpu``
the VAE, the DCGAN and the WGAN-GP, a few minutes on 2 idle cores). No timing is
reported: training is deterministic on CPU, so a busy machine changes the wall time, not
the numbers; the JSON still records the 1-minute load average at the start. The feature net's
last digits depend on the torch thread count (one thread by default, recorded as ``threads``;
``--only`` merges only rows computed with the table's).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from course_lib import diffusion, flow, gan, gan_reference, guidance, latent
from course_lib.artifacts import write_result
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.metrics import SCORES, corrupt_images, frechet_label, sample_quality as score_samples
from course_lib.plots import show_images
from course_lib.results import load_result, result_path, sample_quality_markdown
from course_lib.toyfaces import RENDER_VERSION, ToyFaces
from course_lib.vae import VAEConfig, pretrained_vae

REFERENCE_NAMES = ("real", "blur1", "blur2", "noise", "gray", "repeated")
ROOT = Path(__file__).resolve().parents[1]
DDIM_STEPS = 25  # chapter 08 samples with DDIM in 25 steps (its quality-vs-seconds sweep shows why)
FLOW_STEPS = 25  # chapter 09 samples with 25 Euler steps: the same number of network calls
METRICS = SCORES  # frechet, kid, fidelity, diversity, precision, recall
HEUN_STEPS = 6   # chapter 09's best sampler at 12 network calls
# Reference generators: written by experiments/gan_reference.py, loaded
# (and checked against chapter 03's config and the ToyFaces drawing) by course_lib.gan_reference.
REFERENCE_WEIGHTS = {f"{name}_reference": path for name, path in gan_reference.REFERENCE_PATHS.items()}

Sampler = Callable[[int, int], torch.Tensor]  # (n, seed) -> images (n, 3, S, S) in [0, 1] or uint8


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Sizes of one table."""

    n: int = 1000                # images per set (every number depends on n: compare equal n only)
    seeds: tuple[int, ...] = (0, 1, 2)  # sample seeds: the spreads are over these
    k: int = 5                   # neighbours of density and coverage (Naeem et al. 2020: 5)
    k_precision: int = 3         # neighbours of the k-NN precision/recall (Kynkaanniemi et al.: 3)

    @classmethod
    def for_profile(cls, profile: str) -> QualityConfig:
        # A chapter that sets its own live numbers beside these rows must use the JSON's "n".
        return {"smoke": cls(n=64), "cpu": cls(n=1000), "gpu": cls(n=2000)}[profile]


def wgan_gp_config(profile: str) -> gan.GANConfig:
    """Chapter 03's WGAN-GP at ``profile`` (:func:`course_lib.gan.chapter_wgan_gp`)."""
    return gan.chapter_wgan_gp(gan.GANConfig.for_profile(profile))


def reference_samplers(held_out: Callable[[int, int], torch.Tensor], image_size: int) -> dict[str, Sampler]:
    """The reference sets as samplers; ``held_out(n, seed)`` gives real uint8 faces. With
    chapter 11's committed autoencoder (at its image size): ``ae_recon``, its reconstructions
    of the held-out faces, the floor of the latent models decoded through it."""
    def noise(n, seed):
        return torch.rand(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))

    return {
        "real": held_out,
        "blur1": lambda n, s: corrupt_images(held_out(n, s), kind="blur", strength=1.0),
        "blur2": lambda n, s: corrupt_images(held_out(n, s), kind="blur", strength=2.0),
        "noise": noise,
        "gray": lambda n, s: torch.full((n, 3, image_size, image_size), 0.5),
        "repeated": lambda n, s: held_out(1, s).expand(n, -1, -1, -1).contiguous(),
        **({"ae_recon": lambda n, s: _reconstruct(latent.reference_autoencoder(), held_out(n, s))}
           if latent.REFERENCE_PATH.is_file() and latent.reference_config().image_size == image_size else {}),
    }


@torch.no_grad()
def _reconstruct(autoencoder, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([autoencoder(images[i:i + 250]) for i in range(0, len(images), 250)])


def gan_sampler(generator: torch.nn.Module) -> Sampler:
    return lambda n, seed: gan.generate(generator, n, seed=seed)


def load_reference_generator(name: str, path: Path) -> tuple[torch.nn.Module, gan.GANConfig]:
    """The reference generator ``name`` ("dcgan_reference" ...) at ``path`` and its config."""
    short = name.removesuffix("_reference")
    generator = gan_reference.reference_generator(short, path)
    info = gan_reference.reference_info(short, path)
    return generator, dataclasses.replace(gan_reference.reference_config(short), steps=info["steps"])


def model_samplers(profile: str, *, progress: bool | str = False,
                   only: tuple[str, ...] = ()) -> tuple[dict[str, Sampler], dict[str, str]]:
    """``({row name: sampler}, {missing row: why})`` for the profile's generators (only the
    rows in ``only`` when it is given). Trains (once, then cached) what the cache lacks."""
    def vae_sampler() -> Sampler:
        vae = pretrained_vae(VAEConfig.for_profile(profile), progress=progress).model.cpu()
        return torch.no_grad()(lambda n, seed: vae.sample(n, generator=torch.Generator().manual_seed(seed)))

    def gan_live(config: gan.GANConfig) -> Sampler:
        return gan_sampler(gan.sampler_generator(gan.pretrained_gan(config, progress=progress).model).cpu())

    builders: dict[str, Callable[[], Sampler]] = {
        "vae": vae_sampler,
        "ddpm_live": lambda: ddpm_sampler(diffusion.pretrained_ddpm(
            diffusion.DDPMConfig.for_profile(profile), progress=progress).model.cpu()),
        "flow_live": lambda: flow_sampler(flow.pretrained_flow(
            flow.FlowConfig.for_profile(profile), progress=progress).model.cpu()),
        "flow_live_heun6": lambda: flow_sampler(flow.pretrained_flow(
            flow.FlowConfig.for_profile(profile), progress=progress).model.cpu(), method="heun"),
        "flow_live_heun6_eulerlast": lambda: flow_sampler(flow.pretrained_flow(
            flow.FlowConfig.for_profile(profile), progress=progress).model.cpu(), method="heun_euler_last"),
        "latent_flow_live": lambda: latent_sampler(latent.pretrained_latent_flow(
            latent.LatentFlowConfig.for_profile(profile), progress=progress).model.cpu()),
        "latent_flow_live_heun6": lambda: latent_sampler(latent.pretrained_latent_flow(
            latent.LatentFlowConfig.for_profile(profile), progress=progress).model.cpu(), method="heun"),
        "dcgan_live": lambda: gan_live(gan.GANConfig.for_profile(profile)),
        "wgan_gp_live": lambda: gan_live(wgan_gp_config(profile)),
    }
    for seed in TRAINING_SEEDS:        # the same live models retrained with another seed: the training spread
        builders[training_seed_row("flow_live_heun6", seed)] = functools.partial(lambda s: flow_sampler(
            flow.pretrained_flow(dataclasses.replace(flow.FlowConfig.for_profile(profile), seed=s),
                                 progress=progress).model.cpu(), method="heun"), seed)
        builders[training_seed_row("ddpm_live", seed)] = functools.partial(lambda s: ddpm_sampler(
            diffusion.pretrained_ddpm(dataclasses.replace(diffusion.DDPMConfig.for_profile(profile), seed=s),
                                      progress=progress).model.cpu()), seed)
    missing: dict[str, str] = {}
    if profile == "cpu" and not latent.REFERENCE_PATH.is_file():   # chapter 11 needs its committed autoencoder
        for name in ("latent_flow_live", "latent_flow_live_heun6"):
            builders.pop(name)
            missing[name] = "course_lib/results_data/autoencoder_reference.pt not found " \
                            "(python experiments/latent_reference.py)"
    samplers = {name: build() for name, build in builders.items() if not only or name in only}
    image_size = gan.GANConfig.for_profile(profile).image_size
    references, missing_references = reference_generator_samplers(image_size)
    missing.update(missing_references)
    if diffusion.reference_config().image_size == image_size:  # chapter 08's committed model
        references["ddpm_reference"] = ddpm_sampler(diffusion.reference_ddpm())
        if flow.REFERENCE_PATH.is_file():                          # chapter 09's committed model
            references["flow_reference"] = flow_sampler(flow.reference_flow())
            references["flow_reference_heun6"] = flow_sampler(flow.reference_flow(), method="heun")
            references["flow_reference_heun6_eulerlast"] = flow_sampler(flow.reference_flow(),
                                                                       method="heun_euler_last")
            if not result_path("autoguidance").is_file():
                missing["flow_reference_autoguided"] = "course_lib/results_data/autoguidance.json not found " \
                                                       "(python experiments/autoguidance.py)"
            else:
                autoguided = {"flow_reference_autoguided": "heun",
                              "flow_reference_autoguided_eulerlast": "heun_euler_last"}
                wanted = {name: method for name, method in autoguided.items() if not only or name in only}
                if wanted:   # the good and the weak model, loaded once (trains chapter 09's live model if not cached)
                    good = flow.reference_flow()
                    weak = flow.pretrained_flow(flow.FlowConfig.for_profile("cpu"), progress=progress).model
                    for name, method in wanted.items():
                        references[name] = autoguided_sampler(good, weak.cpu().eval(), method=method)
        else:
            missing["flow_reference"] = "course_lib/results_data/flow_reference.pt not found " \
                                        "(python experiments/flow_reference.py)"
    else:
        missing["ddpm_reference"] = (f"the committed DDPM generates {diffusion.reference_config().image_size}px "
                                     f"images, this table is {image_size}px")
    references = {k: v for k, v in references.items() if not only or k in only}
    return {**samplers, **references}, missing


TRAINING_SEEDS = (1, 2)   # the live flow and DDPM rows retrained with these seeds (the table's own rows are seed 0)


def training_seed_row(name: str, seed: int) -> str:
    return f"{name}_trainseed{seed}"


def training_spread(models: dict) -> dict:
    """For each live row retrained with :data:`TRAINING_SEEDS`: its Frechet distance per
    training seed (each the mean over the sample seeds) and their mean and standard deviation,
    the noise floor a claim about a live model must beat (the table's own spreads are over
    sample seeds of one trained model)."""
    out = {}
    for name in ("flow_live_heun6", "ddpm_live"):
        rows = [models.get(name)] + [models.get(training_seed_row(name, s)) for s in TRAINING_SEEDS]
        if any(r is None for r in rows):
            continue
        values = [r["frechet"]["mean"] for r in rows]
        out[name] = {"training_seeds": [0, *TRAINING_SEEDS], "frechet": values, **_summary(values)}
    return out


def flow_sampler(model, method: str = "euler") -> Sampler:
    """Chapter 09's Euler sampler with 25 steps (as many network calls as DDIM's 25), or
    Heun with 6 (12 calls), or Heun with 6 whose last step is Euler (11 calls)."""
    steps = FLOW_STEPS if method == "euler" else HEUN_STEPS   # heun and heun_euler_last: 6 steps
    return lambda n, seed: flow.sample_flow(model, n, steps=steps, method=method, seed=seed)


def autoguided_sampler(good, weak, method: str = "heun") -> Sampler:
    """The reference flow model autoguided by the live one (:func:`course_lib.guidance.autoguided_velocity`)
    at the scale ``experiments/autoguidance.py`` chose on validation faces, Heun 6 (24 calls), or
    Heun 6 ending with an Euler step (22 calls)."""
    scale = load_result("autoguidance")["chosen_scale"]
    return lambda n, seed: flow.sample_flow(good, n, steps=HEUN_STEPS, method=method, seed=seed,
                                            velocity=guidance.autoguided_velocity(good, weak, scale))


def latent_sampler(model, method: str = "euler") -> Sampler:
    """Chapter 11's latent flow model, the samplers of :func:`flow_sampler`, decoded."""
    steps = FLOW_STEPS if method == "euler" else HEUN_STEPS
    return lambda n, seed: model.sample(n, steps=steps, method=method, seed=seed)


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
            missing[name] = f"{shown} not found (python experiments/gan_reference.py)"
            continue
        generator, cfg = load_reference_generator(name, path)
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
            scores = score_samples(real, images, n=config.n, net=net, real_feats=real_feats, scores=METRICS,
                                   k=config.k, k_precision=config.k_precision)
            for m, v in scores.items():
                per_seed[m].append(v)
        rows[name] = {m: _summary(v) for m, v in per_seed.items()}
    return rows


def sample_quality(profile: str, *, config: QualityConfig | None = None,
                   models: dict[str, Sampler] | None = None, missing: dict[str, str] | None = None,
                   load_average: float | None = None, only: tuple[str, ...] = ()) -> dict:
    """The whole table as a JSON-ready dict; ``models`` defaults to :func:`model_samplers`
    (with ``only``: those model rows, and of the reference rows the held-out real one)."""
    config = config or QualityConfig.for_profile(profile)
    image_size = gan.GANConfig.for_profile(profile).image_size
    net = load_feature_net(image_size, config=FeatureNetConfig.for_profile(profile, image_size=image_size))
    real = ToyFaces(split="test", size=config.n, image_size=image_size, seed=0).images

    def held_out(n, seed):
        return ToyFaces(split="val", size=n, image_size=image_size, seed=seed).images

    if models is None:
        models, missing = model_samplers(profile, only=only)
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
        "threads": torch.get_num_threads(),
        # with only: the held-out real row (which tells whether the feature net is the table's)
        # and the reference rows asked for
        "references": score_rows({k: v for k, v in reference_samplers(held_out, image_size).items()
                                  if not only or k == "real" or k in only}, real, net, config),
        "models": score_rows(models, real, net, config),
        "missing": dict(missing or {}),
    }
    return result


MATCH = ("profile", "image_size", "n", "seeds", "k", "k_precision", "real_set", "feature_net", "torch", "threads")


def merge_rows(table: dict, new: dict, *, command: str) -> dict:
    """``table`` with ``new``'s model rows added or replaced; refuses when the two were not
    measured the same way (sizes, seeds, real set, feature net, torch), since then the rows
    could not be compared. The command that added them is kept under ``"row_commands"``."""
    differ = {k: (table.get(k), new.get(k)) for k in MATCH if table.get(k) != new.get(k)}
    old_real, new_real = table["references"]["real"], new["references"]["real"]
    if any(abs(old_real[m]["mean"] - new_real[m]["mean"]) > 1e-6 * max(1.0, abs(old_real[m]["mean"]))
           for m in new_real):
        differ["references.real"] = (old_real["frechet"]["mean"], new_real["frechet"]["mean"])
    if differ:
        raise SystemExit(f"--only: this run was not measured as the table was (table vs now: {differ}); "
                         "rerun the whole table without --only")
    added = {k: v for k, v in new["references"].items() if k != "real"}   # e.g. ae_recon, when asked for
    merged = {**table, "models": {**table["models"], **new["models"]}, "references": {**table["references"], **added}}
    merged["missing"] = {k: v for k, v in table["missing"].items() if k not in new["models"] and k not in added}
    merged["row_commands"] = {**table.get("row_commands", {}), **{k: command for k in [*new["models"], *added]}}
    return merged


FIGURE = ROOT / "docs" / "figures" / "best_generators.png"


def best_grids_figure(table: dict, out: Path = FIGURE, n: int = 32) -> Path:
    """Real faces beside the best live generator and the best reference generator of ``table``
    (lowest mean Frechet; live rows are the ones the chapters train, ``*_live*``), each the
    first ``n`` samples of sample seed 0: no selection."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = table["models"]
    live = min((k for k in models if "_live" in k and "_trainseed" not in k),   # seed 0: no selection
               key=lambda k: models[k]["frechet"]["mean"])
    ref = min((k for k in models if "_live" not in k and k != "vae"), key=lambda k: models[k]["frechet"]["mean"])
    names = [m for best in (live, ref) for m in (best, f"{best}_eulerlast") if m in models]
    samplers, _ = model_samplers(table["profile"], only=tuple(names))
    real = ToyFaces(split="val", size=n, image_size=table["image_size"], seed=0).images
    rows = [("real ToyFaces (held out)", real)] + [
        (f"{name}: Frechet {models[name]['frechet']['mean']:.1f} (table, n = {table['n']}), first {n} samples of "
         f"seed 0", samplers[name](n, 0)) for name in names]
    fig, axes = plt.subplots(len(rows), 1, figsize=(16, 2.4 * len(rows)))
    for ax, (title, images) in zip(axes, rows):
        show_images(images, nrow=16, ax=ax, title=title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default="cpu")
    parser.add_argument("--json", type=Path, help="where to write the table (default: "
                        "course_lib/results_data/sample_quality_<profile>.json)")
    parser.add_argument("--n", type=int, help="images per set (default: the profile's, 1000 at cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1): the feature net's last digits depend on it, so a table "
                             "and the rows merged into it must use the same")
    parser.add_argument("--only", nargs="+", default=(), metavar="ROW",
                        help="score only these model rows and merge them into the existing table "
                             "(its sizes, real set and feature net must be this run's; the other rows are kept)")
    parser.add_argument("--figure", action="store_true",
                        help=f"draw {FIGURE.relative_to(ROOT)} from the committed table (best live and reference rows)")
    args = parser.parse_args(argv)
    if args.figure:
        best_grids_figure(json.loads((args.json or result_path(f"sample_quality_{args.profile}")).read_text()))
        return
    config = QualityConfig.for_profile(args.profile)
    if args.n is not None:
        if args.n <= config.k:
            raise SystemExit(f"--n must be larger than k={config.k}, got {args.n}")
        config = dataclasses.replace(config, n=args.n)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the start: {load:.2f} on {os.cpu_count()} cores")
    result = sample_quality(args.profile, config=config, load_average=round(load, 2), only=tuple(args.only))
    command = " ".join(["python bench/sample_quality.py", *(argv if argv is not None else sys.argv[1:])])
    out = args.json or result_path(f"sample_quality_{args.profile}")
    if args.only:
        result = merge_rows(json.loads(out.read_text()), result, command=command)
    else:
        result["command"] = command
    result["training_spread"] = training_spread(result["models"])
    write_result(out, result)
    print(sample_quality_markdown(result, metrics=METRICS))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
