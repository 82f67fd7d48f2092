"""Embedding store (activepam.core.store): layout, DuckDB reading, pruned fetches, sampling."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activepam.core.store import (
    PartitionedEmbeddings,
    StoreError,
    check_dtype,
    duckdb_glob,
    link_store,
    month_of,
    store_files,
    write_store,
)
from activepam.sampling.engine import sample
from activepam.sampling.sources import ArrayEmbeddings, embedding_source

DIM = 1024


def _recordings(
    n_rec: int = 12, seg: int = 5, seed: int = 0
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Per-recording embedding tables, their metadata and the segments table."""
    rng = np.random.default_rng(seed)
    sources, meta, rows = {}, [], []
    for r in range(n_rec):
        rid = f"dev{r % 3}_rec{r:02d}"
        start = pd.Timestamp("2025-01-20", tz="UTC") + pd.Timedelta(days=7 * r)
        starts = np.arange(seg) * 3.0
        ids = [f"{rid}@{s:.1f}" for s in starts]
        emb = rng.normal(0, 1, (seg, DIM)).astype(np.float32)
        sources[rid] = pa.table(
            {
                "segment_id": ids,
                "recording_id": [rid] * seg,
                "start_s": starts,
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), DIM),
            }
        )
        meta.append({"recording_id": rid, "device_id": f"dev{r % 3}", "start_time": start})
        for i, s in zip(ids, starts):
            rows.append(
                {
                    "segment_id": i,
                    "recording_id": rid,
                    "start_s": s,
                    "end_s": s + 3,
                    "site": f"site{r % 3}",
                    "top1_species": "A_a",
                    "top1_confidence": rng.uniform(),
                    "max_binary_entropy": rng.uniform(),
                }
            )
    return sources, pd.DataFrame(meta), pd.DataFrame(rows)


