# One command sets up and runs each job; every target builds its own virtualenv first.
#   make test   create .venv (Python >= 3.12), install the package with its test extras, run the
#               tests but the slow end-to-end ones (a few minutes on 2 cores)
#   make test-all  every test, with coverage (what CI runs: .ci/run)
#   make lint   ruff (lint + format check) and mypy
#   make demo   pretrain a small GFM on a generated GeoPile sample on CPU (a few minutes)
#   make docs   the documentation site (docs/_build/html; runs the tutorials on CPU, offline)
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# First Python >= 3.12 found: $PYTHON, versioned names on PATH, then pyenv's versions.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 python \
	$$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { command -v $$p; break; }; done)

.PHONY: venv test test-all lint format demo docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo 'error: Python >= 3.12 not found. Install it or run: make PYTHON=/path/to/python3.12 ...' >&2; \
		exit 1; fi
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -m 'not slow'

test-all: venv
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered

demo: venv
	$(BIN)/python -m torchgeo_gfm.demo --config configs/gfm_demo.yaml --output output/demo

# warnings are errors, nitpicky references; GFM_DOCS_ONLINE=1 adds intersphinx (docs/conf.py)
docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov build *.egg-info
