"""Sampling engine: which segments or whole recordings should experts annotate next?

A strategy (see :mod:`activepam.sampling.strategies`) composes five steps::

    pool (labelled ids removed, filters) -> score -> strata + allocation -> diversification
    -> batch of N units

1. **Pool**: already-labelled ids (segment or recording ids; a labelled recording removes all
   its segments) are excluded before anything else, then the ``pool`` filters apply. Recording
   units are built from segments with :func:`recording_units` (file-level aggregation of the
   segment score: Top-K, mean, median, max or mean event entropy).
2. **Score**: :mod:`activepam.sampling.scores` (higher = chosen first; NaN ranked last). Ties are broken
   by a seeded random key, so the same inputs and seed always give the same sample.
3. **Strata and allocation**: :mod:`activepam.core.strata` splits the pool (``site=A|diel=dawn``);
   the batch is allocated equal / proportional / by divergence with water-filling.
4. **Diversification** within each stratum (:mod:`activepam.sampling.diversify`): none (top scores),
   k-means, Ward, farthest-first or species-balanced. Embedding methods first keep the
   ``diversify.candidates`` x quota best-scored units of the stratum (0 = all), then cluster
   only those: uncertainty first, diversity among the uncertain; units without an embedding
   cannot be clustered and leave the pool (logged).
5. **Batch**: one row per unit with ``score``, ``cluster``, ``stratum``, ``reason`` and ``rank``.
   Ranks interleave the strata (every stratum's first pick, then every second pick, ... by
   score), so an expert who stops early still has a balanced sample.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from activepam.sampling import diversify as dv
from activepam.sampling import scores as sc
from activepam.core.argtypes import positive_int
from activepam.sampling.sample_io import (BASE_COLUMNS, RECORDING_METADATA, EmbeddingSource,
                                 SampleInputError, attach_indices, check_embedding_ids,
                                 embedding_source, exclude_nonfinite, isin, read_labelled,
                                 read_segments)
from activepam.core.strata import (KEY_COLUMNS, TIME_KEYS, Strata, StrataError, allocate, build_strata,
                              divergence_allocation, stratum_distributions, unit_times)
from activepam.sampling.strategies import (EMBEDDING_METHODS, PRESETS, StrategyError, list_strategies,
                                  resolve_strategy)
from activepam.core.uncertainty import aggregate_recordings

__all__ = ["sample", "recording_units", "list_strategies", "resolve_strategy", "prepare_pool",
           "run_sampling", "score_label", "load_units", "workflow_inputs", "PRESETS",
           "StrategyError", "OUTPUT_COLUMNS", "register"]

log = logging.getLogger(__name__)

#: first columns of every sample, in this order (then the unit's metadata and uncertainty)
OUTPUT_COLUMNS = ("unit_id", "unit_type", "recording_id", "path", "start_s", "end_s", "score",
                  "cluster", "stratum", "reason", "rank")
_INTERNAL = ("_seg_score",)


# --------------------------------------------------------------------------- recording units


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the unique values (as strings) of an id column."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(values.cat.categories), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1), \
            values.cat.categories.to_numpy(dtype=object)[used].astype(str)
    codes, uniq = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(uniq, dtype=object).astype(str)


def _recording_table(segments: pd.DataFrame, values: np.ndarray, method: str, k: int,
                     event_threshold: float, column: str) -> pd.DataFrame:
    """One row per recording: metadata of its first segment + aggregated ``values``."""
    if "recording_id" not in segments:
        raise SampleInputError("segments: missing column 'recording_id'")
    codes, ids = _codes(segments["recording_id"])
    if (codes < 0).any():
        raise SampleInputError("segments: recording_id has missing values")
    n_rec = len(ids)
    slim = pd.DataFrame({"recording_id": codes, column: values})
    if method == "mean_event":
        if "top1_confidence" not in segments:
            raise SampleInputError("segments: aggregation mean_event needs 'top1_confidence'")
        slim["top1_confidence"] = segments["top1_confidence"].to_numpy(dtype=np.float64)
    agg = aggregate_recordings(slim, column=column, method=method, k=k,
                               event_threshold=event_threshold)
    score = np.full(n_rec, np.nan)
    score[agg["recording_id"].to_numpy(dtype=np.int64)] = agg["score"].to_numpy(dtype=np.float64)
    rows = np.arange(len(segments))
    first = np.full(n_rec, len(segments), dtype=np.int64)
    np.minimum.at(first, codes, rows)
    out = pd.DataFrame({"recording_id": ids})
    for col in ("path", *RECORDING_METADATA):
        if col in segments:
            out[col] = segments[col].iloc[first].reset_index(drop=True)  # keeps the dtype
    out["start_s"] = 0.0
    end = (segments["end_s"].to_numpy(dtype=np.float64) if "end_s" in segments
           else np.zeros(len(rows)))
    dur = np.full(n_rec, -np.inf)
    np.maximum.at(dur, codes, end)
    out["end_s"] = dur
    out["duration_s"] = dur
    out["n_segments"] = np.bincount(codes, minlength=n_rec)
    if "top1_confidence" in segments:
        conf = segments["top1_confidence"].to_numpy(dtype=np.float64)
        conf = np.where(np.isnan(conf), -np.inf, conf)
        best = np.full(n_rec, -np.inf)
        np.maximum.at(best, codes, conf)
        is_best = conf == best[codes]
        arg = np.full(n_rec, len(segments), dtype=np.int64)
        np.minimum.at(arg, codes[is_best], rows[is_best])
        out["top1_confidence"] = np.where(np.isfinite(best), best, np.nan)
        if "top1_species" in segments:
            out["top1_species"] = segments["top1_species"].iloc[arg].reset_index(drop=True)
    out["score"] = score
    return out


def recording_units(segments: pd.DataFrame, aggregation: str = "topk", k: int = 10,
                    column: str = "max_binary_entropy",
                    event_threshold: float = 0.5) -> pd.DataFrame:
    """Whole-recording units: one row per recording with its metadata, ``score`` (the
    ``aggregation`` of the segments' ``column``: topk = mean of the ``k`` highest, mean,
    median, max, mean_event = mean over segments with top-1 confidence >= ``event_threshold``),
    ``n_segments``, ``duration_s`` (last segment end), ``start_s`` = 0, ``end_s`` = duration,
    ``top1_confidence`` (the highest) and ``top1_species`` (of the most confident segment).
    """
    if column not in segments:
        raise SampleInputError(f"segments: missing column {column!r} to aggregate")
    values = segments[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return _recording_table(segments, values, aggregation, k, event_threshold, column)


# --------------------------------------------------------------------------- pool


@dataclass
class Pool:
    """Candidate units after exclusion and filters, with their score and strata."""

    frame: pd.DataFrame
    score: np.ndarray
    unit_type: str
    id_col: str
    strata: Strata | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ids(self) -> pd.Series:
        return self.frame[self.id_col]

    def subset(self, mask: np.ndarray, note: str) -> None:
        """Keep the units of ``mask`` and record how many left (nothing silently dropped)."""
        dropped = int(len(mask) - mask.sum())
        if dropped:
            self.notes.append(f"{note}: {dropped} of {len(mask)} units removed")
            log.info("pool: %s", self.notes[-1])
            self.frame = self.frame[mask]
            self.score = self.score[mask]


def _utc_seconds(value: str, end_of_day: bool = False) -> float:
    """Epoch seconds of an ISO date/time (naive = UTC); a bare date with ``end_of_day`` means
    the last microsecond of that day."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts
    if end_of_day and len(str(value)) <= 10:
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.timestamp()


