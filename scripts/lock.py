"""The constraints file: the exact versions the tests passed with, and what drifted since.

    python -m scripts.lock --python .venv/bin/python             # rewrite constraints.txt (`make lock`)
    python -m scripts.lock --python .venv-latest/bin/python --drift  # report only (`make test-latest`)

``make install``, ``make nbgrader``, ``environment.yml`` and the Colab set-up cell install
with ``-c constraints.txt``, so a fresh clone gets what CI tested, whatever was released
upstream since. A constraint only fixes a version when a package is installed at all, so
the CUDA-only packages a Linux torch build pulls in do nothing on a Mac or a CPU runner.

To move the pins forward: ``make test-latest`` installs the newest releases into
``.venv-latest``, runs the unit tests and nbval there and prints this drift report; when it
passes, ``make lock VENV=.venv-latest`` writes the new constraints.txt (commit it).
"""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
from pathlib import Path

from course_lib.atomic import atomic_write

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# The versions `make test` passed with (Python {python}, {machine}); written by `make lock`
# (python -m scripts.lock), read with pip's -c by make install, make nbgrader,
# environment.yml and the chapters' Colab set-up cell. Do not edit by hand: see scripts/lock.py.
"""
# The installer's own tools and the project itself are not pinned.
SKIP = {"pip", "course-lib"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def canonical(name: str) -> str:
    """PEP 503's normal form, so ``Jinja2`` and ``jinja2``, ``a_b`` and ``a-b`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> dict[str, str]:
    """``name==version`` lines of a freeze or constraints file -> {canonical name: version}."""
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def installed(python: str) -> dict[str, str]:
    """What ``pip freeze`` reports for the interpreter ``python`` (editable installs left out)."""
    out = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    return {name: version for name, version in parse(out).items() if name not in SKIP}


def python_of(python: str) -> tuple[str, str]:
    """(major.minor, platform) of the interpreter ``python``."""
    code = "import platform, sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.machine())"
    version, machine = subprocess.run([python, "-c", code], check=True, capture_output=True,
                                      text=True).stdout.split()
    return version, f"{platform.system()} {machine}"


def render(pins: dict[str, str], *, python: str, machine: str) -> str:
    body = "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
    return HEADER.format(python=python, machine=machine) + body


def drift(locked: dict[str, str], now: dict[str, str]) -> list[str]:
    """One line per package whose version differs, appeared or disappeared."""
    lines = []
    for name in sorted(locked.keys() | now.keys()):
        old, new = locked.get(name), now.get(name)
        if old != new:
            lines.append(f"{name}: {old or '(not locked)'} -> {new or '(not installed)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.lock", description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose packages are read")
    parser.add_argument("--out", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--drift", action="store_true", help="only report what differs from --out")
    args = parser.parse_args(argv)
    now = installed(args.python)
    locked = parse(args.out.read_text()) if args.out.exists() else {}
    changes = drift(locked, now)
    if args.drift:
        print(f"{len(changes)} package(s) differ from {args.out.name}:" if changes
              else f"nothing differs from {args.out.name}")
        print("\n".join(f"  {line}" for line in changes))
        return 0
    version, machine = python_of(args.python)
    atomic_write(args.out, render(now, python=version, machine=machine))
    print(f"wrote {args.out} ({len(now)} pins, {len(changes)} changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
