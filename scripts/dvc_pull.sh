#!/usr/bin/env bash
# `make pull`: dvc pull, then make Snakemake agree that the pulled files are up to date.
#
#   scripts/dvc_pull.sh [dvc pull options/targets]
#
# 1. When the default remote is a local folder (the project default: remote `local`, url
#    ../../activepam-dvc-remote in .dvc/config, relative to .dvc/ = the folder
#    activepam-dvc-remote beside this clone), a missing folder stops here with its path and
#    the way to point at yours (`dvc remote modify --local <remote> url /path`), instead of
#    dvc's bare "missing cache files".
# 2. dvc pull "$@".
# 3. dvc gives the pulled files the modification times of the checkout, in no particular
#    order, and Snakemake would re-run every rule whose input looks newer than its outputs.
#    When `dvc status` is clean (the pulled outputs are those recorded for the current code,
#    params and data), `snakemake --touch` stamps them in DAG order, so `snakemake -n` plans
#    nothing. When it is not clean nothing is touched and the changed stages are listed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DVC=${DVC:-$BIN/dvc}
SNAKEMAKE=${SNAKEMAKE:-$BIN/snakemake}
export PATH="$(cd "$BIN" && pwd):$PATH"

remote=$("$DVC" remote default 2>/dev/null || true)
if [ -n "$remote" ]; then
  url=$("$DVC" config "remote.$remote.url" 2>/dev/null || true)
  case "$url" in
    *://*|"") ;;  # s3://, ssh://, ...: dvc reports its own errors
    *)
      if [ "${url#/}" = "$url" ]; then
        # relative: to the folder of the config file that sets it (.dvc/)
        path=$(cd .dvc && realpath -m -- "$url")
      else
        path=$url
      fi
      if [ ! -d "$path" ]; then
        cat >&2 <<MSG
dvc pull: the default DVC remote '$remote' is the folder $path, which does not exist.
  The project's default remote is the folder activepam-dvc-remote beside the clone
  (url ../../activepam-dvc-remote in .dvc/config, relative to .dvc/; for this clone:
  $(realpath -m ..)/activepam-dvc-remote). Put (or mount) the project's remote there, or
  point this clone at it (written to .dvc/config.local, not committed):
    dvc remote modify --local $remote url /path/to/activepam-dvc-remote
MSG
        exit 2
      fi
      ;;
  esac
fi

"$DVC" pull "$@"

status=$("$DVC" status --json 2>/dev/null || echo '{"dvc status": "failed"}')
if [ "$status" != "{}" ]; then
  echo "make pull: dvc status is not clean, Snakemake's file times left as they are:" >&2
  echo "$status" >&2
  exit 0
fi
"$SNAKEMAKE" --touch --cores 1 --profile profiles/default --quiet rules >/dev/null
echo "make pull: pulled outputs marked up to date for Snakemake (snakemake -n plans nothing)"
