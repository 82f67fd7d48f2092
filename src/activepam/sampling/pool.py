"""The pool of the sampling engine: already-labelled ids removed, recording units aggregated,
the strategy's ``pool`` filters, the score and the strata (:func:`prepare_pool`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.embeddings import EmbeddingSource
from activepam.core.strata import Strata, build_strata, unit_times
from activepam.sampling import scores as sc
from activepam.sampling.sources import isin
from activepam.sampling.strategies import EMBEDDING_METHODS, StrategyError, resolve_strategy
from activepam.sampling.units import recording_table

log = logging.getLogger(__name__)


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


def filter_masks(frame: pd.DataFrame, spec: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
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
    for key, col, keep in (
        ("species", "top1_species", True),
        ("exclude_species", "top1_species", False),
        ("sites", "site", True),
        ("countries", "country", True),
        ("habitats", "habitat", True),
        ("devices", "device_id", True),
    ):
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
            months = (
                np.where(np.isfinite(t), t, 0)
                .astype("datetime64[s]")
                .astype("datetime64[M]")
                .astype(np.int64)
                % 12
                + 1
            )
            out.append(("pool.months", np.isin(months, pool["months"]) & np.isfinite(t)))
    if pool["min_segments"] is not None and "n_segments" in frame:
        out.append(
            (
                f"fewer than {pool['min_segments']} segments",
                frame["n_segments"].to_numpy() >= pool["min_segments"],
            )
        )
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


def _with_similarity(
    units: pd.DataFrame, spec: Mapping[str, Any], embeddings: EmbeddingSource | None
) -> pd.DataFrame:
    from activepam.search.engine import SearchError, similarity_scores

    if embeddings is None:
        raise StrategyError(
            f"strategy {spec['name']!r}: score.method=similarity needs embeddings (--embeddings)"
        )
    if "segment_id" not in units:
        raise StrategyError(
            f"strategy {spec['name']!r}: score.method=similarity needs a "
            "segments table (column segment_id)"
        )
    try:
        sim = similarity_scores(units["segment_id"], embeddings, spec["score"]["examples"] or [])
    except SearchError as exc:
        raise StrategyError(f"strategy {spec['name']!r}: {exc}") from exc
    return units.assign(similarity=sim)


def prepare_pool(
    units: pd.DataFrame,
    strategy: Mapping[str, Any] | str,
    seed: int | None = None,
    labelled: Iterable[str] = (),
    embeddings: EmbeddingSource | None = None,
) -> Pool:
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
        "recording_id" in units and not units["recording_id"].is_unique
    )
    notes: list[str] = []
    if spec["unit"] == "segment":
        if not is_segments:
            raise StrategyError(
                f"strategy {spec['name']!r}: unit: segment needs a segments table "
                "(column segment_id)"
            )
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
                if spec["score"]["index"] not in frame:
                    raise StrategyError(
                        f"strategy {spec['name']!r}: score.index: units lack index "
                        f"column {spec['score']['index']!r} (pass --indices)"
                    )
                values = frame[spec["score"]["index"]].to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values = _segment_score(frame, spec, seed)
            agg_method = "mean" if method in ("random", "index") else agg["method"]
            frame = recording_table(
                frame, values, agg_method, agg["k"], agg["event_threshold"], "_seg_score"
            )
            if method == "index":
                frame[spec["score"]["index"]] = frame.pop("score")
        elif "recording_id" not in frame:
            raise StrategyError(
                f"strategy {spec['name']!r}: unit: recording needs a recording_id column"
            )
        pool = Pool(frame, np.zeros(len(frame)), "recording", "recording_id", notes=notes)
        if spec["score"]["method"] not in ("random", "index") and "score" in frame:
            # aggregated here, or a table from recording_units() carrying its own score
            pool.score = frame["score"].to_numpy(dtype=np.float64)
        else:
            pool.score = _segment_score(frame, spec, seed)
    keep = np.ones(len(pool.frame), dtype=bool)
    for note, mask in filter_masks(pool.frame, spec):
        mask = np.asarray(mask, dtype=bool)
        removed = int((keep & ~mask).sum())
        if removed:
            pool.notes.append(f"{note}: {removed} units removed")
            log.info("pool: %s", pool.notes[-1])
        keep &= mask
    pool.subset(keep, "pool filters (total)")
    if spec["diversify"]["method"] in EMBEDDING_METHODS:
        if embeddings is None:
            raise StrategyError(
                f"strategy {spec['name']!r}: diversify.method="
                f"{spec['diversify']['method']} needs embeddings (--embeddings)"
            )
        key = "segment_id" if pool.unit_type == "segment" else "recording_id"
        pool.subset(embeddings.available(pool.ids, key), "no embedding")
    pool.strata = build_strata(pool.frame, spec["strata"], spec["strata_options"])
    return pool
