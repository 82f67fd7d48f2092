"""Annotation round trip: export clips + Raven tables for experts, import their labels.

Export (:func:`export_annotation_set`), one folder per round
``results/rounds/round_RR/annotation/``:

* ``manifest.csv`` - one row per selected unit: stable ``unit_id``, recording, path, unit span
  (``start_s``/``end_s`` in the recording), clip span (``clip_start_s``/``clip_end_s``) and the
  target inside the clip (``target_begin_s``/``target_end_s``), metadata (device, site, country,
  habitat, time), the model's top-k predictions (``"sp1:0.83;sp2:0.41"``), uncertainty scores,
  stratum, cluster, strategy, and the batch/annotator the unit was assigned to;
* ``<batch>/<stem>.wav`` - the audio clip: the 3 s segment plus ``context_s`` either side,
  clipped at the file bounds (the whole recording for recording units);
* ``<batch>/<stem>.png`` - its spectrogram with the target span marked;
* ``<batch>/<stem>.Table.1.selections.txt`` - a Raven Pro selection table pre-filled with the
  model's top predictions for the target (times relative to the clip), ``Present`` = ``?``.

``<batch>`` is the annotator's name (``rounds.annotators``, units dealt round-robin by rank or
whole strata per annotator) or ``all``. Opening ``<stem>.wav`` in Raven Pro and saving the
selections keeps the default name ``<stem>.Table.1.selections.txt``: the file name links a table
to its unit.

Raven table semantics (what the expert does):

* every row is one selection of one species (``Species``; a column named ``Annotation`` is
  accepted instead); ``Present`` = 1 (or empty, as for a newly drawn selection) means the
  species is audible in that box, 0 means the pre-filled model suggestion is wrong, ``?`` means
  not reviewed (refused on import);
* the annotation is complete for the target: every label-set species not marked present is
  absent (closed world), so a completed table with no rows means "no species";
* selections must lie inside the clip; a selection outside the target segment is kept
  (``in_target`` = 0) but does not label the unit.

Import (:func:`import_labels`, CLI ``activepam labels import FILES_OR_DIR --round R``) reads
completed Raven tables and/or CSV files (``unit_id, species, present[, annotator, confidence,
notes]``), validates every row against the round's manifest and the label set and writes
``data/labels/round_RR.csv`` (:data:`LABEL_COLUMNS`). All problems are collected and reported
together as ``file:line: message``; no row is ever dropped silently and an existing label file
is never overwritten (``--force`` replaces it deliberately). Conflicts between annotators are
kept, printed and written to ``round_RR.conflicts.csv``.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import logging
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import soundfile as sf
from tqdm import tqdm

from activepam.io import atomic_path, write_csv

log = logging.getLogger(__name__)

#: columns of an exported Raven selection table (Raven's own first seven, then ours)
RAVEN_COLUMNS: tuple[str, ...] = (
    "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
    "High Freq (Hz)", "Species", "Present", "Confidence", "Annotator", "Notes",
)
#: accepted names of the species column of a Raven table, in order of preference
SPECIES_COLUMNS: tuple[str, ...] = ("Species", "Annotation")
#: Present value of a pre-filled, not yet reviewed row
UNREVIEWED = "?"
#: suffix Raven Pro gives saved selection tables
TABLE_SUFFIX = ".Table.1.selections.txt"
_TABLE_RE = re.compile(r"\.Table\.\d+\.selections\.txt$", re.IGNORECASE)

#: columns of ``manifest.csv`` (metadata columns absent from the sample are left empty)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "unit_id", "unit_type", "round", "rank", "recording_id", "path", "start_s", "end_s",
    "clip_start_s", "clip_end_s", "target_begin_s", "target_end_s", "clip_file", "table_file",
    "spectrogram_file", "batch", "annotator", "device_id", "site", "country", "habitat", "lat",
    "lon", "time", "top_predictions", "top1_species", "top1_confidence", "top2_confidence",
    "margin", "max_binary_entropy", "mean_binary_entropy", "score", "stratum", "cluster",
    "reason", "strategy",
)

#: columns of ``data/labels/round_RR.csv``
LABEL_COLUMNS: tuple[str, ...] = (
    "unit_id", "unit_type", "recording_id", "path", "start_s", "end_s", "species", "present",
    "sel_begin_s", "sel_end_s", "low_hz", "high_hz", "in_target", "annotator", "confidence",
    "notes", "round", "source_file", "source_line",
)
#: ``species`` value of the row that records a reviewed unit with no species present
NO_SPECIES = ""

_TRUE = {"1", "yes", "y", "true", "t", "present"}
_FALSE = {"0", "no", "n", "false", "f", "absent"}
#: seconds a selection may stick out of the clip (rounding in Raven)
TIME_TOLERANCE_S = 0.05
#: clips longer than this get no spectrogram PNG (a day-long recording would be unreadable)
MAX_SPECTROGRAM_S = 600.0


class LabelImportError(ValueError):
    """Label files failed validation; the message lists every problem as ``file:line: msg``."""

    def __init__(self, problems: Sequence[str], limit: int = 60) -> None:
        self.problems = list(problems)
        shown = self.problems[:limit]
        more = len(self.problems) - len(shown)
        msg = f"{len(self.problems)} problem(s) in the label files:\n  " + "\n  ".join(shown)
        if more:
            msg += f"\n  ... and {more} more"
        super().__init__(msg)


class ExportError(ValueError):
    """The annotation set cannot be exported (bad sample table or unreadable audio)."""


# --------------------------------------------------------------------------- small helpers


def round_name(round_id: int | str) -> str:
    """Folder/file name of a round: ``round_03`` for 3 or "03"; ``test`` for the test set."""
    if str(round_id) == "test":
        return "test"
    try:
        r = int(round_id)
    except (TypeError, ValueError):
        raise ValueError(f"round must be a number or 'test', got {round_id!r}") from None
    if r < 0 or r > 99:
        raise ValueError(f"round must be in 0..99, got {r}")
    return f"round_{r:02d}"


def unit_stem(unit_id: str) -> str:
    """File-name stem of a unit: its id with characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(unit_id)).strip("._") or "unit"
    return stem


