"""The decisive fusion run: does pretraining still help when the VAE is trained to convergence?

``experiments/fusion.py``'s grid gives every VAE 600 steps, a regime where more steps alone
help (the compute-matched "baseline+steps" beats the baseline), so it cannot say whether
pretraining makes a VAE *data-efficient* or merely gives it a head start. This run trains
every VAE 5x longer, with **validation early stopping** (the negative ELBO on 500 held-out
validation faces every ``eval_every`` steps; the weights of the best check are kept), at a
small and a large real-data budget (N = 500 and 10,000 ToyFaces), so that at N = 500 the
plain VAE can overfit, and the early stopping shows it (train vs test ELBO).

Variants, each for seeds 0-2, all seeing only the same N real images:
``baseline``; ``init`` (chapter 04's inpainter, pretrained on the N images, copied into the
encoder); ``baseline+steps`` (the compute-matched control: the pretraining's steps as extra
VAE steps); ``init_jigsaw`` and ``init_rotation`` (chapter 05's jigsaw and rotation networks,
pretrained on the same N images, their backbone copied into the encoder).

Scores per VAE: train and test negative ELBO (nats per image), the best validation value and
its step, reconstruction PSNR, the domain Frechet distance of prior samples and the probe
accuracy on mu (the grid's scores, ``course_lib.fusion.score_vae``).

Usage (from the repository root; one thread per process, resumable model by model):
    python experiments/fusion_long.py --train-only --seeds 0   # one process per seed
    python experiments/fusion_long.py                           # score -> fusion.json["long_budget"]
    python experiments/fusion_long.py --seeds 1                 # train and score seed 1 only
    python experiments/fusion_long.py --tiny                    # seconds; a temporary file

A seed is about one core-hour on an idle 2-core machine, and a model cache does not outlive
a work session here, so the run can be done a seed at a time: ``--seeds S`` (without
``--train-only``) trains and scores seed S and merges its runs into ``"long_budget"``,
keeping the other seeds' runs when the spec is the same. ``"seeds_done"`` lists the seeds
scored so far; :func:`course_lib.verdicts.long_budget_verdicts` refuses an incomplete run.

Trained weights are cached under ``<COURSE_CACHE>/fusion_long/`` (keyed by this spec and
ToyFaces' render version); the results go into ``course_lib/results_data/fusion.json`` under
``"long_budget"`` (the rest of the file is left as it is).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from course_lib import fusion, pretext
from course_lib.artifacts import write_result
from course_lib.cache import config_key, load_or_build
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

VARIANTS = ("baseline", "init", "baseline+steps", "init_jigsaw", "init_rotation")
# the grid's cpu config, 5x the steps; pretext networks get 5x the grid's pretraining steps
LONG = {"config": dataclasses.replace(fusion.FusionConfig.for_profile("cpu"), steps=3000, pretrain_steps=1500),
        "train_sizes": (500, 10000), "seeds": (0, 1, 2), "eval_every": 250, "patience": 4,
        "val_size": 500, "jigsaw_image_size": 48, "feature_net": "cpu", "match_scale": True}
TINY = {"config": fusion.FusionConfig.for_profile("smoke"), "train_sizes": (48,), "seeds": (0,),
        "eval_every": 4, "patience": 2, "val_size": 32, "jigsaw_image_size": 30, "feature_net": "smoke",
        "match_scale": True}
# "match_scale": every +init VAE rescales its copied backbone to the fresh encoder's feature
# scale (fusion.match_feature_scale). Without it the rotation network's features (about 300x
# a fresh backbone's at N = 500) made that VAE diverge at step 0 (KL 5.6e7, test -ELBO 185275):
# a failure of the set-up, not of the pretext task.


def long_spec(grid: dict) -> dict:
    """What identifies the run: ``fusion.json["long_budget"]["spec"]`` must equal it."""
    return {"config": dataclasses.asdict(grid["config"]), "train_sizes": list(grid["train_sizes"]),
            "seeds": list(grid["seeds"]), "variants": list(VARIANTS), "eval_every": grid["eval_every"],
            "patience": grid["patience"], "val_size": grid["val_size"],
            "jigsaw_image_size": grid["jigsaw_image_size"], "match_scale": grid["match_scale"],
            "data_version": RENDER_VERSION,
            "feature_net": dataclasses.asdict(FeatureNetConfig.for_profile(
                grid["feature_net"], image_size=grid["config"].image_size))}


PRETEXT = ("inpainting", "jigsaw", "rotation")


def pretext_config(kind: str, n: int, seed: int, grid: dict):
    """Chapter 05's config for ``kind`` ("jigsaw" or "rotation") at the grid's profile, on
    ``n`` images, with the grid's pretraining steps (chapter 04's inpainter: the grid's own)."""
    cfg, profile = grid["config"], "smoke" if grid is TINY else "cpu"
    make = {"jigsaw": pretext.JigsawConfig, "rotation": pretext.RotationConfig}[kind]
    return dataclasses.replace(make.for_profile(profile), train_size=n, steps=cfg.pretrain_steps, seed=seed)


