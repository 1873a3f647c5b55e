# The two commands a newcomer runs: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cadre-installed
NPROC := $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test test-fast lint format demo bench clean

setup: $(STAMP)

# Re-install only when the dependency list changes; pip's wheel cache keeps the llama-cpp-python build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format src tests benchmarks scripts
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts

# Whole suite: the fast tests and the slow end-to-end ones.
test: setup lint
	$(PY) -m pytest -m "slow or not slow" -q --durations=25

test-fast: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/cadre demo

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