def clip_window(start_s: float, end_s: float, duration_s: float, context_s: float,
                unit_type: str = "segment") -> tuple[float, float]:
    """Clip span in the recording: the unit +- ``context_s`` clipped to ``[0, duration_s]``;
    the whole recording for recording units."""
    if unit_type == "recording":
        return 0.0, float(duration_s)
    lo = max(0.0, float(start_s) - float(context_s))
    hi = min(float(duration_s), float(end_s) + float(context_s))
    return lo, max(lo, hi)


def safe_relpath(value: Any, where: str) -> str:
    """``value`` as a relative POSIX path that stays inside the project.

    Raises :class:`ValueError` (message prefixed by ``where``) for absolute paths (POSIX or
    Windows, including drive letters and UNC paths) and for any ``..`` component.
    """
    text = str(value).strip()
    if not text:
        return text
    win, posix = PureWindowsPath(text), PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or win.is_absolute() or win.drive or text.startswith(("~", "\\\\")):
        raise ValueError(f"{where}: absolute path {text!r} not allowed (paths must be relative "
                         "to the project)")
    if ".." in posix.parts:
        raise ValueError(f"{where}: path {text!r} escapes the project ('..' not allowed)")
    return posix.as_posix()


def parse_present(value: Any) -> int | None:
    """0/1 of a Present cell; empty -> 1 (a drawn selection); ``?`` -> None (not reviewed)."""
    text = str(value if value is not None else "").strip().lower()
    if text == "":
        return 1
    if text == UNREVIEWED:
        return None
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"Present {value!r} must be 1 or 0")


def _float(value: Any, column: str) -> float:
    text = str(value).strip()
    try:
        out = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{column} {text!r} is not a finite number")
    return out


def _optional_float(value: Any, column: str) -> float:
    text = str(value if value is not None else "").strip()
    return float("nan") if text == "" else _float(text, column)


# --------------------------------------------------------------------------- label set


def read_label_set(path: str | Path) -> list[str]:
    """Species labels from a CSV with a ``species`` column or a text file (one per line).

    Blank lines and ``#`` comments are skipped; order is kept and duplicates removed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: label set not found")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "species" not in df.columns:
            raise ValueError(f"{path}: label set CSV needs a 'species' column "
                             f"(found: {', '.join(df.columns)})")
        labels = [s.strip() for s in df["species"]]
    else:
        labels = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    labels = [s for s in labels if s and not s.startswith("#")]
    if not labels:
        raise ValueError(f"{path}: label set is empty")
    return list(dict.fromkeys(labels))


class SpeciesResolver:
    """Map what an annotator typed to a label-set label.

    Accepted, case-insensitive: the full label (``Turdus merula_Common Blackbird``), or its
    scientific or common part alone when that part is unique in the label set.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._exact = {s: s for s in self.labels}
        lookup: dict[str, set[str]] = {}
        for lab in self.labels:
            keys = {lab.lower()}
            if "_" in lab:
                sci, common = lab.split("_", 1)
                keys |= {sci.strip().lower(), common.strip().lower()}
            for k in keys:
                lookup.setdefault(k, set()).add(lab)
        self._lookup = {k: next(iter(v)) for k, v in lookup.items() if len(v) == 1}
        self._choices = sorted(lookup)

    def resolve(self, name: str) -> str | None:
        """The label for ``name``, or None when it is not in the label set."""
        name = str(name).strip()
        return self._exact.get(name) or self._lookup.get(name.lower())

    def suggest(self, name: str) -> str | None:
        """Closest label (difflib ratio >= 0.6) to an unknown ``name``, comparing the whole
        name and, for ``Scientific_Common`` names, each part; None when nothing is close."""
        text = str(name).strip().lower()
        queries = [text] + ([p.strip() for p in text.split("_", 1)] if "_" in text else [])
        best, best_ratio = None, 0.6
        for q in queries:
            for key in difflib.get_close_matches(q, self._choices, n=3, cutoff=best_ratio):
                ratio = difflib.SequenceMatcher(None, q, key).ratio()
                if ratio > best_ratio or best is None:
                    best, best_ratio = key, ratio
        return self._lookup.get(best, best) if best else None

    def error(self, name: str) -> str:
        """One-line message for an unknown species."""
        hint = self.suggest(name)
        tail = f"; did you mean {hint!r}?" if hint else ""
        return f"species {name!r} is not in the label set{tail}"


# --------------------------------------------------------------------------- predictions


