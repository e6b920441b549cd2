# Interlink: `make run` starts a ready org with the example systems; `make test` runs the whole suite; `make bench`
# runs bench/ (`make perf-doc` also writes docs/performance.md).
# Each target creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?= --sample-data --with-examples

.PHONY: run test lint bench perf-doc clean help browser screenshots

help:
	@echo "make run    - set up .venv and start an org with sample data (HTTPS on 127.0.0.1:8443) and the example"
	@echo "             remote systems of every pattern (8701-8704); prints where to look"
	@echo "make test   - install test extras and run ruff + the whole test suite"
	@echo "make bench  - run the benchmarks in bench/ (prints one table of ratios against their baselines)"
	@echo "make perf-doc - run them and write the table to docs/performance.md"
	@echo "make screenshots - save a PNG of each console page under docs/screenshots/ (headless Chromium)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.stamp-run

run: $(VENV)/.stamp-run
	$(BIN)/interlink up $(RUN_ARGS)

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests bench examples

# The console's browser tests drive Debian's chromium; install it when missing (they skip without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium is not installed and cannot be installed here: the browser tests will skip"; fi; }

# A live org with sample data and a short pipeline run, photographed page by page (tools/screenshots.py).
screenshots: $(VENV)/.stamp-test browser
	$(BIN)/python tools/screenshots.py

test: lint browser
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

# Every benchmark of bench/ (quick variants, about 10 minutes), then one table of ratios against their baselines.
bench: $(VENV)/.stamp-test
	$(BIN)/python bench/report.py

# The same run, also written to docs/performance.md.
perf-doc: $(VENV)/.stamp-test
	$(BIN)/python bench/report.py --markdown docs/performance.md

clean:
	rm -rf $(VENV) .interlink .pytest_cache .ruff_cache
