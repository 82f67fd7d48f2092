#!/usr/bin/env bash
# CI step: the demo workflow (small size) on a REAL one-node SLURM cluster on loopback.
#
#  1. starts ../shared/tools/local-slurm (skips with exit 0 ONLY when that folder is absent);
#  2. copies the repository's files into two fresh folders (results/ is relative to the
#     working directory, so each run needs its own), sharing .venv;
#  3. runs the workflow locally (--profile profiles/default) and through SLURM
#     (--profile profiles/slurm --workflow-profile none), each under `timeout`, with the small
#     overlay params/ci_small.yaml;
#  4. checks the accounting history (sacct; squeue when accounting is off): every job the
#     local run ran (bar the SLURM run's local rules) was submitted with sbatch and COMPLETED;
#  5. compares the Parquet CONTENTS of both runs (activepam.core.hashing: rows sorted, writer
#     metadata and run-time columns ignored): results/ and the generated demo tables.
#
# Targets: by default the data products of CONTRACTS.md (generate -> inventory -> sharded
# detection -> sharded indices: 10 SLURM jobs), the part of the workflow that scales out; the
# active-learning rounds and the simulation run the same way (CI_SLURM_TARGETS=all) but make the
# step take well over the 8 minutes budgeted for it.
#
# Env knobs: CI_SLURM_TARGETS (space-separated targets, "all" = default target),
# CI_SLURM_TIMEOUT (s per workflow run, default 420), CI_SLURM_CONFIG (overlay),
# CI_SLURM_KEEP=1 keeps the work folder, SLURM_LOCAL_* are passed to start.sh/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
TOOLS=$(cd "$REPO/.." && pwd -P)/shared/tools/local-slurm
CONFIG=${CI_SLURM_CONFIG:-params/ci_small.yaml}
TIMEOUT=${CI_SLURM_TIMEOUT:-420}
PARQUET=(inventory/inventory.parquet detect/segments.parquet detect/predictions.parquet
         detect/embeddings.parquet indices/indices.parquet)
TARGETS=${CI_SLURM_TARGETS:-${PARQUET[*]/#/results/}}
[ "$TARGETS" = all ] && TARGETS=""
PY=$REPO/.venv/bin/python
SMK=$REPO/.venv/bin/snakemake
export MPLBACKEND=Agg PYTHONUNBUFFERED=1

log() { echo "[ci-slurm $(date +%T)] $*" >&2; }
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 ))s; }

if [ ! -d "$TOOLS" ]; then
  log "SKIP: $TOOLS not found (no local SLURM available); cluster run not tested"
  exit 0
fi
[ -x "$SMK" ] || { log "ERROR: $SMK missing: run 'make venv' first"; exit 1; }
[ -f "$CONFIG" ] || { log "ERROR: overlay config $CONFIG not found"; exit 1; }

# ---------------------------------------------------------------- cluster
STARTED_CLUSTER=0
if scontrol ping 2>/dev/null | grep -q UP; then
  log "SLURM already running: using it (and leaving it running)"
else
  STARTED_CLUSTER=1
