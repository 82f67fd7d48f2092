"""Evaluation on a fixed, held-out test set of labelled segments.

Test set (:func:`choose_test_set`): WHOLE recordings drawn once (seeded) by
:func:`split_by_recording`, the one split shared with the simulation
(:func:`activepam.simulation.replicates.split_test`): every segment of a test recording is in the
test set, so no clip of a round (which carries seconds of context) can contain test audio.
``rounds.test_size`` is a number of segments; it is met as closely as whole recordings allow
(the prefix of the seeded, site-interleaved recording order whose segment count is nearest to
it). The test set is written to ``results/rounds/test_set.csv`` and its segments and
recordings are excluded from every round's sampling. Its labels come through the same
export/import as a round (``data/labels/test.csv``; in the demo the simulated annotator answers
from the generator's ground truth).

Metrics (:func:`summary_metrics`; the metric functions are :mod:`activepam.core.metrics`, shared
with the simulation) over a test matrix ``Y [n, n_species]`` (0/1, NaN = unknown)
and scores ``P``:

* ``macro_ap`` - mean average precision over species with >= 1 positive test label;
* ``micro_ap`` - AP of all (segment, species) cells pooled;
* ``macro_auroc`` - mean ROC AUC over species with both classes;
* ``macro_f1`` - mean F1 at each species' threshold (tuned on the training labels, or 0.5)
  over species with >= 1 positive;
* ``ece`` - expected calibration error of all cells (``bins`` equal-width bins);
* per species (:func:`per_species_metrics`): AP, AUROC, F1, test prevalence and training
  label counts (AP vs species frequency);
* per stratum (:func:`stratum_metrics`; site, habitat, season, diel period by default): all of
  the above per stratum level, and their spread across levels as the coefficient of variation
  (population std / mean over levels with a finite value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.metrics import (
    auroc,
    average_precision,
    coefficient_of_variation,
    expected_calibration_error,
    f1_score,
    finite_mean,
)

#: headline metrics of :func:`summary_metrics`
METRICS: tuple[str, ...] = ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece")
#: columns of test_set.csv
TEST_SET_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_type",
    "recording_id",
    "path",
    "start_s",
    "end_s",
    "device_id",
    "site",
    "country",
    "habitat",
    "lat",
    "lon",
    "segment_time",
    "start_time",
    "top1_species",
    "top1_confidence",
    "top2_confidence",
    "margin",
    "max_binary_entropy",
    "mean_binary_entropy",
)


class EvaluationError(ValueError):
    """The test set cannot be chosen or evaluated; the message names the input."""


# --------------------------------------------------------------------------- test set


def split_by_recording(
    units: pd.DataFrame, size: float, seed: int = 0, by: str = "site", keep_pool: bool = True
) -> list[str]:
    """Test recordings of a held-out split: whole recordings, seeded, stratified by ``by``.

    The one split of the project (the rounds' test set and the simulation's pool/test split).

    ``size``: a fraction in (0, 1) of the segments (rows of ``units``) or a number of segments
    (>= 1). The size is met as closely as whole recordings allow: recordings are ordered
    stratum-proportionally (each ``by`` group's recordings in a seeded random order, interleaved
    by the fraction of their group's segments they complete, groups tied in a seeded order), and
    the prefix of that order whose segment count is nearest to the target is taken (at least one
    recording). So every group enters the test set before any group gets a second recording
    (while the size allows) and groups get test segments in proportion to their size. With
    ``keep_pool`` (default) the last recording of every group in that order never goes to test,
    so every group keeps pool recordings. Returns the sorted test recording ids; the result does
    not depend on the row order of ``units``.
    """
    for col in ("recording_id",):
        if col not in units:
            raise EvaluationError(f"units table lacks column {col!r}")
    if len(units) == 0:
        raise EvaluationError("cannot split an empty units table")
    size = float(size)
    total = len(units)
    if size <= 0:
        raise EvaluationError(f"test size must be > 0, got {size}")
    target = size * total if size < 1 else size
    if target > total:
        raise EvaluationError(f"test size {size:g} segments but there are only {total} segments")
    rec_ids = units["recording_id"].astype(str)
    groups = (
        units[by].astype(object).where(units[by].notna(), "unknown").astype(str)
        if by in units
        else pd.Series("all", index=units.index)
    )
    recs = (
        pd.DataFrame({"recording_id": rec_ids.to_numpy(), "group": groups.to_numpy()})
        .groupby("recording_id", sort=True)
        .agg(group=("group", "first"), n=("group", "size"))
        .reset_index()
    )
    rng = np.random.default_rng(seed)
    group_names = sorted(recs["group"].unique())
    group_rank = dict(zip(group_names, rng.permutation(len(group_names))))
    keys, ids, ranks = [], [], []
    for g in group_names:
        members = recs[recs["group"] == g]
        perm = members.iloc[rng.permutation(len(members))]
        n = perm["n"].to_numpy(dtype=np.float64)
        key = (np.cumsum(n) - n / 2.0) / n.sum()  # share of the group done at this recording
        if keep_pool:
            perm, key = perm.iloc[:-1], key[:-1]
        keys.append(key)
        ids.append(perm["recording_id"].to_numpy())
        ranks.append(np.full(len(key), group_rank[g]))
    key, rid, rank = (np.concatenate(a) if a else np.zeros(0) for a in (keys, ids, ranks))
    if len(key) == 0:
        raise EvaluationError(
            f"cannot hold out whole recordings: every {by} group has a single "
            "recording (it stays in the pool)"
        )
    order = np.lexsort((rank, key))
    seg_of = recs.set_index("recording_id")["n"]
    cum = np.cumsum(seg_of.loc[rid[order]].to_numpy(dtype=np.float64))
    k = int(np.argmin(np.abs(cum - target))) + 1  # nearest prefix, ties to the shorter one
    return sorted(str(r) for r in rid[order][:k])


def choose_test_set(
    segments: pd.DataFrame, n: int, seed: int = 0, by: str = "site"
) -> pd.DataFrame:
    """The rounds' test set: every segment of the recordings :func:`split_by_recording` holds
    out for ``n`` segments (``rounds.test_size``), stratified by ``by``, sorted by unit id."""
    if "segment_id" not in segments:
        raise EvaluationError("segments table lacks column 'segment_id'")
    try:
        test_recs = split_by_recording(segments, int(n), seed=seed, by=by)
    except EvaluationError as exc:
        raise EvaluationError(f"rounds.test_size = {n}: {exc}") from None
    chosen = segments[segments["recording_id"].astype(str).isin(test_recs)]
    out = chosen.rename(columns={"segment_id": "unit_id"}).assign(unit_type="segment")
    cols = [c for c in TEST_SET_COLUMNS if c in out.columns]
    return out[cols].sort_values("unit_id").reset_index(drop=True)


# --------------------------------------------------------------------------- metrics


def summary_metrics(
    Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray, bins: int = 10
) -> dict[str, float]:
    """Headline metrics (:data:`METRICS`) plus ``n_units``, ``n_species_evaluated``,
    ``n_positives``."""
    Y, P = np.asarray(Y, dtype=float), np.asarray(P, dtype=float)
    aps, aucs, f1s = [], [], []
    for j in range(Y.shape[1] if Y.ndim == 2 else 0):
        m = ~np.isnan(Y[:, j])
        y, p = Y[m, j].astype(int), P[m, j]
        if y.sum() == 0:
            continue
        aps.append(average_precision(y, p))
        aucs.append(auroc(y, p))
        f1s.append(f1_score(y, p >= thresholds[j]))
    known = ~np.isnan(Y)
    yf, pf = Y[known].astype(int), P[known]
    return {
        "macro_ap": finite_mean(aps),
        "micro_ap": average_precision(yf, pf) if len(yf) else float("nan"),
        "macro_auroc": finite_mean(aucs),
        "macro_f1": finite_mean(f1s),
        "ece": expected_calibration_error(yf, pf, bins),
        "n_units": int(len(Y)),
        "n_species_evaluated": int(len(aps)),
        "n_positives": int(yf.sum()),
    }


def per_species_metrics(
    Y: np.ndarray,
    P: np.ndarray,
    thresholds: np.ndarray,
    label_set: Sequence[str],
    train_counts: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """AP, AUROC, F1, test positives/prevalence and training label counts per species."""
    rows = []
    for j, sp in enumerate(label_set):
        m = ~np.isnan(Y[:, j])
        y, p = Y[m, j].astype(int), P[m, j]
        tc = (train_counts or {}).get(sp, {})
        rows.append(
            {
                "species": sp,
                "ap": average_precision(y, p),
                "auroc": auroc(y, p),
                "f1": f1_score(y, p >= thresholds[j]),
                "threshold": float(thresholds[j]),
                "test_positives": int(y.sum()),
                "test_prevalence": float(y.mean()) if len(y) else float("nan"),
                "train_positives": int(tc.get("n_pos", 0)),
                "train_negatives": int(tc.get("n_neg", 0)),
                "train_unsure": int(tc.get("n_unsure", 0)),
                "train_conflict": int(tc.get("n_conflict", 0)),
                "model": tc.get("kind", ""),
            }
        )
    return pd.DataFrame(rows)


def stratum_labels(units: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One column per stratum key (``site``, ``habitat``, ``season``, ``diel``, ... any key of
    :mod:`activepam.core.strata`) with each unit's level (``unknown`` when missing)."""
    from activepam.core import strata

    out = pd.DataFrame(index=units.index)
    for key in keys:
        try:
            vals = strata.stratum_key_values(units, key)
            col = pd.Series(np.asarray(vals.astype(object)), index=units.index)
        except Exception as exc:  # noqa: BLE001 - a missing column makes the key unknown
            if key in units:
                col = units[key].astype(object)
            else:
                raise EvaluationError(f"stratum key {key!r}: {exc}") from exc
        out[key] = col.where(col.notna(), "unknown").astype(str)
    return out


def stratum_metrics(
    Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray, levels: pd.DataFrame, bins: int = 10
) -> dict[str, Any]:
    """For each stratum key: metrics per level and their coefficient of variation."""
    out: dict[str, Any] = {}
    for key in levels.columns:
        col = levels[key].to_numpy()
        per_level = {}
        for lev in sorted(set(col)):
            m = col == lev
            per_level[str(lev)] = summary_metrics(Y[m], P[m], thresholds, bins)
        cv = {
            name: coefficient_of_variation([v[name] for v in per_level.values()])
            for name in METRICS
        }
        out[key] = {"levels": per_level, "cv": cv}
    return out


def evaluate_scores(
    Y: np.ndarray,
    P: np.ndarray,
    thresholds: np.ndarray,
    units: pd.DataFrame,
    label_set: Sequence[str],
    keys: Sequence[str],
    bins: int = 10,
    train_counts: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(metrics dict, per-species table)`` of scores ``P`` on the test set."""
    levels = stratum_labels(units.reset_index(drop=True), keys)
    metrics = {
        "overall": summary_metrics(Y, P, thresholds, bins),
        "strata": stratum_metrics(Y, P, thresholds, levels, bins),
    }
    return metrics, per_species_metrics(Y, P, thresholds, label_set, train_counts)


def confusion_pairs(
    Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray, label_set: Sequence[str]
) -> pd.DataFrame:
    """Counts of (true species, predicted species) confusions on the test set.

    A segment confuses ``a`` with ``b`` when ``a`` is present and missed (score below its
    threshold) while ``b`` is absent but predicted (score >= its threshold). Returns
    ``true, predicted, count`` sorted by count.
    """
    pred = P >= thresholds[None, :]
    rows: dict[tuple[str, str], int] = {}
    for i in range(len(Y)):
        missed = np.flatnonzero((Y[i] == 1) & ~pred[i])
        false = np.flatnonzero((Y[i] == 0) & pred[i])
        for a in missed.tolist():
            for b in false.tolist():
                rows[(label_set[a], label_set[b])] = rows.get((label_set[a], label_set[b]), 0) + 1
    df = pd.DataFrame(
        [(a, b, c) for (a, b), c in rows.items()], columns=["true", "predicted", "count"]
    )
    return df.sort_values(
        ["count", "true", "predicted"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)
