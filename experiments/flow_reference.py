"""Chapter 09's reference flow model: the chapter's own model, trained for longer.

The same configuration as the live model (:class:`course_lib.flow.FlowConfig`, ``cpu``
profile: chapter 08's U-Net, logit-normal training times), only ``steps`` differs, exactly as
chapter 08's DDPM reference (``experiments/ddpm_reference.py``) is its live model trained
longer: so the two references compare flow matching with the v-DDPM at equal U-Net, batch
and steps.

    python experiments/flow_reference.py --steps 12000        # train (resumes from its checkpoint)
    python experiments/flow_reference.py --evaluate           # score the kept snapshots
    python experiments/flow_reference.py --export 12000       # write the committed weights

The learning rate is constant after the warm-up, so the model at step k of a long run is the
model a run of ``--steps k`` ends with; the script keeps the EMA weights every
``--snapshot-every`` steps. ``--evaluate`` scores them as ``ddpm_reference.py`` scores its
snapshots (n = 500 samples, sample seed 1, against 500 test faces; Euler 25 and Heun 6) and
writes ``course_lib/results_data/flow_reference_steps.json``. ``--export STEP`` writes
``course_lib/results_data/flow_reference.pt`` (float16 EMA weights, config, render version,
command), which :func:`course_lib.flow.reference_flow` loads and ``tests/test_flow.py`` checks.
One thread by default (``--threads``): it runs beside other work on a 2-core machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from course_lib import flow, metrics
from course_lib.artifacts import read_snapshot, snapshot_callback, snapshot_path, write_reference, write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]
STEPS_PATH = result_path("flow_reference_steps")
N_EVAL, SAMPLE_SEED = 500, 1                      # ddpm_reference.py's n and sample seed
SAMPLERS = [("euler", 25), ("heun", 6)]           # chapter 09's primary sampler, and its best at 12 calls
SNAPSHOT = "ema_step"  # the run folder's snapshots: ema_step001000.pt, ...


def train(args: argparse.Namespace) -> None:
    config = dataclasses.replace(flow.reference_config(), steps=args.steps)
    model = config.build()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(args.run_dir, every=args.snapshot_every, prefix=SNAPSHOT,
                                  state=lambda: {"ema": model.ema.state_dict()})
    start = time.perf_counter()
    history = flow.train_flow(model, config, checkpoint=args.run_dir / "checkpoint.pt", progress="line",
                              callbacks=[snapshots])
    print(f"trained to step {history.records[-1]['step']} ({time.perf_counter() - start:.0f} s this call)")


def export(args: argparse.Namespace) -> None:
    snap = read_snapshot(snapshot_path(args.run_dir, args.export, prefix=SNAPSHOT))
    config = dataclasses.replace(flow.reference_config(), steps=snap["step"])
    write_reference(flow.REFERENCE_PATH, state=snap["ema"], key="ema", config=config, steps=snap["step"],
                    data_version=RENDER_VERSION, loss_last_100=snap["loss"],
                    command=f"python experiments/flow_reference.py --steps {snap['step']} && "
                            f"python experiments/flow_reference.py --export {snap['step']}")
    print(f"wrote {flow.REFERENCE_PATH} ({flow.REFERENCE_PATH.stat().st_size / 1e6:.2f} MB, step {snap['step']})")


def evaluate(args: argparse.Namespace) -> None:
    start, load = time.perf_counter(), os.getloadavg()[0]
    config = flow.reference_config()
    net = load_feature_net(config.image_size)
    real = ToyFaces(split="test", size=N_EVAL, image_size=config.image_size).images
    real_feats = net.features(real)

    def score(images) -> dict:
        return metrics.sample_scores(real, images, net=net, real_feats=real_feats)

    identity = {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}
    rows = [{"samples": "real faces (val split)", "step": "",
             **score(ToyFaces(split="val", size=N_EVAL, image_size=config.image_size).images)}]
    for path in sorted(args.run_dir.glob(f"{SNAPSHOT}*.pt")):
        step = int(path.stem.removeprefix(SNAPSHOT))
        if step % args.evaluate_every:
            continue
        model = config.build()
        model.ema.load_state_dict(read_snapshot(path)["ema"])
        for method, steps in SAMPLERS:
            images = flow.sample_flow(model, N_EVAL, steps=steps, method=method, seed=SAMPLE_SEED)
            rows.append({"samples": f"flow, {method} {steps}", "step": step, **score(images)})
            print(rows[-1], flush=True)
    result = {"metric": metrics.frechet_label(N_EVAL, config.image_size), "config": identity,
              "data_version": RENDER_VERSION, "rows": rows}
    write_result(STEPS_PATH, result, script="experiments/flow_reference.py", argv=["", "--evaluate"], start=start,
                 load_at_start=load)
    print(f"wrote {STEPS_PATH}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12000, help="train to this many steps in all")
    parser.add_argument("--export", type=int, default=None, help="write the committed weights from this snapshot")
    parser.add_argument("--evaluate", action="store_true", help="score the kept snapshots (writes a JSON table)")
    parser.add_argument("--evaluate-every", type=int, default=2000, help="score the snapshots of every N steps")
    parser.add_argument("--snapshot-every", type=int, default=1000, help="keep the EMA weights every N steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "flow_reference")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        evaluate(args)
    elif args.export is not None:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
