"""How far float16 embedding storage changes cosine ranks and probe results (issue #15).

A seeded synthetic set (1024-d vectors: ``--species`` cluster centres + strong noise) is
written twice through the embedding store (:func:`activepam.core.store.write_store`, float32 and
float16) and read back with :class:`activepam.core.store.PartitionedEmbeddings`. Then:

* exact cosine search (L2-normalised dot product, as :func:`activepam.search.engine.exact_search`)
  of ``--queries`` store rows over all rows: ``recall_at_k`` = share of the float32 top-k that
  the float16 top-k also holds (mean over queries), plus the largest cosine difference;
* the round probe (:func:`activepam.rounds.train.fit_round_model`, per-species logistic probes on
  standardised embeddings) trained on ``--train`` labelled rows, scored on the rest:
  macro average precision with float32 vs float16 inputs.

Prints one JSON line. Usage: ``.venv/bin/python benchmarks/float16_effect.py [--rows 50000]
[--k 100] [--queries 50] [--workdir /tmp/activepam_f16]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from activepam.core.store import PartitionedEmbeddings, write_store

DIM = 1024


def make(rows: int, species: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(species, DIM)).astype(np.float32)
    lab = rng.integers(0, species, rows)
    x = centres[lab] * 0.12 + rng.normal(size=(rows, DIM)).astype(np.float32)
    ids = [f"r{i // 20:06d}@{3.0 * (i % 20):.1f}" for i in range(rows)]
    return x, lab, ids


def roundtrip(x: np.ndarray, ids: list[str], root: Path, dtype: str) -> np.ndarray:
    if root.exists():
        shutil.rmtree(root)
    rec = np.array([i.split("@")[0] for i in ids], dtype=object)
    sources = {}
    for r, idx in pd.Series(np.arange(len(ids))).groupby(rec).indices.items():
        sources[r] = pa.table(
            {
                "segment_id": [ids[i] for i in idx],
                "start_s": np.zeros(len(idx)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x[idx].ravel()), DIM),
            }
        )
    meta = pd.DataFrame(
        {
            "recording_id": list(sources),
            "device_id": "d0",
            "start_time": pd.Timestamp("2025-05-01", tz="UTC"),
        }
    )
    write_store(sources, meta, root, dtype=dtype)
    return PartitionedEmbeddings(root).fetch(ids, "segment_id")


def unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--species", type=int, default=20)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/activepam_f16"))
    args = ap.parse_args(argv)
    from sklearn.metrics import average_precision_score

    from activepam.rounds.train import fit_round_model

    t0 = time.perf_counter()
    x, lab, ids = make(args.rows, args.species)
    x32 = roundtrip(x, ids, args.workdir / "f32", "float32")
    x16 = roundtrip(x, ids, args.workdir / "f16", "float16")
    assert np.array_equal(x32, x)
    u32, u16 = unit(x32), unit(x16)
    rng = np.random.default_rng(1)
    queries = rng.choice(args.rows, args.queries, replace=False)
    recalls, max_diff, exact_same = [], 0.0, 0
    for q in queries:
        s32, s16 = u32 @ u32[q], u16 @ u16[q]
        top32 = np.argsort(-s32, kind="stable")[: args.k]
        top16 = np.argsort(-s16, kind="stable")[: args.k]
        recalls.append(len(set(top32) & set(top16)) / args.k)
        exact_same += int(np.array_equal(top32, top16))
        max_diff = max(max_diff, float(np.abs(s32 - s16).max()))
    species = [f"Sp{i:02d}_Species {i:02d}" for i in range(args.species)]
    y = np.eye(args.species)[lab]
    tr = np.arange(args.train)
    te = np.arange(args.train, min(args.rows, args.train + 10_000))
    aps = {}
    for name, m in (("float32", x32), ("float16", x16)):
        model = fit_round_model(m[tr], y[tr], species)
        p = model.predict(m[te], np.zeros((len(te), args.species)))
        aps[name] = float(
            np.mean([average_precision_score(y[te, j], p[:, j]) for j in range(args.species)])
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "k": args.k,
                "queries": args.queries,
                "recall_at_k_f16_vs_f32": round(float(np.mean(recalls)), 4),
                "min_recall_at_k": round(float(np.min(recalls)), 4),
                "identical_topk_order": exact_same,
                "max_cosine_diff": round(max_diff, 6),
                "probe_macro_ap_f32": round(aps["float32"], 4),
                "probe_macro_ap_f16": round(aps["float16"], 4),
                "probe_macro_ap_diff": round(aps["float16"] - aps["float32"], 5),
                "store_bytes_ratio_f16": round(
                    sum(f.stat().st_size for f in (args.workdir / "f16").rglob("*.parquet"))
                    / sum(f.stat().st_size for f in (args.workdir / "f32").rglob("*.parquet")),
                    3,
                ),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
