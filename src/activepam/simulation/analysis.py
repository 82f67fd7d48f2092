"""Analyses of simulated active-learning runs and of stratified generalisation.

Learning-curve statistics (used to compare sampling strategies):

* :func:`bootstrap_interval` - mean and percentile-bootstrap interval over replicates (on the
  metric's range: no macro AP below 0 or above 1); :func:`t_interval` is kept for reference;
* :func:`aulc` - normalised area under a learning curve over a budget window (trapezoid divided
  by the window, so it is the curve's mean level in metric units); :func:`baseal_aulc` -
  BaseAL's (BioDCASE 2026 Task 4) variant from (0, 0) over the labels, and
  :func:`protocol_summary` its per-run table with annotation cost and sampling time;
* :func:`budget_to_target` - first (linearly interpolated) budget at which a curve reaches a
  target score, e.g. 95 % of the replicate's full-supervision score;
* :func:`spread` - coefficient of variation and Pielou evenness of per-stratum performance.

The cost axis is what an expert pays: seconds of audio listened (``audio_seconds``; a segment
costs its exported clip with context, a recording its duration), so whole recordings and single
segments are on the same axis; unit counts are kept as extra columns. A replicate seed varies
the data (subsample), the test split and the active learner (:func:`activepam.simulation.simulate.
replicate_rows`); the full-supervision reference is computed per replicate and gets its own
interval; "x % of full supervision" is the ratio to the replicate's reference (uncapped).

Stratified generalisation (after McEwen, Bernard & Stowell 2025):

* :func:`stratum_label_distributions` / :func:`divergence_to_rest` - Jensen-Shannon divergence
  (base 2, in [0, 1]) between strata's species-label (or predicted) distributions;
* :func:`mutual_information` - I(stratum; species) in bits over the species occurrences and its
  fraction of the species-label entropy, with a permutation baseline for the plug-in bias;
* :func:`leave_one_stratum_out` - train a probe without a stratum and test on it, compared with
  a probe that also saw part of the stratum (the in-distribution reference) on the same test
  recordings; the drop is then related to the stratum's divergence from the rest per setting
  (:func:`loso_correlation`, no p-values over strata) and tested across independent settings
  (:func:`across_settings_test`).

Gathering simulated runs (:func:`summarise`, :func:`gather_to_files`): per run the AULC over the
listening window every run covers (and up to the mid budget), the metric and its ratio to the
replicate's full supervision at the end, and the listening seconds (and units) needed to reach
``target_fraction`` x full supervision; per strategy their means and bootstrap intervals;
``claims.json`` with the configured claim (Top-K entropy files vs random files: target reached
within ``max_budget`` of the pool's audio, paired AULC difference) and the paired comparisons
(:data:`DEFAULT_COMPARISONS`); :func:`strategy_table` prints the README strategy table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from activepam.simulation.simulate import (
    BUDGET_COLS,
    REPLICATE_COLS,
    RUN_KEYS,
    Probe,
    SimConfig,
    SimDataset,
    config_features,
    macro_scores,
    strata_values,
)
from activepam.core.strata import pairwise_jsd

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


#: resamples of the percentile bootstrap over replicates
N_BOOT = 2000


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean and percentile-bootstrap ``level`` interval of the mean of ``values`` (NaNs
    ignored), resampling the replicates with replacement (seeded, so reproducible).

    The interval stays on the range of the values (every resampled mean lies between their
    minimum and maximum), so a metric in [0, 1] gets an interval in [0, 1], unlike a t-interval.
    With few replicates it is narrow (it cannot cover what was never observed): report ``n``.
    Returns ``(mean, low, high, n)``; one value collapses the interval, none gives NaNs.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1 or np.ptp(v) == 0:
        return mean, mean, mean, n
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi), n


def aulc(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    x_max: float | None = None,
    x_min: float | None = None,
) -> float:
    """Normalised area under the learning curve ``y(x)``: trapezoid / (x range).

    ``x`` is the budget (listening seconds or a labelled fraction; sorted ascending, duplicates
    allowed); points outside ``[x_min, x_max]`` are cut and the curve is linearly interpolated at
    the bounds, so runs of different strategies are integrated over the same budget window. A
    flat curve at level c has AULC c. Fewer than two points give the single value (or NaN); a
    window starting before the curve's first budget gives NaN (no extrapolation).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if x_min is not None and len(x):
        if x[0] > x_min + 1e-9:
            return float("nan")
        if x[0] < x_min:
            keep = x >= x_min
            y_at = float(np.interp(x_min, x, y))
            x, y = np.insert(x[keep], 0, x_min), np.insert(y[keep], 0, y_at)
    if x_max is not None and len(x) and x[-1] > x_max:
        keep = x <= x_max
        y_at = float(np.interp(x_max, x, y))
        x, y = np.append(x[keep], x_max), np.append(y[keep], y_at)
    if len(x) == 0:
        return float("nan")
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def baseal_aulc(n_labelled: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """BaseAL's AULC (BioDCASE 2026 Task 4): the trapezoid area under ``y(n_labelled)`` with
    the point ``(0, 0)`` prepended, divided by the final ``n_labelled``.

    Unlike :func:`aulc` it integrates from zero labels at score zero, so a curve at level c
    from its first point ``n0`` scores ``c (1 - n0 / (2 n_final))``, below c. NaN without a
    finite point or with a final ``n_labelled <= 0``.
    """
    x = np.asarray(n_labelled, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(v)
    x, v = x[ok], v[ok]
    order = np.argsort(x, kind="stable")
    x, v = np.r_[0.0, x[order]], np.r_[0.0, v[order]]
    if len(x) < 2 or x[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(v, x) / x[-1])


#: columns of :func:`protocol_summary` (one row per strategy x seed)
PROTOCOL_COLUMNS = ["strategy", "seed", "n_labelled", "baseal_aulc", "aulc", "final",
                    "n_positives", "sampling_s"]


def protocol_summary(results: pd.DataFrame, metric: str = "macro_ap") -> pd.DataFrame:
    """BaseAL-style numbers of every run (strategy x seed) of a tidy results table: its final
    ``n_units`` (the labels), :func:`baseal_aulc` and our :func:`aulc` of ``metric`` over the
    number of labelled units, the final ``metric``, the positives among the labelled units
    (BaseAL's annotation cost) and the total sampling wall time (NaN unless
    ``simulation.timing``)."""
    sel = results[(results["stratum"] == "all") & (results["metric"] == metric)]
    rows = []
    for (strategy, seed), g in sel.groupby(["strategy", "seed"], sort=True):
        g = g.sort_values("round")
        x, y = g["n_units"].to_numpy(float), g["value"].to_numpy(float)
        t = g["sampling_s"].to_numpy(float) if "sampling_s" in g else np.array([np.nan])
        rows.append({
            "strategy": strategy, "seed": int(seed), "n_labelled": int(x[-1]),
            "baseal_aulc": baseal_aulc(x, y), "aulc": aulc(x, y), "final": float(y[-1]),
            "n_positives": int(g["n_positives"].iloc[-1]) if "n_positives" in g else -1,
            "sampling_s": float(np.sum(t)) if np.isfinite(t).all() else float("nan"),
        })
    return pd.DataFrame(rows, columns=PROTOCOL_COLUMNS)


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

#: the primary cost axis: seconds of audio an expert listens to (context included)
PRIMARY_BUDGET = "audio_seconds"


def overall_metric(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (strategy, unit, seed, round) with the budget columns and ``value``."""
    sel = results[(results["stratum"] == "all") & (results["metric"] == metric)]
    if sel.empty:
        raise KeyError(f"results: no overall rows for metric {metric!r}")
    extra = [c for c in REPLICATE_COLS if c in sel]
    return (
        sel[RUN_KEYS + extra + BUDGET_COLS + ["value"]]
        .sort_values(RUN_KEYS)
        .reset_index(drop=True)
    )


def reference_scores(full: pd.DataFrame, metric: str) -> dict[int, float] | float:
    """The full-supervision ``metric`` per replicate seed (a table with a ``seed`` column, one
    reference per replicate) or a single score (an old table without ``seed``)."""
    sel = full[(full["stratum"] == "all") & (full["metric"] == metric)]
    if sel.empty:
        raise KeyError(f"full supervision: no overall {metric!r}")
    if "seed" not in sel:
        return float(sel["value"].iloc[0])
    return {int(k): float(v) for k, v in zip(sel["seed"], sel["value"])}


def _ref_of(reference: Mapping[int, float] | float, seed: int) -> float:
    if isinstance(reference, Mapping):
        if int(seed) not in reference:
            raise KeyError(f"full supervision: no reference for replicate seed {seed}")
        return float(reference[int(seed)])
    return float(reference)


def learning_curves(
    results: pd.DataFrame,
    metric: str = "macro_ap",
    stratum: str = "all",
    stratum_value: str = "all",
    level: float = 0.95,
    budget: str = PRIMARY_BUDGET,
    reference: Mapping[int, float] | float | None = None,
) -> pd.DataFrame:
    """Mean learning curve and percentile-bootstrap interval over replicates per strategy and
    round (rounds are matched in budget across replicates).

    Returns ``DataFrame[strategy, unit, round, budget (mean), <budget cols mean>, mean, low,
    high, n_seeds]``; with ``reference`` (full-supervision score per replicate seed) also the
    ratio to the replicate's reference ``ratio, ratio_low, ratio_high`` (uncapped).
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
        mean, lo, hi, n = bootstrap_interval(g["value"], level)
        row = {
            "strategy": strategy,
            "unit": unit,
            "round": int(rnd),
            "budget": float(g[budget].mean()),
        }
        row.update({c: float(g[c].mean()) for c in BUDGET_COLS})
        row.update(mean=mean, low=lo, high=hi, n_seeds=n)
        if reference is not None:
            ratio = g["value"].to_numpy() / np.asarray([_ref_of(reference, s) for s in g["seed"]])
            r_mean, r_lo, r_hi, _ = bootstrap_interval(ratio, level)
            row.update(ratio=r_mean, ratio_low=r_lo, ratio_high=r_hi)
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


def common_window(results: pd.DataFrame, metric: str, budget: str) -> tuple[float, float]:
    """The budget window every run covers: from the largest first budget to the smallest final
    budget over all runs (so AULCs of all strategies integrate the same listening time)."""
    curves = overall_metric(results, metric)
    by_run = curves.groupby(["strategy", "unit", "seed"])[budget]
    lo, hi = float(by_run.min().max()), float(by_run.max().min())
    return lo, max(lo, hi)


def per_run_summary(
    results: pd.DataFrame,
    metric: str,
    target: TargetSpec | float,
    budget: str = PRIMARY_BUDGET,
    mid_budget: float | None = None,
    reference: Mapping[int, float] | float | None = None,
    window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Per (strategy, unit, seed): AULC over the common budget ``window`` (and up to
    ``mid_budget``), the metric at ``mid_budget`` and at the end, its ratio to the replicate's
    full-supervision reference, and the budget needed to reach the target in every budget
    unit (listening seconds first; units, segments, recordings as extra columns).

    ``target``: a :class:`TargetSpec` (fixed target score) or a fraction of the replicate's
    ``reference`` ("x % of full supervision", per replicate).
    """
    curves = overall_metric(results, metric)
    lo, hi = window if window is not None else (None, None)
    rows = []
    for (strategy, unit, seed), g in curves.groupby(["strategy", "unit", "seed"], sort=True):
        g = g.sort_values("round")
        x, y = g[budget].to_numpy(), g["value"].to_numpy()
        ref = _ref_of(reference, seed) if reference is not None else float("nan")
        if isinstance(target, TargetSpec):
            goal = target.target
        else:
            goal = float(target) * ref
        row = {
            "strategy": strategy,
            "unit": unit,
            "seed": int(seed),
            **{c: int(g[c].iloc[0]) for c in REPLICATE_COLS if c in g},
            "metric": metric,
            "full": ref,
            "target": goal,
            "aulc": aulc(x, y, x_max=hi, x_min=lo),
            "final": float(y[-1]),
            "final_ratio": float(y[-1] / ref) if ref > 0 else float("nan"),
            "final_budget": float(x[-1]),
        }
        row["aulc_ratio"] = row["aulc"] / ref if ref > 0 else float("nan")
        if mid_budget is not None:
            row["aulc_mid"] = aulc(x, y, x_max=mid_budget, x_min=lo)
            row["value_mid"] = (
                float(np.interp(mid_budget, x, y)) if x[0] <= mid_budget else float("nan")
            )
        for col in BUDGET_COLS:
            row[f"to_target_{col}"] = budget_to_target(g[col].to_numpy(), y, goal)
        row["reached_target"] = bool(np.isfinite(row[f"to_target_{budget}"]))
        rows.append(row)
    return pd.DataFrame(rows)


def strategy_summary(per_run: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and percentile-bootstrap interval over replicates of every numeric per-run column,
    per strategy (``to_target_*`` over the runs that reached the target)."""
    skip = {"strategy", "unit", "seed", "metric", "reached_target", *REPLICATE_COLS}
    value_cols = [
        c
        for c in per_run.columns
        if c not in skip and pd.api.types.is_numeric_dtype(per_run[c])
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
            mean, lo, hi, _ = bootstrap_interval(g[c], level)
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
    """The overall ``metric`` of the full-supervision table (mean over replicates)."""
    ref = reference_scores(full, metric)
    return float(np.mean(list(ref.values()))) if isinstance(ref, Mapping) else float(ref)


def mid_budget_of(results: pd.DataFrame, budget: str, mid: float = 0.0) -> float:
    """``mid`` or, when 0, half of the smallest final budget over the runs."""
    if mid and mid > 0:
        return float(mid)
    final = results.groupby(["strategy", "seed"])[budget].max()
    return float(final.min() / 2.0)


#: strategy pairs compared by default when both are simulated: the published claims (Top-K
#: entropy files vs random files, Lindholm et al. 2025; explicit strata vs the same strategy
#: without strata, McEwen, Bernard & Stowell 2025) and uncertainty vs random segments
DEFAULT_COMPARISONS = (
    ("topk_entropy_files", "random_files"),
    ("stratified_entropy", "max_entropy"),
    ("stratified_kmeans_entropy", "kmeans_entropy"),
    ("max_entropy", "random"),
    ("kmeans_entropy", "random"),
    ("random", "random_files"),
)


def _triple(row: Mapping[str, Any], col: str) -> list[float]:
    return [row[col], row[f"{col}_low"], row[f"{col}_high"]]


def summarise(
    results: pd.DataFrame,
    full: pd.DataFrame,
    params: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Per-run table, per-strategy summary (means and bootstrap intervals) and the claims dict.

    Budget axis (``budget_axis``, default listening seconds): AULC over the window every run
    covers (:func:`common_window`), the target = ``target_fraction`` x the replicate's own
    full-supervision reference, intervals = percentile bootstrap over replicates.
    """
    metric = params.get("metric", "macro_ap")
    budget = params.get("budget_axis", PRIMARY_BUDGET)
    fraction = float(params.get("target_fraction", 0.95))
    reference = reference_scores(full, metric)
    ref_values = list(reference.values()) if isinstance(reference, Mapping) else [reference]
    f_mean, f_lo, f_hi, _ = bootstrap_interval(ref_values)
    window = common_window(results, metric, budget)
    mid = float(params.get("mid_budget") or 0) or window[0] + (window[1] - window[0]) / 2.0
    per_run = per_run_summary(results, metric, fraction, budget, mid, reference, window)
    summary = strategy_summary(per_run)
    curves = learning_curves(results, metric, budget=budget, reference=reference)
    mean_cross, mean_cross_frac = {}, {}
    for strategy, g in curves.groupby("strategy"):
        mean_cross[strategy] = budget_to_target(
            g["budget"].to_numpy(), g["ratio"].to_numpy(), fraction
        )
        mean_cross_frac[strategy] = budget_to_target(
            g["audio_fraction"].to_numpy(), g["ratio"].to_numpy(), fraction
        )
    summary["to_target_mean_curve"] = summary["strategy"].map(mean_cross)
    n_split = int(results["split_seed"].nunique()) if "split_seed" in results else 1
    vary = bool(params.get("vary_split", True)) and "split_seed" in results
    data_seeds = sorted(set(results["data_seed"])) if "data_seed" in results else [-1]
    data_fraction = float(params.get("data_fraction", 1.0) or 1.0)
    claims: dict[str, Any] = {
        "metric": metric,
        "budget_axis": budget,
        "budget_note": "seconds of audio an expert listens to: a segment costs its exported clip "
        "(3 s + context_s each side, clipped at the file bounds), a recording its duration",
        "context_s": params.get("context_s"),
        "interval": f"95% percentile bootstrap over replicates ({N_BOOT} resamples)",
        "replicates": {
            "n": int(results["seed"].nunique()),
            "split": "varies (split_seed + replicate)" if vary or n_split > 1 else "fixed",
            "data": (
                f"varies: seeded subsample of {data_fraction:.0%} of every site's recordings"
                if data_seeds != [-1]
                else "fixed (the demo's generator seed; no data resample)"
            ),
            "active_learning": "varies (replicate seed)",
        },
        "full_supervision": f_mean,
        "full_supervision_interval": [f_mean, f_lo, f_hi],
        "full_supervision_per_seed": (
            {str(k): v for k, v in reference.items()} if isinstance(reference, Mapping) else {}
        ),
        "full_supervision_note": "probe trained on the replicate's whole pool at the same C: a "
        "reference, not a ceiling; ratios above 1 mean a labelled subset beat it",
        "target_fraction": fraction,
        "target": fraction * f_mean,
        "window": list(window),
        "mid_budget": mid,
        "n_seeds": int(results["seed"].nunique()),
        "strategies": {},
    }
    for _, row in summary.iterrows():
        entry: dict[str, Any] = {
            "unit": row["unit"],
            "n_seeds": int(row["n_seeds"]),
            "reached_target_runs": int(row["reached_target_runs"]),
            "to_target_mean_curve": row["to_target_mean_curve"],
        }
        for col in ("aulc", "aulc_ratio", "aulc_mid", "value_mid", "final", "final_ratio",
                    "final_budget"):
            entry[col] = _triple(row, col)
        for col in ("audio_seconds", "audio_fraction", "n_units", "n_segments", "n_recordings",
                    budget):
            entry[f"to_target_{col}"] = _triple(row, f"to_target_{col}")
        claims["strategies"][row["strategy"]] = entry
    claim = params.get("claim") or {}
    a, b = claim.get("strategy"), claim.get("baseline")
    if a in claims["strategies"] and b in claims["strategies"]:
        runs_a = per_run[per_run["strategy"] == a]
        max_budget = float(claim.get("max_budget", 0.15))
        reached = runs_a["to_target_audio_fraction"].to_numpy()
        cross = mean_cross_frac.get(a, np.nan)
        claims["claim"] = {
            "strategy": a,
            "baseline": b,
            "max_budget": max_budget,
            "max_budget_note": "fraction of the pool's audio listened to",
            "reaches_target_within_max_budget_runs": int(np.sum(reached <= max_budget)),
            "runs": len(runs_a),
            "mean_curve_reaches_target_at": cross,
            "mean_curve_within_max_budget": bool(np.isfinite(cross) and cross <= max_budget),
            "aulc_mid_disjoint_above_baseline": intervals_disjoint_above(summary, a, b, "aulc_mid"),
            "aulc_disjoint_above_baseline": intervals_disjoint_above(summary, a, b, "aulc"),
            "aulc_mid_difference_paired": paired_difference(per_run, a, b, "aulc_mid"),
            "aulc_difference_paired": paired_difference(per_run, a, b, "aulc"),
        }
    pairs = params.get("comparisons") or DEFAULT_COMPARISONS
    claims["comparisons"] = {}
    for a, b in (tuple(p) for p in pairs):
        if a in claims["strategies"] and b in claims["strategies"]:
            diffs = {c: paired_difference(per_run, a, b, c) for c in ("aulc", "aulc_mid", "final")}
            claims["comparisons"][f"{a} - {b}"] = {
                **diffs,
                "aulc_better": bool(diffs["aulc"]["low"] > 0),
                "aulc_worse": bool(diffs["aulc"]["high"] < 0),
            }
    return per_run, summary, claims


def paired_difference(per_run: pd.DataFrame, a: str, b: str, column: str) -> dict[str, float]:
    """Mean and percentile-bootstrap interval of the replicate-paired difference ``a - b`` of a
    per-run column (the same replicate seed = the same data, split and seed draw)."""
    pa_ = per_run[per_run["strategy"] == a].set_index("seed")[column]
    pb = per_run[per_run["strategy"] == b].set_index("seed")[column]
    diff = (pa_ - pb).dropna()
    mean, lo, hi, n = bootstrap_interval(diff.to_numpy())
    return {"mean": mean, "low": lo, "high": hi, "n": n}


def divergence_summary(loso: pd.DataFrame, mi: pd.DataFrame) -> dict[str, Any]:
    """LOSO drop vs divergence, with p-values only where the observations are independent.

    * ``per_setting``: the correlation over the strata of each setting (r, Spearman rho, n; no
      p-value: :func:`loso_correlation`);
    * ``correlation`` (per key and ``y~x``): :func:`across_settings_test` of those per-setting
      correlations (one value per independent setting), plus the pooled-strata r as a
      descriptive number only (strata pooled across settings are not independent);
    * ``mean_drop~mean_jsd (per setting)``: correlation of the settings' means (one point per
      setting, independent), with p-values;
    * ``settings``: per setting the mean divergence / drop and the MI fractions.
    """
    out: dict[str, Any] = {"correlation": {}, "per_setting": {}, "settings": {}}
    for y in ("drop_ap", "rel_drop_ap"):
        for x in ("jsd_label", "jsd_pred"):
            if x not in loso or y not in loso:
                continue
            per = loso_correlation(loso, x, y)
            for key, g in per.groupby("key", sort=True):
                name = f"{key}:{y}~{x}"
                pooled = correlate(loso.loc[loso["key"] == key, x], loso.loc[loso["key"] == key, y])
                out["correlation"][name] = {
                    **across_settings_test(g["pearson_r"]),
                    "pooled_strata_r_descriptive": pooled["pearson_r"],
                    "pooled_strata_n": pooled["n"],
                }
                out["per_setting"][name] = {
                    f"{r['dataset']}:{r['setting']}": {
                        "n": int(r["n"]),
                        "pearson_r": r["pearson_r"],
                        "spearman_rho": r["spearman_rho"],
                    }
                    for _, r in g.iterrows()
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


# --------------------------------------------------------------------------- README table


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(float(v), spec)


def _fmt_interval(t: Sequence[Any] | None, spec: str = ".3f", scale: float = 1.0) -> str:
    if not t or t[0] is None or not np.isfinite(t[0]):
        return "n/a"
    m, lo, hi = (float(x) * scale if x is not None else float("nan") for x in t)
    return f"{m:{spec}} [{_fmt(lo, spec)}, {_fmt(hi, spec)}]"


def _verdict(d: Mapping[str, Any]) -> str:
    lo, hi = d.get("low"), d.get("high")
    if lo is None or hi is None:
        return "untested"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no difference shown"


def strategy_table(claims: Mapping[str, Any], divergence: Mapping[str, Any] | None = None) -> str:
    """The README strategy table (Markdown) and the claim sentences, from ``claims.json`` (and
    the divergence sweep's ``summary.json``): listening seconds as the cost axis, intervals =
    percentile bootstrap over replicates."""
    metric = claims["metric"]
    frac = claims["target_fraction"]
    full = claims["full_supervision_interval"]
    rep = claims.get("replicates", {})
    lo, hi = claims["window"]
    lines = [
        (
            f"Cost axis: listening time ({claims.get('budget_note', '')}). "
            f"{rep.get('n', claims['n_seeds'])} replicates; split {rep.get('split', '?')}; data "
            f"{rep.get('data', '?')}. Intervals: {claims.get('interval', '')}. Full supervision "
            f"(probe on the replicate's whole pool): {metric} {_fmt_interval(full)}; "
            f"\"{frac:.0%} of full supervision\" is each run's ratio to its own replicate's "
            f"reference. AULC over the listening window every run covers, "
            f"{lo / 60:.1f}-{hi / 60:.1f} min."
        ),
        "",
        (
            f"| strategy | unit | AULC ({metric}) | AULC % of full | final {metric} | final % of "
            f"full | listening at the end (min) | listening to reach {frac:.0%} (min) | runs "
            f"reaching | units / segments / recordings to reach |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(
        claims["strategies"].items(),
        key=lambda kv: -(kv[1]["aulc"][0] if kv[1]["aulc"][0] is not None else -1),
    )
    for name, e in order:
        n = e["n_seeds"]
        reached = e["reached_target_runs"]
        to = e["to_target_audio_seconds"]
        if reached > 1:
            to_s = _fmt_interval(to, ".1f", 1 / 60)
        elif reached == 1:
            to_s = f"{_fmt(to[0] / 60, '.1f')} (one run)"
        else:
            to_s = "not reached"
        units = (
            " / ".join(
                _fmt(e[f"to_target_{c}"][0], ".0f") for c in ("n_units", "n_segments",
                                                             "n_recordings")
            )
            if reached
            else "-"
        )
        lines.append(
            f"| {name} | {e['unit']} | {_fmt_interval(e['aulc'])} | "
            f"{_fmt_interval(e['aulc_ratio'], '.0f', 100)}% | {_fmt_interval(e['final'])} | "
            f"{_fmt_interval(e['final_ratio'], '.0f', 100)}% | "
            f"{_fmt(e['final_budget'][0] / 60, '.1f')} | {to_s} | {reached}/{n} | {units} |"
        )
    lines += [
        "",
        (
            "Ratios are uncapped: above 100 % means the labelled subset's probe beat the probe "
            "trained on the whole pool (one L2-regularised fit at the same C - a reference, not "
            "a ceiling)."
        ),
        "",
    ]
    claim = claims.get("claim")
    if claim:
        d = claim["aulc_difference_paired"]
        cross = claim["mean_curve_reaches_target_at"]
        cross_s = (
            f"its mean curve reaches it at {_fmt(cross, '.1%')} of the pool's audio"
            if cross is not None
            else "its mean curve never reaches it"
        )
        lines.append(
            f"- Claim {claim['strategy']} vs {claim['baseline']}: reaches {frac:.0%} of full "
            f"supervision within {claim['max_budget']:.0%} of the pool's audio in "
            f"{claim['reaches_target_within_max_budget_runs']}/{claim['runs']} replicates "
            f"({cross_s}); paired AULC difference {_fmt(d['mean'], '+.3f')} "
            f"[{_fmt(d['low'], '+.3f')}, {_fmt(d['high'], '+.3f')}] (n={d['n']}): "
            f"{_verdict(d)}."
        )
    for pair, c in (claims.get("comparisons") or {}).items():
        d = c["aulc"]
        f = c["final"]
        lines.append(
            f"- {pair}: paired AULC difference {_fmt(d['mean'], '+.3f')} "
            f"[{_fmt(d['low'], '+.3f')}, {_fmt(d['high'], '+.3f')}], final "
            f"{_fmt(f['mean'], '+.3f')} [{_fmt(f['low'], '+.3f')}, {_fmt(f['high'], '+.3f')}] "
            f"(n={d['n']}): {_verdict(d)}."
        )
    for name, c in ((divergence or {}).get("correlation") or {}).items():
        if "n_settings" in c and name.endswith("drop_ap~jsd_label") and ":rel_" not in name:
            lines.append(
                f"- LOSO {name}: per-setting Pearson r median {_fmt(c['median_r'], '.2f')} "
                f"(mean {_fmt(c['mean_r'], '.2f')}, {c['positive_settings']}/{c['n_settings']} "
                f"settings > 0; t-test of Fisher z across settings p = {_fmt(c['t_p'], '.2g')}, "
                f"Wilcoxon p = {_fmt(c['wilcoxon_p'], '.2g')}; pooled strata r = "
                f"{_fmt(c['pooled_strata_r_descriptive'], '.2f')}, descriptive only)."
            )
        elif name.endswith("(per setting)"):
            lines.append(
                f"- LOSO {name}: Pearson r = {_fmt(c['pearson_r'], '.2f')} "
                f"(p = {_fmt(c['pearson_p'], '.2g')}), Spearman {_fmt(c['spearman_rho'], '.2f')} "
                f"(p = {_fmt(c['spearman_p'], '.2g')}), n = {c['n']} settings."
            )
    return "\n".join(lines) + "\n"


def table_to_file(claims_path: str, out: str, divergence_path: str | None = None) -> str:
    """Write (and return) :func:`strategy_table` of a ``claims.json`` to ``out`` (Markdown)."""
    import json
    from pathlib import Path

    from activepam.core.io import atomic_path

    claims = json.loads(Path(claims_path).read_text())
    div = json.loads(Path(divergence_path).read_text()) if divergence_path else None
    text = strategy_table(claims, div)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    return text


# --------------------------------------------------------------------------- file-level steps


def gather_to_files(
    run_paths: Sequence[str], full_path: str, sim: Mapping[str, Any], out: Mapping[str, str]
) -> dict[str, Any]:
    """Gather the runs and write ``results`` (Parquet), ``results_csv``, ``per_run`` (CSV),
    ``summary`` (CSV) and ``claims`` (JSON); returns the claims."""
    from activepam.core.io import write_csv, write_json, write_parquet

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
    from activepam.core.io import write_parquet

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
    from activepam.core.io import write_json, write_parquet

    loso = pd.concat([pd.read_parquet(p) for p in loso_paths], ignore_index=True)
    mi = pd.concat([pd.read_parquet(p) for p in mi_paths], ignore_index=True)
    summary = divergence_summary(loso, mi)
    write_parquet(loso, out["loso"], stage="simulate")
    write_parquet(mi, out["mi"], stage="simulate")
    write_json(jsonable(summary), out["summary"], stage="simulate")
    return summary
