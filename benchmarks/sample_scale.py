"""Scale benchmark of the sampling engine (issue #3).

Generates synthetic detection tables of 1M, 3M and 10M segments (prefixes of one another, so
one embeddings file serves all sizes: 1024-d float32 embeddings for the first 1M segments,
written in chunks to Parquet) and runs, per size, in a FRESH subprocess:

    read segments (only the needed columns) -> labelled exclusion -> max-entropy score ->
    site x diel strata (solar elevation per unique site/time) -> equal allocation ->
    per stratum the top ``candidates`` x quota units that have embeddings -> MiniBatch k-means
    (k = quota, PCA-reduced to 64 dims) -> most uncertain unit per cluster -> N = 1000 rows

i.e. exactly ``activepam sample --strategy stratified_kmeans_entropy`` with ``diversify.pca: 64``.
Only units with an embedding can be clustered, so the pool is the embedded 1M subset after
scoring and stratifying all rows. Each size prints one JSON line:
``{"rows", "seconds", "peak_rss_mb", ...}``; the last line repeats the largest size.

Usage: ``.venv/bin/python benchmarks/sample_scale.py [--sizes 1000000 3000000 10000000]
[--workdir /tmp/activepam_sample_bench] [--n 1000]``. Generated files are cached in
``--workdir`` (about 5 GB for the default sizes); delete it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEG_PER_REC = 20  # 60 s recordings of 3 s segments
EMB_DIM = 1024
CHUNK_RECS = 25_000  # recordings per generated chunk (500k segments)
N_SITES = 120
N_SPECIES = 300
EMB_ROWS = 1_000_000


# --------------------------------------------------------------------------- generation


def _sites() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    countries = np.array(["NO", "DK", "NL", "BE", "FR", "ES"])
    lat = np.sort(rng.uniform(37.0, 70.0, N_SITES))[::-1]
    return {
        "device_id": np.array([f"{i:08x}" for i in rng.integers(0, 2**32, N_SITES)]),
        "site": np.array([f"site{i:03d}" for i in range(N_SITES)]),
        "country": countries[np.minimum((70.0 - lat) / 33.0 * len(countries), 5).astype(int)],
        "habitat": np.array(["forest", "wetland", "farmland", "urban"])[np.arange(N_SITES) % 4],
        "lat": lat,
        "lon": rng.uniform(-8.0, 25.0, N_SITES),
    }


def _entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits."""
    return -(p * np.log2(np.clip(p, 1e-12, 1)) + (1 - p) * np.log2(np.clip(1 - p, 1e-12, 1)))


