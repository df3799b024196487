"""Collect every number the course measures into the tables of the book's Results page.

The Results page (book/results.md) is a notebook executed at every book build; it calls
the functions below, which read only files committed to the repository:

- ``solutions/NN_slug.ipynb``: the stored, executed chapters. Their wall time comes from
  the execution timestamps Jupyter records in each cell's metadata; their "What we
  measured" tables are the outputs of the code cells under that heading.
- ``bench/results/*`` and ``course_lib/results_data/*`` (package data,
  :mod:`course_lib.results`): files written by the benchmark and experiment scripts (JSON,
  CSV, Markdown or text), shown as they are, with the command and machine they name. The
  sample-quality table (``sample_quality_cpu``) has its own section, its rows ranked by
  Frechet distance, and is not repeated in the file listing.

Nothing here computes or invents a number; a missing file is reported as missing.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
from pathlib import Path

import nbformat
import yaml

from course_lib import results

PROFILE_PATTERN = re.compile(r"\bprofile\s*[:=]?\s*'?(smoke|cpu|gpu)\b", re.IGNORECASE)
MEASURED_HEADING = re.compile(r"^#{1,6}\s+What we measured", re.IGNORECASE | re.MULTILINE)
ANY_HEADING = re.compile(r"^#{1,6}\s+", re.MULTILINE)


def toc_chapters(root: Path) -> list[Path]:
    """The chapter notebooks toc.yml lists (``solutions/NN_slug.ipynb``), existing or not."""
    toc = yaml.safe_load((root / "toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [root / f"{f}.ipynb" for f in files if f.startswith("solutions/")]


def _written(path: Path) -> bool:
    """False for a missing chapter and for the book tests' placeholder pages."""
    if not path.exists():
        return False
    return not nbformat.read(path, as_version=4).metadata.get("course-book-placeholder", False)


def _stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return data.get("text/plain", "") if isinstance(data.get("text/plain", ""), str) else ""


def chapter_timing(path: Path) -> dict:
    """Wall time of the stored execution of one chapter (first cell start to last reply)."""
    nb = nbformat.read(path, as_version=4)
    starts, ends = [], []
    profile = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        timing = cell.metadata.get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            starts.append(_stamp(timing["iopub.execute_input"]))
            ends.append(_stamp(timing["shell.execute_reply"]))
        for output in cell.get("outputs", []):
            match = PROFILE_PATTERN.search(_text(output))
            if match and profile is None:
                profile = match.group(1).lower()
    seconds = (max(ends) - min(starts)).total_seconds() if starts else None
    return {"seconds": seconds, "profile": profile, "executed": min(starts) if starts else None}


def chapter_times_markdown(root: Path) -> str:
    rows = ["| chapter | stored outputs executed | wall time | profile printed by the notebook |",
            "|---|---|---|---|"]
    for path in toc_chapters(root):
        name = path.stem
        if not _written(path):
            rows.append(f"| {name} | not written yet | - | - |")
            continue
        t = chapter_timing(path)
        if t["seconds"] is None:
            rows.append(f"| {name} | no execution timestamps stored | - | - |")
            continue
        rows.append(f"| {name} | {t['executed']:%Y-%m-%d %H:%M} UTC | {t['seconds']:.0f} s "
                    f"| {t['profile'] or 'not printed'} |")
    return "\n".join(rows)


def measured_outputs(path: Path) -> list[str]:
    """Markdown for the outputs of the code cells under the chapter's "What we measured"."""
    nb = nbformat.read(path, as_version=4)
    inside, parts = False, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if MEASURED_HEADING.search(cell.source):
                inside = True
            elif inside and ANY_HEADING.search(cell.source):
                break
            continue
        if not inside:
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:  # headings would break the page's outline
                parts.append(re.sub(r"^#{1,6}\s+(.*)$", r"**\1**", data["text/markdown"], flags=re.M))
            elif "text/html" in data:
                parts.append(data["text/html"])
            elif _text(output).strip():
                parts.append("```text\n" + _text(output).rstrip() + "\n```")
    return parts


def measured_markdown(root: Path) -> str:
    sections = []
    for path in toc_chapters(root):
        title = f"**{path.stem}**"
        if not _written(path):
            sections.append(f"{title}\n\nThis chapter is not written yet.")
            continue
        parts = measured_outputs(path)
        command = f"`make execute NB=solutions/{path.stem}.md` (which runs the cpu profile)"
        if parts:
            sections.append(f"{title}\n\nReproduce with {command}.\n\n" + "\n\n".join(parts))
        else:
            sections.append(f"{title}\n\nThe stored notebook has no table under a "
                            "\"What we measured\" heading (its numbers, if any, are in the "
                            f"chapter's text and figures). Reproduce with {command}.")
    return "\n\n".join(sections)


