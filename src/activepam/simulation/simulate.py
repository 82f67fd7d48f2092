"""Simulation mode: pool-based active learning with an oracle on a fully labelled dataset.

A :class:`SimDataset` holds one row per 3 s segment (unit metadata as in
``results/detect/segments.parquet``), its embedding and its 0/1 species labels. It is built from

* the demo: BirdNET embeddings of the demo run + labels of every detected window from the
  generator's call events (:func:`demo_dataset`, :func:`window_labels`), or
* any dataset given as precomputed embeddings (``unit_id`` + ``embedding``), a labels table
  (``unit_id, species, present``) and unit metadata (:func:`custom_dataset`), or
* the synthetic stand-in of :mod:`activepam.simulation.synthetic` (for the divergence sweep).

One simulated run (:func:`run_simulation`) = one strategy x one replicate seed ``r``. A
replicate is the triple (data seed, split seed, active-learning seed), all derived from ``r``
(:func:`replicate_rows`), so the intervals over replicates vary the data and the test split, not
only the active learner:

1. data: with ``data_fraction < 1`` a seeded subsample of every site's recordings (without
   replacement; a cheap data-level resample: regenerating the demo and re-running BirdNET per
   replicate would cost minutes each; ``data_fraction: 1`` fixes the data and says so);
2. a test set (``test_fraction`` of the kept segments as whole recordings, stratified by site,
   seeded by ``split_seed + r`` when ``vary_split``; :func:`activepam.core.evaluate.split_by_recording`,
   the rounds' split), never sampled, and the pool (the rest);
3. a random seed set (``seed_size``), the same for every strategy of the same unit and replicate
   (strategies are compared paired);
4. rounds: train the probe on the labelled segments -> evaluate on the test set -> score the
   pool's uncertainty -> ask the sampling engine (:func:`activepam.sampling.engine.sample`) for the
   next batch (``batch_size``, fixed or geometrically growing) -> the oracle labels it.

Cost = what an expert pays: seconds of audio listened (``audio_seconds``). Labelling a recording
labels all its segments and costs its duration; a segment costs the clip the rounds export: its
3 s plus ``context_s`` on each side (``rounds.context_s`` unless set, clipped to the recording;
:func:`activepam.rounds.annotations.clip_window`). With ``budget_unit: seconds`` (default) the seed set
and the batches are listening budgets - a fraction (< 1) of the pool's audio duration or seconds
(>= 1) - converted to a number of units by the pool's mean unit cost and kept on track round by
round, so whole recordings and single segments spend the same listening time per round;
``budget_unit: units`` gives counts of units (the old behaviour). Budgets are recorded in units,
segments, recordings and listening seconds, absolute and as fractions of the pool
(``audio_fraction`` = listening time / the pool's total recording duration, the same denominator
for both unit modes, so it can exceed 1 for segments with context).

The probe (:class:`Probe`) is the multi-label L2 logistic regression of scikit-learn's
``LogisticRegression(C)`` (same objective, verified against it in the tests) fitted for all
species at once with one L-BFGS run and warm-started from the previous round: per-species
scikit-learn fits were ~20 s per round on 1024-d embeddings, this takes well under a second.
Species without both classes among the labels get a constant (smoothed prevalence)
probability. Metrics (:func:`evaluate`): macro/micro average precision, macro AUROC, macro F1 at
``threshold``, ECE, and macro AP / F1 per stratum value with their spread (CV, Pielou J).

Imported datasets (``activepam datasets import``, issue 12): a predefined ``split`` column
replaces the random split (:func:`replicate_rows`), ``segment_cost: union`` costs overlapping
windows once (:func:`activepam.datasets.union_seconds`), ``species.csv`` beside the labels is
the species list, and any metadata column is a stratum. ``cold_start: true`` lets the strategy
pick the seed set from an untrained model (uniform scores); ``probe: baseal_mlp`` swaps the
probe for BaseAL's head (:class:`BaseALProbe`); ``timing: true`` records the sampling wall
time per round (``sampling_s``; the runs are then not byte-reproducible).

The tidy result (:data:`RESULT_COLUMNS`) has one row per (strategy, seed, round, stratum,
stratum_value, metric); overall metrics have ``stratum == stratum_value == "all"``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from activepam.core.stopping import prediction_agreement
from activepam.core.io import write_csv, write_parquet

log = logging.getLogger(__name__)

SEGMENT_S = 3.0
UNITS = ("segment", "recording")
#: what ``seed_size`` / ``batch_size`` count: listening seconds (default) or units
BUDGET_UNITS = ("seconds", "units")
#: columns identifying one budget point of one run in the tidy results table
RUN_KEYS = ["strategy", "unit", "seed", "round"]
#: what a replicate seed varies besides the active learner: its test split and its data
REPLICATE_COLS = ["split_seed", "data_seed"]
#: the budget spent so far, in units, segments, recordings and seconds of audio an expert
#: listens to (``audio_seconds``: context included; whole recordings cost their duration)
BUDGET_COLS = [
    "n_units",
    "n_segments",
    "n_recordings",
    "audio_seconds",
    "unit_fraction",
    "segment_fraction",
    "recording_fraction",
    "audio_fraction",
]
#: per-round extras: ``n_positives`` = positive (unit, species) labels among the labelled units
#: (BaseAL's annotation cost), ``sampling_s`` = wall time of the selection that produced this
#: round's labelled set (round 0: the cold-start pick; 0 for a random seed set; NaN unless
#: ``simulation.timing``)
ROUND_COLS = ["n_positives", "sampling_s"]
#: columns of the tidy results table
RESULT_COLUMNS = [
    *RUN_KEYS,
    *REPLICATE_COLS,
    *BUDGET_COLS,
    *ROUND_COLS,
    "stratum",
    "stratum_value",
    "metric",
    "value",
]
OVERALL_METRICS = ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece", "n_species_eval")
STRATUM_METRICS = ("macro_ap", "macro_f1")
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


#: segment cost modes (:class:`SimConfig` ``segment_cost``)
SEGMENT_COSTS = ("clip", "union")
#: probes (:class:`SimConfig` ``probe``)
PROBES = ("logistic", "baseal_mlp")


class SimulationError(ValueError):
    """Bad simulation input or configuration (the message names the file or key)."""


# --------------------------------------------------------------------------- dataset


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
                f"{self.name}: {n} units but X has {self.X.shape[0]} rows and "
                f"Y {self.Y.shape[0]}"
            )
        if self.Y.shape[1] != len(self.species):
            raise SimulationError(
                f"{self.name}: Y has {self.Y.shape[1]} columns for " f"{len(self.species)} species"
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
    X = embedding_matrix(table.column("embedding"), path)
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


def embedding_matrix(
    column: pa.ChunkedArray | pa.Array, source: str | Path = "embeddings"
) -> np.ndarray:
    """float32 matrix from an Arrow (fixed-size) list column of embeddings."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc_list_lengths(arr)
        if len(set(lengths.tolist())) != 1:
            raise SimulationError(f"{source}: embeddings have different lengths")
        dim = int(lengths[0])
    else:
        raise SimulationError(f"{source}: column 'embedding' is not a list of floats ({arr.type})")
    if arr.null_count:
        raise SimulationError(f"{source}: {arr.null_count} missing embeddings")
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(arr), dim)


