"""Scale benchmark of the sampling engine (issues #3, #15).

Generates synthetic detection tables (prefixes of one another: 1M, 10M, 100M segments) and,
for the ``--sizes``, embeds EVERY segment into a device/month embedding store
(:mod:`activepam.core.store`, float16 by default, 256-row row groups sorted by segment_id). Each run
is a FRESH subprocess:

* ``inmemory`` (embedded sizes): ``run_sampling`` = ``activepam sample --strategy
  stratified_kmeans_entropy`` with ``diversify.pca: 64`` and ``--embeddings <store folder>``:
  read segments -> max-entropy score -> site x diel strata -> equal allocation -> per stratum
  the top 10 x quota candidates -> their embeddings (partition + row-group pruned) -> k-means
  -> N = 1000;
* ``outofcore`` (embedded sizes): the same strategy through
  :func:`activepam.sampling.outofcore.outofcore_sample` (DuckDB, 2 GB limit, spilling; candidates'
  embeddings fetched by their device/month partition without scanning the store's ids);
* ``outofcore`` (``--ooc-sizes``, no embeddings): scoring + strata + allocation + per-stratum
  top (``stratified_entropy``) over all rows.

Prints one JSON line per run (``mode, rows, embedded_rows, seconds, peak_rss_mb``, fetch
counts: ``candidates, files_read, row_groups_read, row_groups_in_read_files, rows_read``), then
one ``growth`` line per pair of consecutive sizes with the log-log exponents and the
projection to 1e9 rows.

Usage: ``nice -n 5 .venv/bin/python benchmarks/sample_scale.py --sizes 1000000 10000000
--ooc-sizes 10000000 100000000 [--workdir /tmp/activepam_sample_bench] [--n 1000]``.
Generated files are cached in ``--workdir`` (about 2 KB per embedded row plus ~40 B per
segment row: ~26 GB for these sizes); delete it afterwards.
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

from activepam.core.store import ROW_GROUP_SIZE

SEG_PER_REC = 20  # 60 s recordings of 3 s segments
EMB_DIM = 1024
CHUNK_RECS = 25_000  # recordings per generated chunk (500k segments)
N_SITES = 120
N_SPECIES = 300


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
    rec_ids = np.char.add(
        np.char.add(sites["device_id"][site_idx], "_"),
        np.char.add(
            np.char.replace(np.char.replace(stamps, "-", ""), ":", ""),
            np.char.add("Z_", rec_no.astype(str)),
        ),
    )
    folder = np.char.add("data/raw/proj_bench/bugg_RPiID-", sites["device_id"][site_idx])
    paths = np.char.add(folder, np.char.add("/conf_0/", np.char.add(rec_ids, ".flac")))
    n = nrec * SEG_PER_REC
    rep = np.repeat(np.arange(nrec), SEG_PER_REC)
    start = np.tile(np.arange(SEG_PER_REC, dtype=np.float64) * 3.0, nrec)
    rec_arr = pa.array(rec_ids)
    start_str = pa.array(np.char.add("@", np.char.mod("%.1f", start[:SEG_PER_REC])))
    seg_ids = pc.binary_join_element_wise(
        rec_arr.take(pa.array(rep)),
        start_str.take(pa.array(np.tile(np.arange(SEG_PER_REC), nrec))),
        "",
    )
    top1 = rng.beta(0.6, 1.2, n)
    top2 = top1 * rng.uniform(0, 1, n)
    species = np.minimum(rng.zipf(1.3, n) - 1, N_SPECIES - 1)
    s_idx = site_idx[rep]
    labels = pa.array([f"Genus{i:03d} species_Bird {i:03d}" for i in range(N_SPECIES)])
    utc_us = pa.timestamp("us", tz="UTC")
    rec_start_us = rec_start[rep] * 1_000_000
    return pa.table(
        {
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
        }
    )


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


def generate_store(
    root: Path, segments: Path, dtype: str = "float16", row_group_size: int = ROW_GROUP_SIZE
) -> int:
    """Embed EVERY segment of ``segments`` into a device/month store (activepam.core.store layout).

    1024-d vectors = one of 64 cluster centres + noise (rows of a seeded noise pool), written
    per partition (``part-0000.parquet``, sorted by segment_id) with the store's own writer.
    Returns the number of embedded rows."""
    from activepam.core.store import _SortedWriter, partition_dir, store_schema

    done = root / "_SUCCESS"
    if done.exists():
        return int(done.read_text())
    meta = pq.read_table(
        segments, columns=["segment_id", "recording_id", "start_s", "device_id", "start_time"]
    )
    month = pc.strftime(meta["start_time"], format="%Y-%m")
    part = pc.binary_join_element_wise(meta["device_id"], month, "/")
    order = pc.sort_indices(
        pa.table({"p": part, "s": meta["segment_id"]}),
        sort_keys=[("p", "ascending"), ("s", "ascending")],
    )
    meta = meta.select(["segment_id", "recording_id", "start_s"]).take(order)
    part = part.take(order).combine_chunks()
    del order
    rng = np.random.default_rng(11)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    centres = rng.normal(0, 1, (64, EMB_DIM)).astype(np_dtype)
    pool = rng.standard_normal((1 << 15, EMB_DIM), dtype=np.float32).astype(np_dtype)
    schema = store_schema(dtype)
    value_type = schema.field("embedding").type.value_type
    runs = pc.run_end_encode(part)
    ends = runs.run_ends.to_numpy()
    values = runs.values.to_pylist()
    start = 0
    for end, key in zip(ends, values):
        dev, mo = key.split("/")
        chunk = meta.slice(start, end - start)
        m = chunk.num_rows
        emb = centres[rng.integers(0, 64, m)] + pool[rng.integers(0, len(pool), m)]
        arr = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel(), type=value_type), EMB_DIM)
        folder = partition_dir(root, dev, mo)
        folder.mkdir(parents=True, exist_ok=True)
        writer = _SortedWriter(folder / "part-0000.parquet", schema, row_group_size)
        writer.write(
            pa.table(
                {
                    "segment_id": chunk["segment_id"],
                    "recording_id": chunk["recording_id"],
                    "start_s": chunk["start_s"],
                    "embedding": arr,
                },
                schema=schema,
            )
        )
        writer.close()
        start = end
    done.write_text(str(meta.num_rows))
    return meta.num_rows


# --------------------------------------------------------------------------- one run


def _peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # kB -> MB


def run_one(
    mode: str, segments: Path, store: Path | None, n: int, out: Path, workdir: Path
) -> dict:
    """One timed run in this process (call in a fresh subprocess).

    ``inmemory``: ``run_sampling`` (the ``activepam sample`` path) with the store as its
    EmbeddingSource; ``outofcore``: :func:`activepam.sampling.outofcore.outofcore_sample` (DuckDB,
    2 GB memory limit, spilling into ``workdir``), k-means when a store is given, else the
    stratified top-entropy batch (scoring + strata + allocation + per-stratum top)."""
    from activepam.core.store import PartitionedEmbeddings
    from activepam.sampling.files import run_sampling
    from activepam.sampling.outofcore import outofcore_sample

    rows = pq.ParquetFile(segments).metadata.num_rows
    stats: dict = {}
    t0 = time.perf_counter()
    if mode == "inmemory":
        source = PartitionedEmbeddings(store)
        strategy = {"base": "stratified_kmeans_entropy", "diversify": {"pca": 64}}
        sample = run_sampling(
            segments, strategy, n=n, seed=0, embeddings=source, out=out, progress=False
        )
        stats["fetch"] = source.last.as_dict()
    else:
        strategy = (
            {"base": "stratified_kmeans_entropy", "diversify": {"pca": 64}}
            if store
            else "stratified_entropy"
        )
        tmp = workdir / "duckdb_tmp"
        tmp.mkdir(exist_ok=True)
        sample = outofcore_sample(
            segments,
            strategy,
            n=n,
            seed=0,
            embeddings=store,
            memory_limit="2GB",
            temp_dir=tmp,
            stats=stats,
        )
        sample.to_csv(out, index=False)
    seconds = time.perf_counter() - t0
    emb_rows = 0
    if store is not None:
        emb_rows = int((store / "_SUCCESS").read_text())
    fetch = stats.pop("fetch", None)
    res = {
        "mode": mode,
        "rows": rows,
        "embedded_rows": emb_rows,
        "dtype": "float16" if store else None,
        "seconds": round(seconds, 2),
        "peak_rss_mb": _peak_mb(),
        "n": len(sample),
        "strata": int(sample["stratum"].nunique()),
        "cpus": len(os.sched_getaffinity(0)),
    }
    if fetch:
        res.update(
            {
                "candidates": fetch["rows_wanted"],
                "files_read": fetch["files"],
                "files_total": fetch["files_total"],
                "row_groups_read": fetch["row_groups"],
                "row_groups_in_read_files": fetch["row_groups_total"],
                "rows_read": fetch["rows_read"],
            }
        )
    res.update({k: v for k, v in stats.items() if k != "seconds"})
    return res


def _growth(lines: list[dict]) -> list[dict]:
    """Growth between consecutive sizes (time and memory ratios, log-log exponent) and a
    projection to 1e9 rows from the last two sizes."""
    out = []
    for a, b in zip(lines, lines[1:]):
        r = b["rows"] / a["rows"]
        t_exp = np.log(b["seconds"] / a["seconds"]) / np.log(r)
        m_exp = np.log(b["peak_rss_mb"] / a["peak_rss_mb"]) / np.log(r)
        proj = 1e9 / b["rows"]
        out.append(
            {
                "growth": f"{a['rows']} -> {b['rows']}",
                "mode": b["mode"],
                "rows_ratio": round(r, 2),
                "seconds_ratio": round(b["seconds"] / a["seconds"], 2),
                "peak_ratio": round(b["peak_rss_mb"] / a["peak_rss_mb"], 2),
                "time_exponent": round(float(t_exp), 2),
                "memory_exponent": round(float(m_exp), 2),
                "projected_1e9_seconds": round(b["seconds"] * proj ** max(t_exp, 0.0)),
                "projected_1e9_peak_mb": round(b["peak_rss_mb"] * proj ** max(m_exp, 0.0)),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[1_000_000, 3_000_000, 10_000_000],
        help="segment counts with EVERY segment embedded (float16 store)",
    )
    ap.add_argument(
        "--ooc-sizes",
        type=int,
        nargs="*",
        default=[10_000_000, 100_000_000],
        help="segment counts for the out-of-core run without embeddings",
    )
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["inmemory", "outofcore"],
        choices=["inmemory", "outofcore"],
        help="samplers of the embedded sizes",
    )
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--row-group-size", type=int, default=ROW_GROUP_SIZE)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/activepam_sample_bench"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--generate-only", action="store_true", help="write the data and stop")
    ap.add_argument(
        "--child", nargs=4, metavar=("MODE", "SEGMENTS", "STORE", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.child:
        mode, seg, store, out = args.child
        res = run_one(
            mode, Path(seg), Path(store) if store != "-" else None, args.n, Path(out), args.workdir
        )
        print(json.dumps(res), flush=True)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    gen_t = time.perf_counter()
    jobs: list[tuple[str, int, Path | None]] = []
    for rows in sorted(set(args.sizes) | set(args.ooc_sizes)):
        generate_segments(args.workdir / f"segments_{rows}.parquet", rows)
    for rows in sorted(args.sizes):
        store = args.workdir / f"store_{args.dtype}_rg{args.row_group_size}_{rows}"
        generate_store(
            store, args.workdir / f"segments_{rows}.parquet", args.dtype, args.row_group_size
        )
        jobs += [(mode, rows, store) for mode in args.modes]
    jobs += [("outofcore", rows, None) for rows in sorted(args.ooc_sizes)]
    print(
        f"# data ready in {time.perf_counter() - gen_t:.0f} s ({args.workdir})",
        file=sys.stderr,
        flush=True,
    )
    if args.generate_only:
        return 0
    lines: list[dict] = []
    for mode, rows, store in jobs:
        seg = args.workdir / f"segments_{rows}.parquet"
        cmd = [
            sys.executable,
            __file__,
            "--n",
            str(args.n),
            "--workdir",
            str(args.workdir),
            "--child",
            mode,
            str(seg),
            str(store) if store else "-",
            str(args.workdir / f"sample_{mode}_{rows}.csv"),
        ]
        res = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if res.returncode != 0:
            print(
                json.dumps(
                    {
                        "mode": mode,
                        "rows": rows,
                        "failed": res.returncode,
                        "stderr": res.stderr[-1500:],
                    }
                ),
                flush=True,
            )
            continue
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        lines.append(json.loads(line))
    for key in sorted({(d["mode"], d["embedded_rows"] > 0) for d in lines}):
        group = [d for d in lines if (d["mode"], d["embedded_rows"] > 0) == key]
        for g in _growth(sorted(group, key=lambda d: d["rows"])):
            g["embedded"] = key[1]
            print(json.dumps(g), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
