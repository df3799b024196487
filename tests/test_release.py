"""The release tool: markers, tags, outputs, bad markers, staleness and pair sync."""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from scripts import release

ROOT = Path(__file__).resolve().parent.parent

SOLUTION = """def reparameterize(mu, logvar):
    \"\"\"docstring stays\"\"\"
    ### BEGIN SOLUTION
    std = torch.exp(0.5 * logvar)
    return mu + std * torch.randn_like(std)
    ### END SOLUTION"""


def _pair(folder: Path, name: str, cells) -> Path:
    """Write an (ipynb, md) pair the way `make sync` would."""
    nb = new_notebook(cells=cells)
    nb.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    jupytext.write(nb, path.with_suffix(".md"), fmt="md:myst")
    return path


def _exercise_notebook(tmp_path: Path) -> tuple[Path, Path]:
    solutions, chapters = tmp_path / "solutions", tmp_path / "chapters"
    solutions.mkdir()
    exercise = new_code_cell(SOLUTION, metadata={"tags": ["hide-input"]},
                             outputs=[new_output("stream", name="stdout", text="hi\n")], execution_count=3)
    check = new_code_cell("check_reparameterize(reparameterize)", metadata={"tags": ["check"]},
                          outputs=[new_output("stream", name="stdout", text="ok\n")], execution_count=4)
    plain = new_code_cell("print(1 + 1)", outputs=[new_output("stream", name="stdout", text="2\n")],
                          execution_count=5)
    answer = new_markdown_cell("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION")
    kept = new_code_cell("print(x.shape)", metadata={"tags": ["keep-output"]},
                         outputs=[new_output("stream", name="stdout", text="(8, 3)\n")], execution_count=6)
    compared = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(n_params)",
                             outputs=[new_output("stream", name="stdout", text="42\n")], execution_count=7)
    _pair(solutions, "02_vae", [new_markdown_cell("# VAE"), exercise, check, plain, answer, kept, compared])
    return solutions, chapters


