"""Chapter 11's reference autoencoder: the one its latent flow model generates through.

A latent model can only be as good as its decoder, and the autoencoder needs more steps than
a chapter's live budget (the step table this script writes shows how its reconstructions
improve with steps). This script trains :class:`course_lib.latent.AutoencoderConfig`
(``cpu`` profile; only ``steps`` differs) with snapshots, scores them, and exports one:

    python experiments/latent_reference.py --steps 3000     # train (resumes from its checkpoint)
    python experiments/latent_reference.py --evaluate       # score the snapshots' reconstructions
    python experiments/latent_reference.py --export 3000    # write the committed weights

``--evaluate`` writes ``course_lib/results_data/autoencoder_reference_steps.json``: for each
snapshot, the PSNR of 500 test faces' reconstructions and their scores as samples
(:func:`course_lib.metrics.sample_scores` against the same 500 faces: the floor of any latent
model decoded through it), beside held-out real faces. The committed file is the snapshot at
``latent.REFERENCE_STEPS``; a run given more ``--steps`` resumes from its checkpoint (the
learning rate is constant, so step k of a long run is the model a k-step run ends with). ``--export STEP`` writes
``course_lib/results_data/autoencoder_reference.pt`` (float16 weights, about 1.1 MB), which
:func:`course_lib.latent.reference_autoencoder` loads and ``tests/test_latent.py`` checks.
One thread by default (``--threads``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from course_lib import latent, metrics
from course_lib.artifacts import read_snapshot, snapshot_callback, snapshot_path, write_reference, write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]
STEPS_PATH = result_path("autoencoder_reference_steps")
N_EVAL = 500


def train(args: argparse.Namespace) -> None:
    config = dataclasses.replace(latent.reference_config(), steps=args.steps)
    model = config.build()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(args.run_dir, every=args.snapshot_every,
                                  state=lambda: {"weights": model.state_dict()})
    start = time.perf_counter()
    history = latent.train_autoencoder(model, config, checkpoint=args.run_dir / "checkpoint.pt", progress="line",
                                       callbacks=[snapshots])
    print(f"trained to step {history.records[-1]['step']} ({time.perf_counter() - start:.0f} s this call)")


def evaluate(args: argparse.Namespace) -> None:
    start, load = time.perf_counter(), os.getloadavg()[0]
    config = latent.reference_config()
    net = load_feature_net(config.image_size)
    real = ToyFaces(split="test", size=N_EVAL, image_size=config.image_size).images
    real_feats = net.features(real)
    rows = [{"samples": "real faces (val split)", "step": "",
             **metrics.sample_scores(real, ToyFaces(split="val", size=N_EVAL, image_size=config.image_size).images,
                                     net=net, real_feats=real_feats)}]
    for path in sorted(args.run_dir.glob("step*.pt")):
        model = config.build()
        snap = read_snapshot(path)
        model.load_state_dict(snap["weights"])
        with torch.no_grad():
            recon = model.eval()(real)
        rows.append({"samples": "reconstructions of the test faces", "step": snap["step"],
                     "psnr": round(metrics.psnr(recon, real.float() / 255), 2),
                     **metrics.sample_scores(real, recon, net=net, real_feats=real_feats)})
        print(rows[-1], flush=True)
    result = {"metric": metrics.frechet_label(N_EVAL, config.image_size),
              "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}, "rows": rows}
    write_result(STEPS_PATH, result, script="experiments/latent_reference.py", argv=["", "--evaluate"], start=start,
                 load_at_start=load)
    print(f"wrote {STEPS_PATH}")


def export(args: argparse.Namespace) -> None:
    snap = read_snapshot(snapshot_path(args.run_dir, args.export))
    config = dataclasses.replace(latent.reference_config(), steps=snap["step"])
    write_reference(latent.REFERENCE_PATH, state=snap["weights"], config=config, steps=snap["step"],
                    data_version=RENDER_VERSION, loss_last_100=snap["loss"],
                    command=f"python experiments/latent_reference.py --steps {snap['step']} && "
                            f"python experiments/latent_reference.py --export {snap['step']}")
    print(f"wrote {latent.REFERENCE_PATH} ({latent.REFERENCE_PATH.stat().st_size / 1e6:.2f} MB, step {snap['step']})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=latent.REFERENCE_STEPS, help="train to this many steps in all")
    parser.add_argument("--export", type=int, default=None, help="write the committed weights from this snapshot")
    parser.add_argument("--evaluate", action="store_true", help="score the snapshots (writes a JSON table)")
    parser.add_argument("--snapshot-every", type=int, default=1000, help="keep the weights every N steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "autoencoder_reference")
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
