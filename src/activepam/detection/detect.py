"""BirdNET V2.4 detection: recordings -> segments, top-k predictions and embeddings.

Per recording the audio is streamed (bounded memory, also for 24 h files), mono-mixed and
resampled to 48 kHz with soxr, cut into 3 s windows exactly like BirdNET-Analyzer's
``split_signal`` (hop = 3 s - overlap; the last chunk is kept when at least 1 s long and
zero-padded; nothing when the file is shorter than 1 s), batched (batches may span
recordings, so the model always runs full batches) and passed through the model once per
batch. A background thread decodes and resamples ahead while the interpreter runs.

Results of each recording are written as three Parquet part files

    <parts_dir>/<params-hash>/<recording_id>.{embeddings,predictions,segments}.parquet

atomically, segments LAST: a recording is finished only when all three exist. A killed
run therefore leaves only whole part files (and possibly stale ``.*.tmp`` files, removed on
the next run); re-running skips finished recordings and never duplicates rows. The
params-hash covers everything that changes the numbers (model, overlap, sensitivity, top-k,
species filter) but not threads or batch size. The segments part records the content key of
the audio it was computed from (size, mtime_ns, SHA-256 in its Parquet metadata): a recording
whose file content changed (same path, new audio) is detected again; a file that was only
touched or moved is not (its hash is unchanged). Output paths come from the current run, not
from the parts.

Plain paths get their recording ids from the same registry rule as the inventory
(``out_dir/recording_ids.csv``, see CONTRACTS.md): base id = sanitized file stem; true
duplicates (same content) are reported in the quarantine table and processed once.
Non-finite samples (NaN/inf) are replaced by 0, counted per recording (segments column
``nonfinite_samples``) and logged as a warning.

Finally the parts are gathered with DuckDB into ``out_dir/{segments,predictions,
embeddings}.parquet`` (see CONTRACTS.md; segments joined with the recording metadata) and
``out_dir/quarantine.csv`` (path, stage, reason) lists the files that could not be processed.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from activepam.detection import birdnet as bn
from activepam.core.argtypes import float_range, int_range, positive_int
from activepam.core.hashing import FileKey, file_key
from activepam.detection.inventory import (
    INVENTORY_SCHEMA,
    REGISTRY_NAME,
    IdRegistry,
    discover_audio,
    duplicate_reason,
    file_keys,
    os_reason,
    parse_filename,
)
from activepam.core.io import (
    AUDIO_EXTENSIONS,
    StageIOError,
    atomic_path,
    iter_audio_blocks,
    write_csv,
    write_parquet,
)
from activepam.core.uncertainty import segment_uncertainty, top_k

log = logging.getLogger(__name__)

STAGE = "detect"
#: bump when the part-file layout or its computation changes (invalidates cached parts)
PARTS_VERSION = 2
PART_KINDS = ("embeddings", "predictions", "segments")  # segments last = done marker
META_COLUMNS = ("device_id", "site", "country", "habitat", "lat", "lon", "start_time")
QUARANTINE_COLUMNS = ["path", "stage", "reason"]
_UTC_US = pa.timestamp("us", tz="UTC")

SEGMENT_PART_SCHEMA = pa.schema([
    ("segment_id", pa.string()),
    ("recording_id", pa.string()),
    ("path", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("top1_species", pa.string()),
    ("top1_confidence", pa.float64()),
    ("top2_confidence", pa.float64()),
    ("margin", pa.float64()),
    ("max_binary_entropy", pa.float64()),
    ("mean_binary_entropy", pa.float64()),
    ("nonfinite_samples", pa.int64()),
    ("species_set", pa.string()),
])
#: Parquet metadata key of the content key a segments part was computed from
CONTENT_KEY = b"activepam.content_key"
# recording metadata carried into segments.parquet: the inventory's own column types
META_SCHEMA = pa.schema([INVENTORY_SCHEMA.field(c) for c in ("recording_id", *META_COLUMNS)])
SEGMENTS_SCHEMA = pa.schema(list(SEGMENT_PART_SCHEMA)
                            + [META_SCHEMA.field(c) for c in META_COLUMNS]
                            + [pa.field("segment_time", _UTC_US)])
PREDICTIONS_SCHEMA = pa.schema([
    ("segment_id", pa.string()),
    ("recording_id", pa.string()),
    ("path", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("rank", pa.int32()),
    ("species", pa.string()),
    ("confidence", pa.float32()),
])
EMBEDDINGS_SCHEMA = pa.schema([
    ("segment_id", pa.string()),
    ("recording_id", pa.string()),
    ("start_s", pa.float64()),
    ("embedding", pa.list_(pa.float32(), bn.EMBEDDING_DIM)),
])
OUTPUT_SCHEMAS = {"segments": SEGMENTS_SCHEMA, "predictions": PREDICTIONS_SCHEMA,
                  "embeddings": EMBEDDINGS_SCHEMA}


class DetectError(RuntimeError):
    """Bad detection input or parameters (message names the file or the parameter)."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SpeciesFilter:
    """Which labels are scored: ``none``, a species ``list`` file (or ``labels``: the project's
    label set), or ``location``.

    ``location`` uses BirdNET's meta-model with a fixed ``lat``/``lon``/``week`` when given,
    otherwise each recording's own lat/lon (metadata) and the week of its start time (-1 = all
    year when the start time is unknown). A recording without a location is scored unfiltered
    (logged as a warning). Cached parts assume a recording's location and date do not change.
    """

    mode: str = "none"
    species_list: str | None = None
    #: list mode from labels (the project's label set) instead of a species_list file
    labels: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    week: int = -1
    threshold: float = 0.03
    _cache: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict, compare=False,
                                                     repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("none", "list", "location"):
            raise DetectError(f"species_filter must be none, list or location, got {self.mode!r}")
        if self.mode == "list" and not self.species_list and not self.labels:
            raise DetectError("species_filter is 'list' but no species_list file was given")
        if (self.lat is None) != (self.lon is None):
            raise DetectError("a fixed location needs both lat and lon")

    def signature(self) -> dict[str, Any]:
        """What identifies the filter's effect (for the params-hash)."""
        if self.mode == "none":
            return {"mode": "none"}
        if self.mode == "list":
            return {"mode": "list", "indices": bn.indices_digest(self.indices())}
        return {"mode": "location", "threshold": self.threshold, "lat": self.lat,
                "lon": self.lon, "week": self.week if self.lat is not None else None}

    def indices(self, lat: float | None = None, lon: float | None = None,
                week: int = -1) -> np.ndarray:
        """Kept label indices (cached); location arguments are used in per-recording mode."""
        if self.mode == "none":
            key: tuple[Any, ...] = ("none",)
        elif self.mode == "list":
            key = ("list",)
        elif self.lat is not None:
            key = ("loc", self.lat, self.lon, self.week)
        elif lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
            key = ("none",)
        else:
            key = ("loc", float(lat), float(lon), int(week))
        if key not in self._cache:
            if key[0] == "none":
                self._cache[key] = np.arange(bn.N_SPECIES, dtype=np.int64)
            elif key[0] == "list" and self.labels:
                index = {label: i for i, label in enumerate(bn.load_labels())}
                unknown = [s for s in self.labels if s not in index]
                if unknown:
                    raise DetectError(f"label set: {unknown[0]!r} is not a BirdNET V2.4 label "
                                      f"({len(unknown)} of {len(self.labels)} unknown)")
                self._cache[key] = np.array(sorted({index[s] for s in self.labels}),
                                            dtype=np.int64)
            elif key[0] == "list":
                self._cache[key] = bn.species_filter_indices(species_list=self.species_list)
            else:
                self._cache[key] = bn.species_filter_indices(lat=key[1], lon=key[2], week=key[3],
                                                             threshold=self.threshold)
        return self._cache[key]

    def describe(self, lat: float | None = None, lon: float | None = None,
                 week: int = -1) -> str:
        """Which species set scores a recording (segments column ``species_set``)."""
        n = len(self.indices(lat, lon, week))
        if n == bn.N_SPECIES:
            return f"all ({n})"
        if self.mode == "list":
            return f"{'label set' if self.labels else 'species list'} ({n})"
        return f"location week {week if self.lat is None else self.week} ({n})"


