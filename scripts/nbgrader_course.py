"""Write a ready nbgrader course folder from ``solutions/`` (``make nbgrader``).

    python -m scripts.nbgrader_course                      # writes _build/nbgrader/
    python -m scripts.nbgrader_course --course /srv/course # anywhere else

What it writes (generated, never edited by hand, like ``chapters/``)::

    nbgrader_config.py            course id, the header, cell timeout, outputs kept
    source/header.ipynb           one read-only cell every assignment starts with: imports course_lib
    source/NN_slug/NN_slug.ipynb  the instructor version of each chapter, nbgrader metadata set

Each cell is read the way ``scripts.release`` reads it for ``chapters/``:

- an exercise cell (a ``### BEGIN SOLUTION`` region) becomes an autograded answer cell
  (a markdown one a manually graded answer worth ``POINTS``);
- the check cell after it (tag ``check``, calling a ``check_...`` function) becomes an
  autograded tests cell worth ``POINTS``: a checker raises ``ExerciseError`` (an
  ``AssertionError``) on a wrong answer, which nbgrader scores as zero;
- every other cell is read-only.

Tags and outputs are the student version's (``release.student_notebook``), so the
release nbgrader writes matches ``chapters/`` cell for cell. Gradebook, ``release/``,
``submitted/`` and the other folders nbgrader adds to the course are left alone.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from scripts import release

ROOT = Path(__file__).resolve().parent.parent
POINTS = 1  # what every check cell (and every manually graded answer) is worth: the one place
CELL_TIMEOUT_S = 1800  # per cell: under the cpu profile a training cell runs for minutes
COURSE_ID = "generating-images-without-labels"
CHECKER_CALL = re.compile(r"\b(check_\w+)\s*\(")


def nbgrader_meta(grade_id: str, *, grade: bool, solution: bool, locked: bool) -> dict:
    """nbgrader's cell metadata, schema version 3 (what its Create Assignment toolbar writes)."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = POINTS
    return meta


def checker_name(cell, where: str) -> str:
    calls = CHECKER_CALL.findall(cell.source)
    if not calls:
        raise release.ReleaseError(f"{where}: a check cell must call a checker (check_...(...)); it calls none")
    return calls[-1]


def instructor_notebook(path: Path) -> nbformat.NotebookNode:
    """The nbgrader source version of one solution notebook."""
    nb = nbformat.read(path, as_version=4)
    student = release.student_notebook(nb, path)  # also stops on bad markers, with file and line
    exercise = [c.source != s.source for c, s in zip(nb.cells, student.cells)]
    check = [c.cell_type == "code" and release.CHECK_TAG in c.metadata.get("tags", []) for c in nb.cells]
    for index, (cell, stub) in enumerate(zip(nb.cells, student.cells)):
        where = f"{path}: cell {index}"
        if exercise[index] and cell.cell_type == "markdown":
            meta = nbgrader_meta(f"answer_cell_{index}", grade=True, solution=True, locked=False)
        elif exercise[index]:
            if index + 1 == len(nb.cells) or not check[index + 1]:
                raise release.ReleaseError(f"{where}: exercise cell is not followed by a check cell (tag `check`)")
            name = checker_name(nb.cells[index + 1], f"{path}: cell {index + 1}")
            meta = nbgrader_meta("answer_" + name.removeprefix("check_"), grade=False, solution=True, locked=False)
        elif check[index]:
            if index == 0 or not exercise[index - 1] or nb.cells[index - 1].cell_type != "code":
                raise release.ReleaseError(f"{where}: check cell does not follow an exercise cell")
            meta = nbgrader_meta(checker_name(cell, where), grade=True, solution=False, locked=True)
        else:
            meta = nbgrader_meta(f"cell_{index}", grade=False, solution=False, locked=True)
        # tags and outputs as in chapters/ (raises-exception added, hide-input and solution outputs gone)
        cell.metadata = stub.metadata
        cell.metadata["nbgrader"] = meta
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = stub.outputs, stub.execution_count
    nb.metadata.pop("jupytext", None)  # no paired .md in an nbgrader course
    return nb


HEADER = """\
# Grading environment (nbgrader header, written by `make nbgrader`): the check cells call
# course_lib's checkers, so this kernel must import course_lib.
import os

try:
    import course_lib
except ImportError as error:
    raise ImportError("course_lib is not installed in this environment and the checks of this "
                      "assignment need it: pip install 'course-lib @ git+REPOSITORY'") from error
print(f"course_lib from {course_lib.__path__[0]}, COURSE_PROFILE={os.environ.get('COURSE_PROFILE', 'auto')}")"""


def header_notebook(repository_url: str) -> nbformat.NotebookNode:
    meta = nbgrader_meta("header", grade=False, solution=False, locked=True)
    nb = new_notebook(cells=[new_code_cell(HEADER.replace("REPOSITORY", repository_url), metadata={"nbgrader": meta})])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


CONFIG = f'''\
# Written by python -m scripts.nbgrader_course (`make nbgrader`); edit the script, not this file.
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "{COURSE_ID}"
# Every assignment starts with this read-only cell: it imports course_lib, whose checkers grade.
c.IncludeHeaderFooter.header = "source/header.ipynb"
# Students get the outputs chapters/ keeps (set-up, data previews: tag keep-output), not the
# results; autograding re-executes every code cell anyway.
c.ClearOutput.enabled = False
# Autograding runs the whole chapter; under the cpu profile one training cell takes minutes.
c.Execute.timeout = {CELL_TIMEOUT_S}
'''


def write_course(solutions: Path, course: Path) -> list[Path]:
    """Write the course folder; return the assignment notebooks written."""
    with open(ROOT / "book.yml", encoding="utf-8") as fh:
        repository_url = yaml.safe_load(fh)["repository"]["url"]
    planned = {}
    for path in release.solution_notebooks(solutions):
        release.check_pair(path)
        planned[course / "source" / path.stem / path.name] = instructor_notebook(path)
    for old in (course / "source").glob("[0-9][0-9]*_*"):  # a chapter whose solution was deleted
        if old.is_dir() and old / f"{old.name}.ipynb" not in planned:
            shutil.rmtree(old)
    planned[course / "source" / "header.ipynb"] = header_notebook(repository_url)
    for target, nb in planned.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    (course / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
    return [p for p in planned if p.name != "header.ipynb"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.nbgrader_course", description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--course", type=Path, default=ROOT / "_build" / "nbgrader")
    args = parser.parse_args(argv)
    try:
        written = write_course(args.solutions, args.course)
    except release.ReleaseError as exc:
        print(f"nbgrader course stopped: {exc}", file=sys.stderr)
        return 2
    names = " ".join(p.parent.name for p in written)
    print(f"wrote the nbgrader course {args.course} ({len(written)} assignments: {names})")
    print(f"next: cd {args.course} && nbgrader generate_assignment 00_setup")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
