# bnbench: `make run` (benchmark) and `make test` (test suite); both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
# Extra snakemake arguments, e.g. ARGS="--configfile presets/paper.yaml"
ARGS   ?=
BIN    := $(VENV)/bin
# Jobs call `python -m bnbench`, so the venv must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) $(ARGS)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# Speed harness (benchmarks/speed.py): prints the table and writes reports/speed.csv.
bench: setup
	$(BIN)/python benchmarks/speed.py $(ARGS)

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources logs reports/index.html reports/figures .snakemake
