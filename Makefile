# Two commands: `make serve` and `make test`. The rest is the setup they share.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes (the stamp is older than it).
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2

.PHONY: help setup serve test lint typecheck imports pytest format clean

help:
	@echo "make serve   run Moorage on 127.0.0.1:5000 (SQLite + ./data)"
	@echo "make test    lint, type-check, import contracts, tests"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

serve: $(STAMP)
	$(BIN)/moorage serve

test: lint typecheck imports pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

# pytest exits 5 when it collects nothing (e.g. a -k filter that matches no test): not a failure.
pytest: $(STAMP)
	@rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected" >&2; rc=0; fi; \
	exit $$rc

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
