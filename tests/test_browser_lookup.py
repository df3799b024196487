"""tests/book_helpers.find_chromium: the three outcomes, with fakes (no real download)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_helpers  # noqa: E402


class FakeRun:
    """Stands in for subprocess.run; records the commands; 'installs' on success."""

    def __init__(self, returncode: int, installed: list):
        self.returncode, self.installed, self.calls = returncode, installed, []

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        if self.returncode == 0:
            self.installed.append("/fake/ms-playwright/chromium/chrome")
        return subprocess.CompletedProcess(cmd, self.returncode, "", "Host unreachable")


def _managed(installed: list):
    return lambda: installed[-1] if installed else None


def test_a_system_browser_is_found_without_installing(monkeypatch):
    run = FakeRun(0, [])
    monkeypatch.setattr(book_helpers.shutil, "which",
                        lambda name: "/usr/bin/chromium-browser" if name == "chromium-browser" else None)
    assert book_helpers.find_chromium(_managed([]), env={}, run=run) == "/usr/bin/chromium-browser"
    assert run.calls == []


def test_the_playwright_managed_browser_comes_first():
    run = FakeRun(0, [])
    found = book_helpers.find_chromium(lambda: "/home/u/.cache/ms-playwright/chrome", env={},
                                       which=lambda name: "/usr/bin/chromium", run=run)
    assert found == "/home/u/.cache/ms-playwright/chrome" and run.calls == []


def test_none_found_then_playwright_installs_one():
    installed: list = []
    run = FakeRun(0, installed)
    found = book_helpers.find_chromium(_managed(installed), env={}, which=lambda name: None, run=run)
    assert found == "/fake/ms-playwright/chromium/chrome"
    assert run.calls == [[sys.executable, "-m", "playwright", "install", "chromium"]]


def test_none_found_and_the_install_fails_with_one_line():
    run = FakeRun(1, [])
    with pytest.raises(RuntimeError) as err:
        book_helpers.find_chromium(_managed([]), env={}, which=lambda name: None, run=run)
    message = str(err.value)
    assert "\n" not in message
    assert "python -m playwright install chromium" in message and "CHROMIUM=" in message
    assert len(run.calls) == 1


def test_chromium_variable_wins_and_must_exist(tmp_path):
    binary = tmp_path / "chrome"
    binary.write_text("")
    fail = FakeRun(1, [])
    assert book_helpers.find_chromium(_managed([]), env={"CHROMIUM": str(binary)},
                                      which=lambda name: None, run=fail) == str(binary)
    with pytest.raises(RuntimeError, match="CHROMIUM=.* is not a file"):
        book_helpers.find_chromium(_managed([]), env={"CHROMIUM": str(tmp_path / "nope")},
                                   which=lambda name: None, run=fail)


def test_playwright_chromium_reports_a_missing_download(tmp_path):
    class Chromium:
        executable_path = str(tmp_path / "not-downloaded")

    class Playwright:
        chromium = Chromium()

    assert book_helpers.playwright_chromium(Playwright()) is None
    (tmp_path / "not-downloaded").write_text("")
    assert book_helpers.playwright_chromium(Playwright()) == str(tmp_path / "not-downloaded")
