# activepam: `make run` (demo pipeline) and `make test` (test suite). Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: venv run test test-fast lint dryrun e2e clean bench

# A .venv that is a symlink is a venv shared with another clone: it is never installed into
# (that would re-point its editable activepam at this clone's src). If its activepam comes
# from another checkout, this clone's src is put first on PYTHONPATH and a warning is printed.
VENV_LINK := $(shell test -L $(VENV) && echo yes)

ifeq ($(VENV_LINK),yes)
VENV_SRC := $(shell $(BIN)/python -c "import activepam, pathlib; print(pathlib.Path(activepam.__file__).resolve().parents[2])" 2>/dev/null)
ifneq ($(VENV_SRC),$(realpath $(CURDIR)))
export PYTHONPATH := $(CURDIR)/src$(if $(PYTHONPATH),:$(PYTHONPATH))
endif

venv:
	@test -x $(BIN)/python || { echo "make: $(VENV) is a symlink to a missing venv" >&2; exit 1; }
	@if [ "$(VENV_SRC)" != "$(realpath $(CURDIR))" ]; then \
	  echo "make: warning: $(VENV) is a shared venv (symlink) whose activepam is installed from" \
	       "'$(VENV_SRC)', not this clone; not reinstalling, using PYTHONPATH=$(CURDIR)/src" >&2; \
	fi
else
venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)
endif

# `make run CONFIG=my.yaml` overlays my.yaml on params.yaml. With expert labels it stops (exit 0)
# after exporting the first round without labels and prints where it is and how to import it.
run: venv
	$(BIN)/snakemake --cores $(CORES) --profile profiles/default $(if $(CONFIG),--configfile $(CONFIG))

test: venv
	$(BIN)/python -m pytest tests

test-fast: venv
	$(BIN)/python -m pytest tests -m "not slow and not realdata" -q

lint: venv
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: venv
	$(BIN)/snakemake --dry-run --cores $(CORES) --profile profiles/default

bench: venv
	$(BIN)/python benchmarks/detect_throughput.py

# DVC (README "Active-learning rounds, with DVC"): `make pull` after a clone/checkout restores
# the outputs and stamps them up to date for Snakemake; `make commit` after `make run` records
# the run in dvc.lock (only when `snakemake -n` plans nothing); `make dvc-check` checks that
# every stage of dvc.yaml lists exactly the code its rules run (scripts/dvc_deps.py).
.PHONY: pull commit dvc-check

pull: venv
	BIN=$(BIN) bash scripts/dvc_pull.sh

commit: venv
	BIN=$(BIN) bash scripts/dvc_commit.sh

dvc-check: venv
	$(BIN)/python scripts/dvc_deps.py

clean:
	rm -rf results .snakemake
