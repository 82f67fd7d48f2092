"""Analyses of simulated active-learning runs and of stratified generalisation.

Learning-curve statistics (used to compare sampling strategies):

* :func:`t_interval` - mean and two-sided Student-t confidence interval over repeat seeds;
* :func:`aulc` - normalised area under a learning curve (trapezoid over the labelled fraction,
  divided by the fraction range, so it is the curve's mean level in metric units);
* :func:`budget_to_target` - first (linearly interpolated) budget at which a curve reaches a
  target score, e.g. 95 % of the full-supervision score;
* :func:`spread` - coefficient of variation and Pielou evenness of per-stratum performance.

Stratified generalisation (after McEwen, Bernard & Stowell 2025):

* :func:`stratum_label_distributions` / :func:`divergence_to_rest` - Jensen-Shannon divergence
  (base 2, in [0, 1]) between strata's species-label (or predicted) distributions;
* :func:`mutual_information` - I(stratum; species) in bits over the species occurrences and its
  fraction of the species-label entropy, with a permutation baseline for the plug-in bias;
* :func:`leave_one_stratum_out` - train a probe without a stratum and test on it, compared with
  a probe that also saw part of the stratum (the in-distribution reference) on the same test
  recordings; the drop is then related to the stratum's divergence from the rest
  (:func:`correlate`: Pearson and Spearman).

Gathering simulated runs (:func:`summarise`, :func:`gather_to_files`): per run the AULC (whole
curve and up to the mid budget), the metric at the mid budget and the budget needed to reach
``target_fraction`` x the full-supervision score; per strategy their means and t-intervals; and
``claims.json`` checking the configured claim (e.g. Top-K entropy files vs random files: target
reached within ``max_budget``, AULC interval entirely above the baseline's, paired difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from activepam.simulate import (
    BUDGET_COLS,
    RUN_KEYS,
    Probe,
    SimConfig,
    SimDataset,
    config_features,
    macro_scores,
    strata_values,
)
from activepam.strata import pairwise_jsd

# --------------------------------------------------------------------------- curve statistics


def t_interval(
    values: Sequence[float] | np.ndarray, level: float = 0.95
) -> tuple[float, float, float, int]:
    """Mean and Student-t ``level`` interval of ``values`` (NaNs ignored).

    Returns ``(mean, low, high, n)``; with one value the interval collapses onto the mean,
    with none everything is NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, mean, mean, 1
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def aulc(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, x_max: float | None = None
) -> float:
    """Normalised area under the learning curve ``y(x)``: trapezoid / (x range).

    ``x`` is the labelled fraction (sorted ascending, duplicates allowed); points beyond
    ``x_max`` are cut and the curve is linearly interpolated at ``x_max``. A flat curve at level
    c has AULC c. Fewer than two points give the single value (or NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if x_max is not None and len(x) and x[-1] > x_max:
        keep = x <= x_max
        y_at = float(np.interp(x_max, x, y))
        x, y = np.append(x[keep], x_max), np.append(y[keep], y_at)
    if len(x) == 0:
        return float("nan")
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def budget_to_target(
    budget: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, target: float
) -> float:
    """First budget at which ``y`` reaches ``target`` (linear interpolation between rounds).

    Returns the first budget itself when already reached, NaN when never reached.
    """
    b = np.asarray(budget, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(b, kind="stable")
    b, y = b[order], y[order]
    hit = np.flatnonzero(y >= target)
    if len(hit) == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(b[0])
    y0, y1 = y[i - 1], y[i]
    frac = (target - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(b[i - 1] + frac * (b[i] - b[i - 1]))


def spread(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Coefficient of variation (sd/mean, ddof=0) and Pielou evenness of per-stratum scores.

    Pielou's J = H(p) / ln(k) with p_i = v_i / sum(v) over the k finite, non-negative values:
    1 = every stratum performs equally, near 0 = one stratum takes all. NaN for < 2 strata.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    mean = v.mean()
    cv = float(v.std() / mean) if mean > 0 else float("nan")
    v = np.clip(v, 0.0, None)
    tot = v.sum()
    if tot <= 0:
        return cv, float("nan")
    p = v / tot
    h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0))
    return cv, float(h / np.log(len(v)))


# --------------------------------------------------------------------------- run summaries


def overall_metric(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (strategy, unit, seed, round) with the budget columns and ``value``."""
    sel = results[(results["stratum"] == "all") & (results["metric"] == metric)]
    if sel.empty:
        raise KeyError(f"results: no overall rows for metric {metric!r}")
    return sel[RUN_KEYS + BUDGET_COLS + ["value"]].sort_values(RUN_KEYS).reset_index(drop=True)


