"""Classification metrics shared by the rounds (:mod:`activepam.core.evaluate`) and the
simulation: average precision (scikit-learn's definition), AUROC, F1, ECE, macro scores over
species and the spread of per-stratum scores (CV, Pielou J).

A leaf module: it imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

OVERALL_METRICS = ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece", "n_species_eval")
STRATUM_METRICS = ("macro_ap", "macro_f1")
#: metrics a stratum value can get (``evaluate(stratum_metrics=...)``): weighted_ap = AP
#: weighted by the species' positives (McEwen et al. 2025's "mAP", scikit-learn's "weighted")
STRATUM_METRIC_CHOICES = ("macro_ap", "macro_f1", "weighted_ap")


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


def finite_mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def macro_scores(Y: np.ndarray, P: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro AP / F1 over species with at least one positive, macro AUROC (both classes), and
    ``weighted_ap``: the species' APs weighted by their positives (support-weighted AP)."""
    aps, f1s, aucs = [], [], []
    support = np.asarray(Y).sum(axis=0)
    present = np.flatnonzero(support > 0)
    for j in present:
        aps.append(average_precision(Y[:, j], P[:, j]))
        f1s.append(f1_score(Y[:, j], P[:, j] >= threshold))
        aucs.append(auroc(Y[:, j], P[:, j]))
    w = support[present].astype(np.float64)
    return {
        "macro_ap": finite_mean(aps),
        "weighted_ap": float(np.dot(aps, w) / w.sum()) if len(aps) else float("nan"),
        "macro_f1": finite_mean(f1s),
        "macro_auroc": finite_mean(aucs),
        "n_species_eval": float(len(aps)),
    }


def evaluate(
    Y: np.ndarray,
    P: np.ndarray,
    strata: Mapping[str, np.ndarray] | None = None,
    threshold: float = 0.5,
    min_units: int = 1,
    stratum_metrics: Sequence[str] = STRATUM_METRICS,
) -> list[tuple[str, str, str, float]]:
    """All metrics as ``(stratum, stratum_value, metric, value)`` rows.

    Overall: macro/micro AP, macro AUROC, macro F1, ECE, number of species evaluated. Per
    stratum key and value (units >= ``min_units``): ``stratum_metrics`` (default macro AP and
    macro F1; :data:`STRATUM_METRIC_CHOICES`) over the species present in that value, then the
    spread of those over the key's values as ``cv_<metric>`` and ``pielou_<metric>`` (value
    ``"all"``).
    """
    Y = np.asarray(Y)
    P = np.asarray(P)
    rows: list[tuple[str, str, str, float]] = []
    overall = macro_scores(Y, P, threshold)
    overall["micro_ap"] = average_precision(Y.ravel(), P.ravel())
    overall["ece"] = expected_calibration_error(Y, P)
    rows += [("all", "all", m, overall[m]) for m in OVERALL_METRICS]
    for key, values in (strata or {}).items():
        values = np.asarray(values).astype(str)
        per_value: dict[str, list[float]] = {m: [] for m in stratum_metrics}
        for v in np.unique(values):
            mask = values == v
            if mask.sum() < min_units:
                continue
            sc = macro_scores(Y[mask], P[mask], threshold)
            for m in stratum_metrics:
                rows.append((key, str(v), m, sc[m]))
                per_value[m].append(sc[m])
        for m in stratum_metrics:
            cv, j = spread(per_value[m])
            rows += [(key, "all", f"cv_{m}", cv), (key, "all", f"pielou_{m}", j)]
    return rows


def coefficient_of_variation(values: Sequence[float] | np.ndarray) -> float:
    """Population sd / mean (ddof=0) of the finite values; NaN for < 2 values or a mean <= 0
    (the scores here are non-negative)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan")
    mean = v.mean()
    return float(v.std() / mean) if mean > 0 else float("nan")


def spread(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Coefficient of variation (sd/mean, ddof=0) and Pielou evenness of per-stratum scores.

    Pielou's J = H(p) / ln(k) with p_i = v_i / sum(v) over the k finite, non-negative values:
    1 = every stratum performs equally, near 0 = one stratum takes all. NaN for < 2 strata.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    cv = coefficient_of_variation(v)
    v = np.clip(v, 0.0, None)
    tot = v.sum()
    if tot <= 0:
        return cv, float("nan")
    p = v / tot
    h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0))
    return cv, float(h / np.log(len(v)))
