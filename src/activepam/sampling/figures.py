"""Figures of one sample (``results/sample/{strategy}/figures/``).

* :func:`composition_figure` - share of the pool and of the sample per stratum (or site when
  the strategy has no strata), and the species rank-frequency of the pool (long tail, log y)
  with the sample's counts on the same ranks;
* :func:`uncertainty_figure` - distribution of the strategy score and of the top-1 confidence
  in the pool vs the sample (densities);
* :func:`embedding_map_figure` - 2-D PCA of the embeddings of a seeded pool subsample (grey)
  with the sampled units highlighted (coloured by stratum).

Plot functions take DataFrames / arrays and return a :class:`matplotlib.figure.Figure`;
:func:`plot_sample_figures` builds the pool with the sampling engine and writes all three.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from activepam.core.io import save_figure

log = logging.getLogger(__name__)

MAX_STRATA_SHOWN = 30
POOL_COLOUR, SAMPLE_COLOUR = "#9aa5b1", "#d1495b"


def _empty(fig: Figure, ax: Any, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def composition_table(
    pool_labels: pd.Series, sample_labels: pd.Series, top: int = MAX_STRATA_SHOWN
) -> pd.DataFrame:
    """Share of pool and sample per label (largest pool shares first; the rest pooled as
    ``other (k)``)."""
    pool = pool_labels.astype(str).value_counts()
    samp = sample_labels.astype(str).value_counts()
    table = pd.DataFrame({"pool": pool, "sample": samp}).fillna(0)
    table = table.sort_values(["pool", "sample"], ascending=False)
    if len(table) > top:
        rest = table.iloc[top - 1 :].sum()
        table = pd.concat(
            [table.iloc[: top - 1], pd.DataFrame([rest], index=[f"other ({len(table) - top + 1})"])]
        )
    totals = table.sum().replace(0, 1)
    return table / totals


def composition_figure(
    pool_strata: pd.Series,
    sample_strata: pd.Series,
    pool_species: pd.Series,
    sample_species: pd.Series,
    title: str = "",
    strata_name: str = "stratum",
) -> Figure:
    """Pool vs sample across strata (bars) and species (rank-frequency, log scale)."""
    comp = composition_table(pool_strata, sample_strata)
    height = max(4.0, 1.2 + 0.28 * len(comp))
    fig = Figure(figsize=(13, height), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.1, 1])
    if comp.empty:
        _empty(fig, ax1, "empty pool")
    else:
        y = np.arange(len(comp))
        ax1.barh(
            y - 0.2, comp["pool"], 0.4, color=POOL_COLOUR, label=f"pool (n={len(pool_strata)})"
        )
        ax1.barh(
            y + 0.2,
            comp["sample"],
            0.4,
            color=SAMPLE_COLOUR,
            label=f"sample (n={len(sample_strata)})",
        )
        ax1.set_yticks(y, comp.index.tolist(), fontsize=8 if len(comp) > 15 else 9)
        ax1.invert_yaxis()
        ax1.set_xlabel("share of units")
        ax1.set_title(f"Composition by {strata_name}")
        ax1.legend(loc="best")
    pool_counts = pool_species.astype(str).value_counts()
    if pool_counts.empty:
        _empty(fig, ax2, "no species")
    else:
        samp_counts = sample_species.astype(str).value_counts().reindex(pool_counts.index).fillna(0)
        ranks = np.arange(1, len(pool_counts) + 1)
        ax2.plot(
            ranks,
            pool_counts.to_numpy(),
            color=POOL_COLOUR,
            lw=2,
            label="pool: units per predicted species",
        )
        hit = samp_counts.to_numpy() > 0
        ax2.scatter(
            ranks[hit],
            samp_counts.to_numpy()[hit],
            color=SAMPLE_COLOUR,
            s=18,
            zorder=3,
            label=f"sample: {int(hit.sum())} of {len(pool_counts)} species",
        )
        ax2.set_yscale("log")
        ax2.set_xlabel("species rank in the pool (top-1 prediction)")
        ax2.set_ylabel("units")
        ax2.set_title("Species long tail: pool vs sample")
        ax2.legend(loc="upper right")
        missing = sample_species.astype(str)[~sample_species.astype(str).isin(pool_counts.index)]
        if len(missing):
            log.info("%d sampled units have species outside the pool", len(missing))
    if title:
        fig.suptitle(title)
    return fig


def uncertainty_figure(
    pool: pd.DataFrame, sample: pd.DataFrame, score_label: str = "score", title: str = ""
) -> Figure:
    """Densities of the strategy score and of the top-1 confidence, pool vs sample."""
    cols = [c for c in ("score", "top1_confidence") if c in pool and c in sample]
    fig = Figure(figsize=(6 * max(1, len(cols)), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(cols))))
    if not cols:
        return _empty(fig, axes[0], "no score columns")
    for ax, col in zip(axes, cols):
        p = pool[col].to_numpy(dtype=np.float64)
        s = sample[col].to_numpy(dtype=np.float64)
        p, s = p[np.isfinite(p)], s[np.isfinite(s)]
        if not len(p):
            _empty(fig, ax, f"no finite {col}")
            continue
        both = np.concatenate([p, s])
        lo, hi = float(both.min()), float(both.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        ax.hist(
            p, bins=bins, density=True, color=POOL_COLOUR, alpha=0.8, label=f"pool (n={len(p)})"
        )
        ax.hist(
            s,
            bins=bins,
            density=True,
            histtype="step",
            lw=2,
            color=SAMPLE_COLOUR,
            label=f"sample (n={len(s)})",
        )
        ax.set_xlabel(score_label if col == "score" else "top-1 confidence")
        ax.set_ylabel("density")
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def pca_2d(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA coordinates of ``matrix`` and the explained variance ratios."""
    from sklearn.decomposition import PCA

    x = np.asarray(matrix, dtype=np.float32)
    if len(x) < 3:
        return np.zeros((len(x), 2)), np.zeros(2)
    pca = PCA(n_components=2, svd_solver="randomized", random_state=seed)
    return pca.fit_transform(x), pca.explained_variance_ratio_


