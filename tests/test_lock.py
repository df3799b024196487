"""constraints.txt: it pins every package the project asks for, and scripts.lock reads and diffs it."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from scripts import lock

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, the version constraints.txt is written for

ROOT = Path(__file__).resolve().parent.parent


def _requirement_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {lock.canonical(re.match(r"[A-Za-z0-9_.\-]+", r)[0]) for r in wanted}


def test_constraints_pin_every_requirement_of_the_project():
    pins = lock.parse((ROOT / "constraints.txt").read_text())
    missing = sorted(_requirement_names() - pins.keys())
    assert not missing, f"constraints.txt pins no version of {missing}: install them, pass `make test`, run `make lock`"
    assert "course-lib" not in pins and "pip" not in pins


def test_constraints_file_is_what_lock_writes():
    text = (ROOT / "constraints.txt").read_text()
    pins = lock.parse(text)
    assert text == lock.render(pins, python="3.11", machine="Linux x86_64"), (
        "constraints.txt is not the lock script's output (edited by hand?): rerun `make lock`")


def test_parse_canonicalises_and_skips_comments_and_urls():
    text = "# header\nJinja2==3.1.4\nzope_interface==7.0  # why\nfoo @ file:///x\nbar>=1\n\n"
    assert lock.parse(text) == {"jinja2": "3.1.4", "zope-interface": "7.0"}


def test_drift_lists_changed_new_and_gone_packages():
    assert lock.drift({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2.1", "d": "4"}) == [
        "b: 2 -> 2.1", "c: 3 -> (not installed)", "d: (not locked) -> 4"]


def test_lock_reads_the_running_interpreter(tmp_path, capsys):
    out = tmp_path / "constraints.txt"
    assert lock.main(["--python", sys.executable, "--out", str(out)]) == 0
    pins = lock.parse(out.read_text())
    assert "pytest" in pins and "course-lib" not in pins
    assert lock.main(["--python", sys.executable, "--out", str(out), "--drift"]) == 0
    assert "nothing differs" in capsys.readouterr().out
