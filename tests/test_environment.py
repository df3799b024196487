"""environment.yml (conda users) must ask for exactly what pyproject.toml declares."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    sections = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml must have exactly one pip: section"
    return [str(r) for r in sections[0]["pip"]]


def _normalise(requirement: str) -> str:
    return requirement.replace(" ", "").lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    pip = [r for r in _pip_section() if not r.startswith("-e")]
    missing = sorted(set(map(_normalise, declared)) - set(map(_normalise, pip)))
    extra = sorted(set(map(_normalise, pip)) - set(map(_normalise, declared)))
    assert not missing and not extra, (
        f"environment.yml and pyproject.toml disagree: missing in environment.yml {missing}, "
        f"not in pyproject.toml {extra}"
    )


def test_environment_installs_the_course_itself():
    assert "-e ." in _pip_section()


def test_python_floor_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons == ["python" + project["requires-python"]]