def pc_list_lengths(arr: pa.Array) -> np.ndarray:
    """Lengths of a list array (numpy)."""
    import pyarrow.compute as pc

    return pc.list_value_length(arr).to_numpy(zero_copy_only=False)


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
            f"{source}: row {i + 2}: present must be 0 or 1, got " f"{labels['present'].iloc[i]!r}"
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
    return rel.astype(object).where(rel.notna(), None).map(
        lambda v: None if v is None else str(v).replace("\\", "/"))


def window_labels(
    events: pd.DataFrame,
    segments: pd.DataFrame,
    inventory: pd.DataFrame | None = None,
    recordings: Sequence[str] | None = None,
    source: str = "events.parquet",
) -> pd.DataFrame:
    """Labels of every DETECTED window from the generator's call events (issue 10).

    Overlap rule (the generator's and the simulated annotator's, :mod:`activepam.demo.generate`): a
    call makes its species present in a window ``[start_s, end_s]`` when it overlaps it by at
    least ``min(MIN_OVERLAP_S, MIN_CALL_FRACTION x call duration)`` (0.5 s, or half of a call
    shorter than 1 s). This holds for any window BirdNET analysed (overlapping hops, trailing
    pieces of 1-1.5 s), unlike the generator's fixed 3 s grid.

    Returns one row per (window, species present) ``unit_id, species, present = 1`` and one row
    ``species = "", present = 0`` per window without a call, so every window has a label row.
    A window of a recording the generator did not write (not in ``recordings``, the rel_paths
    of recordings.csv) or with no ``rel_path`` has no label: a :class:`SimulationError`.
    """
    from activepam.demo.generate import MIN_CALL_FRACTION, MIN_OVERLAP_S

    for col in ("rel_path", "species", "onset_s", "offset_s"):
        if col not in events:
            raise SimulationError(f"{source}: events table lacks column {col!r}")
    win = pd.DataFrame({
        "unit_id": segments["segment_id"].astype(str).to_numpy(),
        "rel_path": _rel_paths(segments, inventory).to_numpy(),
        "start_s": segments["start_s"].to_numpy(dtype=np.float64),
        "end_s": segments["end_s"].to_numpy(dtype=np.float64),
    })
    known = win["rel_path"].notna()
    if recordings is not None:
        known &= win["rel_path"].isin({str(r).replace("\\", "/") for r in recordings})
    if not known.all():
        first = win.loc[~known].iloc[0]
        raise SimulationError(
            f"{source}: {int((~known).sum())} detected window(s) have no label row: their "
            f"recording is not one the generator wrote (first: {first['unit_id']!r}, "
            f"rel_path {first['rel_path']!r})")
    ev = events[["rel_path", "species", "onset_s", "offset_s"]].copy()
    ev["rel_path"] = ev["rel_path"].astype(str).str.replace("\\", "/", regex=False)
    pairs = win.merge(ev, on="rel_path", how="inner")
    on, off = pairs["onset_s"].to_numpy(float), pairs["offset_s"].to_numpy(float)
    overlap = (np.minimum(off, pairs["end_s"].to_numpy())
               - np.maximum(on, pairs["start_s"].to_numpy()))
    need = np.minimum(MIN_OVERLAP_S, MIN_CALL_FRACTION * (off - on))
    hit = pairs.loc[overlap >= need - 1e-9, ["unit_id", "species"]].drop_duplicates()
    hit = hit.assign(species=hit["species"].astype(str), present=1)
    empty = win.loc[~win["unit_id"].isin(set(hit["unit_id"])), ["unit_id"]].assign(
        species="", present=0)
    out = pd.concat([hit, empty], ignore_index=True)
    missing = ~win["unit_id"].isin(set(out["unit_id"]))
    if missing.any():  # cannot happen by construction; a label-less window must never pass
        raise SimulationError(f"{source}: window {win.loc[missing, 'unit_id'].iloc[0]!r} has no "
                              "label row")
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
    from activepam.demo.generate import MIN_SEGMENT_S

    start = segments["start_s"].to_numpy(dtype=np.float64)
    off = np.abs(start / SEGMENT_S - np.round(start / SEGMENT_S)) > 1e-6
    if inventory is not None and "duration_s" in inventory:
        dur = segments["recording_id"].map(inventory.set_index("recording_id")["duration_s"])
        rest = dur.to_numpy(dtype=np.float64) - start
        off |= rest < np.minimum(MIN_SEGMENT_S, dur.to_numpy(dtype=np.float64)) - 1e-9
    if off.any():
        first = segments["segment_id"].iloc[int(np.flatnonzero(off)[0])]
        raise SimulationError(
            f"{source}: {int(off.sum())} detected window(s) have no label row on the "
            f"generator's {SEGMENT_S:g} s grid (first: {first!r}); label windows from the call "
            "events (events.parquet) instead")


# --------------------------------------------------------------------------- probe


class Probe:
    """Multi-label L2 logistic regression, all species fitted jointly with L-BFGS.

    Per species the objective is scikit-learn's ``LogisticRegression(C=C)``:
    ``sum_i logloss(y_i, w.x_i + b) + ||w||^2 / (2 C)`` (intercept not penalised). Species
    with a single class among the training labels get the constant probability
    ``(positives + 0.5) / (n + 1)``. ``fit`` warm-starts from the previous solution.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 200, tol: float = 1e-4) -> None:
        if C <= 0:
            raise SimulationError(f"probe C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.W: np.ndarray | None = None  # [dim, n_species]
        self.b: np.ndarray | None = None  # [n_species]
        self.n_iter_ = 0

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Probe:
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        n, d = X.shape
        s = Y.shape[1]
        if self.W is None or self.W.shape != (d, s):
            self.W, self.b = np.zeros((d, s)), np.zeros(s)
        assert self.b is not None
        pos = Y.sum(axis=0)
        active = (pos > 0) & (pos < n)
        const = np.clip((pos + 0.5) / (n + 1.0), 1e-6, 1 - 1e-6)
        self.W[:, ~active] = 0.0
        self.b[~active] = np.log(const[~active] / (1 - const[~active]))
        k = int(active.sum())
        if k == 0 or n == 0:
            return self
        Ya = Y[:, active]
        inv_c = 1.0 / self.C

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: d * k].reshape(d, k)
            b = theta[d * k :]
            Z = X @ W + b
            loss = (
                -(Ya * log_expit(Z) + (1.0 - Ya) * log_expit(-Z)).sum()
                + 0.5 * inv_c * (W * W).sum()
            )
            G = expit(Z) - Ya
            return float(loss), np.concatenate([(X.T @ G + inv_c * W).ravel(), G.sum(axis=0)])

        theta0 = np.concatenate([self.W[:, active].ravel(), self.b[active]])
        res = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol * n},
        )
        self.W[:, active] = res.x[: d * k].reshape(d, k)
        self.b[active] = res.x[d * k :]
        self.n_iter_ = int(res.nit)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        if self.W is None or self.b is None:
            raise SimulationError("probe used before fit")
        return np.asarray(X, dtype=np.float64) @ self.W + self.b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of presence [n, n_species]."""
        return expit(self.decision_function(X))


