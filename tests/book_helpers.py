"""Helpers for tests/test_book.py: stage, build and serve the course book.

The book is built from a *staging copy* of its sources in a temporary folder, so a test
run never writes into the working tree (nothing is ever written to solutions/ or
chapters/ of the repository).

:func:`find_chromium` finds the browser the book test drives (see its docstring).
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_HELP = ("no Chromium found and `python -m playwright install chromium` failed: install "
                 "one (`python -m playwright install chromium`, or `apt-get install chromium`) "
                 "or set CHROMIUM=/path/to/chromium")


def find_chromium(managed: Callable[[], str | None], *, env: Mapping[str, str] | None = None,
                  which: Callable[[str], str | None] | None = None,
                  run: Callable[..., Any] | None = None) -> str:
    """The Chromium executable the book test drives, found the way users expect.

    In order: ``$CHROMIUM`` if set (it must exist); the Chromium Playwright manages
    (``managed()``: its path, or None when it is not downloaded); a system ``chromium``,
    ``chromium-browser``, ``google-chrome`` on PATH. When there is none, it runs
    ``python -m playwright install chromium`` once and takes the managed one; when that
    fails too (offline, no permission), it raises ``RuntimeError`` with a one-line
    instruction. CI installs Debian's chromium first (.ci/run), so it never downloads.
    ``env``, ``which`` and ``run`` default to ``os.environ``, :func:`shutil.which` and
    :func:`subprocess.run` (looked up at call time, so tests can monkeypatch or pass fakes).
    """
    env = os.environ if env is None else env
    which = which or shutil.which
    run = run or subprocess.run
    if env.get("CHROMIUM"):
        path = env["CHROMIUM"]
        if not Path(path).is_file():
            raise RuntimeError(f"CHROMIUM={path} is not a file: point it at a Chromium binary or unset it")
        return path
    found = managed()
    if found:
        return found
    for name in SYSTEM_CHROMIUMS:
        found = which(name)
        if found:
            return found
    result = run([sys.executable, "-m", "playwright", "install", "chromium"],
                 capture_output=True, text=True)
    found = managed() if result.returncode == 0 else None
    if not found:
        raise RuntimeError(CHROMIUM_HELP)
    return found


def playwright_chromium(playwright) -> str | None:
    """The path of Playwright's own Chromium if it is downloaded, else None."""
    try:
        path = playwright.chromium.executable_path
    except Exception:  # noqa: BLE001 (an old or broken driver: treat as not downloaded)
        return None
    return path if path and Path(path).is_file() else None


def toc_files(root: Path = ROOT) -> list[str]:
    """Every file of toc.yml (root first), without suffix, e.g. ``solutions/02_vae``."""
    toc = yaml.safe_load((root / "toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def chapter_docnames(root: Path = ROOT) -> list[str]:
    """The toc entries that are course chapters (``solutions/NN_slug``)."""
    return [name for name in toc_files(root) if name.startswith("solutions/")]


def stage_sources(dest: Path, root: Path = ROOT) -> Path:
    """Copy what the book is built from into ``dest``; return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("book.yml", "toc.yml", "CONTRIBUTING.md"):
        shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "book", dest / "book", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "_build"))
    for folder in ("solutions", "chapters"):
        (dest / folder).mkdir(exist_ok=True)
        for nb in (root / folder).glob("*.ipynb"):
            shutil.copy2(nb, dest / folder / nb.name)
    # Files the Results page reads relative to the repository root (bench/ results) come
    # along when they exist; experiment results are package data (course_lib.results).
    for folder in ("bench/results",):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, dest / folder, dirs_exist_ok=True)
    return dest


def build(source: Path, *, profile: str = "smoke", execute: str = "force",
          log: Path | None = None) -> float:
    """Run scripts/build_book.sh on ``source`` (output in ``source/_build``); return seconds."""
    env = dict(os.environ, COURSE_PROFILE=profile, BOOK_EXECUTE=execute,
               BOOK_SOURCE=str(source), BOOK_OUT=str(source), PYTHON=sys.executable)
    start = time.perf_counter()
    result = subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh")], env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if log is not None:
        log.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-6000:]
        raise RuntimeError(f"the book build failed (exit {result.returncode}):\n{tail}")
    return seconds


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output readable
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on a free localhost port in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
