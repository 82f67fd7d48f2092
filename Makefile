# activepam: `make run` (demo pipeline) and `make test` (test suite). Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: venv run test lint dryrun e2e clean bench

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: venv
	$(BIN)/snakemake --cores $(CORES) --profile profiles/default

test: venv
	$(BIN)/python -m pytest tests

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: venv
	$(BIN)/snakemake --dry-run --cores $(CORES) --profile profiles/default

bench: venv
	$(BIN)/python benchmarks/detect_throughput.py

clean:
	rm -rf results .snakemake
