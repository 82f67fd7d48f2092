"""DAG-build benchmark: ``snakemake -n`` on a synthetic inventory of many recordings (#15).

Copies the workflow (Snakefile, workflow/, scripts/, profiles/, params.yaml) into a temp
project, writes ``results/inventory/inventory.parquet`` with ``--recordings`` synthetic rows of
``--duration-s`` each, shards assigned by :func:`activepam.detection.inventory.assign_shards`
(``--shard-hours`` of audio per shard, at most ``--shard-size`` recordings), and times a dry
run (DAG build only, nothing executed) for the detection + indices targets. Prints one JSON
line per size: recordings, shards, jobs, dag_seconds, peak_rss_mb of snakemake.

    .venv/bin/python benchmarks/dag_build.py [--recordings 10000 100000] [--shard-hours 24]
        [--duration-s 3600] [--workdir /tmp/activepam_dag]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from activepam.detection.inventory import assign_shards

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["results/detect/segments.parquet", "results/indices/indices.parquet"]


def make_project(
    folder: Path, n: int, shard_hours: float, shard_size: int, duration_s: float
) -> int:
    """A temp project with an ``n``-row inventory; returns the number of shards."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in ("workflow", "scripts", "profiles"):
        shutil.copytree(ROOT / name, folder / name)
    shutil.copy(ROOT / "Snakefile", folder / "Snakefile")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw = folder / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "sites.csv").write_text(
        "device_id,site,country,habitat,lat,lon,deployment_start,deployment_end\n"
    )
    params["data"] = {**params["data"], "raw_dir": str(raw), "sites_csv": str(raw / "sites.csv")}
    params.setdefault("demo", {})["enabled"] = False
    params["detect"]["shard_hours"] = shard_hours
    params["detect"]["shard_size"] = shard_size
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dev = [f"{i % 100:08x}" for i in range(n)]
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    inv = pd.DataFrame(
        {
            "recording_id": [f"{d}_{i:07d}" for i, d in enumerate(dev)],
            "path": [f"{raw}/{d}/{i:07d}.flac" for i, d in enumerate(dev)],
            "device_id": dev,
            "start_time": [t0 + pd.Timedelta(hours=i // 100) for i in range(n)],
            "duration_s": float(duration_s),
        }
    )
    inv["shard"] = assign_shards(n, shard_size, inv["duration_s"].to_numpy(), shard_hours)
    out = folder / "results" / "inventory"
    out.mkdir(parents=True)
    time.sleep(0.01)
    inv.to_parquet(out / "inventory.parquet")
    (out / "quarantine.csv").write_text("path,stage,reason\n")
    return int(inv["shard"].nunique())


def dry_run(folder: Path) -> tuple[float, int, float]:
    """(seconds, jobs, peak RSS MB) of ``snakemake -n`` in ``folder``."""
    snake = Path(sys.executable).with_name("snakemake")
    cmd = [
        str(snake),
        "-n",
        "--rerun-triggers",
        "mtime",
        "--cores",
        "1",
        "--quiet",
        "rules",
        "-d",
        str(folder),
        "-s",
        str(folder / "Snakefile"),
        *TARGETS,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=folder)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if res.returncode != 0:
        raise RuntimeError(f"snakemake -n failed: {res.stderr[-3000:]}{res.stdout[-2000:]}")
    text = res.stdout + res.stderr
    m = re.search(r"^total\s+(\d+)", text, re.M)
    return seconds, int(m.group(1)) if m else -1, peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--shard-hours", type=float, default=24.0)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--duration-s", type=float, default=3600.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/activepam_dag"))
    args = ap.parse_args(argv)
    for n in args.recordings:
        folder = args.workdir / f"n{n}"
        shards = make_project(folder, n, args.shard_hours, args.shard_size, args.duration_s)
        seconds, jobs, peak = dry_run(folder)
        print(
            json.dumps(
                {
                    "recordings": n,
                    "audio_hours": round(n * args.duration_s / 3600),
                    "shard_hours": args.shard_hours,
                    "shards": shards,
                    "jobs": jobs,
                    "dag_seconds": round(seconds, 1),
                    "snakemake_peak_rss_mb": round(peak),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
