"""course_lib/results_data/README.md lists every committed result and reference weight file,
with the script that writes it: the folder and the table must agree, and each script exist."""
from __future__ import annotations

import re
from pathlib import Path

from course_lib.results import RESULTS_DIR

ROOT = Path(__file__).resolve().parents[1]


def _table() -> dict[str, str]:
    rows = {}
    for line in (RESULTS_DIR / "README.md").read_text().splitlines():
        m = re.match(r"\| `([^`]+)` \| `python ([^ `]+)[^`]*` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_file_is_listed_and_every_listed_file_is_there():
    on_disk = {p.name for p in RESULTS_DIR.iterdir() if p.suffix in (".json", ".pt")}
    listed = set(_table())
    assert on_disk - listed == set(), f"add these to results_data/README.md: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), f"listed in results_data/README.md but missing: {sorted(listed - on_disk)}"


def test_every_writer_script_exists():
    missing = {name: script for name, script in _table().items() if not (ROOT / script).is_file()}
    assert not missing, f"results_data/README.md names scripts that do not exist: {missing}"
