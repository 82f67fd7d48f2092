"""Simulation datasets: a fully labelled table of segments with embeddings and labels.

Built from the demo (BirdNET embeddings + labels of every window from the generator's call
events, :func:`demo_dataset`, :func:`window_labels`) or any precomputed embeddings + labels +
metadata (:func:`custom_dataset`); written / read as one Parquet file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from activepam.core.embeddings import embedding_matrix
from activepam.core.io import write_parquet

log = logging.getLogger(__name__)


SEGMENT_S = 3.0
UNITS = ("segment", "recording")
#: metadata columns kept in a dataset when present (the segments contract)
META_COLUMNS = (
    "unit_id",
    "recording_id",
    "path",
    "start_s",
    "end_s",
    "recording_duration_s",
    "device_id",
    "site",
    "country",
    "habitat",
    "lat",
    "lon",
    "start_time",
    "segment_time",
)


class SimulationError(ValueError):
    """Bad simulation input or configuration (the message names the file or key)."""


@dataclass
class SimDataset:
    """A fully labelled dataset of segments: metadata, embeddings and species labels."""

    units: pd.DataFrame  # one row per segment, META_COLUMNS (unit_id, recording_id, ... )
    X: np.ndarray  # float32 [n_units, dim]
    Y: np.ndarray  # uint8 [n_units, n_species]
    species: list[str]
    name: str = "dataset"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.units)
        if self.X.shape[0] != n or self.Y.shape[0] != n:
            raise SimulationError(
                f"{self.name}: {n} units but X has {self.X.shape[0]} rows and Y {self.Y.shape[0]}"
            )
        if self.Y.shape[1] != len(self.species):
            raise SimulationError(
                f"{self.name}: Y has {self.Y.shape[1]} columns for {len(self.species)} species"
            )
        for col in ("unit_id", "recording_id", "start_s", "end_s"):
            if col not in self.units:
                raise SimulationError(f"{self.name}: unit metadata lacks column {col!r}")
        if self.units["unit_id"].duplicated().any():
            dup = self.units.loc[self.units["unit_id"].duplicated(), "unit_id"].iloc[0]
            raise SimulationError(f"{self.name}: duplicate unit_id {dup!r}")
        if "recording_duration_s" not in self.units:
            self.units["recording_duration_s"] = self.units.groupby("recording_id")[
                "end_s"
            ].transform("max")

    @property
    def n(self) -> int:
        return len(self.units)


def write_dataset(ds: SimDataset, path: str | Path) -> Path:
    """Write a dataset as one Parquet file: metadata + ``embedding`` + ``labels`` (list of species).

    The species order is stored in the file's metadata (``activepam.species``).
    """
    units = ds.units.reset_index(drop=True)
    table = pa.Table.from_pandas(units, preserve_index=False)
    dim = ds.X.shape[1]
    flat = pa.array(np.ascontiguousarray(ds.X, dtype=np.float32).ravel())
    table = table.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, dim))
    sp = np.asarray(ds.species, dtype=object)
    labels = [list(sp[np.flatnonzero(row)]) for row in ds.Y]
    table = table.append_column("labels", pa.array(labels, type=pa.list_(pa.string())))
    meta = dict(table.schema.metadata or {})
    meta[b"activepam.species"] = "\n".join(ds.species).encode()
    meta[b"activepam.name"] = ds.name.encode()
    return write_parquet(table.replace_schema_metadata(meta), path, stage="simulate")


def read_dataset(path: str | Path) -> SimDataset:
    """Read a dataset written by :func:`write_dataset`."""
    path = Path(path)
    if not path.exists():
        raise SimulationError(f"{path}: simulation dataset not found")
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if b"activepam.species" not in meta:
        raise SimulationError(f"{path}: not a simulation dataset (no species list in metadata)")
    species = meta[b"activepam.species"].decode().split("\n")
    name = meta.get(b"activepam.name", path.stem.encode()).decode()
    X = embedding_matrix(table.column("embedding"), path, SimulationError)
    index = {s: i for i, s in enumerate(species)}
    lab = table.column("labels").combine_chunks()
    offsets = lab.offsets.to_numpy()
    values = lab.values.to_pylist()
    Y = np.zeros((table.num_rows, len(species)), dtype=np.uint8)
    rows = np.repeat(np.arange(table.num_rows), np.diff(offsets))
    if len(values):
        Y[rows, [index[v] for v in values]] = 1
    units = table.drop(["embedding", "labels"]).to_pandas()
    return SimDataset(units, X, Y, species, name)


def labels_matrix(
    labels: pd.DataFrame,
    unit_ids: Sequence[str],
    species: Sequence[str] | None = None,
    source: str = "labels",
) -> tuple[np.ndarray, list[str]]:
    """0/1 matrix [units x species] from a long labels table ``unit_id, species, present``.

    Units without a row are all-absent; unknown unit ids are an error (never dropped).
    """
    missing = {"unit_id", "species"} - set(labels.columns)
    if missing:
        raise SimulationError(f"{source}: labels table lacks column(s) {sorted(missing)}")
    lab = labels.copy()
    if "present" not in lab:
        lab["present"] = 1
    lab["present"] = pd.to_numeric(lab["present"], errors="coerce")
    bad = lab["present"].isna() | ~lab["present"].isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SimulationError(
            f"{source}: row {i + 2}: present must be 0 or 1, got {labels['present'].iloc[i]!r}"
        )
    index = pd.Index(list(unit_ids))
    pos = index.get_indexer(lab["unit_id"].astype(str))
    if (pos < 0).any():
        unknown = lab["unit_id"].iloc[int(np.flatnonzero(pos < 0)[0])]
        raise SimulationError(
            f"{source}: {int((pos < 0).sum())} label row(s) name unknown unit ids "
            f"(first: {unknown!r})"
        )
    if species is None:
        species = sorted(lab["species"].astype(str).unique())
    species = list(species)
    sp_index = pd.Index(species)
    sp_pos = sp_index.get_indexer(lab["species"].astype(str))
    if (sp_pos < 0).any():
        unknown = lab["species"].iloc[int(np.flatnonzero(sp_pos < 0)[0])]
        raise SimulationError(f"{source}: species {unknown!r} not in the species list")
    Y = np.zeros((len(index), len(species)), dtype=np.uint8)
    pres = lab["present"].to_numpy() == 1
    Y[pos[pres], sp_pos[pres]] = 1
    return Y, species


def _read_table(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SimulationError(f"{path}: {what} not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise SimulationError(f"{path}: {what} must be .parquet or .csv")


def _align_embeddings(emb: pd.DataFrame, unit_ids: pd.Series, source: str) -> np.ndarray:
    id_col = "unit_id" if "unit_id" in emb else "segment_id" if "segment_id" in emb else None
    if id_col is None or "embedding" not in emb:
        raise SimulationError(
            f"{source}: embeddings need columns unit_id (or segment_id) and embedding"
        )
    pos = pd.Index(emb[id_col].astype(str)).get_indexer(unit_ids.astype(str))
    if (pos < 0).any():
        first = unit_ids.iloc[int(np.flatnonzero(pos < 0)[0])]
        raise SimulationError(
            f"{source}: no embedding for {int((pos < 0).sum())} unit(s) (first: {first!r})"
        )
    X = np.stack(emb["embedding"].to_numpy()).astype(np.float32)
    return X[pos]


def custom_dataset(
    embeddings: str | Path, labels: str | Path, metadata: str | Path, name: str = "custom"
) -> SimDataset:
    """Dataset from precomputed embeddings + a labels table + unit metadata (any source).

    * ``embeddings``: Parquet with ``unit_id`` (or ``segment_id``) and ``embedding``;
    * ``labels``: CSV/Parquet ``unit_id, species, present`` (0/1; units without rows are negative);
    * ``metadata``: CSV/Parquet with ``unit_id, recording_id, start_s, end_s`` and the strata
      columns (``site``, ``lat``, ``lon``, ``segment_time`` ...), optionally a predefined
      ``split`` (train | validation | test, honoured by :func:`replicate_rows`).

    The species list is ``species.csv`` beside the labels when present (the importers of
    :mod:`activepam.datasets` write it: species without positives stay in the list), else the
    species of the label rows.
    """
    meta = _read_table(metadata, "unit metadata")
    if "unit_id" not in meta and "segment_id" in meta:
        meta = meta.rename(columns={"segment_id": "unit_id"})
    for col in ("unit_id", "recording_id", "start_s", "end_s"):
        if col not in meta:
            raise SimulationError(f"{metadata}: unit metadata lacks column {col!r}")
    meta["unit_id"] = meta["unit_id"].astype(str)
    emb = pd.read_parquet(embeddings) if Path(embeddings).exists() else None
    if emb is None:
        raise SimulationError(f"{embeddings}: embeddings not found")
    X = _align_embeddings(emb, meta["unit_id"], str(embeddings))
    species_csv = Path(labels).with_name("species.csv")
    species = None
    if species_csv.exists():  # the full species order (the importers write it), incl. absent ones
        species = _read_table(species_csv, "species list")["species"].astype(str).tolist()
    Y, species = labels_matrix(
        _read_table(labels, "labels table"), meta["unit_id"], species, source=str(labels)
    )
    keep = [c for c in meta.columns if c not in ("embedding", "labels")]
    return SimDataset(meta[keep].reset_index(drop=True), X, Y, species, name)


def _rel_paths(segments: pd.DataFrame, inventory: pd.DataFrame | None) -> pd.Series:
    """Each segment's recording ``rel_path`` (from the inventory, or the segments' own column),
    with forward slashes."""
    if inventory is not None:
        rel = segments["recording_id"].map(inventory.set_index("recording_id")["rel_path"])
    elif "rel_path" in segments:
        rel = segments["rel_path"]
    else:
        raise SimulationError("demo labels need the inventory (recording_id -> rel_path)")
    return (
        rel.astype(object)
        .where(rel.notna(), None)
        .map(lambda v: None if v is None else str(v).replace("\\", "/"))
    )


def window_labels(
    events: pd.DataFrame,
    segments: pd.DataFrame,
    inventory: pd.DataFrame | None = None,
    recordings: Sequence[str] | None = None,
    source: str = "events.parquet",
) -> pd.DataFrame:
    """Labels of every DETECTED window from the generator's call events (issue 10).

    Overlap rule (the generator's and the simulated annotator's, :mod:`activepam.core.presence`): a
    call makes its species present in a window ``[start_s, end_s]`` when it overlaps it by at
    least ``min(MIN_OVERLAP_S, MIN_CALL_FRACTION x call duration)`` (0.5 s, or half of a call
    shorter than 1 s). This holds for any window BirdNET analysed (overlapping hops, trailing
    pieces of 1-1.5 s), unlike the generator's fixed 3 s grid.

    Returns one row per (window, species present) ``unit_id, species, present = 1`` and one row
    ``species = "", present = 0`` per window without a call, so every window has a label row.
    A window of a recording the generator did not write (not in ``recordings``, the rel_paths
    of recordings.csv) or with no ``rel_path`` has no label: a :class:`SimulationError`.
    """
    from activepam.core.presence import call_present

    for col in ("rel_path", "species", "onset_s", "offset_s"):
        if col not in events:
            raise SimulationError(f"{source}: events table lacks column {col!r}")
    win = pd.DataFrame(
        {
            "unit_id": segments["segment_id"].astype(str).to_numpy(),
            "rel_path": _rel_paths(segments, inventory).to_numpy(),
            "start_s": segments["start_s"].to_numpy(dtype=np.float64),
            "end_s": segments["end_s"].to_numpy(dtype=np.float64),
        }
    )
    known = win["rel_path"].notna()
    if recordings is not None:
        known &= win["rel_path"].isin({str(r).replace("\\", "/") for r in recordings})
    if not known.all():
        first = win.loc[~known].iloc[0]
        raise SimulationError(
            f"{source}: {int((~known).sum())} detected window(s) have no label row: their "
            f"recording is not one the generator wrote (first: {first['unit_id']!r}, "
            f"rel_path {first['rel_path']!r})"
        )
    ev = events[["rel_path", "species", "onset_s", "offset_s"]].copy()
    ev["rel_path"] = ev["rel_path"].astype(str).str.replace("\\", "/", regex=False)
    pairs = win.merge(ev, on="rel_path", how="inner")
    on, off = pairs["onset_s"].to_numpy(float), pairs["offset_s"].to_numpy(float)
    present = call_present(on, off, pairs["start_s"].to_numpy(), pairs["end_s"].to_numpy())
    hit = pairs.loc[present, ["unit_id", "species"]].drop_duplicates()
    hit = hit.assign(species=hit["species"].astype(str), present=1)
    empty = win.loc[~win["unit_id"].isin(set(hit["unit_id"])), ["unit_id"]].assign(
        species="", present=0
    )
    out = pd.concat([hit, empty], ignore_index=True)
    missing = ~win["unit_id"].isin(set(out["unit_id"]))
    if missing.any():  # cannot happen by construction; a label-less window must never pass
        raise SimulationError(
            f"{source}: window {win.loc[missing, 'unit_id'].iloc[0]!r} has no label row"
        )
    return out.sort_values(["unit_id", "species"]).reset_index(drop=True)


def demo_labels(
    ground_truth: pd.DataFrame, segments: pd.DataFrame, inventory: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Long labels table ``unit_id, species, present`` from the generator's ground truth.

    Ground-truth rows (``rel_path, start_s, species``) are matched to segments by the recording's
    ``rel_path`` (from the inventory, or the segments' ``rel_path``/``path``) and the segment
    start; a ground-truth row that matches no segment is an error.
    """
    seg = segments[["segment_id", "recording_id", "start_s"]].copy()
    if inventory is not None:
        rel = inventory.set_index("recording_id")["rel_path"]
        seg["rel_path"] = seg["recording_id"].map(rel)
    elif "rel_path" in segments:
        seg["rel_path"] = segments["rel_path"]
    else:
        raise SimulationError("demo labels need the inventory (recording_id -> rel_path)")
    seg["rel_path"] = seg["rel_path"].astype(str).str.replace("\\", "/", regex=False)
    seg["key"] = seg["rel_path"] + "@" + seg["start_s"].round(1).map("{:.1f}".format)
    gt = ground_truth.copy()
    gt["key"] = (
        gt["rel_path"].astype(str).str.replace("\\", "/", regex=False)
        + "@"
        + gt["start_s"].astype(float).round(1).map("{:.1f}".format)
    )
    merged = gt.merge(seg[["key", "segment_id"]], on="key", how="left")
    miss = merged["segment_id"].isna()
    if miss.any():
        first = merged.loc[miss, "key"].iloc[0]
        raise SimulationError(
            f"ground_truth.parquet: {int(miss.sum())} row(s) match no detected "
            f"segment (first: {first}); was the detection run on this demo?"
        )
    out = merged[["segment_id", "species"]].rename(columns={"segment_id": "unit_id"})
    out["present"] = 1
    return out.drop_duplicates().reset_index(drop=True)