def _table(rows: list[dict]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [html.escape(str(row.get(k, ""))).replace("|", "\\|") for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _is_rows(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_keyed_rows(value) -> bool:
    """A dict of dicts, e.g. ``"summary": {backbone: {"probe_mean": ...}}``: one row per key."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _cell(value) -> str:
    """A summary cell: ``{"mean", "std", ...}`` as "mean ± std" (the file's own numbers,
    4 significant digits), any other list or dict as its JSON, scalars as they are."""
    if isinstance(value, dict) and {"mean", "std"} <= set(value):
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _json_markdown(data) -> str:
    """Scalars as a metadata list; every list of records and every dict of records as its
    own table, headed by its key (nested one level: ``{"long_budget": {"rows": [...]}}``)."""
    if _is_rows(data):
        return _table(data)
    if not isinstance(data, dict):
        return "```json\n" + json.dumps(data, indent=1) + "\n```"
    meta, tables = {}, []
    for key, value in data.items():
        if _is_rows(value):
            tables.append((key, _table(value)))
        elif _is_keyed_rows(value):
            tables.append((key, _table([{"": name, **{k: _cell(v) for k, v in row.items()}}
                                        for name, row in value.items()])))
        elif isinstance(value, dict) and any(_is_rows(v) or _is_keyed_rows(v) for v in value.values()):
            tables.append((key, _json_markdown(value)))
        elif isinstance(value, (dict, list)):
            meta[key] = json.dumps(value)
        else:
            meta[key] = value
    text = "\n".join(f"- **{k}**: `{v}`" if k in ("command", "cmd") else f"- **{k}**: {v}"
                     for k, v in meta.items())
    body = "\n\n".join(f"*{key}*\n\n{table}" for key, table in tables)
    return "\n\n".join(part for part in (text, body) if part) or _table([meta])


def result_file_markdown(path: Path) -> str:
    """One result file as Markdown: metadata (command, machine, ...) and its table."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_markdown(json.loads(path.read_text(encoding="utf-8")))
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return _table(list(csv.DictReader(f)))
    if suffix == ".md":  # headings would break the page's outline: make them bold lines
        return re.sub(r"^#{1,6}\s+(.*)$", r"**\1**", path.read_text(encoding="utf-8"), flags=re.M)
    return "```text\n" + path.read_text(encoding="utf-8").rstrip() + "\n```"


OWN_SECTION = re.compile(r"^sample_quality_\w+\.json$")  # shown by sample_quality_section


def sample_quality_section(profile: str = "cpu") -> str:
    """The sample-quality table: how it was made, then every row, references and models
    together, ranked by mean Frechet distance so each model sits between the references it
    beats and the ones it does not."""
    table = results.sample_quality(profile)
    rows = {**table["references"], **table["models"]}
    ranked = sorted(rows, key=lambda name: rows[name]["frechet"]["mean"])
    meta = (f"- **command**: `{table['command']}`\n- **real set**: {table['real_set']}\n"
            f"- **load average at the start**: {table['load_average_start']} on {table['cpu_count']} cores, "
            f"torch {table['torch']}")
    spread = results.training_spread_markdown(table)
    return meta + "\n\n" + results.sample_quality_markdown(
        table, [*ranked, *table["missing"]], metrics=tuple(rows[ranked[0]])) + (  # every metric the file holds
        "\n\n" + spread if spread else "")


def result_files_markdown(directory: Path, folder: str, producer: str) -> str:
    """Every result file in ``directory`` as Markdown, each headed by ``folder/<name>``
    (except those with a section of their own: ``OWN_SECTION``; a ``README.md`` indexes the
    folder and is not a result)."""
    files = sorted(p for p in directory.glob("*") if p.suffix.lower() in (".json", ".csv", ".md", ".txt")
                   and not OWN_SECTION.match(p.name) and p.name != "README.md") if directory.is_dir() else []
    if not files:
        return (f"No result files in `{folder}/` yet: they are written by {producer}. "
                "Nothing is shown here until a committed file exists.")
    return "\n\n".join(f"**`{folder}/{p.name}`**\n\n{result_file_markdown(p)}" for p in files)