fi
WORK=""
cleanup() {
  local rc=$?
  # cancel jobs this run left behind (only those with our working directory)
  if [ -n "$WORK" ] && command -v squeue >/dev/null 2>&1; then
    ids=$(squeue -h -o '%A %Z' 2>/dev/null | awk -v w="$WORK/slurm" '$2 == w {print $1}')
    [ -z "$ids" ] || { log "scancel leftover jobs $ids"; scancel $ids || true; }
  fi
  if [ "$STARTED_CLUSTER" = 1 ]; then "$TOOLS/stop.sh" || true; fi
  if [ -z "$WORK" ]; then
    :
  elif [ "$rc" = 0 ] && [ "${CI_SLURM_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    log "work folder kept for inspection: $WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
"$TOOLS/start.sh"     # idempotent; waits until the node is idle
PARTITION=$(sinfo -h -o %P | tr -d '*' | head -1)
log "cluster up after $(elapsed): partition=$PARTITION"
want=$(sed -n 's/^ *slurm_partition: *//p' profiles/slurm/config.yaml | head -1)
if [ -n "$want" ] && ! sinfo -h -o %P | tr -d '*' | grep -qx "$want"; then
  log "ERROR: profiles/slurm sets slurm_partition: $want; this cluster has: $(sinfo -h -o %P | xargs)"
  exit 1
fi


# ---------------------------------------------------------------- two fresh copies
WORK=$(mktemp -d "${TMPDIR:-/tmp}/activepam-ci-slurm.XXXXXX")
WORK=$(cd "$WORK" && pwd -P)
copy_repo() {  # copy_repo <dest>: tracked + untracked-not-ignored files, .venv shared by symlink
  local dest=$1
  mkdir -p "$dest"
  if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$REPO" ls-files -z --cached --others --exclude-standard \
      | (cd "$REPO" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
      | tar -C "$REPO" --null -T - -cf - | tar -C "$dest" -xf -
  else
    tar -C "$REPO" --exclude=./.venv --exclude=./results --exclude=./.snakemake \
      --exclude=./data/raw/demo --exclude=.git -cf - . | tar -C "$dest" -xf -
  fi
  [ -e "$dest/.venv" ] || ln -s "$REPO/.venv" "$dest/.venv"
}
copy_repo "$WORK/local"
copy_repo "$WORK/slurm"

# each copy imports its own package code (the editable install points at $REPO/src)
run_workflow() {  # run_workflow <name> <snakemake args...>
  local name=$1; shift
  local start=$(date +%s) rc=0
  log "$name run: snakemake ${TARGETS:-<default target>} $* --configfile $CONFIG (timeout ${TIMEOUT}s)"
  (cd "$WORK/$name" && PYTHONPATH="$WORK/$name/src" \
     timeout --kill-after=30 "$TIMEOUT" "$SMK" $TARGETS "$@" --configfile "$CONFIG" \
     >"$WORK/$name.log" 2>&1) || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 60 "$WORK/$name.log" >&2
    [ "$rc" = 124 ] && log "ERROR: $name run timed out after ${TIMEOUT}s"
    log "ERROR: $name run failed (exit $rc); full log: $WORK/$name.log"
    return 1
  fi
  log "$name run done in $(( $(date +%s) - start ))s"
}

run_workflow local --profile profiles/default

# accounting times are whole seconds: start the window one second early
SINCE=$(date -d '-1 second' +%Y-%m-%dT%H:%M:%S)
STATUS_CMD=sacct
sacct -n -X -S "$SINCE" >/dev/null 2>&1 || STATUS_CMD=squeue
run_workflow slurm --profile profiles/slurm --workflow-profile none \
  --slurm-status-command "$STATUS_CMD" \
  --slurm-init-seconds-before-status-checks 2 \
  --slurm-keep-successful-logs

# ---------------------------------------------------------------- jobs went through sbatch
log "checking the scheduler's job history ($STATUS_CMD)"
"$PY" - "$WORK" "$SINCE" "$STATUS_CMD" <<'PYEOF'
"""Every job the local run ran (bar the SLURM run's local rules) must be a COMPLETED SLURM job."""
import collections
import re
import subprocess
import sys
from pathlib import Path

work, since, status_cmd = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
slurm_dir = str(work / "slurm")


def rule_counts(run_dir: Path, kinds: str) -> collections.Counter:
    """Jobs per rule printed by Snakemake in ``run_dir`` ("rule x:", "localcheckpoint x:", ...)."""
    counts = collections.Counter()
    for log in (run_dir / ".snakemake" / "log").glob("*.snakemake.log"):
        for line in log.read_text().splitlines():
            m = re.match(rf"^(?:{kinds}) (\w+):$", line)
            if m:
                counts[m.group(1)] += 1
    return counts


def history() -> list[tuple[str, str, str]]:
    """(job id, rule, state) of the jobs submitted from the SLURM run's folder."""
    if status_cmd == "sacct":
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since,
                              "--format=JobID,State,WorkDir,Comment,SubmitLine"],
                             check=True, capture_output=True, text=True).stdout
        rows = [line.split("|", 4) for line in out.splitlines() if line.strip()]
        rows = [(j, s, w, c or sub) for j, s, w, c, sub in rows]
    else:  # finished jobs stay visible for MinJobAge (600 s on the local cluster)
        out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%A|%T|%Z|%k"],
                             check=True, capture_output=True, text=True).stdout
        rows = [tuple(line.split("|", 3)) for line in out.splitlines() if line.strip()]
    jobs = []
    for job_id, state, workdir, text in rows:
        if workdir.rstrip("/") != slurm_dir:
            continue
        m = re.search(r"(?:--comment\s+['\"]?)?\brule_(\w+?)(?:_wildcards_\S*)?(?:['\"]|\s|$)", text)
        jobs.append((job_id, m.group(1) if m else "?", state.split()[0]))
    return jobs


# the local run ran every job itself; the SLURM run may keep a few (e.g. `all`) local
expected = rule_counts(work / "local", "rule|checkpoint|localrule|localcheckpoint")
expected -= rule_counts(work / "slurm", "localrule|localcheckpoint")
jobs = history()
done = collections.Counter(rule for _, rule, state in jobs if state == "COMPLETED")
print(f"SLURM jobs from {slurm_dir}: {len(jobs)}")
for rule in sorted(set(expected) | set(done)):
    print(f"  {rule:<28} local jobs {expected[rule]:>3}   sbatch COMPLETED {done[rule]:>3}")
problems = [f"rule {r}: {n} job(s) locally, {done[r]} COMPLETED through sbatch"
            for r, n in expected.items() if done[r] < n]
problems += [f"job {j} ({r}) ended {s}" for j, r, s in jobs if s != "COMPLETED"]
if not expected:
    problems.append("no submitted rule jobs expected: check the runs' Snakemake logs")
if problems:
    sys.exit("FAIL: " + "; ".join(problems))
print("OK: every job went through sbatch and COMPLETED")
PYEOF

# ---------------------------------------------------------------- same results
log "comparing Parquet contents: local vs SLURM"
"$PY" -m activepam.core.hashing "$WORK/local/results" "$WORK/slurm/results" \
  "${PARQUET[@]/#/--require=}"
raw=$("$PY" -c 'import sys, yaml; from snakemake.utils import update_config as u
p = yaml.safe_load(open("params.yaml")); u(p, yaml.safe_load(open(sys.argv[1]))); print(p["data"]["raw_dir"])' "$CONFIG")
if [ -d "$WORK/local/$raw" ]; then
  "$PY" -m activepam.core.hashing "$WORK/local/$raw" "$WORK/slurm/$raw"
fi
log "OK: SLURM run == local run; CI SLURM step took $(elapsed)"
