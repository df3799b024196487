"""The nbgrader course that `make nbgrader` writes, driven through the real nbgrader CLI.

nbgrader is an optional extra (``pip install -e '.[nbgrader]'``; ``make nbgrader`` and
``.ci/run`` install it). Its kernels import this checkout's course_lib (PYTHONPATH) and run
the chapters under the ``smoke`` profile with a fresh cache.
"""
from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.checkers import ExerciseError
from scripts import release

pytest.importorskip("nbgrader", reason="nbgrader is optional: pip install -e '.[nbgrader]' (make nbgrader installs it)")
from nbgrader.api import Gradebook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
from scripts import nbgrader_course  # noqa: E402

# One plausible wrong answer per autograded chapter: (answer cell, its wrong source, checker module).
WRONG = {
    "00_setup": ("answer_to_unit_range", "def to_unit_range(images):\n    return images.float()\n", "ch00"),
    "02_vae": ("answer_reparameterize",
               "def reparameterize(mu, logvar):\n    return mu + torch.exp(logvar) * torch.randn_like(mu)\n", "ch02"),
}


def nbgrader(*args: str, course: Path, env: dict, timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "| ERROR]" not in log, f"nbgrader {' '.join(args)} failed:\n{log[-4000:]}"
    return log


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course written by the script, every chapter released by `nbgrader generate_assignment`."""
    tmp = tmp_path_factory.mktemp("nbgrader")
    env = dict(os.environ, COURSE_PROFILE="smoke", COURSE_CACHE=str(tmp / ".cache" / "course_lib"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               # nbgrader runs `alembic` from PATH: the venv's bin must come first
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    course = tmp / "course"
    assert nbgrader_course.main(["--course", str(course)]) == 0
    nbgrader("generate_assignment", "*", course=course, env=env)
    return course, env


def chapter_names() -> list[str]:
    return [p.stem for p in release.solution_notebooks(ROOT / "solutions")]


def test_every_chapter_releases_exactly_like_chapters(course):
    """nbgrader's student version is chapters/ plus the header: same sources, tags, outputs."""
    course, _ = course
    for name in chapter_names():
        ours = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4).cells
        header, *theirs = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4).cells
        assert "import course_lib" in header.source
        assert len(theirs) == len(ours), name
        for index, (a, b) in enumerate(zip(theirs, ours)):
            assert (a.source, a.metadata.get("tags"), a.get("outputs")) == \
                   (b.source, b.metadata.get("tags"), b.get("outputs")), f"{name}: cell {index} differs"


def test_points_are_one_per_check_cell(course):
    course, _ = course
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name in chapter_names():
            nb = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)
            checks = [c for c in nb.cells if release.CHECK_TAG in c.metadata.get("tags", [])]
            assignment = gb.find_assignment(name)
            assert checks and assignment.max_score == len(checks) * nbgrader_course.POINTS, name
            graded = sorted(cell.name for cell in assignment.notebooks[0].grade_cells)
            assert graded == sorted(nbgrader_course.checker_name(c, name) for c in checks)


def _submit(course: Path, name: str, student: str, answers: dict[str, str]) -> None:
    """A student's submission: the released notebook, some answer cells rewritten."""
    nb = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    folder = course / "submitted" / student / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _expected_message(name: str) -> str:
    """What the chapter's checker says about the wrong answer, run here in-process."""
    grade_id, source, module = WRONG[name]
    namespace: dict = {}
    exec("import torch\n" + source, namespace)
    checkers = importlib.import_module(f"course_lib.checkers.{module}")
    function = [v for k, v in namespace.items() if callable(v) and k != "torch"][0]
    with pytest.raises(ExerciseError) as err:
        getattr(checkers, "check_" + grade_id.removeprefix("answer_"))(function)
    return str(err.value)


