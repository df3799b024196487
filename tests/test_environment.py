"""environment.yml (conda users) takes Python from conda and everything else from pyproject.toml,
at the versions constraints.txt pins (the ones the tests passed with)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_installs_the_project_with_its_dev_extra_and_nothing_else():
    deps = _environment()["dependencies"]
    sections = [d for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1 and sections[0]["pip"] == ["-c constraints.txt", '-e ".[dev]"'], (
        "environment.yml's pip section must be exactly -c constraints.txt, -e \".[dev]\": the dependencies "
        "live in pyproject.toml, their tested versions in constraints.txt")
    assert sorted(d for d in deps if isinstance(d, str) and not d.startswith("python")) == ["pip"]


def test_python_is_the_one_the_constraints_were_written_for():
    # a regex, not tomllib: the project installs on Python 3.10 (without the constraints), which has no tomllib
    locked = re.search(r"\(Python (\d+\.\d+),", (ROOT / "constraints.txt").read_text()).group(1)
    floor = re.search(r'^requires-python\s*=\s*">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    pythons = [d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons == [f"python={locked}"]
    assert tuple(map(int, locked.split("."))) >= (int(floor[1]), int(floor[2]))
