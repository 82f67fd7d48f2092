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
  accepted instead) with an explicit ``Present``: 1 (yes, present, p) = the species is audible
  in that box, 0 (no, absent, a) = the pre-filled model suggestion is wrong, ``unsure`` (u,
  maybe, ?!, -1) = the expert cannot tell (stored as :data:`UNSURE`, not trained on). A blank
  cell (also a newly drawn selection: give it a value), ``?`` (not reviewed) or any other value
  is *unanswered*: reported as ``file:line`` and never a label (the import fails, or with
  ``--skip-unanswered`` leaves that unit out). A table without a ``Present`` column at all
  (drawn from scratch) means every selection is present;
* a Selection number listed once per view (Spectrogram / Waveform) with the same content is one
  selection; a reused number with other content is another answer;
* the annotation is complete for the target: every label-set species without a row is absent
  (closed world), so a completed table with no rows means "no species";
* selections must lie inside the clip; a selection outside the target segment is kept
  (``in_target`` = 0) but does not label the unit.

Import (:func:`import_labels`, CLI ``activepam labels import FILES_OR_DIR --round R``) reads
completed Raven tables, CSV files (``unit_id, species, present[, annotator, confidence,
notes]``; comma, semicolon or tab, UTF-8/cp1252/UTF-16 detected) and review journals (a CSV
with an ``answered_at`` column: the last event per unit, annotator and species wins, ``clear``
withdraws it), validates every row against the round's manifest and the label set and merges
it into ``data/labels/round_RR.csv`` (:data:`LABEL_COLUMNS`). All problems are collected and
reported together as ``file:line: message``; no row is ever dropped silently. The round file
is the merge of all imports (:func:`commit_import`): an import adds (unit, annotator) pairs,
an identical re-import changes nothing, and re-answering a pair needs ``--force``, which
replaces exactly that pair; another annotator's rows are never removed. Every change is kept
in ``<labels_dir>/history/round_RR/`` (``activepam labels history|restore``). Conflicts (two
annotators disagree, or one annotator gave two values: ``conflict`` = 1, not trained on) are
kept, printed and written to ``round_RR.conflicts.csv``. ``activepam labels
import-birdnet-review`` reads BirdNET-Analyzer's review folders (``Positive/``,
``Negative/``).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import soundfile as sf
from tqdm import tqdm

from activepam.core.io import atomic_path, write_csv

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
    "notes", "round", "source_file", "source_line", "conflict",
)
#: ``species`` value of the row that records a reviewed unit with no species present
NO_SPECIES = ""

#: ``present`` of an unsure answer: neither present nor absent (masked in training)
UNSURE = -1
#: the three label values of ``present``: present, absent, unsure
LABEL_VALUES: tuple[int, ...] = (1, 0, UNSURE)

_TRUE = {"1", "yes", "y", "true", "t", "present", "p"}
_FALSE = {"0", "no", "n", "false", "f", "absent", "a"}
_UNSURE = {"unsure", "u", "?!", "maybe", "uncertain", "-1"}
#: seconds a selection may stick out of the clip (rounding in Raven)
TIME_TOLERANCE_S = 0.05
#: clips longer than this get no spectrogram PNG (a day-long recording would be unreadable)
MAX_SPECTROGRAM_S = 600.0


class LabelImportError(ValueError):
    """Label files failed validation; the message lists every problem as ``file:line: msg``."""

    def __init__(self, problems: Sequence[str], limit: int = 60,
                 summary: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        #: counts over the problems (e.g. "3 unanswered row(s) in 1 file(s)"), shown first
        self.summary = list(summary)
        shown = self.problems[:limit]
        more = len(self.problems) - len(shown)
        msg = f"{len(self.problems)} problem(s) in the label files:\n  " + "\n  ".join(
            [*self.summary, *shown])
        if more:
            msg += f"\n  ... and {more} more (the CLI lists them all)"
        super().__init__(msg)

    def full(self) -> str:
        """The message with every problem (no limit)."""
        return f"{len(self.problems)} problem(s) in the label files:\n  " + "\n  ".join(
            [*self.summary, *self.problems])


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
    """1 / 0 / :data:`UNSURE` of a Present cell (spellings in CONTRACTS.md "Labels"); None
    when the cell is *unanswered*: blank, ``?`` or any other value (see :func:`unanswered_why`).
    """
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    if text in _UNSURE:
        return UNSURE
    return None


def unanswered_why(value: Any, column: str = "Present") -> str:
    """Why a Present cell is unanswered (for the ``file:line`` message)."""
    text = str(value if value is not None else "").strip()
    if text == "":
        return (f"{column} is blank: unanswered (every row, also a newly drawn selection, must "
                "now carry an explicit value: 1 present, 0 absent or unsure)")
    if text == UNREVIEWED:
        return (f"{column} is '?' (model suggestion not reviewed): unanswered; set 1 (present), "
                "0 (absent) or unsure, or delete the row")
    return (f"{column} {text!r} is not a known answer (1/yes/present, 0/no/absent, "
            "unsure/maybe/u): unanswered")


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


#: words of common names too generic to make a name similar on their own
_GENERIC_WORDS = frozenset({"common", "eurasian", "european", "northern", "southern", "great",
                            "lesser", "little", "american", "western", "eastern"})


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

    #: similarity (difflib ratio) a label needs to be suggested
    SUGGEST_CUTOFF = 0.75

    def suggestions(self, name: str, n: int = 3) -> list[str]:
        """Labels similar to an unknown ``name``, best first (at most ``n``).

        The scientific part is compared with the labels' scientific parts and the common part
        with their common parts (a lone name with both), so a shared word such as "Common"
        never makes an unrelated species look close. A ``Scientific_Common`` query scores the
        mean of both parts, or one part alone when that part is very close (a typo).
        """
        text = str(name).strip().lower()
        if not text:
            return []
        ratio = lambda a, b: difflib.SequenceMatcher(None, a, b).ratio()  # noqa: E731
        q_sci, q_com = (p.strip() for p in text.split("_", 1)) if "_" in text else (text, text)
        both = "_" in text
        scored = []
        for lab in self.labels:
            low = lab.lower()
            l_sci, l_com = (p.strip() for p in low.split("_", 1)) if "_" in low else (low, low)
            s_sci, s_com = ratio(q_sci, l_sci), ratio(q_com, l_com)
            if both:
                score = max(ratio(text, low), (s_sci + s_com) / 2,
                            *(s for s in (s_sci, s_com) if s >= 0.8))
            else:
                score = max(s_sci, s_com, ratio(text, low))
                if set(text.split()) - _GENERIC_WORDS and set(text.split()) <= set(l_com.split()):
                    score = max(score, 0.8)  # "Blackbird" -> "..._Common Blackbird"
            if score >= self.SUGGEST_CUTOFF:
                scored.append((-score, lab))
        return [lab for _, lab in sorted(scored)[:n]]

    def suggest(self, name: str) -> str | None:
        """The closest label to an unknown ``name`` (:meth:`suggestions`), or None."""
        best = self.suggestions(name, 1)
        return best[0] if best else None

    def error(self, name: str) -> str:
        """One-line message for an unknown species: the closest real labels, never an
        unrelated one; a well-formed ``Scientific_Common`` name is said to be missing from the
        label set."""
        hints = self.suggestions(name)
        well_formed = re.fullmatch(r"[A-Z][a-z]+ [a-z-]+_\S.*", str(name).strip()) is not None
        msg = f"species {name!r} is not in the label set"
        if well_formed:
            if hints:
                return msg + f"; closest in the label set: {', '.join(map(repr, hints))}"
            return msg + " (no similar label; add it to the label set if it belongs there)"
        if hints:
            return msg + f"; did you mean {' or '.join(map(repr, hints))}?"
        return msg


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
                   batch_by: str = "round_robin", avoid: pd.Series | None = None) -> pd.Series:
    """Annotator (batch) of every unit: round-robin by rank, or whole strata per annotator
    (largest strata first, each to the annotator with the fewest units); ``all`` without
    annotators. ``avoid`` (aligned with ``sample``: ``;``-joined annotator names per unit, e.g.
    the ones who were unsure about a re-offered unit) moves a unit given to one of them to the
    least loaded other annotator (in rank order); kept when every annotator is to be avoided."""
    if not annotators:
        return pd.Series("all", index=sample.index)
    names = [unit_stem(a) for a in annotators]
    order = np.argsort(sample["rank"].to_numpy(), kind="stable") if "rank" in sample else \
        np.arange(len(sample))
    out = pd.Series("", index=sample.index, dtype=object)
    if batch_by == "round_robin":
        for i, pos in enumerate(order):
            out.iloc[pos] = names[i % len(names)]
        return _route_away(out, avoid, names, order, rebalance=True)
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
    return _route_away(out, avoid, names, order)


