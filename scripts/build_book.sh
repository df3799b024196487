#!/usr/bin/env bash
# Build the course book (Jupyter Book 1) into $BOOK_OUT/_build/html.
#
#   scripts/build_book.sh                       # what `make book` runs: executes every chapter
#   COURSE_PROFILE=smoke scripts/build_book.sh  # what `make book PROFILE=smoke` runs: minutes
#
# Environment:
#   COURSE_PROFILE  smoke | cpu | gpu; the profile the chapters execute under
#                   (unset: course_lib's default, gpu with CUDA/MPS, else cpu)
#   BOOK_EXECUTE    force (default, book.yml) | off (render the outputs stored in
#                   solutions/*.ipynb, i.e. the cpu-profile results) | cache
#   BOOK_SOURCE     the book's root (default: this repository); the tests point it at a
#                   staging copy
#   BOOK_OUT        where _build/ goes (default: BOOK_SOURCE)
#   PYTHON          the Python with jupyter-book installed (default: .venv/bin/python)
# Sphinx warnings are errors (-W) and the build stops at the first one (no --keep-going).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$(cd "${BOOK_SOURCE:-$here}" && pwd)"
out_dir="${BOOK_OUT:-$source_dir}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

config="$source_dir/book.yml"
if [ -n "${BOOK_EXECUTE:-}" ] && [ "$BOOK_EXECUTE" != "force" ]; then
    # A derived config that differs from book.yml in the execution mode only.
    mkdir -p "$out_dir/_build"
    config="$out_dir/_build/book.$BOOK_EXECUTE.yml"
    "$python" - "$source_dir/book.yml" "$config" "$BOOK_EXECUTE" <<'PY'
import sys, yaml
source, target, mode = sys.argv[1:]
if mode not in ("off", "cache", "auto", "force"):
    sys.exit(f"BOOK_EXECUTE={mode!r}: expected force, off, cache or auto")
config = yaml.safe_load(open(source, encoding="utf-8"))
config.setdefault("execute", {})["execute_notebooks"] = mode
# Jupyter Book resolves local extension paths against the config file's folder.
from pathlib import Path
extensions = (config.get("sphinx") or {}).get("local_extensions") or {}
for name, path in extensions.items():
    extensions[name] = str((Path(source).parent / path).resolve())
yaml.safe_dump(config, open(target, "w", encoding="utf-8"), sort_keys=False)
PY
fi

# Figures must reach the page: a kernel started with MPLBACKEND=Agg (the Makefile exports
# it for headless tests) makes plt.show() a no-op and the chapters would render no figure.
export MPLBACKEND="module://matplotlib_inline.backend_inline"

cd "$source_dir"  # local extension and bibliography paths in book.yml are relative to it
echo "book: source $source_dir, output $out_dir/_build/html, profile ${COURSE_PROFILE:-<default>}, execute ${BOOK_EXECUTE:-force}"
start=$(date +%s)
"$python" -c 'import sys; from jupyter_book.cli.main import main; sys.argv[0] = "jupyter-book"; main()' build "$source_dir" --config "$config" --toc "$source_dir/toc.yml" \
    --path-output "$out_dir" -W --all
echo "book: built in $(( $(date +%s) - start )) s -> $out_dir/_build/html/index.html"
