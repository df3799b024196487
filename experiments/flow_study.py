"""Flow matching against chapter 08's v-prediction DDPM, at chapter 08's live budget.

Every arm trains the same U-Net (chapter 08's ``cpu`` TimeUNet, 32 px) for the same number
of steps at the same batch size, so the arms cost the same CPU time per step: the DDPM step
and the flow matching step differ only in how the target is formed (a few element-wise
operations beside the U-Net's forward and backward). Arms:

- ``ddpm_v``: chapter 08's live model as it was when the study ran (``DDPMConfig``, cosine
  schedule, v-prediction, the plain loss: ``min_snr=None``), DDIM 25;
- ``ddpm_v_minsnr5``: the same with Min-SNR-5 loss weighting (Hang et al. 2023), added after the
  first four arms ran, to ask whether the DDPM's gap to the flows is its loss weighting (it won,
  and chapter 08's profiles train with it since);
- ``flow_uniform``: rectified flow (``course_lib.flow``), uniform training times;
- ``flow_logit_normal``: logit-normal training times (Esser et al. 2024);
- ``flow_logit_normal_flip``: and half the faces mirrored (ToyFaces are symmetric).

Primary metric, chosen before the run: the domain Frechet distance of n = 500 samples
(sample seed 1) against 500 ToyFaces test images, Euler 25 steps for the flows (25 model
calls, as DDIM 25 for the DDPM). Beside it: fidelity and diversity (density and coverage),
the kernel distance (KID's polynomial MMD) and, for the flows, the quality-versus-NFE curve
(Euler 5/10/25/50 and Heun 3/6/12, i.e. 6/12/24 calls). Three training seeds per arm; the
spread over training seeds is the noise a difference must beat.

    python experiments/flow_study.py --arms ddpm_v flow_uniform --seeds 0 1 2
    python experiments/flow_study.py --figure        # docs/figures/flow_study_grid.png

Resumable: every finished (arm, seed) row is kept in
``course_lib/results_data/flow_study.json`` and skipped when asked for again; a run in
progress resumes from its checkpoint in ``--run-dir``. One thread by default (``--threads``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from course_lib import flow, metrics  # noqa: E402
from course_lib.artifacts import read_snapshot, update_result, write_snapshot  # noqa: E402
from course_lib.diffusion import DDPMConfig, sample_ddim, train_ddpm  # noqa: E402
from course_lib.facedraw import RENDER_VERSION  # noqa: E402
from course_lib.feature_net import load_feature_net  # noqa: E402
from course_lib.plots import show_images  # noqa: E402
from course_lib.results import result_path  # noqa: E402
from course_lib.toyfaces import ToyFaces  # noqa: E402

OUT = result_path("flow_study")
N_EVAL = 500
SAMPLE_SEED = 1
PRIMARY = {"euler": 25}  # the flows' primary sampler; the DDPM's is DDIM 25
NFE_CURVE = [("euler", 5), ("euler", 10), ("euler", 25), ("euler", 50), ("heun", 3), ("heun", 6), ("heun", 12)]


def arm_config(arm: str, seed: int, steps: int | None = None):
    base = dict(seed=seed) if steps is None else dict(seed=seed, steps=steps)
    if arm.startswith("ddpm_v"):   # the plain loss, or Min-SNR-gamma
        return dataclasses.replace(DDPMConfig.for_profile("cpu"), **base, min_snr=MIN_SNR.get(arm))
    flows = {"flow_uniform": {"time_sampling": "uniform"}, "flow_logit_normal": {"time_sampling": "logit_normal"},
             "flow_logit_normal_flip": {"time_sampling": "logit_normal", "flip": True}}
    if arm not in flows:
        raise SystemExit(f"unknown arm {arm!r}; arms: {ARMS}")
    return dataclasses.replace(flow.FlowConfig.for_profile("cpu"), **base, **flows[arm])


ARMS = ("ddpm_v", "flow_uniform", "flow_logit_normal", "flow_logit_normal_flip", "ddpm_v_minsnr5")
MIN_SNR = {"ddpm_v_minsnr5": 5.0}   # Hang et al.'s gamma


def trained(arm: str, seed: int, run_dir: Path, steps: int | None = None):
    """The arm's model after its full budget (resumes from its checkpoint), and seconds per step."""
    config = arm_config(arm, seed, steps)
    model = config.build()
    fit = train_ddpm if arm.startswith("ddpm_v") else flow.train_flow
    start = time.perf_counter()
    history = fit(model, config, progress="line", checkpoint=run_dir / f"{arm}_seed{seed}.pt")
    steps_run = len(history.records) or 1
    return model.eval(), config, (time.perf_counter() - start) / steps_run


