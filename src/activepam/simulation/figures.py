"""Figures of the simulation mode (strategy comparison and stratified generalisation).

* :func:`learning_curves_figure` - metric vs listening minutes (context included), mean and 95 %
  bootstrap interval over replicates per strategy, with the full-supervision reference and its
  interval, and the same curves as % of each replicate's full supervision (uncapped);
* :func:`aulc_figure` - normalised AULC (whole curve and up to the mid budget) with intervals;
* :func:`budget_to_target_figure` - listening time needed to reach the target, per replicate;
* :func:`per_stratum_figure` - per-stratum metric (mean over seeds) at the final round, one
  heatmap per stratum key, and the spread (CV) of the per-stratum scores over the rounds;
* :func:`loso_figure` - leave-one-stratum-out drop vs the stratum's divergence (JSD to the
  rest), coloured by setting, with per-setting correlations and their test across settings;
* :func:`mi_figure` - mutual information between strata and species labels as a fraction of
  the label entropy (plug-in and permutation-corrected);
* :func:`jsd_heatmap_figure` - pairwise label JSD between the strata of one key.

Each function returns a :class:`matplotlib.figure.Figure` (no pyplot state); save it with
:func:`activepam.core.io.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

BUDGET_LABELS = {
    "audio_seconds": "listening time, minutes (context included; a recording = its duration)",
    "segment_fraction": "fraction of pool segments labelled",
    "recording_fraction": "fraction of pool recordings labelled",
    "audio_fraction": "listening time / pool audio duration (context included)",
    "unit_fraction": "fraction of pool units labelled",
    "n_units": "units labelled",
}
#: budget columns drawn in another unit (listening seconds as minutes)
BUDGET_SCALE = {"audio_seconds": 1 / 60}


def _x(values: Any, budget: str) -> np.ndarray:
    return np.asarray(values, dtype=float) * BUDGET_SCALE.get(budget, 1.0)


def _colours(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def learning_curves_figure(
    curves: pd.DataFrame,
    full_score: float,
    target: float,
    metric: str = "macro_ap",
    budget: str = "audio_seconds",
    max_budget: float | None = None,
    full_interval: Sequence[float] | None = None,
    target_fraction: float | None = None,
) -> Figure:
    """Mean learning curve and 95 % bootstrap band per strategy on the budget axis (listening
    minutes by default), with the full-supervision reference and its interval; with a ``ratio``
    column (:func:`activepam.simulation.summaries.learning_curves` with a reference) a second panel
    shows
    each curve as % of its replicate's full supervision, uncapped."""
    ratio = "ratio" in curves
    fig = Figure(figsize=(13 if ratio else 8, 5))
    axes = fig.subplots(1, 2 if ratio else 1, squeeze=False)[0]
    names = sorted(curves["strategy"].unique())
    colours = _colours(names)
    panels = [(axes[0], "mean", "low", "high")]
    if ratio:
        panels.append((axes[1], "ratio", "ratio_low", "ratio_high"))
    for ax, col, lo, hi in panels:
        scale = 100.0 if col == "ratio" else 1.0
        for name in names:
            g = curves[curves["strategy"] == name].sort_values("round")
            x = _x(g[budget], budget)
            ax.plot(
                x,
                g[col] * scale,
                marker="o",
                ms=3,
                color=colours[name],
                label=f"{name} ({g['unit'].iloc[0]}, n={int(g['n_seeds'].max())})",
            )
            ax.fill_between(x, g[lo] * scale, g[hi] * scale, color=colours[name], alpha=0.15, lw=0)
        ax.set_xlabel(BUDGET_LABELS.get(budget, budget))
        ax.grid(alpha=0.3)
    ax = axes[0]
    band = ""
    if full_interval is not None and len(full_interval) == 3 and full_interval[1] is not None:
        ax.axhspan(full_interval[1], full_interval[2], color="black", alpha=0.08, lw=0)
        band = f" [{full_interval[1]:.3f}, {full_interval[2]:.3f}]"
    ax.axhline(
        full_score, color="black", lw=1, ls="-", label=f"full supervision {full_score:.3f}{band}"
    )
    ax.axhline(target, color="black", lw=1, ls="--", label=f"target {target:.3f}")
    if max_budget and budget in ("audio_fraction", "recording_fraction", "segment_fraction"):
        ax.axvline(max_budget, color="grey", lw=1, ls=":", label=f"claim budget {max_budget:g}")
    ax.set_ylabel(f"{metric} (test set)")
    ax.set_title("Learning curves: mean and 95% bootstrap interval over replicates", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if ratio:
        ax = axes[1]
        ax.axhline(100, color="black", lw=1, label="100% = the replicate's full supervision")
        if target_fraction:
            ax.axhline(
                100 * target_fraction,
                color="black",
                lw=1,
                ls="--",
                label=f"{target_fraction:.0%} of full supervision",
            )
        ax.set_ylabel(f"{metric} as % of the replicate's full supervision (uncapped)")
        ax.set_title(
            "% of full supervision: the reference is one whole-pool fit, not a ceiling "
            "(> 100% = a subset beat it)",
            fontsize=8,
        )
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def aulc_figure(summary: pd.DataFrame, mid_budget: float) -> Figure:
    """AULC (whole curve and up to ``mid_budget``) per strategy with 95 % intervals."""
    fig = Figure(figsize=(8, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    s = summary.sort_values("aulc")
    y = np.arange(len(s))
    for ax, col, title in (
        (axes[0], "aulc", "whole curve"),
        (axes[1], "aulc_mid", f"up to budget {mid_budget:.4g}"),
    ):
        mean = s[col].to_numpy()
        err = np.vstack([mean - s[f"{col}_low"].to_numpy(), s[f"{col}_high"].to_numpy() - mean])
        ax.errorbar(mean, y, xerr=np.nan_to_num(err), fmt="o", capsize=3)
        ax.set_title(f"normalised AULC, {title}")
        ax.grid(alpha=0.3)
        ax.set_xlabel("AULC (mean metric over the budget)")
    axes[0].set_yticks(y, s["strategy"])
    fig.tight_layout()
    return fig


def budget_to_target_figure(
    per_run: pd.DataFrame, budget: str, max_budget: float | None = None
) -> Figure:
    """Budget (listening minutes by default) needed to reach the target, one dot per replicate
    (x = not reached, drawn at the run's final budget)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    col = f"to_target_{budget}"
    names = sorted(per_run["strategy"].unique())
    for i, name in enumerate(names):
        g = per_run[per_run["strategy"] == name]
        v = g[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(len(v))
        ax.plot(_x(v[ok], budget), i + jitter[ok], "o", color="C0")
        if (~ok).any():
            ax.plot(_x(g["final_budget"].to_numpy()[~ok], budget), i + jitter[~ok], "x", color="C3")
    if max_budget and budget in ("audio_fraction", "recording_fraction", "segment_fraction"):
        ax.axvline(max_budget, color="grey", ls=":", lw=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(
        f"{BUDGET_LABELS.get(budget, budget)} to reach the target (x: not reached)", fontsize=8
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def per_stratum_figure(
    results: pd.DataFrame,
    metric: str = "macro_ap",
    keys: Sequence[str] | None = None,
    budget: str = "audio_seconds",
) -> Figure:
    """Per-stratum ``metric`` at the final round (heatmap: strategies x stratum values) and
    the coefficient of variation across strata over the budget, one row per stratum key."""
    res = results[results["stratum"] != "all"]
    keys = list(keys or sorted(res["stratum"].unique()))
    fig = Figure(figsize=(12, 3.2 * max(len(keys), 1)))
    if not keys:
        fig.add_subplot().text(0.5, 0.5, "no strata", ha="center")
        return fig
    axes = fig.subplots(len(keys), 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    final_round = results.groupby(["strategy", "seed"])["round"].transform("max")
    final = results[results["round"] == final_round]
    names = sorted(results["strategy"].unique())
    colours = _colours(names)
    for row, key in enumerate(keys):
        sel = final[
            (final["stratum"] == key)
            & (final["metric"] == metric)
            & (final["stratum_value"] != "all")
        ]
        table = sel.groupby(["strategy", "stratum_value"])["value"].mean().unstack()
        ax = axes[row, 0]
        if table.empty:
            ax.set_axis_off()
        else:
            im = ax.imshow(
                table.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=1
            )
            ax.set_yticks(range(len(table.index)), table.index, fontsize=7)
            ax.set_xticks(
                range(len(table.columns)), table.columns, rotation=45, ha="right", fontsize=7
            )
            ax.set_title(f"{metric} per {key} at the final round (mean over seeds)", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.03)
        ax = axes[row, 1]
        cv = results[(results["stratum"] == key) & (results["metric"] == f"cv_{metric}")]
        for name in names:
            g = cv[cv["strategy"] == name].groupby("round")[[budget, "value"]].mean()
            ax.plot(_x(g[budget], budget), g["value"], color=colours[name], label=name, lw=1)
        ax.set_title(f"spread across {key}: CV of {metric}", fontsize=9)
        ax.set_xlabel(BUDGET_LABELS.get(budget, budget), fontsize=8)
        ax.grid(alpha=0.3)
        if row == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def loso_figure(
    loso: pd.DataFrame,
    correlations: Mapping[str, Mapping[str, Any]] | None = None,
    x: str = "jsd_label",
    y: str = "drop_ap",
) -> Figure:
    """Scatter of the leave-one-stratum-out drop vs divergence, one panel per stratum key.

    Points are coloured by ``turnover`` when the table has it (a divergence sweep), else by
    ``setting``.
    """
    keys = sorted(loso["key"].unique())
    fig = Figure(figsize=(5.5 * max(len(keys), 1), 4.5))
    axes = fig.subplots(1, max(len(keys), 1), squeeze=False)[0]
    by_turnover = "turnover" in loso and pd.api.types.is_numeric_dtype(loso["turnover"])
    settings = sorted(loso["setting"].astype(str).unique())
    colours = _colours(settings)
    for ax, key in zip(axes, keys):
        g = loso[loso["key"] == key]
        if by_turnover:
            sc = ax.scatter(g[x], g[y], c=g["turnover"], cmap="viridis", vmin=0, vmax=1, s=22)
            fig.colorbar(sc, ax=ax, label="demo.turnover")
        else:
            for setting in settings:
                h = g[g["setting"].astype(str) == setting]
                ax.scatter(h[x], h[y], color=colours[setting], label=setting, s=22)
            ax.legend(fontsize=7, title="setting", title_fontsize=7)
        ax.axhline(0, color="grey", lw=0.8)
        c = (correlations or {}).get(f"{key}:{y}~{x}")
        ax.set_title(_loso_title(key, c), fontsize=8)
        ax.set_xlabel(f"stratum divergence from the rest ({x}, JSD bits)")
        ax.set_ylabel(f"leave-one-stratum-out {y} (in - out)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _loso_title(key: str, c: Mapping[str, Any] | None) -> str:
    """Panel title: the across-settings test of per-setting correlations, or the per-setting
    r of a single setting (never a p-value over pooled strata)."""
    if not c:
        return key

    def f(v: Any, spec: str) -> str:
        return "n/a" if v is None or not np.isfinite(v) else format(float(v), spec)

    if "n_settings" in c:
        return (
            f"{key}: per-setting r median {f(c.get('median_r'), '.2f')}, "
            f"{c.get('positive_settings', 0)}/{c['n_settings']} settings > 0\n"
            f"across settings: t-test (Fisher z) p={f(c.get('t_p'), '.2g')}, "
            f"Wilcoxon p={f(c.get('wilcoxon_p'), '.2g')}"
        )
    return (
        f"{key}: r={f(c.get('pearson_r'), '.2f')}, Spearman={f(c.get('spearman_rho'), '.2f')} "
        f"over {c.get('n', 0)} strata of one setting (no p-value)"
    )


def mi_figure(mi: pd.DataFrame) -> Figure:
    """MI(stratum; species) as a fraction of H(species): plug-in and permutation-corrected.

    A divergence sweep (``turnover`` column) is drawn as lines over turnover (mean over demo
    seeds, dots = seeds); otherwise bars per stratum key and setting.
    """
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    keys = list(dict.fromkeys(mi["key"]))
    colours = _colours(keys)
    if "turnover" in mi and pd.api.types.is_numeric_dtype(mi["turnover"]):
        for key in keys:
            g = mi[mi["key"] == key]
            mean = g.groupby("turnover")[["fraction", "fraction_corrected"]].mean()
            ax.plot(mean.index, mean["fraction_corrected"], "o-", color=colours[key], label=key)
            ax.plot(mean.index, mean["fraction"], ":", color=colours[key], alpha=0.6)
            ax.scatter(g["turnover"], g["fraction_corrected"], color=colours[key], s=8, alpha=0.5)
        ax.set_xlabel("demo.turnover (between-stratum divergence knob)")
        ax.set_title(
            "Species-label entropy explained by strata (solid: permutation-corrected, "
            "dotted: plug-in)",
            fontsize=9,
        )
    else:
        mi = mi.copy()
        mi["label"] = mi["dataset"].astype(str) + ":" + mi["setting"].astype(str)
        labels = list(dict.fromkeys(mi["label"]))
        width = 0.8 / max(len(labels), 1)
        lab_colours = _colours(labels)
        for i, lab in enumerate(labels):
            g = mi[mi["label"] == lab].set_index("key").reindex(keys)
            xs = np.arange(len(keys)) + i * width
            ax.bar(xs, g["fraction"], width, color=lab_colours[lab], alpha=0.35)
            ax.bar(xs, g["fraction_corrected"], width, color=lab_colours[lab], label=lab)
        ax.set_xticks(
            np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=20, ha="right", fontsize=8
        )
        ax.set_title(
            "Species-label entropy explained by strata (solid: permutation-corrected, "
            "pale: plug-in)",
            fontsize=9,
        )
    ax.set_ylabel("I(stratum; species) / H(species)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def jsd_heatmap_figure(jsd: pd.DataFrame, key: str, value: str = "jsd_label") -> Figure:
    """Pairwise JSD between the strata of ``key`` (one dataset/setting)."""
    g = jsd[jsd["key"] == key]
    table = g.pivot_table(index="a", columns="b", values=value, aggfunc="mean")
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot()
    im = ax.imshow(table.to_numpy(dtype=float), cmap="magma", vmin=0, vmax=1)
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(table.index)), table.index, fontsize=7)
    ax.set_title(f"Jensen-Shannon divergence between {key} strata ({value})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def write_strategy_figures(
    results: pd.DataFrame,
    per_run: pd.DataFrame,
    summary: pd.DataFrame,
    claims: Mapping[str, Any],
    out: Mapping[str, str],
    strata: Sequence[str] | None = None,
) -> None:
    """Write ``learning_curves``, ``aulc``, ``to_target`` and ``per_stratum`` figures."""
    from activepam.core.io import save_figure
    from activepam.simulation.summaries import learning_curves

    metric, budget = claims["metric"], claims["budget_axis"]
    per_seed = claims.get("full_supervision_per_seed") or None
    reference = {int(k): float(v) for k, v in per_seed.items()} if per_seed else None
    curves = learning_curves(results, metric, budget=budget, reference=reference)
    max_budget = (claims.get("claim") or {}).get("max_budget")
    save_figure(
        learning_curves_figure(
            curves,
            claims["full_supervision"],
            claims["target"],
            metric,
            budget,
            max_budget,
            claims.get("full_supervision_interval"),
            claims.get("target_fraction"),
        ),
        out["learning_curves"],
        stage="simulate",
    )
    save_figure(aulc_figure(summary, claims["mid_budget"]), out["aulc"], stage="simulate")
    save_figure(
        budget_to_target_figure(per_run, budget, max_budget), out["to_target"], stage="simulate"
    )
    save_figure(
        per_stratum_figure(results, metric, strata, budget), out["per_stratum"], stage="simulate"
    )


def write_stratified_figures(
    loso: pd.DataFrame,
    mi: pd.DataFrame,
    jsd: pd.DataFrame | None,
    summary: Mapping[str, Any] | None,
    out: Mapping[str, str],
    jsd_key: str = "site",
) -> None:
    """Write ``loso`` (scatter), ``mi`` (bars) and, when given, ``jsd`` (heatmap) figures."""
    from activepam.core.io import save_figure
    from activepam.simulation.claims import divergence_summary
    from activepam.simulation.stratified import loso_correlation

    corr = (summary or {}).get("correlation")
    if corr is None and loso[["dataset", "setting"]].drop_duplicates().shape[0] > 1:
        corr = divergence_summary(loso, mi)["correlation"]
    elif corr is None:  # one setting (the demo): its correlation over strata, no p-value
        corr = {
            f"{r['key']}:drop_ap~jsd_label": r.to_dict()
            for _, r in loso_correlation(loso).iterrows()
        }
    save_figure(loso_figure(loso, corr), out["loso"], stage="simulate")
    save_figure(mi_figure(mi), out["mi"], stage="simulate")
    if jsd is not None and "jsd" in out:
        save_figure(jsd_heatmap_figure(jsd, jsd_key), out["jsd"], stage="simulate")