def read_predictions(path: str | Path, segment_ids: Iterable[str] | None = None,
                     recording_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Rows of a top-k ``predictions.parquet`` for some segments and/or recordings."""
    filters: list[Any] = []
    if segment_ids is not None:
        filters.append([("segment_id", "in", sorted(set(map(str, segment_ids))))])
    if recording_ids is not None:
        filters.append([("recording_id", "in", sorted(set(map(str, recording_ids))))])
    cols = ["segment_id", "recording_id", "start_s", "end_s", "rank", "species", "confidence"]
    if not filters:
        return pd.read_parquet(path, columns=cols)
    parts = [pq.read_table(path, columns=cols, filters=f).to_pandas() for f in filters]
    return pd.concat(parts, ignore_index=True).drop_duplicates(["segment_id", "species"])


def unit_predictions(unit: Mapping[str, Any], predictions: pd.DataFrame) -> pd.DataFrame:
    """The model's predictions for one unit, best first: ``species, confidence, start_s, end_s``.

    A segment unit gets its own top-k; a recording unit gets each species' best segment.
    """
    if unit["unit_type"] == "recording":
        rows = predictions[predictions["recording_id"] == unit["recording_id"]]
    else:
        rows = predictions[predictions["segment_id"] == unit["unit_id"]]
    if rows.empty:
        return pd.DataFrame(columns=["species", "confidence", "start_s", "end_s"])
    best = (rows.sort_values(["confidence", "start_s"], ascending=[False, True])
            .drop_duplicates("species"))
    return best[["species", "confidence", "start_s", "end_s"]].reset_index(drop=True)


def format_top_predictions(preds: pd.DataFrame, k: int = 5) -> str:
    """``"sp1:0.83;sp2:0.41"`` of the ``k`` best predictions."""
    head = preds.head(k)
    return ";".join(f"{s}:{c:.3f}" for s, c in zip(head["species"], head["confidence"]))


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportOptions:
    """Options of :func:`export_annotation_set` (``rounds.*`` in params.yaml)."""

    context_s: float = 4.0
    annotators: tuple[str, ...] = ()
    batch_by: str = "round_robin"
    prefill_top: int = 3
    prefill_min_confidence: float = 0.1
    spectrograms: bool = True
    high_freq_hz: float = 15000.0


def assign_batches(sample: pd.DataFrame, annotators: Sequence[str],
                   batch_by: str = "round_robin") -> pd.Series:
    """Annotator (batch) of every unit: round-robin by rank, or whole strata per annotator
    (largest strata first, each to the annotator with the fewest units); ``all`` without
    annotators."""
    if not annotators:
        return pd.Series("all", index=sample.index)
    names = [unit_stem(a) for a in annotators]
    order = np.argsort(sample["rank"].to_numpy(), kind="stable") if "rank" in sample else \
        np.arange(len(sample))
    out = pd.Series("", index=sample.index, dtype=object)
    if batch_by == "round_robin":
        for i, pos in enumerate(order):
            out.iloc[pos] = names[i % len(names)]
        return out
    if batch_by != "stratum":
        raise ExportError(f"rounds.batch_by: unknown value {batch_by!r} (round_robin | stratum)")
    strata = (sample["stratum"].astype(str) if "stratum" in sample
              else pd.Series("all", index=sample.index))
    load = dict.fromkeys(names, 0)
    for stratum, size in strata.value_counts().sort_index().sort_values(ascending=False,
                                                                        kind="stable").items():
        who = min(names, key=lambda a: (load[a], names.index(a)))
        out[strata == stratum] = who
        load[who] += int(size)
    return out


def _time_of(unit: Mapping[str, Any]) -> str:
    """UTC ISO time of the unit's start (segment_time, else recording start + start_s)."""
    t = unit.get("segment_time")
    if t is None or pd.isna(t):
        start = unit.get("start_time")
        if start is None or pd.isna(start):
            return ""
        t = pd.Timestamp(start) + pd.Timedelta(seconds=float(unit.get("start_s") or 0.0))
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def write_clip(src: str | Path, dst: str | Path, start_s: float, end_s: float,
               block_s: float = 60.0) -> tuple[int, int]:
    """Copy ``[start_s, end_s)`` of ``src`` to a 16-bit WAV ``dst`` (all channels, streamed).

    Returns ``(sample_rate, frames)``.
    """
    with sf.SoundFile(str(src)) as f:
        sr, ch = int(f.samplerate), int(f.channels)
        a = max(0, int(round(start_s * sr)))
        b = min(int(f.frames), int(round(end_s * sr))) if f.frames > 0 else int(round(end_s * sr))
        f.seek(a)
        remaining = max(0, b - a)
        frames = 0
        with atomic_path(dst, "export") as tmp, \
                sf.SoundFile(str(tmp), "w", samplerate=sr, channels=ch, subtype="PCM_16",
                             format="WAV") as out:
            block = max(1, int(block_s * sr))
            while remaining > 0:
                data = f.read(min(block, remaining), dtype="float32", always_2d=True)
                if not len(data):
                    break
                out.write(np.clip(data, -1.0, 1.0))
                frames += len(data)
                remaining -= len(data)
    return sr, frames


#: anchor colours of the spectrogram colour map (magma-like), dark = quiet
_CMAP_ANCHORS = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                          (245, 125, 21), (250, 193, 39), (252, 253, 191)], dtype=np.float64)


