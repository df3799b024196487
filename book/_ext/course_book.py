"""Sphinx extension for the course book: per-chapter Colab and download links.

Every chapter page (``solutions/NN_slug``) gets, under its title, an "Open in Colab"
link and a "Download" link for the *student* notebook ``chapters/NN_slug.ipynb``; the
theme's Colab launch button is pointed at the same notebook (by default it would open
the page's own source, the complete solutions notebook). All URLs derive from the one
repository URL in ``book.yml`` (``repository.url`` / ``repository.branch``), which Jupyter
Book passes to the theme as ``repository_url`` / ``repository_branch``.

The student notebooks are copied into the built site (``_build/html/chapters/``), so the
download link works offline too. A chapter without its student notebook is a warning
(an error under ``-W``): run ``make chapters`` first.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

from colab_links import colab_url, student_notebook  # beside this file (book/_ext/)

logger = logging.getLogger(__name__)


def _repository(app) -> tuple[str, str]:
    options = app.config.html_theme_options or {}
    return options.get("repository_url", ""), options.get("repository_branch", "main") or "main"


def _links_html(app, docname: str, notebook: str) -> str:
    url, branch = _repository(app)
    up = "../" * docname.count("/")  # from the page's folder back to the site root
    name = Path(notebook).name
    return (
        '<div class="course-links">'
        f'<a class="course-colab" href="{colab_url(url, notebook, branch)}" target="_blank" rel="noopener">'
        f'<img src="{up}_static/images/logo_colab.png" alt="" class="course-colab-logo"/>'
        "Open in Colab</a>"
        f'<a class="course-download" href="{up}{notebook}" download="{name}">'
        f"Download the student notebook ({name})</a>"
        "</div>"
    )


def add_chapter_links(app, doctree) -> None:
    """doctree-read: insert the links right under the chapter's title."""
    docname = app.env.docname
    notebook = student_notebook(docname)
    if notebook is None:
        return
    if not (Path(app.srcdir) / notebook).is_file():
        logger.warning(
            f"{docname}: the student notebook {notebook} does not exist; run `make chapters` "
            "(make chapters) before building the book.",
            location=docname,
        )
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    links = nodes.raw("", _links_html(app, docname, notebook), format="html")
    section.insert(1, links)  # index 0 is the title


def _retarget_colab(buttons, target: str) -> None:
    for button in buttons:
        if isinstance(button, dict):
            if button.get("text") == "Colab" and "url" in button:
                button["url"] = target
            _retarget_colab(button.get("buttons", []), target)


def point_launch_button_at_student(app, pagename, templatename, context, doctree) -> None:
    """html-page-context (after the theme's launch buttons): Colab opens chapters/."""
    notebook = student_notebook(pagename)
    if notebook is None or "header_buttons" not in context:
        return
    url, branch = _repository(app)
    _retarget_colab(context["header_buttons"], colab_url(url, notebook, branch))


def copy_student_notebooks(app, exception) -> None:
    """build-finished: ship chapters/*.ipynb with the site for the download links."""
    if exception is not None or app.builder.format != "html":
        return
    for docname in app.env.found_docs:
        notebook = student_notebook(docname)
        if notebook and (Path(app.srcdir) / notebook).is_file():
            target = Path(app.outdir) / notebook
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(app.srcdir) / notebook, target)


def _js_key(js) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    return str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """html-page-context: include each script once.

    sphinx-thebe 0.3 (pulled in by Jupyter Book 1) adds its inline config script twice, so
    the browser reports "Identifier 'THEBE_JS_URL' has already been declared" on every page.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = _js_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def set_theme_defaults(app, config) -> None:
    """config-inited: an explicit colour mode. pydata-sphinx-theme logs a console error
    ("Got invalid theme mode") when ``default_mode`` is left empty, as Jupyter Book 1 does."""
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")  # pydata-sphinx-theme reads it from html_context
    config.html_context = context


def setup(app):
    app.connect("config-inited", set_theme_defaults)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("doctree-read", add_chapter_links)
    app.connect("html-page-context", point_launch_button_at_student, priority=502)
    app.connect("build-finished", copy_student_notebooks)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
