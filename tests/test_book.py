"""The course book, built and read in a real browser (headless Chromium).

Run by ``make test`` (``make test-book``). By default the book is built from a staging
copy of its sources (tests/book_helpers.py) with every chapter executed under the
``smoke`` profile, into a temporary folder; set ``BOOK_HTML=_build/html`` to test a book
you already built (e.g. by ``make book``) instead. Other knobs:
``BOOK_TEST_PROFILE`` (default smoke), ``BOOK_TEST_EXECUTE`` (force, or off to render the
stored outputs), ``CHROMIUM`` (a Chromium binary; by default
:func:`book_helpers.find_chromium` takes Playwright's own Chromium, else a system
``chromium`` / ``chromium-browser`` / ``google-chrome``, else runs
``python -m playwright install chromium``).

Artefacts go to ``_build/artifacts/``: ``ch02.png`` (a screenshot of chapter 02),
``book_build.json`` (the build time) and ``book_build.log``.

The checks that do not need a browser (setup cell, repository URL, citations) come first
and run in a second.
"""
from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_helpers  # noqa: E402

from colab_links import colab_url, read_repository, student_notebook  # noqa: E402  (book/_ext)

ROOT = book_helpers.ROOT
ARTIFACTS = ROOT / "_build" / "artifacts"
TOC = book_helpers.toc_files()
CHAPTERS = book_helpers.chapter_docnames()
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETUP_CELL = (ROOT / "book" / "setup_cell.py").read_text(encoding="utf-8")


# ------------------------------------------------------------------ no browser needed
def _first_code_cell(md_text: str) -> str | None:
    match = re.search(r"^```\{code-cell\}[^\n]*\n(.*?)^```", md_text, re.MULTILINE | re.DOTALL)
    if match is None:
        return None
    lines = match.group(1).splitlines()
    while lines and (lines[0].startswith(":") or lines[0].strip() == "---"):  # cell options
        lines.pop(0)
    return "\n".join(lines)


def _normalise(code: str) -> list[str]:
    return [line.rstrip() for line in code.strip().splitlines()]


def test_setup_cell_installs_from_the_book_repository():
    url, _ = read_repository(ROOT / "book.yml")
    names = {node.targets[0].id: node.value.value for node in ast.walk(ast.parse(SETUP_CELL))
             if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
             and isinstance(node.targets[0], ast.Name)}
    assert names.get("COURSE_REPO") == url, (
        f"book/setup_cell.py installs from {names.get('COURSE_REPO')!r} but book.yml's "
        f"repository.url is {url!r}: change them together")
    compile(SETUP_CELL, "book/setup_cell.py", "exec")  # it is valid Python


@pytest.mark.parametrize("md", sorted((ROOT / "solutions").glob("[0-9][0-9]*_*.md")), ids=lambda p: p.stem)
def test_every_chapter_starts_with_the_setup_cell(md):
    first = _first_code_cell(md.read_text(encoding="utf-8"))
    assert first is not None, f"{md.name} has no code cell"
    want, got = _normalise(SETUP_CELL), _normalise(first)
    assert got[: len(want)] == want, (
        f"{md.name}: the first code cell must start with book/setup_cell.py, copied verbatim "
        "(it installs course_lib on Colab and picks the profile)")


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(encoding="utf-8"),
                          re.MULTILINE))
    missing = {}
    for md in list((ROOT / "solutions").glob("*.md")) + list((ROOT / "book").glob("*.md")):
        text = re.sub(r"<!--.*?-->", "", md.read_text(encoding="utf-8"), flags=re.DOTALL)
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in (k.strip() for k in group.split(",")):
                if key not in keys:
                    missing.setdefault(md.name, []).append(key)
    assert not missing, f"cited but not in book/references.bib: {missing}"


def test_toc_lists_the_chapters_and_the_book_pages():
    assert CHAPTERS == [f"solutions/{n}" for n in (
        "00_setup", "01_unsupervised", "02_vae", "03_gan", "03b_gan_measured", "04_inpainting", "05_jigsaw",
        "06_fusion", "07_applications", "08_diffusion", "09_flow_matching", "10_guidance", "11_latent",
        "12_ssl_generation")]
    assert TOC[0] == "book/intro" and TOC[-3:] == ["book/instructors", "book/results", "book/references"]
    # every page the toc lists exists, the chapters with their student versions (the build
    # would stop on a missing one; this says which)
    missing = [f for f in TOC if not (ROOT / f"{f}.ipynb").is_file() and not (ROOT / f"{f}.md").is_file()]
    missing += [f"chapters/{Path(d).name}.ipynb" for d in CHAPTERS
                if not (ROOT / "chapters" / f"{Path(d).name}.ipynb").is_file()]
    assert not missing, f"listed in toc.yml but missing (write the page; `make chapters`): {missing}"


