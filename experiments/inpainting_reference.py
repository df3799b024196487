"""Chapter 04's reference inpainter: the chapter's own network, trained for longer.

The chapter trains :class:`course_lib.inpainting.InpaintConfig` (``cpu`` profile) for the steps
a live budget allows; this script trains the *same* configuration for many more steps, so
the chapter can show where the same training goes when the budget is not the limit.

    python experiments/inpainting_reference.py --steps 20000       # train (resumes from its checkpoint)
    python experiments/inpainting_reference.py --export 20000      # write the committed weights
    python experiments/inpainting_reference.py --evaluate          # write inpainting.json

Training is resumable: the checkpoint lives in ``--run-dir`` (default
``.cache/inpainting_reference``) and rerunning the command continues from it. The learning
rate is constant and the masks and batches come from seeded generators, so the model at step
k of the long run *is* the model a run of ``--steps k`` ends with; the script keeps the weights
every ``--snapshot-every`` steps (and every 2000 after step 4000), which is how the "hole PSNR
against training steps" curve is measured without one run per budget.

``--export STEP`` writes ``course_lib/results_data/inpainting_reference.pt``: the weights in
float16 (about 0.77 MB) with the config, the ToyFaces render version, the step count and the
command; ``tests/test_inpainting_eval.py`` checks they match ``InpaintConfig`` and the current
drawing, and :func:`course_lib.inpainting_eval.reference_inpainter` loads them.

``--evaluate`` writes ``course_lib/results_data/inpainting.json``: hole PSNR of the network,
Telea, Navier-Stokes and mean fill on the chapter's five test masks
(:data:`course_lib.inpainting_eval.EVAL_MASKS`), over ``--mask-seeds`` mask draws of
``--n-test`` test faces, for the reference and for the live-budget model trained with
``--train-seeds`` seeds (each a fresh run of the chapter's config), plus the curve over the
kept snapshots. One thread by default (``--threads``): it runs beside other work.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

from course_lib.artifacts import read_snapshot, snapshot_callback, snapshot_path, write_reference, write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.images import to_float
from course_lib.inpainting import InpaintConfig, pretrained_inpainter, train_inpainter
from course_lib.inpainting_eval import (
    EVAL_MASKS,
    REFERENCE_PATH,
    fillers,
    hole_psnr_by_seed,
    margin_verdicts,
    mean_std,
    reference_config,
    reference_inpainter,
)
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]

RESULT_PATH = result_path("inpainting")


def keep_snapshot(step: int, every: int) -> bool:
    """Snapshots every ``every`` steps up to step 4000, then every 2000."""
    return step % every == 0 and (step <= 4000 or step % 2000 == 0)


def train(args: argparse.Namespace, config: InpaintConfig) -> None:
    config = dataclasses.replace(config, steps=args.steps)
    model = config.build()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(
        args.run_dir, every=args.snapshot_every, state=lambda: {"weights": model.state_dict()},
        keep=lambda step: keep_snapshot(step, args.snapshot_every))
    start = time.perf_counter()
    history = train_inpainter(model, config, checkpoint=args.run_dir / "checkpoint.pt", progress="line",
                              callbacks=[snapshots])
    print(f"trained to step {history.records[-1]['step']} ({time.perf_counter() - start:.0f} s this call)")


def export(args: argparse.Namespace, config: InpaintConfig, path: Path = REFERENCE_PATH) -> None:
    snap = read_snapshot(snapshot_path(args.run_dir, args.export))
    config = dataclasses.replace(config, steps=snap["step"])
    write_reference(path, state=snap["weights"], config=config, steps=snap["step"], data_version=RENDER_VERSION,
                    loss_last_100=snap["loss"],
                    command=f"python experiments/inpainting_reference.py --steps {snap['step']} && "
                            f"python experiments/inpainting_reference.py --export {snap['step']}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, step {snap['step']})")


def _summarise(per_seed: dict[str, dict[str, list[float]]]) -> dict:
    """{mask: {method: [values]}} -> {mask: {method: mean, method_std: sd}} (2 decimals)."""
    out = {}
    for mask, methods in per_seed.items():
        row = {}
        for method, values in methods.items():
            m, s = mean_std(values)
            row[method], row[f"{method}_std"] = round(m, 2), round(s, 2)
        out[mask] = row
    return out


def evaluate(args: argparse.Namespace, config: InpaintConfig, path: Path = RESULT_PATH) -> dict:
    x = to_float(ToyFaces(split="test", size=args.n_test, image_size=config.image_size).images)
    seeds = list(args.mask_seeds)
    classical = hole_psnr_by_seed(fillers(), x, seeds=seeds)            # {mask: {telea, ns, mean: [per seed]}}

    def net_scores(model) -> dict[str, list[float]]:
        got = hole_psnr_by_seed({"net": fillers(model, config.fill)["net"]}, x, seeds=seeds)
        return {mask: v["net"] for mask, v in got.items()}

    # the live-budget model, one fresh training run per seed (the spread is over training and masks)
    live_cfg = InpaintConfig.for_profile(args.live_profile) if args.live_steps is None else \
        dataclasses.replace(config, steps=args.live_steps)
    live_runs = {}
    for seed in args.train_seeds:
        cfg = dataclasses.replace(live_cfg, seed=seed)
        snap_file = snapshot_path(args.run_dir, cfg.steps)
        if cfg == dataclasses.replace(config, steps=cfg.steps) and snap_file.is_file():
            # the long run with the same config and seed passed through this very model
            # (seeded init, seeded masks and batches, constant learning rate)
            model = config.build()
            model.load_state_dict(read_snapshot(snap_file)["weights"])
            live_runs[seed] = {"source": f"long run, step {cfg.steps}", **net_scores(model)}
        else:
            trained = pretrained_inpainter(cfg, progress=False)   # cached like the chapter's own model
            live_runs[seed] = {"source": "own run", "train_seconds": round(trained.seconds, 1),
                               **net_scores(trained.model)}
        print(f"live seed {seed}: {live_runs[seed]}", flush=True)
    live = {mask: {"net": [v for s in args.train_seeds for v in live_runs[s][mask]], **classical[mask]}
            for mask in EVAL_MASKS}

    reference, ref_steps = None, None
    if Path(args.reference).is_file():
        ref = reference_inpainter(args.reference)
        ref_steps = ref.steps
        reference = {mask: {"net": v, **classical[mask]} for mask, v in net_scores(ref).items()}

    curve = []   # hole PSNR of the long run's snapshots (seed-0 masks only: a cheap trend)
    for snap_file in sorted(args.run_dir.glob("step*.pt")):
        snap = read_snapshot(snap_file)
        model = config.build()
        model.load_state_dict(snap["weights"])
        got = hole_psnr_by_seed({"net": fillers(model, config.fill)["net"]}, x, seeds=seeds[:1])
        curve.append({"step": snap["step"], **{m: round(v["net"][0], 2) for m, v in got.items()}})
        print(curve[-1], flush=True)

    summary = {"live": _summarise(live)}
    if reference is not None:
        summary["reference"] = _summarise(reference)
    result = {
        "command": " ".join(["python", "experiments/inpainting_reference.py", *sys.argv[1:]]),
        "metric": f"hole PSNR (dB), mean over {args.n_test} ToyFaces test faces at {config.image_size} px; "
                  f"means over mask seeds {seeds} (live model: x training seeds {list(args.train_seeds)})",
        "masks": {k: {"kind": kind, "coverage": c} for k, (kind, c) in EVAL_MASKS.items()},
        "data_version": RENDER_VERSION,
        "live_config": dataclasses.asdict(live_cfg),
        "reference_config": (None if ref_steps is None
                             else dataclasses.asdict(dataclasses.replace(config, steps=ref_steps))),
        "load_average": round(os.getloadavg()[0], 2),
        # the default summary is the reference's (what the method reaches); live beside it
        "summary": summary.get("reference", summary["live"]),
        "summary_live": summary["live"],
        **{f"verdicts_{k}": margin_verdicts(v) for k, v in summary.items()},
        "live_runs": {str(k): v for k, v in live_runs.items()},
        "steps_curve": curve,
    }
    write_result(path, result)
    print(f"wrote {path}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20000, help="train to this many steps in all")
    parser.add_argument("--export", type=int, default=None, help="write the committed weights from this snapshot")
    parser.add_argument("--evaluate", action="store_true", help="write course_lib/results_data/inpainting.json")
    parser.add_argument("--snapshot-every", type=int, default=200, help="keep the weights every N steps")
    parser.add_argument("--n-test", type=int, default=500, help="test faces for --evaluate")
    parser.add_argument("--mask-seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--live-profile", default="cpu", help="the live model's InpaintConfig profile")
    parser.add_argument("--live-steps", type=int, default=None, help="override the live model's steps (tests)")
    parser.add_argument("--reference", type=Path, default=REFERENCE_PATH)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "inpainting_reference")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = reference_config()
    if args.evaluate:
        evaluate(args, config)
    elif args.export is not None:
        export(args, config)
    else:
        train(args, config)


if __name__ == "__main__":
    main()
