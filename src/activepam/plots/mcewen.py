"""Figures of the McEwen, Bernard & Stowell 2025 kit (:mod:`activepam.simulation.mcewen`).

* :func:`stratum_bars_figure` - per-stratum score (mean and sd over seeds, final round) next
  to the number of segments selected in each stratum, strata by pool size (the preprint's
  ``stratified_evaluation`` plot);
* :func:`clustermap_figure` - a symmetric divergence matrix with rows and columns in the leaf
  order of an average-linkage tree (scipy), its dendrograms on the top and left (matplotlib
  only; the preprint draws ``seaborn.clustermap``).

Each returns a :class:`matplotlib.figure.Figure`; save with :func:`activepam.core.io.save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def stratum_bars_figure(
    table: pd.DataFrame, strategy: str, key: str, metric: str = "macro_f1", label: str = "F1-macro"
) -> Figure:
    """Horizontal bars of ``metric`` per stratum value of ``key`` (with its sd over seeds) and
    of the segments selected per stratum, for one strategy of a per-stratum table
    (:func:`activepam.simulation.mcewen.per_stratum_table`)."""
    g = table[(table["strategy"] == strategy) & (table["key"] == key)]
    g = g.sort_values(["n_pool", "stratum_value"], ascending=[False, True])
    n = len(g)
    fig = Figure(figsize=(8.5, max(3.0, 0.3 * n + 1.6)))
    ax0, ax1 = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(n)[::-1]
    score = g[metric].to_numpy(dtype=float) if metric in g else np.full(n, np.nan)
    sd = g[f"{metric}_sd"].to_numpy(dtype=float) if f"{metric}_sd" in g else None
    ax0.barh(y, np.nan_to_num(score), xerr=sd, color="tab:blue", alpha=0.8, error_kw={"lw": 0.8})
    ax0.set_yticks(y, g["stratum_value"].astype(str), fontsize=7)
    ax0.set_xlim(0, 1)
    ax0.set_xlabel(f"{label} per {key} (final round, mean +- sd over seeds)", fontsize=8)
    ax0.set_ylabel(key)
    ax1.barh(y, g["n_selected"].to_numpy(dtype=float), color="tab:orange", alpha=0.8)
    ax1.set_xlabel("segments selected (mean over seeds)", fontsize=8)
    for ax in (ax0, ax1):
        ax.grid(axis="x", linestyle="--", alpha=0.5)
    mean = np.nanmean(score) if np.isfinite(score).any() else float("nan")
    fig.suptitle(
        f"{strategy}: {label} per {key} (mean over {n} strata {mean:.3f}) and the "
        "segments it selected there",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def leaf_order(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Leaf order of an average-linkage tree on a symmetric distance matrix (NaN as the
    largest distance) and the linkage (None for fewer than 3 rows: the given order)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    M = np.asarray(matrix, dtype=np.float64)
    n = len(M)
    if n < 3:
        return np.arange(n), None
    finite = M[np.isfinite(M)]
    fill = float(finite.max()) if len(finite) else 1.0
    D = np.nan_to_num((M + M.T) / 2.0, nan=fill)
    np.fill_diagonal(D, 0.0)
    link = linkage(squareform(np.clip(D, 0.0, None), checks=False), method="average")
    return leaves_list(link), link


def clustermap_figure(
    matrix: np.ndarray,
    labels: Sequence[str],
    title: str,
    cbar_label: str = "Jensen-Shannon divergence (bits)",
) -> Figure:
    """A divergence matrix between strata, rows and columns in dendrogram order."""
    from scipy.cluster.hierarchy import dendrogram

    M = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    order, link = leaf_order(M)
    M = M[np.ix_(order, order)]
    names = [str(labels[i]) for i in order]
    size = min(12.0, 4.5 + 0.25 * n)
    fig = Figure(figsize=(size + 1.0, size))
    gs = fig.add_gridspec(2, 2, width_ratios=[1, 5], height_ratios=[1, 5], wspace=0.03, hspace=0.03)
    ax = fig.add_subplot(gs[1, 1])
    if link is not None:
        top = fig.add_subplot(gs[0, 1])
        left = fig.add_subplot(gs[1, 0])
        kw = {"no_labels": True, "color_threshold": 0, "above_threshold_color": "0.3"}
        dendrogram(link, ax=top, orientation="top", **kw)
        dendrogram(link, ax=left, orientation="left", **kw)
        top.set_xlim(0, 10 * n)
        left.set_ylim(10 * n, 0)  # leaf 0 at the top, as the heatmap's first row
        for a in (top, left):
            a.set_axis_off()
    finite = M[np.isfinite(M)]
    vmax = float(finite.max()) if len(finite) and finite.max() > 0 else 1.0
    im = ax.imshow(
        M, cmap="magma", vmin=0.0, vmax=vmax, aspect="auto", extent=(-0.5, n - 0.5, n - 0.5, -0.5)
    )
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.yaxis.tick_right()
    ax.set_yticks(range(n), names, fontsize=7)
    corner = fig.add_subplot(gs[0, 0])
    corner.set_axis_off()
    cax = corner.inset_axes((0.05, 0.55, 0.9, 0.15))
    fig.colorbar(im, cax=cax, orientation="horizontal")
    cax.set_title(cbar_label, fontsize=6)
    cax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    return fig