def test_the_book_config_for_another_execution_mode(tmp_path):
    from scripts.book_config import book_config, main

    off = book_config(ROOT / "book.yml", execute="off")
    assert off["execute"]["execute_notebooks"] == "force"            # the book's own pages run
    assert off["execute"]["exclude_patterns"] == ["solutions/*"]     # the chapters keep their outputs
    assert Path(off["sphinx"]["local_extensions"]["course_book"]) == ROOT / "book" / "_ext"
    assert book_config(ROOT / "book.yml", execute="cache")["execute"]["execute_notebooks"] == "cache"
    with pytest.raises(ValueError, match="BOOK_EXECUTE='never': expected one of off, cache, auto, force"):
        book_config(ROOT / "book.yml", execute="never")
    assert main([str(ROOT / "book.yml"), str(tmp_path / "b.yml"), "--execute", "off"]) == 0
    import yaml
    assert yaml.safe_load((tmp_path / "b.yml").read_text()) == off


def test_book_config_builds_what_the_course_promises():
    import yaml

    config = yaml.safe_load((ROOT / "book.yml").read_text(encoding="utf-8"))
    assert config["only_build_toc_files"] is True
    assert {"solutions/*.md", "chapters/**", ".venv", "_build"} <= set(config["exclude_patterns"])
    assert config["execute"]["execute_notebooks"] == "force"  # make book runs every chapter
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["html"]["use_repository_button"] is True
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_colab_links_derive_from_the_repository_url():
    from colab_links import github_parts, raw_url

    assert student_notebook("solutions/05_jigsaw") == "chapters/05_jigsaw.ipynb"
    assert student_notebook("solutions/03b_gan_measured") == "chapters/03b_gan_measured.ipynb"   # a second part
    assert student_notebook("book/results") is None
    assert colab_url("https://github.com/a/b.git", "chapters/00_setup.ipynb", "dev") == (
        "https://colab.research.google.com/github/a/b/blob/dev/chapters/00_setup.ipynb")
    assert raw_url("https://github.com/a/b", "chapters/x.ipynb").startswith("https://raw.githubusercontent.com/a/b/main/")
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        github_parts("https://gitlab.com/a/b")


# ------------------------------------------------------------------ the built book
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The html folder of a built book, built here unless BOOK_HTML is set."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BOOK_HTML"):
        html = Path(os.environ["BOOK_HTML"]).resolve()
        assert (html / "index.html").is_file(), f"BOOK_HTML={html} holds no built book"
        return html
    stage = book_helpers.stage_sources(tmp_path_factory.mktemp("book"))
    profile = os.environ.get("BOOK_TEST_PROFILE", "smoke")
    execute = os.environ.get("BOOK_TEST_EXECUTE", "force")
    seconds = book_helpers.build(stage, profile=profile, execute=execute,
                                 log=ARTIFACTS / "book_build.log")
    (ARTIFACTS / "book_build.json").write_text(json.dumps({
        "seconds": round(seconds, 1), "profile": profile, "execute": execute,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": f"COURSE_PROFILE={profile} BOOK_EXECUTE={execute} scripts/build_book.sh (staging copy)",
    }, indent=2))
    return stage / "_build" / "html"


