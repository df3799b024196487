"""Committed experiment results ship as package data and load through one function,
also from a non-editable install outside the repository (what Colab's pip install gives)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import results

ROOT = Path(__file__).resolve().parents[1]


def test_every_committed_result_loads():
    names = results.result_names()
    assert {"fusion", "pretext_probes"} <= set(names)
    for name in names:
        data = results.load_result(name)
        assert isinstance(data, dict), name
        assert data.get("command", "").startswith(("python experiments/", "python bench/")), name


def test_unknown_and_malformed_names_say_what_exists():
    with pytest.raises(FileNotFoundError, match=r"no committed result 'fusoin'.*'fusion'"):
        results.load_result("fusoin")
    with pytest.raises(ValueError, match="plain identifier"):
        results.load_result("../experiments/fusion")


def test_no_chapter_or_library_code_reads_results_through_the_repository():
    for path in [*ROOT.glob("solutions/*.md"), *ROOT.glob("course_lib/**/*.py"), ROOT / "book" / "results.md"]:
        text = path.read_text(encoding="utf-8")
        assert "experiments/results" not in text and '"experiments" / "results"' not in text, path


def test_a_non_editable_install_loads_every_result_from_outside_the_repository(tmp_path):
    # Build from a copy of the sources: setuptools writes build/ and *.egg-info beside them.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "course_lib", src / "course_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--target", str(site), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    probe = ("import json, course_lib\n"
             "from course_lib.results import load_result, result_names\n"
             "print(json.dumps({'file': course_lib.__file__, 'names': result_names(),\n"
             "                  'loaded': {n: sorted(load_result(n)) for n in result_names()}}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert Path(out["file"]).resolve().is_relative_to(site.resolve()), out["file"]  # not the repository's copy
    assert out["names"] == results.result_names()   # every committed file was shipped
    for name in out["names"]:
        assert out["loaded"][name] == sorted(results.load_result(name)), name
