"""Generate the student notebooks in ``chapters/`` from the authored ``solutions/``.

One source (``solutions/NN_slug.ipynb``, paired with ``NN_slug.md``), one command::

    python -m scripts.release            # write chapters/ (what `make chapters` runs)
    python -m scripts.release --check    # exit 1 if chapters/ is stale or a pair is out of sync

(from the repository root: an authoring tool, not part of the installed ``course_lib``).

What changes in the student version (nbgrader's marker convention, so the notebooks can
also be taken into an nbgrader course):

- code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the same indentation
  (in markdown cells: ``YOUR ANSWER HERE``);
- that cell and every cell tagged ``check`` get the ``raises-exception`` tag, so "Run all"
  and nbval go on past an unsolved exercise; their outputs are removed;
- ``hide-input`` is dropped (it only collapses solutions in the book);
- every other code cell loses its outputs too, unless it is tagged ``keep-output`` (set-up
  and data previews: what a student needs to follow along) or compares its output under
  nbval (``# NBVAL_CHECK_OUTPUT``: fixed facts such as parameter counts). Results (training
  curves, sample grids, tables, verdicts) appear when the student runs the cell, after
  predicting them; the book shows them from ``solutions/``.

Sources and markdown are copied unchanged.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
MARKDOWN_STUB = ["YOUR ANSWER HERE"]
CHECK_TAG = "check"
KEEP_TAG = "keep-output"  # a code cell whose outputs the student version keeps (set-up, data previews)
NBVAL_CHECK = "# NBVAL_CHECK_OUTPUT"  # nbval compares these outputs, so they stay
RAISES_TAG = "raises-exception"
HIDE_TAGS = ("hide-input", "hide-cell", "remove-input")
TEXT_FORMAT = "md:myst"
# NN_slug, or NNx_slug for a chapter's second part (03b_gan_measured follows 03_gan: "_" sorts before letters)
NAME_PATTERN = re.compile(r"^\d\d[a-z]?_[a-z0-9_]+\.ipynb$")
# The version of jupytext that wrote a text file: a stamp in its header, not content. Another
# jupytext release changes it and nothing else, so staleness is judged without it.
VERSION_STAMP = re.compile(r"^\s*jupytext_version: .*\n", re.MULTILINE)


class ReleaseError(ValueError):
    """Bad solution markers or a broken notebook pair; the message names file and line."""


@dataclass(frozen=True)
class Location:
    path: Path
    cell: int
    line: int  # 1-based line inside the cell

    def __str__(self) -> str:
        return f"{self.path}: cell {self.cell}, line {self.line}"


def strip_solution(source: str, *, markdown: bool, where: Location) -> tuple[str, bool]:
    """Replace every marked region in one cell's source; return (new source, had markers)."""
    out: list[str] = []
    open_at: int | None = None
    found = False
    for i, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        here = Location(where.path, where.cell, i)
        if stripped == BEGIN:
            if open_at is not None:
                raise ReleaseError(f"{here}: nested '{BEGIN}' (the previous one at line {open_at} is still open)")
            open_at, found = i, True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in (MARKDOWN_STUB if markdown else CODE_STUB))
        elif stripped == END:
            if open_at is None:
                raise ReleaseError(f"{here}: '{END}' without a matching '{BEGIN}'")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ReleaseError(
            f"{Location(where.path, where.cell, open_at)}: '{BEGIN}' is never closed by '{END}'"
        )
    return "\n".join(out), found


def keeps_output(cell: nbformat.NotebookNode) -> bool:
    """Whether a (non-exercise) code cell keeps its stored outputs in the student version."""
    return KEEP_TAG in cell.metadata.get("tags", []) or NBVAL_CHECK in cell.source


def student_notebook(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """The student version of one solution notebook (a new object; ``nb`` is untouched)."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = Location(path, index, 0)
        source, is_exercise = strip_solution(cell.source, markdown=cell.cell_type != "code", where=where)
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type != "code":
            cell.source = source
            continue
        if is_exercise or CHECK_TAG in tags:
            cell.source = source
            tags = [t for t in tags if t not in HIDE_TAGS]
            if RAISES_TAG not in tags:
                tags.append(RAISES_TAG)
            cell.outputs = []
            cell.execution_count = None
        elif not keeps_output(cell):
            cell.outputs = []
            cell.execution_count = None
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nb.metadata.setdefault("jupytext", {})["formats"] = f"ipynb,{TEXT_FORMAT}"
    return nb


def render(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The two files of a pair as text: (.ipynb JSON, MyST markdown)."""
    return nbformat.writes(nb) + "\n", jupytext.writes(nb, fmt=TEXT_FORMAT)


def same_content(old: str, new: str) -> bool:
    """Whether two renderings differ by at most jupytext's version stamp."""
    return VERSION_STAMP.sub("", old) == VERSION_STAMP.sub("", new)


def solution_notebooks(solutions: Path) -> list[Path]:
    paths = sorted(p for p in solutions.glob("*.ipynb") if NAME_PATTERN.match(p.name))
    if not paths:
        raise ReleaseError(f"no solution notebooks named NN_slug.ipynb in {solutions}")
    return paths


def check_pair(ipynb: Path) -> None:
    """The authored ``.md`` and the executed ``.ipynb`` must hold the same cells."""
    md = ipynb.with_suffix(".md")
    if not md.exists():
        raise ReleaseError(f"{ipynb}: its paired {md.name} is missing (run `make sync`)")
    text_cells = jupytext.read(md).cells
    nb_cells = nbformat.read(ipynb, as_version=4).cells
    if len(text_cells) != len(nb_cells):
        raise ReleaseError(
            f"{md} has {len(text_cells)} cells but {ipynb.name} has {len(nb_cells)}: "
            "the pair is out of sync (run `make sync`, then `make execute`)"
        )
    for i, (a, b) in enumerate(zip(text_cells, nb_cells)):
        if a.cell_type != b.cell_type or a.source.strip() != b.source.strip():
            raise ReleaseError(
                f"{md} and {ipynb.name} differ at cell {i}: the pair is out of sync "
                "(run `make sync`, then `make execute`)"
            )


def release(solutions: Path, chapters: Path, *, check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) every student notebook; return stale/written paths."""
    changed: list[Path] = []
    planned: dict[Path, str] = {}
    for path in solution_notebooks(solutions):
        check_pair(path)
        nb = nbformat.read(path, as_version=4)
        ipynb_text, md_text = render(student_notebook(nb, path))
        planned[chapters / path.name] = ipynb_text
        planned[chapters / path.with_suffix(".md").name] = md_text
    extra = [p for p in chapters.glob("*") if p.suffix in (".ipynb", ".md") and p not in planned]
    for target, text in planned.items():
        if not target.exists() or not same_content(target.read_text(encoding="utf-8"), text):
            changed.append(target)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(target.suffix + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(target)
    for path in extra:
        changed.append(path)
        if not check:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(prog="python -m scripts.release", description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=Path, default=root / "solutions")
    parser.add_argument("--chapters", type=Path, default=root / "chapters")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if anything is stale")
    args = parser.parse_args(argv)
    try:
        changed = release(args.solutions, args.chapters, check=args.check)
    except ReleaseError as exc:
        print(f"release stopped: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for path in changed:
            print(f"stale: {path} (run `make chapters`)", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        print(f"wrote {path}")
    print(f"chapters/ is up to date ({len(changed)} file(s) written)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