@pytest.fixture(scope="module")
def base_url(site):
    with book_helpers.serve(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            chromium = book_helpers.find_chromium(lambda: book_helpers.playwright_chromium(p))
        except RuntimeError as err:
            pytest.fail(str(err))
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def _open(browser, base_url, path):
    """Open a page offline; return (page, console errors, failed local requests, blocked external)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed, external = [], [], []

    def route(r):
        if r.request.url.startswith(base_url):
            r.continue_()
        else:  # the test is offline: external assets (MathJax from its CDN) are blocked
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and errors.append((m.text, m.location.get("url", ""))))
    page.on("pageerror", lambda e: errors.append((f"uncaught: {e}", "")))
    page.on("requestfailed", lambda r: r.url.startswith(base_url) and failed.append(r.url))
    page.on("response",
            lambda r: r.url.startswith(base_url) and r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    page.goto(f"{base_url}/{path}", wait_until="load")
    page.wait_for_timeout(300)
    return page, errors, failed, external


def _own_errors(errors, external):
    """Console errors, less the 'failed to load' of the external URLs this offline test blocked."""
    return [(text, url) for text, url in errors
            if not (url and url in external) and not (not url and "ERR_FAILED" in text and external)]


@pytest.mark.parametrize("docname", TOC)
def test_page_loads_without_console_errors(site, base_url, browser, docname):
    page, errors, failed, external = _open(browser, base_url, f"{docname}.html")
    try:
        assert page.title(), f"{docname}: empty title"
        assert not _own_errors(errors, external), f"{docname}: console errors {errors}"
        assert not failed, f"{docname}: local requests failed {failed}"
        broken = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => i.src.startsWith(location.origin)"
                   " && !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, f"{docname}: images that do not load {broken}"
    finally:
        page.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_shows_a_figure_and_math(site, base_url, browser, docname):
    page, *_ = _open(browser, base_url, f"{docname}.html")
    try:
        figures = page.eval_on_selector_all(
            "article .cell_output img", "imgs => imgs.filter(i => i.naturalWidth > 0).length")
        assert figures >= 1, f"{docname}: no rendered figure in the cell outputs"
        assert page.locator("article .math").count() >= 1, f"{docname}: no math on the page"
    finally:
        page.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_exercises_are_visible_admonitions(site, base_url, browser, docname):
    page, *_ = _open(browser, base_url, f"{docname}.html")
    try:
        titles = page.locator("article .admonition .admonition-title")
        exercises = [titles.nth(i) for i in range(titles.count())
                     if titles.nth(i).inner_text().strip().lower().startswith("exercise")]
        assert exercises, f"{docname}: no admonition titled 'Exercise ...'"
        assert all(t.is_visible() for t in exercises), f"{docname}: an exercise is not visible"
    finally:
        page.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_no_traceback_outside_cells_tagged_raises_exception(site, base_url, browser, docname):
    page, *_ = _open(browser, base_url, f"{docname}.html")
    try:
        stray = page.evaluate("""() => {
            const bad = [];
            for (const out of document.querySelectorAll('article .cell_output')) {
                const cell = out.closest('.cell');
                if (cell && cell.classList.contains('tag_raises-exception')) continue;
                const text = out.innerText;
                if (out.querySelector('.traceback') || /Traceback \\(most recent call last\\)|^\\w+Error: /m.test(text))
                    bad.push(text.slice(0, 300));
            }
            return bad; }""")
        assert not stray, f"{docname}: error output outside raises-exception cells: {stray}"
    finally:
        page.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_solution_is_hidden_until_its_toggle_is_clicked(site, base_url, browser, docname):
    page, *_ = _open(browser, base_url, f"{docname}.html")
    try:
        hidden = page.locator("article .cell.tag_hide-input")
        assert hidden.count() >= 1, f"{docname}: no solution cell tagged hide-input"
        cell = hidden.first
        code = cell.locator(".cell_input")
        cell.scroll_into_view_if_needed()
        assert not code.is_visible(), f"{docname}: the solution is visible before its toggle is clicked"
        cell.locator("summary").first.click()
        code.wait_for(state="visible", timeout=5000)
        assert "BEGIN SOLUTION" in code.inner_text() or code.inner_text().strip(), f"{docname}: empty solution"
    finally:
        page.close()


@pytest.mark.parametrize("docname", CHAPTERS)
def test_colab_and_download_links_point_at_the_student_notebook(site, base_url, browser, docname):
    url, branch = read_repository(ROOT / "book.yml")
    notebook = student_notebook(docname)
    expected = colab_url(url, notebook, branch)
    assert "/chapters/" in expected and expected.endswith(".ipynb")
    page, *_ = _open(browser, base_url, f"{docname}.html")
    try:
        assert page.get_attribute("a.course-colab", "href") == expected
        launch = page.eval_on_selector_all("a[href*='colab.research.google.com']", "as => as.map(a => a.href)")
        assert launch and all(h == expected for h in launch), f"{docname}: Colab links {launch}"
        download = urljoin(page.url, page.get_attribute("a.course-download", "href"))
        with urllib.request.urlopen(download) as response:
            student = json.loads(response.read())
        text = json.dumps(student)
        assert "### BEGIN SOLUTION" not in text, f"{docname}: the download link serves a notebook with solutions"
    finally:
        page.close()


def test_search_finds_elbo_in_chapter_02(site, base_url, browser):
    page, errors, _, external = _open(browser, base_url, "search.html?q=ELBO")
    try:
        page.wait_for_selector("#search-results ul.search li", timeout=20000)
        hrefs = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
        assert any("solutions/02_vae.html" in h for h in hrefs), f"search for ELBO found {hrefs}"
        assert not _own_errors(errors, external)
    finally:
        page.close()


def test_results_and_instructor_pages_show_generated_tables(site, base_url, browser):
    page, *_ = _open(browser, base_url, "book/results.html")
    try:
        text = page.locator("article").inner_text()
        for docname in CHAPTERS:
            assert Path(docname).name in text, f"Results page does not mention {docname}"
        assert page.locator("article table").count() >= 1, "Results page shows no table"
        assert "dcgan_reference (model)" in text and "blur1 (reference)" in text, \
            "Results page lacks the sample-quality table (book/results_tables.sample_quality_section)"
    finally:
        page.close()
    page, *_ = _open(browser, base_url, "book/instructors.html")
    try:
        assert page.locator("article table").count() >= 3, "For instructors: the generated profile table is missing"
        assert "Writing and changing the course" in page.locator("article").inner_text(), "CONTRIBUTING.md not included"
    finally:
        page.close()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in {"a": "href", "img": "src", "link": "href", "script": "src"}.get(tag, "").split():
            if attrs.get(key):
                self.urls.append(attrs[key])


def test_every_internal_link_and_image_resolves(site, base_url):
    html = site
    pages = [html / f"{d}.html" for d in TOC] + [html / "index.html", html / "search.html"]
    checked, broken = set(), []
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        page_url = f"{base_url}/{page.relative_to(html).as_posix()}"
        for raw in parser.urls:
            target = urljoin(page_url, raw)
            parts = urlparse(target)
            if parts.scheme not in ("http", "https") or not target.startswith(base_url):
                continue
            target = target.split("#")[0].split("?")[0]
            if target in checked:
                continue
            checked.add(target)
            try:
                urllib.request.urlopen(target).close()
            except urllib.error.URLError as error:
                broken.append(f"{page.name}: {raw} ({error})")
    assert checked, "no internal links found"
    assert not broken, "broken internal links/images:\n" + "\n".join(broken)


def test_screenshot_of_chapter_02(site, base_url, browser):
    page, *_ = _open(browser, base_url, "solutions/02_vae.html")
    try:
        target = ARTIFACTS / "ch02.png"
        page.screenshot(path=str(target), full_page=False)
        assert target.stat().st_size > 10_000
    finally:
        page.close()


def test_setup_cell_on_colab_pins_only_what_pip_adds(tmp_path, monkeypatch):
    """Run the setup cell as Colab would, offline: it fetches constraints.txt, keeps the pins of
    packages not installed yet (Colab's torch and numpy stay), and hands them to pip with -c."""
    import io
    import subprocess
    import sys
    import types
    import urllib.request

    lock = (ROOT / "constraints.txt").read_text(encoding="utf-8") + "not-on-this-machine==1.2\n"
    fetched, calls = [], []

    def urlopen(url):
        fetched.append(url)
        return io.BytesIO(lock.encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.chdir(tmp_path)
    exec(compile(SETUP_CELL, "book/setup_cell.py", "exec"), {})
    url, _ = read_repository(ROOT / "book.yml")
    assert fetched == [url.replace("github.com", "raw.githubusercontent.com") + "/main/constraints.txt"]
    (args,) = calls
    assert args[:6] == [sys.executable, "-m", "pip", "install", "-q", "-c"] and args[-1] == f"course-lib @ git+{url}"
    pins = (tmp_path / args[6]).read_text().split()
    names = {p.split("==")[0] for p in pins}
    assert "torch==" in lock and "torch" not in names and "numpy" not in names  # installed here: left alone
    assert "not-on-this-machine==1.2" in pins and all(p in lock.splitlines() for p in pins)
