"""Embedding store: Hive-partitioned Parquet by device and month (TABMON's layout).

Layout (``detect.embedding_dtype`` float32 or float16)::

    <root>/device_id=<device>/month=<YYYY-MM>/part-<shard>.parquet
        segment_id (string), recording_id (string), start_s (double),
        embedding (fixed_size_list<float16|float32>[1024])

* One file per (device, month, shard); rows sorted by ``segment_id`` inside a file, in row
  groups of ``row_group_size`` rows (default :data:`ROW_GROUP_SIZE`), with min/max statistics
  on ``segment_id`` and ``recording_id`` only. The partition columns live in the folder names
  (Hive style): ``duckdb.sql("SELECT device_id, month, count(*) FROM read_parquet(
  '<root>/**/*.parquet', hive_partitioning = true) GROUP BY ALL")`` reads the store without
  loading it whole (DuckDB projects columns and prunes partitions on ``device_id``/``month``).
* :func:`write_store` builds the partition files of one shard from per-recording embedding
  part files (``results/detect/parts``, still the unit of resume) or any embedding tables;
  :func:`link_store` lays several shards' files into the final store by hard link (no copy).
* :class:`PartitionedEmbeddings` is an :class:`activepam.core.embeddings.EmbeddingSource` over a
  store folder: ``available`` reads only the id column; ``fetch`` reads only the row groups
  whose ``segment_id`` min/max range can hold a wanted id, in the partition files that hold the
  ids (known from ``available``'s id scan, or given as ``device_id``/``month`` hints by the
  out-of-core sampler, which never scans all ids). Values come back as float32.

Row-group pruning helps only as far as the candidates cluster: for candidates spread at random
over a partition, the fraction of row groups read is about ``1 - exp(-c * R / rows)`` for ``c``
candidates, ``R`` rows per row group (measured: 43% at 1M rows, 6.1% at 10M for 10k
candidates, R = 64). Small row groups (64 rows = 128 kB of float16 embeddings) keep the bytes
read near ``c * R * 2 kB``; their cost is the footers (~450 B per row group, 71 MB at 10M rows),
which a billion-row store could not afford at R = 64 (see README "Scale").
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activepam.core.embeddings import EmbeddingError, EmbeddingSource, embedding_matrix, group_mean
from activepam.core.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

EMBEDDING_DTYPES = ("float32", "float16")
#: rows per row group: 64 x 1024 float16 = 128 kB of embeddings per row group (candidates
#: spread at random touch ~1 - exp(-c * 64 / rows) of the row groups; see the module doc)
ROW_GROUP_SIZE = 64
EMBEDDING_DIM = 1024
STAGE = "detect"
UNKNOWN_DEVICE = "unknown"
UNKNOWN_MONTH = "unknown"


class StoreError(ValueError):
    """A store folder or a store parameter is invalid (the message names it)."""


def check_dtype(dtype: str, key: str = "detect.embedding_dtype") -> str:
    """``dtype`` when it is float32 or float16, else a :class:`StoreError` naming ``key``."""
    if str(dtype) not in EMBEDDING_DTYPES:
        raise StoreError(f"{key}: must be one of {', '.join(EMBEDDING_DTYPES)}, got {dtype!r}")
    return str(dtype)


def store_schema(dtype: str = "float32", dim: int = EMBEDDING_DIM) -> pa.Schema:
    """Schema of a store file (partition columns are in the folder names)."""
    value = pa.float16() if check_dtype(dtype, "dtype") == "float16" else pa.float32()
    return pa.schema(
        [
            ("segment_id", pa.string()),
            ("recording_id", pa.string()),
            ("start_s", pa.float64()),
            ("embedding", pa.list_(value, dim)),
        ]
    )


def _partition_value(text: Any, unknown: str) -> str:
    """Folder-safe Hive partition value (``/``, ``=`` and control characters replaced)."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text) == "":
        return unknown
    out = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in str(text))
    return out or unknown


def month_of(start_time: Any) -> str:
    """``YYYY-MM`` (UTC) of a timestamp, ``unknown`` when missing."""
    ts = pd.Timestamp(start_time) if start_time is not None else pd.NaT
    if pd.isna(ts):
        return UNKNOWN_MONTH
    ts = ts.tz_convert("UTC") if ts.tz is not None else ts
    return f"{ts.year:04d}-{ts.month:02d}"


def partition_dir(root: PathLike, device_id: Any, month: str) -> Path:
    """``<root>/device_id=<d>/month=<m>``."""
    return (
        Path(root)
        / f"device_id={_partition_value(device_id, UNKNOWN_DEVICE)}"
        / f"month={_partition_value(month, UNKNOWN_MONTH)}"
    )


