# policy-ner: `make setup` then `make test`; `make train`, `make eval`, `make predict` for the loop.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
# Newest model version (versions are named <timestamp>-<config>, so they sort by time).
MODEL ?= $(shell ls -1d models/*/ 2>/dev/null | sort | tail -n 1 | sed 's:/$$::')
INPUT ?= data/raw
PYTEST_ARGS ?=

.PHONY: setup test train eval predict validate stats manifest clean help

help:
	@echo "make setup     create $(VENV) and install policy-ner with pinned dependencies"
	@echo "make test      run the test suite"
	@echo "make train     train CONFIG=$(CONFIG) on all exports in annotations/"
	@echo "make eval      evaluate MODEL (default: newest in models/) on its dev documents"
	@echo "make predict   predict entities in INPUT=$(INPUT) with MODEL"
	@echo "make validate  validate every export in annotations/; make stats for counts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	$(BIN)/policy-ner --help > /dev/null

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

train:
	$(BIN)/policy-ner train $(CONFIG)

eval:
	@test -n "$(MODEL)" || { echo "no model in models/: run make train first" >&2; exit 1; }
	$(BIN)/policy-ner evaluate $(MODEL) annotations/*.json --split dev --output eval/$(notdir $(MODEL))

predict:
	@test -n "$(MODEL)" || { echo "no model in models/: run make train first" >&2; exit 1; }
	$(BIN)/policy-ner predict $(MODEL) $(INPUT) --output predictions/$(notdir $(MODEL)).jsonl

validate:
	$(BIN)/policy-ner annotations validate annotations/*.json

stats:
	$(BIN)/policy-ner annotations stats annotations/*.json

manifest:
	$(BIN)/python scripts/build_manifest.py

clean:
	rm -rf .pytest_cache build src/*.egg-info
