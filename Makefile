# The two commands of the README: `make up` runs the platform, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test lint typecheck unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

up: $(BIN)/.installed
	$(BIN)/portcullis up

test: lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/portcullis policy check
	$(BIN)/portcullis policy test
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench.edge_bench

clean:
	rm -rf $(VENV) .portcullis .mypy_cache .ruff_cache .pytest_cache
