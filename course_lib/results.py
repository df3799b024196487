"""The committed results of the long experiments, shipped inside the package.

The scripts in ``experiments/`` train for minutes to hours; chapters 05 and 06 load what
they wrote instead of re-running them. The JSON files live in ``course_lib/results_data/``
(package data, see pyproject.toml), so ``pip install`` carries them wherever
``course_lib`` goes: a Colab runtime, a wheel, a non-editable install. Read them only
through :func:`load_result`; the scripts write to :func:`result_path` with
:func:`course_lib.artifacts.write_result`.

``results_data/README.md`` lists every file there (these JSON files and the reference weights
beside them), the command that wrote it and the chapters that read it; a test keeps that list
and the folder the same. Each file records the exact command (flags included) that wrote it.
"""
from __future__ import annotations

import json
from pathlib import Path

from .artifacts import machine, write_result

__all__ = ["RESULTS_DIR", "result_names", "result_path", "load_result", "sample_quality",
           "sample_quality_markdown", "machine", "write_run"]

# The scripts write these files with course_lib.artifacts.write_result; ``write_run`` is the name
# it had here, kept for code written against it.
write_run = write_result

RESULTS_DIR = Path(__file__).resolve().parent / "results_data"


def result_names() -> list[str]:
    """The names of the committed results (file names without ``.json``), sorted."""
    return sorted(p.stem for p in RESULTS_DIR.glob("*.json"))


def result_path(name: str) -> Path:
    """Where the result ``name`` lives (``course_lib/results_data/<name>.json``)."""
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValueError(f"a result name is a plain identifier like 'fusion', got {name!r}; "
                         f"committed results: {result_names()}")
    return RESULTS_DIR / f"{name}.json"


def load_result(name: str) -> dict:
    """The committed result ``name`` (e.g. ``"fusion"``) as the dict its script wrote."""
    path = result_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no committed result {name!r} in {RESULTS_DIR}; committed "
                                f"results: {result_names()} (run its script in experiments/ to "
                                "write it)")
    return json.loads(path.read_text(encoding="utf-8"))


def sample_quality(profile: str = "cpu") -> dict:
    """The sample-quality table of ``profile`` (``bench/sample_quality.py --profile PROFILE``
    writes ``sample_quality_<profile>``), or the ``cpu`` table when that profile has none: the
    returned dict's ``"profile"`` and ``"image_size"`` say which one it is."""
    name = f"sample_quality_{profile}"
    return load_result(name if result_path(name).is_file() else "sample_quality_cpu")


QUALITY_METRICS = ("frechet", "kid", "fidelity", "diversity")


def training_spread_markdown(table: dict) -> str:
    """The live rows retrained with other training seeds (``training_spread`` in the table):
    one line per model, its Frechet distance per training seed and their mean and standard
    deviation, the noise a claim about a live model must beat ("" when the table has none)."""
    lines = [f"- **{name}** over training seeds {row['training_seeds']}: "
             + ", ".join(f"{v:.1f}" for v in row["frechet"]) + f" (mean {row['mean']:.1f} ± {row['std']:.1f})"
             for name, row in table.get("training_spread", {}).items()]
    return ("Frechet distance of the live models retrained with other seeds (each the mean over the "
            "sample seeds):\n\n" + "\n".join(lines)) if lines else ""


def sample_quality_markdown(table: dict, rows: list[str] | None = None, *,
                            metrics: tuple[str, ...] = QUALITY_METRICS, profile: str | None = None) -> str:
    """A Markdown table of :func:`sample_quality`'s rows (default: every reference, then every
    model), each metric as "mean ± std over the sample seeds", under a line saying what was
    measured (feature space, size, n, seeds) and followed by the rows the table lacks. With
    ``profile`` (the reader's), a table of another profile says so and how to make the reader's."""
    groups = {**table["references"], **table["models"]}
    rows = [*groups, *table.get("missing", {})] if rows is None else rows
    unknown = [r for r in rows if r not in groups and r not in table.get("missing", {})]
    if unknown:
        raise KeyError(f"no rows {unknown} in the {table['profile']} table; it has {list(groups)}")
    lines = [f"{table['frechet_label']}; mean ± std over sample seeds {table['seeds']} "
             f"(profile {table['profile']})", "",
             *([f"This is the {table['profile']} profile's table ({table['image_size']}px), not this run's "
                f"{profile} models: `python bench/sample_quality.py --profile {profile}` writes theirs.", ""]
               if profile not in (None, table["profile"]) else []),
             "| | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    digits = [1 if m in ("frechet", "kid") else 3 for m in metrics]  # distances in the hundreds, the rest in [0, 2]
    for name in (r for r in rows if r in groups):
        kind = "reference" if name in table["references"] else "model"
        cells = [f"{groups[name][m]['mean']:.{d}f} ± {groups[name][m]['std']:.{d}f}" for m, d in zip(metrics, digits)]
        lines.append(f"| {name} ({kind}) | " + " | ".join(cells) + " |")
    lines += [f"\n{name}: no row ({why})" for name, why in table.get("missing", {}).items() if name in rows]
    return "\n".join(lines)
