"""COURSE_PROFILE: valid names, the automatic default, and a clear error otherwise."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from course_lib import profiles


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", " CPU ", "Smoke"])
def test_valid_names_are_accepted(name):
    assert profiles.resolve_profile(name) == name.strip().lower()


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        profiles.resolve_profile("fast")
    message = str(err.value)
    assert "fast" in message and all(p in message for p in profiles.PROFILES)


@pytest.mark.parametrize("cuda,mps,expected", [(True, False, "gpu"), (False, True, "gpu"), (False, False, "cpu")])
def test_default_follows_the_accelerator(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert profiles.default_profile() == expected
    assert profiles.resolve_profile(None) == expected
    assert profiles.resolve_profile("") == expected


def test_current_profile_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert profiles.current_profile() == "smoke"
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        profiles.current_profile()


def test_choose_picks_per_profile():
    assert [profiles.choose(smoke=1, cpu=2, gpu=3, profile=p) for p in profiles.PROFILES] == [1, 2, 3]
    with pytest.raises(ValueError):
        profiles.choose(smoke=1, cpu=2, gpu=3, profile="tpu")


def test_import_fails_loudly_on_a_bad_profile():
    result = subprocess.run(
        [sys.executable, "-c", "import course_lib.profiles"],
        env={"COURSE_PROFILE": "nope", "PATH": ""}, capture_output=True, text=True,
    )
    assert result.returncode != 0 and "expected one of smoke, cpu, gpu" in result.stderr
