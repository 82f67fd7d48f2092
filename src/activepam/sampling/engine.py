"""Sampling engine: which segments or whole recordings should experts annotate next?

A strategy (see :mod:`activepam.sampling.strategies`) composes five steps::

    pool (labelled ids removed, filters) -> score -> strata + allocation -> diversification
    -> batch of N units

1. **Pool**: already-labelled ids (segment or recording ids; a labelled recording removes all
   its segments) are excluded before anything else, then the ``pool`` filters apply. Recording
   units are built from segments with :func:`recording_units` (file-level aggregation of the
   segment score: Top-K, mean, median, max or mean event entropy).
2. **Score**: :mod:`activepam.sampling.scores` (higher = chosen first; NaN ranked last). Ties are
   broken by a seeded random key, so the same inputs and seed always give the same sample.
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

import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from activepam.core.embeddings import EmbeddingSource
from activepam.core.strata import (
    StrataError,
    allocate,
    divergence_allocation,
    stratum_distributions,
)
from activepam.sampling import diversify as dv
from activepam.sampling import scores as sc
from activepam.sampling.pool import Pool, filter_masks, not_labelled, prepare_pool
from activepam.sampling.segments import SampleInputError
from activepam.sampling.sources import embedding_source, isin
from activepam.sampling.strategies import StrategyError, resolve_strategy

log = logging.getLogger(__name__)

#: first columns of every sample, in this order (then the unit's metadata and uncertainty)
OUTPUT_COLUMNS = (
    "unit_id",
    "unit_type",
    "recording_id",
    "path",
    "start_s",
    "end_s",
    "score",
    "cluster",
    "stratum",
    "reason",
    "rank",
)
_INTERNAL = ("_seg_score",)


def _allocation_weights(
    pool: Pool, spec: Mapping[str, Any], sizes: np.ndarray, units: pd.DataFrame | None = None
) -> np.ndarray | None:
    how = spec["allocation"]
    if how == "equal":
        return None
    if how == "proportional":
        return sizes.astype(np.float64)
    assert pool.strata is not None  # set by prepare_pool
    try:  # strata_options.divergence: mean predicted probabilities or label distribution
        dists, what = stratum_distributions(
            pool.frame, pool.strata, spec["strata"], spec["strata_options"], units
        )
    except StrataError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: {exc}") from exc
    w = divergence_allocation(sizes, dists)
    pool.notes.append(
        f"divergence weights (size x (1 + JSD), {what}): "
        + ", ".join(f"{lab}={wt:.3f}" for lab, wt in zip(pool.strata.labels, w))
    )
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


def _select(
    pool: Pool,
    spec: Mapping[str, Any],
    n: int,
    seed: int,
    embeddings: EmbeddingSource | None,
    labelled: list[str],
    units: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Allocate ``n`` over the strata, pick each stratum's quota, rank the picks."""
    strata = pool.strata
    assert strata is not None  # set by prepare_pool
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
    for s in tqdm(
        np.flatnonzero(quota),
        desc="sample strata",
        unit="stratum",
        leave=False,
        disable=None if len(quota) > 50 else True,
        file=sys.stderr,
    ):
        q = int(quota[s])
        rows = order[bounds[s] : bounds[s + 1]]
        prefix = (
            f"stratum {strata.labels[s]} quota {q}/{len(rows)} ({spec['allocation']}): "
            if stratified
            else ""
        )
        if method == "none":
            picked_rows = rows[dv.top_m(score[rows], tiebreak[rows], q)]
            label = score_label(spec, pool.unit_type)
            chosen.add(picked_rows, dv.top_score(len(picked_rows), q, label), s, prefix)
        elif method == "species_balanced":
            picked = dv.species_balanced(
                sp_codes[rows],
                score[rows],
                tiebreak[rows],
                q,
                sp_labels,
                div["min_per_species"],
                seed,
            )
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