#: largest species set whose every score is kept in predictions.parquet (beyond top_k), so
#: that the label set's full probability vector is known for every segment
FULL_VECTOR_MAX = 300


@dataclass(frozen=True)
class DetectParams:
    """Parameters that change detection results (threads/batch size do not)."""

    overlap_s: float = 0.0
    sensitivity: float = 1.0
    top_k: int = 10
    species_filter: SpeciesFilter = field(default_factory=SpeciesFilter)

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_s <= bn.WINDOW_S - 0.1:
            raise DetectError(f"overlap_s must be in [0, {bn.WINDOW_S - 0.1:.1f}] (hop >= 0.1 s "
                              f"keeps segment ids unique), got {self.overlap_s}")
        try:  # BirdNET's user sensitivity (higher = more detections; see birdnet.sigmoid_slope)
            bn.check_sensitivity(self.sensitivity, "detect.sensitivity")
        except ValueError as exc:
            raise DetectError(str(exc)) from None
        if not 1 <= self.top_k <= bn.N_SPECIES:
            raise DetectError(f"top_k must be in [1, {bn.N_SPECIES}], got {self.top_k}")

    @property
    def hop_samples(self) -> int:
        return int(bn.SAMPLE_RATE * (bn.WINDOW_S - self.overlap_s))

    def digest(self) -> str:
        """Short hash naming the parts folder."""
        spec = {"version": PARTS_VERSION, "model": bn.MODEL_NAME, "overlap_s": self.overlap_s,
                # the sigmoid slope applied (issue 10: the user value is inverted as in
                # BirdNET), so parts are reused exactly when the numbers are the same
                "sensitivity": bn.sigmoid_slope(self.sensitivity), "top_k": self.top_k,
                "min_len_s": bn.MIN_LEN_S, "filter": self.species_filter.signature()}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- windowing


