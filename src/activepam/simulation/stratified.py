"""Stratified generalisation: leave-one-stratum-out, mutual information and JSD tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from activepam.core.metrics import macro_scores
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimDataset
from activepam.simulation.divergence import (
    correlate,
    divergence_to_rest,
    jsd_matrix,
    mutual_information,
    stratum_label_distributions,
)
from activepam.simulation.probe import Probe, config_features
from activepam.simulation.replicates import strata_values


def _group_folds(groups: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold (0..n_folds-1) of every row, whole groups (recordings) kept together."""
    uniq = np.unique(groups)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % n_folds))
    return np.asarray([fold_of[g] for g in groups], dtype=np.int64)


def out_of_fold_predictions(
    ds: SimDataset, Z: np.ndarray, cfg: SimConfig, n_folds: int = 4, seed: int = 0
) -> np.ndarray:
    """Probe predictions for every unit from a model that did not see its recording."""
    rng = np.random.default_rng(seed)
    folds = _group_folds(ds.units["recording_id"].astype(str).to_numpy(), n_folds, rng)
    P = np.zeros(ds.Y.shape)
    for f in range(n_folds):
        tr, te = folds != f, folds == f
        probe = Probe(cfg.probe_C, cfg.probe_max_iter).fit(Z[tr], ds.Y[tr])
        P[te] = probe.predict_proba(Z[te])
    return P