def build_pretext(kind: str, grid: dict) -> torch.nn.Module:
    """The untrained network ``kind`` (what :func:`pretrain` trains)."""
    return fusion.InpaintingNet() if kind == "inpainting" else pretext_config(kind, 1, 0, grid).build()


def pretrain(kind: str, n: int, seed: int, grid: dict) -> torch.nn.Module:
    """The pretext network ``kind`` trained on the first ``n`` ToyFaces training images (the
    jigsaw on the same faces drawn at the puzzle's resolution)."""
    cfg = grid["config"]
    if kind == "inpainting":
        return fusion.pretrain_inpainter(ToyFaces(split="train", size=n, image_size=cfg.image_size).images,
                                         cfg, seed=seed)
    pc = pretext_config(kind, n, seed, grid)
    model, images = pc.build(), ToyFaces(split="train", size=n, image_size=pc.image_size).images
    (pretext.train_jigsaw if kind == "jigsaw" else pretext.train_rotation)(model, pc, images=images, progress=False)
    return model.eval()


def cached_state(name: str, make, key: dict) -> tuple[dict, bool]:
    """``make()``'s module state, cached under ``fusion_long/<name>-<hash>.pt``; (state, hit)."""
    made = []
    state = load_or_build(name, lambda: made.append(make()) or made[0].state_dict(), key=key,
                          folder="fusion_long", data_version=RENDER_VERSION)
    return state, not made


def run(grid: dict, out: Path, *, train_only: bool = False, seeds=None, log=print) -> dict | None:
    cfg, spec = grid["config"], long_spec(grid)
    # the cache key leaves out what only the scoring (feature_net) or only the +init VAEs
    # (match_scale, in their cache names) depend on, so pretext networks and plain VAEs are reused
    key = {"long": config_key({k: v for k, v in spec.items() if k not in ("feature_net", "match_scale")})[1]}
    s = cfg.image_size
    train_all = ToyFaces(split="train", size=max(grid["train_sizes"]), image_size=s)
    val = ToyFaces(split="val", size=cfg.probe_size + grid["val_size"], image_size=s).images[cfg.probe_size:]
    probe_set = ToyFaces(split="val", size=cfg.probe_size, image_size=s)   # the grid's probe split
    test_set = ToyFaces(split="test", size=cfg.test_size, image_size=s)
    fnet = None if train_only else load_feature_net(config=FeatureNetConfig(**spec["feature_net"]))
    start, runs = time.time(), []
    for n in grid["train_sizes"]:
        images = train_all.images[:n]
        for seed in (grid["seeds"] if seeds is None else seeds):
            nets = {}
            for kind in PRETEXT:
                state, _ = cached_state(f"{kind}_{n}_{seed}", partial(pretrain, kind, n, seed, grid), key)
                nets[kind] = build_pretext(kind, grid)
                nets[kind].load_state_dict(state)
            for variant in VARIANTS:
                base = {"init_jigsaw": "init", "init_rotation": "init"}.get(variant, variant)
                source = {"init": "inpainting", "init_jigsaw": "jigsaw", "init_rotation": "rotation"}.get(variant)

                # the defaults bind this iteration's values (cached_state calls make right away or never)
                def make(base=base, images=images, seed=seed, nets=nets, source=source):
                    vae, records = fusion.train_variant(base, images, cfg, seed=seed, val_images=val,
                                                        pretrained=nets.get(source), eval_every=grid["eval_every"],
                                                        patience=grid["patience"], match_scale=grid["match_scale"])
                    return _WithRecords(vae, records)
                scaled = "_scaled" if source and grid["match_scale"] else ""
                state, hit = cached_state(f"vae_{variant}{scaled}_{n}_{seed}", make, key)
                if train_only:
                    log(f"[{time.time() - start:7.0f}s] N={n:5d} seed={seed} {variant:14s} "
                        f"{'cached' if hit else 'trained'}")
                    continue
                vae = fusion.VAE(latent_dim=cfg.latent_dim, image_size=s)
                vae.load_state_dict({k[len("vae."):]: v for k, v in state.items() if k.startswith("vae.")})
                vae.eval()
                curve = state["curve"].tolist()                  # (checks, 2): step, val_nelbo
                scores = fusion.score_vae(vae, test_set, probe_set, judge=fnet, n_samples=cfg.n_samples, seed=seed)
                scores["train_nelbo"] = fusion.evaluate_vae(vae, images[:1000], seed=seed)["test_nelbo"]
                best = min(curve, key=lambda c: c[1])
                runs.append({"train_size": n, "variant": variant, "seed": seed, **scores,
                             "best_step": int(best[0]), "val_nelbo": best[1], "steps_run": int(curve[-1][0]),
                             "val_curve": [[int(a), round(b, 2)] for a, b in curve]})
                log(f"[{time.time() - start:7.0f}s] N={n:5d} seed={seed} {variant:14s} "
                    + " ".join(f"{k}={v:.3f}" for k, v in scores.items()) + f" best_step={int(best[0])}")
    if train_only:
        log(f"trained and cached everything in {time.time() - start:.0f} s")
        return None
    result = json.loads(out.read_text()) if out.exists() else {}
    scored = sorted({r["seed"] for r in runs})
    section = merge_seeds(result.get("long_budget"), spec, runs, {
        str(seed): {"command": "python experiments/fusion_long.py" + (" --tiny" if grid is TINY else "")
                    + ("" if seeds is None else f" --seeds {seed}"),
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "wall_seconds_of_call": round(time.time() - start, 1)} for seed in scored}, log=log)
    result["long_budget"] = section
    write_result(out, result)
    return section