def learning_curves(
    results: pd.DataFrame,
    metric: str = "macro_ap",
    stratum: str = "all",
    stratum_value: str = "all",
    level: float = 0.95,
    budget: str = "recording_fraction",
) -> pd.DataFrame:
    """Mean learning curve and t-interval over seeds per strategy and round.

    Returns ``DataFrame[strategy, unit, round, budget (mean), <budget cols mean>, mean, low,
    high, n_seeds]``.
    """
    sel = results[
        (results["metric"] == metric)
        & (results["stratum"] == stratum)
        & (results["stratum_value"] == stratum_value)
    ]
    if sel.empty:
        raise KeyError(
            f"results: no rows for metric={metric!r} stratum={stratum!r}={stratum_value!r}"
        )
    rows = []
    for (strategy, unit, rnd), g in sel.groupby(["strategy", "unit", "round"], sort=True):
        mean, lo, hi, n = t_interval(g["value"], level)
        row = {
            "strategy": strategy,
            "unit": unit,
            "round": int(rnd),
            "budget": float(g[budget].mean()),
        }
        row.update({c: float(g[c].mean()) for c in BUDGET_COLS})
        row.update(mean=mean, low=lo, high=hi, n_seeds=n)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class TargetSpec:
    """What counts as "reaching full supervision": ``fraction`` x ``full_score``."""

    full_score: float
    fraction: float = 0.95

    @property
    def target(self) -> float:
        return self.fraction * self.full_score


def per_run_summary(
    results: pd.DataFrame,
    metric: str,
    target: TargetSpec,
    budget: str = "recording_fraction",
    mid_budget: float | None = None,
) -> pd.DataFrame:
    """Per (strategy, unit, seed): AULC (whole curve and up to ``mid_budget``), the metric at
    ``mid_budget`` and the budget needed to reach the target (in every budget unit)."""
    curves = overall_metric(results, metric)
    rows = []
    for (strategy, unit, seed), g in curves.groupby(["strategy", "unit", "seed"], sort=True):
        g = g.sort_values("round")
        x, y = g[budget].to_numpy(), g["value"].to_numpy()
        row = {
            "strategy": strategy,
            "unit": unit,
            "seed": int(seed),
            "metric": metric,
            "aulc": aulc(x, y),
            "final": float(y[-1]),
            "final_budget": float(x[-1]),
        }
        if mid_budget is not None:
            row["aulc_mid"] = aulc(x, y, x_max=mid_budget)
            row["value_mid"] = (
                float(np.interp(mid_budget, x, y)) if x[0] <= mid_budget else float("nan")
            )
        for col in BUDGET_COLS:
            row[f"to_target_{col}"] = budget_to_target(g[col].to_numpy(), y, target.target)
        row["reached_target"] = bool(np.isfinite(row[f"to_target_{budget}"]))
        rows.append(row)
    return pd.DataFrame(rows)