def _chunk(c: int, sites: dict[str, np.ndarray]) -> pa.Table:
    """Recordings ``c*CHUNK_RECS ..`` and their segments (seeded per chunk -> prefix-stable)."""
    rng = np.random.default_rng(1000 + c)
    nrec = CHUNK_RECS
    site_idx = rng.integers(0, N_SITES, nrec)
    t0 = np.datetime64("2025-01-01T00:00:00", "s").astype(np.int64)
    rec_start = t0 + rng.integers(0, 365 * 86400 // 60, nrec) * 60
    rec_no = np.arange(c * nrec, (c + 1) * nrec)
    stamps = rec_start.astype("datetime64[s]").astype(str)
    rec_ids = np.char.add(np.char.add(sites["device_id"][site_idx], "_"),
                          np.char.add(np.char.replace(np.char.replace(stamps, "-", ""), ":", ""),
                                      np.char.add("Z_", rec_no.astype(str))))
    folder = np.char.add("data/raw/proj_bench/bugg_RPiID-", sites["device_id"][site_idx])
    paths = np.char.add(folder, np.char.add("/conf_0/", np.char.add(rec_ids, ".flac")))
    n = nrec * SEG_PER_REC
    rep = np.repeat(np.arange(nrec), SEG_PER_REC)
    start = np.tile(np.arange(SEG_PER_REC, dtype=np.float64) * 3.0, nrec)
    rec_arr = pa.array(rec_ids)
    start_str = pa.array(np.char.add("@", np.char.mod("%.1f", start[:SEG_PER_REC])))
    seg_ids = pc.binary_join_element_wise(
        rec_arr.take(pa.array(rep)),
        start_str.take(pa.array(np.tile(np.arange(SEG_PER_REC), nrec))), "")
    top1 = rng.beta(0.6, 1.2, n)
    top2 = top1 * rng.uniform(0, 1, n)
    species = np.minimum(rng.zipf(1.3, n) - 1, N_SPECIES - 1)
    s_idx = site_idx[rep]
    labels = pa.array([f"Genus{i:03d} species_Bird {i:03d}" for i in range(N_SPECIES)])
    utc_us = pa.timestamp("us", tz="UTC")
    rec_start_us = rec_start[rep] * 1_000_000
    return pa.table({
        "segment_id": seg_ids,
        "recording_id": rec_arr.take(pa.array(rep)),
        "path": pa.array(paths).take(pa.array(rep)),
        "start_s": start,
        "end_s": start + 3.0,
        "top1_species": labels.take(pa.array(species)),
        "top1_confidence": top1.astype(np.float32),
        "top2_confidence": top2.astype(np.float32),
        "margin": (top1 - top2).astype(np.float32),
        "max_binary_entropy": np.maximum(_entropy(top1), _entropy(top2)).astype(np.float32),
        "mean_binary_entropy": (_entropy(top1) / 50).astype(np.float32),
        "device_id": pa.array(sites["device_id"][s_idx]),
        "site": pa.array(sites["site"][s_idx]),
        "country": pa.array(sites["country"][s_idx]),
        "habitat": pa.array(sites["habitat"][s_idx]),
        "lat": sites["lat"][s_idx],
        "lon": sites["lon"][s_idx],
        "start_time": pa.array(rec_start_us, utc_us),
        "segment_time": pa.array(rec_start_us + (start * 1e6).astype(np.int64), utc_us),
    })


def generate_segments(path: Path, rows: int) -> None:
    """Write a ``rows``-segment table (chunks of 500k rows, one row group each)."""
    if path.exists():
        return
    sites = _sites()
    n_chunks = -(-rows // (CHUNK_RECS * SEG_PER_REC))
    tmp = path.with_suffix(".tmp")
    writer = None
    for c in range(n_chunks):
        t = _chunk(c, sites)
        if writer is None:
            writer = pq.ParquetWriter(tmp, t.schema, compression="zstd")
        writer.write_table(t.slice(0, rows - c * CHUNK_RECS * SEG_PER_REC), row_group_size=500_000)
    writer.close()
    os.replace(tmp, path)


def generate_embeddings(path: Path, segments: Path, rows: int = EMB_ROWS) -> None:
    """1024-d float32 embeddings (64 cluster centres + noise) for the first ``rows`` segments."""
    if path.exists():
        return
    ids = pq.read_table(segments, columns=["segment_id", "recording_id", "start_s"]).slice(0, rows)
    rng = np.random.default_rng(11)
    centres = rng.normal(0, 1, (64, EMB_DIM)).astype(np.float32)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("segment_id", pa.string()), ("recording_id", pa.string()),
                        ("start_s", pa.float64()), ("embedding", pa.list_(pa.float32(), EMB_DIM))])
    step = 50_000
    with pq.ParquetWriter(tmp, schema, compression="none") as writer:
        for i in range(0, ids.num_rows, step):
            part = ids.slice(i, step)
            m = part.num_rows
            noise = rng.standard_normal((m, EMB_DIM), dtype=np.float32)
            emb = centres[rng.integers(0, 64, m)] + noise
            arr = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), EMB_DIM)
            writer.write_table(pa.table({"segment_id": part["segment_id"],
                                         "recording_id": part["recording_id"],
                                         "start_s": part["start_s"], "embedding": arr},
                                        schema=schema), row_group_size=step)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- one run


def run_one(segments: Path, embeddings: Path, n: int, out: Path) -> dict:
    """One timed sampling run in this process (call in a fresh subprocess)."""
    import psutil

    from activepam.sampling import run_sampling

    strategy = {"base": "stratified_kmeans_entropy", "diversify": {"pca": 64}}
    t0 = time.perf_counter()
    sample = run_sampling(segments, strategy, n=n, seed=0, embeddings=embeddings, out=out,
                          progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB on Linux
    rows = pq.ParquetFile(segments).metadata.num_rows
    return {"rows": rows, "seconds": round(seconds, 2), "peak_rss_mb": round(peak),
            "rss_now_mb": round(psutil.Process().memory_info().rss / 2**20),
            "n": len(sample), "strata": int(sample["stratum"].nunique()),
            "cpus": len(os.sched_getaffinity(0))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/activepam_sample_bench"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--child", nargs=3, metavar=("SEGMENTS", "EMBEDDINGS", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        seg, emb, out = (Path(p) for p in args.child)
        print(json.dumps(run_one(seg, emb, args.n, out)), flush=True)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    biggest = max(args.sizes)
    gen_t = time.perf_counter()
    for rows in sorted(args.sizes):
        generate_segments(args.workdir / f"segments_{rows}.parquet", rows)
    emb = args.workdir / "embeddings_1M.parquet"
    generate_embeddings(emb, args.workdir / f"segments_{biggest}.parquet", min(EMB_ROWS, biggest))
    print(f"# data ready in {time.perf_counter() - gen_t:.0f} s ({args.workdir})", file=sys.stderr)
    last = None
    for rows in sorted(args.sizes):
        seg = args.workdir / f"segments_{rows}.parquet"
        cmd = [sys.executable, __file__, "--n", str(args.n), "--child", str(seg), str(emb),
               str(args.workdir / f"sample_{rows}.csv")]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        last = line
    if last:
        print(json.dumps({"final": json.loads(last)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