def _as_store_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast an embeddings table (segment_id, [recording_id], start_s, embedding) to ``schema``."""
    if "recording_id" not in table.column_names:
        rec = pc.replace_substring_regex(table["segment_id"], "@[^@]*$", "")
        table = table.append_column("recording_id", rec)
    if "start_s" not in table.column_names:
        table = table.append_column("start_s", pa.nulls(table.num_rows, pa.float64()))
    emb = table["embedding"].combine_chunks()
    dim = schema.field("embedding").type.list_size
    values = emb.flatten().cast(schema.field("embedding").type.value_type)
    if len(values) != dim * len(emb):
        raise StoreError(f"embeddings: expected {dim} values per row")
    emb = pa.FixedSizeListArray.from_arrays(values, dim)
    cols = {
        "segment_id": table["segment_id"].cast(pa.string()),
        "recording_id": table["recording_id"].cast(pa.string()),
        "start_s": table["start_s"].cast(pa.float64()),
        "embedding": emb,
    }
    return pa.table(cols, schema=schema)


class _SortedWriter:
    """Parquet writer emitting full row groups of ``row_group_size`` rows (atomic file)."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_size: int) -> None:
        self.path = path
        self.schema = schema
        self.rg = int(row_group_size)
        self._ctx = atomic_path(path, STAGE)
        tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(
            tmp,
            schema,
            compression="zstd",
            write_statistics=["segment_id", "recording_id"],
            use_dictionary=["recording_id"],
        )
        self._buf: list[pa.Table] = []
        self._n = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._buf.append(table)
        self._n += table.num_rows
        if self._n >= self.rg:
            whole = pa.concat_tables(self._buf)
            cut = (self._n // self.rg) * self.rg
            self._writer.write_table(whole.slice(0, cut), row_group_size=self.rg)
            rest = whole.slice(cut)
            self._buf, self._n = ([rest] if rest.num_rows else []), rest.num_rows
        self.rows += table.num_rows

    def close(self) -> None:
        if self._buf:
            self._writer.write_table(pa.concat_tables(self._buf), row_group_size=self.rg)
        self._writer.close()
        self._ctx.__exit__(None, None, None)


def write_store(
    sources: Mapping[str, PathLike | pa.Table],
    meta: pd.DataFrame | pa.Table,
    root: PathLike,
    dtype: str = "float32",
    shard: str = "0000",
    row_group_size: int = ROW_GROUP_SIZE,
) -> dict[str, int]:
    """Write the store files of one shard: ``<root>/device_id=*/month=*/part-<shard>.parquet``.

    ``sources``: recording_id -> its embeddings (a per-recording part file or a table);
    ``meta``: recording_id, device_id, start_time (recordings missing there go to the
    ``unknown`` partitions). Recordings are written one partition at a time in segment_id
    order (so memory holds one recording at a time). Returns rows per partition folder.
    """
    dtype = check_dtype(dtype)
    schema = store_schema(dtype)
    m = meta.to_pandas() if isinstance(meta, pa.Table) else meta
    dev = dict(zip(m["recording_id"].astype(str), m["device_id"])) if "device_id" in m else {}
    start = dict(zip(m["recording_id"].astype(str), m["start_time"])) if "start_time" in m else {}
    groups: dict[Path, list[str]] = defaultdict(list)
    for rec in sources:
        groups[partition_dir(root, dev.get(rec), month_of(start.get(rec)))].append(str(rec))
    counts: dict[str, int] = {}
    for folder, recs in sorted(groups.items()):
        folder.mkdir(parents=True, exist_ok=True)
        writer = _SortedWriter(folder / f"part-{shard}.parquet", schema, row_group_size)
        try:
            # recording ids hold no '@': sorting on "<id>@" and segment ids within a recording
            # gives files sorted by segment_id
            for rec in sorted(recs, key=lambda r: r + "@"):
                src = sources[rec]
                tab = pq.read_table(src) if not isinstance(src, pa.Table) else src
                tab = _as_store_table(tab, schema)
                tab = tab.take(pc.sort_indices(tab["segment_id"]))
                writer.write(tab)
        finally:
            writer.close()
        counts[str(folder.relative_to(root))] = writer.rows
    return counts


def link_store(shard_roots: Sequence[PathLike], root: PathLike) -> int:
    """Lay the partition files of several shard stores into ``root`` (hard links, else copies);
    files of ``root`` that no shard has any more are removed. Returns the number of files."""
    import shutil

    root = Path(root)
    wanted: set[Path] = set()
    for sroot in shard_roots:
        for f in sorted(Path(sroot).glob("device_id=*/month=*/part-*.parquet")):
            target = root / f.relative_to(sroot)
            wanted.add(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(f, tmp)
            except OSError:
                shutil.copyfile(f, tmp)
            os.replace(tmp, target)
    for f in root.glob("device_id=*/month=*/part-*.parquet"):
        if f not in wanted:
            f.unlink()
    return len(wanted)


def store_files(root: PathLike) -> list[tuple[str, str, Path]]:
    """(device_id, month, file) of every file of a store folder, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: embedding store folder not found")
    out = []
    for f in sorted(root.glob("device_id=*/month=*/*.parquet")):
        out.append((f.parent.parent.name.split("=", 1)[1], f.parent.name.split("=", 1)[1], f))
    if not out:
        raise StoreError(f"{root}: no device_id=*/month=*/*.parquet files (not a store)")
    return out


def is_store(path: PathLike) -> bool:
    """True when ``path`` is a folder (an embedding store rather than one Parquet file)."""
    return Path(path).is_dir()


def duckdb_glob(root: PathLike) -> str:
    """The ``read_parquet`` glob of a store (use with ``hive_partitioning = true``)."""
    return str(Path(root) / "device_id=*" / "month=*" / "*.parquet")


# --------------------------------------------------------------------------- reading


def hash_strings(values: Any) -> np.ndarray:
    """DuckDB's 64-bit ``hash()`` of each string (uint64, order kept): the same function the
    store's id index uses."""
    import duckdb

    if isinstance(values, pd.Series):
        values = pa.array(
            values.astype(str) if values.dtype == object else values, from_pandas=True
        )
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        arr = values.cast(pa.string())
    else:
        arr = pa.array(
            np.asarray(
                list(values) if not isinstance(values, np.ndarray) else values, dtype=object
            ),
            type=pa.string(),
            from_pandas=True,
        )
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        con.register("t", pa.table({"s": arr}))
        out = con.sql("SELECT hash(s) AS h FROM t").fetchnumpy()["h"]
    finally:
        con.close()
    return np.asarray(out, dtype=np.uint64)


@dataclass
class FetchStats:
    """What the last :meth:`PartitionedEmbeddings.fetch` read."""

    files: int = 0
    files_total: int = 0
    row_groups: int = 0
    row_groups_total: int = 0
    rows_read: int = 0
    rows_wanted: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class PartitionedEmbeddings(EmbeddingSource):
    """:class:`~activepam.core.embeddings.EmbeddingSource` over a store folder (see module doc)."""

    def __init__(self, root: PathLike) -> None:
        self.path = Path(root)
        self.files = store_files(self.path)
        self._where: dict[tuple[str, str], list[Path]] = {(d, mo): [] for d, mo, _ in self.files}
        for d, mo, f in self.files:
            self._where[(d, mo)].append(f)
        self._index: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._rg: dict[tuple[Path, str], tuple[np.ndarray, np.ndarray, int]] = {}
        self.last = FetchStats()
        self._lock = threading.Lock()

    # ids ------------------------------------------------------------------
    def _id_index(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted 64-bit hashes of ``key``, file number of each): one DuckDB pass over the
        ``key`` column only; 12 bytes per row instead of the id strings (a hash collision can
        only make :meth:`available` say yes wrongly, ~n^2 / 2^64; fetch compares real ids)."""
        import duckdb

        if key not in ("segment_id", "recording_id"):
            raise EmbeddingError(f"{self.path}: no {key} to match units on")
        if key not in self._index:
            con = duckdb.connect()
            try:
                con.register(
                    "files",
                    pa.table(
                        {
                            "name": [str(f) for _, _, f in self.files],
                            "fno": np.arange(len(self.files), dtype=np.int32),
                        }
                    ),
                )
                names = (
                    "["
                    + ", ".join("'" + str(f).replace("'", "''") + "'" for _, _, f in self.files)
                    + "]"
                )
                got = con.sql(
                    f'SELECT hash("{key}") AS h, fno FROM read_parquet({names}, '
                    "filename = true) JOIN files ON filename = name"
                ).fetchnumpy()
            finally:
                con.close()
            h = np.asarray(got["h"], dtype=np.uint64)
            fno = np.asarray(got["fno"], dtype=np.int32)
            order = np.argsort(h, kind="stable")
            self._index[key] = (h[order], fno[order])
        return self._index[key]

    def _lookup(self, ids: Any, key: str) -> np.ndarray:
        """Position in the sorted hash index of each id (-1 when absent)."""
        h_all, _ = self._id_index(key)
        h = hash_strings(ids)
        if not len(h_all):
            return np.full(len(h), -1, dtype=np.int64)
        order = np.argsort(h)  # sorted needles: a cache-friendly merge, ~5x faster at 10M
        pos = np.empty(len(h), dtype=np.int64)
        pos[order] = np.searchsorted(h_all, h[order])
        pos_c = np.minimum(pos, len(h_all) - 1)
        return np.where(h_all[pos_c] == h, pos_c, -1)

    def available(self, ids: pd.Series, key: str) -> np.ndarray:
        if isinstance(ids, pd.Series) and isinstance(ids.dtype, pd.CategoricalDtype):
            hit = self._lookup(ids.cat.categories.astype(str).to_numpy(dtype=object), key) >= 0
            codes = ids.cat.codes.to_numpy()
            return np.where(codes >= 0, hit[np.maximum(codes, 0)], False)
        return self._lookup(ids, key) >= 0

    # row groups -------------------------------------------------------------
    def _ranges(self, f: Path, key: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Per row group min/max of ``key`` (object arrays) and the column index of key."""
        if (f, key) not in self._rg:
            md = pq.ParquetFile(f).metadata
            j = md.schema.names.index(key) if key in md.schema.names else -1
            if j < 0:
                raise EmbeddingError(f"{f}: missing column {key!r}")
            lo = np.empty(md.num_row_groups, dtype=object)
            hi = np.empty(md.num_row_groups, dtype=object)
            for r in range(md.num_row_groups):
                st = md.row_group(r).column(j).statistics
                if st is None or not st.has_min_max:
                    lo[r], hi[r] = "", "\U0010ffff"
                else:
                    lo[r], hi[r] = st.min, st.max
            self._rg[(f, key)] = (lo, hi, j)
        return self._rg[(f, key)]

    def _read_file(self, f: Path, wanted: np.ndarray, key: str) -> pa.Table:
        """Rows of ``wanted`` (sorted unique ids) in file ``f``: only row groups whose min/max
        can hold one of them are read."""
        lo, hi, _ = self._ranges(f, key)
        first = np.searchsorted(wanted, lo.astype(str), side="left")
        last = np.searchsorted(wanted, hi.astype(str), side="right")
        rgs = np.flatnonzero(last > first).tolist()
        with self._lock:
            self.last.row_groups_total += len(lo)
        if not rgs:
            return pa.table(
                {
                    key: pa.array([], pa.string()),
                    "embedding": pa.array([], pa.list_(pa.float32(), 1)),
                }
            )
        tab = pq.ParquetFile(f).read_row_groups(rgs, columns=[key, "embedding"], use_threads=False)
        with self._lock:
            self.last.row_groups += len(rgs)
            self.last.rows_read += tab.num_rows
        keep = pc.is_in(tab[key], value_set=pa.array(wanted, pa.string()))
        return tab.filter(keep)

    def fetch(
        self, ids: Sequence[str], key: str, partitions: Iterable[tuple[Any, str]] | None = None
    ) -> np.ndarray:
        """float32 embeddings of ``ids`` (mean over segments for recording ids; NaN rows for
        ids without one). ``partitions``: optional (device_id, YYYY-MM) per id, so only those
        files are opened (no id scan); without it the file of each id comes from the id index
        built by :meth:`available`."""
        ids = [str(i) for i in ids]
        self.last = FetchStats(files_total=len(self.files), rows_wanted=len(ids))
        by_file: dict[Path, list[str]] = defaultdict(list)
        if partitions is not None:
            for i, (dev, mo) in zip(ids, partitions):
                where = (_partition_value(dev, UNKNOWN_DEVICE), _partition_value(mo, UNKNOWN_MONTH))
                for f in self._where.get(where, []):
                    by_file[f].append(i)
        else:
            _, fno = self._id_index(key)
            pos = self._lookup(ids, key)
            if key == "recording_id":  # a recording's segments may sit in several files
                h_all, _ = self._id_index(key)
                h = hash_strings(ids)
                lo, hi = np.searchsorted(h_all, h, "left"), np.searchsorted(h_all, h, "right")
                for i, a, b in zip(ids, lo, hi):
                    for fi in np.unique(fno[a:b]):
                        by_file[self.files[int(fi)][2]].append(i)
            else:
                for i, p in zip(ids, pos):
                    if p >= 0:
                        by_file[self.files[int(fno[p])][2]].append(i)
        from concurrent.futures import ThreadPoolExecutor

        for f in by_file:  # footers first (cached), then the row groups in parallel
            self._ranges(f, key)
        self.last.files = len(by_file)
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            tabs = list(
                pool.map(
                    lambda fw: self._read_file(fw[0], np.unique(np.asarray(fw[1], dtype=str)), key),
                    by_file.items(),
                )
            )
        parts = [t for t in tabs if t.num_rows]
        if not parts:
            return np.full((len(ids), EMBEDDING_DIM), np.nan, dtype=np.float32)
        keys = np.concatenate([np.asarray(t[key].to_pylist(), dtype=object) for t in parts])
        matrix = np.vstack([embedding_matrix(t["embedding"], self.path) for t in parts])
        log.info(
            "store fetch: %d ids from %d of %d files, %d of %d row groups (%d rows read)",
            len(ids),
            self.last.files,
            self.last.files_total,
            self.last.row_groups,
            self.last.row_groups_total,
            self.last.rows_read,
        )
        return group_mean(keys, matrix, ids)