def merge_seeds(previous: dict | None, spec: dict, runs: list[dict], by_seed: dict, *, log=print) -> dict:
    """The ``"long_budget"`` section with ``runs`` (some seeds' runs) merged into
    ``previous``: the previous runs of other seeds are kept when ``previous`` has the same
    spec, dropped (with a message) when it does not. ``by_seed``: seed (str) -> how it ran."""
    spec = json.loads(json.dumps(spec))
    if previous is not None and previous.get("spec") != spec:
        log("the committed long_budget section has another spec: its runs are dropped")
        previous = None
    new_seeds = {r["seed"] for r in runs}
    kept = [r for r in (previous or {}).get("runs", []) if r["seed"] not in new_seeds]
    done = sorted({r["seed"] for r in kept + runs})
    return {"spec": spec, "runs": sorted(kept + runs, key=lambda r: (r["seed"], r["train_size"])),
            "seeds_done": done, "complete": done == sorted(spec["seeds"]),
            "by_seed": {**{k: v for k, v in (previous or {}).get("by_seed", {}).items() if int(k) not in new_seeds},
                        **by_seed}}


class _WithRecords(torch.nn.Module):
    """A trained VAE plus its validation curve, stored together in one cached state dict
    (``vae.*`` weights and a ``curve`` buffer of (step, val_nelbo) rows)."""

    def __init__(self, vae: torch.nn.Module, records: list[dict]):
        super().__init__()
        self.vae = vae
        curve = [(r["step"], r["val_nelbo"]) for r in records if "val_nelbo" in r]
        self.register_buffer("curve", torch.tensor(curve, dtype=torch.float64).reshape(-1, 2))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="seconds-long config for the tests")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: course_lib/results_data/fusion.json)")
    parser.add_argument("--train-only", action="store_true", help="train and cache, score nothing")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="these seeds only (scored ones are merged into the committed section)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = TINY if args.tiny else LONG
    out = args.out or (Path(tempfile.gettempdir()) / "fusion_long_tiny.json" if args.tiny else result_path("fusion"))
    section = run(grid, out, train_only=args.train_only, seeds=args.seeds)
    if section is not None:
        print(f"wrote {out}['long_budget'] ({len(section['runs'])} runs, seeds {section['seeds_done']} "
              f"of {section['spec']['seeds']})")


if __name__ == "__main__":
    main()
