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

import dataclasses
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from activepam.core.hashing import FileKey, file_key
from activepam.core.io import StageIOError, iter_audio_blocks, write_csv, write_parquet
from activepam.core.uncertainty import segment_uncertainty, top_k
from activepam.detection import birdnet as bn
from activepam.detection.filenames import REGISTRY_NAME, IdRegistry, os_reason
from activepam.detection.gather import gather_parts
from activepam.detection.inputs import Recording, normalise_metadata, recordings_for_paths
from activepam.detection.params import FULL_VECTOR_MAX, DetectParams, SpeciesFilter
from activepam.detection.parts import is_finished, part_path, recorded_key, remove_stale_tmp
from activepam.detection.tables import (
    CONTENT_KEY,
    EMBEDDINGS_SCHEMA,
    META_COLUMNS,
    PART_KINDS,
    PREDICTIONS_SCHEMA,
    QUARANTINE_COLUMNS,
    SEGMENT_PART_SCHEMA,
    STAGE,
    DetectError,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- windowing


def window_starts(
    n_samples: int,
    hop: int,
    size: int = bn.WINDOW_SAMPLES,
    min_len: int = int(bn.MIN_LEN_S * bn.SAMPLE_RATE),
) -> np.ndarray:
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

    def __init__(
        self,
        hop: int,
        size: int = bn.WINDOW_SAMPLES,
        min_len: int = int(bn.MIN_LEN_S * bn.SAMPLE_RATE),
    ) -> None:
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
            yield self._next, self._buf[off : off + self.size]
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
            tail = self._buf[off : off + self.size]
            win[: len(tail)] = tail
            yield int(starts[-1]), win


# --------------------------------------------------------------------------- part files


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
        segments = pa.table(
            {
                "segment_id": seg_ids,
                "recording_id": rid,
                "path": path,
                "start_s": starts,
                "end_s": ends,
                "top1_species": self.labels[unc["top1_index"]],
                "top1_confidence": unc["top1_confidence"],
                "top2_confidence": unc["top2_confidence"],
                "margin": unc["margin"],
                "max_binary_entropy": unc["max_binary_entropy"],
                "mean_binary_entropy": unc["mean_binary_entropy"],
                "nonfinite_samples": np.full(n, int(nonfinite), dtype=np.int64),
                "species_set": np.full(n, self.species_set, dtype=object),
            },
            schema=SEGMENT_PART_SCHEMA,
        )
        idx = np.concatenate(self.topk_idx)
        val = np.concatenate(self.topk_val)
        k = idx.shape[1]
        rep = np.repeat(np.arange(n), k)
        predictions = pa.table(
            {
                "segment_id": seg_ids[rep],
                "recording_id": rid[rep],
                "path": path[rep],
                "start_s": starts[rep],
                "end_s": ends[rep],
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
                "species": self.labels[idx.ravel()],
                "confidence": val.ravel().astype(np.float32),
            },
            schema=PREDICTIONS_SCHEMA,
        )
        emb = np.ascontiguousarray(np.concatenate(self.emb), dtype=np.float32)
        embeddings = pa.table(
            {
                "segment_id": seg_ids,
                "recording_id": rid,
                "start_s": starts,
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(emb.ravel()), bn.EMBEDDING_DIM
                ),
            },
            schema=EMBEDDINGS_SCHEMA,
        )
        return {"embeddings": embeddings, "predictions": predictions, "segments": segments}


