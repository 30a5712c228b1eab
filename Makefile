# deeptag: `make demo` tags the sample photos on a local Triton; `make test` runs every check.
# Both bootstrap what they need (virtualenv, packages, exported model) and are idempotent.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MODEL := model_repository/efficientnet_lite0/1/model.onnx

.PHONY: setup demo test lint format bench clean

setup: $(INSTALLED) $(MODEL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[export,samples,dev]'
	touch $@

$(MODEL): $(INSTALLED) orchestrator/models/export.py
	$(BIN)/deeptag models export --force

demo: setup
	$(BIN)/deeptag demo

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/triton_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -f $(MODEL) model_repository/efficientnet_lite0/labels.txt