def demo_dataset(
    segments_path: str | Path,
    embeddings_path: str | Path,
    ground_truth_path: str | Path,
    species_path: str | Path | None = None,
    inventory_path: str | Path | None = None,
    name: str = "demo",
    events_path: str | Path | None = None,
) -> SimDataset:
    """Dataset of the demo run: BirdNET embeddings + labels of every detected window.

    With ``events_path`` (the generator's events.parquet; the workflow passes it) each window's
    labels come from the call events (:func:`window_labels`: the same overlap rule for any
    window BirdNET analysed; recordings.csv beside it names the generated recordings). Without
    it, the generator's 3 s grid (ground_truth.parquet, :func:`demo_labels`), which has no row
    for windows off that grid: those are an error, never silently empty.
    """
    segments = _read_table(segments_path, "segments table")
    inventory = _read_table(inventory_path, "inventory") if inventory_path else None
    if events_path is not None:
        events = _read_table(events_path, "call events")
        rec_csv = Path(events_path).with_name("recordings.csv")
        recs = pd.read_csv(rec_csv)["rel_path"].astype(str).tolist() if rec_csv.exists() else None
        labels = window_labels(events, segments, inventory, recs, source=str(events_path))
        labels = labels[labels["present"] == 1]
        source = str(events_path)
    else:
        gt = _read_table(ground_truth_path, "ground truth")
        _check_grid(segments, inventory, str(ground_truth_path))
        labels = demo_labels(gt, segments, inventory)
        source = str(ground_truth_path)
    species = None
    if species_path:
        species = _read_table(species_path, "species list")["species"].astype(str).tolist()
    meta = segments[[c for c in segments.columns if c in META_COLUMNS or c == "segment_id"]].copy()
    meta = meta.rename(columns={"segment_id": "unit_id"})
    if inventory is not None and "duration_s" in inventory:
        meta["recording_duration_s"] = (
            meta["recording_id"]
            .map(inventory.set_index("recording_id")["duration_s"])
            .astype(float)
        )
    emb = pd.read_parquet(embeddings_path, columns=["segment_id", "embedding"])
    X = _align_embeddings(emb, meta["unit_id"], str(embeddings_path))
    Y, species = labels_matrix(labels, meta["unit_id"], species, source=source)
    return SimDataset(meta.reset_index(drop=True), X, Y, species, name)


def _check_grid(segments: pd.DataFrame, inventory: pd.DataFrame | None, source: str) -> None:
    """Windows the generator's 3 s grid does not label (off-grid starts, i.e. overlapping hops,
    or trailing pieces shorter than its minimum) have no ground-truth row: an error."""
    from activepam.core.presence import too_short

    start = segments["start_s"].to_numpy(dtype=np.float64)
    off = np.abs(start / SEGMENT_S - np.round(start / SEGMENT_S)) > 1e-6
    if inventory is not None and "duration_s" in inventory:
        dur = segments["recording_id"].map(inventory.set_index("recording_id")["duration_s"])
        rest = dur.to_numpy(dtype=np.float64) - start
        off |= too_short(rest, dur.to_numpy(dtype=np.float64))
    if off.any():
        first = segments["segment_id"].iloc[int(np.flatnonzero(off)[0])]
        raise SimulationError(
            f"{source}: {int(off.sum())} detected window(s) have no label row on the "
            f"generator's {SEGMENT_S:g} s grid (first: {first!r}); label windows from the call "
            "events (events.parquet) instead"
        )
