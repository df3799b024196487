"""The command-line trainer: the course's models, outside a notebook, at any scale.

    python -m course_lib.train vae --data toyfaces --image-size 32 --steps 1200 --out runs/vae
    python -m course_lib.train dcgan --data celeba --image-size 64 --steps 20000 --out runs/dcgan
    torchrun --standalone --nproc_per_node=8 -m course_lib.train vae --data celeba ...

Every flag maps onto a field of the model's config dataclass (``--image-size`` ->
``image_size``, ``--steps`` -> ``steps``, ``--batch-size`` -> ``batch_size``, the global
batch, ``--seed`` -> ``seed``); ``--profile`` picks the dataclass's profile instance they
override. The trainers are the notebooks' own (``train_vae``, ``train_gan``...), so a
model trained here is the model a chapter trains, on more data for longer.

``--out DIR`` holds ``checkpoint.pt`` (rerunning the same command resumes from it, and
with a larger ``--steps`` trains on; a smaller one, or any other change of configuration,
is refused: a checkpoint cannot go back),
``config.json``, ``samples.png`` and
``metrics.json``: ``{"model", "config", "data", "runtime", "steps", "seconds",
"history": [{"step": ..., "loss": ..., ...}, ...]}``. Both record the configuration the run
actually used: with fewer training images than ``--batch-size`` (a small ``--train-size``, a
small image folder), the batch is the whole set, the run says so, and ``batch_size`` and
``train_size`` hold the numbers used. Under ``torchrun`` each process takes its share of every
global batch (DistributedDataParallel); only rank 0 writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torchvision.utils import save_image

from course_lib import diffusion, gan, inpainting
from course_lib.artifacts import write_result
from course_lib.atomic import atomic_write
from course_lib.checkpoint import read_checkpoint
from course_lib.datasets import load_dataset
from course_lib.images import to_float
from course_lib.inputs import SEED_MAX
from course_lib.masks import make_masks
from course_lib.registry import RECIPES
from course_lib.runtime import runtime, seed_everything


class Model(NamedTuple):
    """How the CLI builds, trains and shows one model family: a :mod:`course_lib.registry`
    recipe (the ``pretrained_*`` functions' own), plus the CLI's sample grid."""

    config: Callable[[str | None], object]          # profile -> config dataclass
    build: Callable[[object], object]               # config -> module (or {name: module})
    train: Callable[..., object]                    # the chapter's trainer
    size_field: str                                 # the config field holding the training-set size
    samples: Callable[[object, object, torch.Tensor], torch.Tensor] | None  # -> (n, 3, S, S) in [0, 1]


def _from_registry(name: str, samples, *, config=None) -> Model:
    """The CLI's entry for registry model ``name``; ``config`` replaces its profile configs."""
    recipe = RECIPES[name]
    return Model(config or recipe.config, recipe.build, recipe.train, "train_size", samples)


def _vae_samples(model, config, images):
    return model.sample(64, generator=torch.Generator().manual_seed(0)).cpu()


def _gan_samples(models, config, images):
    return gan.generate(models["generator"], 64, seed=0)


def _inpainting_samples(model, config, images):
    x = to_float(images[:16])                                        # (16, 3, S, S)
    mask = make_masks("center", batch=len(x), image_size=x.shape[-1], coverage=0.25, seed=0)
    return torch.cat([x * (1 - mask) + 0.5 * mask, inpainting.complete(model, x, mask).cpu(), x])


def _ddpm_samples(model, config, images):
    return diffusion.sample_ddim(model, 64, steps=50, seed=0)


def _wgan_gp_config(profile):
    # Gulrajani et al. 2017, Algorithm 1: n_critic = 5, Adam(lr=1e-4, beta1=0, beta2=0.9)
    return gan.GANConfig.for_profile(profile, loss="wgan-gp", d_steps=5, lr_g=1e-4, lr_d=1e-4,
                                     beta1=0.0, beta2=0.9)


MODELS: dict[str, Model] = {           # CLI name -> entry; the names of course_lib.registry differ
    "vae": _from_registry("vae", _vae_samples),
    "dcgan": _from_registry("gan", _gan_samples, config=lambda p: gan.GANConfig.for_profile(p, loss="ns")),
    "wgan-gp": _from_registry("gan", _gan_samples, config=_wgan_gp_config),
    "inpainting": _from_registry("inpainter", _inpainting_samples),
    "jigsaw": _from_registry("jigsaw", None),
    "rotation": _from_registry("rotation", None),
    "ddpm": _from_registry("ddpm", _ddpm_samples),
}
DATA = ("toyfaces", "celeba", "cifar10", "imagefolder:PATH")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """Exit with the usage and the message (SystemExit carries it, so callers can read it)."""
        raise SystemExit(f"{self.format_usage()}{self.prog}: error: {message}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m course_lib.train", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(MODELS), help="which course model to train")
    parser.add_argument("--data", default="toyfaces", help=f"one of {', '.join(DATA)} (default toyfaces)")
    parser.add_argument("--root", default=None, help="folder holding celeba / cifar10 files")
    parser.add_argument("--image-size", type=int, default=None, help="square image side (default: the profile's)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps in all (default: the profile's)")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch, split over processes")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0, help="weights, data order and noise (default 0)")
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None,
                        help="the config instance the flags override (default: COURSE_PROFILE or the device's)")
    parser.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, samples, metrics.json")
    args = parser.parse_args(argv)
    for name in ("image_size", "steps", "batch_size", "train_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.seed > SEED_MAX:
        parser.error(f"--seed must be at most 2**32 - 1 = {SEED_MAX}, got {args.seed}")
    if not (args.data in DATA[:3] or args.data.startswith("imagefolder:")):
        parser.error(f"--data must be one of {', '.join(DATA)}, got {args.data!r}")
    if args.data == "imagefolder:":  # an empty path would mean the current directory
        parser.error("--data imagefolder: needs a folder after the colon, e.g. imagefolder:~/photos")
    for folder in (args.out, *args.out.parents):
        if folder.exists() and not folder.is_dir():
            parser.error(f"--out must be a folder (created if missing), but {folder} is a file"
                         + ("" if folder == args.out else f" (in --out {args.out})"))
        if folder.exists():
            break
    return args


def make_config(args: argparse.Namespace):
    """The model's profile config with the flags written into its fields."""
    spec = MODELS[args.model]
    config = spec.config(args.profile)
    changes = {"seed": args.seed}
    for flag, field in (("image_size", "image_size"), ("steps", "steps"), ("batch_size", "batch_size"),
                        ("train_size", spec.size_field)):
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    if args.model == "jigsaw" and args.image_size is not None:  # a tile is 3/4 of its cell (16 px -> 12)
        cell = args.image_size // config.grid
        changes["tile_size"] = cell - cell // 4
    return dataclasses.replace(config, **changes)


def load_images(args: argparse.Namespace, config) -> torch.Tensor:
    """uint8 (N, 3, S, S) training images for ``config``."""
    size = getattr(config, MODELS[args.model].size_field)
    name, _, path = args.data.partition(":")
    if name == "imagefolder":
        data = load_dataset("imagefolder", root=path, image_size=config.image_size, split="all", size=size)
    elif name == "toyfaces":
        data = load_dataset("toyfaces", image_size=config.image_size, size=size, seed=config.seed)
    else:
        data = load_dataset(name, root=args.root, image_size=config.image_size, size=size)
    return data.images


def save_grid(images: torch.Tensor, path: Path, *, nrow: int = 8) -> None:
    """A PNG grid of float images (n, 3, S, S) in [0, 1]."""
    buffer = io.BytesIO()
    save_image(images.float().clamp(0, 1), buffer, format="png", nrow=nrow, padding=1)
    atomic_write(path, buffer.getvalue())


def fit_to_data(config, images: torch.Tensor, size_field: str):
    """``config`` with ``batch_size`` and the training-set size the run will use: the whole set
    as the batch when it holds fewer images than the batch (the trainers do that), said aloud."""
    n = len(images)
    if n >= config.batch_size:
        return config
    print(f"note: {n} training images, fewer than the batch size {config.batch_size}: training with "
          f"batch size {n} (recorded in config.json and metrics.json)")
    return dataclasses.replace(config, batch_size=n, **{size_field: n})


def check_resume(out: Path, config) -> None:
    """Refuse to "resume" a checkpoint that is already past ``config.steps``."""
    path = out / "checkpoint.pt"
    if path.is_dir():
        raise SystemExit(f"{path} is a folder, but the run saves its checkpoint there: remove or "
                         f"rename it, or use another --out folder")
    if path.is_file():
        done = read_checkpoint(path)["step"]
        if done > config.steps:
            raise SystemExit(f"{out} holds a checkpoint at step {done}, past --steps {config.steps}: "
                             f"a checkpoint cannot go back. Use --steps {done} or more to continue "
                             f"it, or a new --out folder")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    spec = MODELS[args.model]
    config = make_config(args)
    images = load_images(args, config)
    config = fit_to_data(config, images, spec.size_field)
    plan = runtime()
    if plan.distributed and plan.device.type == "cpu":  # gloo: share the cores instead of oversubscribing
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // plan.world_size))
    out = args.out
    # what makes a run the same run: everything but the step budget (more steps = train on)
    identity = {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}
    config_text = json.dumps({"model": args.model, "data": args.data, "config": identity},
                             sort_keys=True, default=repr)
    if plan.is_main:
        out.mkdir(parents=True, exist_ok=True)
        previous = out / "config.json"
        if previous.is_file() and (out / "checkpoint.pt").is_file() and previous.read_text() != config_text:
            raise SystemExit(f"{out} holds a run with another configuration ({previous}); "
                             f"use a new --out folder, or delete {out} to start again")
        check_resume(out, config)
        atomic_write(previous, config_text)
    if plan.distributed:
        import torch.distributed as dist
        dist.barrier()  # rank 0 has checked the folder
    seed_everything(config.seed)  # the same initial weights on every rank and in every rerun
    models = spec.build(config)
    start = time.perf_counter()
    history = spec.train(models, config, images=images, plan=plan, checkpoint=out / "checkpoint.pt",
                         progress="auto" if plan.is_main else False)
    seconds = time.perf_counter() - start
    result = {"model": args.model, "data": args.data, "config": dataclasses.asdict(config),
              "runtime": plan.describe(), "processes": plan.world_size,
              "steps": history.records[-1]["step"] if history.records else 0,
              "seconds": seconds, "history": history.records}
    if plan.is_main:
        if spec.samples is not None:
            for module in (models.values() if isinstance(models, dict) else [models]):
                module.eval()
            save_grid(spec.samples(models, config, images), out / "samples.png")
        write_result(out / "metrics.json", result, default=repr)
        print(f"wrote {out / 'metrics.json'} ({result['steps']} steps, {seconds:.1f} s, {plan.describe()})")
    if plan.distributed:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
