"""Per-segment uncertainty of BirdNET scores and file-level aggregation.

Segment measures are computed from the FULL (or species-filtered) confidence vector of a
segment, before any detection threshold. BirdNET is multi-label (one sigmoid per species),
so the natural per-species uncertainty is the binary entropy in bits

    H(p) = -p log2 p - (1 - p) log2(1 - p),   H(0) = H(1) = 0,  H(0.5) = 1,

summarised over species by its maximum (the single most ambiguous species) and its mean.
Ranking measures: top-1 and top-2 confidence, margin = top1 - top2 (small = ambiguous) and
ratio = top2 / top1 (close to 1 = ambiguous; 0 when top1 is 0).

File-level scores (whole-recording selection) aggregate one segment-level column per
recording: ``topk`` (mean of the K highest), ``mean``, ``median``, ``max`` and
``mean_event`` (mean over "event" segments whose top-1 confidence >= ``event_threshold``;
NaN when a recording has no event segment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: columns returned by :func:`segment_uncertainty`
MEASURES = (
    "top1_index",
    "top1_confidence",
    "top2_confidence",
    "margin",
    "ratio",
    "max_binary_entropy",
    "mean_binary_entropy",
)
AGGREGATIONS = ("topk", "mean", "median", "max", "mean_event")


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Element-wise binary entropy in bits; exact 0 at p = 0 and p = 1 (float64 math)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(q > 0, q * np.log2(q), 0.0))
    return h


def segment_uncertainty(scores: np.ndarray) -> dict[str, np.ndarray]:
    """Uncertainty measures for each row of ``scores`` ``[n_segments, n_species]`` in [0, 1].

    Returns a dict of 1-d arrays (see :data:`MEASURES`); ``top1_index`` indexes the columns of
    ``scores``. With a single species, ``top2_confidence`` is 0.
    """
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"scores must be 2-d [segments, species], got shape {s.shape}")
    n, m = s.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.float64)
        return {k: (np.zeros(0, dtype=np.int64) if k == "top1_index" else empty) for k in MEASURES}
    rows = np.arange(n)
    top1_idx = np.argmax(s, axis=1)
    top1 = s[rows, top1_idx].astype(np.float64)
    if m > 1:
        top2 = np.partition(s, m - 2, axis=1)[:, m - 2].astype(np.float64)
    else:
        top2 = np.zeros(n, dtype=np.float64)
    h = binary_entropy(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(top1 > 0, top2 / top1, 0.0)
    return {
        "top1_index": top1_idx.astype(np.int64),
        "top1_confidence": top1,
        "top2_confidence": top2,
        "margin": top1 - top2,
        "ratio": ratio,
        "max_binary_entropy": h.max(axis=1),
        "mean_binary_entropy": h.mean(axis=1),
    }


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``k`` highest scores per row, sorted descending.

    Ties are broken by the lower column index (deterministic). ``k`` is capped at the
    number of columns. Returns ``(indices [n, k] int64, values [n, k])``.
    """
    s = np.asarray(scores)
    n, m = s.shape
    k = max(0, min(int(k), m))
    if k == 0 or n == 0:
        return np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=s.dtype)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (n, 1))
    vals = np.take_along_axis(s, part, axis=1)
    order = _row_lexsort(vals, part)  # value desc, then index asc
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(vals, order, axis=1)


def _row_lexsort(vals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-row order: value descending, then index ascending."""
    order = np.argsort(idx, axis=1, kind="stable")
    v = np.take_along_axis(vals, order, axis=1)
    second = np.argsort(-v, axis=1, kind="stable")
    return np.take_along_axis(order, second, axis=1)


# --------------------------------------------------------------------------- aggregation


def aggregate(
    values: Sequence[float] | np.ndarray,
    method: str = "topk",
    k: int = 10,
    event_threshold: float = 0.5,
    event_conf: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Aggregate the segment-level ``values`` of ONE recording into a file-level score.

    * ``topk``: mean of the ``k`` highest values (mean of all when fewer than ``k``);
    * ``mean`` / ``median`` / ``max``;
    * ``mean_event``: mean of ``values`` over segments whose ``event_conf`` (the top-1
      confidence; defaults to ``values`` itself) is >= ``event_threshold``; NaN when none.

    NaN values are ignored; an empty input gives NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    if method == "mean_event":
        c = v if event_conf is None else np.asarray(event_conf, dtype=np.float64)
        if c.shape != v.shape:
            raise ValueError(f"event_conf has shape {c.shape}, values {v.shape}")
        v = v[c >= event_threshold]
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    if method == "topk":
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return float(np.sort(v)[-k:].mean())
    if method == "median":
        return float(np.median(v))
    if method == "max":
        return float(v.max())
    return float(v.mean())  # mean, mean_event


def aggregate_recordings(
    segments: pd.DataFrame,
    column: str = "max_binary_entropy",
    method: str = "topk",
    k: int = 10,
    event_threshold: float = 0.5,
    event_column: str = "top1_confidence",
) -> pd.DataFrame:
    """File-level score per recording from a segments table (one SQL pass in DuckDB).

    Returns ``DataFrame[recording_id, score, n_segments]`` sorted by ``recording_id``;
    ``n_segments`` counts all segments of the recording (also for ``mean_event``, whose
    score is NaN when no segment reaches ``event_threshold`` on ``event_column``).
    NaN/null values are ignored as in :func:`aggregate`.
    """
    import duckdb

    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    needed = {"recording_id", column} | ({event_column} if method == "mean_event" else set())
    missing = sorted(needed - set(segments.columns))
    if missing:
        raise KeyError(f"segments table lacks column(s): {', '.join(missing)}")
    if method == "topk" and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    v = f'CASE WHEN isnan("{column}"::DOUBLE) THEN NULL ELSE "{column}"::DOUBLE END'
    if method == "topk":
        inner = (
            f"SELECT recording_id, {v} AS v, row_number() OVER (PARTITION BY recording_id "
            f"ORDER BY {v} DESC NULLS LAST) AS r FROM seg"
        )
        sql = (
            f"SELECT recording_id, avg(CASE WHEN r <= {int(k)} THEN v END) AS score, "
            f"count(*) AS n_segments FROM ({inner}) GROUP BY recording_id"
        )
    else:
        agg = {
            "mean": f"avg({v})",
            "median": f"median({v})",
            "max": f"max({v})",
            "mean_event": f'avg(CASE WHEN "{event_column}" >= {float(event_threshold)!r} '
            f"THEN {v} END)",
        }[method]
        sql = f"SELECT recording_id, {agg} AS score, count(*) AS n_segments FROM seg GROUP BY 1"
    con = duckdb.connect()
    try:
        con.register("seg", segments)
        out = con.execute(sql + " ORDER BY recording_id").df()
    finally:
        con.close()
    out["score"] = out["score"].astype("float64")
    out["n_segments"] = out["n_segments"].astype("int64")
    return out