def _matrix(sources: dict) -> tuple[np.ndarray, list[str]]:
    tabs = list(sources.values())
    ids = [i for t in tabs for i in t["segment_id"].to_pylist()]
    mat = np.vstack(
        [t["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, DIM) for t in tabs]
    )
    return mat, ids


def test_layout_sorted_row_groups_and_duckdb(tmp_path: Path) -> None:
    sources, meta, _ = _recordings()
    counts = write_store(sources, meta, tmp_path, dtype="float16", shard="0007", row_group_size=4)
    assert sum(counts.values()) == 60
    files = store_files(tmp_path)
    assert {f.name for _, _, f in files} == {"part-0007.parquet"}
    assert ("dev0", "2025-01") in {(d, m) for d, m, _ in files}
    for _, _, f in files:
        pf = pq.ParquetFile(f)
        ids = pf.read(columns=["segment_id"])["segment_id"].to_pylist()
        assert ids == sorted(ids)
        assert all(pf.metadata.row_group(i).num_rows <= 4 for i in range(pf.num_row_groups))
        assert pf.schema_arrow.field("embedding").type.value_type == pa.float16()
    got = duckdb.sql(
        f"SELECT device_id, month, count(*) AS n FROM read_parquet("
        f"'{duckdb_glob(tmp_path)}', hive_partitioning = true) "
        "WHERE device_id = 'dev1' GROUP BY ALL ORDER BY month"
    ).df()
    expect = (
        meta[meta["device_id"] == "dev1"]
        .assign(month=lambda d: d["start_time"].map(month_of))
        .groupby("month")
        .size()
        * 5
    )
    assert got["n"].tolist() == expect.tolist()
    assert got["month"].tolist() == expect.index.tolist()


def test_fetch_matches_source_and_prunes_row_groups(tmp_path: Path) -> None:
    sources, meta, _ = _recordings()
    write_store(sources, meta, tmp_path, dtype="float32", row_group_size=2)
    mat, ids = _matrix(sources)
    store = PartitionedEmbeddings(tmp_path)
    want = [ids[3], ids[17], "nope@0.0", ids[40]]
    assert store.available(pd.Series(want), "segment_id").tolist() == [True, True, False, True]
    got = store.fetch(want, "segment_id")
    np.testing.assert_array_equal(got[[0, 1, 3]], mat[[3, 17, 40]])
    assert np.isnan(got[2]).all()
    assert store.last.files == 3 and store.last.row_groups == 3  # one row group per id
    assert store.last.row_groups < store.last.row_groups_total
    # partition hints instead of the id index give the same rows
    hint = PartitionedEmbeddings(tmp_path)
    where = {r: (d, month_of(t)) for r, d, t in meta.itertuples(index=False)}
    parts = [where[i.split("@")[0]] for i in want[:2]]
    np.testing.assert_array_equal(
        hint.fetch(want[:2], "segment_id", partitions=parts), mat[[3, 17]]
    )
    assert hint._index == {}  # no id scan
    # recording ids: mean of the recording's segments
    rec = store.fetch(["dev1_rec01"], "recording_id")
    np.testing.assert_allclose(rec[0], mat[5:10].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_float16_close_to_float32(tmp_path: Path) -> None:
    sources, meta, _ = _recordings(n_rec=3)
    write_store(sources, meta, tmp_path, dtype="float16")
    mat, ids = _matrix(sources)
    got = PartitionedEmbeddings(tmp_path).fetch(ids, "segment_id")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, mat, rtol=1e-3, atol=1e-3)
    assert not np.array_equal(got, mat)  # really stored as float16


def test_sampling_with_store_equals_in_memory(tmp_path: Path) -> None:
    sources, meta, segs = _recordings()
    write_store(sources, meta, tmp_path / "store", dtype="float32", row_group_size=3)
    mat, ids = _matrix(sources)
    src = embedding_source(tmp_path / "store")
    assert isinstance(src, PartitionedEmbeddings)
    strategy = {"base": "stratified_kmeans_entropy", "strata": ["site"], "n": 6}
    a = sample(segs, strategy, embeddings=src)
    b = sample(segs, strategy, embeddings=ArrayEmbeddings(mat, ids))
    assert a["unit_id"].tolist() == b["unit_id"].tolist()
    assert len(a) == 6


def test_link_store_and_errors(tmp_path: Path) -> None:
    sources, meta, _ = _recordings()
    recs = list(sources)
    write_store({r: sources[r] for r in recs[:6]}, meta, tmp_path / "s0", shard="0000")
    write_store({r: sources[r] for r in recs[6:]}, meta, tmp_path / "s1", shard="0001")
    final = tmp_path / "final"
    n = link_store([tmp_path / "s0", tmp_path / "s1"], final)
    assert n == len(list(final.glob("device_id=*/month=*/part-*.parquet"))) > 0
    assert sum(pq.ParquetFile(f).metadata.num_rows for _, _, f in store_files(final)) == 60
    link_store([tmp_path / "s0"], final)  # a shard gone: its files leave the store
    assert all(f.name == "part-0000.parquet" for _, _, f in store_files(final))
    with pytest.raises(StoreError, match="detect.embedding_dtype"):
        check_dtype("float64")
    with pytest.raises(StoreError, match="not found"):
        PartitionedEmbeddings(tmp_path / "missing")


@pytest.mark.slow
def test_detect_writes_store_from_parts(tmp_path: Path) -> None:
    """detect_files(embedding_store=...) lays the part files out by device/month (float16)."""
    import soundfile as sf

    from activepam.detection import birdnet as bn
    from activepam.detection.detect import detect_files

    t = np.arange(int(4.0 * 22_050)) / 22_050
    for name, f0 in (("a", 3000), ("b", 5000)):
        sf.write(
            tmp_path / f"{name}.wav", (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 22_050
        )
    inv = pd.DataFrame(
        {
            "recording_id": ["devA_r1", "devB_r2"],
            "path": [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")],
            "device_id": ["devA", None],
            "start_time": pd.to_datetime(["2025-05-15T04:00:00Z", None], utc=True),
            "status": ["ok", "ok"],
        }
    )
    model = bn.BirdNET(threads=1, batch_size=2)
    detect_files(
        inv,
        tmp_path / "out",
        progress=False,
        model=model,
        embedding_store=tmp_path / "store",
        embedding_dtype="float16",
        shard="0003",
    )
    files = {(d, m): f for d, m, f in store_files(tmp_path / "store")}
    assert set(files) == {("devA", "2025-05"), ("unknown", "unknown")}
    assert files[("devA", "2025-05")].name == "part-0003.parquet"
    ref = pd.read_parquet(tmp_path / "out" / "embeddings.parquet")
    got = PartitionedEmbeddings(tmp_path / "store").fetch(ref["segment_id"].tolist(), "segment_id")
    np.testing.assert_allclose(got, np.stack(ref["embedding"].to_numpy()), rtol=2e-3, atol=2e-3)


def test_embedding_matrix_is_the_one_column_conversion() -> None:
    """core.embeddings.embedding_matrix: fixed-size and equal-length lists, clear errors."""
    from activepam.core.embeddings import EmbeddingError, embedding_matrix

    fixed = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3)
    assert embedding_matrix(pa.chunked_array([fixed[:1], fixed[1:]])).tolist() == [
        [0, 1, 2],
        [3, 4, 5],
    ]
    assert embedding_matrix(fixed[:0]).shape == (0, 3)
    assert embedding_matrix(pa.array([[1.0, 2.0]])).dtype == np.float32
    with pytest.raises(EmbeddingError, match="emb.parquet: embeddings have different lengths"):
        embedding_matrix(pa.array([[1.0, 2.0], [1.0]]), "emb.parquet")
    with pytest.raises(ValueError, match="1 missing embeddings"):
        embedding_matrix(pa.array([[1.0, 2.0], None]), error=ValueError)
    with pytest.raises(EmbeddingError, match="not a list"):
        embedding_matrix(pa.array([1.0, 2.0]))
