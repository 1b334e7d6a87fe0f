# make run  - the service in the foreground (embedded PostgreSQL and Redis unless URLs are set)
# make test - lint, types and the whole test suite against real servers
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test lint format check-types pytest bench bench-ingest bench-workers bench-cpn clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/cpn-sync dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint check-types pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .data .mypy_cache .ruff_cache .pytest_cache

bench-workers: install
	$(PY) benchmarks/bench_workers.py $(BENCH_ARGS)