def strategy_summary(per_run: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over seeds of every numeric per-run column, per strategy."""
    value_cols = [
        c
        for c in per_run.columns
        if c not in ("strategy", "unit", "seed", "metric", "reached_target")
        and pd.api.types.is_numeric_dtype(per_run[c])
    ]
    rows = []
    for (strategy, unit), g in per_run.groupby(["strategy", "unit"], sort=True):
        row: dict[str, object] = {
            "strategy": strategy,
            "unit": unit,
            "n_seeds": len(g),
            "reached_target_runs": int(g["reached_target"].sum()),
        }
        for c in value_cols:
            mean, lo, hi, _ = t_interval(g[c], level)
            row[c] = mean
            row[f"{c}_low"] = lo
            row[f"{c}_high"] = hi
        rows.append(row)
    return pd.DataFrame(rows)


def intervals_disjoint_above(summary: pd.DataFrame, a: str, b: str, column: str) -> bool:
    """True when strategy ``a``'s interval of ``column`` lies entirely above ``b``'s."""
    ra = summary.loc[summary["strategy"] == a]
    rb = summary.loc[summary["strategy"] == b]
    if ra.empty or rb.empty:
        return False
    return bool(ra[f"{column}_low"].iloc[0] > rb[f"{column}_high"].iloc[0])


# --------------------------------------------------------------------------- divergence & MI


def stratum_label_distributions(codes: np.ndarray, n_strata: int, Y: np.ndarray) -> np.ndarray:
    """(n_strata x n_species) species occurrence counts per stratum (rows not normalised).

    ``Y`` is a [units x species] 0/1 (or probability) matrix; a stratum's row sums its units.
    """
    Y = np.asarray(Y, dtype=np.float64)
    out = np.zeros((n_strata, Y.shape[1]))
    np.add.at(out, np.asarray(codes, dtype=np.int64), Y)
    return out


def divergence_to_rest(counts: np.ndarray) -> np.ndarray:
    """JSD (base 2) between each stratum's species distribution and the pooled other strata."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=0)
    out = np.full(len(counts), np.nan)
    for i, row in enumerate(counts):
        rest = total - row
        if row.sum() > 0 and rest.sum() > 0:
            out[i] = pairwise_jsd(np.vstack([row, rest]))[0, 1]
    return out


def jsd_matrix(counts: np.ndarray) -> np.ndarray:
    """Pairwise JSD between strata's (normalised) species distributions."""
    return pairwise_jsd(np.asarray(counts, dtype=np.float64))


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def mutual_information(
    codes: np.ndarray, Y: np.ndarray, n_permutations: int = 20, seed: int = 0
) -> dict[str, float]:
    """I(stratum; species) in bits over the species occurrences of a labelled dataset.

    Every (unit, present species) pair is one draw of (stratum, species). Returns
    ``mi_bits``, ``species_entropy_bits`` (H(species)), ``fraction`` = MI / H(species),
    ``mi_permuted_bits`` (mean MI with the strata shuffled over units: the plug-in bias) and
    ``fraction_corrected`` = (MI - permuted) / H(species).
    """
    codes = np.asarray(codes, dtype=np.int64)
    Y = np.asarray(Y, dtype=np.float64)
    n_strata = int(codes.max()) + 1 if len(codes) else 0

    def _mi(c: np.ndarray) -> tuple[float, float]:
        joint = stratum_label_distributions(c, n_strata, Y)
        tot = joint.sum()
        if tot <= 0:
            return float("nan"), float("nan")
        p = joint / tot
        h_sp = _entropy_bits(p.sum(axis=0))
        h_st = _entropy_bits(p.sum(axis=1))
        return h_st + h_sp - _entropy_bits(p.ravel()), h_sp

    mi, h_sp = _mi(codes)
    rng = np.random.default_rng(seed)
    perm = [_mi(rng.permutation(codes))[0] for _ in range(n_permutations)] if n_permutations else []
    mi_perm = float(np.mean(perm)) if perm else float("nan")
    frac = mi / h_sp if h_sp > 0 else float("nan")
    corr = (mi - mi_perm) / h_sp if h_sp > 0 and perm else float("nan")
    return {
        "mi_bits": mi,
        "species_entropy_bits": h_sp,
        "fraction": frac,
        "mi_permuted_bits": mi_perm,
        "fraction_corrected": corr,
    }


def correlate(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (with p-values) over the finite pairs."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        nan = float("nan")
        return {"n": n, "pearson_r": nan, "pearson_p": nan, "spearman_rho": nan, "spearman_p": nan}
    pr = stats.pearsonr(x[ok], y[ok])
    sr = stats.spearmanr(x[ok], y[ok])
    return {
        "n": n,
        "pearson_r": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman_rho": float(sr.statistic),
        "spearman_p": float(sr.pvalue),
    }


# ------------------------------------------------------------------ stratified generalisation


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
        row = {
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
    """Correlation of the LOSO drop with divergence per key, over all settings pooled."""
    rows = []
    for key, g in loso.groupby("key", sort=True):
        rows.append({"key": key, "x": x, "y": y, **correlate(g[x], g[y])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- gather + claims


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN / infinite floats replaced by None and numpy scalars by Python ones."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def read_runs(paths: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-run result tables (strategy x seed) into the tidy results table."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise ValueError("no simulation runs to gather")
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(
        ["strategy", "seed", "round", "stratum", "stratum_value", "metric"], kind="stable"
    ).reset_index(drop=True)


def full_score(full: pd.DataFrame, metric: str) -> float:
    """The overall ``metric`` of the full-supervision table."""
    sel = full[(full["stratum"] == "all") & (full["metric"] == metric)]
    if sel.empty:
        raise KeyError(f"full supervision: no overall {metric!r}")
    return float(sel["value"].iloc[0])


def mid_budget_of(results: pd.DataFrame, budget: str, mid: float = 0.0) -> float:
    """``mid`` or, when 0, half of the smallest final budget over the runs."""
    if mid and mid > 0:
        return float(mid)
    final = results.groupby(["strategy", "seed"])[budget].max()
    return float(final.min() / 2.0)


def summarise(
    results: pd.DataFrame,
    full: pd.DataFrame,
    params: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Per-run table, per-strategy summary (means and t-intervals) and the claims dict."""
    metric = params.get("metric", "macro_ap")
    budget = params.get("budget_axis", "segment_fraction")
    target = TargetSpec(full_score(full, metric), float(params.get("target_fraction", 0.95)))
    mid = mid_budget_of(results, budget, float(params.get("mid_budget", 0) or 0))
    per_run = per_run_summary(results, metric, target, budget, mid)
    summary = strategy_summary(per_run)
    curves = learning_curves(results, metric, budget=budget)
    mean_cross = {}
    for strategy, g in curves.groupby("strategy"):
        mean_cross[strategy] = budget_to_target(
            g["budget"].to_numpy(), g["mean"].to_numpy(), target.target
        )
    summary["to_target_mean_curve"] = summary["strategy"].map(mean_cross)
    claims: dict[str, Any] = {
        "metric": metric,
        "budget_axis": budget,
        "full_supervision": target.full_score,
        "target_fraction": target.fraction,
        "target": target.target,
        "mid_budget": mid,
        "n_seeds": int(results["seed"].nunique()),
        "strategies": {},
    }
    for _, row in summary.iterrows():
        claims["strategies"][row["strategy"]] = {
            "unit": row["unit"],
            "n_seeds": int(row["n_seeds"]),
            "aulc": [row["aulc"], row["aulc_low"], row["aulc_high"]],
            "aulc_mid": [row["aulc_mid"], row["aulc_mid_low"], row["aulc_mid_high"]],
            "value_mid": [row["value_mid"], row["value_mid_low"], row["value_mid_high"]],
            "final": [row["final"], row["final_low"], row["final_high"]],
            "reached_target_runs": int(row["reached_target_runs"]),
            f"to_target_{budget}": [
                row[f"to_target_{budget}"],
                row[f"to_target_{budget}_low"],
                row[f"to_target_{budget}_high"],
            ],
            "to_target_mean_curve": row["to_target_mean_curve"],
        }
    claim = params.get("claim") or {}
    a, b = claim.get("strategy"), claim.get("baseline")
    if a in claims["strategies"] and b in claims["strategies"]:
        runs_a = per_run[per_run["strategy"] == a]
        max_budget = float(claim.get("max_budget", 0.15))
        reached = runs_a[f"to_target_{budget}"].to_numpy()
        claims["claim"] = {
            "strategy": a,
            "baseline": b,
            "max_budget": max_budget,
            "reaches_target_within_max_budget_runs": int(np.sum(reached <= max_budget)),
            "runs": len(runs_a),
            "mean_curve_reaches_target_at": mean_cross.get(a),
            "mean_curve_within_max_budget": bool(
                np.isfinite(mean_cross.get(a, np.nan)) and mean_cross[a] <= max_budget
            ),
            "aulc_mid_disjoint_above_baseline": intervals_disjoint_above(summary, a, b, "aulc_mid"),
            "aulc_disjoint_above_baseline": intervals_disjoint_above(summary, a, b, "aulc"),
            "aulc_mid_difference_paired": paired_difference(per_run, a, b, "aulc_mid"),
        }
    return per_run, summary, claims


def paired_difference(per_run: pd.DataFrame, a: str, b: str, column: str) -> dict[str, float]:
    """Mean and t-interval of the seed-paired difference ``a - b`` of a per-run column."""
    pa_ = per_run[per_run["strategy"] == a].set_index("seed")[column]
    pb = per_run[per_run["strategy"] == b].set_index("seed")[column]
    diff = (pa_ - pb).dropna()
    mean, lo, hi, n = t_interval(diff.to_numpy())
    return {"mean": mean, "low": lo, "high": hi, "n": n}


def divergence_summary(loso: pd.DataFrame, mi: pd.DataFrame) -> dict[str, Any]:
    """Correlations of the LOSO drop with divergence per key: over all strata of all settings
    pooled, and over the settings' means (one point per setting); and per setting the mean
    divergence / drop and the MI fractions."""
    out: dict[str, Any] = {"correlation": {}, "settings": {}}
    for y in ("drop_ap", "rel_drop_ap"):
        for x in ("jsd_label", "jsd_pred"):
            for _, row in loso_correlation(loso, x, y).iterrows():
                out["correlation"][f"{row['key']}:{y}~{x}"] = {
                    k: row[k] for k in ("n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")
                }
    means = (
        loso.groupby(["key", "dataset", "setting"], sort=True)[["jsd_label", "drop_ap"]]
        .mean()
        .reset_index()
    )
    for key, g in means.groupby("key", sort=True):
        out["correlation"][f"{key}:mean_drop_ap~mean_jsd_label (per setting)"] = correlate(
            g["jsd_label"], g["drop_ap"]
        )
    for (dataset, setting), g in loso.groupby(["dataset", "setting"], sort=True):
        entry = {
            f"{key}": {
                "mean_jsd_label": float(h["jsd_label"].mean()),
                "mean_drop_ap": float(h["drop_ap"].mean()),
            }
            for key, h in g.groupby("key")
        }
        m = mi[(mi["dataset"] == dataset) & (mi["setting"] == setting)]
        entry["mi_fraction"] = dict(zip(m["key"], m["fraction"].astype(float)))
        entry["mi_fraction_corrected"] = dict(zip(m["key"], m["fraction_corrected"].astype(float)))
        out["settings"][f"{dataset}:{setting}"] = entry
    return out


# --------------------------------------------------------------------------- file-level steps


def gather_to_files(
    run_paths: Sequence[str], full_path: str, sim: Mapping[str, Any], out: Mapping[str, str]
) -> dict[str, Any]:
    """Gather the runs and write ``results`` (Parquet), ``results_csv``, ``per_run`` (CSV),
    ``summary`` (CSV) and ``claims`` (JSON); returns the claims."""
    from activepam.io import write_csv, write_json, write_parquet

    results = read_runs(run_paths)
    full = pd.read_parquet(full_path)
    per_run, summary, claims = summarise(results, full, sim)
    write_parquet(results, out["results"], stage="simulate")
    write_csv(results, out["results_csv"], stage="simulate")
    write_csv(per_run, out["per_run"], stage="simulate")
    write_csv(summary, out["summary"], stage="simulate")
    write_json(jsonable(claims), out["claims"], stage="simulate")
    return claims


def stratified_to_files(
    ds: SimDataset,
    sim: Mapping[str, Any],
    out: Mapping[str, str],
    setting: str = "default",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Stratified analysis of one dataset; writes ``loso``, ``mi`` and ``jsd`` (Parquet)."""
    from activepam.io import write_parquet

    st = dict(sim.get("stratified") or {})
    cfg = SimConfig.from_params(sim)
    tables = stratified_analysis(
        ds,
        cfg,
        st.get("loso_keys", ["site"]),
        st.get("mi_keys", ["site"]),
        int(st.get("folds", 2)),
        bool(st.get("size_matched", True)),
        seed=int(sim.get("split_seed", 0)),
        setting=setting,
        n_permutations=int(st.get("permutations", 20)),
        extra=extra,
    )
    for name in ("loso", "mi", "jsd"):
        write_parquet(tables[name], out[name], stage="simulate")
    return tables


def divergence_to_files(
    loso_paths: Sequence[str], mi_paths: Sequence[str], out: Mapping[str, str]
) -> dict[str, Any]:
    """Pool the sweep's LOSO / MI tables; write ``loso`` and ``mi`` (Parquet) and ``summary``
    (JSON with the correlations); returns the summary."""
    from activepam.io import write_json, write_parquet

    loso = pd.concat([pd.read_parquet(p) for p in loso_paths], ignore_index=True)
    mi = pd.concat([pd.read_parquet(p) for p in mi_paths], ignore_index=True)
    summary = divergence_summary(loso, mi)
    write_parquet(loso, out["loso"], stage="simulate")
    write_parquet(mi, out["mi"], stage="simulate")
    write_json(jsonable(summary), out["summary"], stage="simulate")
    return summary
