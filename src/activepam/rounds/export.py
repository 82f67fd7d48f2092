"""Export an annotation round: clips, spectrograms and pre-filled Raven tables for experts.

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
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import soundfile as sf
from tqdm import tqdm

from activepam.core.io import atomic_path, write_csv
from activepam.core.labels import UNREVIEWED, clip_window, read_label_set, round_name
from activepam.rounds.tables import TABLE_SUFFIX, write_raven_table

#: columns of ``manifest.csv`` (metadata columns absent from the sample are left empty)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_type",
    "round",
    "rank",
    "recording_id",
    "path",
    "start_s",
    "end_s",
    "clip_start_s",
    "clip_end_s",
    "target_begin_s",
    "target_end_s",
    "clip_file",
    "table_file",
    "spectrogram_file",
    "batch",
    "annotator",
    "device_id",
    "site",
    "country",
    "habitat",
    "lat",
    "lon",
    "time",
    "top_predictions",
    "top1_species",
    "top1_confidence",
    "top2_confidence",
    "margin",
    "max_binary_entropy",
    "mean_binary_entropy",
    "score",
    "stratum",
    "cluster",
    "reason",
    "strategy",
)
#: clips longer than this get no spectrogram PNG (a day-long recording would be unreadable)
MAX_SPECTROGRAM_S = 600.0


class ExportError(ValueError):
    """The annotation set cannot be exported (bad sample table or unreadable audio)."""


def unit_stem(unit_id: str) -> str:
    """File-name stem of a unit: its id with characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(unit_id)).strip("._") or "unit"
    return stem