def leave_one_stratum_out(
    ds: SimDataset,
    key: str,
    cfg: SimConfig,
    Z: np.ndarray | None = None,
    n_folds: int = 2,
    size_matched: bool = True,
    seed: int = 0,
    min_recordings: int = 2,
    P_oof: np.ndarray | None = None,
) -> pd.DataFrame:
    """Leave-one-stratum-out generalisation of the probe, one row per stratum value.

    For stratum ``v`` its recordings are split into ``n_folds`` folds; on each test fold
    two probes are compared: *in* (trained on the other strata + the other folds of ``v``) and
    *out* (trained on the other strata only). With ``size_matched`` the *in* training set is
    randomly thinned to the *out* size, so the drop measures what is specific to the stratum
    and not the amount of training data. Scores are macro AP / F1 over the species present in
    the test fold, averaged over folds; the drop is ``in - out``. Divergence columns: JSD of the
    stratum's species-label distribution to the pooled rest (``jsd_label``) and the same for
    out-of-fold predicted distributions (``jsd_pred``; ``P_oof`` from
    :func:`out_of_fold_predictions`, computed when not given).
    """
    Z = config_features(ds.X, cfg) if Z is None else Z
    values = strata_values(ds.units, [key], cfg.strata_options)[key]
    rec = ds.units["recording_id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    codes, labels = pd.factorize(values, sort=True)
    label_counts = stratum_label_distributions(codes, len(labels), ds.Y)
    if P_oof is None:
        P_oof = out_of_fold_predictions(ds, Z, cfg, seed=seed)
    pred_counts = stratum_label_distributions(codes, len(labels), P_oof)
    jsd_label = divergence_to_rest(label_counts)
    jsd_pred = divergence_to_rest(pred_counts)
    pair = jsd_matrix(label_counts)
    rows = []
    for i, v in enumerate(labels):
        inside = np.flatnonzero(codes == i)
        rest = np.flatnonzero(codes != i)
        n_rec = len(np.unique(rec[inside]))
        row: dict[str, Any] = {
            "key": key,
            "stratum_value": str(v),
            "n_units": len(inside),
            "n_recordings": n_rec,
            "n_species_present": int((ds.Y[inside].sum(axis=0) > 0).sum()),
            "jsd_label": float(jsd_label[i]),
            "jsd_pred": float(jsd_pred[i]),
            "mean_pairwise_jsd": float(np.delete(pair[i], i).mean()) if len(labels) > 1 else np.nan,
        }
        if n_rec < min_recordings or len(rest) == 0:
            rows.append(row)
            continue
        folds = _group_folds(rec[inside], min(n_folds, n_rec), rng)
        probe_out = Probe(cfg.probe_C, cfg.probe_max_iter).fit(Z[rest], ds.Y[rest])
        scores: dict[str, list[float]] = {"ap_in": [], "ap_out": [], "f1_in": [], "f1_out": []}
        for f in np.unique(folds):
            te = inside[folds == f]
            tr_in = np.concatenate([rest, inside[folds != f]])
            if size_matched and len(tr_in) > len(rest):
                tr_in = np.sort(rng.choice(tr_in, size=len(rest), replace=False))
            probe_in = Probe(cfg.probe_C, cfg.probe_max_iter).fit(Z[tr_in], ds.Y[tr_in])
            for tag, probe in (("in", probe_in), ("out", probe_out)):
                sc = macro_scores(ds.Y[te], probe.predict_proba(Z[te]), cfg.threshold)
                scores[f"ap_{tag}"].append(sc["macro_ap"])
                scores[f"f1_{tag}"].append(sc["macro_f1"])
        row.update(
            {k: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan for k, v in scores.items()}
        )
        row["drop_ap"] = row["ap_in"] - row["ap_out"]
        row["rel_drop_ap"] = row["drop_ap"] / row["ap_in"] if row["ap_in"] > 0 else np.nan
        row["drop_f1"] = row["f1_in"] - row["f1_out"]
        rows.append(row)
    return pd.DataFrame(rows)


def mutual_information_table(
    ds: SimDataset, keys: Sequence[str], cfg: SimConfig, n_permutations: int = 20, seed: int = 0
) -> pd.DataFrame:
    """:func:`mutual_information` for each stratum key and for all keys combined."""
    values = strata_values(ds.units, keys, cfg.strata_options)
    combos: list[tuple[str, np.ndarray]] = [(k, values[k]) for k in keys]
    if len(keys) > 1:
        joined = np.asarray(["|".join(t) for t in zip(*(values[k].astype(str) for k in keys))])
        combos.append(("+".join(keys), joined))
    rows = []
    for name, v in combos:
        codes, uniq = pd.factorize(v, sort=True)
        mi = mutual_information(codes, ds.Y, n_permutations, seed)
        rows.append({"key": name, "n_strata": len(uniq), **mi})
    return pd.DataFrame(rows)


def jsd_long(ds: SimDataset, key: str, cfg: SimConfig, P: np.ndarray | None = None) -> pd.DataFrame:
    """Pairwise JSD between strata of ``key`` (labels, and predictions when ``P`` is given)."""
    values = strata_values(ds.units, [key], cfg.strata_options)[key]
    codes, labels = pd.factorize(values, sort=True)
    lab = jsd_matrix(stratum_label_distributions(codes, len(labels), ds.Y))
    pred = jsd_matrix(stratum_label_distributions(codes, len(labels), P)) if P is not None else None
    rows = []
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            rows.append(
                {
                    "key": key,
                    "a": str(a),
                    "b": str(b),
                    "jsd_label": float(lab[i, j]),
                    "jsd_pred": float(pred[i, j]) if pred is not None else np.nan,
                }
            )
    return pd.DataFrame(rows)


def stratified_analysis(
    ds: SimDataset,
    cfg: SimConfig,
    loso_keys: Sequence[str],
    mi_keys: Sequence[str],
    n_folds: int = 2,
    size_matched: bool = True,
    seed: int = 0,
    setting: str = "default",
    n_permutations: int = 20,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """All stratified-generalisation tables of one dataset: ``loso``, ``mi`` and ``jsd``.

    Every table gets ``dataset`` and ``setting`` columns and the ``extra`` columns (e.g. the
    ``turnover`` and ``demo_seed`` of a sweep point).
    """
    Z = config_features(ds.X, cfg)
    P = out_of_fold_predictions(ds, Z, cfg, seed=seed)
    loso = pd.concat(
        [
            leave_one_stratum_out(ds, k, cfg, Z, n_folds, size_matched, seed, P_oof=P)
            for k in loso_keys
        ],
        ignore_index=True,
    )
    mi = mutual_information_table(ds, mi_keys, cfg, n_permutations, seed=seed)
    jsd = pd.concat([jsd_long(ds, k, cfg, P) for k in loso_keys], ignore_index=True)
    out = {"loso": loso, "mi": mi, "jsd": jsd}
    for df in out.values():
        for i, (col, value) in enumerate((extra or {}).items()):
            df.insert(i, col, value)
        df.insert(0, "setting", setting)
        df.insert(0, "dataset", ds.name)
    return out


def loso_correlation(loso: pd.DataFrame, x: str = "jsd_label", y: str = "drop_ap") -> pd.DataFrame:
    """Correlation of the LOSO drop with divergence over the strata of ONE setting, per key and
    setting (``dataset, setting, key, x, y, n, pearson_r, spearman_rho``).

    No p-values: the strata of one dataset share its pool and probe, and strata of different
    settings must not be pooled as if independent; test across settings with
    :func:`across_settings_test`.
    """
    rows = []
    group = [c for c in ("dataset", "setting") if c in loso]
    for keys, g in loso.groupby([*group, "key"], sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        c = correlate(g[x], g[y])
        rows.append(
            {
                **dict(zip([*group, "key"], keys)),
                "x": x,
                "y": y,
                "n": c["n"],
                "pearson_r": c["pearson_r"],
                "spearman_rho": c["spearman_rho"],
            }
        )
    return pd.DataFrame(rows)


def across_settings_test(r: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Test of per-setting correlations across independent settings (one value per setting).

    Returns the number of settings with a finite r, their mean and median, how many are > 0,
    a one-sample t-test of the mean Fisher z (atanh r, clipped) against 0 and a Wilcoxon
    signed-rank test of r against 0 (two-sided; NaN with fewer than 3 settings).
    """
    v = np.asarray(r, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    out = {
        "n_settings": n,
        "mean_r": float(v.mean()) if n else float("nan"),
        "median_r": float(np.median(v)) if n else float("nan"),
        "positive_settings": int((v > 0).sum()),
        "fisher_z_mean": float("nan"),
        "t_p": float("nan"),
        "wilcoxon_p": float("nan"),
    }
    if n >= 3:
        z = np.arctanh(np.clip(v, -0.999999, 0.999999))
        out["fisher_z_mean"] = float(z.mean())
        if np.ptp(z) > 0:
            out["t_p"] = float(stats.ttest_1samp(z, 0.0).pvalue)
        if np.any(v != 0):
            out["wilcoxon_p"] = float(stats.wilcoxon(v).pvalue)
    return out