def window_starts(n_samples: int, hop: int, size: int = bn.WINDOW_SAMPLES,
                  min_len: int = int(bn.MIN_LEN_S * bn.SAMPLE_RATE)) -> np.ndarray:
    """Start samples of BirdNET-Analyzer's windows for a signal of ``n_samples``.

    Windows start every ``hop`` samples; the last one may run past the end (zero-padded) and is
    kept when at least ``min_len`` samples remain; a signal shorter than ``min_len`` has none.
    """
    if n_samples < min_len:
        return np.zeros(0, dtype=np.int64)
    if n_samples <= size:
        return np.zeros(1, dtype=np.int64)
    last = -(-(n_samples - size) // hop) * hop  # first start whose window reaches the end
    if n_samples - last < min_len:
        last -= hop
    return np.arange(0, last + 1, hop, dtype=np.int64)


class Windower:
    """Cut a stream of sample blocks into windows identical to :func:`window_starts`."""

    def __init__(self, hop: int, size: int = bn.WINDOW_SAMPLES,
                 min_len: int = int(bn.MIN_LEN_S * bn.SAMPLE_RATE)) -> None:
        self.hop, self.size, self.min_len = hop, size, min_len
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._next = 0  # next window start
        self.n_samples = 0

    def push(self, block: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Windows that are complete after ``block``: ``(start_sample, samples)``."""
        self._buf = np.concatenate([self._buf, block]) if self._buf.size else block
        self.n_samples += len(block)
        while self._next + self.size <= self.n_samples:
            off = self._next - self._buf_start
            yield self._next, self._buf[off:off + self.size]
            self._next += self.hop
        drop = min(self._next - self._buf_start, len(self._buf))
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        """The last, zero-padded window when BirdNET would keep it."""
        starts = window_starts(self.n_samples, self.hop, self.size, self.min_len)
        if starts.size and starts[-1] >= self._next:
            off = int(starts[-1]) - self._buf_start
            win = np.zeros(self.size, dtype=np.float32)
            tail = self._buf[off:off + self.size]
            win[:len(tail)] = tail
            yield int(starts[-1]), win


# --------------------------------------------------------------------------- inputs


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


def recordings_for_paths(paths: Sequence[str | os.PathLike[str]],
                         registry: IdRegistry | None = None, threads: int = 4,
                         ) -> tuple[list[Recording], list[dict]]:
    """Recordings for plain file paths and the quarantine rows of the others.

    The same file given twice (also through a symlink) is used once; ids follow
    :meth:`activepam.detection.inventory.IdRegistry.assign` with base id = sanitized stem (``registry``
    is updated in place; a fresh one when None); an unreadable file and a true duplicate
    (same SHA-256 as another file) become quarantine rows.
    """
    unique: dict[str, str] = {}  # real path -> path as given (the same file once)
    for p in paths:
        unique.setdefault(os.path.realpath(p), str(p))
    given = list(unique.values())
    registry = IdRegistry() if registry is None else registry
    keys, errors = file_keys(given, registry, threads)
    quarantine = [{"path": p, "stage": STAGE, "reason": r} for p, r in errors.items()]
    ids, duplicates = registry.assign([
        (p, sanitize_id(Path(p).stem), keys[p], parse_filename(Path(p).stem).start_time is not None)
        for p in given if p in keys])
    quarantine += [{"path": p, "stage": STAGE, "reason": duplicate_reason(same, ids[same])}
                   for p, same in duplicates]
    recs = [Recording(ids[p], p, keys[p]) for p in given if p in ids]
    return recs, quarantine


def recordings_from_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Recording]:
    """Recordings for plain file paths (see :func:`recordings_for_paths`; bad files and
    duplicates left out)."""
    return recordings_for_paths(paths)[0]


def find_audio(paths: Sequence[str | os.PathLike[str]],
               extensions: Sequence[str] = AUDIO_EXTENSIONS) -> tuple[list[str], list[dict]]:
    """Audio files under ``paths`` (:func:`activepam.detection.inventory.discover_audio`, the inventory's
    discovery) and the quarantine rows of what it reports (missing paths, symlink loops,
    dangling links, unsupported audio formats)."""
    found = discover_audio(paths, extensions, stage=STAGE, missing="report")
    return [f.path for f in found.files], found.skipped


def _normalise_metadata(meta: pd.DataFrame | None) -> pa.Table:
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


# --------------------------------------------------------------------------- part files


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


def _remove_stale_tmp(parts_dir: Path, recording_id: str) -> None:
    """Drop temporary files a killed run left for this recording (and only this one)."""
    for kind in PART_KINDS:
        for tmp in parts_dir.glob(f".{glob.escape(recording_id)}.{kind}.parquet.*.tmp"):
            tmp.unlink(missing_ok=True)


@dataclass
class _Accumulator:
    """Reduced model outputs of one recording, collected batch by batch."""

    recording: Recording
    labels: np.ndarray  # label strings of the kept species (object array)
    filtered: np.ndarray  # kept label indices
    species_set: str = ""  # which species set scored it (SpeciesFilter.describe)
    starts: list[np.ndarray] = field(default_factory=list)
    unc: list[dict[str, np.ndarray]] = field(default_factory=list)
    topk_idx: list[np.ndarray] = field(default_factory=list)
    topk_val: list[np.ndarray] = field(default_factory=list)
    emb: list[np.ndarray] = field(default_factory=list)

    def add(self, starts: np.ndarray, conf: np.ndarray, emb: np.ndarray, k: int) -> None:
        if len(self.filtered) != bn.N_SPECIES:
            conf = conf[:, self.filtered]
        self.starts.append(starts)
        self.unc.append(segment_uncertainty(conf))
        idx, val = top_k(conf, k)
        self.topk_idx.append(idx)
        self.topk_val.append(val)
        self.emb.append(emb)

    @property
    def n(self) -> int:
        return int(sum(len(s) for s in self.starts))

    def tables(self, duration_s: float, nonfinite: int = 0) -> dict[str, pa.Table]:
        """The three part tables."""
        rec = self.recording
        starts = np.concatenate(self.starts).astype(np.float64) / bn.SAMPLE_RATE
        ends = np.minimum(starts + bn.WINDOW_S, max(duration_s, 0.0))
        n = len(starts)
        seg_ids = np.array([f"{rec.recording_id}@{s:.1f}" for s in starts], dtype=object)
        if len(set(seg_ids)) != n:
            raise DetectError(f"{rec.path}: duplicate segment ids (overlap too large)")
        unc = {k: np.concatenate([u[k] for u in self.unc]) for k in self.unc[0]}
        rid = np.full(n, rec.recording_id, dtype=object)
        path = np.full(n, rec.path, dtype=object)
        segments = pa.table({
            "segment_id": seg_ids, "recording_id": rid, "path": path,
            "start_s": starts, "end_s": ends,
            "top1_species": self.labels[unc["top1_index"]],
            "top1_confidence": unc["top1_confidence"],
            "top2_confidence": unc["top2_confidence"],
            "margin": unc["margin"],
            "max_binary_entropy": unc["max_binary_entropy"],
            "mean_binary_entropy": unc["mean_binary_entropy"],
            "nonfinite_samples": np.full(n, int(nonfinite), dtype=np.int64),
            "species_set": np.full(n, self.species_set, dtype=object),
        }, schema=SEGMENT_PART_SCHEMA)
        idx = np.concatenate(self.topk_idx)
        val = np.concatenate(self.topk_val)
        k = idx.shape[1]
        rep = np.repeat(np.arange(n), k)
        predictions = pa.table({
            "segment_id": seg_ids[rep], "recording_id": rid[rep], "path": path[rep],
            "start_s": starts[rep], "end_s": ends[rep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "species": self.labels[idx.ravel()],
            "confidence": val.ravel().astype(np.float32),
        }, schema=PREDICTIONS_SCHEMA)
        emb = np.ascontiguousarray(np.concatenate(self.emb), dtype=np.float32)
        embeddings = pa.table({
            "segment_id": seg_ids, "recording_id": rid, "start_s": starts,
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()),
                                                           bn.EMBEDDING_DIM),
        }, schema=EMBEDDINGS_SCHEMA)
        return {"embeddings": embeddings, "predictions": predictions, "segments": segments}


def _write_parts(parts_dir: Path, recording_id: str, tables: dict[str, pa.Table],
                 key: FileKey | None = None) -> None:
    if key is not None:
        seg = tables["segments"]
        tables = dict(tables, segments=seg.replace_schema_metadata(
            {**(seg.schema.metadata or {}), CONTENT_KEY: json.dumps(key.to_dict()).encode()}))
    for kind in PART_KINDS:  # segments last: the done marker
        write_parquet(tables[kind], part_path(parts_dir, recording_id, kind), stage=STAGE)


# --------------------------------------------------------------------------- decoding thread


@dataclass
class _Batch:
    windows: np.ndarray  # [n, 144000]
    rec_idx: np.ndarray  # recording index of each window
    starts: np.ndarray  # start sample of each window


@dataclass
class _End:
    rec_idx: int
    duration_s: float
    error: str | None = None
    nonfinite: int = 0  # NaN/inf samples replaced by 0


class _Decoder(threading.Thread):
    """Decode, resample and window recordings into full batches ahead of the model.

    Batches may span recordings; a recording's end (or error) event is queued after the batch
    holding its last window. The queue is bounded so memory stays small.
    """

    def __init__(self, recordings: Sequence[Recording], hop: int, batch_size: int,
                 probe: bool = True, block_s: float = 30.0, maxsize: int = 4) -> None:
        super().__init__(name="activepam-decoder", daemon=True)
        self.recordings, self.hop, self.batch_size = recordings, hop, batch_size
        self.probe, self.block_s = probe, block_s
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self._buf = np.empty((batch_size, bn.WINDOW_SAMPLES), dtype=np.float32)
        self._rec = np.empty(batch_size, dtype=np.int64)
        self._start = np.empty(batch_size, dtype=np.int64)
        self._fill = 0
        self._pending: list[_End] = []

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise SystemExit  # consumer gone: end the thread quietly

    def _flush(self) -> None:
        if self._fill:
            n = self._fill
            self._put(_Batch(self._buf[:n].copy(), self._rec[:n].copy(), self._start[:n].copy()))
            self._fill = 0
        for ev in self._pending:
            self._put(ev)
        self._pending = []

    def _add(self, rec_idx: int, start: int, samples: np.ndarray) -> None:
        self._buf[self._fill] = samples
        self._rec[self._fill] = rec_idx
        self._start[self._fill] = start
        self._fill += 1
        if self._fill == self.batch_size:
            self._flush()

    def _decode(self, i: int, rec: Recording) -> None:
        if self.probe:
            from activepam.detection.inventory import probe_audio

            reason = probe_audio(rec.path).reason
            if reason:
                self._pending.append(_End(i, 0.0, reason))
                return
        win = Windower(self.hop)
        frames_s = 0.0
        nonfinite = 0
        try:
            for block in iter_audio_blocks(rec.path, bn.SAMPLE_RATE, self.block_s):
                if self.stop.is_set():
                    raise SystemExit
                finite = np.isfinite(block)
                if not finite.all():
                    nonfinite += int(block.size - np.count_nonzero(finite))
                    block = np.where(finite, block, np.float32(0.0))
                for start, samples in win.push(block):
                    self._add(i, start, samples)
                frames_s = win.n_samples / bn.SAMPLE_RATE
            for start, samples in win.finish():
                self._add(i, start, samples)
        except SystemExit:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure quarantines the file
            if isinstance(exc, OSError):
                self._pending.append(_End(i, frames_s, os_reason(exc, rec.path)))
                return
            msg = " ".join(str(exc).split()) or type(exc).__name__
            self._pending.append(_End(i, frames_s, f"decode failed after {frames_s:.1f} s: {msg}"))
            return
        duration = round(win.n_samples / bn.SAMPLE_RATE, 3)  # soxr may drop a sample or so
        err = None
        if win.n_samples == 0:
            err = "empty: no audio frames"
        elif win.n_samples < int(bn.MIN_LEN_S * bn.SAMPLE_RATE):
            err = (f"too short for a BirdNET window: {duration:.2f} s of audio "
                   f"(< {bn.MIN_LEN_S:.1f} s)")
        self._pending.append(_End(i, duration, err, nonfinite))

    def run(self) -> None:
        try:
            for i, rec in enumerate(self.recordings):
                self._decode(i, rec)
                if self._fill == 0:  # nothing buffered: report at once
                    self._flush()
            self._flush()
            self._put(None)
        except SystemExit:
            return
        except BaseException as exc:  # unexpected: hand it to the consumer
            try:
                self.queue.put(exc, timeout=5)
            except queue.Full:
                pass


# --------------------------------------------------------------------------- main entry


_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


def _as_recordings(inputs: pd.DataFrame | Sequence[str | os.PathLike[str]],
                   metadata: pd.DataFrame | None) -> tuple[list[Recording], pd.DataFrame | None]:
    if isinstance(inputs, pd.DataFrame):
        missing = {"recording_id", "path"} - set(inputs.columns)
        if missing:
            raise DetectError(f"inventory lacks column(s): {', '.join(sorted(missing))}")
        inv = inputs
        if "status" in inv.columns:
            bad = inv["status"].fillna("") != "ok"
            if bad.any():
                log.info("skipping %d inventory rows whose status is not ok", int(bad.sum()))
            inv = inv[~bad]
        if inv["recording_id"].duplicated().any():
            dup = inv.loc[inv["recording_id"].duplicated(), "recording_id"].iloc[0]
            raise DetectError(f"inventory has duplicate recording_id {dup!r}")
        for rid in inv["recording_id"]:
            if not _SAFE_ID.fullmatch(str(rid)) or str(rid).startswith("."):
                raise DetectError(f"unsafe recording_id {rid!r}: ids must match "
                                  "[A-Za-z0-9_.-]+ and not start with '.'")
        recs = [Recording(str(r), str(p)) for r, p in zip(inv["recording_id"], inv["path"])]
        if metadata is None and set(META_COLUMNS) & set(inv.columns):
            metadata = inv
        return recs, metadata
    raise TypeError("_as_recordings: plain paths go through recordings_for_paths")


def detect_files(inputs: pd.DataFrame | Sequence[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str], threads: int = 2, batch_size: int = 32,
                 overlap_s: float = 0.0, sensitivity: float = 1.0, top_k: int = 10,
                 species_filter: SpeciesFilter | None = None,
                 metadata: pd.DataFrame | None = None, progress: bool = True,
                 parts_dir: str | os.PathLike[str] | None = None,
                 quarantine: Sequence[dict] = (),
                 on_quarantine: Callable[[str, str], None] | None = None,
                 model: bn.BirdNET | None = None, probe: bool | None = None,
                 embedding_store: str | os.PathLike[str] | None = None,
                 embedding_dtype: str = "float32", shard: str = "0000") -> dict[str, Any]:
    """Run BirdNET on recordings and write ``out_dir/{segments,predictions,embeddings}.parquet``
    and ``out_dir/quarantine.csv``; with ``embedding_store`` (a folder) also the
    device/month store files ``device_id=*/month=*/part-<shard>.parquet`` of the finished
    recordings, in ``embedding_dtype`` (:func:`activepam.core.store.write_store`, from the part files).

    ``inputs`` is either a list of audio paths (recording ids from the file stems, metadata
    null) or an inventory DataFrame with ``recording_id``, ``path`` and optionally the metadata
    columns (device_id, site, country, habitat, lat, lon, start_time). ``metadata`` (keyed by
    recording_id) overrides the inventory's. Part files are cached in ``parts_dir`` (default
    ``out_dir/parts``) under the params-hash; ``quarantine`` rows found earlier (e.g. missing
    paths) are included in the quarantine table. ``on_quarantine(path, reason)`` is called for
    each quarantined file (default: a log warning). ``probe`` checks each file first with
    :func:`activepam.detection.inventory.probe_audio` (zero-length, header-only, truncated WAV, unreadable
    tail); default: on for plain paths, off for an inventory (already probed). ``model`` reuses
    a loaded :class:`~activepam.detection.birdnet.BirdNET`. Returns a summary dict.
    """
    t0 = time.perf_counter()
    if int(batch_size) < 1:
        raise DetectError(f"batch_size must be >= 1, got {batch_size}")
    if int(threads) < 1:
        raise DetectError(f"threads must be >= 1, got {threads}")
    params = DetectParams(overlap_s=float(overlap_s), sensitivity=float(sensitivity),
                          top_k=int(top_k), species_filter=species_filter or SpeciesFilter())
    out_dir = Path(out_dir)
    quarantined: list[dict] = [dict(q) for q in quarantine]
    report = on_quarantine or (lambda p, r: log.warning("quarantined: %s: %s", p, r))
    registry_path = out_dir / REGISTRY_NAME
    if isinstance(inputs, pd.DataFrame):
        recordings, metadata = _as_recordings(inputs, metadata)
        registry = None
    else:
        registry = IdRegistry.load(registry_path)
        recordings, bad_paths = recordings_for_paths(list(inputs), registry, threads)
        for q in bad_paths:
            quarantined.append(q)
            report(q["path"], q["reason"])
    meta = _normalise_metadata(metadata)
    digest = params.digest()
    cache = Path(parts_dir) if parts_dir is not None else out_dir / "parts"
    cache = cache / digest
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageIOError(exc.errno, f"[detect] cannot create {cache}: {exc.strerror}") from exc

    todo, ready, n_changed = [], [], 0
    for rec in recordings:
        _remove_stale_tmp(cache, rec.recording_id)
        done = recorded_key(cache, rec.recording_id)
        if rec.key is None:
            try:
                rec = dataclasses.replace(rec, key=file_key(rec.path, done))
            except OSError as exc:
                reason = os_reason(exc, rec.path)
                quarantined.append({"path": rec.path, "stage": STAGE, "reason": reason})
                report(rec.path, reason)
                continue
        ready.append(rec)
        if not is_finished(cache, rec.recording_id, rec.key):
            if part_path(cache, rec.recording_id, "segments").exists():
                n_changed += 1  # computed from other content (or without a key): redo
                part_path(cache, rec.recording_id, "segments").unlink()
            todo.append(rec)
    recordings = ready
    n_cached = len(recordings) - len(todo)
    log.info("detect: %d recordings, %d already finished (parts %s), %d to do (%d whose content "
             "changed)", len(recordings), n_cached, cache, len(todo), n_changed)

    stats: dict[str, Any] = {"processed": 0, "segments_new": 0, "audio_s": 0.0, "nonfinite": {}}
    if todo:
        probe = not isinstance(inputs, pd.DataFrame) if probe is None else probe
        stats = _run_model(todo, cache, params, meta, threads, batch_size, progress,
                           quarantined, report, model, probe)
    if registry is not None:
        registry.save(registry_path, stage=STAGE)

    bad = {q["path"] for q in quarantined}
    finished = [r for r in recordings
                if r.path not in bad and is_finished(cache, r.recording_id, r.key)]
    counts = gather_parts(finished, cache, out_dir, meta)
    if embedding_store is not None:
        from activepam.core.store import check_dtype, write_store

        store_root = Path(embedding_store)
        if store_root.exists():  # a re-run rewrites this shard's files from the parts
            import shutil

            shutil.rmtree(store_root)
        store_root.mkdir(parents=True, exist_ok=True)
        meta_df = meta.select([c for c in ("recording_id", "device_id", "start_time")
                               if c in meta.column_names]).to_pandas()
        if isinstance(inputs, pd.DataFrame):  # inventory rows carry the metadata too
            inv_meta = inputs[[c for c in ("recording_id", "device_id", "start_time")
                               if c in inputs.columns]]
            meta_df = pd.concat([meta_df, inv_meta]).drop_duplicates("recording_id")
        write_store({r.recording_id: part_path(cache, r.recording_id, "embeddings")
                     for r in finished}, meta_df, store_root,
                    check_dtype(embedding_dtype), shard)
    write_csv(pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS), out_dir / "quarantine.csv",
              stage=STAGE)
    summary = {
        "params_hash": digest, "parts_dir": str(cache), "out_dir": str(out_dir),
        "n_recordings": len(recordings), "n_cached": n_cached, "n_changed": n_changed,
        "n_processed": stats["processed"], "n_finished": len(finished),
        "processed": sorted({r.recording_id for r in todo} & {r.recording_id for r in finished}),
        "nonfinite": stats["nonfinite"],
        "n_quarantined": len(quarantined), "n_segments": counts["segments"],
        "audio_s_processed": stats["audio_s"], "wall_s": time.perf_counter() - t0,
        "quarantine": quarantined,
    }
    log.info("detect: %d finished (%d new), %d quarantined, %d segments, %.1f s wall",
             len(finished), stats["processed"], len(quarantined), counts["segments"],
             summary["wall_s"])
    return summary


def _recording_week(start_time: Any) -> int:
    if start_time is None or pd.isna(start_time):
        return -1
    return bn.week_48(pd.Timestamp(start_time))


def _run_model(todo: list[Recording], cache: Path, params: DetectParams, meta: pa.Table,
               threads: int, batch_size: int, progress: bool, quarantined: list[dict],
               report: Callable[[str, str], None], model: bn.BirdNET | None,
               probe: bool) -> dict[str, Any]:
    """Decode in a background thread, run the model, write part files per recording."""
    if model is not None and model.sensitivity != params.sensitivity:
        raise DetectError(f"model sensitivity {model.sensitivity} != {params.sensitivity}")
    labels = np.array(bn.load_labels(), dtype=object)
    meta_rows = {r["recording_id"]: r for r in meta.to_pylist()}
    sf_ = params.species_filter
    no_location = 0

    def accumulator(rec: Recording) -> _Accumulator:
        nonlocal no_location
        m = meta_rows.get(rec.recording_id, {})
        if sf_.mode == "location" and sf_.lat is None and (m.get("lat") is None
                                                            or m.get("lon") is None):
            no_location += 1
        week = _recording_week(m.get("start_time"))
        idx = sf_.indices(m.get("lat"), m.get("lon"), week)
        return _Accumulator(rec, labels[idx], idx,
                            species_set=sf_.describe(m.get("lat"), m.get("lon"), week))

    decoder = _Decoder(todo, params.hop_samples, model.batch_size if model else batch_size,
                       probe=probe)
    accs: dict[int, _Accumulator] = {}
    stats: dict[str, Any] = {"processed": 0, "segments_new": 0, "audio_s": 0.0, "nonfinite": {}}
    bar = tqdm(total=len(todo), unit="rec", desc="detect", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    decoder.start()
    try:
        while True:
            item = decoder.queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Batch):
                if model is None:  # loaded on first use: all-bad inputs never pay for it
                    model = bn.BirdNET(threads=threads, batch_size=batch_size,
                                       sensitivity=params.sensitivity)
                conf, emb = model.predict(item.windows)
                for i in np.unique(item.rec_idx):
                    sel = item.rec_idx == i
                    if int(i) not in accs:
                        accs[int(i)] = accumulator(todo[int(i)])
                    acc = accs[int(i)]
                    k = (len(acc.filtered) if sf_.mode == "list"
                         and len(acc.filtered) <= FULL_VECTOR_MAX else params.top_k)
                    acc.add(item.starts[sel], conf[sel], emb[sel], k)
                continue
            rec = todo[item.rec_idx]
            acc = accs.pop(item.rec_idx, None)
            if item.error is None and acc is not None and acc.n:
                _write_parts(cache, rec.recording_id, acc.tables(item.duration_s, item.nonfinite),
                             rec.key)
                if item.nonfinite:
                    log.warning("%s: %d NaN/inf samples (decoded 48 kHz mono) replaced by 0 "
                                "(segments column nonfinite_samples)", rec.path, item.nonfinite)
                    stats["nonfinite"][rec.path] = item.nonfinite
                stats["processed"] += 1
                stats["segments_new"] += acc.n
                stats["audio_s"] += item.duration_s
            else:
                reason = item.error or "no audio windows"
                quarantined.append({"path": rec.path, "stage": STAGE, "reason": reason})
                report(rec.path, reason)
            bar.update(1)
            bar.set_postfix(audio_h=f"{stats['audio_s'] / 3600:.2f}", refresh=False)
    finally:
        decoder.stop.set()
        bar.close()
        decoder.join(timeout=10)
    if no_location:
        log.warning("species_filter location: %d recordings without lat/lon were scored "
                    "unfiltered", no_location)
    return stats


def species_filter_from_config(cfg: dict[str, Any],
                               label_set: str | os.PathLike[str] | None = None
                               ) -> SpeciesFilter:
    """The species filter described by the ``detect`` section of params.yaml.

    ``location`` uses each recording's lat/lon and start-time week (from the inventory).
    ``label_set`` scores the project's label set (``label_set``: its file, see
    :func:`activepam.rounds.annotations.label_set_path`). ``auto`` (the default): the label set when
    its file exists, else ``location`` - so that uncertainty is never computed over species
    that cannot occur (e.g. out-of-range species near 0.5). Recordings without lat/lon are
    scored over all species (logged).
    """
    mode = str(cfg.get("species_filter", "auto"))
    if mode == "auto":
        mode = "label_set" if label_set and Path(label_set).is_file() else "location"
        log.info("species_filter auto: %s", mode if mode == "location" else
                 f"label set {label_set}")
    if mode == "label_set":
        from activepam.rounds.annotations import read_label_set

        if not label_set or not Path(label_set).is_file():
            raise DetectError(f"detect.species_filter: label_set, but the label set file "
                              f"{label_set or '(rounds.label_set)'} does not exist")
        return SpeciesFilter("list", labels=tuple(read_label_set(label_set)))
    if mode == "list":
        return SpeciesFilter("list", species_list=str(cfg.get("species_list") or "") or None)
    if mode == "location":
        return SpeciesFilter("location", threshold=float(cfg.get("location_threshold", 0.03)))
    return SpeciesFilter(mode)


def run_shard(inventory: str | os.PathLike[str], shard: str, out_dir: str | os.PathLike[str],
              parts_dir: str | os.PathLike[str], cfg: dict[str, Any], threads: int = 2,
              progress: bool = True,
              label_set: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Detection for the inventory rows of one ``shard`` (Snakemake ``detect_shard``).

    Part files live in ``parts_dir`` (outside the rule's declared outputs) so recordings
    finished by a killed job survive and are skipped when the job is re-run. The shard's
    embedding-store files go to ``out_dir/store`` (``detect.embedding_dtype``).
    """
    inv = pd.read_parquet(inventory)
    if "shard" not in inv.columns:
        raise DetectError(f"{inventory}: inventory lacks the shard column")
    rows = inv[inv["shard"].astype(str) == str(shard)].reset_index(drop=True)
    log.info("shard %s: %d of %d inventory recordings", shard, len(rows), len(inv))
    return detect_files(rows, out_dir, threads=threads, batch_size=int(cfg.get("batch_size", 32)),
                        overlap_s=float(cfg.get("overlap_s", 0.0)),
                        sensitivity=float(cfg.get("sensitivity", 1.0)),
                        top_k=int(cfg.get("top_k", 10)),
                        species_filter=species_filter_from_config(cfg, label_set),
                        parts_dir=parts_dir, progress=progress,
                        embedding_store=Path(out_dir) / "store",
                        embedding_dtype=str(cfg.get("embedding_dtype", "float32")), shard=shard)


