"""Replicates of a simulated run: the data subsample, the pool / test split
(:func:`split_test`, the rounds' :func:`activepam.core.evaluate.split_by_recording`) and the
stratum labels of the units (:func:`strata_values`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimDataset, SimulationError


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
            f"{ds.units[col].iloc[int(np.flatnonzero(bad)[0])]!r} is not train, validation or test"
        )
    pool, test = split == "train", split == "test"
    if not pool.any() or not test.any():
        raise SimulationError(
            f"{ds.name}: column {col!r} (simulation.split_column) needs train "
            f"and test rows ({int(pool.sum())} train, {int(test.sum())} test)"
        )
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
