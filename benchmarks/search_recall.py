"""Benchmark of query by example: exact streamed scan vs the usearch index (issue #14).

Writes a synthetic embedding store of N segments (1024-d float32, clustered like calls of a few
hundred "species" plus noise, in shards of 100k rows with a segments table), builds one usearch
index per shard (f16, cosine), then runs the same queries both ways and prints one JSON line
per size:

    {"rows", "shards", "queries", "k", "recall_at_k", "exact_seconds", "index_seconds",
     "speedup", "index_build_seconds", "exact_peak_rss_mb"}

``recall_at_k`` is the share of the exact top-k that the index returns (mean over queries);
``speedup`` = exact_seconds / index_seconds, measured in the same run. Usage:
``.venv/bin/python benchmarks/search_recall.py [--sizes 100000 1000000] [--k 100]
[--queries 20] [--workdir /tmp/activepam_search_bench]``. The store is cached in --workdir
(about 4.3 GB per million rows); delete it afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from activepam.search import engine as S

DIM = 1024
SHARD_ROWS = 100_000
N_CLUSTERS = 300


def write_store(root: Path, rows: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, DIM)).astype(np.float32)
    files = []
    for s, lo in enumerate(range(0, rows, SHARD_ROWS)):
        n = min(SHARD_ROWS, rows - lo)
        folder = root / "shards" / f"{s:04d}"
        f = folder / "embeddings.parquet"
        files.append(f)
        if f.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        lab = rng.integers(0, N_CLUSTERS, size=n)
        emb = centres[lab] + rng.normal(scale=1.2, size=(n, DIM)).astype(np.float32)
        ids = [f"r{(lo + i) // 20:07d}@{3.0 * ((lo + i) % 20):.1f}" for i in range(n)]
        rec = [i.split("@")[0] for i in ids]
        table = pa.table(
            {
                "segment_id": ids,
                "recording_id": rec,
                "start_s": [3.0 * ((lo + i) % 20) for i in range(n)],
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), DIM),
            }
        )
        pq.write_table(table, f, row_group_size=20_000)
        pq.write_table(
            pa.table(
                {
                    "segment_id": ids,
                    "recording_id": rec,
                    "site": [f"s{(lo + i) % 7}" for i in range(n)],
                }
            ),
            folder / "segments.parquet",
        )
    return files


def run(size: int, k: int, n_queries: int, workdir: Path) -> dict[str, float]:
    root = workdir / f"n{size}"
    files = write_store(root, size)
    t0 = time.perf_counter()
    for f in files:
        S.update_index(f)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    first = pq.read_table(files[0], columns=["segment_id"])["segment_id"].to_pylist()
    examples = [first[i] for i in rng.choice(len(first), size=n_queries, replace=False)]
    recalls, t_exact, t_index = [], 0.0, 0.0
    for ex in examples:
        q = S.load_queries([ex], files)
        t0 = time.perf_counter()
        exact = S.exact_search(files, q, k)
        t_exact += time.perf_counter() - t0
        t0 = time.perf_counter()
        approx = S.index_search(files, q, k)
        t_index += time.perf_counter() - t0
        recalls.append(len(set(exact["segment_id"]) & set(approx["segment_id"])) / k)
    return {
        "rows": size,
        "shards": len(files),
        "queries": n_queries,
        "k": k,
        "recall_at_k": round(float(np.mean(recalls)), 4),
        "exact_seconds": round(t_exact / n_queries, 3),
        "index_seconds": round(t_index / n_queries, 4),
        "speedup": round(t_exact / max(t_index, 1e-9), 1),
        "index_build_seconds": round(build, 1),
        "exact_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/activepam_search_bench"))
    args = ap.parse_args(argv)
    for size in args.sizes:
        print(json.dumps(run(size, args.k, args.queries, args.workdir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
