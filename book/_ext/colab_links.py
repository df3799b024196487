"""Links between the book, the repository and Google Colab (used by ``course_book.py``).

Book-building code, not notebook code: no chapter imports it at run time (a chapter's
Colab setup cell is ``book/setup_cell.py``), so it lives beside the Sphinx extension
rather than in ``course_lib``.

The repository URL is written once, in ``book.yml`` (``repository.url``); everything
here derives from it, so a fork changes one line. The book uses these functions to put
an "Open in Colab" and a "Download" link on every chapter page, pointing at the
*student* notebook ``chapters/NN_slug.ipynb`` (the book itself renders the complete
``solutions/NN_slug.ipynb``).

>>> student_notebook("solutions/02_vae")
'chapters/02_vae.ipynb'
>>> colab_url("https://github.com/org/course", "chapters/02_vae.ipynb")
'https://colab.research.google.com/github/org/course/blob/main/chapters/02_vae.ipynb'
"""
from __future__ import annotations

import re
from pathlib import Path

COLAB = "https://colab.research.google.com"
_GITHUB = re.compile(r"^https://github\.com/(?P<org>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
_CHAPTER = re.compile(r"^solutions/(?P<slug>\d\d[a-z]?_[A-Za-z0-9_]+)$")   # NN_slug or NNx_slug (03b_...)


def github_parts(repo_url: str) -> tuple[str, str]:
    """``"https://github.com/org/repo"`` -> ``("org", "repo")``; anything else is an error."""
    match = _GITHUB.match(repo_url.strip())
    if match is None:
        raise ValueError(
            f"repository URL {repo_url!r} is not a GitHub repository URL; expected "
            "'https://github.com/<org>/<repo>' (set it once in book.yml, repository.url)."
        )
    return match["org"], match["repo"]


def read_repository(book_yml: str | Path = "book.yml") -> tuple[str, str]:
    """``(url, branch)`` from the ``repository:`` block of ``book.yml``."""
    import yaml  # dev dependency: only the book and its tests need it

    config = yaml.safe_load(Path(book_yml).read_text(encoding="utf-8"))
    repository = config.get("repository") or {}
    if "url" not in repository:
        raise ValueError(f"{book_yml} has no repository.url; the book's links derive from it.")
    return repository["url"], repository.get("branch", "main")


def student_notebook(docname: str) -> str | None:
    """The student notebook for a book page, or ``None`` when the page is no chapter.

    ``docname`` is the page's path without suffix, from the book's root
    (e.g. ``"solutions/02_vae"``).
    """
    match = _CHAPTER.match(docname)
    return f"chapters/{match['slug']}.ipynb" if match else None


def colab_url(repo_url: str, notebook_path: str, branch: str = "main") -> str:
    """The URL that opens ``notebook_path`` (relative to the repository root) in Colab."""
    org, repo = github_parts(repo_url)
    return f"{COLAB}/github/{org}/{repo}/blob/{branch}/{notebook_path}"


def raw_url(repo_url: str, path: str, branch: str = "main") -> str:
    """The URL that downloads ``path`` from GitHub as a file."""
    org, repo = github_parts(repo_url)
    return f"https://raw.githubusercontent.com/{org}/{repo}/{branch}/{path}"
