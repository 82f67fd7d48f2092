"""The evaluation figures readers of the field's papers look for, per round.

* :func:`reliability_diagram` - calibration: observed frequency against mean predicted
  probability in equal-width bins, pooled over species and for the commonest species, with
  the expected calibration error (ECE) in the legend;
* :func:`long_tail` - per-species AP (or F1) against the number of training positives on a
  log axis, coloured by how many strata the species' training labels cover;
* :func:`diel_heatmaps` - the round model's predicted activity per hour of day (mean score
  per UTC hour, or local solar hour when given) for species x site, over all unlabelled audio;
* :func:`embedding_map` - a 2-D map of the embeddings (UMAP when umap-learn is installed,
  else PCA: the axis labels say which) of the pool, the labelled and the newly sampled units.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from activepam.core.io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def calibration_bins(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean prediction, observed frequency and count per equal-width bin (empty bins NaN)."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    n = np.bincount(idx, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=bins) / n
        freq = np.bincount(idx, weights=y, minlength=bins) / n
    return mean_p, freq, n


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """:func:`activepam.core.metrics.expected_calibration_error` over the known (finite) cells."""
    from activepam.core.metrics import expected_calibration_error

    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    ok = np.isfinite(y) & np.isfinite(p)
    return expected_calibration_error(y[ok], p[ok], bins)


def reliability_diagram(
    Y: np.ndarray,
    P: np.ndarray,
    species: Sequence[str],
    out: str | Path,
    top: int = 10,
    bins: int = 10,
    title: str = "",
) -> Path:
    """Pooled diagram plus one small panel per commonest species (most test positives).

    ``Y`` / ``P``: test units x species truth (0/1, NaN = unknown) and predicted probability."""
    plt = _plt()
    Y = np.asarray(Y, dtype=float)
    P = np.asarray(P, dtype=float)
    ranked = np.argsort(-np.nansum(Y, axis=0), kind="stable")[:top]
    order = [j for j in ranked if np.nansum(Y[:, j]) > 0]
    ncol = 4
    nrow = 1 + int(np.ceil(len(order) / ncol))
    fig = plt.figure(figsize=(3.0 * ncol, 2.7 * nrow))
    ax0 = fig.add_subplot(nrow, 2, 1)
    mean_p, freq, n = calibration_bins(Y, P, bins)
    ax0.plot([0, 1], [0, 1], ls=":", color="0.5")
    ok = n > 0
    ax0.plot(
        mean_p[ok],
        freq[ok],
        marker="o",
        color="C0",
        label=f"all species (ECE {ece(Y, P, bins):.3f})",
    )
    ax0.set_xlabel("mean predicted probability")
    ax0.set_ylabel("observed frequency")
    ax0.set_xlim(0, 1)
    ax0.set_ylim(0, 1)
    ax0.legend(fontsize=7, loc="upper left")
    ax0.set_title(title or "reliability diagram", fontsize=9)
    axh = fig.add_subplot(nrow, 2, 2)
    centres = (np.arange(bins) + 0.5) / bins
    axh.bar(centres, n, width=1 / bins, color="0.6")
    axh.set_yscale("log")
    axh.set_xlabel("predicted probability")
    axh.set_ylabel("units x species")
    for i, j in enumerate(order):
        ax = fig.add_subplot(nrow, ncol, ncol + i + 1)
        mp, fr, nn = calibration_bins(Y[:, j], P[:, j], bins)
        ax.plot([0, 1], [0, 1], ls=":", color="0.5")
        k = nn > 0
        ax.plot(mp[k], fr[k], marker=".", color="C1")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(
            f"{str(species[j]).split('_')[-1]} (ECE {ece(Y[:, j], P[:, j], bins):.2f}, "
            f"n+={int(np.nansum(Y[:, j]))})",
            fontsize=7,
        )
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return save_figure(fig, out, stage="plots")


def long_tail(
    per_species: pd.DataFrame, out: str | Path, metric: str = "ap", title: str = ""
) -> Path:
    """``per_species``: species, n_train_positive, ``metric``, strata_covered (int)."""
    plt = _plt()
    df = per_species.dropna(subset=[metric])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.maximum(df["n_train_positive"].to_numpy(dtype=float), 0.8)
    sc = ax.scatter(
        x, df[metric], c=df["strata_covered"], cmap="viridis", s=28, edgecolor="k", linewidth=0.3
    )
    ax.set_xscale("log")
    ax.set_xlabel("training positives (log; 0 drawn at 0.8)")
    ax.set_ylabel(metric.upper() if len(metric) <= 3 else metric)
    ax.set_ylim(-0.02, 1.02)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("strata with a training positive")
    for row in df.nsmallest(3, "n_train_positive").itertuples():
        ax.annotate(
            str(row.species).split("_")[-1],
            (max(row.n_train_positive, 0.8), getattr(row, metric)),
            fontsize=6,
        )
    ax.set_title(title or "per-species performance against training labels", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, stage="plots")


def diel_activity(
    scores: pd.DataFrame, species: Sequence[str], hour_column: str = "hour"
) -> pd.DataFrame:
    """Mean predicted probability per species x site x hour (long table).

    ``scores``: one row per unlabelled unit with ``site``, ``hour_column`` (0-23) and one
    probability column per species."""
    keep = [s for s in species if s in scores.columns]
    long = scores.melt(
        id_vars=["site", hour_column], value_vars=keep, var_name="species", value_name="p"
    )
    return (
        long.groupby(["species", "site", hour_column], sort=True)["p"]
        .mean()
        .rename("mean_p")
        .reset_index()
    )


def diel_heatmaps(
    activity: pd.DataFrame,
    out: str | Path,
    top: int = 8,
    hour_column: str = "hour",
    title: str = "",
) -> Path:
    """One heatmap per species (rows sites, columns hours), for the ``top`` species with the
    highest mean predicted activity."""
    plt = _plt()
    rank = activity.groupby("species")["mean_p"].mean().sort_values(ascending=False)
    chosen = list(rank.index[:top])
    ncol = min(4, max(1, len(chosen)))
    nrow = max(1, int(np.ceil(len(chosen) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.4 * nrow), squeeze=False)
    for ax, sp in zip(axes.flat, chosen):
        m = (
            activity[activity["species"] == sp]
            .pivot(index="site", columns=hour_column, values="mean_p")
            .reindex(columns=range(24))
        )
        im = ax.imshow(
            m.to_numpy(dtype=float), aspect="auto", cmap="magma", vmin=0, interpolation="nearest"
        )
        ax.set_yticks(range(len(m.index)))
        ax.set_yticklabels(m.index, fontsize=6)
        ax.set_xticks([0, 6, 12, 18, 23])
        ax.set_xlabel("hour (UTC)" if hour_column == "hour" else "local solar hour", fontsize=7)
        ax.set_title(str(sp).split("_")[-1], fontsize=8)
        ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    fig.suptitle(title or "predicted diel activity (mean probability)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, stage="plots")


def project_2d(X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``X``: UMAP when umap-learn is importable, else PCA."""
    X = np.asarray(X, dtype=np.float32)
    try:
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(X), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(X), "PCA"


def embedding_map(
    X: np.ndarray, role: Sequence[str], out: str | Path, seed: int = 0, title: str = ""
) -> Path:
    """Scatter of the embedding map; ``role`` per row is ``pool``, ``labelled`` or
    ``sampled`` (drawn in that order, so the few sampled units stay visible)."""
    plt = _plt()
    xy, method = project_2d(X, seed)
    roles = np.asarray(role)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    style = {
        "pool": dict(s=4, c="0.75", alpha=0.5),
        "labelled": dict(s=10, c="C0"),
        "sampled": dict(s=22, c="C3", marker="x"),
    }
    for name, kw in style.items():
        m = roles == name
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], label=f"{name} ({int(m.sum())})", **kw)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.legend(fontsize=7, markerscale=1.5)
    ax.set_title(title or f"embedding map ({method})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, stage="plots")