def _diversify_pending(
    pool: Pool,
    spec: Mapping[str, Any],
    seed: int,
    embeddings: EmbeddingSource | None,
    labelled: list[str],
    pending: list[tuple[int, np.ndarray, str]],
    quota: np.ndarray,
    chosen: _Chosen,
) -> None:
    """Fetch the candidates' embeddings once, L2-normalise / PCA-reduce them together (PCA
    fitted on all candidates and labelled seeds), then diversify stratum by stratum."""
    from threadpoolctl import threadpool_limits

    assert embeddings is not None  # prepare_pool raises when these methods have none
    div = spec["diversify"]
    key = "segment_id" if pool.unit_type == "segment" else "recording_id"
    all_rows = np.concatenate([r for _, r, _ in pending])
    ids = pool.ids.iloc[all_rows].astype(str).tolist()
    log.info("diversify: fetching %d candidate embeddings", len(ids))
    matrix = embeddings.fetch(ids, key)
    if np.isnan(matrix).any():
        raise SampleInputError("embeddings: some candidates have no (finite) embedding")
    n_cand = len(matrix)
    if div["method"] in ("farthest_first", "typiclust") and div["seed_with_labelled"] and labelled:
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
        for s, rows, prefix in tqdm(
            pending,
            desc="diversify strata",
            unit="stratum",
            leave=False,
            disable=None if len(pending) > 20 else True,
            file=sys.stderr,
        ):
            x = matrix[start : start + len(rows)]
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


def sample(
    units: pd.DataFrame,
    strategy: dict | str,
    n: int | None = None,
    seed: int | None = None,
    embeddings: Any = None,
    labelled: Iterable[str] = (),
    predictions: Any = None,
) -> pd.DataFrame:
    """Choose a batch of ``n`` units to annotate.

    ``units``: the segments table (for ``unit: segment``, or aggregated here for
    ``unit: recording``) or a recording table from :func:`recording_units`. ``strategy``: a
    preset name or a strategy mapping (see :mod:`activepam.sampling.strategies`). ``n``/``seed``
    override the strategy's. ``embeddings``: a matrix row-aligned with ``units``, a DataFrame
    with ``segment_id``/``unit_id`` (+ ``recording_id``) and ``embedding``, a Parquet path or
    an :class:`~activepam.core.embeddings.EmbeddingSource`; needed by kmeans / ward /
    farthest_first.
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


def verification_sample(
    units: pd.DataFrame,
    spec: Mapping[str, Any],
    n: int,
    seed: int,
    labelled: Sequence[str],
    predictions: Any,
) -> pd.DataFrame:
    """The verification design (Navine et al. 2024): for every target species, windows drawn
    at random from each bin of that species' scores (quantiles over the pool) and each level of
    ``verification.strata``. Adds ``design_species``, ``design_bin`` and ``design_bin_edges``
    (what :func:`activepam.sampling.verification.call_density` needs). Per-cell quota:
    ``verification.n_per_bin``, or ``n`` spread evenly over the cells (at least 1 each).
    A window drawn for one species is not drawn again for another."""
    from activepam.sampling.verification import assign_bins, score_bins

    ver = spec["verification"]
    if predictions is None:
        raise StrategyError(
            f"strategy {spec['name']!r}: design verification needs the "
            "per-species predictions (--predictions predictions.parquet)"
        )
    if "segment_id" not in units:
        raise StrategyError(
            f"strategy {spec['name']!r}: design verification samples segments (column segment_id)"
        )
    preds = (
        pd.read_parquet(predictions, columns=["segment_id", "species", "confidence"])
        if isinstance(predictions, (str, Path))
        else predictions
    )
    strata = list(ver["strata"] or [])
    from activepam.core.strata import StrataError, stratum_column

    try:  # a column of the units, or a computed key (season, diel, lat_band, ...)
        units = units.assign(
            **{
                c: stratum_column(units, c, spec["strata_options"])
                for c in strata
                if c not in units
            }
        )
    except StrataError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: verification.strata: {exc}") from exc
    pool = units[not_labelled(units, labelled)] if labelled else units
    for _note, mask in filter_masks(pool, spec):
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
        score = (
            ids.map(preds[preds["species"] == sp].groupby("segment_id")["confidence"].max())
            .fillna(0.0)
            .to_numpy(dtype=float)
        )
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
            rows.append(
                pick.assign(
                    design_species=sp,
                    design_bin_edges=edge_txt,
                    design_strata=",".join(strata),
                    stratum=f"{sp}|{where}|bin {b}" if where else f"{sp}|bin {b}",
                    reason=f"verification: {sp} score bin {b} ({edges[b]:.3g}, {edges[b + 1]:.3g}]"
                    f"{' at ' + where if where else ''}: {take} of {len(cell)} at random",
                    cluster=-1,
                )
            )
            taken.update(pick["segment_id"].astype(str))
    if not rows:
        raise StrategyError(f"strategy {spec['name']!r}: the verification design drew nothing")
    out = pd.concat(rows, ignore_index=True)
    out["rank"] = np.arange(1, len(out) + 1)
    p = Pool(out, out["score"].to_numpy(), "segment", "segment_id")
    return _output(out, p, spec)
