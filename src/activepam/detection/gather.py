"""Gathering of the detection outputs with DuckDB: a shard's part files into its
segments/predictions/embeddings tables (segments joined with the recording metadata,
:func:`gather_parts`) and the shards' tables into the final ones (:func:`merge_outputs`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from activepam.core.io import atomic_path, write_csv, write_parquet
from activepam.detection.inputs import Recording
from activepam.detection.parts import part_path
from activepam.detection.tables import (
    META_COLUMNS,
    META_SCHEMA,
    OUTPUT_SCHEMAS,
    QUARANTINE_COLUMNS,
    SEGMENTS_SCHEMA,
    STAGE,
    DetectError,
)


def _sql_list(paths: Sequence[Path | str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _write_query(
    con: Any, sql: str, schema: pa.Schema, path: Path, rows_per_batch: int = 65_536
) -> int:
    """Stream a DuckDB query into a Parquet file with exactly ``schema`` (atomic)."""
    reader = con.sql(sql).to_arrow_reader(rows_per_batch)
    n = 0
    with atomic_path(path, STAGE) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in reader:
                tab = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
                writer.write_table(tab)
                n += tab.num_rows
    return n


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    return con


def gather_parts(
    recordings: Sequence[Recording], parts_dir: Path, out_dir: Path, meta: pa.Table | None = None
) -> dict[str, int]:
    """Concatenate the part files of ``recordings`` (sorted by recording_id, then start_s) into
    ``out_dir/{segments,predictions,embeddings}.parquet``; segments get the metadata columns
    and ``segment_time`` = start_time + start_s. ``path`` is the recording's current path (a
    moved file keeps its cached parts)."""
    recs = sorted(recordings, key=lambda r: r.recording_id)
    ids = [r.recording_id for r in recs]
    meta = META_SCHEMA.empty_table() if meta is None else meta
    counts: dict[str, int] = {}
    con = _connect()
    try:
        con.register(
            "recs",
            pa.table(
                {
                    "recording_id": pa.array(ids, pa.string()),
                    "cur_path": pa.array([r.path for r in recs], pa.string()),
                }
            ),
        )
        for kind in ("predictions", "embeddings"):
            target = out_dir / f"{kind}.parquet"
            if not ids:
                write_parquet(OUTPUT_SCHEMAS[kind].empty_table(), target, stage=STAGE)
                counts[kind] = 0
                continue
            files = _sql_list([part_path(parts_dir, r, kind) for r in ids])
            if kind == "predictions":
                sql = (
                    f"SELECT p.* REPLACE (r.cur_path AS path) FROM read_parquet({files}) p "
                    "JOIN recs r USING (recording_id) ORDER BY p.recording_id, p.start_s, "
                    "p.rank"
                )
            else:
                sql = f"SELECT * FROM read_parquet({files})"
            counts[kind] = _write_query(con, sql, OUTPUT_SCHEMAS[kind], target)
        target = out_dir / "segments.parquet"
        if not ids:
            write_parquet(SEGMENTS_SCHEMA.empty_table(), target, stage=STAGE)
            counts["segments"] = 0
            return counts
        con.register("meta", meta)
        files = _sql_list([part_path(parts_dir, r, "segments") for r in ids])
        meta_cols = ", ".join(f"m.{c}" for c in META_COLUMNS)
        sql = (
            f"SELECT s.* REPLACE (r.cur_path AS path), {meta_cols}, "
            "m.start_time + to_microseconds("
            "CAST(round(s.start_s * 1000000) AS BIGINT)) AS segment_time "
            f"FROM read_parquet({files}) s JOIN recs r USING (recording_id) "
            "LEFT JOIN meta m USING (recording_id) "
            "ORDER BY s.recording_id, s.start_s"
        )
        counts["segments"] = _write_query(con, sql, SEGMENTS_SCHEMA, target)
    finally:
        con.close()
    return counts


def merge_outputs(
    inputs: Mapping[str, Sequence[str | os.PathLike[str]]],
    outputs: Mapping[str, str | os.PathLike[str]],
) -> dict[str, int]:
    """Concatenate per-shard detection tables (in the given order) with DuckDB.

    ``inputs`` and ``outputs`` are keyed by ``segments``, ``predictions``, ``embeddings`` and
    ``quarantine`` (CSV files: the inventory's first, then the shards'). Returns row counts.
    """
    counts: dict[str, int] = {}
    con = _connect()
    try:
        for kind, schema in OUTPUT_SCHEMAS.items():
            files = [Path(f) for f in inputs[kind]]
            for f in files:
                if not f.is_file():
                    raise DetectError(f"{f}: shard output missing")
            if not files:
                write_parquet(schema.empty_table(), outputs[kind], stage=STAGE)
                counts[kind] = 0
                continue
            counts[kind] = _write_query(
                con, f"SELECT * FROM read_parquet({_sql_list(files)})", schema, Path(outputs[kind])
            )
    finally:
        con.close()
    frames = [read_quarantine(q) for q in inputs["quarantine"]]
    quar = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    write_csv(quar, outputs["quarantine"], stage=STAGE)
    counts["quarantine"] = len(quar)
    return counts


def read_quarantine(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A quarantine CSV (path, stage, reason) as strings."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    except OSError as exc:
        raise DetectError(f"{path}: cannot read quarantine table: {exc}") from exc
    missing = set(QUARANTINE_COLUMNS) - set(df.columns)
    if missing:
        raise DetectError(f"{path}: quarantine table lacks column(s) {', '.join(sorted(missing))}")
    return df[QUARANTINE_COLUMNS]
