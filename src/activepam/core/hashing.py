"""Content digests of Parquet tables, to prove that two runs produced the same results.

Two runs (e.g. local and SLURM) write Parquet files that differ byte-wise (writer metadata,
row-group layout, row order of a parallel gather) while holding the same data. A *table digest*
hashes the contents only:

* columns are taken in name order and typed canonically (dictionary columns decoded,
  ``large_string`` as ``string``, timestamps as integers in their unit plus the time zone);
* rows are sorted by key columns (given, or every scalar column in name order);
* columns whose values depend on when or where the run happened are dropped: names matching
  :data:`RUN_COLUMNS` (no pipeline table should have one; the digest lists what it ignored)
  plus any given ``ignore`` patterns (``fnmatch`` style).

``python -m activepam.core.hashing A B`` (or ``activepam digest A B``) compares every Parquet file
under
two results folders and exits non-zero naming the files that differ.

Audio files are identified by a :class:`FileKey` (:func:`file_key`): size, ``mtime_ns`` and the
SHA-256 of the whole file. The hash is the identity (copies and moves keep it, any change of
content changes it); size and mtime only let a caller skip re-hashing a file whose stat is
unchanged since the key was recorded (:func:`file_key` with ``known=``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: column-name patterns that record run time/place rather than results (ignored by default)
RUN_COLUMNS: tuple[str, ...] = (
    "created_at",
    "processed_at",
    "written_at",
    "run_id",
    "run_started*",
    "run_finished*",
    "elapsed_s",
    "wall_s",
    "cpu_s",
    "hostname",
    "host",
)


@dataclass(frozen=True)
class TableDigest:
    """Digest of one table's contents and what went into it."""

    digest: str
    rows: int
    columns: tuple[str, ...]
    ignored: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "rows": self.rows,
            "columns": list(self.columns),
            "ignored": list(self.ignored),
        }


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _canonical_type(t: pa.DataType) -> pa.DataType:
    """Type used for hashing: physical variants of the same logical type are merged."""
    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t):
        return pa.list_(_canonical_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_canonical_type(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_canonical_type(t.value_type), t.list_size)
    return t


def _is_sortable(t: pa.DataType) -> bool:
    return not (
        pa.types.is_nested(t) or pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type)
    )


def _round(arr: pa.Array, decimals: int | None) -> pa.Array:
    if decimals is not None and pa.types.is_floating(arr.type):
        return pc.round(arr, ndigits=decimals)
    return arr


def _hash_array(h: hashlib._Hash, arr: pa.Array, decimals: int | None) -> None:
    """Feed one (combined, canonically typed) column into ``h``."""
    t = arr.type
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    h.update(np.packbits(valid).tobytes())
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
        h.update(np.asarray(lengths, dtype=np.int64).tobytes())
        # flatten() skips the values of null lists, so both layouts hash alike
        _hash_array(h, arr.flatten(), decimals)
        return
    if pa.types.is_string(t) or pa.types.is_binary(t):
        for value in arr.to_pylist():
            raw = b"" if value is None else (value.encode() if isinstance(value, str) else value)
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
        return
    if (
        pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_duration(t)
    ):
        arr = arr.cast(pa.int64() if t.bit_width == 64 else pa.int32())
    arr = _round(arr, decimals)
    if pa.types.is_boolean(arr.type):
        values = np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        filler = pa.scalar(0, type=arr.type)
        values = arr.fill_null(filler).to_numpy(zero_copy_only=False)
        if pa.types.is_floating(arr.type):
            values = np.where(values == 0, 0.0, values).astype(values.dtype)  # -0.0 == 0.0
    else:
        # decimals, structs, anything rare: hash its canonical Python text
        for value in arr.to_pylist():
            h.update(repr(value).encode())
            h.update(b"\x00")
        return
    h.update(np.ascontiguousarray(values).tobytes())


def canonical_table(
    table: pa.Table, ignore: Sequence[str] = (), keys: Sequence[str] | None = None
) -> tuple[pa.Table, tuple[str, ...]]:
    """Drop ignored columns, decode dictionaries, order columns by name and rows by ``keys``.

    Returns the canonical table and the names of the dropped columns.
    """
    patterns = (*RUN_COLUMNS, *ignore)
    dropped = tuple(c for c in table.column_names if _matches(c, patterns))
    names = sorted(c for c in table.column_names if c not in dropped)
    arrays = []
    for name in names:
        col = table.column(name)
        arrays.append(col.cast(_canonical_type(col.type)) if col.num_chunks else col)
    out = pa.table(arrays, names=names) if names else pa.table({})
    if keys is None:
        keys = [n for n in names if _is_sortable(out.schema.field(n).type)]
    else:
        missing = [k for k in keys if k not in names]
        if missing:
            raise KeyError(f"key column(s) not in table: {', '.join(missing)}")
    if keys and out.num_rows:
        out = out.sort_by([(k, "ascending") for k in keys])
    return out, dropped


def digest_table(
    table: pa.Table,
    ignore: Sequence[str] = (),
    keys: Sequence[str] | None = None,
    float_decimals: int | None = None,
) -> TableDigest:
    """Content digest of an Arrow table (see the module docstring)."""
    canon, dropped = canonical_table(table, ignore, keys)
    h = hashlib.sha256()
    h.update(f"rows={canon.num_rows}\n".encode())
    for name in canon.column_names:
        col = canon.column(name)
        h.update(f"{name}:{col.type}\n".encode())
        _hash_array(
            h, col.combine_chunks() if col.num_chunks != 1 else col.chunk(0), float_decimals
        )
    return TableDigest(h.hexdigest(), canon.num_rows, tuple(canon.column_names), dropped)