def _colour(norm: np.ndarray) -> np.ndarray:
    """RGB (uint8) of values in [0, 1] through :data:`_CMAP_ANCHORS`."""
    pos = np.linspace(0.0, 1.0, len(_CMAP_ANCHORS))
    rgb = np.stack([np.interp(norm, pos, _CMAP_ANCHORS[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


#: palette index of the target markers (the colour map uses 0..254)
_MARK = 255


def spectrogram_image(path: str | Path, target: tuple[float, float],
                      max_hz: float = 12000.0) -> np.ndarray:
    """Palette-index image (uint8, 0-254 = dB on the colour map, 255 = marker) of a clip's
    spectrogram: Hann STFT without overlap, 0-``max_hz``, low frequencies at the bottom, at
    least 256 px high, the target span marked. Plain numpy: fast for hundreds of clips."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    nper = 512 if sr >= 16000 else 256
    if len(mono) < nper:
        mono = np.pad(mono, (0, nper - len(mono)))
    n_frames = len(mono) // nper
    frames = mono[: n_frames * nper].reshape(n_frames, nper)
    spec = np.abs(np.fft.rfft(frames * np.hanning(nper), axis=1)) ** 2
    freqs = np.fft.rfftfreq(nper, 1.0 / sr)
    db = 10 * np.log10(spec[:, freqs <= max_hz].T + 1e-12)
    vmax = float(np.percentile(db, 99.5))
    img = (np.clip((db - (vmax - 70.0)) / 70.0, 0.0, 1.0)[::-1] * 254).astype(np.uint8)
    img = np.repeat(img, -(-256 // max(1, img.shape[0])), axis=0)
    for x in target:
        col = int(round(x * sr / nper))
        if 0 <= col < img.shape[1]:
            img[:, col] = _MARK
    return img


def write_spectrogram(clip: str | Path, out: str | Path, target: tuple[float, float],
                      max_hz: float = 12000.0) -> Path:
    """Write :func:`spectrogram_image` of ``clip`` as a palette PNG atomically (Pillow)."""
    from PIL import Image

    palette = np.vstack([_colour(np.linspace(0.0, 1.0, 255)), [(0, 255, 255)]])
    img = Image.fromarray(spectrogram_image(clip, target, max_hz), mode="P")
    img.putpalette(palette.astype(np.uint8).ravel().tolist())
    with atomic_path(out, "export") as tmp:
        img.save(tmp, format="PNG")
    return Path(out)


def prefill_rows(unit: Mapping[str, Any], preds: pd.DataFrame, clip_start: float,
                 annotator: str, options: ExportOptions, nyquist: float) -> list[dict[str, Any]]:
    """Raven rows for the model's top predictions of a unit (the top-1 always, then up to
    ``prefill_top`` above ``prefill_min_confidence``), ``Present`` = ``?``.

    Without any suggestion a placeholder row (empty Species, ``?``) is written, so an untouched
    table is refused on import instead of being read as "no species"."""
    keep = preds.head(max(1, options.prefill_top))
    keep = keep[(keep.index == 0) | (keep["confidence"] >= options.prefill_min_confidence)]
    high = min(options.high_freq_hz, nyquist)
    if keep.empty:
        begin, end = (float(unit["start_s"]) - clip_start, float(unit["end_s"]) - clip_start)
        return [{"Selection": 1, "View": "Spectrogram 1", "Channel": 1,
                 "Begin Time (s)": round(begin, 4), "End Time (s)": round(end, 4),
                 "Low Freq (Hz)": 0.0, "High Freq (Hz)": round(high, 1), "Species": "",
                 "Present": UNREVIEWED, "Confidence": "",
                 "Annotator": annotator if annotator != "all" else "",
                 "Notes": "no model suggestion: name the species heard, or delete this row "
                          "if none"}]
    rows = []
    for i, p in enumerate(keep.itertuples(index=False), start=1):
        if unit["unit_type"] == "recording":
            begin, end = float(p.start_s) - clip_start, float(p.end_s) - clip_start
        else:
            begin = float(unit["start_s"]) - clip_start
            end = float(unit["end_s"]) - clip_start
        rows.append({
            "Selection": i, "View": "Spectrogram 1", "Channel": 1,
            "Begin Time (s)": round(begin, 4), "End Time (s)": round(end, 4),
            "Low Freq (Hz)": 0.0, "High Freq (Hz)": round(high, 1), "Species": p.species,
            "Present": UNREVIEWED, "Confidence": round(float(p.confidence), 4),
            "Annotator": annotator if annotator != "all" else "", "Notes": "model suggestion",
        })
    return rows


def write_raven_table(rows: Sequence[Mapping[str, Any]], path: str | Path,
                      columns: Sequence[str] = RAVEN_COLUMNS) -> Path:
    """Write a tab-separated Raven selection table atomically."""
    df = pd.DataFrame(list(rows), columns=list(columns))
    with atomic_path(path, "export") as tmp:
        df.to_csv(tmp, sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE,
                  escapechar="\\")
    return Path(path)


def _unit_dict(row: pd.Series) -> dict[str, Any]:
    unit = row.to_dict()
    unit.setdefault("unit_type", "segment")
    unit["unit_id"] = str(unit["unit_id"])
    return unit


def export_annotation_set(sample: pd.DataFrame, out_dir: str | Path, predictions: pd.DataFrame,
                          *, round_id: int | str, strategy: str = "",
                          options: ExportOptions = ExportOptions(),
                          label_set: Sequence[str] | None = None,
                          root: str | Path = ".") -> pd.DataFrame:
    """Write clips, spectrograms, pre-filled Raven tables and ``manifest.csv`` to ``out_dir``.

    ``sample`` is the output of :func:`activepam.sampling.sample` (``unit_id, unit_type,
    recording_id, path, start_s, end_s`` + metadata); ``predictions`` the top-k long table of
    the model that scored the pool (BirdNET's for round 0, then the retrained model's). Only
    species of ``label_set`` (when given) are pre-filled, so every suggestion can be imported;
    the manifest's ``top_predictions`` lists all. Audio paths are resolved against ``root``.
    Returns the manifest.
    """
    need = {"unit_id", "recording_id", "path", "start_s", "end_s"}
    missing = sorted(need - set(sample.columns))
    if missing:
        raise ExportError(f"sample table lacks column(s): {', '.join(missing)}")
    if sample["unit_id"].duplicated().any():
        dup = sample.loc[sample["unit_id"].duplicated(), "unit_id"].iloc[0]
        raise ExportError(f"sample table has duplicate unit_id {dup!r}")
    out_dir, root = Path(out_dir), Path(root)
    sample = sample.reset_index(drop=True).copy()
    if "unit_type" not in sample:
        sample["unit_type"] = "segment"
    if "rank" not in sample:
        sample["rank"] = np.arange(1, len(sample) + 1)
    batches = assign_batches(sample, options.annotators, options.batch_by)
    stems = sample["unit_id"].map(unit_stem)
    if stems.duplicated().any():  # ids differing only in unsafe characters
        stems = stems + "_" + sample["unit_id"].map(
            lambda u: hashlib.sha1(str(u).encode()).hexdigest()[:6])
    rows = []
    for i in tqdm(range(len(sample)), desc=f"export {round_name(round_id)}", unit="clip",
                  file=sys.stderr, disable=None):
        unit = _unit_dict(sample.iloc[i])
        rows.append(_export_unit(unit, stems.iloc[i], batches.iloc[i], out_dir, predictions,
                                 round_id, strategy, options, root, label_set))
    manifest = pd.DataFrame(rows)
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest.reindex(columns=list(MANIFEST_COLUMNS) + extra)
    write_csv(manifest, out_dir / "manifest.csv", stage="export")
    return manifest


def _export_unit(unit: dict[str, Any], stem: str, batch: str, out_dir: Path,
                 predictions: pd.DataFrame, round_id: int | str, strategy: str,
                 options: ExportOptions, root: Path,
                 label_set: Sequence[str] | None = None) -> dict[str, Any]:
    src = Path(unit["path"])
    src = src if src.is_absolute() else root / src
    try:
        info = sf.info(str(src))
    except Exception as exc:  # noqa: BLE001 - any decoder error is reported the same way
        raise ExportError(f"{src}: cannot read audio for unit {unit['unit_id']}: {exc}") from exc
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    clip_start, clip_end = clip_window(unit["start_s"], unit["end_s"], duration,
                                       options.context_s, unit["unit_type"])
    rel_clip = f"{batch}/{stem}.wav"
    sr, frames = write_clip(src, out_dir / rel_clip, clip_start, clip_end)
    clip_end = clip_start + frames / sr
    target = (float(unit["start_s"]) - clip_start, float(unit["end_s"]) - clip_start)
    if unit["unit_type"] == "recording":
        target = (0.0, clip_end - clip_start)
    preds = unit_predictions(unit, predictions)
    top = format_top_predictions(preds)
    rel_png = ""
    if options.spectrograms and clip_end - clip_start <= MAX_SPECTROGRAM_S:
        rel_png = f"{batch}/{stem}.png"
        write_spectrogram(out_dir / rel_clip, out_dir / rel_png, target)
    rel_table = f"{batch}/{stem}{TABLE_SUFFIX}"
    suggest = preds if label_set is None else \
        preds[preds["species"].isin(list(label_set))].reset_index(drop=True)
    write_raven_table(prefill_rows(unit, suggest, clip_start, batch, options, sr / 2.0),
                      out_dir / rel_table)
    row = {k: unit.get(k) for k in MANIFEST_COLUMNS if k in unit}
    row.update({
        "unit_id": unit["unit_id"], "unit_type": unit["unit_type"],
        "round": round_name(round_id), "clip_start_s": round(clip_start, 4),
        "clip_end_s": round(clip_end, 4), "target_begin_s": round(target[0], 4),
        "target_end_s": round(target[1], 4), "clip_file": rel_clip, "table_file": rel_table,
        "spectrogram_file": rel_png, "batch": batch,
        "annotator": "" if batch == "all" else batch, "time": _time_of(unit),
        "top_predictions": top, "strategy": strategy or unit.get("strategy", ""),
    })
    return row


# --------------------------------------------------------------------------- reading tables


@dataclass
class RawRow:
    """One data line of an input file: its 1-based line number and cells by column name."""

    line: int
    cells: dict[str, str]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # pragma: no cover - latin-1 decodes anything


def read_delimited(path: str | Path, delimiter: str) -> tuple[list[str], list[RawRow]]:
    """Header and data rows (with line numbers) of a tab- or comma-separated file.

    Short rows are padded with empty cells; cells beyond the header must be empty.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    if not lines or not lines[0].strip():
        raise LabelImportError([f"{path}:1: empty file (no header line)"])
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    while header and header[-1] == "":
        header.pop()
    problems, rows = [], []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            problems.append(f"{path}:{line_no}: {len(cells)} fields but the header has "
                            f"{len(header)}")
            continue
        cells = cells + [""] * (len(header) - len(cells))
        rows.append(RawRow(line_no, {h: c.strip() for h, c in zip(header, cells) if h}))
    if problems:
        raise LabelImportError(problems)
    return header, rows


def _species_column(header: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    for name in SPECIES_COLUMNS:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _column(header: Sequence[str], name: str) -> str | None:
    lower = {h.lower(): h for h in header}
    return lower.get(name.lower())


def merge_views(rows: list[RawRow], header: Sequence[str]) -> tuple[list[RawRow], int]:
    """Raven lists a selection once per view (Waveform, Spectrogram); keep one row per
    selection number when its rows differ only by view (the Spectrogram one). Returns the rows
    and how many view duplicates were merged."""
    sel, view = _column(header, "Selection"), _column(header, "View")
    if not sel or not view:
        return rows, 0
    groups: dict[str, list[RawRow]] = {}
    for r in rows:
        groups.setdefault(r.cells.get(sel, ""), []).append(r)
    keep_ids, merged = set(), 0
    for key, grp in groups.items():
        views = {r.cells.get(view, "") for r in grp}
        if key == "" or len(grp) == 1 or len(views) != len(grp):
            keep_ids.update(id(r) for r in grp)
            continue
        best = next((r for r in grp if r.cells.get(view, "").lower().startswith("spectrogram")),
                    grp[0])
        keep_ids.add(id(best))
        merged += len(grp) - 1
    return [r for r in rows if id(r) in keep_ids], merged


# --------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """Validated labels, annotator conflicts and notes (warnings) of one import."""

    labels: pd.DataFrame
    conflicts: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A round's ``manifest.csv`` (ids as strings)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found (export the round first)")
    m = pd.read_csv(path, dtype={"unit_id": str, "recording_id": str, "clip_file": str,
                                 "table_file": str, "batch": str, "annotator": str},
                    keep_default_na=False, na_values={"start_s": [""], "end_s": [""]})
    need = {"unit_id", "unit_type", "recording_id", "path", "start_s", "end_s", "clip_start_s",
            "clip_end_s", "clip_file"}
    missing = sorted(need - set(m.columns))
    if missing:
        raise ValueError(f"{path}: manifest lacks column(s): {', '.join(missing)}")
    return m


def collect_sources(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Label files from files and folders (``*.txt`` Raven tables, ``*.csv`` label CSVs;
    ``manifest.csv`` and other files in folders are skipped with a note)."""
    files, notes = [], []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file():
                    continue
                if f.suffix.lower() == ".txt" or (f.suffix.lower() == ".csv"
                                                  and f.name != "manifest.csv"
                                                  and not f.name.endswith(".conflicts.csv")):
                    files.append(f)
                elif f.suffix.lower() in (".csv",):
                    notes.append(f"{f}: skipped (not a label file)")
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise LabelImportError([f"{', '.join(map(str, paths))}: no label files (*.txt Raven "
                                "tables or *.csv) found"])
    return files, notes


def _display(path: Path, bases: Sequence[Path]) -> str:
    """Portable name of an input file: relative to the import argument that contained it."""
    for b in bases:
        try:
            rel = path.resolve().relative_to(b.resolve() if b.is_dir() else b.resolve().parent)
            return rel.as_posix()
        except ValueError:
            continue
    return path.name


class _Importer:
    """Row-by-row validation shared by Raven tables and CSV files."""

    def __init__(self, manifest: pd.DataFrame, resolver: SpeciesResolver, round_label: str,
                 default_annotator: str | None) -> None:
        self.resolver = resolver
        self.round = round_label
        self.default_annotator = default_annotator
        self.units = {str(r["unit_id"]): r for r in manifest.to_dict("records")}
        self.by_stem: dict[str, str] = {}
        for uid, r in self.units.items():
            for key in ("clip_file", "table_file"):
                name = PurePosixPath(str(r.get(key) or "")).name
                if name:
                    self.by_stem[_stem_of(name).lower()] = uid
            self.by_stem.setdefault(unit_stem(uid).lower(), uid)
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def _annotator(self, value: str, unit: Mapping[str, Any]) -> str:
        return (value or str(unit.get("annotator") or "") or self.default_annotator
                or "unknown").strip()

    def _base(self, unit: Mapping[str, Any], source: str, line: int) -> dict[str, Any]:
        return {"unit_id": str(unit["unit_id"]), "unit_type": unit["unit_type"],
                "recording_id": unit["recording_id"], "path": unit["path"],
                "start_s": float(unit["start_s"]), "end_s": float(unit["end_s"]),
                "round": self.round, "source_file": source, "source_line": line}

    def raven(self, path: Path, source: str) -> None:
        try:
            header, rows = read_delimited(path, "\t")
        except LabelImportError as exc:
            self.problems.extend(exc.problems)
            return
        where = f"{source}"
        uid = self.by_stem.get(_stem_of(path.name).lower())
        if uid is None:
            self.problems.append(f"{where}: no unit of this round's manifest has a clip named "
                                 f"{_stem_of(path.name)!r} (tables are matched to units by file "
                                 f"name, <clip>{TABLE_SUFFIX})")
            return
        unit = self.units[uid]
        sp_col = _species_column(header)
        needed = {"Begin Time (s)", "End Time (s)"}
        missing = sorted(c for c in needed if not _column(header, c))
        if sp_col is None:
            missing.append("Species (or Annotation)")
        if missing:
            self.problems.append(f"{where}:1: missing column(s) {', '.join(missing)} (found: "
                                 f"{', '.join(h for h in header if h) or 'none'})")
            return
        rows, merged = merge_views(rows, header)
        if merged:
            self.notes.append(f"{where}: {merged} row(s) repeating a selection in another "
                              "view merged")
        self._check_path_cells(rows, header, where)
        if not rows:
            self.rows.append({**self._base(unit, source, 1), "species": NO_SPECIES,
                              "present": 0, "in_target": 1,
                              "annotator": self._annotator("", unit),
                              "notes": "empty table: no species"})
            return
        cols = {n: _column(header, n) for n in ("Begin Time (s)", "End Time (s)",
                                                 "Low Freq (Hz)", "High Freq (Hz)", "Present",
                                                 "Confidence", "Annotator", "Notes")}
        clip_len = float(unit["clip_end_s"]) - float(unit["clip_start_s"])
        for r in rows:
            self._raven_row(r, cols, sp_col, unit, clip_len, source)

    def _raven_row(self, r: RawRow, cols: Mapping[str, str | None], sp_col: str,
                   unit: Mapping[str, Any], clip_len: float, source: str) -> None:
        where = f"{source}:{r.line}"
        get = lambda name: r.cells.get(cols[name] or "", "")  # noqa: E731
        try:
            begin = _float(get("Begin Time (s)"), "Begin Time (s)")
            end = _float(get("End Time (s)"), "End Time (s)")
            low = _optional_float(get("Low Freq (Hz)"), "Low Freq (Hz)")
            high = _optional_float(get("High Freq (Hz)"), "High Freq (Hz)")
            conf = _optional_float(get("Confidence"), "Confidence")
            present = parse_present(get("Present"))
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        if present is None:
            self.problems.append(f"{where}: Present is '?' (model suggestion not reviewed): "
                                 "set 1 (present) or 0 (absent), or delete the row")
            return
        if end <= begin:
            self.problems.append(f"{where}: End Time (s) {end:g} is not after Begin Time (s) "
                                 f"{begin:g}")
            return
        if begin < -TIME_TOLERANCE_S or end > clip_len + TIME_TOLERANCE_S:
            self.problems.append(f"{where}: selection {begin:g}-{end:g} s is outside the clip "
                                 f"(0-{clip_len:g} s)")
            return
        name = r.cells.get(sp_col, "")
        if not name:
            self.problems.append(f"{where}: empty {sp_col}: name the species or delete the row")
            return
        species = self.resolver.resolve(name)
        if species is None:
            self.problems.append(f"{where}: {self.resolver.error(name)}")
            return
        abs_b = float(unit["clip_start_s"]) + max(0.0, begin)
        abs_e = float(unit["clip_start_s"]) + min(clip_len, end)
        in_target = 1
        if unit["unit_type"] != "recording":
            overlap = min(abs_e, float(unit["end_s"])) - max(abs_b, float(unit["start_s"]))
            in_target = int(overlap > 1e-6)
            if not in_target:
                self.notes.append(f"{where}: selection {begin:g}-{end:g} s lies outside the "
                                  f"target segment; kept with in_target=0 (does not label "
                                  "the unit)")
        self.rows.append({**self._base(unit, source, r.line), "species": species,
                          "present": present, "sel_begin_s": round(abs_b, 4),
                          "sel_end_s": round(abs_e, 4), "low_hz": low, "high_hz": high,
                          "in_target": in_target, "annotator": self._annotator(get("Annotator"),
                                                                              unit),
                          "confidence": conf, "notes": get("Notes")})

    def _check_path_cells(self, rows: Sequence[RawRow], header: Sequence[str], where: str) -> None:
        """Reject unsafe values in path-like columns (Raven's Begin Path: name only)."""
        for h in header:
            low = h.lower()
            if not ("path" in low or "file" in low) or not h:
                continue
            for r in rows:
                value = r.cells.get(h, "")
                if not value:
                    continue
                if low in ("begin path", "end path"):
                    # Raven writes the absolute path of the opened sound file; only its name is
                    # informative here and it is never opened.
                    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
                        self.problems.append(f"{where}:{r.line}: {h} {value!r} escapes the "
                                             "project ('..' not allowed)")
                    continue
                try:
                    safe_relpath(value, f"{where}:{r.line}: {h}")
                except ValueError as exc:
                    self.problems.append(str(exc))

    def csv(self, path: Path, source: str) -> None:
        try:
            header, rows = read_delimited(path, ",")
        except LabelImportError as exc:
            self.problems.extend(exc.problems)
            return
        missing = [c for c in ("unit_id", "species", "present") if not _column(header, c)]
        if missing:
            self.problems.append(f"{source}:1: missing column(s) {', '.join(missing)} (a label "
                                 "CSV needs unit_id, species, present[, annotator, confidence, "
                                 "notes])")
            return
        self._check_path_cells(rows, header, source)
        col = {n: _column(header, n) for n in ("unit_id", "species", "present", "annotator",
                                               "confidence", "notes")}
        for r in rows:
            where = f"{source}:{r.line}"
            get = lambda name: r.cells.get(col[name] or "", "")  # noqa: E731
            uid = get("unit_id")
            unit = self.units.get(uid)
            if unit is None:
                self.problems.append(f"{where}: unknown unit_id {uid!r} (not in this round's "
                                     "manifest)")
                continue
            try:
                if get("present") == "":
                    raise ValueError("present is empty: give 1 or 0")
                present = parse_present(get("present"))
                conf = _optional_float(get("confidence"), "confidence")
            except ValueError as exc:
                self.problems.append(f"{where}: {exc}")
                continue
            if present is None:
                self.problems.append(f"{where}: present is '?': give 1 or 0")
                continue
            name = get("species")
            if name == "":
                if present == 1:
                    self.problems.append(f"{where}: empty species with present=1 (an empty "
                                         "species with present=0 marks a unit with no species)")
                    continue
                species = NO_SPECIES
            else:
                species = self.resolver.resolve(name)
                if species is None:
                    self.problems.append(f"{where}: {self.resolver.error(name)}")
                    continue
            self.rows.append({**self._base(unit, source, r.line), "species": species,
                              "present": present, "in_target": 1,
                              "annotator": self._annotator(get("annotator"), unit),
                              "confidence": conf, "notes": get("notes")})


def _stem_of(name: str) -> str:
    """Clip stem of a Raven table or clip file name."""
    stem = _TABLE_RE.sub("", name)
    for suffix in (".txt", ".wav", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def find_conflicts(labels: pd.DataFrame) -> pd.DataFrame:
    """Units where annotators disagree on a species.

    An annotator who labelled a unit says a species is present when one of their in-target
    rows has it with present=1, absent otherwise (closed world). Returns ``unit_id, species,
    present_by, absent_by, sources`` (one row per disputed unit x species).
    """
    cols = ["unit_id", "species", "present_by", "absent_by", "sources"]
    if labels.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for uid, grp in labels.groupby("unit_id", sort=True):
        annotators = sorted(grp["annotator"].unique())
        if len(annotators) < 2:
            continue
        pos = grp[(grp["present"] == 1) & (grp["in_target"] == 1) & (grp["species"] != "")]
        for sp, sgrp in pos.groupby("species", sort=True):
            yes = sorted(sgrp["annotator"].unique())
            no = [a for a in annotators if a not in yes]
            if no:
                out.append({"unit_id": uid, "species": sp, "present_by": ";".join(yes),
                            "absent_by": ";".join(no),
                            "sources": ";".join(sorted(grp["source_file"].unique()))})
    return pd.DataFrame(out, columns=cols)


def find_duplicates(labels: pd.DataFrame) -> pd.DataFrame:
    """Rows repeating (unit, annotator, species, present, selection times) - kept, reported."""
    if labels.empty:
        return labels
    key = ["unit_id", "annotator", "species", "present", "sel_begin_s", "sel_end_s"]
    k = labels[key].copy()
    k[["sel_begin_s", "sel_end_s"]] = k[["sel_begin_s", "sel_end_s"]].round(2)
    return labels[k.duplicated(keep=False)]


def import_labels(paths: Sequence[str | Path], manifest: pd.DataFrame, label_set: Sequence[str],
                  *, round_id: int | str, default_annotator: str | None = None,
                  previous: Mapping[str, set[str]] | None = None) -> ImportResult:
    """Validate label files against a round's ``manifest`` and ``label_set``.

    ``previous`` maps earlier label files to the unit ids they label: a unit labelled before
    is refused. Raises :class:`LabelImportError` listing every problem; otherwise returns the
    label rows (:data:`LABEL_COLUMNS`, in input order), conflicts and notes.
    """
    files, notes = collect_sources(paths)
    bases = [Path(p) for p in paths]
    imp = _Importer(manifest, SpeciesResolver(label_set), round_name(round_id), default_annotator)
    imp.notes.extend(notes)
    for f in files:
        source = _display(f, bases)
        try:
            safe_relpath(source, "source file")
        except ValueError:
            source = f.name
        if f.suffix.lower() == ".csv":
            imp.csv(f, source)
        else:
            imp.raven(f, source)
    labels = pd.DataFrame(imp.rows).reindex(columns=list(LABEL_COLUMNS))
    problems = list(imp.problems)
    for prev_file, units in (previous or {}).items():
        again = sorted(set(labels["unit_id"]) & set(units))
        for uid in again[:20]:
            problems.append(f"{prev_file}: unit {uid!r} was already labelled there (units are "
                            "labelled in one round only)")
    if problems:
        raise LabelImportError(problems)
    labels = _finalise(labels)
    conflicts = find_conflicts(labels)
    dups = find_duplicates(labels)
    notes = list(imp.notes)
    if len(dups):
        notes.append(f"{len(dups)} duplicate row(s) kept (same unit, annotator, species, "
                     f"times): first at {dups['source_file'].iloc[0]}:"
                     f"{dups['source_line'].iloc[0]}")
    for c in conflicts.itertuples(index=False):
        notes.append(f"conflict: unit {c.unit_id} species {c.species}: present for "
                     f"{c.present_by}, absent for {c.absent_by} (kept; see conflicts file)")
    unlabelled = sorted(set(manifest["unit_id"].astype(str)) - set(labels["unit_id"]))
    if unlabelled:
        notes.append(f"{len(unlabelled)} of {len(manifest)} units have no labels yet: "
                     f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}")
    return ImportResult(labels, conflicts, notes)


def _finalise(labels: pd.DataFrame) -> pd.DataFrame:
    labels = labels.copy()
    labels["present"] = labels["present"].astype("int64")
    labels["in_target"] = labels["in_target"].fillna(1).astype("int64")
    labels["source_line"] = labels["source_line"].astype("int64")
    for c in ("species", "annotator", "notes"):
        labels[c] = labels[c].fillna("").astype(str)
    return labels


def read_labels(path: str | Path) -> pd.DataFrame:
    """A label file written by :func:`write_labels` (species "" kept as empty string)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: label file not found")
    df = pd.read_csv(path, dtype={"unit_id": str, "recording_id": str, "species": str,
                                  "annotator": str, "notes": str, "round": str,
                                  "source_file": str, "path": str},
                     keep_default_na=False,
                     na_values={c: [""] for c in ("start_s", "end_s", "sel_begin_s", "sel_end_s",
                                                  "low_hz", "high_hz", "confidence")})
    missing = sorted({"unit_id", "unit_type", "recording_id", "start_s", "end_s", "species",
                      "present", "in_target", "annotator"} - set(df.columns))
    if missing:
        raise ValueError(f"{path}: label file lacks column(s): {', '.join(missing)}")
    bad = ~df["present"].isin([0, 1])
    if bad.any():
        raise ValueError(f"{path}:{int(np.flatnonzero(bad)[0]) + 2}: present must be 0 or 1")
    return df


def write_labels(result: ImportResult, out: str | Path, force: bool = False) -> Path:
    """Write the labels (and ``<name>.conflicts.csv`` when annotators disagree).

    Refuses to overwrite an existing label file unless ``force``.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: labels are never overwritten (use --force to "
                              "replace them deliberately)")
    write_csv(result.labels, out, stage="labels")
    conflicts = out.with_name(out.stem + ".conflicts.csv")
    if len(result.conflicts):
        write_csv(result.conflicts, conflicts, stage="labels")
    elif conflicts.exists() and force:
        conflicts.unlink()
    return out


def previous_label_units(labels_dir: str | Path, round_label: str) -> dict[str, set[str]]:
    """Unit ids of the label files a new import must not overlap: for ``round_RR`` the earlier
    rounds and ``test.csv``; for ``test`` every round."""
    out = {}
    for f in sorted(Path(labels_dir).glob("*.csv")):
        if f.stem == round_label or not re.fullmatch(r"round_\d{2}|test", f.stem):
            continue
        if round_label.startswith("round_") and f.stem.startswith("round_") \
                and f.stem >= round_label:
            continue  # a later round's (possibly stale) file is not "before" this one
        out[f.as_posix()] = set(read_labels(f)["unit_id"].astype(str))
    return out


# --------------------------------------------------------------------------- CLI


def _params_or_empty(path: str) -> dict[str, Any]:
    from activepam.config import load_params

    return load_params(path) if Path(path).exists() else {}


def label_set_path(params: Mapping[str, Any]) -> Path:
    """``rounds.label_set``, or ``species.csv`` in ``data.raw_dir`` when empty."""
    rounds = params.get("rounds") or {}
    path = rounds.get("label_set") or ""
    if path:
        return Path(path)
    return Path((params.get("data") or {}).get("raw_dir", "data/raw")) / "species.csv"


def run_import(paths: Sequence[str | Path], round_id: int | str, manifest_path: str | Path,
               label_set: str | Path, out: str | Path, labels_dir: str | Path | None = None,
               force: bool = False, annotator: str | None = None) -> ImportResult:
    """Import, report notes/conflicts on stderr (and the log) and write the label file."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: labels are never overwritten (use --force to "
                              "replace them deliberately)")
    manifest = read_manifest(manifest_path)
    labels = read_label_set(label_set)
    prev = previous_label_units(labels_dir or out.parent, out.stem)
    result = import_labels(paths, manifest, labels, round_id=round_id,
                           default_annotator=annotator, previous=prev)
    for note in result.notes:
        log.warning(note)
        print(f"activepam labels: {note}", file=sys.stderr)
    write_labels(result, out, force=force)
    n_units = result.labels["unit_id"].nunique()
    print(f"activepam labels: {len(result.labels)} label rows for {n_units} units -> {out}"
          f"{f'; {len(result.conflicts)} conflict(s)' if len(result.conflicts) else ''}",
          file=sys.stderr)
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam labels import ...`` and ``activepam export ...``."""
    p = subparsers.add_parser("labels", help="import completed annotations as a round's labels")
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION")
    imp = sub.add_parser("import", help="validate Raven tables / CSVs -> data/labels/round_RR.csv")
    imp.add_argument("sources", nargs="+", metavar="FILES_OR_DIR",
                     help="completed Raven selection tables (*.txt) and/or label CSVs, or folders")
    imp.add_argument("--round", required=True, dest="round_id",
                     help="round number (0, 1, ...) or 'test' for the held-out test set")
    imp.add_argument("--manifest", help="the round's manifest.csv (default: "
                     "results/rounds/<round>/annotation/manifest.csv)")
    imp.add_argument("--label-set", help="species label set (default: params rounds.label_set)")
    imp.add_argument("--out", help="label file to write (default: <rounds.labels_dir>/<round>.csv)")
    imp.add_argument("--annotator", help="annotator name for rows that give none")
    imp.add_argument("--params", default="params.yaml",
                     help="parameter file (default: %(default)s)")
    imp.add_argument("--force", action="store_true", help="replace an existing label file")
    imp.set_defaults(func=_cli_import)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ex = subparsers.add_parser("export", help="export an annotation set (clips, spectrograms, "
                               "Raven tables, manifest) from a sample table")
    ex.add_argument("sample", help="sample table (Parquet/CSV) from activepam.sampling.sample")
    ex.add_argument("--round", required=True, dest="round_id", help="round number")
    ex.add_argument("--predictions", required=True, help="top-k predictions.parquet of the model")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--context-s", type=float, default=4.0, help="context each side (s)")
    ex.add_argument("--annotators", default="", help="comma-separated annotator names")
    ex.add_argument("--batch-by", default="round_robin", choices=["round_robin", "stratum"])
    ex.add_argument("--label-set", help="pre-fill only these species (CSV 'species' column or "
                    "one label per line); default: every predicted species")
    ex.add_argument("--no-spectrograms", action="store_true")
    ex.set_defaults(func=_cli_export)


def _cli_import(args: argparse.Namespace) -> int:
    try:
        params = _params_or_empty(args.params)
        name = round_name(args.round_id)
        rounds = params.get("rounds") or {}
        labels_dir = Path(rounds.get("labels_dir", "data/labels"))
        manifest = args.manifest or f"results/rounds/{name}/annotation/manifest.csv"
        label_set = args.label_set or label_set_path(params)
        out = Path(args.out) if args.out else labels_dir / f"{name}.csv"
        run_import(args.sources, args.round_id, manifest, label_set, out, labels_dir,
                   force=args.force, annotator=args.annotator)
    except (LabelImportError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"activepam labels import: {exc}", file=sys.stderr)
        return 1
    print("activepam labels: next: `dvc repro round@RR` (or snakemake) to retrain; commit with "
          "git + `dvc push`", file=sys.stderr)
    return 0


def _cli_export(args: argparse.Namespace) -> int:
    try:
        path = Path(args.sample)
        sample = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        preds = read_predictions(args.predictions, segment_ids=sample["unit_id"],
                                 recording_ids=sample["recording_id"])
        opts = ExportOptions(context_s=args.context_s,
                             annotators=tuple(a for a in args.annotators.split(",") if a),
                             batch_by=args.batch_by, spectrograms=not args.no_spectrograms)
        labels = read_label_set(args.label_set) if args.label_set else None
        m = export_annotation_set(sample, args.out, preds, round_id=args.round_id, options=opts,
                                  label_set=labels)
    except (ExportError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"activepam export: {exc}", file=sys.stderr)
        return 1
    print(f"activepam export: {len(m)} units -> {args.out}", file=sys.stderr)
    return 0