class BaseALProbe:
    """BaseAL's head (``core/utils/model.py`` of BenMcEwen1/BaseAL): Linear(d, h) - ReLU -
    Linear(h, species) with sigmoid outputs, trained with Adam on the binary cross-entropy,
    ``epochs`` epochs per cycle in mini-batches of ``batch``; every ``fit`` continues from the
    previous weights (BaseAL keeps one model over the cycles). scikit-learn's
    ``MLPClassifier(hidden_layer_sizes=(h,), activation="relu", solver="adam",
    learning_rate_init=lr, batch_size=batch, max_iter=epochs, warm_start=True, alpha=0)``;
    ``hidden = 0`` uses the input dimension (BaseAL's ``hidden_dim=None``). A constant all-zero
    label column is appended so that one species still trains as multi-label.
    """

    def __init__(self, hidden: int = 0, epochs: int = 10, batch: int = 32, lr: float = 1e-3,
                 seed: int = 0) -> None:
        self.hidden, self.epochs, self.batch, self.lr, self.seed = (
            int(hidden), int(epochs), int(batch), float(lr), int(seed))
        self.model: Any = None
        self.n_species = 0

    def fit(self, X: np.ndarray, Y: np.ndarray) -> BaseALProbe:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.int64)
        self.n_species = Y.shape[1]
        if self.model is None:
            self.model = MLPClassifier(
                hidden_layer_sizes=(self.hidden or X.shape[1],), activation="relu",
                solver="adam", learning_rate_init=self.lr, batch_size=self.batch,
                max_iter=self.epochs, n_iter_no_change=self.epochs, alpha=0.0,
                warm_start=True, shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Got `batch_size`", category=UserWarning)
            self.model.fit(X, np.hstack([Y, np.zeros((len(Y), 1), dtype=np.int64)]))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of presence [n, n_species]."""
        if self.model is None:
            raise SimulationError("probe used before fit")
        return np.asarray(self.model.predict_proba(np.asarray(X, dtype=np.float64)))[
            :, : self.n_species]


def make_probe(cfg: SimConfig, seed: int = 0, max_iter: int | None = None) -> Any:
    """The probe of ``cfg.probe``: :class:`Probe` (logistic, ours) or :class:`BaseALProbe`."""
    if cfg.probe == "baseal_mlp":
        return BaseALProbe(cfg.probe_hidden, cfg.probe_epochs, cfg.probe_batch, cfg.probe_lr,
                           seed)
    return Probe(cfg.probe_C, max_iter or cfg.probe_max_iter)


def features(X: np.ndarray, pca_dims: int = 0, seed: int = 0, whiten: bool = False) -> np.ndarray:
    """Probe features: the embeddings, optionally PCA-projected (randomized, seeded) to
    ``pca_dims`` components, optionally whitened (every dimension z-scored).

    The default keeps the embedding geometry (PCA is a rotation + truncation, centred): on real
    BirdNET embeddings whitening blew up low-variance components and hurt the probe (issue 10:
    AULC 0.69 whitened vs 0.86 raw on a peer's real set; macro AP at 50 labels 0.38 vs 0.77
    with PCA alone), so ``simulation.whiten`` is off by default. Fitted on all units
    (unsupervised, transductive - the pool and the test set are known in a pool-based
    simulation); identical for every strategy and seed.
    """
    X = np.asarray(X, dtype=np.float64)
    if pca_dims and 0 < pca_dims < min(X.shape):
        from sklearn.decomposition import PCA

        X = PCA(
            n_components=int(pca_dims), svd_solver="randomized", random_state=seed
        ).fit_transform(X)
    if not whiten:
        return X
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def config_features(X: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """:func:`features` with the settings of ``cfg`` (``pca_dims``, ``whiten``)."""
    return features(X, cfg.pca_dims, whiten=cfg.whiten)


# --------------------------------------------------------------------------- metrics


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of scores ``s`` for 0/1 labels ``y`` (scikit-learn's definition, ties
    grouped); NaN without positives."""
    y = np.asarray(y, dtype=np.float64)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(s, dtype=np.float64), kind="mergesort")
    ss, yy = np.asarray(s)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tps = np.cumsum(yy)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney with mid-ranks); NaN without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_score(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of 0/1 predictions; NaN without positives in ``y``."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    tp = int((y & pred).sum())
    if y.sum() == 0:
        return float("nan")
    denom = y.sum() + pred.sum()
    return float(2.0 * tp / denom) if denom else float("nan")


def expected_calibration_error(Y: np.ndarray, P: np.ndarray, bins: int = 10) -> float:
    """ECE over all (unit, species) probabilities in ``bins`` equal-width bins."""
    y = np.asarray(Y, dtype=np.float64).ravel()
    p = np.asarray(P, dtype=np.float64).ravel()
    if len(p) == 0:
        return float("nan")
    idx = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    conf = np.bincount(idx, weights=p, minlength=bins)
    acc = np.bincount(idx, weights=y, minlength=bins)
    ok = cnt > 0
    return float(np.sum(np.abs(acc[ok] - conf[ok])) / len(p))


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def macro_scores(Y: np.ndarray, P: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro AP / F1 over species with at least one positive, macro AUROC (both classes)."""
    aps, f1s, aucs = [], [], []
    for j in np.flatnonzero(np.asarray(Y).sum(axis=0) > 0):
        aps.append(average_precision(Y[:, j], P[:, j]))
        f1s.append(f1_score(Y[:, j], P[:, j] >= threshold))
        aucs.append(auroc(Y[:, j], P[:, j]))
    return {
        "macro_ap": _nanmean(aps),
        "macro_f1": _nanmean(f1s),
        "macro_auroc": _nanmean(aucs),
        "n_species_eval": float(len(aps)),
    }


def evaluate(
    Y: np.ndarray,
    P: np.ndarray,
    strata: Mapping[str, np.ndarray] | None = None,
    threshold: float = 0.5,
    min_units: int = 1,
) -> list[tuple[str, str, str, float]]:
    """All metrics as ``(stratum, stratum_value, metric, value)`` rows.

    Overall: macro/micro AP, macro AUROC, macro F1, ECE, number of species evaluated. Per
    stratum key and value (units >= ``min_units``): macro AP and macro F1, then the spread of
    those over the key's values as ``cv_<metric>`` and ``pielou_<metric>`` (value ``"all"``).
    """
    Y = np.asarray(Y)
    P = np.asarray(P)
    rows: list[tuple[str, str, str, float]] = []
    overall = macro_scores(Y, P, threshold)
    overall["micro_ap"] = average_precision(Y.ravel(), P.ravel())
    overall["ece"] = expected_calibration_error(Y, P)
    rows += [("all", "all", m, overall[m]) for m in OVERALL_METRICS]
    from activepam.simulation.analysis import spread

    for key, values in (strata or {}).items():
        values = np.asarray(values).astype(str)
        per_value: dict[str, list[float]] = {m: [] for m in STRATUM_METRICS}
        for v in np.unique(values):
            mask = values == v
            if mask.sum() < min_units:
                continue
            sc = macro_scores(Y[mask], P[mask], threshold)
            for m in STRATUM_METRICS:
                rows.append((key, str(v), m, sc[m]))
                per_value[m].append(sc[m])
        for m in STRATUM_METRICS:
            cv, j = spread(per_value[m])
            rows += [(key, "all", f"cv_{m}", cv), (key, "all", f"pielou_{m}", j)]
    return rows


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimConfig:
    """Settings of a simulated run (the ``simulation`` section of params.yaml)."""

    seed_size: float = 0.02
    batch_size: float = 4
    batch_growth: float = 1.0
    rounds: int = 10
    test_fraction: float = 0.25
    split_seed: int = 0
    context_s: float = 4.0
    budget_unit: str = "seconds"
    vary_split: bool = True
    data_fraction: float = 0.8
    pca_dims: int = 128
    whiten: bool = False
    probe_C: float = 1.0
    probe_max_iter: int = 200
    threshold: float = 0.5
    strata: tuple[str, ...] = ("site", "lat_band", "season", "diel")
    strata_options: Mapping[str, Any] = field(default_factory=dict)
    #: metadata column of a predefined split (train = pool, test = test set, validation
    #: unused), honoured when the dataset has it; "" = always split randomly
    split_column: str = "split"
    #: listening cost of labelled segments: clip = sum of every segment's clip (today's);
    #: union = the union of the listened spans per recording (overlapping windows once)
    segment_cost: str = "clip"
    #: the strategy picks the seed set from an untrained model (uniform scores); false = random
    cold_start: bool = False
    #: probe: logistic (ours) | baseal_mlp (BaseAL's Linear-ReLU-Linear head, Adam)
    probe: str = "logistic"
    #: baseal_mlp: hidden width (0 = the input dimension, BaseAL's default hidden_dim=None)
    probe_hidden: int = 0
    #: baseal_mlp: epochs per cycle (warm-started), mini-batch size, Adam learning rate
    probe_epochs: int = 10
    probe_batch: int = 32
    probe_lr: float = 1e-3
    #: record the sampling wall time per round (``sampling_s``); off: NaN, so that the results
    #: stay byte-for-byte reproducible (wall times never are)
    timing: bool = False

    def __post_init__(self) -> None:
        if self.segment_cost not in SEGMENT_COSTS:
            raise SimulationError(
                f"simulation.segment_cost: {self.segment_cost!r} is not one of {SEGMENT_COSTS}")
        if self.probe not in PROBES:
            raise SimulationError(f"simulation.probe: {self.probe!r} is not one of {PROBES}")
        if self.probe_hidden < 0 or self.probe_epochs < 1 or self.probe_batch < 1:
            raise SimulationError("simulation.probe_hidden must be >= 0, probe_epochs and "
                                  "probe_batch >= 1")
        if self.seed_size <= 0 or self.batch_size <= 0:
            raise SimulationError("simulation.seed_size and simulation.batch_size must be > 0")
        if not 0 < self.test_fraction < 1:
            raise SimulationError("simulation.test_fraction must be in (0, 1)")
        if self.rounds < 0 or self.batch_growth < 1:
            raise SimulationError("simulation.rounds must be >= 0 and simulation.batch_growth >= 1")
        if self.budget_unit not in BUDGET_UNITS:
            raise SimulationError(
                f"simulation.budget_unit: {self.budget_unit!r} is not one of {BUDGET_UNITS}"
            )
        if not 0 < self.data_fraction <= 1:
            raise SimulationError("simulation.data_fraction must be in (0, 1]")
        if self.context_s < 0:
            raise SimulationError("simulation.context_s must be >= 0")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> SimConfig:
        """Config from the ``simulation`` section (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in params.items() if k in names and v is not None}
        kw.update(overrides)
        if "strata" in kw:
            kw["strata"] = tuple(kw["strata"])
        return cls(**kw)


def n_units(size: float, pool: int) -> int:
    """A size given as a fraction (< 1) of ``pool`` or a count (>= 1), at least 1."""
    n = math.ceil(size * pool - 1e-9) if size < 1 else int(round(size))
    return max(1, min(int(n), pool))


def batch_schedule(batch_size: float, growth: float, rounds: int, pool: int) -> list[int]:
    """Batch size of every round: ``batch_size`` (fraction of ``pool`` or count) x growth^r."""
    first = n_units(batch_size, pool)
    return [max(1, int(round(first * growth**r))) for r in range(rounds)]


@dataclass
class Split:
    """Fixed pool / test split of a dataset (row indices)."""

    pool: np.ndarray
    test: np.ndarray


def split_test(ds: SimDataset, fraction: float, seed: int = 0, by: str = "site") -> Split:
    """Hold out ``fraction`` of the segments, as whole recordings stratified by ``by`` (site),
    as the test set: :func:`activepam.core.evaluate.split_by_recording`, the same split as the
    rounds' test set.

    Splitting by recording keeps a recording's segments together (no leakage between
    neighbouring segments or through a clip's context); every site keeps at least one pool
    recording.
    """
    from activepam.core.evaluate import EvaluationError, split_by_recording

    try:
        test_recs = split_by_recording(ds.units, fraction, seed=seed, by=by)
    except EvaluationError as exc:
        raise SimulationError(f"{ds.name}: simulation.test_fraction: {exc}") from None
    is_test = ds.units["recording_id"].astype(str).isin(set(test_recs)).to_numpy()
    if not is_test.any() or is_test.all():
        raise SimulationError(
            f"{ds.name}: cannot split {ds.units['recording_id'].nunique()} recording(s) into "
            "pool and test"
        )
    return Split(np.flatnonzero(~is_test), np.flatnonzero(is_test))


@dataclass(frozen=True)
class Replicate:
    """One replicate: the seeds it derives from ``seed`` and its pool / test rows."""

    seed: int  # the active-learning seed (seed set, tie-breaks)
    split_seed: int  # seed of the test split
    data_seed: int  # seed of the data subsample (-1: the data are fixed)
    split: Split


def replicate_rows(ds: SimDataset, cfg: SimConfig, seed: int) -> Replicate:
    """The replicate ``seed``: (data subsample, test split, active-learning seed).

    * data: with ``cfg.data_fraction < 1`` every site keeps a seeded ``data_fraction`` of its
      recordings (at least two, so it keeps a pool and a test recording), drawn without
      replacement; the rest of the dataset is not used by the replicate. ``data_fraction: 1``:
      the data are fixed (``data_seed = -1``).
    * split: :func:`split_test` of the kept units with seed ``split_seed + seed`` when
      ``cfg.vary_split`` (else ``split_seed``: the split is fixed).

    The same replicate seed gives the same rows for every strategy (paired comparisons) and for
    the full-supervision reference of that replicate.

    A predefined split (the column ``cfg.split_column``, e.g. written by ``activepam datasets
    import``) replaces the random one: ``train`` rows are the pool, ``test`` rows the test set
    (fixed: ``split_seed = -1``, never subsampled), ``validation`` rows are in neither. A
    replicate then varies the active-learning seed and, with ``data_fraction < 1``, a seeded
    subsample of the train pool's recordings (every site keeps at least one).
    """
    seed = int(seed)
    if cfg.split_column and cfg.split_column in ds.units:
        return _predefined_replicate(ds, cfg, seed)
    split_seed = int(cfg.split_seed) + (seed if cfg.vary_split else 0)
    keep = np.ones(ds.n, dtype=bool)
    data_seed = -1
    if cfg.data_fraction < 1:
        data_seed = seed
        kept = _kept_recordings(ds.units, cfg.data_fraction, data_seed, 2)
        keep = ds.units["recording_id"].astype(str).isin(kept).to_numpy()
    rows = np.flatnonzero(keep)
    sub = SimDataset(
        ds.units.iloc[rows].reset_index(drop=True), ds.X[rows], ds.Y[rows], ds.species, ds.name
    )
    split = split_test(sub, cfg.test_fraction, split_seed)
    return Replicate(seed, split_seed, data_seed, Split(rows[split.pool], rows[split.test]))


def _kept_recordings(units: pd.DataFrame, fraction: float, seed: int, min_per_site: int) -> set:
    """A seeded ``fraction`` of every site's recordings (at least ``min_per_site``)."""
    rng = np.random.default_rng([seed, 0x5EED])
    site = units["site"].astype(str) if "site" in units else pd.Series("all", index=units.index)
    recs = (
        pd.DataFrame({"rec": units["recording_id"].astype(str), "site": site})
        .drop_duplicates("rec")
        .sort_values("rec")
    )
    kept: list[str] = []
    for _, g in recs.groupby("site", sort=True):
        n = len(g)
        k = min(n, max(min_per_site, math.ceil(fraction * n - 1e-9)))
        kept += list(g["rec"].to_numpy()[rng.permutation(n)[:k]])
    return set(kept)


def _predefined_replicate(ds: SimDataset, cfg: SimConfig, seed: int) -> Replicate:
    """:func:`replicate_rows` for a dataset with a predefined split column."""
    col = cfg.split_column
    split = ds.units[col].astype(str).str.strip().str.lower().to_numpy()
    bad = ~np.isin(split, ["train", "validation", "test"])
    if bad.any():
        raise SimulationError(
            f"{ds.name}: column {col!r} (simulation.split_column): value "
            f"{ds.units[col].iloc[int(np.flatnonzero(bad)[0])]!r} is not train, validation or test")
    pool, test = split == "train", split == "test"
    if not pool.any() or not test.any():
        raise SimulationError(f"{ds.name}: column {col!r} (simulation.split_column) needs train "
                              f"and test rows ({int(pool.sum())} train, {int(test.sum())} test)")
    data_seed = -1
    if cfg.data_fraction < 1:
        data_seed = seed
        train = ds.units[pool]
        kept = _kept_recordings(train, cfg.data_fraction, data_seed, 1)
        pool &= ds.units["recording_id"].astype(str).isin(kept).to_numpy()
    return Replicate(seed, -1, data_seed, Split(np.flatnonzero(pool), np.flatnonzero(test)))


def strata_values(
    units: pd.DataFrame, keys: Sequence[str], options: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Stratum label of every unit for each key (see :mod:`activepam.core.strata`); a column's
    missing values are ``unknown``."""
    from activepam.core.strata import UNKNOWN, StrataError, build_strata

    out = {}
    for key in keys:
        if key in units and key not in ("lat_band", "season", "diel"):
            col = units[key]
            text = np.array(col.astype(str).to_numpy(dtype=object), dtype=object)
            text[col.isna().to_numpy() | (text == "")] = UNKNOWN  # as activepam.core.strata does
            out[key] = text
            continue
        try:
            st = build_strata(units, [key], options)
        except StrataError as exc:
            raise SimulationError(f"simulation.strata: {exc}") from exc
        labels = np.asarray([lab.split("=", 1)[1] for lab in st.labels], dtype=object)
        out[key] = labels[st.codes]
    return out


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class StrategySpec:
    """A named simulation strategy: a resolved sampling-engine strategy (see
    :mod:`activepam.sampling.strategies`); its ``unit`` says whether segments or recordings are labelled
    and its ``aggregation`` how segment uncertainty becomes a recording score."""

    name: str
    strategy: dict[str, Any]

    @property
    def unit(self) -> str:
        return str(self.strategy.get("unit", "segment"))

    @property
    def aggregation(self) -> dict[str, Any]:
        return dict(self.strategy.get("aggregation") or {})

    @property
    def column(self) -> str:
        """Segment column aggregated into the recording score (the score's uncertainty)."""
        from activepam.sampling.scores import SCORE_COLUMNS

        cols = SCORE_COLUMNS.get(str(self.strategy.get("score", {}).get("method")), ())
        return cols[0] if len(cols) == 1 else "max_binary_entropy"


def resolve_strategy(
    name: str, presets: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
) -> StrategySpec:
    """Strategy ``name``: an entry of ``presets`` (params ``simulation.presets``), a user
    strategy of ``params`` (``sampling.strategies``) or a built-in preset of the sampling engine.

    Presets are strategy mappings and may start from another strategy with ``base``.
    """
    from activepam.sampling.strategies import StrategyError, resolve_strategy as resolve, user_strategies

    users = {**user_strategies(params), **dict(presets or {})}
    try:
        spec = resolve(name, {"sampling": {"strategies": users}})
    except StrategyError as exc:
        raise SimulationError(f"simulation.strategies: {exc}") from exc
    return StrategySpec(name, spec)


#: selector(pool_segments, n, seed, embeddings, labelled_ids) -> selected unit ids in order
#: (segment ids or recording ids, as the strategy's unit says)
Selector = Callable[[pd.DataFrame, int, int, pd.DataFrame | None, Sequence[str]], list[str]]


def sampling_selector(spec: StrategySpec) -> Selector:
    """Selector calling the sampling engine with the strategy of ``spec``."""
    from activepam.sampling import engine as sampling

    def select(
        units: pd.DataFrame,
        n: int,
        seed: int,
        embeddings: pd.DataFrame | None,
        labelled: Sequence[str],
    ) -> list[str]:
        out = sampling.sample(
            units, spec.strategy, n=n, seed=seed, embeddings=embeddings, labelled=labelled
        )
        return out["unit_id"].astype(str).tolist()

    return select


# --------------------------------------------------------------------------- the AL loop


def _segment_cost(units: pd.DataFrame, context_s: float) -> np.ndarray:
    """Listening seconds of each segment's exported clip: the rounds' clip window
    (:func:`activepam.rounds.annotations.clip_window`: the segment +- ``context_s``, clipped to the
    recording)."""
    from activepam.rounds.annotations import clip_window

    spans = [
        clip_window(a, b, d, context_s)
        for a, b, d in zip(
            units["start_s"].to_numpy(dtype=np.float64),
            units["end_s"].to_numpy(dtype=np.float64),
            units["recording_duration_s"].to_numpy(dtype=np.float64),
        )
    ]
    return np.asarray([hi - lo for lo, hi in spans], dtype=np.float64)


def _pool_segments(ds: SimDataset, rows: np.ndarray, P: np.ndarray,
                   labelled_pos: np.ndarray | None = None) -> pd.DataFrame:
    """Segments table (the detect contract) of pool rows with the probe's uncertainty.

    With ``labelled_pos`` (positions of the labelled rows, for ``allocation: divergence``) it
    also carries the probe's per-species probabilities (``prob:<species>``) and the oracle's
    labels of the labelled rows only (``label:<species>``, NaN elsewhere): what a learner knows.
    """
    from activepam.core.strata import LABEL_PREFIX, PROB_PREFIX
    from activepam.core.uncertainty import segment_uncertainty

    seg = ds.units.iloc[rows].reset_index(drop=True).rename(columns={"unit_id": "segment_id"})
    if labelled_pos is not None:
        lab = np.full(P.shape, np.nan)
        lab[labelled_pos] = ds.Y[rows[labelled_pos]]
        extra = {f"{PROB_PREFIX}{sp}": P[:, j] for j, sp in enumerate(ds.species)}
        extra.update({f"{LABEL_PREFIX}{sp}": lab[:, j] for j, sp in enumerate(ds.species)})
        seg = pd.concat([seg, pd.DataFrame(extra)], axis=1)
    unc = segment_uncertainty(P)
    species = np.asarray(ds.species, dtype=object)
    seg["top1_species"] = species[unc["top1_index"]]
    for col in (
        "top1_confidence",
        "top2_confidence",
        "margin",
        "ratio",
        "max_binary_entropy",
        "mean_binary_entropy",
    ):
        seg[col] = unc[col]
    return seg


def _pool_embeddings(seg: pd.DataFrame, Z: np.ndarray) -> pd.DataFrame:
    """The embeddings table the sampling engine reads, for the pool segments ``seg``."""
    return pd.DataFrame(
        {
            "segment_id": seg["segment_id"],
            "recording_id": seg["recording_id"],
            "embedding": list(np.asarray(Z, dtype=np.float32)),
        }
    )


def _union_cost(units: pd.DataFrame, context_s: float) -> float:
    """Listening seconds of labelled segments as the union of their clips per recording
    (:func:`activepam.datasets.union_seconds`): overlapping windows and shared context once."""
    from activepam.datasets import union_seconds

    return union_seconds(
        units["recording_id"].to_numpy(), units["start_s"].to_numpy(dtype=np.float64),
        units["end_s"].to_numpy(dtype=np.float64), context_s,
        units["recording_duration_s"].to_numpy(dtype=np.float64))


def unit_costs(
    pool_units: pd.DataFrame, unit: str, context_s: float
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The pool's labelling units, their segment rows and their listening cost in seconds.

    A recording costs its duration (``recording_duration_s``); a segment costs its exported clip:
    the segment +- ``context_s`` clipped to the recording (:func:`_segment_cost`). Returns
    ``(unit_ids, members, cost)`` with ``members[u]`` the positions of unit ``u``'s segments in
    ``pool_units`` and ``cost`` aligned with ``unit_ids``.
    """
    rec_of = pool_units["recording_id"].astype(str).to_numpy()
    if unit == "recording":
        unit_ids = np.asarray(sorted(set(rec_of)), dtype=object)
        members = pd.Series(np.arange(len(rec_of))).groupby(rec_of).apply(np.asarray).to_dict()
        dur = pool_units.groupby(rec_of)["recording_duration_s"].first()
        cost = dur.loc[unit_ids].to_numpy(dtype=np.float64)
    else:
        unit_ids = pool_units["unit_id"].astype(str).to_numpy()
        members = {u: np.array([i]) for i, u in enumerate(unit_ids)}
        cost = _segment_cost(pool_units, context_s)
    return unit_ids, members, cost


def budget_plan(cfg: SimConfig, n_pool_units: int, pool_audio_s: float) -> list[float]:
    """Cumulative budget after the seed set and after every round.

    ``budget_unit: units``: counts of units (``seed_size`` / ``batch_size``: a fraction < 1 of
    the pool's units or a count). ``seconds``: listening seconds (a fraction < 1 of the pool's
    audio duration or seconds), the same for every unit mode.
    """
    if cfg.budget_unit == "units":
        first = float(n_units(cfg.seed_size, n_pool_units))
        batches = batch_schedule(cfg.batch_size, cfg.batch_growth, cfg.rounds, n_pool_units)
    else:
        first = cfg.seed_size * pool_audio_s if cfg.seed_size < 1 else float(cfg.seed_size)
        step = cfg.batch_size * pool_audio_s if cfg.batch_size < 1 else float(cfg.batch_size)
        batches = [step * cfg.batch_growth**r for r in range(cfg.rounds)]
    return list(np.cumsum([first, *batches]))


def _units_for(target: float, spent: float, n_done: int, mean_cost: float, cfg: SimConfig,
               left: int) -> int:
    """Units to add so the cumulative budget reaches ``target`` (at least 1, at most ``left``)."""
    if cfg.budget_unit == "units":
        n = round(target) - n_done
    else:
        n = round((target - spent) / mean_cost) if mean_cost > 0 else 1
    return max(1, min(n, left))


def run_simulation(
    ds: SimDataset,
    spec: StrategySpec,
    seed: int,
    cfg: SimConfig,
    selector: Selector | None = None,
    Z: np.ndarray | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One simulated AL run (strategy x replicate seed): the tidy result rows of every round."""
    selector = selector or sampling_selector(spec)
    Z = config_features(ds.X, cfg) if Z is None else Z
    rep = replicate_rows(ds, cfg, seed)
    split = rep.split
    strata_all = strata_values(ds.units, cfg.strata, cfg.strata_options)
    test_strata = {k: v[split.test] for k, v in strata_all.items()}
    pool_units = ds.units.iloc[split.pool].reset_index(drop=True)
    rec_of = pool_units["recording_id"].astype(str).to_numpy()
    rec_dur = pool_units.groupby("recording_id")["recording_duration_s"].first()
    unit_ids, members, cost = unit_costs(pool_units, spec.unit, cfg.context_s)
    cost_of = dict(zip(unit_ids, cost))
    mean_cost = float(cost.mean()) if len(cost) else 0.0
    totals = {
        "units": len(unit_ids),
        "segments": len(pool_units),
        "recordings": len(rec_dur),
        "audio": float(rec_dur.sum()),  # the pool's audio, the same for every unit mode
    }
    plan = budget_plan(cfg, len(unit_ids), totals["audio"])
    rng = np.random.default_rng(seed)
    n0 = _units_for(plan[0], 0.0, 0, mean_cost, cfg, len(unit_ids))
    emb = None
    sampling_s = 0.0
    if cfg.cold_start:  # the strategy picks the seed set from an untrained model
        P0 = np.full((len(split.pool), len(ds.species)), 0.5)  # uniform: every score tied
        seg0 = _pool_segments(ds, split.pool, P0, np.zeros(0, dtype=np.int64)
                              if spec.strategy.get("allocation") == "divergence" else None)
        emb = _pool_embeddings(seg0, Z[split.pool])
        t0 = time.perf_counter()
        labelled: list[str] = list(selector(seg0, n0, seed * 1000 + 999, emb, []))
        sampling_s = time.perf_counter() - t0
        if not labelled:
            raise SimulationError(f"strategy {spec.name!r} chose no unit for the cold start")
    else:
        labelled = list(rng.permutation(unit_ids)[:n0])
    probe = make_probe(cfg, seed)
    Y_test = ds.Y[split.test]
    # stopping rule (activepam.core.stopping): decisions on a fixed stop set of pool segments
    stop_rows = split.pool[np.sort(np.random.default_rng(seed + 7).permutation(
        len(split.pool))[:STOP_SET])]
    last_decisions: np.ndarray | None = None
    rows: list[dict[str, Any]] = []
    rounds = range(cfg.rounds + 1)
    if progress:
        from tqdm import tqdm

        rounds = tqdm(rounds, desc=f"{spec.name} seed {seed}", unit="round", leave=False)
    for r in rounds:
        lab_pos = np.concatenate([members[u] for u in labelled])
        probe.fit(Z[split.pool[lab_pos]], ds.Y[split.pool[lab_pos]])
        P_test = probe.predict_proba(Z[split.test])
        lab_recs = set(rec_of[lab_pos])
        if cfg.segment_cost == "union" and spec.unit == "segment":
            audio = _union_cost(pool_units.iloc[lab_pos], cfg.context_s)
        else:
            audio = float(sum(cost_of[u] for u in labelled))
        budget = {
            "strategy": spec.name,
            "unit": spec.unit,
            "seed": int(seed),
            "round": r,
            "split_seed": rep.split_seed,
            "data_seed": rep.data_seed,
            "n_units": len(labelled),
            "n_segments": len(lab_pos),
            "n_recordings": len(lab_recs),
            "audio_seconds": audio,
            "unit_fraction": len(labelled) / totals["units"],
            "segment_fraction": len(lab_pos) / totals["segments"],
            "recording_fraction": len(lab_recs) / totals["recordings"],
            "audio_fraction": audio / totals["audio"] if totals["audio"] else float("nan"),
            "n_positives": int(ds.Y[split.pool[lab_pos]].sum()),
            "sampling_s": float(sampling_s) if cfg.timing else float("nan"),
        }
        decisions = probe.predict_proba(Z[stop_rows]) >= cfg.threshold
        if last_decisions is not None:
            kappa = prediction_agreement(last_decisions, decisions)
            rows.append({**budget, "stratum": "all", "stratum_value": "all",
                         "metric": "stop_kappa", "value": float(kappa)})
        last_decisions = decisions
        for stratum, value, metric, v in evaluate(Y_test, P_test, test_strata, cfg.threshold):
            rows.append(
                {
                    **budget,
                    "stratum": stratum,
                    "stratum_value": value,
                    "metric": metric,
                    "value": float(v),
                }
            )
        if r == cfg.rounds or len(labelled) >= len(unit_ids):
            break
        P_pool = probe.predict_proba(Z[split.pool])
        divergence = spec.strategy.get("allocation") == "divergence"
        seg = _pool_segments(ds, split.pool, P_pool, lab_pos if divergence else None)
        if emb is None:
            emb = _pool_embeddings(seg, Z[split.pool])
        n = _units_for(plan[r + 1], audio, len(labelled), mean_cost, cfg,
                       len(unit_ids) - len(labelled))
        t0 = time.perf_counter()
        chosen = selector(seg, n, seed * 1000 + r, emb, list(labelled))
        sampling_s = time.perf_counter() - t0
        fresh = [u for u in chosen if u not in set(labelled)]
        if len(fresh) != len(chosen):
            raise SimulationError(
                f"strategy {spec.name!r} re-sampled {len(chosen) - len(fresh)} labelled unit(s)"
            )
        if not fresh:
            log.warning("strategy %s chose no unit in round %d; stopping", spec.name, r)
            break
        labelled += fresh
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


#: pool segments every round's probe predicts for the stopping rule's agreement (stop_kappa)
STOP_SET = 500


#: columns of the full-supervision table (one reference per replicate seed)
FULL_COLUMNS = ["seed", "split_seed", "data_seed", "stratum", "stratum_value", "metric", "value"]


def full_supervision(
    ds: SimDataset,
    cfg: SimConfig,
    Z: np.ndarray | None = None,
    seeds: Sequence[int] = (0,),
) -> pd.DataFrame:
    """The full-supervision reference of every replicate seed: the probe trained on the
    replicate's whole pool, evaluated on its test set (the same rows as that replicate's runs).

    One reference per replicate, so "x % of full supervision" is a per-replicate ratio and the
    reference itself gets an interval over replicates. It is one L2-regularised fit at the
    configured ``probe_C``, not an upper bound: a run can exceed it. With ``probe:
    baseal_mlp`` the head is fitted ``rounds + 1`` times (the epochs of a run's final model).
    """
    Z = config_features(ds.X, cfg) if Z is None else Z
    strata_all = strata_values(ds.units, cfg.strata, cfg.strata_options)
    frames = []
    for seed in seeds:
        rep = replicate_rows(ds, cfg, int(seed))
        split = rep.split
        probe = make_probe(cfg, int(seed), max(cfg.probe_max_iter, 500))
        # BaseAL's head trains for a fixed number of epochs per fit: as many fits as a run's
        # cycles, so the reference has the training of a run's final model
        for _ in range(cfg.rounds + 1 if cfg.probe == "baseal_mlp" else 1):
            probe.fit(Z[split.pool], ds.Y[split.pool])
        P = probe.predict_proba(Z[split.test])
        rows = evaluate(
            ds.Y[split.test], P, {k: v[split.test] for k, v in strata_all.items()}, cfg.threshold
        )
        df = pd.DataFrame(rows, columns=["stratum", "stratum_value", "metric", "value"])
        df.insert(0, "data_seed", rep.data_seed)
        df.insert(0, "split_seed", rep.split_seed)
        df.insert(0, "seed", int(seed))
        frames.append(df)
    return pd.DataFrame(pd.concat(frames, ignore_index=True), columns=FULL_COLUMNS)


# --------------------------------------------------------------------------- file-level steps


def prepare_dataset(
    sim: Mapping[str, Any], inputs: Mapping[str, str], out: str | Path
) -> SimDataset:
    """Build the simulation dataset named by ``sim['dataset']`` and write it to ``out``.

    ``inputs``: for ``demo`` the keys segments, embeddings, ground_truth, events, species,
    inventory;
    for ``custom`` embeddings, labels, metadata.
    """
    kind = sim.get("dataset", "demo")
    if kind == "demo":
        ds = demo_dataset(
            inputs["segments"],
            inputs["embeddings"],
            inputs["ground_truth"],
            inputs.get("species"),
            inputs.get("inventory"),
            name="demo",
            events_path=inputs.get("events"),
        )
    elif kind == "custom":
        ds = custom_dataset(inputs["embeddings"], inputs["labels"], inputs["metadata"])
    else:
        raise SimulationError(f"simulation.dataset: unknown dataset {kind!r} (demo | custom)")
    log.info(
        "dataset %s: %d segments, %d recordings, %d species, %d-d embeddings, "
        "%d positive labels",
        ds.name,
        ds.n,
        ds.units["recording_id"].nunique(),
        len(ds.species),
        ds.X.shape[1],
        int(ds.Y.sum()),
    )
    write_dataset(ds, out)
    return ds


def run_to_file(
    dataset: str | Path,
    strategy: str,
    seed: int,
    sim: Mapping[str, Any],
    out: str | Path,
    sampling_params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One strategy x seed run on a dataset file; writes the tidy rows to ``out`` (Parquet)."""
    t0 = time.perf_counter()
    ds = read_dataset(dataset)
    cfg = SimConfig.from_params(sim)
    spec = resolve_strategy(strategy, sim.get("presets"), sampling_params)
    res = run_simulation(ds, spec, int(seed), cfg, progress=progress)
    write_parquet(res, out, stage="simulate")
    last = res[(res["stratum"] == "all") & (res["metric"] == sim.get("metric", "macro_ap"))].iloc[
        -1
    ]
    log.info(
        "%s seed %s: %d rounds, %d units, final %s %.4f, %.1f s",
        strategy,
        seed,
        int(last["round"]),
        int(last["n_units"]),
        sim.get("metric", "macro_ap"),
        float(last["value"]),
        time.perf_counter() - t0,
    )
    return res


def full_to_file(dataset: str | Path, sim: Mapping[str, Any], out: str | Path) -> pd.DataFrame:
    """Full-supervision metrics of a dataset file, written to ``out`` (Parquet)."""
    ds = read_dataset(dataset)
    full = full_supervision(ds, SimConfig.from_params(sim), seeds=sim.get("seeds") or [0])
    write_parquet(full, out, stage="simulate")
    return full


# --------------------------------------------------------------------------- workflow helpers


def simulation_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``simulation`` section with ``context_s`` resolved: unset or null = ``rounds.context_s``
    (the context the rounds export on each side of a segment, so a simulated segment costs the
    listening time of the clip an expert would get)."""
    sim = dict(config.get("simulation") or {})
    if sim.get("context_s") is None:
        sim["context_s"] = float((config.get("rounds") or {}).get("context_s", 4.0))
    return sim


def workflow_dataset_inputs(config: Mapping[str, Any], results: str = "results") -> dict[str, str]:
    """Snakemake inputs of the simulation dataset: the demo run's detections + ground truth,
    or the custom dataset's embeddings, labels and metadata."""
    sim = config.get("simulation") or {}
    if sim.get("dataset", "demo") == "custom":
        missing = [k for k in ("embeddings", "labels", "metadata") if not sim.get(k)]
        if missing:
            raise SimulationError(f"simulation.{missing[0]}: a path is needed for dataset: custom")
        return {k: str(sim[k]) for k in ("embeddings", "labels", "metadata")}
    raw = config["data"]["raw_dir"]
    return {
        "segments": f"{results}/detect/segments.parquet",
        "embeddings": f"{results}/detect/embeddings.parquet",
        "inventory": f"{results}/inventory/inventory.parquet",
        "ground_truth": f"{raw}/ground_truth.parquet",
        "events": f"{raw}/events.parquet",
        "species": f"{raw}/species.csv",
    }


def workflow_targets(config: Mapping[str, Any], results: str = "results") -> list[str]:
    """Final outputs of the simulation for ``rule all`` (none when it cannot run: the demo
    dataset needs ``demo.enabled``)."""
    sim = config.get("simulation") or {}
    if not sim or (sim.get("dataset", "demo") == "demo" and not config["demo"].get("enabled")):
        return []
    d = f"{results}/simulation"
    return [
        f"{d}/results.parquet",
        f"{d}/claims.json",
        f"{d}/figures/learning_curves.png",
        f"{d}/figures/aulc.png",
        f"{d}/figures/labels_to_target.png",
        f"{d}/figures/per_stratum.png",
        f"{d}/figures/stratified_loso.png",
        f"{d}/figures/divergence_loso.png",
        f"{d}/divergence/summary.json",
        f"{d}/strategy_table.md",
    ]


# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam simulate``: active learning with an oracle on a labelled dataset."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate active learning with an oracle (strategy comparison)",
        description="Run strategies x seeds of pool-based active learning with an oracle on a "
        "fully labelled dataset and write the tidy results table. The dataset is a "
        "simulation dataset Parquet (results/simulation/dataset.parquet) or the three "
        "files --embeddings/--labels/--metadata.",
    )
    p.add_argument("--dataset", help="simulation dataset Parquet (written by the workflow)")
    p.add_argument("--embeddings", help="Parquet: unit_id (or segment_id) + embedding")
    p.add_argument("--labels", help="CSV/Parquet: unit_id, species, present (0/1)")
    p.add_argument(
        "--metadata", help="CSV/Parquet: unit_id, recording_id, start_s, end_s, strata columns"
    )
    p.add_argument(
        "--strategy",
        action="append",
        help="strategy name (repeatable; default: params simulation.strategies)",
    )
    p.add_argument("--seed", type=int, action="append", help="repeat seed (repeatable)")
    p.add_argument("--rounds", type=int, help="override simulation.rounds")
    p.add_argument("--params", default="params.yaml", help="parameter file (simulation section)")
    p.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="YAML",
        help="params overlay merged over --params (repeatable; e.g. params/protocols/*.yaml)",
    )
    p.add_argument(
        "--imported",
        metavar="DIR",
        help="a folder written by `activepam datasets import` (its embeddings, labels and "
        "metadata .parquet)",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print the BaseAL-style table per strategy (BaseAL AULC, our AULC over labels, "
        "final metric, positives labelled, sampling time; mean and sd over seeds)",
    )
    p.add_argument("--list", action="store_true", help="list the strategies and exit")
    p.add_argument("--out", help="tidy results Parquet (a .csv is written beside it)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from activepam.core.config import ConfigError, load_params

    try:
        params = load_params(args.params)
        params = _overlaid(params, args.overlay)
    except ConfigError as exc:
        print(f"activepam simulate: {exc}", file=sys.stderr)
        return 2
    sim = simulation_params(params)
    if args.list:
        from activepam.sampling.strategies import list_strategies

        merged = {
            "sampling": {
                "strategies": {
                    **(params.get("sampling") or {}).get("strategies", {}),
                    **(sim.get("presets") or {}),
                }
            }
        }
        for name, desc in list_strategies(merged).items():
            print(f"{name:28s} {desc}")
        return 0
    if not args.out:
        print("activepam simulate: --out is required", file=sys.stderr)
        return 2
    if args.rounds is not None:
        sim["rounds"] = args.rounds
    try:
        if args.dataset:
            ds = read_dataset(args.dataset)
        elif args.imported:
            d = Path(args.imported)
            ds = custom_dataset(d / "embeddings.parquet", d / "labels.parquet",
                                d / "metadata.parquet", name=d.name)
        elif args.embeddings and args.labels and args.metadata:
            ds = custom_dataset(args.embeddings, args.labels, args.metadata)
        else:
            print(
                "activepam simulate: give --dataset, --imported or --embeddings, --labels and "
                "--metadata",
                file=sys.stderr,
            )
            return 2
        cfg = SimConfig.from_params(sim)
        Z = config_features(ds.X, cfg)
        frames = []
        for name in args.strategy or sim.get("strategies", ["random"]):
            spec = resolve_strategy(name, sim.get("presets"), params)
            for seed in args.seed or sim.get("seeds", [0]):
                t0 = time.perf_counter()
                frames.append(run_simulation(ds, spec, seed, cfg, Z=Z, progress=True))
                print(f"{name} seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    except SimulationError as exc:
        print(f"activepam simulate: {exc}", file=sys.stderr)
        return 2
    out = pd.concat(frames, ignore_index=True)
    write_parquet(out, args.out, stage="simulate")
    write_csv(out, Path(args.out).with_suffix(".csv"), stage="simulate")
    print(f"{len(out)} rows -> {args.out}")
    if args.summary:
        from activepam.simulation.analysis import protocol_summary

        print(format_protocol_summary(protocol_summary(out, sim.get("metric", "macro_ap"))))
    return 0


def format_protocol_summary(per_run: pd.DataFrame) -> str:
    """Mean (sd) over seeds per strategy of :func:`activepam.simulation.analysis.protocol_summary`."""
    cols = ["baseal_aulc", "aulc", "final", "n_positives", "sampling_s"]
    lines = [f"{'strategy':24s} {'runs':>4s} {'labels':>6s} " + " ".join(f"{c:>17s}" for c in cols)]
    for name, g in per_run.groupby("strategy", sort=False):
        cells = []
        for c in cols:
            v = g[c].to_numpy(dtype=np.float64)
            sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            cells.append(f"{v.mean():>9.3f} ({sd:5.3f})")
        lines.append(f"{name:24s} {len(g):4d} {int(g['n_labelled'].max()):6d} " + " ".join(cells))
    return "\n".join(lines)


def _overlaid(params: dict[str, Any], overlays: Sequence[str]) -> dict[str, Any]:
    """``params`` with every overlay YAML merged over it in order (nested mappings merged,
    lists and values replaced, as Snakemake's --configfile), then validated."""
    import yaml

    from activepam.core.config import ConfigError, validate_params
    from activepam.sampling.strategies import deep_merge

    for path in overlays:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: overlay not found")
        over = yaml.safe_load(p.read_text()) or {}
        if not isinstance(over, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
        params = deep_merge(params, over)
        validate_params(params, source=str(p))
    return params
