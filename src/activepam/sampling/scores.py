"""Unit scores for sampling: higher score = chosen first.

Every method maps a units table to a float64 ``score`` (NaN = unscorable, ranked last):

=================  ==============================================  ========================
method             score                                           columns
=================  ==============================================  ========================
random             uniform(0, 1), seeded                           -
lowest_confidence  1 - top1_confidence                             top1_confidence
max_entropy        max binary entropy over species (TABMON)        max_binary_entropy
mean_entropy       mean binary entropy over species                mean_binary_entropy
margin             1 - (top1 - top2)  (small margin = uncertain)   margin or top1/top2
ratio              top2 / top1  (close to 1 = uncertain)           ratio or top1/top2
index              an acoustic index (rank in [0, 1] or value)     the index, e.g. TFSD
similarity         max cosine similarity to ``examples``            embeddings (computed by
                   (segment ids or audio files)                    the sampler)
=================  ==============================================  ========================

``index`` options: ``index`` (column name, e.g. TFSD, ACI, BI), ``direction`` (``high``: large
values first, ``low``: small values first), ``transform`` (``rank``: percentile rank, ``value``:
the raw value, negated for ``low``) and an optional ``threshold`` (units on the wrong side are
removed from the pool by :func:`threshold_mask`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

SCORE_METHODS: dict[str, str] = {
    "random": "uniform random score (seeded)",
    "lowest_confidence": "1 - top-1 confidence (least confident first)",
    "max_entropy": "maximum binary entropy over species (TABMON)",
    "mean_entropy": "mean binary entropy over species",
    "margin": "1 - (top1 - top2) confidence margin (smallest margin first)",
    "ratio": "top2 / top1 confidence ratio (closest to 1 first)",
    "index": "acoustic index value or rank (e.g. TFSD, ACI, BI)",
    "similarity": "cosine similarity to score.examples (nearest to examples; needs embeddings)",
}

#: segment column holding each uncertainty method's raw measure
SCORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "random": (),
    "lowest_confidence": ("top1_confidence",),
    "max_entropy": ("max_binary_entropy",),
    "mean_entropy": ("mean_binary_entropy",),
    "margin": ("margin",),
    "ratio": ("top1_confidence", "top2_confidence"),
}


class ScoreError(ValueError):
    """A score specification is invalid or the units lack a needed column."""


def required_columns(score: Mapping[str, Any]) -> set[str]:
    """Columns a score specification reads from the units table."""
    method = score.get("method", "random")
    if method == "index":
        return {str(score.get("index"))}
    if method == "margin":
        return {"margin"}
    return set(SCORE_COLUMNS.get(method, ()))


def _col(units: pd.DataFrame, name: str, method: str) -> np.ndarray:
    if name not in units:
        raise ScoreError(f"score.method={method}: units lack column {name!r}")
    return units[name].to_numpy(dtype=np.float64, na_value=np.nan)


def compute_score(
    units: pd.DataFrame, score: Mapping[str, Any], seed: int | None = 0
) -> np.ndarray:
    """Score of every unit (float64, higher = more informative / chosen first)."""
    method = score.get("method", "random")
    n = len(units)
    if method == "random":
        return np.random.default_rng(seed).random(n)
    if method == "lowest_confidence":
        return 1.0 - _col(units, "top1_confidence", method)
    if method == "max_entropy":
        return _col(units, "max_binary_entropy", method)
    if method == "mean_entropy":
        return _col(units, "mean_binary_entropy", method)
    if method == "margin":
        if "margin" in units:
            return 1.0 - _col(units, "margin", method)
        top1 = _col(units, "top1_confidence", method)
        return 1.0 - (top1 - _col(units, "top2_confidence", method))
    if method == "ratio":
        if "ratio" in units:
            return _col(units, "ratio", method)
        top1 = _col(units, "top1_confidence", method)
        top2 = _col(units, "top2_confidence", method)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(top1 > 0, top2 / top1, np.where(np.isnan(top1), np.nan, 0.0))
    if method == "index":
        return index_score(units, score)
    if method == "similarity":
        if "similarity" not in units:
            raise ScoreError(
                "score.method=similarity: computed from embeddings by the sampler "
                "(pass --embeddings and score.examples)"
            )
        return _col(units, "similarity", method)
    raise ScoreError(f"score.method: unknown method {method!r} (known: {', '.join(SCORE_METHODS)})")


def index_score(units: pd.DataFrame, score: Mapping[str, Any]) -> np.ndarray:
    """Acoustic-index score: percentile rank (``transform: rank``) or value, by ``direction``."""
    name = score.get("index")
    if not name:
        raise ScoreError("score.index: name an acoustic index column (e.g. TFSD) for method=index")
    if name not in units:
        raise ScoreError(f"score.index: units lack index column {name!r} (pass --indices)")
    v = _col(units, name, "index")
    sign = 1.0 if score.get("direction", "high") == "high" else -1.0
    if score.get("transform", "rank") == "rank":
        ranked = pd.Series(sign * v).rank(method="average", pct=True)
        return ranked.to_numpy(dtype=np.float64)
    return sign * v


def threshold_mask(units: pd.DataFrame, score: Mapping[str, Any]) -> np.ndarray | None:
    """Boolean pool mask of ``score.threshold`` for method ``index`` (None when unset)."""
    thr = score.get("threshold")
    if score.get("method") != "index" or thr is None:
        return None
    v = _col(units, str(score.get("index")), "index")
    if score.get("direction", "high") == "high":
        return v >= float(thr)
    return v <= float(thr)


def describe(score: Mapping[str, Any]) -> str:
    """Short human label of a score specification (used in ``reason``)."""
    method = score.get("method", "random")
    if method == "index":
        return f"index {score.get('index')} ({score.get('direction', 'high')})"
    return str(method)