def embedding_map_figure(
    pool_xy: np.ndarray,
    sample_xy: np.ndarray,
    sample_groups: Sequence[str],
    explained: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """Pool subsample (grey) and the sampled units (coloured by group) in 2-D."""
    fig = Figure(figsize=(8.5, 7), layout="constrained")
    ax = fig.add_subplot()
    if len(pool_xy) == 0 and len(sample_xy) == 0:
        return _empty(fig, ax, "no embeddings")
    ax.scatter(
        pool_xy[:, 0],
        pool_xy[:, 1],
        s=4 if len(pool_xy) > 2000 else 12,
        color=POOL_COLOUR,
        alpha=0.35 if len(pool_xy) > 2000 else 0.6,
        lw=0,
        label=f"pool ({len(pool_xy)} units shown)",
    )
    groups = pd.Series(list(sample_groups), dtype=str)
    uniq = groups.unique().tolist()
    if 1 < len(uniq) <= 12:
        import matplotlib

        cmap = matplotlib.colormaps["tab10" if len(uniq) <= 10 else "tab20"]
        for i, g in enumerate(uniq):
            m = (groups == g).to_numpy()
            ax.scatter(
                sample_xy[m, 0],
                sample_xy[m, 1],
                s=36,
                color=cmap(i % cmap.N),
                edgecolor="black",
                lw=0.5,
                label=g,
                zorder=3,
            )
    else:
        ax.scatter(
            sample_xy[:, 0],
            sample_xy[:, 1],
            s=36,
            color=SAMPLE_COLOUR,
            edgecolor="black",
            lw=0.5,
            zorder=3,
            label=f"sample ({len(sample_xy)} units"
            + (f", {len(uniq)} strata)" if len(uniq) > 1 else ")"),
        )
    ev = explained if explained is not None else np.zeros(2)
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f}% var.)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f}% var.)")
    ax.legend(loc="best", fontsize=8, markerscale=1.2)
    ax.set_title(title or "Embedding map (PCA) with the sampled units")
    return fig


# --------------------------------------------------------------------------- all figures


