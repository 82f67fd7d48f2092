"""First figures of the BirdNET detections (input: ``results/detect/segments.parquet``).

* :func:`detections_site_hour` - heatmap of detections per site x hour of day (UTC);
* :func:`species_rank_frequency` - rank-frequency of the top-1 species (log y);
* :func:`uncertainty_histograms` - histograms of the per-segment uncertainty columns.

A segment counts as a detection when ``top1_confidence >= min_confidence`` (plots.min_confidence).
Each function returns a :class:`matplotlib.figure.Figure`; :func:`plot_detection_figures`
writes all three atomically.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from activepam.core.io import save_figure

UNKNOWN_SITE = "(no site)"
UNCERTAINTY_COLUMNS: tuple[str, ...] = (
    "max_binary_entropy",
    "mean_binary_entropy",
    "margin",
    "top1_confidence",
)


def detections(segments: pd.DataFrame, min_confidence: float) -> pd.DataFrame:
    """Segments whose top-1 confidence is at least ``min_confidence``."""
    return segments[segments["top1_confidence"] >= min_confidence]


def species_label(label: str) -> str:
    """Readable name of a BirdNET label ``Scientific_Common`` (the common name)."""
    label = str(label)
    return label.split("_", 1)[1] if "_" in label else label


def site_hour_counts(segments: pd.DataFrame, min_confidence: float) -> pd.DataFrame:
    """Detections per site (rows, north to south when lat is known) x UTC hour 0-23 (columns)."""
    det = detections(segments, min_confidence)
    site = det["site"].astype(object).where(det["site"].notna(), UNKNOWN_SITE)
    hour = pd.to_datetime(det["segment_time"], utc=True).dt.hour
    table = pd.crosstab(site, hour).reindex(columns=range(24), fill_value=0)
    all_sites = segments["site"].astype(object).where(segments["site"].notna(), UNKNOWN_SITE)
    order = _site_order(segments.assign(site=all_sites))
    return table.reindex(index=order, fill_value=0).rename_axis(index="site", columns="hour")


def _site_order(segments: pd.DataFrame) -> list[str]:
    if "lat" in segments and segments["lat"].notna().any():
        lat = segments.groupby("site")["lat"].mean()
        return list(lat.sort_values(ascending=False, na_position="last").index)
    return sorted(segments["site"].unique().tolist())


def detections_site_hour(segments: pd.DataFrame, min_confidence: float = 0.1) -> Figure:
    """Heatmap of detections per site x hour of day (UTC), counts written in the cells."""
    counts = site_hour_counts(segments, min_confidence)
    n_sites = max(1, len(counts))
    fig = Figure(figsize=(11, 1.6 + 0.38 * n_sites), layout="constrained")
    ax = fig.add_subplot()
    if counts.empty:
        return _empty(fig, ax, "no segments")
    values = counts.to_numpy()
    im = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(24), [str(h) for h in range(24)])
    ax.set_yticks(range(len(counts)), counts.index.tolist())
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("site (north to south)" if "lat" in segments else "site")
    det = detections(segments, min_confidence)
    no_time = int(pd.to_datetime(det["segment_time"], utc=True).isna().sum())
    ax.set_title(
        f"Detections per site and hour (top-1 confidence >= {min_confidence:g}; "
        f"{int(values.sum())} of {len(segments)} segments"
        + (f"; {no_time} detections without a time not shown)" if no_time else ")")
    )
    vmax = values.max() if values.size else 0
    if len(counts) <= 40:
        for (i, j), v in np.ndenumerate(values):
            if v:
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > 0.6 * vmax else "white",
                )
    fig.colorbar(im, ax=ax, label="detections", shrink=0.9)
    return fig


def species_counts(segments: pd.DataFrame, min_confidence: float) -> pd.Series:
    """Detections per top-1 species, most frequent first (ties by name)."""
    det = detections(segments, min_confidence)
    counts = det["top1_species"].value_counts()
    return counts.sort_index().sort_values(ascending=False, kind="stable")


def species_rank_frequency(
    segments: pd.DataFrame, min_confidence: float = 0.1, top_species: int = 25
) -> Figure:
    """Rank-frequency of the top-1 species (log y); the ``top_species`` first are labelled."""
    counts = species_counts(segments, min_confidence)
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    ax = fig.add_subplot()
    if counts.empty:
        return _empty(fig, ax, f"no detections with top-1 confidence >= {min_confidence:g}")
    ranks = np.arange(1, len(counts) + 1)
    n_label = min(top_species, len(counts))
    ax.plot(ranks, counts.to_numpy(), color="0.6", lw=1, zorder=1)
    ax.scatter(
        ranks[:n_label],
        counts.to_numpy()[:n_label],
        s=22,
        color="C0",
        zorder=2,
        label=f"top {n_label} (labelled)",
    )
    if len(counts) > n_label:
        ax.scatter(
            ranks[n_label:],
            counts.to_numpy()[n_label:],
            s=10,
            color="0.5",
            zorder=2,
            label="other species",
        )
    ax.set_yscale("log")
    ax.set_xticks(
        ranks[:n_label],
        [f"{species_label(s)}" for s in counts.index[:n_label]],
        rotation=60,
        ha="right",
        rotation_mode="anchor",
        fontsize=8,
    )
    ax.set_xlim(0.3, len(counts) + 0.7)
    ax.set_xlabel("species, by rank of detection count")
    ax.set_ylabel("detections (log scale)")
    ax.set_title(
        f"Rank-frequency of top-1 species ({len(counts)} species, "
        f"{int(counts.sum())} detections with confidence >= {min_confidence:g})"
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def uncertainty_histograms(
    segments: pd.DataFrame, bins: int = 40, min_confidence: float | None = None
) -> Figure:
    """2 x 2 histograms of max/mean binary entropy, margin and top-1 confidence (all segments).

    ``min_confidence`` (when given) is marked on the top-1 confidence panel.
    """
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, col in zip(axes, UNCERTAINTY_COLUMNS):
        values = (
            pd.to_numeric(segments[col], errors="coerce").dropna().to_numpy()
            if col in segments
            else np.array([])
        )
        if not len(values):
            _empty(fig, ax, f"no {col} values")
            ax.set_title(col)
            continue
        ax.hist(values, bins=bins, color="C0", alpha=0.85)
        med = float(np.median(values))
        ax.axvline(med, color="C3", ls="--", lw=1, label=f"median {med:.3g}")
        if col == "top1_confidence" and min_confidence is not None:
            ax.axvline(
                min_confidence,
                color="k",
                ls=":",
                lw=1,
                label=f"detection threshold {min_confidence:g}",
            )
        ax.set_title(col)
        ax.set_xlabel(col)
        ax.set_ylabel("segments")
        ax.legend(fontsize=8)
    fig.suptitle(f"Uncertainty of {len(segments)} segments")
    return fig


def _empty(fig: Figure, ax, message: str) -> Figure:  # noqa: ANN001 - an Axes
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def plot_detection_figures(
    segments: pd.DataFrame,
    site_hour_path: str | os.PathLike[str],
    rank_frequency_path: str | os.PathLike[str],
    uncertainty_path: str | os.PathLike[str],
    min_confidence: float = 0.1,
    top_species: int = 25,
) -> None:
    """Write the three detection figures atomically."""
    save_figure(detections_site_hour(segments, min_confidence), site_hour_path)
    save_figure(species_rank_frequency(segments, min_confidence, top_species), rank_frequency_path)
    save_figure(uncertainty_histograms(segments, min_confidence=min_confidence), uncertainty_path)
