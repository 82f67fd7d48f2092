# activepam: `make run` (demo pipeline) and `make test` (test suite). Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: venv run test lint dryrun e2e clean bench

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