def test_solution_region_becomes_the_stub(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    release.release(solutions, chapters)
    nb = nbformat.read(chapters / "02_vae.ipynb", as_version=4)
    exercise, check, plain, answer, kept, compared = nb.cells[1:]
    assert exercise.source == (
        'def reparameterize(mu, logvar):\n    """docstring stays"""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()"
    )
    assert "exp(0.5" not in exercise.source and "BEGIN" not in exercise.source
    assert answer.source == "Why?\n\nYOUR ANSWER HERE"
    # tags: exercise and check cells may raise; hide-input only matters in the book
    assert exercise.metadata["tags"] == ["raises-exception"]
    assert check.metadata["tags"] == ["check", "raises-exception"]
    assert "tags" not in plain.metadata
    # the solution's outputs are gone, and so are results: the student runs the cell to see them
    assert exercise.outputs == [] and exercise.execution_count is None
    assert check.outputs == []
    assert plain.outputs == [] and plain.execution_count is None
    # set-up and data previews (tag keep-output) and outputs nbval compares stay
    assert kept.outputs[0]["text"] == "(8, 3)\n" and kept.metadata["tags"] == ["keep-output"]
    assert compared.outputs[0]["text"] == "42\n"
    # the paired text file is written too, and matches the notebook
    md = jupytext.read(chapters / "02_vae.md")
    assert [c.source for c in md.cells] == [c.source for c in nb.cells]


def test_release_leaves_the_solution_untouched(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    before = (solutions / "02_vae.ipynb").read_text()
    release.release(solutions, chapters)
    assert (solutions / "02_vae.ipynb").read_text() == before


def test_check_mode_reports_staleness(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    assert release.main(["--solutions", str(solutions), "--chapters", str(chapters), "--check"]) == 1
    assert release.main(["--solutions", str(solutions), "--chapters", str(chapters)]) == 0
    assert release.main(["--solutions", str(solutions), "--chapters", str(chapters), "--check"]) == 0
    # editing a chapter by hand (or a solution) makes it stale again
    (chapters / "02_vae.md").write_text("edited by hand\n")
    assert release.release(solutions, chapters, check=True) == [chapters / "02_vae.md"]
    # a chapter whose solution was deleted is stale too
    (chapters / "99_old.ipynb").write_text("{}")
    assert chapters / "99_old.ipynb" in release.release(solutions, chapters, check=True)


def test_another_jupytext_release_does_not_make_chapters_stale(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    release.release(solutions, chapters)
    md = chapters / "02_vae.md"
    text = md.read_text()
    assert "jupytext_version: " in text
    stamped = release.VERSION_STAMP.sub("    jupytext_version: 0.0.1\n", text)
    assert stamped != text
    md.write_text(stamped)
    assert release.release(solutions, chapters, check=True) == []
    # anything else in the header still counts
    md.write_text(stamped.replace("format_name: myst", "format_name: other"))
    assert release.release(solutions, chapters, check=True) == [md]


@pytest.mark.parametrize(
    "source,problem,line",
    [
        ("x = 1\n### BEGIN SOLUTION\ny = 2", "never closed", 2),
        ("x = 1\n### END SOLUTION", "without a matching", 2),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested", 2),
    ],
)
def test_bad_markers_stop_with_file_and_line(tmp_path, source, problem, line):
    solutions, chapters = tmp_path / "solutions", tmp_path / "chapters"
    solutions.mkdir()
    _pair(solutions, "03_gan", [new_markdown_cell("# GAN"), new_code_cell(source)])
    with pytest.raises(release.ReleaseError) as err:
        release.release(solutions, chapters)
    message = str(err.value)
    assert problem in message and "03_gan.ipynb" in message and f"cell 1, line {line}" in message
    assert not chapters.exists(), "nothing may be written when the release stops"


def test_out_of_sync_pair_is_an_error(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    nb = nbformat.read(solutions / "02_vae.ipynb", as_version=4)
    nb.cells[3].source = "print(2 + 2)"  # edited the .ipynb but never synced the .md
    nbformat.write(nb, solutions / "02_vae.ipynb")
    with pytest.raises(release.ReleaseError, match="out of sync"):
        release.release(solutions, chapters)
    (solutions / "02_vae.md").unlink()
    with pytest.raises(release.ReleaseError, match="missing"):
        release.release(solutions, chapters)


def test_repository_chapters_are_current():
    """chapters/ in the repository is exactly what `make chapters` writes now."""
    stale = release.release(ROOT / "solutions", ROOT / "chapters", check=True)
    assert not stale, f"chapters/ is stale: {[str(p) for p in stale]}; run `make chapters`"


def test_every_solution_has_a_student_version():
    solutions = {p.name for p in release.solution_notebooks(ROOT / "solutions")}
    assert solutions == {p.name for p in (ROOT / "chapters").glob("*.ipynb")}


# ---------------------------------------------------------------- no answer, no result in sight
def _chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.ipynb"))


def _output_text(output) -> str:
    """Everything a stored output shows as text (streams, text/plain, HTML, Markdown, errors)."""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else "".join(text)
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    parts = [data.get(k, "") for k in ("text/plain", "text/html", "text/markdown")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _guarded_functions() -> list:
    """course_lib's own answers to every exercise: what each checker's ``own_work`` lists."""
    import importlib
    import pkgutil

    import course_lib.checkers as checkers

    found = {}
    for info in pkgutil.iter_modules(checkers.__path__):
        module = importlib.import_module(f"course_lib.checkers.{info.name}")
        for checker in vars(module).values():
            for fn in (getattr(checker, "library", ()) if hasattr(checker, "__wrapped__") else ()):
                found[id(fn)] = fn
    assert len(found) > 20, "the checkers' own_work lists were not found"
    return list(found.values())


def _exercise_function_names() -> set[str]:
    """Every function an exercise cell of solutions/ asks the student to write."""
    names = set()
    for path in release.solution_notebooks(ROOT / "solutions"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and release.BEGIN in cell.source:
                names |= set(re.findall(r"^def (\w+)\(", cell.source, flags=re.MULTILINE))
    return names


def _code_lines(source: str) -> list[str]:
    """The distinctive lines of a function's source: code, not comments or docstrings."""
    lines = (line.strip() for line in source.splitlines())
    return [line for line in lines if len(line) >= 40 and not line.startswith(("#", '"', "'"))]


def test_no_stored_output_shows_an_exercise_answer():
    """A student version never prints the source of course_lib's answer to an exercise (or of
    any ``def`` an exercise asks for): the answer would be one scroll away."""
    import inspect

    signatures = {f"def {fn.__name__}(" for fn in _guarded_functions()}
    signatures |= {f"def {name}(" for name in _exercise_function_names()}
    # a body without its def line counts too: three of its distinctive lines (or all, if fewer)
    bodies = {fn.__qualname__: _code_lines(inspect.getsource(fn)) for fn in _guarded_functions()}
    leaks = []
    for path in _chapter_notebooks():
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                text = _output_text(output)
                leaks += [f"{path.name} cell {index}: {s}" for s in signatures if s in text]
                leaks += [f"{path.name} cell {index}: the body of {name}" for name, lines in bodies.items()
                          if lines and sum(line in text for line in lines) >= min(3, len(lines))]
    # nor a cell that would print it when run
    names = "|".join(sorted({fn.__name__ for fn in _guarded_functions()}))
    shows = re.compile(rf"getsource\((?:[\w.]+\.)?({names})\)")
    for path in _chapter_notebooks():
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                leaks += [f"{path.name} cell {index}: prints {m}" for m in shows.findall(cell.source)]
    assert not leaks, f"stored outputs show an exercise's answer: {leaks}"


def test_student_versions_carry_no_result_outputs():
    """Only set-up and data previews (tag keep-output) and nbval-compared cells keep outputs:
    a student predicts a result, then runs the cell to see it."""
    results = []
    for path in _chapter_notebooks():
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and cell.outputs and not release.keeps_output(cell):
                results.append(f"{path.name} cell {index}")
            if cell.cell_type == "code" and cell.outputs and release.RAISES_TAG in cell.metadata.get("tags", []):
                results.append(f"{path.name} cell {index} (exercise or check)")
    assert not results, f"student versions show results before the run: {results}"


def test_no_cell_before_an_exercise_computes_its_answer():
    """The chapter's code before an exercise never contains a line of the exercise's solution
    (e.g. the masked composite just before the exercise that asks for it)."""
    found = []
    for path in release.solution_notebooks(ROOT / "solutions"):
        cells = nbformat.read(path, as_version=4).cells
        for index, cell in enumerate(cells):
            if cell.cell_type != "code" or release.BEGIN not in cell.source:
                continue
            region = cell.source.split(release.BEGIN, 1)[1].split(release.END, 1)[0]
            answer = {re.sub(r"\s+", "", line.split("#")[0]) for line in region.splitlines()}
            answer = {line for line in answer if len(line) >= 16 and not line.startswith(("return", "raise"))}
            for before in range(index):
                other = cells[before]
                if other.cell_type != "code" or release.BEGIN in other.source:
                    continue
                for line in other.source.splitlines():
                    if re.sub(r"\s+", "", line.split("#")[0]) in answer:
                        found.append(f"{path.name} cell {before} (before cell {index}): {line.strip()}")
    assert not found, f"a cell before an exercise computes its answer: {found}"