def _write_parts(
    parts_dir: Path, recording_id: str, tables: dict[str, pa.Table], key: FileKey | None = None
) -> None:
    if key is not None:
        seg = tables["segments"]
        tables = dict(
            tables,
            segments=seg.replace_schema_metadata(
                {**(seg.schema.metadata or {}), CONTENT_KEY: json.dumps(key.to_dict()).encode()}
            ),
        )
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

    def __init__(
        self,
        recordings: Sequence[Recording],
        hop: int,
        batch_size: int,
        probe: bool = True,
        block_s: float = 30.0,
        maxsize: int = 4,
    ) -> None:
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
        #: called (in this thread) before the first window is batched
        self.on_first_window: Callable[[], None] | None = None

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
        if self.on_first_window is not None:
            hook, self.on_first_window = self.on_first_window, None
            hook()
        self._buf[self._fill] = samples
        self._rec[self._fill] = rec_idx
        self._start[self._fill] = start
        self._fill += 1
        if self._fill == self.batch_size:
            self._flush()

    def _decode(self, i: int, rec: Recording) -> None:
        if self.probe:
            from activepam.detection.probe import probe_audio

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
            err = (
                f"too short for a BirdNET window: {duration:.2f} s of audio "
                f"(< {bn.MIN_LEN_S:.1f} s)"
            )
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
        except BaseException as exc:  # noqa: BLE001 - unexpected: hand it to the consumer
            try:
                self.queue.put(exc, timeout=5)
            except queue.Full:
                pass


# --------------------------------------------------------------------------- main entry


_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


def _as_recordings(
    inputs: pd.DataFrame | Sequence[str | os.PathLike[str]], metadata: pd.DataFrame | None
) -> tuple[list[Recording], pd.DataFrame | None]:
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
                raise DetectError(
                    f"unsafe recording_id {rid!r}: ids must match "
                    "[A-Za-z0-9_.-]+ and not start with '.'"
                )
        recs = [Recording(str(r), str(p)) for r, p in zip(inv["recording_id"], inv["path"])]
        if metadata is None and set(META_COLUMNS) & set(inv.columns):
            metadata = inv
        return recs, metadata
    raise TypeError("_as_recordings: plain paths go through recordings_for_paths")


