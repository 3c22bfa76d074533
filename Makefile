# nitsjax: every target creates the environment it needs from pyproject.toml.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench wheel-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nitsjax demo

test: $(STAMP)  # the suite and the notebooks (run top to bottom by nbmake), slow tests aside
	$(BIN)/python -m pytest -q -n 2 --durations=15 -m "not slow" --nbmake notebooks tests $(PYTEST_ARGS)

test-all: $(STAMP)  # also the slow tests (long training, multi-process, compile-heavy cases)
	$(BIN)/python -m pytest -q -n 2 --durations=15 --nbmake notebooks tests $(PYTEST_ARGS)

test-fast: $(STAMP)  # the suite without notebooks and slow tests
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check nitsjax tests experiments

# the built wheel in fresh venvs, used from a temporary folder (.ci/wheel-check)
wheel-check: $(STAMP)
	PY=$(BIN)/python .ci/wheel-check

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]" "torch==2.13.0"  # CPU build on this machine kind
	$(BIN)/python experiments/bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache outputs multirun
