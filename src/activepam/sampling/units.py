"""Recording units of the sampling engine: file-level aggregation of a segment score
(Top-K, mean, median, max or mean event entropy) into one row per recording."""

from __future__ import annotations

import numpy as np
import pandas as pd

from activepam.core.uncertainty import aggregate_recordings
from activepam.sampling.segments import RECORDING_METADATA, SampleInputError


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the unique values (as strings) of an id column."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(values.cat.categories), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return np.where(
            codes >= 0, remap[np.maximum(codes, 0)], -1
        ), values.cat.categories.to_numpy(dtype=object)[used].astype(str)
    codes, uniq = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(uniq, dtype=object).astype(str)


def recording_table(
    segments: pd.DataFrame,
    values: np.ndarray,
    method: str,
    k: int,
    event_threshold: float,
    column: str,
) -> pd.DataFrame:
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
    agg = aggregate_recordings(
        slim, column=column, method=method, k=k, event_threshold=event_threshold
    )
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
    end = (
        segments["end_s"].to_numpy(dtype=np.float64) if "end_s" in segments else np.zeros(len(rows))
    )
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


def recording_units(
    segments: pd.DataFrame,
    aggregation: str = "topk",
    k: int = 10,
    column: str = "max_binary_entropy",
    event_threshold: float = 0.5,
) -> pd.DataFrame:
    """Whole-recording units: one row per recording with its metadata, ``score`` (the
    ``aggregation`` of the segments' ``column``: topk = mean of the ``k`` highest, mean,
    median, max, mean_event = mean over segments with top-1 confidence >= ``event_threshold``),
    ``n_segments``, ``duration_s`` (last segment end), ``start_s`` = 0, ``end_s`` = duration,
    ``top1_confidence`` (the highest) and ``top1_species`` (of the most confident segment).
    """
    if column not in segments:
        raise SampleInputError(f"segments: missing column {column!r} to aggregate")
    values = segments[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return recording_table(segments, values, aggregation, k, event_threshold, column)