def _time_bounds(pool_spec: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(from, to) epoch seconds of ``pool.date_from`` / ``pool.date_to`` (inclusive)."""
    lo = _utc_seconds(pool_spec["date_from"]) if pool_spec.get("date_from") else None
    hi = _utc_seconds(pool_spec["date_to"], end_of_day=True) if pool_spec.get("date_to") else None
    return lo, hi


def _filter_masks(frame: pd.DataFrame, spec: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
    """(description, keep-mask) of every active pool filter."""
    pool = spec["pool"]
    out: list[tuple[str, np.ndarray]] = []

    def need(col: str, key: str) -> pd.Series:
        if col not in frame:
            raise StrategyError(f"strategy {spec['name']!r}: pool.{key}: units lack column {col!r}")
        return frame[col]

    if pool["min_confidence"] is not None:
        v = need("top1_confidence", "min_confidence").to_numpy(dtype=np.float64)
        out.append((f"top1_confidence < {pool['min_confidence']}", v >= pool["min_confidence"]))
    if pool["max_confidence"] is not None:
        v = need("top1_confidence", "max_confidence").to_numpy(dtype=np.float64)
        out.append((f"top1_confidence > {pool['max_confidence']}", v <= pool["max_confidence"]))
    for key, col, keep in (("species", "top1_species", True),
                           ("exclude_species", "top1_species", False), ("sites", "site", True),
                           ("countries", "country", True), ("habitats", "habitat", True),
                           ("devices", "device_id", True)):
        if pool[key] is not None:
            hit = isin(need(col, key), [str(v) for v in pool[key]])
            out.append((f"pool.{key}", hit if keep else ~hit))
    lo, hi = _time_bounds(pool)
    if lo is not None or hi is not None or pool["months"]:
        t = unit_times(frame)
        if lo is not None:
            out.append(("before pool.date_from", t >= lo))
        if hi is not None:
            out.append(("after pool.date_to", t <= hi))
        if pool["months"]:
            months = (np.where(np.isfinite(t), t, 0).astype("datetime64[s]")
                      .astype("datetime64[M]").astype(np.int64) % 12 + 1)
            out.append(("pool.months", np.isin(months, pool["months"]) & np.isfinite(t)))
    if pool["min_segments"] is not None and "n_segments" in frame:
        out.append((f"fewer than {pool['min_segments']} segments",
                    frame["n_segments"].to_numpy() >= pool["min_segments"]))
    thr = sc.threshold_mask(frame, spec["score"])
    if thr is not None:
        out.append(("score.threshold", thr))
    return out


def _segment_score(frame: pd.DataFrame, spec: Mapping[str, Any], seed: int) -> np.ndarray:
    try:
        return sc.compute_score(frame, spec["score"], seed)
    except sc.ScoreError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: {exc}") from exc


def not_labelled(segments: pd.DataFrame, labelled: Sequence[str]) -> np.ndarray:
    """Mask of the segments that may be sampled: neither their own id nor their recording's id
    is in ``labelled`` (a labelled recording id, e.g. a test-set recording, removes all its
    segments)."""
    keep = ~isin(segments["segment_id"], labelled)
    if "recording_id" in segments:
        keep &= ~isin(segments["recording_id"], labelled)
    return keep


def _with_similarity(units: pd.DataFrame, spec: Mapping[str, Any],
                     embeddings: EmbeddingSource | None) -> pd.DataFrame:
    from activepam.search.engine import SearchError, similarity_scores

    if embeddings is None:
        raise StrategyError(f"strategy {spec['name']!r}: score.method=similarity needs "
                            "embeddings (--embeddings)")
    if "segment_id" not in units:
        raise StrategyError(f"strategy {spec['name']!r}: score.method=similarity needs a "
                            "segments table (column segment_id)")
    try:
        sim = similarity_scores(units["segment_id"], embeddings, spec["score"]["examples"] or [])
    except SearchError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: {exc}") from exc
    return units.assign(similarity=sim)


def prepare_pool(units: pd.DataFrame, strategy: Mapping[str, Any] | str, seed: int | None = None,
                 labelled: Iterable[str] = (), embeddings: EmbeddingSource | None = None) -> Pool:
    """Pool of a resolved strategy: labelled ids removed, recording units aggregated, filters,
    score, embedding availability (for embedding diversifiers) and strata."""
    spec = resolve_strategy(strategy)
    seed = int(spec["seed"] if seed is None else seed)
    labelled = [str(x) for x in labelled]
    if spec["score"]["method"] == "similarity":  # nearest to examples (activepam.search.engine)
        units = _with_similarity(units, spec, embeddings)
    # a segments table has segment ids, or several rows per recording (columns read for
    # recording units need not include segment_id)
    is_segments = "segment_id" in units or (
        "recording_id" in units and not units["recording_id"].is_unique)
    notes: list[str] = []
    if spec["unit"] == "segment":
        if not is_segments:
            raise StrategyError(f"strategy {spec['name']!r}: unit: segment needs a segments table "
                                "(column segment_id)")
        pool = Pool(units, np.zeros(len(units)), "segment", "segment_id", notes=notes)
        if labelled:
            pool.subset(not_labelled(units, labelled), "already labelled")
        pool.score = _segment_score(pool.frame, spec, seed)
    else:
        frame = units
        if labelled and "recording_id" in frame:
            # a recording is labelled when its id or any of its segments' ids is
            lab_recs = sorted(set(labelled) | {x.rsplit("@", 1)[0] for x in labelled if "@" in x})
            keep = ~isin(frame["recording_id"], lab_recs)
            if not keep.all():
                what = "segments of labelled recordings" if is_segments else "labelled recordings"
                notes.append(f"{what}: {int((~keep).sum())} removed")
                log.info("pool: %s", notes[-1])
                frame = frame[keep]
        if is_segments:
            method = spec["score"]["method"]
            agg = spec["aggregation"]
            if method == "random":
                values = np.zeros(len(frame))
            elif method == "index":
                values = frame[spec["score"]["index"]].to_numpy(dtype=np.float64, na_value=np.nan) \
                    if spec["score"]["index"] in frame else None
                if values is None:
                    raise StrategyError(f"strategy {spec['name']!r}: score.index: units lack index "
                                        f"column {spec['score']['index']!r} (pass --indices)")
            else:
                values = _segment_score(frame, spec, seed)
            agg_method = "mean" if method in ("random", "index") else agg["method"]
            frame = _recording_table(frame, values, agg_method, agg["k"], agg["event_threshold"],
                                     "_seg_score")
            if method == "index":
                frame[spec["score"]["index"]] = frame.pop("score")
        elif "recording_id" not in frame:
            raise StrategyError(f"strategy {spec['name']!r}: unit: recording needs a "
                                "recording_id column")
        pool = Pool(frame, np.zeros(len(frame)), "recording", "recording_id", notes=notes)
        if spec["score"]["method"] not in ("random", "index") and "score" in frame:
            # aggregated here, or a table from recording_units() carrying its own score
            pool.score = frame["score"].to_numpy(dtype=np.float64)
        else:
            pool.score = _segment_score(frame, spec, seed)
    keep = np.ones(len(pool.frame), dtype=bool)
    for note, mask in _filter_masks(pool.frame, spec):
        mask = np.asarray(mask, dtype=bool)
        removed = int((keep & ~mask).sum())
        if removed:
            pool.notes.append(f"{note}: {removed} units removed")
            log.info("pool: %s", pool.notes[-1])
        keep &= mask
    pool.subset(keep, "pool filters (total)")
    if spec["diversify"]["method"] in EMBEDDING_METHODS:
        if embeddings is None:
            raise StrategyError(f"strategy {spec['name']!r}: diversify.method="
                                f"{spec['diversify']['method']} needs embeddings (--embeddings)")
        key = "segment_id" if pool.unit_type == "segment" else "recording_id"
        pool.subset(embeddings.available(pool.ids, key), "no embedding")
    pool.strata = build_strata(pool.frame, spec["strata"], spec["strata_options"])
    return pool


# --------------------------------------------------------------------------- selection


def _allocation_weights(pool: Pool, spec: Mapping[str, Any], sizes: np.ndarray,
                        units: pd.DataFrame | None = None) -> np.ndarray | None:
    how = spec["allocation"]
    if how == "equal":
        return None
    if how == "proportional":
        return sizes.astype(np.float64)
    try:  # strata_options.divergence: mean predicted probabilities or label distribution
        dists, what = stratum_distributions(pool.frame, pool.strata, spec["strata"],
                                            spec["strata_options"], units)
    except StrataError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: {exc}") from exc
    w = divergence_allocation(sizes, dists)
    pool.notes.append(f"divergence weights (size x (1 + JSD), {what}): " + ", ".join(
        f"{lab}={wt:.3f}" for lab, wt in zip(pool.strata.labels, w)))
    log.info("allocation: %s", pool.notes[-1])
    return w


def score_label(spec: Mapping[str, Any], unit_type: str | None = None) -> str:
    """``max_entropy`` or, for recording units, ``topk(k=10) of max_entropy``."""
    label = sc.describe(spec["score"])
    agg = spec["aggregation"]
    unit_type = unit_type or spec["unit"]
    if unit_type == "recording" and spec["score"]["method"] not in ("random", "index"):
        k = f"(k={agg['k']})" if agg["method"] == "topk" else ""
        label = f"{agg['method']}{k} of {label}"
    return label


@dataclass
class _Chosen:
    rows: list[np.ndarray] = field(default_factory=list)
    cluster: list[np.ndarray] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    stratum: list[np.ndarray] = field(default_factory=list)
    order: list[np.ndarray] = field(default_factory=list)

    def add(self, rows: np.ndarray, picked: dv.Picked, stratum: int, prefix: str) -> None:
        self.rows.append(rows[picked.pos])
        self.cluster.append(picked.cluster)
        self.reason.extend(prefix + r for r in picked.reason)
        self.stratum.append(np.full(len(picked.pos), stratum, dtype=np.int64))
        self.order.append(np.arange(len(picked.pos), dtype=np.int64))


def _select(pool: Pool, spec: Mapping[str, Any], n: int, seed: int,
            embeddings: EmbeddingSource | None, labelled: list[str],
            units: pd.DataFrame | None = None) -> pd.DataFrame:
    """Allocate ``n`` over the strata, pick each stratum's quota, rank the picks."""
    strata = pool.strata
    sizes = strata.sizes()
    quota = allocate(sizes, n, _allocation_weights(pool, spec, sizes, units), seed=seed)
    if quota.sum() < n:
        pool.notes.append(f"pool has only {int(quota.sum())} units for a batch of {n}")
        log.warning("pool has only %d units for a batch of %d", quota.sum(), n)
    score = pool.score
    tiebreak = np.random.default_rng([seed, 1]).random(len(score))
    order = np.argsort(strata.codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    div = spec["diversify"]
    method = div["method"]
    stratified = bool(spec["strata"])
    chosen = _Chosen()
    pending: list[tuple[int, np.ndarray, str]] = []
    species = pool.frame["top1_species"] if method == "species_balanced" else None
    if species is not None:
        sp_cat = species.astype("category")
        sp_codes = sp_cat.cat.codes.to_numpy().astype(np.int64)
        sp_labels = [str(c) for c in sp_cat.cat.categories]
    for s in tqdm(np.flatnonzero(quota), desc="sample strata", unit="stratum", leave=False,
                  disable=None if len(quota) > 50 else True, file=sys.stderr):
        q = int(quota[s])
        rows = order[bounds[s]:bounds[s + 1]]
        prefix = (f"stratum {strata.labels[s]} quota {q}/{len(rows)} ({spec['allocation']}): "
                  if stratified else "")
        if method == "none":
            picked_rows = rows[dv.top_m(score[rows], tiebreak[rows], q)]
            label = score_label(spec, pool.unit_type)
            chosen.add(picked_rows, dv.top_score(len(picked_rows), q, label), s, prefix)
        elif method == "species_balanced":
            picked = dv.species_balanced(sp_codes[rows], score[rows], tiebreak[rows], q,
                                         sp_labels, div["min_per_species"], seed)
            chosen.add(rows, picked, s, prefix)
        else:
            m = len(rows) if not div["candidates"] else max(q, math.ceil(div["candidates"] * q))
            pending.append((s, rows[dv.top_m(score[rows], tiebreak[rows], m)], prefix))
    if pending:
        _diversify_pending(pool, spec, seed, embeddings, labelled, pending, quota, chosen)
    if not chosen.rows:
        return pool.frame.iloc[:0].assign(score=[], cluster=[], stratum=[], reason=[], rank=[])
    rows = np.concatenate(chosen.rows)
    strat = np.concatenate(chosen.stratum)
    pick_order = np.concatenate(chosen.order)
    s_sel = np.where(np.isnan(score[rows]), -np.inf, score[rows])
    rank_order = np.lexsort((tiebreak[rows], -s_sel, pick_order))
    out = pool.frame.iloc[rows[rank_order]].reset_index(drop=True)
    out["score"] = score[rows][rank_order]
    out["cluster"] = np.concatenate(chosen.cluster)[rank_order]
    out["stratum"] = np.asarray(strata.labels, dtype=object)[strat[rank_order]]
    out["reason"] = np.asarray(chosen.reason, dtype=object)[rank_order]
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def _diversify_pending(pool: Pool, spec: Mapping[str, Any], seed: int,
                       embeddings: EmbeddingSource | None, labelled: list[str],
                       pending: list[tuple[int, np.ndarray, str]], quota: np.ndarray,
                       chosen: _Chosen) -> None:
    """Fetch the candidates' embeddings once, L2-normalise / PCA-reduce them together (PCA
    fitted on all candidates and labelled seeds), then diversify stratum by stratum."""
    from threadpoolctl import threadpool_limits

    div = spec["diversify"]
    key = "segment_id" if pool.unit_type == "segment" else "recording_id"
    all_rows = np.concatenate([r for _, r, _ in pending])
    ids = pool.ids.iloc[all_rows].astype(str).tolist()
    log.info("diversify: fetching %d candidate embeddings", len(ids))
    matrix = embeddings.fetch(ids, key)
    if np.isnan(matrix).any():
        raise SampleInputError("embeddings: some candidates have no (finite) embedding")
    n_cand = len(matrix)
    if div["method"] in ("farthest_first", "typiclust") and div["seed_with_labelled"] \
            and labelled:
        lab = pd.Series(labelled, dtype=str)
        lab = lab[embeddings.available(lab, key)]
        if len(lab):
            matrix = np.vstack([matrix, embeddings.fetch(lab.tolist(), key)])
    # BLAS/OpenMP pools are limited to one thread: many small problems on a shared machine
    # otherwise spend most of their time spinning up and waiting for threads
    with threadpool_limits(limits=1):
        matrix = dv.prepare_embeddings(matrix, div["normalize"], div["pca"], seed)
        seeds = matrix[n_cand:] if len(matrix) > n_cand else None
        start = 0
        for s, rows, prefix in tqdm(pending, desc="diversify strata", unit="stratum",
                                    leave=False, disable=None if len(pending) > 20 else True,
                                    file=sys.stderr):
            x = matrix[start:start + len(rows)]
            start += len(rows)
            q = int(quota[s])
            if div["method"] == "kmeans":
                picked = dv.kmeans_select(x, q, div["k"], seed)
            elif div["method"] == "ward":
                picked = dv.ward_select(x, q, div["k"], seed, div["subsample"])
            elif div["method"] == "typiclust":
                picked = dv.typiclust(x, q, seeds, seed=seed)
            else:
                picked = dv.farthest_first(x, q, seeds)
            chosen.add(rows, picked, s, prefix)


def _output(selected: pd.DataFrame, pool: Pool, spec: Mapping[str, Any]) -> pd.DataFrame:
    out = selected.copy()
    out.insert(0, "unit_id", out[pool.id_col].astype(str))
    out.insert(1, "unit_type", pool.unit_type)
    for col in ("recording_id", "path"):
        if col not in out:
            out[col] = pd.NA
    for col in ("start_s", "end_s"):
        if col not in out:
            out[col] = np.nan
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str).where(out[col].notna(), None)
    rest = [c for c in out.columns if c not in OUTPUT_COLUMNS and c not in _INTERNAL]
    out = out[[*OUTPUT_COLUMNS, *rest]]
    out["strategy"] = spec["name"]
    out["cluster"] = out["cluster"].astype(np.int64)
    return out


def sample(units: pd.DataFrame, strategy: dict | str, n: int | None = None,
           seed: int | None = None, embeddings: Any = None,
           labelled: Iterable[str] = (), predictions: Any = None) -> pd.DataFrame:
    """Choose a batch of ``n`` units to annotate.

    ``units``: the segments table (for ``unit: segment``, or aggregated here for
    ``unit: recording``) or a recording table from :func:`recording_units`. ``strategy``: a
    preset name or a strategy mapping (see :mod:`activepam.sampling.strategies`). ``n``/``seed``
    override the strategy's. ``embeddings``: a matrix row-aligned with ``units``, a DataFrame
    with ``segment_id``/``unit_id`` (+ ``recording_id``) and ``embedding``, a Parquet path or
    an :class:`~activepam.sampling.sample_io.EmbeddingSource`; needed by kmeans / ward / farthest_first.
    ``labelled``: unit ids that are never re-sampled: a labelled segment id removes that
    segment (and, for recording units, its whole recording); a labelled recording id removes
    the recording and all its segments. ``predictions`` (long table or Parquet path:
    segment_id, species, confidence) is needed by ``design: verification``
    (:func:`verification_sample`).

    Returns one row per chosen unit, ordered by ``rank``: unit_id, unit_type, recording_id,
    path, start_s, end_s, score, cluster, stratum, reason, rank, the unit's other columns and
    ``strategy``. Same inputs and seed -> identical sample.
    """
    spec = resolve_strategy(strategy)
    n = int(spec["n"] if n is None else n)
    seed = int(spec["seed"] if seed is None else seed)
    if n < 1:
        raise StrategyError(f"strategy {spec['name']!r}: n: must be >= 1, got {n}")
    labelled = [str(x) for x in labelled]
    if spec["design"] == "verification":
        return verification_sample(units, spec, n, seed, labelled, predictions)
    source = embedding_source(embeddings, units) if embeddings is not None else None
    pool = prepare_pool(units, spec, seed, labelled, source)
    selected = _select(pool, spec, n, seed, source, labelled, units)
    return _output(selected, pool, spec)


def verification_sample(units: pd.DataFrame, spec: Mapping[str, Any], n: int, seed: int,
                        labelled: Sequence[str], predictions: Any) -> pd.DataFrame:
    """The verification design (Navine et al. 2024): for every target species, windows drawn
    at random from each bin of that species' scores (quantiles over the pool) and each level of
    ``verification.strata``. Adds ``design_species``, ``design_bin`` and ``design_bin_edges``
    (what :func:`activepam.sampling.verification.call_density` needs). Per-cell quota:
    ``verification.n_per_bin``, or ``n`` spread evenly over the cells (at least 1 each).
    A window drawn for one species is not drawn again for another."""
    from activepam.sampling.verification import assign_bins, score_bins

    ver = spec["verification"]
    if predictions is None:
        raise StrategyError(f"strategy {spec['name']!r}: design verification needs the "
                            "per-species predictions (--predictions predictions.parquet)")
    if "segment_id" not in units:
        raise StrategyError(f"strategy {spec['name']!r}: design verification samples segments "
                            "(column segment_id)")
    preds = (pd.read_parquet(predictions, columns=["segment_id", "species", "confidence"])
             if isinstance(predictions, (str, Path)) else predictions)
    strata = list(ver["strata"] or [])
    from activepam.core.strata import StrataError, stratum_column

    try:  # a column of the units, or a computed key (season, diel, lat_band, ...)
        units = units.assign(**{c: stratum_column(units, c, spec["strata_options"])
                                for c in strata if c not in units})
    except StrataError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: verification.strata: {exc}") from exc
    pool = units[not_labelled(units, labelled)] if labelled else units
    for note, mask in _filter_masks(pool, spec):
        pool = pool[np.asarray(mask, dtype=bool)]
    ids = pool["segment_id"].astype(str)
    preds = preds[isin(preds["segment_id"].astype(str), ids.tolist())]
    species = list(ver["species"] or [])
    if not species:
        top = preds.sort_values("confidence", ascending=False).drop_duplicates("segment_id")
        species = top["species"].value_counts().index[: int(ver["top_species"])].tolist()
    if not species:
        raise StrategyError(f"strategy {spec['name']!r}: no predictions for the pool")
    levels = pool.groupby(strata, sort=True).ngroups if strata else 1
    n_bins = len(ver["quantiles"]) + 1
    quota = int(ver["n_per_bin"] or max(1, n // (len(species) * levels * n_bins)))
    rng = np.random.default_rng(seed)
    taken: set[str] = set()
    rows = []
    for sp in species:
        score = ids.map(preds[preds["species"] == sp].groupby("segment_id")["confidence"]
                        .max()).fillna(0.0).to_numpy(dtype=float)
        edges = score_bins(score, ver["quantiles"])
        frame = pool.assign(score=score, design_bin=assign_bins(score, edges))
        edge_txt = ";".join(f"{e:.6g}" for e in edges)
        for key, cell in frame.groupby([*strata, "design_bin"], sort=True):
            cell = cell[~isin(cell["segment_id"], sorted(taken))]
            take = min(quota, len(cell))
            if take == 0:
                continue
            pick = cell.iloc[np.sort(rng.choice(len(cell), size=take, replace=False))]
            key = key if isinstance(key, tuple) else (key,)
            where = ", ".join(f"{c}={v}" for c, v in zip(strata, key[:-1]))
            b = int(key[-1])
            rows.append(pick.assign(
                design_species=sp, design_bin_edges=edge_txt, design_strata=",".join(strata),
                stratum=f"{sp}|{where}|bin {b}" if where else f"{sp}|bin {b}",
                reason=f"verification: {sp} score bin {b} ({edges[b]:.3g}, {edges[b + 1]:.3g}]"
                       f"{' at ' + where if where else ''}: {take} of {len(cell)} at random",
                cluster=-1))
            taken.update(pick["segment_id"].astype(str))
    if not rows:
        raise StrategyError(f"strategy {spec['name']!r}: the verification design drew nothing")
    out = pd.concat(rows, ignore_index=True)
    out["rank"] = np.arange(1, len(out) + 1)
    p = Pool(out, out["score"].to_numpy(), "segment", "segment_id")
    return _output(out, p, spec)


# --------------------------------------------------------------------------- files


def needed_columns(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(required, optional) segment columns a strategy reads."""
    required = list(BASE_COLUMNS)
    if spec["unit"] == "recording":
        required.remove("segment_id")
    elif spec["score"]["method"] != "index":
        required.remove("path")  # added to the chosen segments afterwards (_enrich)
    optional = list(RECORDING_METADATA) + ["top2_confidence", "margin", "max_binary_entropy",
                                           "mean_binary_entropy", "segment_time"]
    if spec["score"]["method"] != "index":
        required += [c for c in sc.required_columns(spec["score"]) if c not in required]
    for key in spec["strata"]:
        required += [c for c in KEY_COLUMNS[key] if c not in required]
    if TIME_KEYS.intersection(spec["strata"]) or spec["pool"]["months"] \
            or spec["pool"]["date_from"] or spec["pool"]["date_to"]:
        optional += ["segment_time", "start_time"]
    if spec["score"]["method"] == "margin":
        required.remove("margin")
        optional += ["margin", "top2_confidence"]
    return required, list(dict.fromkeys(c for c in optional if c not in required))


def load_units(segments: str | Path, spec: Mapping[str, Any],
               indices: str | Path | None = None) -> pd.DataFrame:
    """Segments with the columns ``spec`` needs (pool filters pushed down), indices attached."""
    required, optional = needed_columns(spec)
    units = read_segments(segments, required, spec["pool"], spec["unit"], optional)
    if spec["score"]["method"] == "index":
        if indices is None:
            raise SampleInputError(f"strategy {spec['name']!r} scores by index "
                                   f"{spec['score']['index']}: pass --indices")
        units = attach_indices(units, indices, [spec["score"]["index"]])
    return exclude_nonfinite(units, sorted(sc.required_columns(spec["score"])), segments)


def _enrich(sample_df: pd.DataFrame, segments: str | Path) -> pd.DataFrame:
    """Add the remaining segment columns (metadata, uncertainty) of the chosen segments."""
    import pyarrow.dataset as ds

    if sample_df.empty or (sample_df["unit_type"] != "segment").any():
        return sample_df
    dataset = ds.dataset(str(segments), format="parquet")
    blank = {c for c in sample_df.columns if c != "unit_id" and sample_df[c].isna().all()}
    extra = [c for c in dataset.schema.names
             if c not in sample_df.columns or c in blank or c == "segment_id"]
    if extra == ["segment_id"]:
        return sample_df
    sample_df = sample_df.drop(columns=[c for c in extra if c in blank])
    table = dataset.to_table(columns=extra,
                             filter=ds.field("segment_id").isin(sample_df["unit_id"].tolist()))
    more = table.to_pandas().drop_duplicates("segment_id")
    merged = sample_df.merge(more, left_on="unit_id", right_on="segment_id", how="left",
                             suffixes=("", "_dup"))
    if "segment_id_dup" in merged:
        merged = merged.drop(columns="segment_id_dup")
    first = [c for c in OUTPUT_COLUMNS if c in merged]
    rest = [c for c in merged.columns if c not in first and c != "strategy"]
    return merged[[*first, *rest, "strategy"]]


def run_sampling(segments: str | Path, strategy: str | Mapping[str, Any], n: int | None = None,
                 seed: int | None = None, embeddings: str | Path | None = None,
                 indices: str | Path | None = None,
                 labelled: str | Path | Iterable[str] | None = None,
                 out: str | Path | None = None, params: Mapping[str, Any] | None = None,
                 progress: bool = True, predictions: str | Path | None = None) -> pd.DataFrame:
    """File-level sampling (CLI, Snakemake, benchmark): read, :func:`sample`, enrich, write CSV.
    ``predictions`` (long top-k table) feeds ``design: verification``."""
    from activepam.core.io import write_csv

    spec = resolve_strategy(strategy, params)
    if isinstance(labelled, (str, Path)):
        labelled_ids = read_labelled(labelled)
    else:
        labelled_ids = [str(x) for x in (labelled or ())]
    clock = time.perf_counter()

    def step(what: str) -> None:
        nonlocal clock
        log.info("sample %s: %s in %.1f s", spec["name"], what, time.perf_counter() - clock)
        clock = time.perf_counter()
        bar.update()

    with tqdm(total=3, desc=f"sample {spec['name']}", disable=not progress, file=sys.stderr) as bar:
        units = load_units(segments, spec, indices)
        step(f"read {len(units)} segments")
        if embeddings is not None and (spec["diversify"]["method"] in EMBEDDING_METHODS
                                       or spec["score"]["method"] == "similarity"):
            embeddings = embedding_source(embeddings, units)
            key = "segment_id" if spec["unit"] == "segment" else "recording_id"
            check_embedding_ids(embeddings, units[key], key, segments)
        result = sample(units, spec, n=n, seed=seed, embeddings=embeddings, labelled=labelled_ids,
                        predictions=predictions)
        del units
        step(f"selected {len(result)} units")
        result = _enrich(result, segments)
        if out is not None:
            write_csv(result, out, stage="sample")
        step("added metadata and wrote the sample")
    return result


def workflow_inputs(config: Mapping[str, Any], results: str = "results") -> dict[str, str]:
    """Inputs of the Snakemake sample rules: detections, embeddings, indices and, when
    ``sampling.labelled`` is set, the labelled-ids CSV."""
    inputs = {"segments": f"{results}/detect/segments.parquet",
              "embeddings": f"{results}/detect/embeddings.parquet",
              "indices": f"{results}/indices/indices.parquet"}
    labelled = (config.get("sampling") or {}).get("labelled", "")
    if labelled:
        inputs["labelled"] = str(labelled)
    return inputs


# --------------------------------------------------------------------------- CLI


def _load_yaml(path: str | Path) -> Any:
    import yaml

    p = Path(path)
    if not p.exists():
        raise SampleInputError(f"{p}: config file not found")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SampleInputError(f"{p}: not valid YAML: {exc}") from exc


def _cli_strategy(args: argparse.Namespace) -> tuple[str | dict, dict | None]:
    """(strategy, params) from --strategy / --config."""
    if args.config is None:
        return args.strategy, None
    data = _load_yaml(args.config)
    if not isinstance(data, dict):
        raise SampleInputError(f"{args.config}: top level must be a mapping")
    if "sampling" in data or "strategies" in data:  # a strategy library (e.g. params.yaml)
        if not args.strategy:
            raise SampleInputError(f"{args.config} holds several strategies: "
                                   "name one with --strategy")
        return args.strategy, data
    if args.strategy:
        data.setdefault("name", args.strategy)
    return data, None


def _cmd(args: argparse.Namespace) -> int:
    if args.list:
        params = _load_yaml(args.config) if args.config else None
        items = list_strategies(params if isinstance(params, dict) else None)
        width = max(len(k) for k in items)
        for name, desc in items.items():
            print(f"{name:<{width}}  {desc}")
        return 0
    if not args.strategy and not args.config:
        print("activepam sample: one of --strategy or --config is required (or --list)",
              file=sys.stderr)
        return 2
    for opt in ("segments", "out"):
        if getattr(args, opt) is None:
            print(f"activepam sample: --{opt} is required", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        strategy, params = _cli_strategy(args)
        result = run_sampling(args.segments, strategy, n=args.n, seed=args.seed,
                              embeddings=args.embeddings, indices=args.indices,
                              labelled=args.labelled, out=args.out, params=params,
                              predictions=args.predictions)
    except (StrategyError, SampleInputError) as exc:
        print(f"activepam sample: {exc}", file=sys.stderr)
        return 1
    if result.empty:
        print(f"activepam sample: no unit could be chosen (empty pool); wrote an empty "
              f"{args.out}", file=sys.stderr)
        return 1
    print(f"activepam sample: wrote {len(result)} units to {args.out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam sample``."""
    p = subparsers.add_parser(
        "sample", help="choose segments/recordings to annotate next",
        description="Choose a batch of segments or whole recordings for annotation with a "
                    "sampling strategy (pool -> score -> strata -> diversification).")
    p.add_argument("--segments", type=Path, help="segments.parquet from the detect stage")
    p.add_argument("--embeddings", type=Path,
                   help="embeddings.parquet (kmeans/ward/farthest_first)")
    p.add_argument("--indices", type=Path, help="indices.parquet (index scores)")
    p.add_argument("--predictions", type=Path,
                   help="predictions.parquet (per-species scores; design verification)")
    p.add_argument("--strategy", help="preset or user strategy name (see --list)")
    p.add_argument("--config", type=Path,
                   help="YAML strategy file, or params.yaml/strategy library used with --strategy")
    p.add_argument("--n", type=positive_int, help="batch size (default: the strategy's n)")
    p.add_argument("--seed", type=int, help="random seed (default: the strategy's seed)")
    p.add_argument("--labelled", type=Path,
                   help="CSV of already-labelled unit ids (unit_id column)")
    p.add_argument("--out", type=Path, help="output CSV, one row per chosen unit")
    p.add_argument("--list", action="store_true", help="print every strategy and exit")
    p.set_defaults(func=_cmd)
