"""The release tool: markers, tags, outputs, bad markers, staleness and pair sync."""
from __future__ import annotations

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
    _pair(solutions, "02_vae", [new_markdown_cell("# VAE"), exercise, check, plain, answer])
    return solutions, chapters


def test_solution_region_becomes_the_stub(tmp_path):
    solutions, chapters = _exercise_notebook(tmp_path)
    release.release(solutions, chapters)
    nb = nbformat.read(chapters / "02_vae.ipynb", as_version=4)
    exercise, check, plain, answer = nb.cells[1:]
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
    # the solution's outputs are gone, other outputs stay for the reader
    assert exercise.outputs == [] and exercise.execution_count is None
    assert check.outputs == []
    assert plain.outputs[0]["text"] == "2\n"
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