def read_predictions(
    path: str | Path,
    segment_ids: Iterable[str] | None = None,
    recording_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
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
    best = rows.sort_values(["confidence", "start_s"], ascending=[False, True]).drop_duplicates(
        "species"
    )
    return best[["species", "confidence", "start_s", "end_s"]].reset_index(drop=True)


def format_top_predictions(preds: pd.DataFrame, k: int = 5) -> str:
    """``"sp1:0.83;sp2:0.41"`` of the ``k`` best predictions."""
    head = preds.head(k)
    return ";".join(f"{s}:{c:.3f}" for s, c in zip(head["species"], head["confidence"]))


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


def assign_batches(
    sample: pd.DataFrame,
    annotators: Sequence[str],
    batch_by: str = "round_robin",
    avoid: pd.Series | None = None,
) -> pd.Series:
    """Annotator (batch) of every unit: round-robin by rank, or whole strata per annotator
    (largest strata first, each to the annotator with the fewest units); ``all`` without
    annotators. ``avoid`` (aligned with ``sample``: ``;``-joined annotator names per unit, e.g.
    the ones who were unsure about a re-offered unit) moves a unit given to one of them to the
    least loaded other annotator (in rank order); kept when every annotator is to be avoided."""
    if not annotators:
        return pd.Series("all", index=sample.index)
    names = [unit_stem(a) for a in annotators]
    order = (
        np.argsort(sample["rank"].to_numpy(), kind="stable")
        if "rank" in sample
        else np.arange(len(sample))
    )
    out = pd.Series("", index=sample.index, dtype=object)
    if batch_by == "round_robin":
        for i, pos in enumerate(order):
            out.iloc[pos] = names[i % len(names)]
        return _route_away(out, avoid, names, order, rebalance=True)
    if batch_by != "stratum":
        raise ExportError(f"rounds.batch_by: unknown value {batch_by!r} (round_robin | stratum)")
    strata = (
        sample["stratum"].astype(str)
        if "stratum" in sample
        else pd.Series("all", index=sample.index)
    )
    load = dict.fromkeys(names, 0)
    for stratum, size in (
        strata.value_counts().sort_index().sort_values(ascending=False, kind="stable").items()
    ):
        who = min(names, key=lambda a: (load[a], names.index(a)))
        out[strata == stratum] = who
        load[who] += int(size)
    return _route_away(out, avoid, names, order)


def _route_away(
    out: pd.Series,
    avoid: pd.Series | None,
    names: Sequence[str],
    order: np.ndarray,
    rebalance: bool = False,
) -> pd.Series:
    """:func:`assign_batches`' ``avoid``: reassign units given to an annotator to avoid; with
    ``rebalance`` (round-robin) a later unit of the new annotator goes back in exchange."""
    if avoid is None:
        return out
    bad = [
        {unit_stem(a) for a in str(v).split(";") if a.strip()} if isinstance(v, str) else set()
        for v in avoid.reindex(out.index).tolist()
    ]
    load = {n: int((out == n).sum()) for n in names}
    for k, pos in enumerate(order):
        who, skip = out.iloc[pos], bad[pos]
        free = [n for n in names if n not in skip]
        if who not in skip or not free:
            continue
        new = min(free, key=lambda a: (load[a], names.index(a)))
        out.iloc[pos] = new
        back = [q for q in order[k + 1 :] if rebalance and out.iloc[q] == new and who not in bad[q]]
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


def write_clip(
    src: str | Path, dst: str | Path, start_s: float, end_s: float, block_s: float = 60.0
) -> tuple[int, int]:
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
        with (
            atomic_path(dst, "export") as tmp,
            sf.SoundFile(
                str(tmp), "w", samplerate=sr, channels=ch, subtype="PCM_16", format="WAV"
            ) as out,
        ):
            block = max(1, int(block_s * sr))
            while remaining > 0:
                data = f.read(min(block, remaining), dtype="float32", always_2d=True)
                if not len(data):
                    break
                out.write(np.clip(data, -1.0, 1.0))
                frames += len(data)
                remaining -= len(data)
    return sr, frames


def write_spectrogram(
    clip: str | Path, out: str | Path, target: tuple[float, float], max_hz: float = 12000.0
) -> Path:
    """Write the spectrogram of ``clip`` as a PNG atomically, with time (s) and frequency (kHz)
    axes and the target marked: the review page's renderer
    (:func:`activepam.plots.spectrogram.write_spectrogram_png`), so both show the same."""
    from activepam.plots.spectrogram import write_spectrogram_png

    return write_spectrogram_png(clip, out, target, max_hz, title=Path(clip).stem)


def prefill_rows(
    unit: Mapping[str, Any],
    preds: pd.DataFrame,
    clip_start: float,
    annotator: str,
    options: ExportOptions,
    nyquist: float,
) -> list[dict[str, Any]]:
    """Raven rows for the model's top predictions of a unit (the top-1 always, then up to
    ``prefill_top`` above ``prefill_min_confidence``), ``Present`` = ``?``.

    Without any suggestion a placeholder row (empty Species, ``?``) is written, so an untouched
    table is refused on import instead of being read as "no species"."""
    keep = preds.head(max(1, options.prefill_top))
    keep = keep[(keep.index == 0) | (keep["confidence"] >= options.prefill_min_confidence)]
    high = min(options.high_freq_hz, nyquist)
    if keep.empty:
        begin, end = (float(unit["start_s"]) - clip_start, float(unit["end_s"]) - clip_start)
        return [
            {
                "Selection": 1,
                "View": "Spectrogram 1",
                "Channel": 1,
                "Begin Time (s)": round(begin, 4),
                "End Time (s)": round(end, 4),
                "Low Freq (Hz)": 0.0,
                "High Freq (Hz)": round(high, 1),
                "Species": "",
                "Present": UNREVIEWED,
                "Confidence": "",
                "Annotator": annotator if annotator != "all" else "",
                "Notes": "no model suggestion: name the species heard, or delete this row if none",
            }
        ]
    rows = []
    for i, p in enumerate(keep.itertuples(index=False), start=1):
        if unit["unit_type"] == "recording":
            begin, end = float(p.start_s) - clip_start, float(p.end_s) - clip_start
        else:
            begin = float(unit["start_s"]) - clip_start
            end = float(unit["end_s"]) - clip_start
        rows.append(
            {
                "Selection": i,
                "View": "Spectrogram 1",
                "Channel": 1,
                "Begin Time (s)": round(begin, 4),
                "End Time (s)": round(end, 4),
                "Low Freq (Hz)": 0.0,
                "High Freq (Hz)": round(high, 1),
                "Species": p.species,
                "Present": UNREVIEWED,
                "Confidence": round(float(p.confidence), 4),
                "Annotator": annotator if annotator != "all" else "",
                "Notes": "model suggestion",
            }
        )
    return rows


def _unit_dict(row: pd.Series) -> dict[str, Any]:
    unit = row.to_dict()
    unit.setdefault("unit_type", "segment")
    unit["unit_id"] = str(unit["unit_id"])
    return unit


def export_annotation_set(
    sample: pd.DataFrame,
    out_dir: str | Path,
    predictions: pd.DataFrame,
    *,
    round_id: int | str,
    strategy: str = "",
    options: ExportOptions = ExportOptions(),
    label_set: Sequence[str] | None = None,
    root: str | Path = ".",
) -> pd.DataFrame:
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
    batches = assign_batches(
        sample,
        options.annotators,
        options.batch_by,
        avoid=sample["unsure_by"] if "unsure_by" in sample else None,
    )
    stems = sample["unit_id"].map(unit_stem)
    if stems.duplicated().any():  # ids differing only in unsafe characters
        stems = (
            stems
            + "_"
            + sample["unit_id"].map(lambda u: hashlib.sha1(str(u).encode()).hexdigest()[:6])
        )
    rows = []
    for i in tqdm(
        range(len(sample)),
        desc=f"export {round_name(round_id)}",
        unit="clip",
        file=sys.stderr,
        disable=None,
    ):
        unit = _unit_dict(sample.iloc[i])
        rows.append(
            _export_unit(
                unit,
                stems.iloc[i],
                batches.iloc[i],
                out_dir,
                predictions,
                round_id,
                strategy,
                options,
                root,
                label_set,
            )
        )
    manifest = pd.DataFrame(rows)
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest.reindex(columns=list(MANIFEST_COLUMNS) + extra)
    write_csv(manifest, out_dir / "manifest.csv", stage="export")
    return manifest


def _export_unit(
    unit: dict[str, Any],
    stem: str,
    batch: str,
    out_dir: Path,
    predictions: pd.DataFrame,
    round_id: int | str,
    strategy: str,
    options: ExportOptions,
    root: Path,
    label_set: Sequence[str] | None = None,
) -> dict[str, Any]:
    src = Path(unit["path"])
    src = src if src.is_absolute() else root / src
    try:
        info = sf.info(str(src))
    except Exception as exc:  # noqa: BLE001 - any decoder error is reported the same way
        raise ExportError(f"{src}: cannot read audio for unit {unit['unit_id']}: {exc}") from exc
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    clip_start, clip_end = clip_window(
        unit["start_s"], unit["end_s"], duration, options.context_s, unit["unit_type"]
    )
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
    suggest = (
        preds
        if label_set is None
        else preds[preds["species"].isin(list(label_set))].reset_index(drop=True)
    )
    write_raven_table(
        prefill_rows(unit, suggest, clip_start, batch, options, sr / 2.0), out_dir / rel_table
    )
    row = {k: unit.get(k) for k in MANIFEST_COLUMNS if k in unit}
    row.update(
        {
            "unit_id": unit["unit_id"],
            "unit_type": unit["unit_type"],
            "round": round_name(round_id),
            "clip_start_s": round(clip_start, 4),
            "clip_end_s": round(clip_end, 4),
            "target_begin_s": round(target[0], 4),
            "target_end_s": round(target[1], 4),
            "clip_file": rel_clip,
            "table_file": rel_table,
            "spectrogram_file": rel_png,
            "batch": batch,
            "annotator": "" if batch == "all" else batch,
            "time": _time_of(unit),
            "top_predictions": top,
            "strategy": strategy or unit.get("strategy", ""),
        }
    )
    return row


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A round's ``manifest.csv`` (ids as strings)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found (export the round first)")
    m = pd.read_csv(
        path,
        dtype={
            "unit_id": str,
            "recording_id": str,
            "clip_file": str,
            "table_file": str,
            "batch": str,
            "annotator": str,
        },
        keep_default_na=False,
        na_values={"start_s": [""], "end_s": [""]},
    )
    need = {
        "unit_id",
        "unit_type",
        "recording_id",
        "path",
        "start_s",
        "end_s",
        "clip_start_s",
        "clip_end_s",
        "clip_file",
    }
    missing = sorted(need - set(m.columns))
    if missing:
        raise ValueError(f"{path}: manifest lacks column(s): {', '.join(missing)}")
    return m


def run_export(
    sample_path: str | Path,
    predictions_path: str | Path,
    out_dir: str | Path,
    *,
    round_id: int | str,
    options: ExportOptions = ExportOptions(),
    label_set: str | Path | None = None,
) -> pd.DataFrame:
    """``activepam export``: read the sample table (Parquet, else CSV), the top-k predictions of
    its units and the label set (every predicted species when None), then
    :func:`export_annotation_set`. Returns the manifest."""
    path = Path(sample_path)
    sample = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    preds = read_predictions(
        predictions_path, segment_ids=sample["unit_id"], recording_ids=sample["recording_id"]
    )
    labels = read_label_set(label_set) if label_set else None
    return export_annotation_set(
        sample, out_dir, preds, round_id=round_id, options=options, label_set=labels
    )
