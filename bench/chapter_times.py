"""How long does each chapter take, run the way a student first runs it?

Executes the solution notebooks in order (``solutions/NN_*.ipynb``, outputs discarded) under
one profile with a fresh, empty model cache, so every chapter pays for what it trains the
first time and reuses what earlier chapters cached, exactly as on a student's first pass.
The same run times a reference workload (100 steps of chapter 02's 32x32 VAE, before and
after the chapters) so that each chapter is also reported as a ratio to it: the ratio
carries over to another machine better than seconds do.

    .venv/bin/python bench/chapter_times.py [--profile cpu] [--chapters 00 01 ...] [--save]

``--save`` writes each executed notebook back to ``solutions/`` (figures inline, progress as a
student sees it), so that one idle run both times the course and refreshes its stored outputs;
run ``jupytext --sync solutions/*.md`` before (the notebooks must match their .md) and
``python -m scripts.release`` after.

Writes ``bench/results/chapter_times_<profile>.txt`` (``--profile gpu``:
``bench/results/gpu_chapter_times.txt``, naming the card). Takes about as long as the
chapters together (tens of minutes under ``cpu`` on 2 cores, a few minutes on one
H100-class GPU); not part of ``make bench``. It refuses to start on a busy machine (1-minute
load average above 1 per core: timings there are 10-20x too slow); ``--force`` overrides.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from course_lib.artifacts import write_result
from course_lib.images import to_float
from course_lib.toyfaces import ToyFaces
from course_lib.vae import VAE, vae_step

from idle import require_idle  # bench/idle.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def reference_seconds(repeats: int = 3) -> float:
    """Median wall time of 100 training steps of the chapter-02 VAE at 32x32, batch 64."""
    images = to_float(ToyFaces(split="train", size=640, image_size=32, cache=False).images)
    times = []
    for r in range(repeats):
        torch.manual_seed(r)
        model = VAE(latent_dim=32, image_size=32)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        for step in range(100):
            vae_step(model, optimizer, images[(step % 10) * 64:(step % 10 + 1) * 64])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_chapter(path: Path, env: dict, timeout: int, *, save: bool = False) -> float:
    """Execute one notebook (in its own folder, as Jupyter would) and return its wall time;
    with ``save``, write the executed notebook (its outputs) back to ``path``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
        if save:
            nbformat.write(nb, path)
        return seconds
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--chapters", nargs="*", default=None,
                        help="two-digit numbers, 03 = 03 and 03b, or a part such as 03b (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--force", action="store_true", help="time even on a busy machine")
    parser.add_argument("--save", action="store_true", help="write the executed notebooks back to solutions/")
    parser.add_argument("--cache", type=Path, default=None,
                        help="an EMPTY model cache to use (default: a fresh temporary folder); "
                             "keep it to reuse the models")
    args = parser.parse_args(argv)
    load_start = require_idle(force=args.force)

    import torch
    notebooks = sorted((ROOT / "solutions").glob("[0-9][0-9]*_*.ipynb"))   # 03_gan before 03b_gan_measured
    if args.chapters:
        notebooks = [p for p in notebooks if p.name[:2] in args.chapters or p.name.split("_")[0] in args.chapters]
    if args.cache is not None and args.cache.exists() and any(args.cache.iterdir()):
        raise SystemExit(f"--cache {args.cache} is not empty: a first pass needs an empty cache")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="course_cache_"))
    cache.mkdir(parents=True, exist_ok=True)
    env = {"COURSE_PROFILE": args.profile, "COURSE_CACHE": str(cache)}
    env.update({"MPLBACKEND": "module://matplotlib_inline.backend_inline"} if args.save else
               {"COURSE_PROGRESS": "none", "MPLBACKEND": "Agg"})
    ref_before = reference_seconds()
    rows = []
    for path in notebooks:
        seconds = run_chapter(path, env, args.timeout, save=args.save)
        rows.append((path.stem, seconds))
        print(f"{path.stem:20s} {seconds:7.1f} s", flush=True)
    ref_after = reference_seconds()
    ref = (ref_before + ref_after) / 2

    lines = [
        f"command: python bench/chapter_times.py --profile {args.profile}"
        + (f" --chapters {' '.join(args.chapters)}" if args.chapters else "") + (" --save" if args.save else ""),
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
        + (f", GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
        f"profile: {args.profile}; a fresh empty model cache; chapters in order (later chapters "
        "reuse what earlier ones cached, as on a student's first pass)",
        f"reference: 100 steps of the 32x32 chapter-02 VAE = {ref_before:.2f} s before, "
        f"{ref_after:.2f} s after the chapters",
        f"load average at the start: {load_start:.2f}, at the end: {os.getloadavg()[0]:.2f}",
        "",
        f"{'chapter':20s} {'seconds':>8s} {'x reference':>12s}",
    ]
    lines += [f"{name:20s} {s:8.1f} {s / ref:12.1f}" for name, s in rows]
    total = sum(s for _, s in rows)
    lines.append(f"{'total':20s} {total:8.1f} {total / ref:12.1f}")
    name = "gpu_chapter_times.txt" if args.profile == "gpu" else f"chapter_times_{args.profile}.txt"
    out = ROOT / "bench" / "results" / name
    write_result(out, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
