"""Does fusing a VAE with inpainting "greatly improve performance and data efficiency"?

The article (sections 3.3 and 4.4) claims it does; no published table tests exactly this,
so this script measures it on ToyFaces, where we control the data and know the truth.

Grid: real training-set size N in {500, 2000, 10000} x variant in {baseline, +init,
+joint, +init+joint, baseline+steps} x seed in {0, 1, 2}; every VAE gets the same step
budget (``FusionConfig.steps``), the "+init" pretraining sees the same N real images (same
real-data budget), and "baseline+steps" (the compute-matched control) gets the
pretraining's steps as extra VAE steps. Scores on real test images: negative ELBO, reconstruction PSNR, domain
Frechet distance of prior samples (course_lib.metrics), linear-probe accuracy on mu.

The lambda sweep: "+joint" with lambda in ``lambda_sweep["lams"]`` at one size and 3 seeds
(lambda = 0 is the baseline, the config's lambda is "+joint"; both come from the grid).

The cycle (article 3.3, point 2): for N = 500, inpainting pretraining on real images vs
on samples of the baseline VAE trained on those same N images vs both; backbone features
scored by a linear probe (and a random backbone as the floor).

Usage (from the repository root):
    python experiments/fusion.py           # full grid -> course_lib/results_data/fusion.json
    python experiments/fusion.py --tiny    # seconds; writes fusion_tiny.json to the temp folder

The long-budget run (5x the steps, early stopping) is ``experiments/fusion_long.py``: it
writes the file's ``"long_budget"`` section, which a rerun of this script keeps.

Trained weights are cached under ``<COURSE_CACHE>/fusion_grid/`` (keyed by the grid's
config and ToyFaces' render version), so a rerun (e.g. after a metric changes) only
re-evaluates.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from course_lib import fusion
from course_lib.artifacts import write_result
from course_lib.cache import config_key, load_or_build
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.images import to_uint8
from course_lib.pretext import probe_features
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]

# The grid the issue asks for. Step budgets, not seconds, so results do not depend on load.
# The feature net that scores Frechet distances is trained (once, cached) at the grid's size.
# The lambda sweep adds joint runs at one size: lambda = 0 is the baseline and the config's
# lambda is "+joint", both already in the grid.
FULL = {"config": fusion.FusionConfig.for_profile("cpu"), "train_sizes": (500, 2000, 10000),
        "seeds": (0, 1, 2), "cycle_size": 500, "cycle_generated": 2000, "feature_net": "cpu",
        "lambda_sweep": {"train_size": 2000, "lams": [1.0, 16.0]}}
TINY = {"config": fusion.FusionConfig.for_profile("smoke"), "train_sizes": (48,), "seeds": (0,),
        "cycle_size": 48, "cycle_generated": 64, "feature_net": "smoke",
        "lambda_sweep": {"train_size": 48, "lams": [1.0]}}


def grid_spec(grid: dict) -> dict:
    """What identifies a grid: the results file must match this to count as current."""
    return {"config": dataclasses.asdict(grid["config"]), "train_sizes": list(grid["train_sizes"]),
            "seeds": list(grid["seeds"]), "variants": list(fusion.VARIANTS),
            "cycle_size": grid["cycle_size"], "cycle_generated": grid["cycle_generated"],
            "lambda_sweep": grid["lambda_sweep"], "data_version": RENDER_VERSION,
            "feature_net": dataclasses.asdict(FeatureNetConfig.for_profile(
                grid["feature_net"], image_size=grid["config"].image_size))}


MODELS = {"trained": 0, "loaded_from_cache": 0}  # what this process did, for the results file


def cached(name: str, build, make, *, key: dict):
    """A module built by ``build()`` with the weights ``make()`` trains, cached by
    :func:`course_lib.cache.load_or_build` under ``fusion_grid/<name>-<hash of key and
    ToyFaces' render version>.pt``. ``make=None``: the weights must be cached already (an
    earlier part of the grid trained them). Returns ``(module, loaded_from_cache)``."""
    trained = []

    def train() -> dict:
        if make is None:
            raise RuntimeError(f"fusion grid: {name} should have been trained earlier in this run")
        trained.append(make())
        return trained[0].state_dict()

    state = load_or_build(name, train, key=key, folder="fusion_grid", data_version=RENDER_VERSION)
    MODELS["trained" if trained else "loaded_from_cache"] += 1
    if trained:
        return trained[0], False   # the module just trained, where it was trained
    module = build()
    module.load_state_dict(state)
    return module.eval(), True


def run(grid: dict, out: Path, *, train_only: bool = False, seeds=None) -> dict | None:
    """Train (or load) every model of ``grid``, score them, write ``out``. With
    ``train_only`` the models are only trained and cached (nothing is scored or written),
    for the given ``seeds`` only (default: all), so several processes can share the work."""

    cfg = grid["config"]
    spec = grid_spec(grid)
    # what the grid's weights depend on (the sweep's files carry lambda in their names)
    trained_by = {k: v for k, v in spec.items() if k not in ("feature_net", "lambda_sweep")}
    grid_key = {"grid": config_key(trained_by)[1]}  # every cached weight file is keyed by it
    s = cfg.image_size
    train_all = ToyFaces(split="train", size=max(grid["train_sizes"]), image_size=s)
    probe_set = ToyFaces(split="val", size=cfg.probe_size, image_size=s)
    test_set = ToyFaces(split="test", size=cfg.test_size, image_size=s)
    build_vae = lambda: fusion.VAE(latent_dim=cfg.latent_dim, image_size=s)  # noqa: E731
    fnet = None if train_only else load_feature_net(config=FeatureNetConfig(**spec["feature_net"]))
    start, runs, sweep, cycle = time.time(), [], [], []

    def score(vae, seed: int) -> dict[str, float]:
        return fusion.score_vae(vae, test_set, probe_set, judge=fnet, n_samples=cfg.n_samples, seed=seed)

    seeds = grid["seeds"] if seeds is None or not train_only else seeds
    for n in grid["train_sizes"]:
        images = train_all.images[:n]  # nested subsets: N=500 is part of N=2000
        for seed in seeds:
            pre, _ = cached(f"inpainter_{n}_{seed}", fusion.InpaintingNet,
                            partial(fusion.pretrain_inpainter, images, cfg, seed=seed), key=grid_key)
            for variant in fusion.VARIANTS:
                def make(variant=variant, images=images, seed=seed, pre=pre):  # this iteration's values
                    return fusion.train_variant(variant, images, cfg, seed=seed, pretrained=pre)[0]
                vae, hit = cached(f"vae_{variant}_{n}_{seed}", build_vae, make, key=grid_key)
                if train_only:
                    print(f"[{time.time() - start:7.0f}s] N={n:5d} seed={seed} {variant:10s} "
                          f"{'cached' if hit else 'trained'}", flush=True)
                    continue
                scores = score(vae, seed)
                runs.append({"train_size": n, "variant": variant, "seed": seed, **scores})
                print(f"[{time.time() - start:7.0f}s] N={n:5d} seed={seed} {variant:10s} "
                      + " ".join(f"{k}={v:.3f}" for k, v in scores.items()), flush=True)

    # the lambda sweep: "+joint" with other weights of the inpainting term, at one size
    n = grid["lambda_sweep"]["train_size"]
    for seed in seeds:
        for lam in grid["lambda_sweep"]["lams"]:
            def make(seed=seed, lam=lam):  # this iteration's values
                return fusion.train_variant("joint", train_all.images[:n], cfg, seed=seed, lam=lam)[0]
            vae, hit = cached(f"vae_joint_lam{lam:g}_{n}_{seed}", build_vae, make, key=grid_key)
            if train_only:
                print(f"[{time.time() - start:7.0f}s] sweep N={n} seed={seed} lambda={lam:g} "
                      f"{'cached' if hit else 'trained'}", flush=True)
                continue
            sweep.append({"train_size": n, "lam": lam, "seed": seed, **score(vae, seed)})
            print(f"[{time.time() - start:7.0f}s] sweep N={n} seed={seed} lambda={lam:g} "
                  + " ".join(f"{k}={v:.3f}" for k, v in sweep[-1].items() if k not in ("train_size", "lam", "seed")),
                  flush=True)

    # the cycle: pretext features from real vs generated vs mixed data, same real budget
    n, m = grid["cycle_size"], grid["cycle_generated"]
    real = train_all.images[:n]
    for seed in seeds:
        vae, _ = cached(f"vae_baseline_{n}_{seed}", build_vae, None, key=grid_key)
        gen = to_uint8(vae.sample(m, generator=torch.Generator().manual_seed(100 + seed)))
        sources = {"random": None, "real": real, "generated": gen, "mixed": torch.cat([real, gen])}
        for name, data in sources.items():
            if name == "random":
                torch.manual_seed(seed)
                net = fusion.InpaintingNet()
            else:
                net, _ = cached(f"inpainter_{name}_{n}_{seed}" if name != "real"
                                else f"inpainter_{n}_{seed}", fusion.InpaintingNet,
                                partial(fusion.pretrain_inpainter, data, cfg, seed=seed), key=grid_key)
            if train_only:
                continue
            # pool=1 (128 features): with pool=2 (512) one probe took ~8 min on a loaded CPU
            acc = fusion.probe_accuracy(probe_features(net.backbone, probe_set.images, pool=1), probe_set.labels,
                                 probe_features(net.backbone, test_set.images, pool=1), test_set.labels)
            cycle.append({"source": name, "seed": seed, "real_images": 0 if data is None else n,
                          "generated_images": {"generated": m, "mixed": m}.get(name, 0), "probe": acc})
            print(f"[{time.time() - start:7.0f}s] cycle seed={seed} {name:9s} probe={acc:.3f}", flush=True)

    if train_only:
        print(f"trained and cached everything in {time.time() - start:.0f} s")
        return None
    result = {
        "command": "python experiments/fusion.py" + (" --tiny" if grid is TINY else ""),
        "spec": spec,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "device": str(fusion.get_device())},
        "wall_seconds": round(time.time() - start, 1),
        # weights trained beforehand by --train-only processes are loaded, not retrained:
        # then wall_seconds covers scoring only
        "models": dict(MODELS),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "runs": runs,
        "lambda_sweep": sweep,
        "cycle": cycle,
    }
    if out.exists() and "long_budget" in (previous := json.loads(out.read_text())):
        result["long_budget"] = previous["long_budget"]  # experiments/fusion_long.py's section: kept
    write_result(out, result)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="seconds-long config for the tests")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: course_lib/results_data/fusion.json)")
    parser.add_argument("--train-only", action="store_true", help="train and cache, score nothing")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="with --train-only: train these seeds only (run one process per seed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = TINY if args.tiny else FULL
    out = args.out or (Path(tempfile.gettempdir()) / "fusion_tiny.json" if args.tiny else result_path("fusion"))
    result = run(grid, out, train_only=args.train_only, seeds=args.seeds)
    if result is None:
        return
    print(f"wrote {out} ({len(result['runs'])} runs, {len(result['lambda_sweep'])} sweep runs, "
          f"{len(result['cycle'])} cycle runs, "
          f"{result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
