"""Chapter 03's reference generators: the chapter's DCGAN and WGAN-GP, trained for longer.

The chapter trains :func:`course_lib.gan_reference.reference_config` (the ``cpu`` profile's
DCGAN, and its WGAN-GP) for the steps a live budget allows; this script trains the *same*
configurations for at least ten times as many steps, so the chapter can show where the same
training goes when the budget is not the limit.

    python experiments/gan_reference.py --model dcgan               # train 10x the chapter's steps (resumes)
    python experiments/gan_reference.py --model dcgan --export STEP  # write the committed weights
    python experiments/gan_reference.py --model wgan_gp             # the same for the WGAN-GP

Training is resumable: the checkpoint lives in ``--run-dir`` (default ``.cache/gan_reference``,
gitignored) and rerunning the command continues from it. Adam's learning rate is constant,
so the generator at step k of a long run *is* the one a run of ``--steps k`` ends with; the
script keeps the generator (and an exponential moving average of its weights, decay 0.999,
which does not change training) every ``--snapshot-every`` steps.

``--export STEP`` writes ``course_lib/results_data/<model>_reference.pt``: the generator's
weights in float16, the config, the ToyFaces render version, the step count and the command
(about 0.74 MB each at width 32). Which weights: the trained generator or the moving average
of its weights, whichever has the lower domain Frechet distance on ``--val-size`` ToyFaces
*validation* faces (the file records both numbers; the test faces stay unseen for the
chapter's comparison). The average is a read-out only, so the choice changes no training.
``tests/test_gan_reference.py`` checks they match the chapter's config and the current
ToyFaces drawing; :func:`course_lib.gan_reference.reference_generator` loads them.
One thread by default (``--threads``): it runs beside other work on a 2-core machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from course_lib import gan
from course_lib.artifacts import read_snapshot, snapshot_callback, snapshot_path, write_reference
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.gan_reference import REFERENCE_NAMES, REFERENCE_PATHS, reference_config
from course_lib.metrics import sample_scores
from course_lib.toyfaces import ToyFaces

ROOT = Path(__file__).resolve().parents[1]
EMA_DECAY = 0.999  # tracked in every run, used when the chapter's config asks for it


def training_config(name: str, steps: int) -> gan.GANConfig:
    """The chapter's config with ``steps``; the EMA copy is always kept (it reads G's weights
    after each G step and never feeds back, so G and D train exactly as without it)."""
    config = reference_config(name)
    return dataclasses.replace(config, steps=steps, ema_decay=config.ema_decay or EMA_DECAY)


SNAPSHOT = "generator_step"  # the run folder's snapshots: generator_step002000.pt, ...


def train(args: argparse.Namespace) -> None:
    config = training_config(args.model, args.steps)
    models = gan.build_models(config)
    run_dir = args.run_dir / args.model
    run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(run_dir, every=args.snapshot_every, prefix=SNAPSHOT, loss=None,
                                  state=lambda: {"generator": models["generator"].state_dict(),
                                                 "generator_ema": models["generator_ema"].state_dict()})
    start = time.perf_counter()
    history = gan.train_gan(models, config, checkpoint=run_dir / "checkpoint.pt", progress="line",
                            checkpoint_every=args.snapshot_every, callbacks=[snapshots])
    print(f"{args.model}: trained to step {history.records[-1]['step']} "
          f"({time.perf_counter() - start:.0f} s this call)", flush=True)


def validation_frechet(generators: dict[str, torch.nn.Module], image_size: int, n: int) -> dict[str, float]:
    """Domain Frechet distance of ``n`` samples of each generator against ``n`` validation faces."""
    net = load_feature_net(image_size)
    real = ToyFaces(split="val", size=n, image_size=image_size).images
    real_feats = net.features(real)
    return {name: sample_scores(real, gan.generate(g, n, seed=0), net=net, real_feats=real_feats,
                                scores=("frechet",))["frechet"]
            for name, g in generators.items()}


def export(args: argparse.Namespace, *, out: Path | None = None) -> Path:
    run_dir = args.run_dir / args.model
    snap = read_snapshot(snapshot_path(run_dir, args.export, prefix=SNAPSHOT))
    config = dataclasses.replace(reference_config(args.model), steps=snap["step"])
    readouts = {}
    for key in ("generator", "generator_ema"):
        readouts[key], _ = gan.build(config)
        readouts[key].load_state_dict(snap[key])
    scores = validation_frechet(readouts, config.image_size, args.val_size)
    chosen = min(scores, key=scores.get)
    weights = (f"exponential moving average of the generator's weights (decay {EMA_DECAY:g})"
               if chosen == "generator_ema" else "the trained generator")
    out = out or REFERENCE_PATHS[args.model]
    write_reference(out, state=snap[chosen], key="generator", config=config, steps=snap["step"],
                    data_version=RENDER_VERSION, weights=weights,
                    validation_frechet={**scores, "n": args.val_size},
                    command=f"python experiments/gan_reference.py --model {args.model} --steps {snap['step']} && "
                            f"python experiments/gan_reference.py --model {args.model} --export {snap['step']}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, step {snap['step']}, {weights}; "
          f"validation Frechet {scores})")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=REFERENCE_NAMES, required=True)
    parser.add_argument("--steps", type=int, default=None,
                        help="train to this many discriminator steps in all (default: 10x the chapter's)")
    parser.add_argument("--export", type=int, default=None, help="write the committed weights from this snapshot")
    parser.add_argument("--snapshot-every", type=int, default=2000, help="keep G (and its EMA) every N steps")
    parser.add_argument("--val-size", type=int, default=1000, help="validation faces that choose the exported weights")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "gan_reference")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 10 * reference_config(args.model).steps
    if args.steps <= 0 or args.snapshot_every <= 0:
        parser.error("--steps and --snapshot-every must be positive")
    torch.set_num_threads(args.threads)
    if args.export is not None:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
