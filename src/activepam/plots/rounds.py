"""Figures of the active-learning rounds (inputs: metrics.json / history / confusion tables).

* :func:`learning_curve` - headline test metrics vs labelled units so far, one panel per
  metric, with BirdNET's baseline as a dashed line;
* :func:`strata_heatmap` - AP and F1 of one round per stratum level (site, habitat, season,
  diel period), with the coefficient of variation across levels in the row labels;
* :func:`confusion_figure` - the most confused (true -> predicted) species pairs on the test
  set as a small matrix;
* :func:`species_ap_figure` - per-species test AP vs the species' positive training labels
  (how AP grows with label frequency), BirdNET fallback species marked.

Each returns a :class:`matplotlib.figure.Figure` (no pyplot); :func:`plot_round_figures`
writes all three atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from activepam.core.io import save_figure

CURVE_METRICS: tuple[str, ...] = ("macro_ap", "micro_ap", "macro_auroc", "macro_f1")
HEATMAP_METRICS: tuple[str, ...] = ("macro_ap", "macro_f1")


def _short(label: str) -> str:
    return label.split("_", 1)[1] if "_" in str(label) else str(label)


def learning_curve(history: pd.DataFrame, metrics: Sequence[str] = CURVE_METRICS) -> Figure:
    """Each metric vs ``n_labelled_units`` (model, solid) and the BirdNET baseline (dashed)."""
    fig = Figure(figsize=(3.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = history["n_labelled_units"].to_numpy(dtype=float)
    for ax, m in zip(axes, metrics):
        y = pd.to_numeric(history[m], errors="coerce").to_numpy(dtype=float)
        ax.plot(x, y, "o-", color="C0", label="retrained probe")
        for xi, yi, r in zip(x, y, history["round"]):
            if np.isfinite(yi):
                ax.annotate(
                    str(r).replace("round_", "r"),
                    (xi, yi),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
        base = pd.to_numeric(history.get(f"baseline_{m}"), errors="coerce")
        if base is not None and np.isfinite(base).any():
            ax.axhline(float(np.nanmean(base)), color="C3", ls="--", label="BirdNET baseline")
        ax.set_xlabel("labelled units so far")
        ax.set_title(m.replace("_", " "))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    rec = history.get("stop_recommendation")
    if rec is not None and rec.notna().any():  # the stopping rule after the last round
        last = history.iloc[-1]
        kappa = last.get("stop_kappa")
        gain = last.get("stop_expected_gain")
        parts = [f"stopping rule: {last['stop_recommendation']}"]
        if kappa is not None and pd.notna(kappa):
            parts.append(f"kappa vs previous round {float(kappa):.3f}")
        if gain is not None and pd.notna(gain):
            parts.append(f"expected gain of the next batch {float(gain):+.3f}")
        fig.suptitle("; ".join(parts), fontsize=8)
    return fig


def strata_table(metrics: Mapping[str, Any], metric: str) -> pd.DataFrame:
    """Rows ``key=level`` (grouped by key), one column: ``metric`` of that stratum level."""
    rows = []
    for key, block in (metrics.get("strata") or {}).items():
        for level, vals in block.get("levels", {}).items():
            rows.append(
                {
                    "stratum": f"{key}={level}",
                    "key": key,
                    "value": vals.get(metric),
                    "n_units": vals.get("n_units", 0),
                }
            )
    return pd.DataFrame(rows, columns=["stratum", "key", "value", "n_units"])


def strata_heatmap(metrics: Mapping[str, Any], which: Sequence[str] = HEATMAP_METRICS) -> Figure:
    """Heatmap of ``which`` metrics per stratum level of one round; CV per key in the labels."""
    tables = [strata_table(metrics, m) for m in which]
    base = tables[0]
    n = max(1, len(base))
    fig = Figure(figsize=(2.2 + 1.6 * len(which), 1.2 + 0.28 * n), layout="constrained")
    ax = fig.add_subplot()
    if base.empty:
        ax.text(0.5, 0.5, "no strata", ha="center", va="center")
        ax.set_axis_off()
        return fig
    values = np.column_stack(
        [pd.to_numeric(t["value"], errors="coerce").to_numpy(float) for t in tables]
    )
    im = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    cv = {key: (metrics["strata"][key].get("cv") or {}) for key in base["key"].unique()}
    labels = [f"{s} (n={int(k)})" for s, k in zip(base["stratum"], base["n_units"])]
    ax.set_yticks(range(len(base)), labels, fontsize=7)
    cols = []
    for m in which:
        spread = "; ".join(f"{k} {cv[k].get(m):.2f}" for k in cv if cv[k].get(m) is not None)
        cols.append(f"{m}\nCV: {spread}" if spread else m)
    ax.set_xticks(range(len(which)), [c.replace("; ", "\n") for c in cols], fontsize=6)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if values[i, j] < 0.6 else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.6)
    ax.set_title(f"{metrics.get('round', '')}: test metrics per stratum", fontsize=9)
    return fig


def confusion_figure(confusion: pd.DataFrame, top: int = 10, title: str = "") -> Figure:
    """Matrix of the ``top`` most confused (true -> predicted) species pairs."""
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.add_subplot()
    head = confusion.head(top)
    if head.empty:
        ax.text(0.5, 0.5, "no confusions on the test set", ha="center", va="center")
        ax.set_axis_off()
        return fig
    true = list(dict.fromkeys(head["true"]))
    pred = list(dict.fromkeys(head["predicted"]))
    mat = np.zeros((len(true), len(pred)))
    for r in head.itertuples(index=False):
        mat[true.index(r.true), pred.index(r.predicted)] = r.count
    ax.imshow(mat, cmap="Reds", aspect="auto")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if mat[i, j]:
                ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(true)), [_short(t) for t in true], fontsize=7)
    ax.set_xticks(range(len(pred)), [_short(p) for p in pred], fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("present but missed")
    ax.set_xlabel("absent but predicted")
    ax.set_title(title or f"{top} most confused species pairs", fontsize=9)
    return fig


def species_ap_figure(species: pd.DataFrame, title: str = "") -> Figure:
    """Test AP of each species vs its positive training labels (log x), sized by test
    positives; species still scored by BirdNET (no probe) drawn as open circles."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    df = species[pd.to_numeric(species["ap"], errors="coerce").notna()]
    if df.empty:
        ax.text(0.5, 0.5, "no species with test positives", ha="center", va="center")
        ax.set_axis_off()
        return fig
    x = df["train_positives"].to_numpy(float) + 1.0
    size = 20 + 15 * df["test_positives"].to_numpy(float)
    probe = (df["model"] != "birdnet").to_numpy()
    ax.scatter(x[probe], df["ap"][probe], s=size[probe], color="C0", label="retrained probe")
    ax.scatter(
        x[~probe],
        df["ap"][~probe],
        s=size[~probe],
        facecolors="none",
        edgecolors="C3",
        label="BirdNET fallback",
    )
    for xi, yi, sp in zip(x, df["ap"], df["species"]):
        ax.annotate(_short(sp), (xi, yi), fontsize=6, textcoords="offset points", xytext=(3, 2))
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("positive training labels + 1")
    ax.set_ylabel("test average precision")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or "per-species AP vs label frequency", fontsize=9)
    return fig


def plot_round_figures(
    history: pd.DataFrame,
    metrics: Mapping[str, Any],
    confusion: pd.DataFrame,
    curve_out: str | os.PathLike[str],
    strata_out: str | os.PathLike[str],
    confusion_out: str | os.PathLike[str],
    top_pairs: int = 10,
    species: pd.DataFrame | None = None,
    species_out: str | os.PathLike[str] | None = None,
) -> None:
    """Write the three round figures (``metrics``: a round's strata_metrics.json, or any
    mapping with ``round`` and ``strata.<key>.levels/cv``)."""
    save_figure(learning_curve(history), curve_out, stage="plots")
    save_figure(strata_heatmap(metrics), strata_out, stage="plots")
    save_figure(
        confusion_figure(
            confusion, top_pairs, f"{metrics.get('round', '')}: most confused species pairs"
        ),
        confusion_out,
        stage="plots",
    )
    if species is not None and species_out is not None:
        save_figure(
            species_ap_figure(
                species, f"{metrics.get('round', '')}: per-species AP vs label frequency"
            ),
            species_out,
            stage="plots",
        )
