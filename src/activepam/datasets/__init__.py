"""Importers of published, fully labelled datasets into the custom-simulation tables.

``activepam datasets import wabad|anuraset|baseal PATH --out DIR`` converts an external layout
(:mod:`.wabad`, :mod:`.anuraset`, :mod:`.baseal`) into the three files ``simulation.dataset:
custom`` reads (:func:`activepam.simulation.dataset.custom_dataset`), plus provenance:

* ``embeddings.parquet``: ``unit_id, recording_id, embedding`` (fixed-size list of float32);
* ``labels.parquet``: ``unit_id, species, present`` (present = 1; units without a row are
  negative for every species);
* ``metadata.parquet``: ``unit_id, recording_id, start_s, end_s, recording_duration_s, split``
  (``train`` | ``validation`` | ``test``: the dataset's predefined split) and stratum columns
  (``site``, ``year``, ``period``, ``segment_time`` ..., per dataset);
* ``species.csv``: the dataset's full species order (``species``), including species without
  a positive in the imported rows;
* ``import.json``: source, options, sizes per split, species counts.

Outside files are loaded without running code: pickles through
:mod:`activepam.datasets.safe_pickle`, torch ``.pt`` files through
:mod:`activepam.datasets.torch_files`, ``.npy`` with ``allow_pickle=False``.

Listening cost of overlapping windows (AnuraSet: 3 s windows every 1 s) is the union of their
spans per recording, not their sum: :func:`union_seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SPLITS",
    "DatasetError",
    "ImportResult",
    "name_times",
    "union_seconds",
    "unit_ids",
    "write_import",
]

#: predefined split values of the ``split`` column
SPLITS = ("train", "validation", "test")
#: metadata columns every import writes (then the dataset's stratum columns)
BASE_COLUMNS = ("unit_id", "recording_id", "start_s", "end_s", "recording_duration_s", "split")


class DatasetError(ValueError):
    """An external dataset that does not have the expected layout (the message names the file
    and, where it applies, the row or key)."""


@dataclass
class ImportResult:
    """What an import wrote."""

    out: Path
    n_units: int
    n_recordings: int
    n_species: int
    dim: int
    splits: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        return (
            f"{self.n_units} units ({sizes}), {self.n_recordings} recordings, "
            f"{self.n_species} species, {self.dim}-d embeddings -> {self.out}"
        )


def unit_ids(
    recording_id: Sequence[str] | pd.Series, start_s: Sequence[float] | pd.Series
) -> list[str]:
    """Unit ids ``<recording_id>@<start_s:.1f>`` (the detections' segment id rule)."""
    rec = pd.Series(recording_id).astype(str).to_numpy()
    start = pd.Series(start_s).astype(float).to_numpy()
    return [f"{r}@{s:.1f}" for r, s in zip(rec, start)]


def name_times(
    date: pd.Series, time: pd.Series | None = None, utc_offset_h: float = 0.0
) -> pd.Series:
    """UTC start times from file-name parts ``YYYYMMDD`` and ``HHMM[SS]`` (NaT where they do not
    parse); the names' clock is UTC + ``utc_offset_h`` hours."""
    d = pd.Series(date, dtype=object).astype(str).str.extract(r"^(\d{8})")[0]
    if time is None:
        t = pd.Series("000000", index=d.index)
    else:
        t = pd.Series(time, dtype=object).astype(str).str.extract(r"^(\d{4,6})")[0]
        t = t.str.pad(6, side="right", fillchar="0")
    stamp = pd.to_datetime(d + t, format="%Y%m%d%H%M%S", errors="coerce")
    stamp = stamp - pd.Timedelta(hours=float(utc_offset_h))
    return stamp.dt.tz_localize("UTC").astype("datetime64[us, UTC]")


def union_seconds(
    recording_id: Sequence[str] | np.ndarray,
    start_s: Sequence[float] | np.ndarray,
    end_s: Sequence[float] | np.ndarray,
    context_s: float = 0.0,
    duration_s: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Listening seconds of a set of windows: the union of ``[start - context, end + context]``
    (clipped to ``[0, duration]``) within each recording, summed over recordings.

    Overlapping windows (3 s every 1 s) and the shared context of neighbours are counted once.
    """
    rec = np.asarray(recording_id).astype(str)
    lo = np.asarray(start_s, dtype=np.float64) - float(context_s)
    hi = np.asarray(end_s, dtype=np.float64) + float(context_s)
    lo = np.maximum(lo, 0.0)
    if duration_s is not None:
        hi = np.minimum(hi, np.asarray(duration_s, dtype=np.float64))
    if len(rec) == 0:
        return 0.0
    order = np.lexsort((lo, rec))
    rec, lo, hi = rec[order], lo[order], hi[order]
    total = 0.0
    new_rec = np.r_[True, rec[1:] != rec[:-1]]
    cur_lo, cur_hi = lo[0], hi[0]
    for i in range(1, len(rec)):
        if new_rec[i] or lo[i] > cur_hi:
            total += max(cur_hi - cur_lo, 0.0)
            cur_lo, cur_hi = lo[i], hi[i]
        else:
            cur_hi = max(cur_hi, hi[i])
    total += max(cur_hi - cur_lo, 0.0)
    return float(total)


def _check_units(units: pd.DataFrame, source: str) -> None:
    for col in ("recording_id", "start_s", "end_s", "split"):
        if col not in units:
            raise DatasetError(f"{source}: internal error: units lack column {col!r}")
    bad = ~units["split"].isin(SPLITS)
    if bad.any():
        raise DatasetError(f"{source}: unknown split {units.loc[bad, 'split'].iloc[0]!r}")
    if (units["end_s"] <= units["start_s"]).any():
        i = int(np.flatnonzero((units["end_s"] <= units["start_s"]).to_numpy())[0])
        raise DatasetError(f"{source}: unit {units['unit_id'].iloc[i]!r} has end_s <= start_s")
    per_rec = units.groupby("recording_id")["split"].nunique()
    if (per_rec > 1).any():
        rec = per_rec[per_rec > 1].index[0]
        splits = sorted(units.loc[units["recording_id"] == rec, "split"].unique())
        raise DatasetError(
            f"{source}: recording {rec!r} is in splits {splits}: a recording's windows must stay "
            "in one split (no leakage between neighbouring windows)"
        )
    dup = units["unit_id"].duplicated()
    if dup.any():
        raise DatasetError(f"{source}: duplicate unit {units.loc[dup, 'unit_id'].iloc[0]!r}")


def write_import(
    out: str | Path,
    units: pd.DataFrame,
    X: np.ndarray,
    Y: np.ndarray,
    species: Sequence[str],
    info: Mapping[str, Any],
    scores: np.ndarray | None = None,
) -> ImportResult:
    """Write the custom-simulation tables of one import into ``out`` (atomically per file).

    ``units``: one row per unit in the order of ``X`` / ``Y`` rows, with ``recording_id,
    start_s, end_s, split`` and the stratum columns (``unit_id`` and ``recording_duration_s``
    are added when absent). ``scores``: optional per-species model scores aligned with ``Y``
    (written as ``scores.parquet``: ``unit_id, score`` list in species order).
    """
    import pyarrow as pa

    from activepam.core.io import write_csv, write_json, write_parquet

    out = Path(out)
    source = str(info.get("source", out))
    units = units.reset_index(drop=True).copy()
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y)
    species = [str(s) for s in species]
    if X.ndim != 2 or len(X) != len(units) or Y.shape != (len(units), len(species)):
        raise DatasetError(
            f"{source}: {len(units)} units, embeddings {X.shape}, labels {Y.shape}, "
            f"{len(species)} species: shapes disagree"
        )
    if not np.isfinite(X).all():
        i = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DatasetError(f"{source}: row {i}: non-finite embedding values")
    if len(set(species)) != len(species):
        raise DatasetError(f"{source}: duplicate species names")
    if "unit_id" not in units:
        units.insert(0, "unit_id", unit_ids(units["recording_id"], units["start_s"]))
    if "recording_duration_s" not in units:
        units["recording_duration_s"] = units.groupby("recording_id")["end_s"].transform("max")
    _check_units(units, source)
    cols = [*BASE_COLUMNS, *[c for c in units.columns if c not in BASE_COLUMNS]]
    units = units[cols]
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    flat = pa.array(np.ascontiguousarray(X).ravel())
    emb = pa.table(
        {
            "unit_id": pa.array(units["unit_id"].astype(str).tolist()),
            "recording_id": pa.array(units["recording_id"].astype(str).tolist()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, X.shape[1]),
        }
    )
    files["embeddings"] = write_parquet(emb, out / "embeddings.parquet", stage="datasets")
    rows, cols_ = np.nonzero(Y)
    sp = np.asarray(species, dtype=object)
    labels = pd.DataFrame(
        {
            "unit_id": units["unit_id"].to_numpy()[rows],
            "species": sp[cols_],
            "present": np.ones(len(rows), dtype=np.int8),
        }
    )
    files["labels"] = write_parquet(labels, out / "labels.parquet", stage="datasets")
    files["metadata"] = write_parquet(units, out / "metadata.parquet", stage="datasets")
    files["species"] = write_csv(
        pd.DataFrame({"species": species}), out / "species.csv", stage="datasets"
    )
    if scores is not None:
        S = np.asarray(scores, dtype=np.float32)
        sflat = pa.array(np.ascontiguousarray(S).ravel())
        stab = pa.table(
            {
                "unit_id": pa.array(units["unit_id"].astype(str).tolist()),
                "score": pa.FixedSizeListArray.from_arrays(sflat, S.shape[1]),
            }
        )
        files["scores"] = write_parquet(stab, out / "scores.parquet", stage="datasets")
    splits = {s: int((units["split"] == s).sum()) for s in SPLITS if (units["split"] == s).any()}
    positives = Y.sum(axis=0)
    meta = {
        **dict(info),
        "n_units": len(units),
        "n_recordings": int(units["recording_id"].nunique()),
        "splits": splits,
        "n_species": len(species),
        "n_species_with_positives": int((positives > 0).sum()),
        "n_positive_labels": int(positives.sum()),
        "embedding_dim": int(X.shape[1]),
        "columns": list(units.columns),
        "files": {k: v.name for k, v in files.items()},
    }
    files["import"] = write_json(meta, out / "import.json", stage="datasets")
    return ImportResult(
        out, len(units), meta["n_recordings"], len(species), int(X.shape[1]), splits, files, meta
    )
