#!/usr/bin/env bash
# Build the course book (Jupyter Book 1) into $BOOK_OUT/_build/html.
#
#   scripts/build_book.sh                       # what `make book` runs: executes every chapter
#   COURSE_PROFILE=smoke scripts/build_book.sh  # what `make book PROFILE=smoke` runs: minutes
#   BOOK_EXECUTE=off scripts/build_book.sh      # render the outputs stored in solutions/*.ipynb
#
# Environment:
#   COURSE_PROFILE  smoke | cpu | gpu: the profile the chapters execute under
#                   (unset: course_lib's default, gpu with CUDA/MPS, else cpu)
#   BOOK_EXECUTE    force (default, as in book.yml) | off | cache | auto
#                   (scripts/book_config.py says what each does)
#   BOOK_SOURCE     the book's root (default: this repository; tests/test_book.py points it
#                   at a staging copy)
#   BOOK_OUT        where _build/ goes (default: BOOK_SOURCE)
#   PYTHON          the Python with jupyter-book installed (default: .venv/bin/python)
# Sphinx warnings are errors (-W) and the build stops at the first one.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$(cd "${BOOK_SOURCE:-$repo}" && pwd)"
mkdir -p "${BOOK_OUT:-$source_dir}"
out_dir="$(cd "${BOOK_OUT:-$source_dir}" && pwd)"   # absolute: the build runs from source_dir
execute="${BOOK_EXECUTE:-force}"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
jupyter_book="$(dirname "$python")/jupyter-book"
[ -x "$jupyter_book" ] || jupyter_book="$(command -v jupyter-book)"

# scripts/ (the authoring tools) is not installed: book_config below and the For
# instructors page import it from the repository.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
# Figures must reach the page: a kernel started with MPLBACKEND=Agg (the Makefile exports
# it for headless tests) makes plt.show() a no-op and the chapters would render no figure.
export MPLBACKEND="module://matplotlib_inline.backend_inline"

# book.yml executes every page (force); another mode builds from a copy that says so.
config="$source_dir/book.yml"
if [ "$execute" != force ]; then
    config="$out_dir/_build/book.$execute.yml"
    "$python" -m scripts.book_config "$source_dir/book.yml" "$config" --execute "$execute"
fi

cd "$source_dir"  # the bibliography and static paths in book.yml are relative to it
echo "book: source $source_dir, output $out_dir/_build/html, profile ${COURSE_PROFILE:-<default>}, execute $execute"
start=$(date +%s)
"$jupyter_book" build "$source_dir" --config "$config" --toc "$source_dir/toc.yml" \
    --path-output "$out_dir" -W --all
echo "book: built in $(( $(date +%s) - start )) s -> $out_dir/_build/html/index.html"