def detect_files(
    inputs: pd.DataFrame | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    threads: int = 2,
    batch_size: int = 32,
    overlap_s: float = 0.0,
    sensitivity: float = 1.0,
    top_k: int = 10,
    species_filter: SpeciesFilter | None = None,
    metadata: pd.DataFrame | None = None,
    progress: bool = True,
    parts_dir: str | os.PathLike[str] | None = None,
    quarantine: Sequence[dict] = (),
    on_quarantine: Callable[[str, str], None] | None = None,
    model: bn.BirdNET | None = None,
    probe: bool | None = None,
    embedding_store: str | os.PathLike[str] | None = None,
    embedding_dtype: str = "float32",
    shard: str = "0000",
) -> dict[str, Any]:
    """Run BirdNET on recordings and write ``out_dir/{segments,predictions,embeddings}.parquet``
    and ``out_dir/quarantine.csv``; with ``embedding_store`` (a folder) also the
    device/month store files ``device_id=*/month=*/part-<shard>.parquet`` of the finished
    recordings, in ``embedding_dtype`` (:func:`activepam.core.store.write_store`, from the part
    files).

    ``inputs`` is either a list of audio paths (recording ids from the file stems, metadata
    null) or an inventory DataFrame with ``recording_id``, ``path`` and optionally the metadata
    columns (device_id, site, country, habitat, lat, lon, start_time). ``metadata`` (keyed by
    recording_id) overrides the inventory's. Part files are cached in ``parts_dir`` (default
    ``out_dir/parts``) under the params-hash; ``quarantine`` rows found earlier (e.g. missing
    paths) are included in the quarantine table. ``on_quarantine(path, reason)`` is called for
    each quarantined file (default: a log warning). ``probe`` checks each file first with
    :func:`activepam.detection.probe.probe_audio` (zero-length, header-only, truncated WAV,
    unreadable tail); default: on for plain paths, off for an inventory (already probed). ``model``
    reuses
    a loaded :class:`~activepam.detection.birdnet.BirdNET`. Returns a summary dict.
    """
    t0 = time.perf_counter()
    if int(batch_size) < 1:
        raise DetectError(f"batch_size must be >= 1, got {batch_size}")
    if int(threads) < 1:
        raise DetectError(f"threads must be >= 1, got {threads}")
    params = DetectParams(
        overlap_s=float(overlap_s),
        sensitivity=float(sensitivity),
        top_k=int(top_k),
        species_filter=species_filter or SpeciesFilter(),
    )
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
    meta = normalise_metadata(metadata)
    digest = params.digest()
    cache = Path(parts_dir) if parts_dir is not None else out_dir / "parts"
    cache = cache / digest
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageIOError(exc.errno, f"[detect] cannot create {cache}: {exc.strerror}") from exc

    todo, ready, n_changed = [], [], 0
    for rec in recordings:
        remove_stale_tmp(cache, rec.recording_id)
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
    log.info(
        "detect: %d recordings, %d already finished (parts %s), %d to do (%d whose content "
        "changed)",
        len(recordings),
        n_cached,
        cache,
        len(todo),
        n_changed,
    )

    stats: dict[str, Any] = {"processed": 0, "segments_new": 0, "audio_s": 0.0, "nonfinite": {}}
    if todo:
        probe = not isinstance(inputs, pd.DataFrame) if probe is None else probe
        stats = _run_model(
            todo,
            cache,
            params,
            meta,
            threads,
            batch_size,
            progress,
            quarantined,
            report,
            model,
            probe,
        )
    if registry is not None:
        registry.save(registry_path, stage=STAGE)

    bad = {q["path"] for q in quarantined}
    finished = [
        r for r in recordings if r.path not in bad and is_finished(cache, r.recording_id, r.key)
    ]
    counts = gather_parts(finished, cache, out_dir, meta)
    if embedding_store is not None:
        from activepam.core.store import check_dtype, write_store

        store_root = Path(embedding_store)
        if store_root.exists():  # a re-run rewrites this shard's files from the parts
            import shutil

            shutil.rmtree(store_root)
        store_root.mkdir(parents=True, exist_ok=True)
        meta_df = meta.select(
            [c for c in ("recording_id", "device_id", "start_time") if c in meta.column_names]
        ).to_pandas()
        if isinstance(inputs, pd.DataFrame):  # inventory rows carry the metadata too
            inv_meta = inputs[
                [c for c in ("recording_id", "device_id", "start_time") if c in inputs.columns]
            ]
            meta_df = pd.concat([meta_df, inv_meta]).drop_duplicates("recording_id")
        write_store(
            {r.recording_id: part_path(cache, r.recording_id, "embeddings") for r in finished},
            meta_df,
            store_root,
            check_dtype(embedding_dtype),
            shard,
        )
    write_csv(
        pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS),
        out_dir / "quarantine.csv",
        stage=STAGE,
    )
    summary = {
        "params_hash": digest,
        "parts_dir": str(cache),
        "out_dir": str(out_dir),
        "n_recordings": len(recordings),
        "n_cached": n_cached,
        "n_changed": n_changed,
        "n_processed": stats["processed"],
        "n_finished": len(finished),
        "processed": sorted({r.recording_id for r in todo} & {r.recording_id for r in finished}),
        "nonfinite": stats["nonfinite"],
        "n_quarantined": len(quarantined),
        "n_segments": counts["segments"],
        "audio_s_processed": stats["audio_s"],
        "wall_s": time.perf_counter() - t0,
        "quarantine": quarantined,
    }
    log.info(
        "detect: %d finished (%d new), %d quarantined, %d segments, %.1f s wall",
        len(finished),
        stats["processed"],
        len(quarantined),
        counts["segments"],
        summary["wall_s"],
    )
    return summary


def _recording_week(start_time: Any) -> int:
    if start_time is None or pd.isna(start_time):
        return -1
    return bn.week_48(pd.Timestamp(start_time))


class _Loader(threading.Thread):
    """Build an object in the background; :meth:`result` waits for it (or raises its error)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        super().__init__(name="activepam-model-loader")
        self._build = build
        self._value: Any = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Start building (once; any thread)."""
        with self._lock:
            if self.ident is None:
                self.start()

    def started(self) -> bool:
        with self._lock:
            return self.ident is not None

    def run(self) -> None:
        try:
            self._value = self._build()
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._error = exc

    def result(self) -> Any:
        self.begin()
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def _submit(model: Any, windows: np.ndarray) -> Future[Any]:
    """``model.submit(windows)`` (:meth:`activepam.detection.birdnet.BirdNET.submit`), or its
    ``predict`` run here for models without it."""
    if hasattr(model, "submit"):
        return model.submit(windows)
    future: Future[Any] = Future()
    future.set_result(model.predict(windows))
    return future


