"""The code's imports tell the truth: course modules are imported at the top of a file, the
library has no import cycle, and scripts import the installed package instead of editing
``sys.path`` (issue 17). Pure source analysis (``ast``): nothing is imported or run."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"
SCRIPT_DIRS = ("course_lib", "bench", "experiments", "scripts", "book")


def python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def course_targets(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    """The course_lib modules an import statement names (absolute names; relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "course_lib"]
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    if name.split(".")[0] != "course_lib":
        return []
    # "from course_lib import gan" names the module course_lib.gan when such a module exists
    out = []
    for alias in node.names:
        candidate = f"{name}.{alias.name}"
        as_file = ROOT / Path(*candidate.split("."))
        out.append(candidate if as_file.with_suffix(".py").exists() or as_file.is_dir() else name)
    return out


def function_local_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and course_targets(node, path):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_course_modules_are_imported_at_the_top_of_every_file():
    found = [hit for p in python_files(*SCRIPT_DIRS) for hit in function_local_imports(p)]
    assert not found, f"function-local imports of course modules (move them to the top): {found}"


def module_graph() -> dict[str, set[str]]:
    """course_lib module -> the course_lib modules it imports at module level (not under
    ``if TYPE_CHECKING``), package ``__init__`` imports included."""
    graph: dict[str, set[str]] = {}
    for path in python_files("course_lib"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(course_targets(node, path))
        me = module_name(path)
        graph[me] = {d for d in deps if d != me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}   # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_library_has_no_import_cycle():
    graph = module_graph()
    # the package __init__ re-exports; a submodule importing "course_lib" itself is the cycle
    # a reader cannot see, so it counts
    assert find_cycle(graph) is None, f"import cycle inside course_lib: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("folder", ["bench", "experiments", "scripts"])
def test_scripts_use_the_installed_package_not_sys_path(folder):
    offenders = [str(p.relative_to(ROOT)) for p in python_files(folder)
                 if "sys.path.insert" in p.read_text(encoding="utf-8")
                 or "sys.path.append" in p.read_text(encoding="utf-8")]
    assert not offenders, f"{offenders} edit sys.path; the package is installed (pip install -e .)"


def test_no_chapter_defines_its_own_show():
    offenders = [p.name for p in sorted((ROOT / "solutions").glob("*.md"))
                 if "def show(" in p.read_text(encoding="utf-8")]
    assert not offenders, f"{offenders} define a private show(): use course_lib.plots.show_images"


def test_the_package_docstring_names_every_module():
    """course_lib/__init__.py's module map is complete: a new module is added to it."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    named = set(re.findall(r"``([a-z_]+)``", doc))
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {"checkers"}
    missing = sorted(modules - named)
    assert not missing, f"course_lib/__init__.py's module map does not name {missing}"