def score(net, real_feats, real_images, images) -> dict:
    return metrics.sample_scores(real_images, images, net=net, real_feats=real_feats)


def samples(model, arm: str, method: str, steps: int) -> torch.Tensor:
    if arm.startswith("ddpm_v"):
        return sample_ddim(model, N_EVAL, steps=steps, seed=SAMPLE_SEED)
    return flow.sample_flow(model, N_EVAL, steps=steps, method=method, seed=SAMPLE_SEED)


def load(out: Path) -> dict:
    if out.is_file():
        result = json.loads(out.read_text())
        if result.get("data_version") == RENDER_VERSION:
            return result
    return {"metric": metrics.frechet_label(N_EVAL, 32), "data_version": RENDER_VERSION, "n": N_EVAL,
            "primary": "frechet, Euler 25 (flows) / DDIM 25 (ddpm_v)", "rows": []}


def run(args) -> None:
    start, load_at_start = time.perf_counter(), os.getloadavg()[0]
    result = load(args.out)
    net = load_feature_net(32)
    real_images = ToyFaces(split="test", size=N_EVAL, image_size=32).images
    real_feats = net.features(real_images)
    for arm in args.arms:
        for seed in args.seeds:
            if any(r["arm"] == arm and r["seed"] == seed for r in result["rows"]):
                print(f"{arm} seed {seed}: kept from {args.out.name}")
                continue
            model, config, per_step = trained(arm, seed, args.run_dir, args.steps)
            curve = [("ddim", 25)] if arm.startswith("ddpm_v") else NFE_CURVE
            row = {"arm": arm, "seed": seed, "steps": config.steps, "seconds_per_step": round(per_step, 4),
                   "config": json.loads(json.dumps(dataclasses.asdict(config))), "min_snr": MIN_SNR.get(arm),
                   "samplers": []}
            for method, steps in curve:
                nfe = steps if method == "ddim" else flow.nfe(method, steps)   # DDIM: one call a step
                row["samplers"].append({"method": method, "steps": steps, "nfe": nfe,
                                        **score(net, real_feats, real_images, samples(model, arm, method, steps))})
                print(arm, seed, row["samplers"][-1], flush=True)
            primary = next(s for s in row["samplers"] if s["steps"] == 25 and s["method"] in ("ddim", "euler"))
            row.update({k: primary[k] for k in ("frechet", "kid", "fidelity", "diversity")})
            write_snapshot(args.run_dir / f"{arm}_seed{seed}_ema.pt", ema=model.ema.state_dict())

            def keep(result, arm=arm, seed=seed, row=row):
                result["rows"] = [r for r in result["rows"] if (r["arm"], r["seed"]) != (arm, seed)] + [row]

            result = update_result(args.out, keep, lock=args.run_dir / "results.lock",   # processes may share it
                                   script="experiments/flow_study.py", argv=sys.argv, start=start,
                                   load_at_start=load_at_start, read=lambda: load(args.out))


def figure(args) -> None:
    """The first 32 samples (sample seed 0) of each arm's seed-0 model beside 32 test faces."""
    import matplotlib.pyplot as plt

    rows = [("real ToyFaces (test)", ToyFaces(split="test", size=32, image_size=32).images.float() / 255)]
    for arm in ARMS:
        path = args.run_dir / f"{arm}_seed0_ema.pt"
        if not path.is_file():
            continue
        model = arm_config(arm, 0).build()
        model.ema.load_state_dict(read_snapshot(path)["ema"])
        model.eval()
        if arm.startswith("ddpm_v"):
            x = sample_ddim(model, 32, steps=25, seed=0)
        else:
            x = flow.sample_flow(model, 32, steps=25, seed=0)
        rows.append((arm + (", DDIM 25" if arm.startswith("ddpm_v") else ", Euler 25"), x))
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.8 * len(rows)))
    for ax, (title, x) in zip(axes, rows):
        show_images(x, nrow=16, ax=ax, title=title, fontsize=9)
    fig.tight_layout()
    out = ROOT / "docs" / "figures" / "flow_study_grid.png"
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "flow_study")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="override the budget (a quick check; not the study)")
    parser.add_argument("--figure", action="store_true", help="draw the seed-0 grids of every trained arm")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    figure(args) if args.figure else run(args)


if __name__ == "__main__":
    main()