def plot_sample_figures(
    sample_csv: str | os.PathLike[str],
    segments: str | os.PathLike[str],
    strategy: str | Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    embeddings: str | os.PathLike[str] | None = None,
    indices: str | os.PathLike[str] | None = None,
    labelled: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    map_points: int = 5000,
    seed: int = 0,
) -> list[str]:
    """Write composition.png, uncertainty.png and embedding_map.png for one sample.

    The pool is rebuilt with the same strategy (labelled ids, filters, score, strata) from
    ``segments``; the embedding map uses a seeded subsample of ``map_points`` pool units.
    """
    from activepam.sampling.engine import score_label
    from activepam.sampling.files import load_units
    from activepam.sampling.pool import prepare_pool
    from activepam.sampling.sources import embedding_source
    from activepam.sampling.strategies import resolve_strategy

    spec = resolve_strategy(strategy, params)
    sample = pd.read_csv(sample_csv, dtype={"unit_id": str, "recording_id": str})
    units = load_units(segments, spec, indices)
    source = embedding_source(embeddings) if embeddings else None
    pool = prepare_pool(
        units,
        spec,
        int(spec["seed"]),
        labelled,
        source if spec["diversify"]["method"] != "none" else None,
    )
    frame = pool.frame.assign(score=pool.score)
    strata_name = "+".join(spec["strata"]) if spec["strata"] else "site"
    if spec["strata"]:
        assert pool.strata is not None  # set by prepare_pool
        pool_strata = pd.Series(pool.strata.as_categorical())
        sample_strata = sample["stratum"]
    else:
        pool_strata = frame["site"] if "site" in frame else pd.Series(["all"] * len(frame))
        sample_strata = sample["site"] if "site" in sample else pd.Series(["all"] * len(sample))
    name = spec["name"]
    out_dir = str(out_dir)
    paths = []
    sp_pool = frame["top1_species"] if "top1_species" in frame else pd.Series([], dtype=str)
    sp_samp = sample["top1_species"] if "top1_species" in sample else pd.Series([], dtype=str)
    fig = composition_figure(
        pool_strata,
        sample_strata,
        sp_pool,
        sp_samp,
        title=f"{name}: sample vs pool ({spec['unit']} units)",
        strata_name=strata_name,
    )
    paths.append(str(save_figure(fig, os.path.join(out_dir, "composition.png"), stage="sample")))
    fig = uncertainty_figure(
        frame,
        sample,
        score_label=f"score: {score_label(spec, pool.unit_type)}",
        title=f"{name}: score distribution, pool vs sample",
    )
    paths.append(str(save_figure(fig, os.path.join(out_dir, "uncertainty.png"), stage="sample")))
    paths.append(_embedding_map(frame, pool, sample, embeddings, spec, out_dir, map_points, seed))
    return paths


def _embedding_map(
    frame: pd.DataFrame,
    pool: Any,
    sample: pd.DataFrame,
    embeddings: Any,
    spec: Mapping[str, Any],
    out_dir: str,
    map_points: int,
    seed: int,
) -> str:
    from activepam.sampling.sources import embedding_source

    path = os.path.join(out_dir, "embedding_map.png")
    key = "segment_id" if pool.unit_type == "segment" else "recording_id"
    source = embedding_source(embeddings) if embeddings else None
    if source is None or sample.empty:
        fig = Figure(figsize=(6, 4), layout="constrained")
        _empty(fig, fig.add_subplot(), "no embeddings given" if source is None else "empty sample")
        return str(save_figure(fig, path, stage="sample"))
    ids = pool.ids.astype(str)
    has = source.available(ids, key)
    cand = np.flatnonzero(has)
    rng = np.random.default_rng(seed)
    pick = (
        np.sort(rng.choice(cand, size=min(map_points, len(cand)), replace=False))
        if len(cand)
        else cand
    )
    pool_ids = ids.iloc[pick].tolist()
    samp_ids = sample["unit_id"].astype(str)
    samp_ids = samp_ids[source.available(samp_ids, key)].tolist()
    matrix = source.fetch(pool_ids + samp_ids, key)
    xy, ev = pca_2d(matrix, seed)
    groups = sample.set_index("unit_id").loc[samp_ids, "stratum"].astype(str).tolist()
    fig = embedding_map_figure(
        xy[: len(pool_ids)],
        xy[len(pool_ids) :],
        groups,
        ev,
        title=f"{spec['name']}: embedding map (PCA), sampled units coloured by stratum",
    )
    return str(save_figure(fig, path, stage="sample"))