def _feedback_text(course: Path, student: str, name: str) -> str:
    page = (course / "feedback" / student / name / f"{name}.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.slow  # 1.5 to 3 minutes for both chapters on 2 shared cores
@pytest.mark.parametrize("name", sorted(WRONG))
def test_autograde_scores_reference_stub_and_one_wrong_answer(course, name):
    course, env = course
    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    reference = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata["nbgrader"]["solution"]}
    grade_id, wrong_source, _ = WRONG[name]
    assert grade_id in reference, f"{name} has no answer cell {grade_id}"
    _submit(course, name, "reference", reference)
    _submit(course, name, "stub", {})
    _submit(course, name, "wrong", {**reference, grade_id: wrong_source})

    nbgrader("autograde", name, course=course, env=env, timeout=900)
    nbgrader("generate_feedback", name, course=course, env=env)

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        top = gb.find_assignment(name).max_score
        score = {s: gb.find_submission(name, s).score for s in ("reference", "stub", "wrong")}
    assert top >= 1
    assert score == {"reference": top, "stub": 0, "wrong": top - nbgrader_course.POINTS}, score
    assert _expected_message(name) in _feedback_text(course, "wrong", name)
    assert "not implemented yet" in _feedback_text(course, "stub", name)


def test_header_names_the_install_when_course_lib_is_missing(monkeypatch):
    with open(ROOT / "book.yml", encoding="utf-8") as fh:
        url = yaml.safe_load(fh)["repository"]["url"]
    header = nbgrader_course.header_notebook(url).cells[0]
    assert header.metadata["nbgrader"]["locked"] and not header.metadata["nbgrader"]["grade"]
    monkeypatch.setitem(sys.modules, "course_lib", None)  # what an environment without it sees
    with pytest.raises(ImportError, match=re.escape(f"pip install 'course-lib @ git+{url}'")):
        exec(header.source, {})


def _pair(folder: Path, cells) -> None:
    folder.mkdir(exist_ok=True)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_x.ipynb")
    jupytext.write(nb, folder / "01_x.md", fmt="md:myst")


EXERCISE = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
CHECK = "check_f(f)"


@pytest.mark.parametrize("cells,problem", [
    ([new_code_cell(EXERCISE), new_code_cell("print(1)")], "cell 1: exercise cell is not followed by a check cell"),
    ([new_code_cell("x = 1"), new_code_cell(CHECK, metadata={"tags": ["check"]})],
     "cell 2: check cell does not follow an exercise cell"),
    ([new_code_cell(EXERCISE), new_code_cell("f(1)", metadata={"tags": ["check"]})],
     "cell 2: a check cell must call a checker"),
])
def test_a_chapter_nbgrader_cannot_grade_stops_with_the_cell(tmp_path, cells, problem, capsys):
    _pair(tmp_path / "solutions", [new_markdown_cell("# X"), *cells])
    assert nbgrader_course.main(["--solutions", str(tmp_path / "solutions"), "--course", str(tmp_path / "c")]) == 2
    message = capsys.readouterr().err
    assert f"01_x.ipynb: {problem}" in message
    assert not (tmp_path / "c").exists(), "nothing may be written when the course stops"


def test_markdown_answers_become_manually_graded(tmp_path):
    _pair(tmp_path / "solutions", [new_markdown_cell("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
                                   new_code_cell(EXERCISE), new_code_cell(CHECK, metadata={"tags": ["check"]})])
    nb = nbgrader_course.instructor_notebook(tmp_path / "solutions" / "01_x.ipynb")
    meta = [c.metadata["nbgrader"] for c in nb.cells]
    assert [(m["grade"], m["solution"], m["locked"], m.get("points")) for m in meta] == [
        (True, True, False, nbgrader_course.POINTS),   # manually graded answer
        (False, True, False, None),                    # autograded answer
        (True, False, True, nbgrader_course.POINTS),   # autograded tests
    ]
    assert [m["grade_id"] for m in meta] == ["answer_cell_0", "answer_f", "check_f"]
    assert all(m["schema_version"] == 3 and m["task"] is False for m in meta)