def table_digest(
    path: str | Path,
    ignore: Sequence[str] = (),
    keys: Sequence[str] | None = None,
    float_decimals: int | None = None,
) -> TableDigest:
    """Content digest of the Parquet file at ``path``, independent of writer and row order."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise OSError(f"{path}: cannot read Parquet: {exc}") from exc
    return digest_table(table, ignore, keys, float_decimals)


def folder_digests(
    root: str | Path,
    pattern: str = "**/*.parquet",
    exclude: Sequence[str] = (),
    ignore: Sequence[str] = (),
    float_decimals: int | None = None,
) -> dict[str, TableDigest]:
    """Digest of every Parquet file under ``root`` (keys: POSIX paths relative to ``root``)."""
    root = Path(root)
    out: dict[str, TableDigest] = {}
    for path in sorted(root.glob(pattern)):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not _matches(rel, exclude):
            out[rel] = table_digest(path, ignore, float_decimals=float_decimals)
    return out


def compare_folders(
    a: str | Path,
    b: str | Path,
    pattern: str = "**/*.parquet",
    exclude: Sequence[str] = (),
    ignore: Sequence[str] = (),
    require: Sequence[str] = (),
    float_decimals: int | None = None,
) -> list[str]:
    """Differences between the Parquet contents of two folders, one line each (empty = same)."""
    da = folder_digests(a, pattern, exclude, ignore, float_decimals)
    db = folder_digests(b, pattern, exclude, ignore, float_decimals)
    problems = [f"{r}: required file missing in {a}" for r in require if r not in da]
    problems += [f"{r}: required file missing in {b}" for r in require if r not in db]
    for rel in sorted(set(da) | set(db)):
        if rel not in da or rel not in db:
            problems.append(f"{rel}: only in {b if rel not in da else a}")
        elif da[rel].digest != db[rel].digest:
            problems.append(
                f"{rel}: contents differ ({da[rel].rows} vs {db[rel].rows} rows, "
                f"{da[rel].digest[:12]} vs {db[rel].digest[:12]})"
            )
    return problems


# --------------------------------------------------------------------------- audio file keys


@dataclass(frozen=True)
class FileKey:
    """Content key of one file: ``sha256`` (the identity) plus the stat it was computed at."""

    size: int
    mtime_ns: int
    sha256: str

    def same_stat(self, st: os.stat_result) -> bool:
        """True when ``st`` has this key's size and mtime (the hash may be reused)."""
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileKey:
        return cls(int(d["size"]), int(d["mtime_ns"]), str(d["sha256"]))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the whole file (streamed; raises ``OSError`` as ``open`` does)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


#: a file modified less than this before it was hashed may change again within the same mtime
#: tick (coarse file-system clocks): its key gets ``mtime_ns = -1`` and is never trusted
RACY_NS = 2_000_000_000


def file_key(path: str | os.PathLike[str], known: FileKey | None = None) -> FileKey:
    """:class:`FileKey` of ``path``; the hash of ``known`` is reused when size and mtime_ns are
    unchanged (a rewrite that keeps both is the one change this does not notice; files hashed
    within :data:`RACY_NS` of their last change are always re-hashed, as git does)."""
    st = os.stat(path)
    if known is not None and known.same_stat(st):
        return known
    sha = file_sha256(path)
    st2 = os.stat(path)
    if st2.st_size != st.st_size or st2.st_mtime_ns != st.st_mtime_ns:
        sha = file_sha256(path)  # changed while being read: hash the settled content
        st2 = os.stat(path)
    racy = time.time_ns() - st2.st_mtime_ns < RACY_NS
    return FileKey(int(st2.st_size), -1 if racy else int(st2.st_mtime_ns), sha)


# --------------------------------------------------------------------------- command line


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="one Parquet file or folder: print digests; two folders: compare them",
    )
    p.add_argument("--pattern", default="**/*.parquet", help="files compared under a folder")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="relative-path glob of files to skip (repeatable)",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        help="column-name glob to leave out of the digest (repeatable)",
    )
    p.add_argument(
        "--require",
        action="append",
        default=[],
        help="relative path that must exist in both folders (repeatable)",
    )
    p.add_argument(
        "--float-decimals",
        type=int,
        default=None,
        help="round floats to this many decimals before hashing (default: exact)",
    )


def _run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths
    for p in paths:
        if not p.exists():
            print(f"activepam digest: {p}: not found", file=sys.stderr)
            return 2
    if len(paths) == 2 and all(p.is_dir() for p in paths):
        problems = compare_folders(
            paths[0],
            paths[1],
            args.pattern,
            args.exclude,
            args.ignore,
            args.require,
            args.float_decimals,
        )
        n = len(
            folder_digests(paths[0], args.pattern, args.exclude, args.ignore, args.float_decimals)
        )
        for line in problems:
            print(f"DIFF {line}")
        print(
            f"{'DIFFERENT' if problems else 'SAME'}: {n} Parquet file(s) under {paths[0]} "
            f"vs {paths[1]}",
            file=sys.stderr,
        )
        return 1 if problems else 0
    out: dict[str, object] = {}
    for p in paths:
        if p.is_dir():
            for rel, d in folder_digests(
                p, args.pattern, args.exclude, args.ignore, args.float_decimals
            ).items():
                out[str(p / rel)] = d.to_dict()
        else:
            out[str(p)] = table_digest(p, args.ignore, float_decimals=args.float_decimals).to_dict()
    print(json.dumps(out, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam digest``."""
    p = subparsers.add_parser(
        "digest",
        help="content digests of Parquet files; compare runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activepam.core.hashing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
