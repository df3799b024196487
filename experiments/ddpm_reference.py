"""Chapter 08's reference diffusion model: the chapter's own model, trained for longer.

The chapter trains :class:`course_lib.diffusion.DDPMConfig` (``cpu`` profile) for the steps a
live budget allows; this script trains the *same* configuration for many more steps, so
the chapter can show what the method reaches when the budget is not the limit.

    python experiments/ddpm_reference.py --steps 12000          # train (resumes from its checkpoint)
    python experiments/ddpm_reference.py --export 12000         # write the committed weights
    python experiments/ddpm_reference.py --evaluate             # score the kept snapshots
    python experiments/ddpm_reference.py --prediction eps --run-dir .cache/ddpm_eps --steps 12000
    python experiments/ddpm_reference.py --prediction eps --run-dir .cache/ddpm_eps --evaluate
                                                                # the ablation: the noise as target

Training is resumable: the checkpoint lives in ``--run-dir`` (default ``.cache/ddpm_reference``)
and rerunning the command continues from it. The learning rate is constant after the
warm-up, so the model at step k of a long run *is* the model a run of ``--steps k`` ends
with (the step budget changes nothing else); the script keeps the EMA weights every
``--snapshot-every`` steps, which is how the chapter's "how many steps give faces" table
was measured without training one model per budget.

``--export STEP`` writes ``course_lib/results_data/ddpm_reference.pt``: the EMA noise predictor's
weights in float16 (about 2.6 MB), with the config, the ToyFaces render version, the step
count and the command; ``tests/test_diffusion.py`` checks they match ``DDPMConfig`` and the
current ToyFaces drawing, and :func:`course_lib.diffusion.reference_ddpm` loads them.
``--evaluate`` scores the snapshots of every ``--evaluate-every`` steps (and chapter 02's VAE, and a second set of real
faces as the floor) with the chapter's metric: the domain Frechet distance, precision and
recall of ``n = 500`` DDIM samples (25 steps) against 500 held-out test faces, and writes
``course_lib/results_data/ddpm_reference_steps.json``: how sample quality grows with training
steps, which is what tells how long a live budget must be.
One thread by default (``--threads``): it runs beside other work on a 2-core machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from course_lib import metrics
from course_lib.artifacts import (
    read_snapshot,
    reference_mismatch,
    snapshot_callback,
    snapshot_path,
    write_reference,
    write_result,
)
from course_lib.diffusion import PREDICTIONS, REFERENCE_PATH, reference_config, sample_ddim, train_ddpm
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces
from course_lib.vae import VAEConfig, pretrained_vae

ROOT = Path(__file__).resolve().parents[1]


SNAPSHOT = "ema_step"  # the run folder's snapshots: ema_step001000.pt, ...


def train(args: argparse.Namespace) -> None:
    config = dataclasses.replace(reference_config(args.prediction), steps=args.steps)
    model = config.build()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(args.run_dir, every=args.snapshot_every, prefix=SNAPSHOT,
                                  state=lambda: {"ema": model.ema.state_dict()})
    start = time.perf_counter()
    history = train_ddpm(model, config, checkpoint=args.run_dir / "checkpoint.pt", progress="line",
                         callbacks=[snapshots])
    print(f"trained to step {history.records[-1]['step']} ({time.perf_counter() - start:.0f} s this call)")


def export(args: argparse.Namespace) -> None:
    snap = read_snapshot(snapshot_path(args.run_dir, args.export, prefix=SNAPSHOT))
    config = dataclasses.replace(reference_config(), steps=snap["step"])
    write_reference(REFERENCE_PATH, state=snap["ema"], key="ema", config=config, steps=snap["step"],
                    data_version=RENDER_VERSION, loss_last_100=snap["loss"],
                    command=f"python experiments/ddpm_reference.py --steps {snap['step']} && "
                            f"python experiments/ddpm_reference.py --export {snap['step']}")
    print(f"wrote {REFERENCE_PATH} ({REFERENCE_PATH.stat().st_size / 1e6:.2f} MB, step {snap['step']})")


STEPS_PATH = result_path("ddpm_reference_steps")
N_EVAL, DDIM_STEPS = 500, 25  # the chapter's cpu-profile n_eval and sample_steps


def evaluate(args: argparse.Namespace) -> None:

    config = reference_config(args.prediction)
    net = load_feature_net(config.image_size)
    real = ToyFaces(split="test", size=N_EVAL, image_size=config.image_size).images
    real_feats = net.features(real)

    def score(images) -> dict:
        return metrics.sample_scores(real, images[:N_EVAL], net=net, real_feats=real_feats,
                                     scores=("frechet", "precision", "recall"), k_precision=3)

    # the config without the step budget (a snapshot's step is in its row); rows of an earlier
    # --evaluate for the same config and drawing are kept, not recomputed
    # rows of the other prediction target (the ablation) are kept as they are
    identity = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("steps", "prediction")}
    done, others = {}, []
    if STEPS_PATH.is_file():
        old = json.loads(STEPS_PATH.read_text())
        if not reference_mismatch(old, config=config, data_version=RENDER_VERSION, ignore=("steps", "prediction")):
            done = {r["step"]: r for r in old["rows"] if r["step"] != "" and r.get("prediction") == config.prediction}
            others = [r for r in old["rows"] if r["step"] != "" and r.get("prediction") in PREDICTIONS
                      and r["prediction"] != config.prediction]
    vae = pretrained_vae(VAEConfig.for_profile("cpu")).model
    rows = [{"samples": "real faces (val split)", "step": "",
             **score(ToyFaces(split="val", size=N_EVAL, image_size=config.image_size).images)},
            {"samples": "chapter-02 VAE (cpu profile)", "step": "",
             **score(vae.sample(N_EVAL, generator=torch.Generator().manual_seed(1)).cpu())}]
    for path in sorted(args.run_dir.glob(f"{SNAPSHOT}*.pt")):
        step = int(path.stem.removeprefix(SNAPSHOT))
        if step % args.evaluate_every:
            continue
        if step in done:
            rows.append(done[step])
            continue
        snap = read_snapshot(path)
        model = config.build()
        model.ema.load_state_dict(snap["ema"])
        rows.append({"samples": f"DDPM ({config.prediction}), DDIM {DDIM_STEPS} steps", "step": snap["step"],
                     "prediction": config.prediction, **score(sample_ddim(model, N_EVAL, steps=DDIM_STEPS, seed=1))})
        print(rows[-1], flush=True)
    result = {"command": "python experiments/ddpm_reference.py --evaluate",
              "metric": metrics.frechet_label(N_EVAL, config.image_size),
              "config": identity, "data_version": RENDER_VERSION,
              "load_average": round(os.getloadavg()[0], 2), "rows": rows + others}
    write_result(STEPS_PATH, result)
    print(f"wrote {STEPS_PATH}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12000, help="train to this many steps in all")
    parser.add_argument("--export", type=int, default=None, help="write the committed weights from this snapshot")
    parser.add_argument("--evaluate", action="store_true", help="score the kept snapshots (writes a JSON table)")
    parser.add_argument("--evaluate-every", type=int, default=1000, help="score the snapshots of every N steps")
    parser.add_argument("--snapshot-every", type=int, default=1000, help="keep the EMA weights every N steps")
    parser.add_argument("--prediction", choices=PREDICTIONS, default=None,
                        help="train/score the same config with this prediction target (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "ddpm_reference")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        evaluate(args)
    elif args.export is not None:
        if args.prediction not in (None, reference_config().prediction):
            parser.error("--export writes the reference: the config's own prediction target only")
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
