"""Detection inputs: the recordings to process (ids from the inventory's registry rule for plain
paths, :func:`recordings_for_paths`), audio discovery (:func:`find_audio`) and the recording
metadata carried into segments.parquet."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from activepam.core.hashing import FileKey
from activepam.core.io import AUDIO_EXTENSIONS
from activepam.detection.filenames import IdRegistry, duplicate_reason, file_keys, parse_filename
from activepam.detection.probe import discover_audio
from activepam.detection.tables import META_SCHEMA, STAGE, DetectError


@dataclass(frozen=True)
class Recording:
    """One file to process (``path`` as stored in the outputs)."""

    recording_id: str
    path: str
    key: FileKey | None = None  # content key (computed when None)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sanitize_id(text: str) -> str:
    """Filesystem-safe id ``[A-Za-z0-9_.-]`` (never empty, never starting with a dot)."""
    out = _SAFE.sub("_", text).strip("_") or "recording"
    return "_" + out if out.startswith(".") else out


def recordings_for_paths(
    paths: Sequence[str | os.PathLike[str]],
    registry: IdRegistry | None = None,
    threads: int = 4,
) -> tuple[list[Recording], list[dict]]:
    """Recordings for plain file paths and the quarantine rows of the others.

    The same file given twice (also through a symlink) is used once; ids follow
    :meth:`activepam.detection.filenames.IdRegistry.assign` with base id = sanitized stem
    (``registry`` is updated in place; a fresh one when None); an unreadable file and a true
    duplicate (same SHA-256 as another file) become quarantine rows.
    """
    unique: dict[str, str] = {}  # real path -> path as given (the same file once)
    for p in paths:
        unique.setdefault(os.path.realpath(p), str(p))
    given = list(unique.values())
    registry = IdRegistry() if registry is None else registry
    keys, errors = file_keys(given, registry, threads)
    quarantine = [{"path": p, "stage": STAGE, "reason": r} for p, r in errors.items()]
    ids, duplicates = registry.assign(
        [
            (
                p,
                sanitize_id(Path(p).stem),
                keys[p],
                parse_filename(Path(p).stem).start_time is not None,
            )
            for p in given
            if p in keys
        ]
    )
    quarantine += [
        {"path": p, "stage": STAGE, "reason": duplicate_reason(same, ids[same])}
        for p, same in duplicates
    ]
    recs = [Recording(ids[p], p, keys[p]) for p in given if p in ids]
    return recs, quarantine


def recordings_from_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Recording]:
    """Recordings for plain file paths (see :func:`recordings_for_paths`; bad files and
    duplicates left out)."""
    return recordings_for_paths(paths)[0]


def find_audio(
    paths: Sequence[str | os.PathLike[str]], extensions: Sequence[str] = AUDIO_EXTENSIONS
) -> tuple[list[str], list[dict]]:
    """Audio files under ``paths`` (:func:`activepam.detection.probe.discover_audio`, the
    inventory's discovery) and the quarantine rows of what it reports (missing paths, symlink loops,
    dangling links, unsupported audio formats)."""
    found = discover_audio(paths, extensions, stage=STAGE, missing="report")
    return [f.path for f in found.files], found.skipped


def normalise_metadata(meta: pd.DataFrame | None) -> pa.Table:
    """Metadata table with exactly :data:`META_SCHEMA` (missing columns null)."""
    if meta is None or len(meta) == 0:
        return META_SCHEMA.empty_table()
    if "recording_id" not in meta.columns:
        raise DetectError("metadata table needs a recording_id column")
    cols = {}
    for f in META_SCHEMA:
        if f.name in meta.columns:
            s = meta[f.name]
            if f.name == "start_time":
                s = pd.to_datetime(s, utc=True)
            cols[f.name] = pa.array(s, from_pandas=True).cast(f.type, safe=False)
        else:
            cols[f.name] = pa.nulls(len(meta), f.type)
    table = pa.table(cols, schema=META_SCHEMA)
    ids = table.column("recording_id").to_pandas()
    if ids.duplicated().any():
        raise DetectError(f"metadata has duplicate recording_id {ids[ids.duplicated()].iloc[0]!r}")
    return table