# --------------------------------------------------------------------------- gathering


def _sql_list(paths: Sequence[Path | str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _write_query(con: Any, sql: str, schema: pa.Schema, path: Path,
                 rows_per_batch: int = 65_536) -> int:
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


def gather_parts(recordings: Sequence[Recording], parts_dir: Path, out_dir: Path,
                 meta: pa.Table | None = None) -> dict[str, int]:
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
        con.register("recs", pa.table({"recording_id": pa.array(ids, pa.string()),
                                       "cur_path": pa.array([r.path for r in recs],
                                                            pa.string())}))
        for kind in ("predictions", "embeddings"):
            target = out_dir / f"{kind}.parquet"
            if not ids:
                write_parquet(OUTPUT_SCHEMAS[kind].empty_table(), target, stage=STAGE)
                counts[kind] = 0
                continue
            files = _sql_list([part_path(parts_dir, r, kind) for r in ids])
            if kind == "predictions":
                sql = (f"SELECT p.* REPLACE (r.cur_path AS path) FROM read_parquet({files}) p "
                       "JOIN recs r USING (recording_id) ORDER BY p.recording_id, p.start_s, "
                       "p.rank")
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
        sql = (f"SELECT s.* REPLACE (r.cur_path AS path), {meta_cols}, "
               "m.start_time + to_microseconds("
               "CAST(round(s.start_s * 1000000) AS BIGINT)) AS segment_time "
               f"FROM read_parquet({files}) s JOIN recs r USING (recording_id) "
               "LEFT JOIN meta m USING (recording_id) "
               "ORDER BY s.recording_id, s.start_s")
        counts["segments"] = _write_query(con, sql, SEGMENTS_SCHEMA, target)
    finally:
        con.close()
    return counts


def merge_outputs(inputs: dict[str, Sequence[str | os.PathLike[str]]],
                  outputs: dict[str, str | os.PathLike[str]]) -> dict[str, int]:
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
            counts[kind] = _write_query(con, f"SELECT * FROM read_parquet({_sql_list(files)})",
                                        schema, Path(outputs[kind]))
    finally:
        con.close()
    frames = [read_quarantine(q) for q in inputs["quarantine"]]
    quar = (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=QUARANTINE_COLUMNS))
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


# --------------------------------------------------------------------------- CLI


def register(subparsers: Any) -> None:
    """Add ``activepam detect``."""
    p = subparsers.add_parser(
        "detect", help="run BirdNET V2.4 on audio files (segments, top-k, embeddings)",
        description="Run BirdNET V2.4 on audio files or folders (scanned recursively for "
                    ".wav .flac .mp3 .ogg). Writes segments.parquet, predictions.parquet, "
                    "embeddings.parquet and quarantine.csv into --out; finished recordings "
                    "are cached in --out/parts and skipped when the command is re-run.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--threads", type=positive_int, default=2,
                   help="interpreter threads (default 2)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="windows per model call")
    p.add_argument("--overlap", type=float_range(0.0, bn.WINDOW_S - 0.1), default=0.0, metavar="S",
                   help="overlap of consecutive 3 s windows in seconds (default 0)")
    p.add_argument("--sensitivity", type=float_range(0.5, 1.5), default=1.0,
                   help="BirdNET sensitivity 0.5-1.5 (higher = more detections)")
    p.add_argument("--top-k", type=int_range(1, bn.N_SPECIES), default=10,
                   help="species kept per segment (default 10)")
    p.add_argument("--species-list", metavar="FILE", help="only score these BirdNET labels")
    p.add_argument("--lat", type=float_range(-90.0, 90.0),
                   help="latitude for the location species filter")
    p.add_argument("--lon", type=float_range(-180.0, 180.0),
                   help="longitude for the location species filter")
    p.add_argument("--week", type=int_range(1, 48, also=(-1,)), default=-1,
                   help="week 1-48 for the location filter (-1 = all year, default)")
    p.add_argument("--location-threshold", type=float_range(0.0, 1.0), default=0.03,
                   help="meta-model occurrence threshold (default 0.03)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def say(path: str, reason: str) -> None:
        tqdm.write(f"quarantined: {path}: {reason}", file=sys.stderr)

    try:
        if args.species_list and (args.lat is not None or args.lon is not None):
            raise DetectError("use --species-list or --lat/--lon, not both")
        if args.species_list:
            sfilter = SpeciesFilter("list", species_list=args.species_list)
            sfilter.indices()  # validate the file before any work
        elif args.lat is not None or args.lon is not None:
            sfilter = SpeciesFilter("location", lat=args.lat, lon=args.lon, week=args.week,
                                    threshold=args.location_threshold)
            sfilter.indices()
        else:
            sfilter = SpeciesFilter()
        files, missing = find_audio(args.paths)
        for q in missing:
            say(q["path"], q["reason"])
        if not files:
            print("activepam detect: no audio files (.wav .flac .mp3 .ogg) found", file=sys.stderr)
            return 1
        summary = detect_files(files, args.out, threads=args.threads, batch_size=args.batch_size,
                               overlap_s=args.overlap, sensitivity=args.sensitivity,
                               top_k=args.top_k, species_filter=sfilter,
                               progress=not args.no_progress, quarantine=missing,
                               on_quarantine=say)
    except (DetectError, bn.BirdNETError, ValueError) as exc:
        print(f"activepam detect: {exc}", file=sys.stderr)
        return 2
    print(f"activepam detect: {summary['n_finished']} recordings, {summary['n_segments']} "
          f"segments, {summary['n_quarantined']} quarantined -> {args.out}", file=sys.stderr)
    return 0 if summary["n_finished"] > 0 else 1