def _route_away(out: pd.Series, avoid: pd.Series | None, names: Sequence[str],
                order: np.ndarray, rebalance: bool = False) -> pd.Series:
    """:func:`assign_batches`' ``avoid``: reassign units given to an annotator to avoid; with
    ``rebalance`` (round-robin) a later unit of the new annotator goes back in exchange."""
    if avoid is None:
        return out
    bad = [{unit_stem(a) for a in str(v).split(";") if a.strip()} if isinstance(v, str) else set()
           for v in avoid.reindex(out.index).tolist()]
    load = {n: int((out == n).sum()) for n in names}
    for k, pos in enumerate(order):
        who, skip = out.iloc[pos], bad[pos]
        free = [n for n in names if n not in skip]
        if who not in skip or not free:
            continue
        new = min(free, key=lambda a: (load[a], names.index(a)))
        out.iloc[pos] = new
        back = [q for q in order[k + 1:] if rebalance and out.iloc[q] == new and who not in bad[q]]
        if back:
            out.iloc[back[0]] = who
        else:
            load[who] -= 1
            load[new] += 1
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
    """Write the spectrogram of ``clip`` as a PNG atomically, with time (s) and frequency (kHz)
    axes and the target marked: the review page's renderer
    (:func:`activepam.review.spectrogram.write_spectrogram_png`), so both show the same."""
    from activepam.review.spectrogram import write_spectrogram_png

    return write_spectrogram_png(clip, out, target, max_hz, title=Path(clip).stem)


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

    ``sample`` is the output of :func:`activepam.sampling.engine.sample` (``unit_id, unit_type,
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
    batches = assign_batches(sample, options.annotators, options.batch_by,
                             avoid=sample["unsure_by"] if "unsure_by" in sample else None)
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


@dataclass
class DelimitedTable:
    """A delimited text file as read: header, data rows, and how it was decoded."""

    header: list[str]
    rows: list[RawRow]
    delimiter: str
    encoding: str

    def described(self) -> str:
        """``header read as utf-16, ';'-separated: a | b | c`` (for missing-column messages)."""
        name = {"\t": "tab", ",": "','", ";": "';'"}.get(self.delimiter, repr(self.delimiter))
        cols = " | ".join(h for h in self.header if h) or "none"
        return f"header read as {self.encoding}, {name}-separated: {cols}"


#: delimiters tried when reading a table (the file's preferred one wins ties)
DELIMITERS: tuple[str, ...] = ("\t", ",", ";")


def _decode(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a file: BOMs (UTF-8, UTF-16 LE/BE), UTF-16 without BOM (NUL
    bytes in every other position), then UTF-8, cp1252, latin-1."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    head = raw[:2000]
    if len(head) >= 4:
        odd, even = head[1::2].count(0), head[0::2].count(0)
        half = len(head) // 2
        if odd > 0.4 * half and even < 0.05 * half:
            return raw.decode("utf-16-le", errors="replace"), "utf-16-le"
        if even > 0.4 * half and odd < 0.05 * half:
            return raw.decode("utf-16-be", errors="replace"), "utf-16-be"
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 decodes anything


def sniff_delimiter(header_line: str, preferred: str) -> str:
    """The delimiter of :data:`DELIMITERS` that splits ``header_line`` into the most fields
    (``preferred`` on ties)."""
    best, best_n = preferred, len(next(csv.reader([header_line], delimiter=preferred), []))
    for d in DELIMITERS:
        n = len(next(csv.reader([header_line], delimiter=d), []))
        if n > best_n:
            best, best_n = d, n
    return best


def read_table(path: str | Path, preferred: str = "\t") -> DelimitedTable:
    """A tab-, comma- or semicolon-separated file in any of the encodings of :func:`_decode`.

    The delimiter is detected from the header line (``preferred`` on ties). Short rows are
    padded with empty cells; cells beyond the header must be empty.
    """
    path = Path(path)
    text, encoding = _decode(path.read_bytes())
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise LabelImportError([f"{path}:1: empty file (no header line)"])
    delimiter = sniff_delimiter(lines[0], preferred)
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
    return DelimitedTable(header, rows, delimiter, encoding)


def read_delimited(path: str | Path, delimiter: str = "\t") -> tuple[list[str], list[RawRow]]:
    """Header and data rows of :func:`read_table` (``delimiter`` preferred, not forced)."""
    t = read_table(path, delimiter)
    return t.header, t.rows


def _species_column(header: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    for name in SPECIES_COLUMNS:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _column(header: Sequence[str], name: str) -> str | None:
    lower = {h.lower(): h for h in header}
    return lower.get(name.lower())


#: Raven columns that make up the *content* of a selection (the answer); measurement columns
#: (e.g. "Avg Power Density") differ between a selection's Waveform and Spectrogram rows
SELECTION_CONTENT: tuple[str, ...] = (
    "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
    *SPECIES_COLUMNS, "Present", "Confidence", "Annotator", "Notes")


def _content_cell(value: str) -> str:
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return value.strip().lower()


def merge_views(rows: list[RawRow], header: Sequence[str]) -> tuple[list[RawRow], int]:
    """Raven lists a selection once per view (Waveform, Spectrogram): rows with the same
    Selection number AND the same content (:data:`SELECTION_CONTENT`: times, frequencies,
    species, Present, ...; measurements may differ) are one selection (the Spectrogram row is
    kept). A reused Selection number with other content (another species, other times) is
    another answer: kept. Returns the rows and how many view rows were merged.
    """
    sel, view = _column(header, "Selection"), _column(header, "View")
    if not sel or not view:
        return rows, 0
    content_cols = [c for c in (_column(header, n) for n in SELECTION_CONTENT) if c]
    groups: dict[tuple[Any, ...], list[RawRow]] = {}
    for r in rows:
        content = tuple(_content_cell(r.cells.get(c, "")) for c in content_cols)
        key = (r.cells.get(sel, ""), content) if r.cells.get(sel, "") else (id(r),)
        groups.setdefault(key, []).append(r)
    keep_ids, merged = set(), 0
    for grp in groups.values():
        views = [r.cells.get(view, "") for r in grp]
        if len(grp) == 1 or len(set(views)) == 1:
            keep_ids.update(id(r) for r in grp)  # one view (or exact repeats: kept, reported)
            continue
        by_view: dict[str, list[RawRow]] = {}
        for r, v in zip(grp, views):
            by_view.setdefault(v, []).append(r)
        spec = [v for v in by_view if v.lower().startswith("spectrogram")]
        best = spec[0] if spec else max(by_view, key=lambda v: len(by_view[v]))
        keep_ids.update(id(r) for r in by_view[best])
        merged += len(grp) - len(by_view[best])
    return [r for r in rows if id(r) in keep_ids], merged


# --------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """Validated labels, annotator conflicts and notes (warnings) of one import."""

    labels: pd.DataFrame
    conflicts: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


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
    """Label files from files and folders (``*.txt`` Raven tables, ``*.csv`` label CSVs and
    review journals; ``manifest.csv`` and other files in folders are skipped with a note)."""
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


#: suffix of a review journal file (``<annotator>.journal.csv``)
JOURNAL_SUFFIX = ".journal.csv"
#: journal ``present`` value withdrawing an answer
JOURNAL_CLEAR = "clear"


class _Importer:
    """Row-by-row validation shared by Raven tables, CSV files and review journals."""

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
        #: unanswered rows: (source, line, unit_id, annotator, message)
        self.unanswered: list[tuple[str, int, str, str, str]] = []
        #: display names of the files read
        self.sources: list[str] = []

    def _annotator(self, value: str, unit: Mapping[str, Any]) -> str:
        return (value or str(unit.get("annotator") or "") or self.default_annotator
                or "unknown").strip()

    def _base(self, unit: Mapping[str, Any], source: str, line: int) -> dict[str, Any]:
        return {"unit_id": str(unit["unit_id"]), "unit_type": unit["unit_type"],
                "recording_id": unit["recording_id"], "path": unit["path"],
                "start_s": float(unit["start_s"]), "end_s": float(unit["end_s"]),
                "round": self.round, "source_file": source, "source_line": line}

    def _read(self, path: Path, source: str, preferred: str) -> DelimitedTable | None:
        try:
            return read_table(path, preferred)
        except LabelImportError as exc:
            self.problems.extend(p.replace(str(path), source, 1) for p in exc.problems)
        except OSError as exc:
            self.problems.append(f"{source}: cannot read: {exc.strerror or exc}")
        return None

    def raven(self, path: Path, source: str) -> None:
        t = self._read(path, source, "\t")
        if t is None:
            return
        header, rows = t.header, t.rows
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
                                 f"{', '.join(h for h in header if h) or 'none'}; "
                                 f"{t.described()})")
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
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        # no Present column at all (a table drawn from scratch): every selection is present
        present = parse_present(get("Present")) if cols["Present"] else 1
        if present is None:
            self.unanswered.append((source, r.line, str(unit["unit_id"]),
                                    self._annotator(get("Annotator"), unit),
                                    f"{where}: {unanswered_why(get('Present'))}"))
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
        t = self._read(path, source, ",")
        if t is None:
            return
        header, rows = t.header, t.rows
        if _column(header, "answered_at"):
            self.journal(t, path, source)
            return
        missing = [c for c in ("unit_id", "species", "present") if not _column(header, c)]
        if missing:
            self.problems.append(f"{source}:1: missing column(s) {', '.join(missing)} (a label "
                                 "CSV needs unit_id, species, present[, annotator, confidence, "
                                 f"notes]; {t.described()})")
            return
        if not rows:
            self.problems.append(f"{source}:1: header only, no label rows (an empty CSV labels "
                                 "nothing; give one row per answer)")
            return
        self._check_path_cells(rows, header, source)
        col = {n: _column(header, n) for n in ("unit_id", "species", "present", "annotator",
                                               "confidence", "notes")}
        for r in rows:
            get = lambda name: r.cells.get(col[name] or "", "")  # noqa: E731
            self._answer(r.line, source, get("unit_id"), get("species"), get("present"),
                         get("annotator"), get("confidence"), get("notes"))

    def _answer(self, line: int, source: str, uid: str, name: str, present_text: str,
                annotator: str, confidence: str, notes: str, record: bool = True
                ) -> dict[str, Any] | None:
        """Validate one CSV / journal answer; append it (``record``) and return the row."""
        where = f"{source}:{line}"
        unit = self.units.get(uid)
        if unit is None:
            self.problems.append(f"{where}: unknown unit_id {uid!r} (not in this round's "
                                 "manifest)")
            return None
        try:
            conf = _optional_float(confidence, "confidence")
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        present = parse_present(present_text)
        who = self._annotator(annotator, unit)
        if present is None:
            why = unanswered_why(present_text, "present")
            if present_text.strip() == "":
                why = "present is empty: " + why.split(": ", 1)[1]
            self.unanswered.append((source, line, uid, who, f"{where}: {why}"))
            return None
        if name == "":
            if present != 0:
                self.problems.append(f"{where}: empty species with present="
                                     f"{'1' if present == 1 else 'unsure'} (an empty species "
                                     "with present=0 marks a unit with no species)")
                return None
            species = NO_SPECIES
        else:
            species = self.resolver.resolve(name)
            if species is None:
                self.problems.append(f"{where}: {self.resolver.error(name)}")
                return None
        row = {**self._base(unit, source, line), "species": species, "present": present,
               "in_target": 1, "annotator": who, "confidence": conf, "notes": notes}
        if record:
            self.rows.append(row)
        return row

    def journal(self, t: DelimitedTable, path: Path, source: str) -> None:
        """A review journal (CONTRACTS.md "Review journal"): the last event per (unit,
        annotator, species) wins (by ``seq``, then line); ``clear`` withdraws the answer."""
        missing = [c for c in ("unit_id", "species", "present") if not _column(t.header, c)]
        if missing:
            self.problems.append(f"{source}:1: journal lacks column(s) {', '.join(missing)} "
                                 f"({t.described()})")
            return
        if not t.rows:
            self.notes.append(f"{source}: journal has no answers yet")
            return
        col = {n: _column(t.header, n) for n in ("unit_id", "species", "present", "annotator",
                                                 "confidence", "notes", "seq")}
        file_annotator = path.name[: -len(JOURNAL_SUFFIX)] if \
            path.name.lower().endswith(JOURNAL_SUFFIX) else ""
        events: list[tuple[float, int, tuple[str, str, str], dict[str, Any] | None]] = []
        for r in t.rows:
            get = lambda name: r.cells.get(col[name] or "", "")  # noqa: E731
            seq_text = get("seq")
            try:
                seq = float(int(seq_text)) if seq_text else math.inf
            except ValueError:
                self.problems.append(f"{source}:{r.line}: seq {seq_text!r} is not an integer")
                continue
            ann = get("annotator") or file_annotator
            uid, name = get("unit_id"), get("species")
            if get("present").strip().lower() == JOURNAL_CLEAR:
                unit = self.units.get(uid)
                if unit is None:
                    self.problems.append(f"{source}:{r.line}: unknown unit_id {uid!r} (not in "
                                         "this round's manifest)")
                    continue
                species = NO_SPECIES if name == "" else self.resolver.resolve(name)
                if species is None:
                    self.problems.append(f"{source}:{r.line}: {self.resolver.error(name)}")
                    continue
                key = (uid, self._annotator(ann, unit), species)
                events.append((seq, r.line, key, None))
                continue
            row = self._answer(r.line, source, uid, name, get("present"), ann,
                               get("confidence"), get("notes"), record=False)
            if row is not None:
                events.append((seq, r.line, (row["unit_id"], row["annotator"], row["species"]),
                               row))
        last: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        for _, _, key, row in sorted(events, key=lambda e: (e[0], e[1])):
            last[key] = row
        superseded = len(events) - len(last)
        cleared = sum(v is None for v in last.values())
        kept = [row for row in last.values() if row is not None]
        self.rows.extend(sorted(kept, key=lambda row: row["source_line"]))
        if superseded or cleared:
            self.notes.append(f"{source}: journal of {len(events)} event(s): {superseded} "
                              f"superseded by a later answer, {cleared} answer(s) cleared, "
                              f"{len(kept)} kept")

    def result(self, manifest: pd.DataFrame, previous: Mapping[str, set[str]] | None,
               skip_unanswered: bool = False) -> ImportResult:
        """Check the collected rows (unanswered, earlier rounds) and build the result."""
        labels = pd.DataFrame(self.rows).reindex(columns=list(LABEL_COLUMNS))
        problems = list(self.problems)
        summary: list[str] = []
        notes = list(self.notes)
        if self.unanswered:
            n_files = len({u[0] for u in self.unanswered})
            msgs = [u[4] for u in self.unanswered]
            if skip_unanswered:
                drop = {(u[0], u[2], u[3]) for u in self.unanswered}
                keys = list(zip(labels["source_file"], labels["unit_id"], labels["annotator"]))
                mask = np.array([k in drop for k in keys], dtype=bool)
                labels = labels[~mask]
                notes.append(f"{len(msgs)} unanswered row(s) in {n_files} file(s); their "
                             f"{len(drop)} unit(s) were left out of this import (their other "
                             f"rows too, so that no species becomes absent by omission): "
                             + "; ".join(msgs))
            else:
                summary.append(f"{len(msgs)} unanswered row(s) in {n_files} file(s) (blank, "
                               "'?' or unknown Present): answer them, or pass "
                               "--skip-unanswered to import the other units")
                problems.extend(msgs)
        n_units = labels["unit_id"].nunique()
        for prev_file, units in (previous or {}).items():
            again = labels[labels["unit_id"].isin(units)].drop_duplicates("unit_id")
            if len(again):
                summary.append(f"{len(again)} of {n_units} unit(s) of this import were already "
                               f"labelled in {prev_file} (units are labelled in one round "
                               "only; listed below)")
            for r in again.itertuples(index=False):
                problems.append(f"{r.source_file}:{r.source_line}: unit {r.unit_id!r} was "
                                f"already labelled in {prev_file}")
        if not problems and labels.empty:
            names = sorted(set(self.sources))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3
                                             else "")
            problems.append(f"no explicit answers in {shown or 'the input'}: nothing to import")
        if problems:
            raise LabelImportError(problems, summary=summary)
        labels = mark_conflicts(_finalise(labels))
        conflicts = find_conflicts(labels)
        dups = find_duplicates(labels)
        if len(dups):
            notes.append(f"{len(dups)} duplicate row(s) kept (same unit, annotator, species, "
                         f"times): first at {dups['source_file'].iloc[0]}:"
                         f"{dups['source_line'].iloc[0]}")
        notes.extend(conflict_notes(conflicts))
        unlabelled = sorted(set(manifest["unit_id"].astype(str)) - set(labels["unit_id"]))
        if unlabelled:
            notes.append(f"{len(unlabelled)} of {len(manifest)} units have no labels yet: "
                         f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}")
        n_unsure = int((labels["present"] == UNSURE).sum())
        if n_unsure:
            notes.append(f"{n_unsure} unsure answer(s) (kept; not trained on)")
        return ImportResult(labels, conflicts, notes, sorted(set(self.sources)))


def _stem_of(name: str) -> str:
    """Clip stem of a Raven table or clip file name."""
    stem = _TABLE_RE.sub("", name)
    for suffix in (".txt", ".wav", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def _answer_rows(labels: pd.DataFrame) -> pd.DataFrame:
    return labels[(labels["in_target"] == 1) & (labels["species"] != NO_SPECIES)]


def mark_conflicts(labels: pd.DataFrame) -> pd.DataFrame:
    """``conflict`` = 1 on the in-target rows of every (unit, annotator, species) for which
    that annotator gave different explicit values (present / absent / unsure), else 0."""
    labels = labels.copy()
    labels["conflict"] = 0
    if labels.empty:
        return labels
    ans = _answer_rows(labels)
    n_vals = ans.groupby(["unit_id", "annotator", "species"])["present"].transform("nunique")
    labels.loc[n_vals[n_vals > 1].index, "conflict"] = 1
    labels["conflict"] = labels["conflict"].astype("int64")
    return labels


#: columns of ``round_RR.conflicts.csv``
CONFLICT_COLUMNS: tuple[str, ...] = ("unit_id", "species", "kind", "present_by", "absent_by",
                                     "unsure_by", "sources")


def find_conflicts(labels: pd.DataFrame) -> pd.DataFrame:
    """Disputed (unit, species) cells (:data:`CONFLICT_COLUMNS`, ``sources`` as file:line).

    ``kind = same_annotator``: one annotator gave different explicit values (rows flagged by
    :func:`mark_conflicts`). ``kind = annotators``: one annotator says present (an in-target
    present row), another absent (an absent row, or no row: closed world). Unsure is neither:
    unsure annotators are listed in ``unsure_by`` but unsure against present or absent alone is
    not a conflict; a cell an annotator contradicted themselves on does not take part.
    """
    cols = list(CONFLICT_COLUMNS)
    if labels.empty:
        return pd.DataFrame(columns=cols)
    if "conflict" not in labels.columns:
        labels = mark_conflicts(labels)
    where = lambda g: ";".join(f"{f}:{ln}" for f, ln in  # noqa: E731
                               zip(g["source_file"], g["source_line"]))
    out = []
    ans = _answer_rows(labels)
    for (uid, ann, sp), g in ans[ans["conflict"] == 1].groupby(
            ["unit_id", "annotator", "species"], sort=True):
        vals = set(g["present"])
        out.append({"unit_id": uid, "species": sp, "kind": "same_annotator",
                    "present_by": ann if 1 in vals else "", "absent_by": ann if 0 in vals else "",
                    "unsure_by": ann if UNSURE in vals else "", "sources": where(g)})
    for uid, grp in labels.groupby("unit_id", sort=True):
        annotators = sorted(grp["annotator"].unique())
        if len(annotators) < 2:
            continue
        a = _answer_rows(grp)
        bad = set(zip(a.loc[a["conflict"] == 1, "annotator"], a.loc[a["conflict"] == 1,
                                                                     "species"]))
        for sp, sgrp in a[a["present"] == 1].groupby("species", sort=True):
            yes = sorted(x for x in sgrp["annotator"].unique() if (x, sp) not in bad)
            unsure = sorted(x for x in a.loc[(a["species"] == sp) & (a["present"] == UNSURE),
                                             "annotator"].unique()
                            if (x, sp) not in bad and x not in yes)
            no = [x for x in annotators if x not in yes and x not in unsure and (x, sp) not in bad]
            if yes and no:
                out.append({"unit_id": uid, "species": sp, "kind": "annotators",
                            "present_by": ";".join(yes), "absent_by": ";".join(no),
                            "unsure_by": ";".join(unsure),
                            "sources": where(grp[(grp["species"] == sp)
                                                 | (grp["annotator"].isin(no))])})
    return pd.DataFrame(out, columns=cols)


def conflict_notes(conflicts: pd.DataFrame) -> list[str]:
    """One note per conflict (printed by the import)."""
    notes = []
    for c in conflicts.itertuples(index=False):
        if c.kind == "same_annotator":
            vals = [v for v, who in (("present", c.present_by), ("absent", c.absent_by),
                                     ("unsure", c.unsure_by)) if who]
            notes.append(f"conflict: unit {c.unit_id} species {c.species}: annotator "
                         f"{c.present_by or c.absent_by or c.unsure_by} answered "
                         f"{' and '.join(vals)} ({c.sources}); kept, not trained on until "
                         "resolved (see conflicts file)")
        else:
            notes.append(f"conflict: unit {c.unit_id} species {c.species}: present for "
                         f"{c.present_by}, absent for {c.absent_by} (kept; see conflicts file)")
    return notes


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
                  previous: Mapping[str, set[str]] | None = None,
                  skip_unanswered: bool = False) -> ImportResult:
    """Validate label files against a round's ``manifest`` and ``label_set``.

    ``previous`` maps earlier label files to the unit ids they label: a unit labelled before
    is refused. Unanswered rows (blank, ``?`` or unknown Present) are problems, or with
    ``skip_unanswered`` their units are left out of this import (reported per file:line).
    Raises :class:`LabelImportError` listing every problem; otherwise returns the label rows
    (:data:`LABEL_COLUMNS`, in input order), conflicts and notes.
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
        imp.sources.append(source)
        if f.suffix.lower() == ".csv":
            imp.csv(f, source)
        else:
            imp.raven(f, source)
    return imp.result(manifest, previous, skip_unanswered)


def _finalise(labels: pd.DataFrame) -> pd.DataFrame:
    labels = labels.copy()
    labels["present"] = labels["present"].astype("int64")
    labels["in_target"] = labels["in_target"].fillna(1).astype("int64")
    labels["source_line"] = labels["source_line"].astype("int64")
    labels["conflict"] = labels["conflict"].fillna(0).astype("int64")
    for c in ("species", "annotator", "notes"):
        labels[c] = labels[c].fillna("").astype(str)
    return labels


# --------------------------------------------------------------------------- BirdNET-Analyzer


#: folders BirdNET-Analyzer's review tab moves clips into, and the label each means
BIRDNET_REVIEW_DIRS: dict[str, int] = {"positive": 1, "negative": 0}
#: audio suffixes BirdNET-Analyzer reads (``cfg.ALLOWED_FILETYPES``)
BIRDNET_AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".wma", ".aiff",
                                    ".aif"})
#: a segment written by ``birdnet_analyzer.segments``:
#: ``<confidence:.3f>_<n>_<recording stem>_<start:.2f>s_<end:.2f>s.<ext>`` (start/end in the
#: recording)
BIRDNET_SEGMENT_RE = re.compile(r"^(?P<conf>\d+(?:\.\d+)?)_(?P<n>\d+)_(?P<rec>.+)_"
                                r"(?P<start>\d+(?:\.\d+)?)s_(?P<end>\d+(?:\.\d+)?)s$")


def _birdnet_unit(imp: _Importer, stem: str, by_rec: Mapping[str, list[str]]
                  ) -> tuple[str | None, tuple[float, float] | None]:
    """Unit of a reviewed clip: our exported clip name, or a BirdNET-Analyzer segment name
    (recording stem + start/end) matched to the unit overlapping it most (a segment unit that
    covers at least half of it, else a recording unit of that recording)."""
    uid = imp.by_stem.get(stem.lower())
    if uid is not None:
        return uid, None
    m = BIRDNET_SEGMENT_RE.match(stem)
    if not m:
        return None, None
    start, end = float(m["start"]), float(m["end"])
    best, best_ov = None, 0.0
    for cand in by_rec.get(m["rec"].lower(), []):
        u = imp.units[cand]
        if u["unit_type"] == "recording":
            continue
        ov = min(end, float(u["end_s"])) - max(start, float(u["start_s"]))
        if ov > best_ov:
            best, best_ov = cand, ov
    if best is not None and best_ov >= 0.5 * (end - start) - 1e-6:
        return best, (start, end)
    rec_units = [c for c in by_rec.get(m["rec"].lower(), [])
                 if imp.units[c]["unit_type"] == "recording"]
    return (rec_units[0] if rec_units else None), (start, end)


def import_birdnet_review(folder: str | Path, manifest: pd.DataFrame, label_set: Sequence[str],
                          *, round_id: int | str, species: str | None = None,
                          species_from_folder: bool = False, annotator: str | None = None,
                          closed_world: bool = False,
                          previous: Mapping[str, set[str]] | None = None) -> ImportResult:
    """Labels from BirdNET-Analyzer's review tab: clips moved into ``Positive/`` (present = 1)
    and ``Negative/`` (present = 0) folders, either directly under ``folder`` or under one
    folder per species (``<species>/Positive/``, as ``birdnet_analyzer.segments`` writes them).

    Each clip is mapped to a unit of the manifest by its name: one of our exported clips
    (``<stem>.wav``), or a BirdNET-Analyzer segment
    (``<conf>_<n>_<recording>_<start>s_<end>s.wav``) whose recording and times are matched to
    a unit (:func:`_birdnet_unit`). The species is ``species`` or (``species_from_folder``) the
    folder holding ``Positive/``/``Negative/``, resolved against the label set.

    BirdNET-Analyzer's review answers one species per clip, while a label file is closed world
    per (unit, annotator): so every other label-set species of a reviewed unit gets an unsure
    row (masked in training) unless ``closed_world`` (the reviewer vouches that no other
    species is audible).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if (species is None) == (not species_from_folder):
        raise ValueError("give exactly one of species (--species NAME) and "
                         "species_from_folder (--species-from-folder)")
    resolver = SpeciesResolver(label_set)
    imp = _Importer(manifest, resolver, round_name(round_id), annotator)
    by_rec: dict[str, list[str]] = {}
    for uid, u in imp.units.items():
        for key in {PurePosixPath(str(u["path"]).replace("\\", "/")).stem.lower(),
                    str(u["recording_id"]).lower()}:
            by_rec.setdefault(key, []).append(uid)
    fixed = None
    if species is not None:
        fixed = resolver.resolve(species)
        if fixed is None:
            raise LabelImportError([f"--species: {resolver.error(species)}"])
    clips = sorted(f for f in folder.rglob("*") if f.is_file()
                   and f.suffix.lower() in BIRDNET_AUDIO_SUFFIXES and not f.name.startswith("."))
    pending = 0
    for f in clips:
        verdict = BIRDNET_REVIEW_DIRS.get(f.parent.name.lower())
        if verdict is None:
            pending += 1
            continue
        source = f.relative_to(folder).as_posix()
        imp.sources.append(source)
        sp = fixed
        if sp is None:
            sp_dir = f.parent.parent
            if sp_dir.resolve() == folder.resolve():
                imp.problems.append(f"{source}: no species folder above {f.parent.name}/ "
                                    "(give --species NAME)")
                continue
            sp = resolver.resolve(sp_dir.name)
            if sp is None:
                imp.problems.append(f"{source}: species folder: {resolver.error(sp_dir.name)}")
                continue
        uid, span = _birdnet_unit(imp, f.stem, by_rec)
        if uid is None:
            imp.problems.append(f"{source}: no unit of this round's manifest matches this clip "
                                "(expected an exported clip name or a BirdNET-Analyzer segment "
                                "<conf>_<n>_<recording>_<start>s_<end>s)")
            continue
        unit = imp.units[uid]
        row = {**imp._base(unit, source, 0), "species": sp, "present": verdict, "in_target": 1,
               "annotator": imp._annotator("", unit), "notes": "BirdNET-Analyzer review"}
        if span is not None:
            row |= {"sel_begin_s": span[0], "sel_end_s": span[1]}
        imp.rows.append(row)
    if pending:
        imp.notes.append(f"{pending} clip(s) not reviewed yet (not in a Positive/ or Negative/ "
                         "folder): left out")
    if not closed_world and imp.rows:
        reviewed: dict[tuple[str, str], set[str]] = {}
        first: dict[tuple[str, str], dict[str, Any]] = {}
        for row in imp.rows:
            key = (row["unit_id"], row["annotator"])
            reviewed.setdefault(key, set()).add(row["species"])
            first.setdefault(key, row)
        for key, done in reviewed.items():
            base = first[key]
            for sp in resolver.labels:
                if sp not in done:
                    imp.rows.append({**{c: base[c] for c in ("unit_id", "unit_type",
                                                             "recording_id", "path", "start_s",
                                                             "end_s", "round", "source_file",
                                                             "source_line", "annotator")},
                                     "species": sp, "present": UNSURE, "in_target": 1,
                                     "notes": "not reviewed (BirdNET-Analyzer review covers "
                                              "one species per clip)"})
    return imp.result(manifest, previous)


# --------------------------------------------------------------------------- label files


def read_labels(path: str | Path) -> pd.DataFrame:
    """A label file written by :func:`write_labels` (species "" kept as empty string;
    ``conflict`` added as 0 to files written before it existed)."""
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
    present = pd.to_numeric(df["present"], errors="coerce")
    bad = ~present.isin(LABEL_VALUES)
    if bad.any():
        raise ValueError(f"{path}:{int(np.flatnonzero(bad)[0]) + 2}: present must be 1, 0 or "
                         f"{UNSURE} (unsure)")
    df["present"] = present.astype("int64")
    if "conflict" not in df.columns:
        df["conflict"] = 0
    df["conflict"] = pd.to_numeric(df["conflict"], errors="coerce").fillna(0).astype("int64")
    return df


def write_labels(result: ImportResult, out: str | Path, force: bool = False) -> Path:
    """Write the labels (and ``<name>.conflicts.csv`` when annotators disagree).

    Refuses to overwrite an existing label file unless ``force`` (:func:`commit_import` merges
    into it instead).
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: labels are never overwritten (use --force to "
                              "replace them deliberately)")
    _write_round(result.labels, result.conflicts, out)
    return out


def _write_round(labels: pd.DataFrame, conflicts: pd.DataFrame, out: Path) -> None:
    write_csv(labels.reindex(columns=list(LABEL_COLUMNS)), out, stage="labels")
    cpath = out.with_name(out.stem + ".conflicts.csv")
    if len(conflicts):
        write_csv(conflicts, cpath, stage="labels")
    elif cpath.exists():
        cpath.unlink()


def previous_label_units(labels_dir: str | Path, round_label: str) -> dict[str, set[str]]:
    """Unit ids of the label files a new import must not overlap: for ``round_RR`` the earlier
    rounds and ``test.csv``; for ``test`` every round. A unit whose answers there are all
    unsure is not included: it may be offered again (to another annotator) and labelled in a
    later round."""
    out = {}
    for f in sorted(Path(labels_dir).glob("*.csv")):
        if f.stem == round_label or not re.fullmatch(r"round_\d{2}|test", f.stem):
            continue
        if round_label.startswith("round_") and f.stem.startswith("round_") \
                and f.stem >= round_label:
            continue  # a later round's (possibly stale) file is not "before" this one
        lab = read_labels(f)
        settled = lab.groupby(lab["unit_id"].astype(str))["present"].apply(
            lambda p: bool((p != UNSURE).any()))
        out[f.as_posix()] = set(settled.index[settled.to_numpy(bool)])
    return out


# --------------------------------------------------------------------------- merge + history

#: label columns compared to decide whether a re-imported (unit, annotator) pair changed
_COMPARE_COLUMNS: tuple[str, ...] = ("species", "present", "sel_begin_s", "sel_end_s", "low_hz",
                                     "high_hz", "in_target", "confidence", "notes")


def _pair_answers(rows: pd.DataFrame) -> dict[tuple[str, str], tuple[tuple[str, ...], ...]]:
    """Canonical answers per (unit, annotator): sorted tuples of :data:`_COMPARE_COLUMNS`."""
    out: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for r in rows.to_dict("records"):
        cells = []
        for c in _COMPARE_COLUMNS:
            v = r.get(c)
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{v:.3f}"
            cells.append(str(v if v is not None else ""))
        out.setdefault((str(r["unit_id"]), str(r["annotator"])), []).append(tuple(cells))
    return {k: tuple(sorted(v)) for k, v in out.items()}


@dataclass
class MergeResult:
    """The round file after an import and what the import changed."""

    labels: pd.DataFrame
    applied: pd.DataFrame
    added: list[tuple[str, str]]
    replaced: list[tuple[str, str]]
    unchanged: list[tuple[str, str]]


def merge_round(existing: pd.DataFrame, new: pd.DataFrame, force: bool = False) -> MergeResult:
    """Merge an import into the round file: new (unit, annotator) pairs are added; a pair
    re-imported with identical answers is left as it is; a pair with different answers needs
    ``force`` and then replaces exactly that pair's rows. No other row is ever removed.
    Raises :class:`LabelImportError` (``file:line`` of the new row and the earlier one) for
    changed pairs without ``force``."""
    old_ans, new_ans = _pair_answers(existing), _pair_answers(new)
    added = [k for k in new_ans if k not in old_ans]
    unchanged = [k for k in new_ans if k in old_ans and old_ans[k] == new_ans[k]]
    changed = [k for k in new_ans if k in old_ans and old_ans[k] != new_ans[k]]
    if changed and not force:
        first = lambda df, k: df[(df["unit_id"].astype(str) == k[0])  # noqa: E731
                                 & (df["annotator"].astype(str) == k[1])].iloc[0]
        summary = [f"{len(changed)} (unit, annotator) pair(s) of this import were answered "
                   "differently in the round file already (--force replaces exactly these "
                   "pairs; every other row is kept)"]
        problems = []
        for k in changed:
            n, o = first(new, k), first(existing, k)
            problems.append(f"{n['source_file']}:{n['source_line']}: unit {k[0]!r} annotator "
                            f"{k[1]!r} already answered (from {o['source_file']}:"
                            f"{o['source_line']})")
        raise LabelImportError(problems, summary=summary)
    keys_new = list(zip(new["unit_id"].astype(str), new["annotator"].astype(str)))
    take = set(added) | set(changed)
    applied = new[[k in take for k in keys_new]]
    keys_old = list(zip(existing["unit_id"].astype(str), existing["annotator"].astype(str)))
    kept = existing[[k not in set(changed) for k in keys_old]]
    frames = [f for f in (kept, applied) if len(f)]
    merged = pd.concat(frames, ignore_index=True) if frames else new.iloc[0:0]
    merged = mark_conflicts(_finalise(merged.reindex(columns=list(LABEL_COLUMNS))))
    return MergeResult(merged, applied, added, changed, unchanged)


def history_dir(out: str | Path) -> Path:
    """History folder of a round file: ``<labels_dir>/history/<round>/``."""
    out = Path(out)
    return out.parent / "history" / out.stem


def read_history(out: str | Path) -> list[dict[str, Any]]:
    """Entries of a round's ``log.jsonl`` (oldest first)."""
    log_path = history_dir(out) / "log.jsonl"
    if not log_path.exists():
        return []
    entries = []
    for i, line in enumerate(log_path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{log_path}:{i}: not a JSON line") from None
    return entries


@contextmanager
def _history_lock(out: Path) -> Iterator[Path]:
    """Exclusive lock of a round's history (one import / restore at a time)."""
    hdir = history_dir(out)
    hdir.mkdir(parents=True, exist_ok=True)
    with open(hdir / ".lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            pass
        yield hdir


def _append_log(hdir: Path, entry: Mapping[str, Any]) -> None:
    with open(hdir / "log.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _snapshot(hdir: Path, n: int, round_labels: pd.DataFrame,
              rows: pd.DataFrame | None = None) -> None:
    if rows is not None:
        write_csv(rows.reindex(columns=list(LABEL_COLUMNS)), hdir / f"{n:04d}.csv",
                  stage="labels")
    write_csv(round_labels.reindex(columns=list(LABEL_COLUMNS)), hdir / f"{n:04d}.round.csv",
              stage="labels")


def _adopt_current(out: Path, hdir: Path, entries: list[dict[str, Any]]) -> list[str]:
    """Keep a round file that the history does not know (written before histories existed,
    or edited by hand) as a history entry before it is changed."""
    if not out.exists():
        if entries:
            return [f"{out} is missing: starting from no labels (the history keeps every "
                    f"earlier state: `activepam labels restore --round ... --to "
                    f"{entries[-1]['n']}`)"]
        return []
    if entries and (hdir / f"{entries[-1]['n']:04d}.round.csv").exists() and \
            (hdir / f"{entries[-1]['n']:04d}.round.csv").read_bytes() == out.read_bytes():
        return []
    n = (entries[-1]["n"] + 1) if entries else 1
    labels = read_labels(out)
    _snapshot(hdir, n, labels)
    entry = {"n": n, "action": "adopt", "time": _now(), "rows_total": int(len(labels)),
             "units_total": int(labels["unit_id"].nunique()),
             "note": "round file not in the history (older or edited by hand): kept as it was"}
    _append_log(hdir, entry)
    entries.append(entry)
    return [f"{out}: kept the existing round file as history entry {n} before changing it"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def commit_import(result: ImportResult, out: str | Path, force: bool = False,
                  action: str = "import") -> tuple[MergeResult | None, list[str]]:
    """Merge an import into the round file ``out`` (:func:`merge_round`), write it atomically
    with its conflicts file, and record the import in the round's history (rows of the import,
    the round file after it, a ``log.jsonl`` line). Returns the merge (None when nothing
    changed) and notes."""
    out = Path(out)
    with _history_lock(out) as hdir:
        entries = read_history(out)
        notes = _adopt_current(out, hdir, entries)
        existing = read_labels(out) if out.exists() else \
            pd.DataFrame(columns=list(LABEL_COLUMNS))
        merged = merge_round(existing, result.labels, force=force)
        if merged.unchanged:
            notes.append(f"{len(merged.unchanged)} (unit, annotator) pair(s) re-imported with "
                         "identical answers: unchanged")
        if not merged.added and not merged.replaced:
            notes.append(f"{out}: nothing new to import (unchanged)")
            return None, notes
        n = (entries[-1]["n"] + 1) if entries else 1
        conflicts = find_conflicts(merged.labels)
        _snapshot(hdir, n, merged.labels, merged.applied)
        _write_round(merged.labels, conflicts, out)
        _append_log(hdir, {
            "n": n, "action": action, "time": _now(), "sources": result.sources,
            "force": bool(force), "annotators": sorted(set(merged.applied["annotator"])),
            "rows_added": int(len(merged.applied)), "pairs_added": len(merged.added),
            "pairs_replaced": len(merged.replaced), "pairs_unchanged": len(merged.unchanged),
            "replaced": [list(k) for k in merged.replaced],
            "rows_total": int(len(merged.labels)),
            "units_total": int(merged.labels["unit_id"].nunique()),
            "conflicts": int(len(conflicts))})
        if merged.replaced:
            notes.append(f"--force: replaced the answers of {len(merged.replaced)} (unit, "
                         f"annotator) pair(s); history entry {n - 1 if n > 1 else 0} keeps "
                         "the earlier state")
        return merged, notes


def restore_labels(out: str | Path, to: int) -> pd.DataFrame:
    """Rebuild the round file ``out`` as it was after history entry ``to`` (written atomically,
    recorded as a new ``restore`` entry, so a restore can be undone too)."""
    out = Path(out)
    with _history_lock(out) as hdir:
        entries = read_history(out)
        known = {e["n"] for e in entries}
        state = hdir / f"{int(to):04d}.round.csv"
        if int(to) not in known or not state.exists():
            raise ValueError(f"{hdir}: no history entry {to} (entries: "
                             f"{', '.join(map(str, sorted(known))) or 'none'})")
        _adopt_current(out, hdir, entries)
        labels = mark_conflicts(_finalise(read_labels(state).reindex(
            columns=list(LABEL_COLUMNS))))
        conflicts = find_conflicts(labels)
        n = entries[-1]["n"] + 1
        _snapshot(hdir, n, labels)
        _write_round(labels, conflicts, out)
        _append_log(hdir, {"n": n, "action": "restore", "time": _now(), "restored": int(to),
                           "rows_total": int(len(labels)),
                           "units_total": int(labels["unit_id"].nunique()),
                           "conflicts": int(len(conflicts))})
        return labels


def format_history(entries: Sequence[Mapping[str, Any]]) -> str:
    """The history as a small text table."""
    lines = [f"{'n':>4}  {'time':25}  {'action':8}  {'+rows':>6}  {'+pairs':>6}  "
             f"{'replaced':>8}  {'rows':>6}  {'units':>5}  sources / note"]
    for e in entries:
        what = ", ".join(e.get("sources") or []) or e.get("note", "") or \
            (f"restored entry {e['restored']}" if "restored" in e else "")
        if len(what) > 60:
            what = what[:57] + "..."
        lines.append(f"{e['n']:>4}  {e.get('time', ''):25}  {e.get('action', ''):8}  "
                     f"{e.get('rows_added', ''):>6}  {e.get('pairs_added', ''):>6}  "
                     f"{e.get('pairs_replaced', ''):>8}  {e.get('rows_total', ''):>6}  "
                     f"{e.get('units_total', ''):>5}  {what}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _params_or_empty(path: str) -> dict[str, Any]:
    from activepam.core.config import load_params

    return load_params(path) if Path(path).exists() else {}


def label_set_path(params: Mapping[str, Any]) -> Path:
    """``rounds.label_set``, or ``species.csv`` in ``data.raw_dir`` when empty."""
    rounds = params.get("rounds") or {}
    path = rounds.get("label_set") or ""
    if path:
        return Path(path)
    return Path((params.get("data") or {}).get("raw_dir", "data/raw")) / "species.csv"


def _report(result: ImportResult, merged: MergeResult | None, notes: Sequence[str],
            out: Path) -> None:
    for note in [*result.notes, *notes]:
        log.warning(note)
        print(f"activepam labels: {note}", file=sys.stderr)
    if merged is None:
        return
    lab = merged.labels
    n_conf = len(find_conflicts(lab))
    print(f"activepam labels: {len(merged.applied)} label rows for "
          f"{merged.applied['unit_id'].nunique()} units imported; the round file has "
          f"{len(lab)} label rows for {lab['unit_id'].nunique()} units -> {out}"
          f"{f'; {n_conf} conflict(s)' if n_conf else ''}", file=sys.stderr)


def run_import(paths: Sequence[str | Path], round_id: int | str, manifest_path: str | Path,
               label_set: str | Path, out: str | Path, labels_dir: str | Path | None = None,
               force: bool = False, annotator: str | None = None,
               skip_unanswered: bool = False) -> ImportResult:
    """Import, merge into the round file (:func:`commit_import`: never removes another
    annotator's rows; ``force`` replaces re-answered (unit, annotator) pairs only), record the
    history, report notes/conflicts on stderr (and the log)."""
    out = Path(out)
    manifest = read_manifest(manifest_path)
    labels = read_label_set(label_set)
    prev = previous_label_units(labels_dir or out.parent, out.stem)
    result = import_labels(paths, manifest, labels, round_id=round_id,
                           default_annotator=annotator, previous=prev,
                           skip_unanswered=skip_unanswered)
    merged, notes = commit_import(result, out, force=force)
    _report(result, merged, notes, out)
    return result


def run_import_birdnet(folder: str | Path, round_id: int | str, manifest_path: str | Path,
                       label_set: str | Path, out: str | Path,
                       labels_dir: str | Path | None = None, *, species: str | None = None,
                       species_from_folder: bool = False, annotator: str | None = None,
                       closed_world: bool = False, force: bool = False) -> ImportResult:
    """:func:`import_birdnet_review` + the same merge, history and report as
    :func:`run_import`."""
    out = Path(out)
    manifest = read_manifest(manifest_path)
    labels = read_label_set(label_set)
    prev = previous_label_units(labels_dir or out.parent, out.stem)
    result = import_birdnet_review(folder, manifest, labels, round_id=round_id, species=species,
                                   species_from_folder=species_from_folder, annotator=annotator,
                                   closed_world=closed_world, previous=prev)
    merged, notes = commit_import(result, out, force=force, action="birdnet")
    _report(result, merged, notes, out)
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam labels import|import-birdnet-review|history|restore`` and
    ``activepam export``."""
    p = subparsers.add_parser("labels", help="import completed annotations as a round's labels")
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION")

    def common(sp: argparse.ArgumentParser, manifest: bool = True) -> None:
        sp.add_argument("--round", required=True, dest="round_id",
                        help="round number (0, 1, ...) or 'test' for the held-out test set")
        if manifest:
            sp.add_argument("--manifest", help="the round's manifest.csv (default: "
                            "results/rounds/<round>/annotation/manifest.csv)")
            sp.add_argument("--label-set", help="species label set (default: params "
                            "rounds.label_set)")
            sp.add_argument("--annotator", help="annotator name for rows that give none")
            sp.add_argument("--force", action="store_true",
                            help="replace the answers of (unit, annotator) pairs answered "
                            "differently before (only those pairs; the history keeps them)")
        sp.add_argument("--out", help="round label file (default: "
                        "<rounds.labels_dir>/<round>.csv)")
        sp.add_argument("--params", default="params.yaml",
                        help="parameter file (default: %(default)s)")

    imp = sub.add_parser("import", help="validate Raven tables / CSVs / review journals -> "
                         "merge into data/labels/round_RR.csv")
    imp.add_argument("sources", nargs="+", metavar="FILES_OR_DIR",
                     help="completed Raven selection tables (*.txt), label CSVs and/or review "
                     "journals (*.journal.csv), or folders")
    common(imp)
    imp.add_argument("--skip-unanswered", action="store_true",
                     help="leave out units with unanswered rows (blank/'?' Present) instead of "
                     "failing; each is reported as file:line")
    imp.set_defaults(func=_cli_import)

    bn = sub.add_parser("import-birdnet-review", help="import BirdNET-Analyzer review output "
                        "(clips in Positive/ and Negative/ folders)")
    bn.add_argument("folder", help="folder holding Positive/ and Negative/ (or one folder per "
                    "species holding them)")
    common(bn)
    which = bn.add_mutually_exclusive_group(required=True)
    which.add_argument("--species", help="the species every clip was reviewed for")
    which.add_argument("--species-from-folder", action="store_true",
                       help="the species is the name of the folder holding Positive/Negative")
    bn.add_argument("--closed-world", action="store_true",
                    help="the reviewer vouches no other label-set species is audible (default: "
                    "other species of a reviewed clip are recorded as unsure)")
    bn.set_defaults(func=_cli_birdnet)

    hist = sub.add_parser("history", help="list the imports of a round (its history)")
    common(hist, manifest=False)
    hist.set_defaults(func=_cli_history)

    res = sub.add_parser("restore", help="rebuild a round's label file as of history entry N")
    common(res, manifest=False)
    res.add_argument("--to", required=True, type=int, metavar="N", help="history entry")
    res.set_defaults(func=_cli_restore)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ex = subparsers.add_parser("export", help="export an annotation set (clips, spectrograms, "
                               "Raven tables, manifest) from a sample table")
    ex.add_argument("sample", help="sample table (Parquet/CSV) from activepam.sampling.engine.sample")
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


def _round_paths(args: argparse.Namespace) -> tuple[dict[str, Any], str, Path, Path]:
    """``(params, round name, labels_dir, round file)`` of a ``labels`` command."""
    params = _params_or_empty(args.params)
    name = round_name(args.round_id)
    rounds = params.get("rounds") or {}
    out = Path(args.out) if args.out else Path(rounds.get("labels_dir", "data/labels")) / \
        f"{name}.csv"
    labels_dir = Path(rounds.get("labels_dir", "data/labels")) if not args.out else out.parent
    return params, name, labels_dir, out


_CLI_ERRORS = (LabelImportError, FileExistsError, FileNotFoundError, ValueError, OSError)


def _cli_message(exc: BaseException) -> str:
    """An error for the terminal: a :class:`LabelImportError` with every problem listed."""
    return exc.full() if isinstance(exc, LabelImportError) else str(exc)


def _cli_import(args: argparse.Namespace) -> int:
    try:
        params, name, labels_dir, out = _round_paths(args)
        manifest = args.manifest or f"results/rounds/{name}/annotation/manifest.csv"
        label_set = args.label_set or label_set_path(params)
        run_import(args.sources, args.round_id, manifest, label_set, out, labels_dir,
                   force=args.force, annotator=args.annotator,
                   skip_unanswered=args.skip_unanswered)
    except _CLI_ERRORS as exc:
        print(f"activepam labels import: {_cli_message(exc)}", file=sys.stderr)
        return 1
    print("activepam labels: next: `dvc repro round@RR` (or snakemake) to retrain; commit with "
          "git + `dvc push`", file=sys.stderr)
    return 0


def _cli_birdnet(args: argparse.Namespace) -> int:
    try:
        params, name, labels_dir, out = _round_paths(args)
        manifest = args.manifest or f"results/rounds/{name}/annotation/manifest.csv"
        label_set = args.label_set or label_set_path(params)
        run_import_birdnet(args.folder, args.round_id, manifest, label_set, out, labels_dir,
                           species=args.species, species_from_folder=args.species_from_folder,
                           annotator=args.annotator, closed_world=args.closed_world,
                           force=args.force)
    except _CLI_ERRORS as exc:
        print(f"activepam labels import-birdnet-review: {_cli_message(exc)}", file=sys.stderr)
        return 1
    return 0


def _cli_history(args: argparse.Namespace) -> int:
    try:
        _, _, _, out = _round_paths(args)
        entries = read_history(out)
    except _CLI_ERRORS as exc:
        print(f"activepam labels history: {exc}", file=sys.stderr)
        return 1
    if not entries:
        print(f"activepam labels history: {history_dir(out)}: no history yet", file=sys.stderr)
        return 0
    print(format_history(entries))
    return 0


def _cli_restore(args: argparse.Namespace) -> int:
    try:
        _, _, _, out = _round_paths(args)
        labels = restore_labels(out, args.to)
    except _CLI_ERRORS as exc:
        print(f"activepam labels restore: {exc}", file=sys.stderr)
        return 1
    print(f"activepam labels restore: {out} rebuilt as of history entry {args.to}: "
          f"{len(labels)} label rows for {labels['unit_id'].nunique()} units", file=sys.stderr)
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
