"""Gathering simulated runs: per-run table, per-strategy summary and ``claims.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.simulation.divergence import correlate
from activepam.simulation.stratified import across_settings_test, loso_correlation
from activepam.simulation.summaries import (
    N_BOOT,
    PRIMARY_BUDGET,
    bootstrap_interval,
    budget_to_target,
    common_window,
    intervals_disjoint_above,
    learning_curves,
    per_run_summary,
    reference_scores,
    strategy_summary,
)


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
        for col in (
            "aulc",
            "aulc_ratio",
            "aulc_mid",
            "value_mid",
            "final",
            "final_ratio",
            "final_budget",
        ):
            entry[col] = _triple(row, col)
        for col in (
            "audio_seconds",
            "audio_fraction",
            "n_units",
            "n_segments",
            "n_recordings",
            budget,
        ):
            entry[f"to_target_{col}"] = _triple(row, f"to_target_{col}")
        claims["strategies"][row["strategy"]] = entry
    claim = params.get("claim") or {}
    a, b = claim.get("strategy"), claim.get("baseline")
    if a is not None and b is not None and a in claims["strategies"] and b in claims["strategies"]:
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
