"""Content digests of Parquet tables (activepam.core.hashing): used to prove SLURM == local runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activepam.core.hashing import compare_folders, digest_table, main, table_digest


def _table(seed: int = 0, n: int = 20) -> pa.Table:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return pa.table(
        {
            "segment_id": [f"rec{i // 5}@{3.0 * (i % 5):.1f}" for i in range(n)],
            "start_s": pa.array(3.0 * (np.arange(n) % 5)),
            "confidence": pa.array(rng.random(n).astype(np.float32)),
            "species": pa.array([None if i == 3 else f"sp{i % 3}" for i in range(n)]),
            "segment_time": pa.array(pd.date_range("2025-05-15", periods=n, freq="3s", tz="UTC")),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 8),
        }
    )


def test_digest_ignores_row_order_column_order_and_writer(tmp_path: Path) -> None:
    t = _table()
    shuffled = t.take(np.random.default_rng(1).permutation(t.num_rows))
    shuffled = shuffled.select(list(reversed(shuffled.column_names)))
    pq.write_table(t, tmp_path / "a.parquet", compression="zstd")
    pq.write_table(shuffled, tmp_path / "b.parquet", compression="snappy", row_group_size=3)
    a, b = table_digest(tmp_path / "a.parquet"), table_digest(tmp_path / "b.parquet")
    assert a.digest == b.digest
    assert a.rows == 20


def test_digest_decodes_dictionaries_and_large_strings() -> None:
    t = _table()
    t2 = t.set_column(3, "species", t.column("species").dictionary_encode())
    t3 = t.set_column(0, "segment_id", t.column("segment_id").cast(pa.large_string()))
    assert digest_table(t).digest == digest_table(t2).digest == digest_table(t3).digest


@pytest.mark.parametrize("change", ["value", "embedding", "null", "row", "tz"])
def test_digest_sees_every_change(change: str) -> None:
    t = _table()
    if change == "value":
        conf = t.column("confidence").to_numpy().copy()
        conf[7] = np.nextafter(conf[7], np.float32(1))
        t2 = t.set_column(2, "confidence", pa.array(conf))
    elif change == "embedding":
        emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).copy()
        emb[4, 2] += 1e-6
        t2 = t.set_column(
            5,
            "embedding",
            pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel().astype(np.float32)), 8),
        )
    elif change == "null":
        t2 = t.set_column(3, "species", pa.array([f"sp{i % 3}" for i in range(20)]))
    elif change == "row":
        t2 = t.slice(0, 19)
    else:
        t2 = t.set_column(
            4, "segment_time", t.column("segment_time").cast(pa.timestamp("us", tz="Europe/Oslo"))
        )
    assert digest_table(t).digest != digest_table(t2).digest


def test_run_time_columns_are_ignored_and_reported() -> None:
    t = _table()
    a = digest_table(t.append_column("created_at", pa.array(["2026-01-01"] * 20)))
    b = digest_table(t.append_column("created_at", pa.array(["2026-02-02"] * 20)))
    assert a.digest == b.digest == digest_table(t).digest
    assert a.ignored == ("created_at",)
    c = digest_table(t, ignore=["confidence"])
    assert "confidence" not in c.columns and c.digest != a.digest


def test_float_decimals_tolerance() -> None:
    t = _table()
    conf = t.column("confidence").to_numpy().copy() + np.float32(1e-7)
    t2 = t.set_column(2, "confidence", pa.array(conf))
    assert digest_table(t).digest != digest_table(t2).digest
    assert digest_table(t, float_decimals=4).digest == digest_table(t2, float_decimals=4).digest


def test_compare_folders_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run in ("local", "slurm"):
        (tmp_path / run / "detect").mkdir(parents=True)
        pq.write_table(_table(), tmp_path / run / "detect" / "segments.parquet")
    assert (
        compare_folders(tmp_path / "local", tmp_path / "slurm", require=["detect/segments.parquet"])
        == []
    )
    assert main([str(tmp_path / "local"), str(tmp_path / "slurm")]) == 0
    pq.write_table(_table(seed=5), tmp_path / "slurm" / "detect" / "segments.parquet")
    pq.write_table(_table(), tmp_path / "slurm" / "extra.parquet")
    problems = compare_folders(
        tmp_path / "local", tmp_path / "slurm", require=["indices/indices.parquet"]
    )
    assert any("detect/segments.parquet: contents differ" in p for p in problems)
    assert any("extra.parquet: only in" in p for p in problems)
    assert sum("indices/indices.parquet: required file missing" in p for p in problems) == 2
    assert main([str(tmp_path / "local"), str(tmp_path / "slurm")]) == 1
    assert "DIFF detect/segments.parquet" in capsys.readouterr().out
    assert main([str(tmp_path / "local" / "detect" / "segments.parquet")]) == 0
    assert main([str(tmp_path / "nope")]) == 2
