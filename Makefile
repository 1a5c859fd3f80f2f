# policy-ner: `make setup` then `make test`; `make train`, `make eval`, `make predict` for the loop;
# `make compare A=... B=...` and `make models` to compare and list versions; `make labelstudio` runs
# a local Label Studio for annotators (its own venv in .labelstudio/, set up by `make setup`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
# Newest model version (versions are named <timestamp>-<config>, so they sort by time).
MODEL ?= $(shell ls -1d models/*/ 2>/dev/null | sort | tail -n 1 | sed 's:/$$::')
INPUT ?= data/raw
PYTEST_ARGS ?=
# compare: A (baseline) and B are model directories or prediction files; ON the gold exports.
A ?=
B ?=
ON ?= annotations/*.json
SPLIT ?= all
FOLDS ?= 5
# Label Studio: pinned, in its own virtual environment; data (SQLite) in a git-ignored folder.
LS_VERSION := 1.23.2
LS_VENV ?= .labelstudio/venv
LS_DATA ?= .labelstudio/data
LS_PORT ?= 8080
# pretrain: masked-LM pretraining of CONFIG's encoder on the cleaned corpus (git-ignored output)
PRETRAIN_OUTPUT ?= pretrained/$(notdir $(basename $(CONFIG)))-wwm
PRETRAIN_STEPS ?= 12000
PRETRAIN_ARGS ?=
# bench: characters in the benchmark's document set (data/raw repeated)
BENCH_CHARS ?= 500000

.PHONY: setup browser labelstudio-install labelstudio labelstudio-lock test lint train eval predict bench bench-train compare cv cv-genre models validate stats manifest pretrain-corpus pretrain public-ner clean help

help:
	@echo "make setup     create $(VENV) and install policy-ner with pinned dependencies"
	@echo "make test      run the test suite"
	@echo "make lint      ruff (lint and format check), the layer contract and mypy"
	@echo "make train     train CONFIG=$(CONFIG) on all exports in annotations/"
	@echo "make eval      evaluate MODEL (default: newest in models/) on its dev documents"
	@echo "make predict   predict entities in INPUT=$(INPUT) with MODEL"
	@echo "make bench     batch-prediction speed, memory and INT8 F1 of MODEL vs the transformers pipeline"
	@echo "make bench-train  training characters/s of CONFIG on long documents vs one-sentence documents (packed and not)"
	@echo "make compare   compare A=models/<v1> B=models/<v2> (or prediction files) on ON=$(ON) [SPLIT=dev]"
	@echo "make cv        FOLDS=$(FOLDS)-fold cross-validation of CONFIG and the baselines, by source document -> eval/cv-<name>/"
	@echo "make cv-genre  leave-one-genre-out (policy / work_report / news) of CONFIG and the baselines -> eval/cv-<name>-genre/"
	@echo "make models    list the versions in models/ from their model cards"
	@echo "make browser   install Debian's chromium (as root) for the HTML report tests"
	@echo "make labelstudio  run Label Studio $(LS_VERSION) on http://127.0.0.1:$(LS_PORT) (data in $(LS_DATA))"
	@echo "make validate  validate every export in annotations/; make stats for counts"
	@echo "make pretrain-corpus  clean ../shared/pretrain-corpus into data/pretrain/corpus.jsonl (record: data/pretrain/CORPUS.md)"
	@echo "make public-ner  convert ../shared/public-ner ORGs into data/public-ner/*.json for configs/transfer-public-org.yaml"
	@echo "make pretrain  masked-LM pretraining of CONFIG's encoder on that corpus -> PRETRAIN_OUTPUT=$(PRETRAIN_OUTPUT)"
	@echo "               (stop with SIGTERM or Ctrl-C; PRETRAIN_ARGS=--resume continues from the last checkpoint)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python browser labelstudio-install
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,lint]'
	$(BIN)/policy-ner --help > /dev/null

# The HTML report tests open the reports in Debian's chromium; installed here when missing and root.
browser:
	@command -v chromium > /dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: run 'sudo make browser' (or set POLICY_NER_SKIP_BROWSER=1 to skip the browser tests)" >&2; fi; }

labelstudio-install: $(LS_VENV)/bin/label-studio

$(LS_VENV)/bin/label-studio: requirements-labelstudio.lock
	rm -rf $(LS_VENV)
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet -c requirements-labelstudio.lock 'label-studio==$(LS_VERSION)'
	touch $@

# Bound to 127.0.0.1, no outbound calls; prints the URL and how to get an API token.
labelstudio: labelstudio-install
	$(BIN)/python -m policy_ner.labelstudio.server --venv $(LS_VENV) --data-dir $(LS_DATA) --port $(LS_PORT)

# After changing LS_VERSION: rebuild the environment without the lock, test, then record it.
labelstudio-lock:
	{ sed -n '1,2p' requirements-labelstudio.lock; $(LS_VENV)/bin/python -m pip freeze --all | grep -v '^pip=='; } > requirements-labelstudio.lock.new
	mv requirements-labelstudio.lock.new requirements-labelstudio.lock

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (lint rules and formatting), the import-linter layer contract and mypy, all configured in pyproject.toml
lint:
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports pyproject.toml --no-cache
	$(BIN)/mypy

train:
	$(BIN)/policy-ner train $(CONFIG)

eval:
	@test -n "$(MODEL)" || { echo "no model in models/: run make train first" >&2; exit 1; }
	$(BIN)/policy-ner evaluate $(MODEL) annotations/*.json --split dev --output eval/$(notdir $(MODEL))

predict:
	@test -n "$(MODEL)" || { echo "no model in models/: run make train first" >&2; exit 1; }
	$(BIN)/policy-ner predict $(MODEL) $(INPUT) --output predictions/$(notdir $(MODEL)).jsonl --overwrite

bench:
	@test -n "$(MODEL)" || { echo "no model in models/: run make train first" >&2; exit 1; }
	$(BIN)/python scripts/benchmark.py $(MODEL) --chars $(BENCH_CHARS)

bench-train:
	$(BIN)/python scripts/bench_train.py --config $(CONFIG)

compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=models/<v1> B=models/<v2> [ON=export.json] [SPLIT=dev]" >&2; exit 1; }
	$(BIN)/policy-ner compare $(A) $(B) --on $(ON) --split $(SPLIT)

cv:
	$(BIN)/policy-ner cv $(CONFIG) --folds $(FOLDS)

cv-genre:
	$(BIN)/policy-ner cv $(CONFIG) --leave-out genre

models:
	$(BIN)/policy-ner models list

validate:
	$(BIN)/policy-ner annotations validate annotations/*.json

stats:
	$(BIN)/policy-ner annotations stats annotations/*.json

manifest:
	$(BIN)/python scripts/build_manifest.py

# Standard library only; writes data/pretrain/corpus.jsonl (ignored) and corpus.json + CORPUS.md (committed).
pretrain-corpus:
	$(BIN)/python scripts/build_pretrain_corpus.py

# One torch thread, whole-word (jieba) masking, checkpoints every 500 steps in PRETRAIN_OUTPUT.run/.
pretrain: data/pretrain/corpus.jsonl
	$(BIN)/policy-ner pretrain $(CONFIG) --corpus data/pretrain/corpus.jsonl --whole-word --steps $(PRETRAIN_STEPS) \
	  --threads 1 --output $(PRETRAIN_OUTPUT) $(PRETRAIN_ARGS)

# Transfer data (configs/transfer-public-org.yaml): MSRA + CLUENER2020 ORGs -> data/public-ner/ (record: PUBLIC-NER.md)
public-ner:
	$(BIN)/python scripts/build_public_ner.py

data/pretrain/corpus.jsonl:
	$(MAKE) pretrain-corpus

clean:
	rm -rf .pytest_cache build src/*.egg-info