def _run_model(
    todo: list[Recording],
    cache: Path,
    params: DetectParams,
    meta: pa.Table,
    threads: int,
    batch_size: int,
    progress: bool,
    quarantined: list[dict],
    report: Callable[[str, str], None],
    model: bn.BirdNET | None,
    probe: bool,
) -> dict[str, Any]:
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
        if (
            sf_.mode == "location"
            and sf_.lat is None
            and (m.get("lat") is None or m.get("lon") is None)
        ):
            no_location += 1
        week = _recording_week(m.get("start_time"))
        idx = sf_.indices(m.get("lat"), m.get("lon"), week)
        return _Accumulator(
            rec, labels[idx], idx, species_set=sf_.describe(m.get("lat"), m.get("lon"), week)
        )

    decoder = _Decoder(
        todo, params.hop_samples, model.batch_size if model else batch_size, probe=probe
    )
    accs: dict[int, _Accumulator] = {}
    stats: dict[str, Any] = {"processed": 0, "segments_new": 0, "audio_s": 0.0, "nonfinite": {}}
    bar = tqdm(
        total=len(todo),
        unit="rec",
        desc="detect",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def on_batch(item: _Batch, conf: np.ndarray, emb: np.ndarray) -> None:
        for i in np.unique(item.rec_idx):
            sel = item.rec_idx == i
            if int(i) not in accs:
                accs[int(i)] = accumulator(todo[int(i)])
            acc = accs[int(i)]
            k = (
                len(acc.filtered)
                if sf_.mode == "list" and len(acc.filtered) <= FULL_VECTOR_MAX
                else params.top_k
            )
            acc.add(item.starts[sel], conf[sel], emb[sel], k)

    def on_end(item: _End) -> None:
        rec = todo[item.rec_idx]
        acc = accs.pop(item.rec_idx, None)
        if item.error is None and acc is not None and acc.n:
            _write_parts(
                cache, rec.recording_id, acc.tables(item.duration_s, item.nonfinite), rec.key
            )
            if item.nonfinite:
                log.warning(
                    "%s: %d NaN/inf samples (decoded 48 kHz mono) replaced by 0 "
                    "(segments column nonfinite_samples)",
                    rec.path,
                    item.nonfinite,
                )
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

    # batches run on the model's worker threads (BirdNET.submit) while this thread reduces
    # finished ones and the decoder reads ahead; results are handled in decoder order
    pending: deque[tuple[Any, Future[Any] | None]] = deque()
    running = 0

    def drain(limit: int) -> None:
        """Handle finished items in order, waiting while more than ``limit`` batches run."""
        nonlocal running
        while pending:
            item, future = pending[0]
            if future is not None:
                if running <= limit and not future.done():
                    return
                conf, emb = future.result()
                running -= 1
                on_batch(item, conf, emb)
            else:
                on_end(item)
            pending.popleft()

    # the model loads while the decoder fills the first batch (from its first window on: a
    # run whose inputs are all bad never loads it)
    loader = (
        _Loader(
            lambda: bn.BirdNET(
                threads=threads, batch_size=batch_size, sensitivity=params.sensitivity
            )
        )
        if model is None
        else None
    )
    decoder.on_first_window = loader.begin if loader is not None else None
    decoder.start()
    try:
        while True:
            item = decoder.queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Batch):
                if model is None:
                    assert loader is not None  # made whenever no model was passed
                    model = loader.result()
                pending.append((item, _submit(model, item.windows)))
                running += 1
            else:
                pending.append((item, None))
            drain(int(getattr(model, "threads", 1)) if model is not None else 0)
        drain(-1)
    finally:
        decoder.stop.set()
        bar.close()
        decoder.join(timeout=10)
        if loader is not None and loader.started():
            loader.join()
    if no_location:
        log.warning(
            "species_filter location: %d recordings without lat/lon were scored unfiltered",
            no_location,
        )
    return stats
