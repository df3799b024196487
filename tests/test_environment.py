"""environment.yml (conda users) takes Python from conda and everything else from pyproject.toml."""
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
    assert len(sections) == 1 and sections[0]["pip"] == ['-e ".[dev]"'], (
        "environment.yml's pip section must be exactly -e \".[dev]\": the dependencies live in pyproject.toml")
    assert sorted(d for d in deps if isinstance(d, str) and not d.startswith("python")) == ["pip"]


def test_python_floor_agrees():
    # a regex, not tomllib: the project supports Python 3.10, which has no tomllib
    floor = re.search(r'^requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    pythons = [d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons == ["python" + floor]
