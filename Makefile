# The two commands of the README: `make demo` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install demo serve test test-fast lint typecheck check bench bench-quick clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up and run Rapport with demo data on the embedded SQLite store: UI at http://127.0.0.1:8000
demo: install
	$(BIN)/rapport demo

serve: install
	$(BIN)/rapport serve

## Set up and pass the whole test suite (SQLite, a throwaway PostgreSQL, a real browser)
test: install
	./scripts/system-deps.sh
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-fast: install
	$(BIN)/pytest -q -x -m "not browser and not slow"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	./scripts/system-deps.sh
	$(BIN)/python -m bench run --size 1000000

bench-quick: install
	./scripts/system-deps.sh
	$(BIN)/python -m bench run --size 10000 --import-size 2000

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
