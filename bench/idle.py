"""Refuse to time or execute chapters on a busy machine.

Timings and chapter executions taken beside other work run many times slower on a small
machine, and budgets sized on them leave methods under-trained; so ``make execute`` (which
runs this file before each chapter) and ``bench/chapter_times.py`` refuse a machine whose
1-minute load average is above 1 per core, unless forced.

    .venv/bin/python bench/idle.py        # prints the load; exits 1 on a busy machine (FORCE=1 overrides)
"""
from __future__ import annotations

import os
import sys


def require_idle(*, force: bool = False) -> float:
    """The 1-minute load average, after checking it is at most 1 per core (``SystemExit``
    otherwise, unless ``force``)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores and not force:
        raise SystemExit(f"load average {load:.2f} is above 1 per core ({cores} cores): other work "
                         "would slow every chapter; wait for an idle machine or force it "
                         "(FORCE=1 make execute, chapter_times.py --force)")
    return load


def main() -> None:
    load = require_idle(force=bool(os.environ.get("FORCE")))
    print(f"load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
