"""ToyFaces throughput: images/s at 32 and 64 px, cold (render) and cached (load from disk).

Run: ``.venv/bin/python bench/bench_toyfaces.py`` (writes bench/results/toyfaces.txt).

Reported per resolution, all measured in this run on this machine:
- ``render``: attribute sampling + rendering + uint8 conversion (``ToyFaces(cache=False)``),
  as wall-clock images/s and as images per CPU-second of this process (``process_time``;
  less sensitive to other processes sharing the machine);
- ``naive``: the same drawing with every shape evaluated over the full canvas (no bounding
  boxes), the baseline the bounding-box renderer is compared with (ratio in the table);
- ``cached``: a second ``ToyFaces(...)`` of the same set, loaded from the on-disk cache
  (wall seconds and CPU seconds: on a busy machine the wall time is mostly waiting).
The load average printed in the first line says how busy the machine was.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from course_lib import facedraw, toyfaces
from course_lib.artifacts import write_result

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
N = int(os.environ.get("BENCH_N", "4000"))


def timed(fn, repeats=3):
    """Best of ``repeats`` (wall seconds, CPU seconds) for ``fn()``."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


BOXED_REGION = facedraw._Canvas.region


def naive_region(self, u0, u1, v0, v1):
    """Baseline: every shape over the whole canvas (what bounding boxes avoid)."""
    return BOXED_REGION(self, -1.0, 1.0, -1.0, 1.0)


def main() -> None:
    torch.set_num_threads(THREADS)
    lines = [f"ToyFaces throughput, {N} images, torch {torch.__version__}, {THREADS} threads, "
             f"{platform.processor() or platform.machine()}, os.getloadavg={os.getloadavg()}",
             f"{'size':>4} {'render img/s':>13} {'img/CPU-s':>10} {'naive img/s':>12} "
             f"{'speed-up':>9} {'cached load s':>14} {'load CPU-s':>11} {'cached img/s':>13}"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_CACHE"] = tmp
        for size in (32, 64):
            toyfaces.ToyFaces(size=256, image_size=size, cache=False)            # warm-up
            wall, cpu = timed(partial(toyfaces.ToyFaces, size=N, image_size=size, cache=False))
            facedraw._Canvas.region = naive_region
            try:
                naive_wall, _ = timed(partial(toyfaces.ToyFaces, size=N // 4, image_size=size, cache=False),
                                      repeats=2)
            finally:
                facedraw._Canvas.region = BOXED_REGION
            naive_rate = (N // 4) / naive_wall
            toyfaces.ToyFaces(size=N, image_size=size)                           # fill cache
            load, load_cpu = timed(partial(toyfaces.ToyFaces, size=N, image_size=size))
            lines.append(f"{size:>4} {N / wall:>13.0f} {N / cpu:>10.0f} {naive_rate:>12.0f} "
                         f"{(N / wall) / naive_rate:>8.1f}x {load:>14.3f} {load_cpu:>11.3f} {N / load:>13.0f}")
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "toyfaces.txt"
    write_result(out, text)


if __name__ == "__main__":
    main()
