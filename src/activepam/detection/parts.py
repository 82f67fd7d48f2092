"""Part files of the detection cache: one recording's three Parquet parts
``<parts_dir>/<recording_id>.{embeddings,predictions,segments}.parquet`` (segments last = the done
marker, holding the content key of the audio it was computed from)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from activepam.core.hashing import FileKey
from activepam.detection.tables import CONTENT_KEY, PART_KINDS


def part_path(parts_dir: Path, recording_id: str, kind: str) -> Path:
    return parts_dir / f"{recording_id}.{kind}.parquet"


def recorded_key(parts_dir: Path, recording_id: str) -> FileKey | None:
    """Content key stored in the recording's segments part (None: no part, or no key)."""
    path = part_path(parts_dir, recording_id, "segments")
    if not path.is_file():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
        return FileKey.from_dict(json.loads(meta[CONTENT_KEY])) if CONTENT_KEY in meta else None
    except (OSError, pa.ArrowException, ValueError, KeyError, TypeError):
        return None  # unreadable or foreign part: recompute


def is_finished(parts_dir: Path, recording_id: str, key: FileKey | None = None) -> bool:
    """A recording is finished when all three part files exist and, when ``key`` is given,
    the segments part was computed from content with ``key``'s SHA-256."""
    if not all(part_path(parts_dir, recording_id, k).is_file() for k in PART_KINDS):
        return False
    if key is None:
        return True
    done = recorded_key(parts_dir, recording_id)
    return done is not None and done.sha256 == key.sha256


def remove_stale_tmp(parts_dir: Path, recording_id: str) -> None:
    """Drop temporary files a killed run left for this recording (and only this one)."""
    for kind in PART_KINDS:
        for tmp in parts_dir.glob(f".{glob.escape(recording_id)}.{kind}.parquet.*.tmp"):
            tmp.unlink(missing_ok=True)
