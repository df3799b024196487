"""Load a script of ``experiments/``, ``bench/`` or ``book/`` as a module, for the tests of its
helpers and of the results it committed (the scripts are not a package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str, *, name: str | None = None, monkeypatch=None, register: bool = False) -> ModuleType:
    """The module of ``ROOT / path`` (e.g. ``"experiments/flow_study.py"``), executed afresh on
    every call, named ``name`` (default: folder and stem, ``experiments_flow_study``).
    A script whose dataclasses look their module up must be in ``sys.modules`` while it runs:
    ``monkeypatch`` (pytest's fixture) puts it there for the test only, ``register=True`` for
    good."""
    file = ROOT / path
    if not file.is_file():
        raise FileNotFoundError(f"no script {file}")
    name = name or f"{file.parent.name}_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, name, module)
    elif register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
