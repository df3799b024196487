"""What a wider U-Net and a longer EMA buy the reference flow model, at equal CPU time.

Chapter 08's U-Net trained with chapter 09's flow matching recipe for 12000 steps
(``experiments/flow_reference.py``, ``flow_reference_steps.json``) stops improving after about
8000 steps at a constant learning rate: the mark of a model short of capacity, or of weights
that jitter (a longer average would smooth them). This study asks both questions:

- arm ``base``: chapter 08's U-Net, the ``cpu`` profile's configuration; its snapshots and
  scores are ``experiments/flow_reference.py``'s long run;
- arm ``wide``: the same recipe with twice the channels at full and half resolution
  (:data:`ARMS`; its float16 weights would fit the 10 MB the committed references share,
  ``tests/test_flow_capacity.py``), trained with snapshots every 1000
  steps, among them the step that costs what the base run's 12000 cost (``--time`` measures
  the seconds per step of each arm on an idle machine);
- in the wide run, beside the model's own EMA, a second average of the same weights with
  three times its horizon: a paired comparison. The model's EMA (:class:`AveragedNet`) decays
  by ``min(0.9995, (1 + k) / (10 + k)) = 1 - 9 / (10 + k)`` at step k (the cap only binds
  after 18000 steps), so it averages about the last k / 9 steps; the second one decays by
  ``1 - 3 / (10 + k)`` and averages about the last k / 3.

Primary metric, chosen before the run: the domain Frechet distance of n = 500 Heun-6
samples (sample seed 1) against 500 ToyFaces test faces, as ``flow_reference.py --evaluate``
scores the base run (Euler 25 and Heun 6 ending with an Euler step reported beside it). One
training run per arm: a reference model is trained once, and chapter 09 sets each difference
against the spread of three training seeds of one recipe (``flow_study.json``, Heun 6).

    python experiments/flow_capacity.py --time                 # seconds per step, each arm (idle machine)
    python experiments/flow_capacity.py --train wide           # resumes from its checkpoint
    python experiments/flow_capacity.py --evaluate             # writes results_data/flow_capacity.json

One thread by default (``--threads``): it runs beside other work on a 2-core machine.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch

from course_lib import flow, metrics
from course_lib.artifacts import read_snapshot, snapshot_callback, write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]
OUT = result_path("flow_capacity")
REFERENCE_STEPS = result_path("flow_reference_steps")
N_EVAL, SAMPLE_SEED = 500, 1                      # flow_reference.py's n and sample seed
SAMPLERS = [("heun", 6), ("euler", 25), ("heun_euler_last", 6)]   # primary first
BASE_STEPS = 12000                                # the reference run's length
EMA = "1 - 9 / (10 + k)"                          # the model's own EMA's decay at step k (horizon ~k/9)
LONG_EMA = "1 - 3 / (10 + k)"                    # the second average's decay at step k (horizon ~k/3)
ARMS = {"base": {},
        "wide": {"stem": 32, "widths": (64, 96, 128), "decoder_widths": (96, 48, 32)}}


def arm_config(arm: str) -> flow.FlowConfig:
    return dataclasses.replace(flow.FlowConfig.for_profile("cpu"), **ARMS[arm])


def seconds_per_step(arm: str, steps: int = 30) -> float:
    """Median seconds of one training step of ``arm`` (after 5 warm-up steps)."""
    config = dataclasses.replace(arm_config(arm), steps=steps + 5, warmup=1)
    model = config.build()
    stamps = []
    flow.train_flow(model, config, progress=False, callbacks=[(1, lambda step, h: stamps.append(time.perf_counter()))])
    gaps = [b - a for a, b in zip(stamps[5:], stamps[6:])]
    return statistics.median(gaps)


def load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def time_arms(args) -> None:
    start, load_at_start = time.perf_counter(), os.getloadavg()[0]
    per_step = {arm: [] for arm in ARMS}
    for _ in range(3):                                     # alternate, so drift hits both
        for arm in ARMS:
            per_step[arm].append(seconds_per_step(arm))
    timing = {arm: statistics.median(v) for arm, v in per_step.items()}
    ratio = timing["wide"] / timing["base"]
    result = load()
    result["timing"] = {"seconds_per_step": timing, "wide_over_base": ratio, "threads": torch.get_num_threads(),
                        "load_at_start": load_at_start,
                        "equal_time_steps": int(round(BASE_STEPS / ratio, -3))}
    print(json.dumps(result["timing"], indent=1))
    write_result(OUT, result, script="experiments/flow_capacity.py", argv=["", "--time"], start=start,
                 load_at_start=load_at_start)


def attach_long_ema(model) -> tuple[int, object]:
    """Give ``model`` (an AveragedNet) a second average ``long_ema`` (a submodule, so the
    checkpoint carries it) and return the every-step callback that updates it."""
    model.long_ema = copy.deepcopy(model.ema).requires_grad_(False)

    @torch.no_grad()
    def update(step: int, history) -> None:
        d = 1 - 3 / (10 + step)                               # AveragedNet's is 1 - 9 / (10 + k)
        for e, p in zip(model.long_ema.parameters(), model.net.parameters()):
            e.lerp_(p, 1 - d)
        for e, b in zip(model.long_ema.buffers(), model.net.buffers()):
            e.copy_(b)
    return 1, update


def train(args) -> None:
    if "timing" not in load():
        raise SystemExit("run --time first: it measures the wide arm's steps at equal CPU time")
    steps = args.steps
    if args.train != "wide":
        raise SystemExit("the base arm is the reference run: python experiments/flow_reference.py --steps 12000")
    config = dataclasses.replace(arm_config("wide"), steps=steps)
    model = config.build()
    long_ema = attach_long_ema(model)
    run_dir = args.run_dir / "wide"
    run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(run_dir, every=1000, prefix="ema_step",
                                  state=lambda: {"ema": model.ema.state_dict(),
                                                 "long_ema": model.long_ema.state_dict()})
    start = time.perf_counter()
    flow.train_flow(model, config, checkpoint=run_dir / "checkpoint.pt", progress="line",
                    callbacks=[long_ema, snapshots])
    print(f"trained wide to {steps} steps ({time.perf_counter() - start:.0f} s this call)")


def evaluate(args) -> None:
    """Score every 2000th snapshot of the wide run, and the one at equal CPU time, where the file
    lacks them (resumable: the file is written after each snapshot): both averages with Heun 6
    (the primary sampler), the model's own EMA also with Euler 25 and with Heun 6 ending in an
    Euler step."""
    start, load_at_start = time.perf_counter(), os.getloadavg()[0]
    config = arm_config("wide")
    net = load_feature_net(config.image_size)
    real = ToyFaces(split="test", size=N_EVAL, image_size=config.image_size).images
    real_feats = net.features(real)
    result = load()
    result.update({"metric": metrics.frechet_label(N_EVAL, config.image_size), "primary": "heun 6",
                   "arms": {arm: {k: v for k, v in dataclasses.asdict(arm_config(arm)).items() if k != "steps"}
                            for arm in ARMS},
                   "parameters": {arm: sum(p.numel() for p in arm_config(arm).build().net.parameters())
                                  for arm in ARMS},
                   "averages": {"ema": EMA, "long_ema": LONG_EMA}, "data_version": RENDER_VERSION})
    result["rows"] = [{"arm": "base", "ema": EMA, "step": r["step"], "sampler": r["samples"].removeprefix("flow, "),
                       **{k: r[k] for k in metrics.QUALITY}}
                      for r in json.loads(REFERENCE_STEPS.read_text())["rows"] if r["step"]] + [
                      r for r in result.get("rows", []) if r["arm"] == "wide"]
    done = {(r["step"], r["ema"], r["sampler"]) for r in result["rows"] if r["arm"] == "wide"}
    for path in sorted((args.run_dir / "wide").glob("ema_step*.pt")):
        snap = read_snapshot(path)
        if snap["step"] % 2000 and snap["step"] != result["timing"]["equal_time_steps"]:
            continue
        for key, decay, samplers in (("ema", EMA, SAMPLERS), ("long_ema", LONG_EMA, SAMPLERS[:1])):
            model = config.build()
            model.ema.load_state_dict(snap[key])
            for method, n_steps in samplers:
                name = f"{method} {n_steps}"
                if (snap["step"], decay, name) in done:
                    continue
                images = flow.sample_flow(model, N_EVAL, steps=n_steps, method=method, seed=SAMPLE_SEED)
                scores = metrics.sample_scores(real, images, net=net, real_feats=real_feats)
                result["rows"].append({"arm": "wide", "ema": decay, "step": snap["step"], "sampler": name,
                                       **scores, "grain": round(metrics.grain(images), 4)})
                print(result["rows"][-1], flush=True)
        write_result(OUT, result, script="experiments/flow_capacity.py", argv=["", "--evaluate"], start=start,
                     load_at_start=load_at_start)
    print(f"wrote {OUT}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", action="store_true", help="measure seconds per step of each arm")
    parser.add_argument("--train", choices=list(ARMS), help="train an arm (resumes from its checkpoint)")
    parser.add_argument("--evaluate", action="store_true", help="score the snapshots (writes the JSON)")
    parser.add_argument("--steps", type=int, default=10000,
                        help="train the wide arm to this many steps (its snapshots include the equal-time step)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "flow_capacity")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.time:
        time_arms(args)
    elif args.train:
        train(args)
    elif args.evaluate:
        evaluate(args)
    else:
        parser.error("say --time, --train ARM or --evaluate")


if __name__ == "__main__":
    main()
