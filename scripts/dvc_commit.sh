#!/usr/bin/env bash
# `make commit`: record a Snakemake run (`make run`) in dvc.lock, so `dvc status` is clean and
# `dvc repro` reuses the outputs instead of deleting and rebuilding them.
#
#   scripts/dvc_commit.sh [stage ...]      (default: every stage)
#
# Refuses unless `snakemake -n` plans nothing: only outputs Snakemake holds up to date for the
# current code, params and data are recorded. Then `dvc commit -f` hashes deps, params and
# outs into dvc.lock and copies the outs into the DVC cache (ready for `dvc push`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DVC=${DVC:-$BIN/dvc}
SNAKEMAKE=${SNAKEMAKE:-$BIN/snakemake}
export PATH="$(cd "$BIN" && pwd):$PATH"

plan=$("$SNAKEMAKE" -n --cores 1 --profile profiles/default 2>&1) || {
  echo "$plan" >&2
  echo "make commit: snakemake -n failed; nothing recorded" >&2
  exit 1
}
if ! grep -q "Nothing to be done" <<<"$plan"; then
  echo "$plan" | grep -E "^(rule|checkpoint) |reason:|^Job stats|^[a-z_]+ +[0-9]+$" >&2 || true
  echo "make commit: Snakemake still plans jobs (above): run \`make run\` first; nothing recorded" >&2
  exit 1
fi
"$DVC" commit -f -q "$@"
echo "make commit: dvc.lock records the run; git add dvc.lock && git commit, then dvc push"
