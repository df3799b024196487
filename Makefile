# Generating Images Without Labels: every command a student, an instructor or CI needs.
# `make help` lists them. Everything runs inside .venv, created on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Profile for `make book` / `make lab` (smoke, cpu, gpu); empty = auto (gpu if CUDA/MPS, else cpu).
PROFILE ?=
# Trained models and rendered data sets are cached here (delete it to start over).
export COURSE_CACHE ?= $(CURDIR)/.cache/course_lib
# Notebooks must render figures inline (an inherited MPLBACKEND=Agg would drop every plt.show()).
export MPLBACKEND := module://matplotlib_inline.backend_inline
# The versions the tests passed with (scripts/lock.py). `make test-latest` runs with LOCK= (none).
LOCK   ?= constraints.txt
PIN    := $(if $(LOCK),-c $(LOCK),--upgrade --upgrade-strategy eager)
NBVAL := --nbval-lax --nbval-cell-timeout=900 --nbval-sanitize-with tests/nbval_sanitize.cfg
# The chapters in reading order: NN_slug, and NNx_slug for a chapter's second part (make's sort is
# bytewise, so 03_gan comes before 03b_gan_measured, which loads the model 03_gan trained)
CHAPTER_MDS = $(sort $(wildcard solutions/[0-9][0-9]_*.md solutions/[0-9][0-9][a-z]_*.md))

.PHONY: help install lock test-latest lint test test-unit test-notebooks test-book book lab chapters nbgrader sync execute bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $@

install: $(STAMP) ## create .venv and install the course (editable) with test/book tools, at constraints.txt's versions

lock: $(STAMP) ## rewrite constraints.txt from what $(VENV) holds (run it once `make test` passed there)
	$(BIN)/python -m scripts.lock --python $(BIN)/python --out constraints.txt

# Newest releases in their own venv, so a newcomer's .venv and constraints.txt stay as they are.
test-latest: ## install the newest releases into .venv-latest, report what drifted from constraints.txt, run unit tests and nbval there
	rm -f .venv-latest/.installed .venv-latest/.nbgrader   # reinstall: newer releases may be out
	$(MAKE) VENV=.venv-latest LOCK= .venv-latest/.nbgrader
	.venv-latest/bin/python -m scripts.lock --python .venv-latest/bin/python --out constraints.txt --drift
	$(MAKE) VENV=.venv-latest LOCK= test-unit test-notebooks

test: test-unit test-notebooks test-book ## unit tests, nbval on chapters/ and solutions/ (smoke), the book in a browser

lint: $(STAMP) ## ruff (rules and exceptions in pyproject.toml) over the Python files
	$(BIN)/ruff check .

test-unit: $(STAMP) ## unit and checker tests only
	COURSE_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest -q tests --ignore=tests/test_book.py

test-notebooks: $(STAMP) ## nbval over every notebook in chapters/ and solutions/ (smoke profile)
	COURSE_PROFILE=smoke $(BIN)/python -m pytest $(NBVAL) chapters solutions

# The book test renders the chapters' stored outputs (BOOK_TEST_EXECUTE=off): nbval has just
# executed every notebook, so `make test` runs each one twice (chapters/, solutions/), not three times.
test-book: $(STAMP) ## build the book from the stored outputs and test it in headless Chromium
	COURSE_PROFILE=smoke BOOK_TEST_EXECUTE=$${BOOK_TEST_EXECUTE:-off} $(BIN)/python -m pytest -q tests/test_book.py

book: $(STAMP) ## execute every chapter and render the Jupyter Book to _build/html (PROFILE=smoke for a quick one)
	COURSE_PROFILE=$(PROFILE) bash scripts/build_book.sh
	@echo "open _build/html/index.html"

lab: $(STAMP) ## open JupyterLab on the student notebooks
	COURSE_PROFILE=$(PROFILE) $(BIN)/jupyter lab chapters/

chapters: $(STAMP) ## regenerate the student notebooks in chapters/ from solutions/
	$(BIN)/python -m scripts.release

# Where `make nbgrader` writes the nbgrader course (rerunning it rewrites source/ and nbgrader_config.py only).
NBGRADER_COURSE ?= _build/nbgrader
$(VENV)/.nbgrader: $(STAMP)
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[dev,nbgrader]'
	touch $@

nbgrader: $(VENV)/.nbgrader ## write the nbgrader course _build/nbgrader/ from solutions/ (installs nbgrader)
	$(BIN)/python -m scripts.nbgrader_course --course $(NBGRADER_COURSE)

sync: $(STAMP) ## re-pair every solutions/*.md with its .ipynb (after editing the .md)
	$(BIN)/jupytext --sync $(CHAPTER_MDS)

execute: $(STAMP) ## re-execute solutions/*.ipynb in place under the cpu profile (refuses load > 1/core unless FORCE=1), then make chapters
	@for md in $${NB:-$(CHAPTER_MDS)}; do \
	  $(BIN)/python bench/idle.py || exit 1; \
	  echo "== executing $$md (COURSE_PROFILE=$${EXEC_PROFILE:-cpu})"; start=$$(date +%s); \
	  (cd solutions && COURSE_PROFILE=$${EXEC_PROFILE:-cpu} ../$(BIN)/jupytext --sync --execute $$(basename $$md)) || exit 1; \
	  echo "== $$md took $$(( $$(date +%s) - start )) s"; \
	done
	$(MAKE) chapters

bench: $(STAMP) ## run the benchmarks in bench/ (ratios against a baseline in the same run)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean: ## remove the build, caches and the venv
	rm -rf _build .cache $(VENV) .venv-latest
