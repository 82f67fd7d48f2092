"""What experts' verification labels tell: per-species score thresholds and call density.

Verification labels are expert answers on *model detections*: for a species, a sample of
windows with their model score and whether the species is really there. Two estimates follow.

**Thresholds for a target precision** (:func:`species_thresholds`). As BirdNET-Analyzer's review
tab does, fit P(correct | score) with a logistic regression on the logit of the score. Precision
at a threshold ``t`` is the mean of that curve over the *pool* of detections with score >= t
(every window the model scored, not only the verified ones: the verification sample may be
stratified by score, the pool says how common each score is). The reported threshold is the
lowest pool score whose precision reaches the target (most recall), for targets 0.85 / 0.90 /
0.95 / 0.99, with a percentile bootstrap interval over the verification rows. A target the curve
never reaches is reported as unreachable (``threshold`` NaN), never as a made-up value.

**Call density** (:func:`call_density`), following Navine et al. 2024 (arXiv 2402.15360;
perch-hoplite ``call_density``): the share of 3 s windows that hold the species, per stratum.
The pool's windows are cut into score bins (quantiles of the species' scores); a verification
design draws a few windows from every bin (:func:`verification_design`); each bin's share of
positives gets a Beta posterior (Jeffreys prior, Beta(k + 1/2, n - k + 1/2)) and the density is
the bin-weight-weighted sum, ``sum_b w_b p_b`` with ``w_b`` the bin's share of the stratum's
windows. Its interval comes from Monte-Carlo draws of the bins' posteriors. The estimate is
consistent whatever the model's quality: a poor model only widens the interval. The Jeffreys
prior is perch-hoplite's choice too; with few verifications per bin it pulls near-empty bins up
a little (on the test population, +0.03 at a true density of 0.05 with 12 per bin, +0.01 with
30), so plan about 20 verifications per bin and stratum.

Deviation noted: the one-feature logistic fits are a vectorised Newton-Raphson in NumPy (a
bootstrap fits hundreds of them at once), not scikit-learn; they match
``LogisticRegression(penalty=None)`` up to the tiny ridge used against separation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: target precisions reported by default
TARGET_PRECISIONS: tuple[float, ...] = (0.85, 0.90, 0.95, 0.99)
#: score bins of the default verification design (quantiles of the species' pool scores)
DEFAULT_BIN_QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.9, 0.97)
_EPS = 1e-6
_RIDGE = 1e-3

THRESHOLD_COLUMNS: tuple[str, ...] = (
    "species",
    "group",
    "target_precision",
    "threshold",
    "threshold_lo",
    "threshold_hi",
    "reachable",
    "n_verified",
    "n_correct",
    "slope",
    "intercept",
)
DENSITY_COLUMNS: tuple[str, ...] = (
    "species",
    "stratum",
    "density",
    "density_lo",
    "density_hi",
    "n_windows",
    "n_verified",
    "n_positive",
    "n_bins",
    "bins_unverified",
)


class VerificationError(ValueError):
    """Verification labels or pool scores are unusable; the message names the column."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# --------------------------------------------------------------------------- logistic fits


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, iterations: int = 50
) -> np.ndarray:
    """Intercept and slope of P(y=1 | x) = sigmoid(a + b x), fit by Newton-Raphson.

    ``x`` and ``y`` are (n,) or (B, n) for B fits at once; ``weights`` (same shape) count each
    row (a bootstrap passes resampling counts). Returns (2,) or (B, 2) ``[a, b]``.
    """
    single = np.ndim(x) == 1
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    w = np.ones_like(x) if weights is None else np.atleast_2d(np.asarray(weights, dtype=float))
    B = x.shape[0]
    beta = np.zeros((B, 2))
    for _ in range(iterations):
        p = _sigmoid(beta[:, :1] + beta[:, 1:] * x)
        r = w * (y - p)
        s = w * p * (1 - p)
        g = np.stack([r.sum(1), (r * x).sum(1)], axis=1) - _RIDGE * beta
        h00 = s.sum(1) + _RIDGE
        h01 = (s * x).sum(1)
        h11 = (s * x * x).sum(1) + _RIDGE
        det = h00 * h11 - h01 * h01
        step = np.stack(
            [(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det], axis=1
        )
        beta = beta + step
        if np.nanmax(np.abs(step)) < 1e-8:
            break
    return beta[0] if single else beta


def precision_threshold(
    pool_scores: np.ndarray, intercept: float | np.ndarray, slope: float | np.ndarray, target: float
) -> np.ndarray:
    """Lowest pool score whose precision (mean fitted P(correct) over pool scores >= it)
    reaches ``target``; NaN where it never does. Vectorised over (B,) intercepts/slopes."""
    s = np.sort(np.asarray(pool_scores, dtype=float))[::-1]
    a = np.atleast_1d(np.asarray(intercept, dtype=float))[:, None]
    b = np.atleast_1d(np.asarray(slope, dtype=float))[:, None]
    p = _sigmoid(a + b * logit(s)[None, :])
    prec = np.cumsum(p, axis=1) / np.arange(1, s.size + 1)[None, :]
    ok = prec >= target
    # precision from the top: the lowest admissible threshold is the last index still >= target
    # among the prefix that has only ever been >= target (precision may dip and recover: the
    # reported threshold must keep precision >= target for every higher threshold too)
    first_bad = np.where(ok.all(axis=1), s.size, np.argmin(ok, axis=1))
    out = np.full(a.shape[0], np.nan)
    has = first_bad > 0
    out[has] = s[first_bad[has] - 1]
    return out


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ThresholdOptions:
    targets: tuple[float, ...] = TARGET_PRECISIONS
    n_boot: int = 300
    interval: float = 0.95
    min_verified: int = 10
    seed: int = 0


def _check_columns(df: pd.DataFrame, need: Sequence[str], what: str) -> None:
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise VerificationError(
            f"{what} lacks column(s): {', '.join(missing)} (found: "
            f"{', '.join(map(str, df.columns))})"
        )


def _group_thresholds(
    ver: pd.DataFrame, pool: np.ndarray, opts: ThresholdOptions, rng: np.random.Generator
) -> list[dict[str, float]]:
    x = logit(ver["score"].to_numpy())
    y = ver["correct"].to_numpy(dtype=float)
    n = x.size
    a, b = fit_logistic(x, y)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=opts.n_boot).astype(float)
    boot = fit_logistic(np.broadcast_to(x, counts.shape), np.broadcast_to(y, counts.shape), counts)
    alpha = (1 - opts.interval) / 2
    rows = []
    for target in opts.targets:
        t = precision_threshold(pool, a, b, target)[0]
        tb = precision_threshold(pool, boot[:, 0], boot[:, 1], target)
        # an unreachable bootstrap replicate sits above every pool score
        above = float(np.max(pool)) + 1.0
        lo, hi = np.quantile(np.where(np.isnan(tb), above, tb), [alpha, 1 - alpha])
        lo, hi = (np.inf if v >= above else v for v in (lo, hi))
        rows.append(
            {
                "target_precision": target,
                "threshold": t,
                "threshold_lo": lo if np.isfinite(lo) else np.nan,
                "threshold_hi": hi if np.isfinite(hi) else np.nan,
                "reachable": bool(np.isfinite(t)),
                "n_verified": n,
                "n_correct": int(y.sum()),
                "slope": float(b),
                "intercept": float(a),
            }
        )
    return rows


def species_thresholds(
    verified: pd.DataFrame,
    pool: pd.DataFrame,
    by: Sequence[str] = (),
    options: ThresholdOptions | None = None,
) -> pd.DataFrame:
    """Score threshold per species (and per ``by`` group, e.g. site) for each target precision.

    ``verified``: species, score, correct (1/0) [, by columns]; ``pool``: species, score
    [, by columns], every scored window the thresholds will be applied to. Groups with fewer
    than ``min_verified`` labels, or only one answer value, are reported with NaN and a reason
    in ``group``-level column ``note``. Returns :data:`THRESHOLD_COLUMNS` + ``note``.
    """
    opts = options or ThresholdOptions()
    keys = ["species", *by]
    _check_columns(verified, [*keys, "score", "correct"], "verification labels")
    _check_columns(pool, [*keys, "score"], "pool scores")
    bad = ~verified["correct"].isin([0, 1])
    if bad.any():
        raise VerificationError(
            f"verification labels: correct must be 0 or 1 (row "
            f"{int(np.flatnonzero(bad.to_numpy())[0])})"
        )
    rng = np.random.default_rng(opts.seed)
    pools = {
        k if isinstance(k, tuple) else (k,): g["score"].to_numpy()
        for k, g in pool.groupby(keys, sort=True)
    }
    out = []
    for key, grp in verified.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = {"species": key[0], "group": ";".join(f"{c}={v}" for c, v in zip(by, key[1:]))}
        scores = pools.get(key)
        note = ""
        if scores is None or scores.size == 0:
            note = "no pool scores for this group"
        elif len(grp) < opts.min_verified:
            note = f"{len(grp)} verified (< {opts.min_verified})"
        elif grp["correct"].nunique() < 2:
            note = f"every verified detection is {'correct' if grp['correct'].iloc[0] else 'wrong'}"
        if note:
            for target in opts.targets:
                out.append(
                    {
                        **label,
                        "target_precision": target,
                        "threshold": np.nan,
                        "threshold_lo": np.nan,
                        "threshold_hi": np.nan,
                        "reachable": False,
                        "n_verified": len(grp),
                        "n_correct": int(grp["correct"].sum()),
                        "slope": np.nan,
                        "intercept": np.nan,
                        "note": note,
                    }
                )
            continue
        assert scores is not None  # no note: the group has pool scores
        for row in _group_thresholds(grp, scores, opts, rng):
            out.append(
                {
                    **label,
                    **row,
                    "note": "" if row["reachable"] else "target precision not reached at any score",
                }
            )
    return pd.DataFrame(out, columns=[*THRESHOLD_COLUMNS, "note"])


# --------------------------------------------------------------------------- call density


def score_bins(
    scores: np.ndarray, quantiles: Sequence[float] = DEFAULT_BIN_QUANTILES
) -> np.ndarray:
    """Bin edges (ascending, -inf and +inf at the ends) at quantiles of ``scores``;
    repeated edges (many equal scores) are merged."""
    q = np.quantile(np.asarray(scores, dtype=float), list(quantiles))
    return np.unique(np.concatenate([[-np.inf], q, [np.inf]]))


def assign_bins(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each score: bin b holds edges[b] < score <= edges[b+1]."""
    return np.clip(
        np.searchsorted(edges, np.asarray(scores, dtype=float), side="left") - 1, 0, len(edges) - 2
    )


def verification_design(
    pool: pd.DataFrame,
    n_per_bin: int,
    seed: int = 0,
    strata: Sequence[str] = (),
    quantiles: Sequence[float] = DEFAULT_BIN_QUANTILES,
) -> pd.DataFrame:
    """Draw ``n_per_bin`` windows at random from every score bin of every species (x stratum).

    ``pool``: unit_id, species, score [, strata]. Bins are quantiles of each species' scores
    over the whole pool (the same edges for every stratum). Returns the drawn rows with
    ``bin`` and ``bin_edges`` added, ready to export for verification.
    """
    _check_columns(pool, ["unit_id", "species", "score", *strata], "pool scores")
    rng = np.random.default_rng(seed)
    out = []
    for _sp, grp in pool.groupby("species", sort=True):
        edges = score_bins(grp["score"].to_numpy(), quantiles)
        grp = grp.assign(bin=assign_bins(grp["score"].to_numpy(), edges))
        for _, cell in grp.groupby([*strata, "bin"], sort=True):
            take = min(n_per_bin, len(cell))
            idx = rng.choice(len(cell), size=take, replace=False)
            out.append(
                cell.iloc[np.sort(idx)].assign(bin_edges=";".join(f"{e:.6g}" for e in edges))
            )
    if not out:
        return pool.head(0).assign(bin=pd.Series(dtype=int), bin_edges=pd.Series(dtype=str))
    return pd.concat(out, ignore_index=True)


def density_from_bins(
    weights: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    draws: int = 4000,
    interval: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Density ``sum_b w_b p_b`` with Jeffreys Beta posteriors per bin: (mean, lo, hi)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    a = np.asarray(k, dtype=float) + 0.5
    b = np.asarray(n, dtype=float) - np.asarray(k, dtype=float) + 0.5
    rng = np.random.default_rng(seed)
    samples = rng.beta(a[None, :], b[None, :], size=(draws, w.size)) @ w
    alpha = (1 - interval) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(w @ (a / (a + b))), float(lo), float(hi)


def call_density(
    pool: pd.DataFrame,
    verified: pd.DataFrame,
    strata: Sequence[str] = (),
    quantiles: Sequence[float] = DEFAULT_BIN_QUANTILES,
    interval: float = 0.95,
    draws: int = 4000,
    seed: int = 0,
    edges: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Share of windows holding each species, per stratum, with an interval.

    ``pool``: unit_id, species, score [, strata] for every window; ``verified``: unit_id,
    species, present (1/0) for the verified ones (a :func:`verification_design` sample).
    A bin with no verified window gets the flat Jeffreys posterior (mean 1/2, wide), and is
    counted in ``bins_unverified``: its weight makes the interval honest rather than narrow.
    Strata "" (no strata) give one overall row per species. ``edges`` (species -> bin edges)
    reuses the bins the design drew from (else quantiles of the pool's scores).
    """
    _check_columns(pool, ["unit_id", "species", "score", *strata], "pool scores")
    _check_columns(verified, ["unit_id", "species", "present"], "verification labels")
    answers = verified[verified["present"].isin([0, 1])]
    answers = answers.drop_duplicates(["unit_id", "species"], keep="last")
    out = []
    for i, (sp, grp) in enumerate(pool.groupby("species", sort=True)):
        sp_edges = (
            np.asarray(edges[sp], dtype=float)
            if edges and sp in edges
            else score_bins(grp["score"].to_numpy(), quantiles)
        )
        grp = grp.assign(bin=assign_bins(grp["score"].to_numpy(), sp_edges))
        grp = grp.merge(
            answers[answers["species"] == sp][["unit_id", "present"]], on="unit_id", how="left"
        )
        cells = grp.groupby(list(strata), sort=True) if strata else [((), grp)]
        for j, (key, cell) in enumerate(cells):
            key = key if isinstance(key, tuple) else (key,)
            nbins = len(sp_edges) - 1
            w = np.bincount(cell["bin"], minlength=nbins)
            done = cell[cell["present"].notna()]
            n = np.bincount(done["bin"], minlength=nbins)
            k = np.bincount(done["bin"], weights=done["present"], minlength=nbins)
            keep = w > 0
            mean, lo, hi = density_from_bins(
                w[keep], n[keep], k[keep], draws, interval, seed + 7919 * i + j
            )
            out.append(
                {
                    "species": sp,
                    "stratum": ";".join(f"{c}={v}" for c, v in zip(strata, key)),
                    "density": mean,
                    "density_lo": lo,
                    "density_hi": hi,
                    "n_windows": int(len(cell)),
                    "n_verified": int(n.sum()),
                    "n_positive": int(k.sum()),
                    "n_bins": int(keep.sum()),
                    "bins_unverified": int(((n == 0) & keep).sum()),
                }
            )
    return pd.DataFrame(out, columns=list(DENSITY_COLUMNS))


# --------------------------------------------------------------------------- figure


def plot_thresholds(
    verified: pd.DataFrame, thresholds: pd.DataFrame, out: str | Path, max_species: int = 12
) -> Path:
    """One panel per species: verified answers against score, the fitted P(correct | score)
    and the thresholds for each target precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from activepam.core.io import save_figure

    species = list(dict.fromkeys(thresholds["species"]))[:max_species]
    ncol = min(4, max(1, len(species)))
    nrow = max(1, int(np.ceil(len(species) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    grid = np.linspace(0.001, 0.999, 300)
    for ax, sp in zip(axes.flat, species):
        v = verified[verified["species"] == sp]
        t = thresholds[(thresholds["species"] == sp) & (thresholds["group"] == "")]
        ax.scatter(
            v["score"],
            v["correct"] + np.random.default_rng(0).uniform(-0.03, 0.03, len(v)),
            s=6,
            alpha=0.5,
            color="0.3",
        )
        if len(t) and np.isfinite(t["slope"].iloc[0]):
            ax.plot(
                grid,
                _sigmoid(t["intercept"].iloc[0] + t["slope"].iloc[0] * logit(grid)),
                color="C0",
            )
        for c, row in zip(("C1", "C2", "C3", "C4"), t.itertuples()):
            if row.reachable:
                ax.axvline(
                    row.threshold,
                    color=c,
                    ls="--",
                    lw=1,
                    label=f"P>={row.target_precision:.2f}: {row.threshold:.2f}",
                )
        ax.set_title(str(sp).split("_")[-1], fontsize=8)
        ax.set_xlabel("score", fontsize=7)
        ax.set_ylabel("P(correct)", fontsize=7)
        ax.tick_params(labelsize=6)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5, loc="lower right")
    for ax in list(axes.flat)[len(species) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out, stage="verification", dpi=110)


def plot_density(density: pd.DataFrame, out: str | Path, max_species: int = 8) -> Path:
    """Call density per stratum with its interval, one panel per species."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from activepam.core.io import save_figure

    d = density.dropna(subset=["density"]) if "density" in density else density.head(0)
    species = list(dict.fromkeys(d["species"]))[:max_species]
    ncol = min(4, max(1, len(species)))
    nrow = max(1, int(np.ceil(len(species) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, sp in zip(axes.flat, species):
        g = d[d["species"] == sp]
        y = np.arange(len(g))
        ax.errorbar(
            g["density"],
            y,
            xerr=[g["density"] - g["density_lo"], g["density_hi"] - g["density"]],
            fmt="o",
            color="C0",
            capsize=2,
        )
        ax.set_yticks(y)
        ax.set_yticklabels([s.split("=")[-1] or "all" for s in g["stratum"]], fontsize=6)
        ax.set_xlim(0, min(1, max(0.05, float(g["density_hi"].max()) * 1.15)))
        ax.set_xlabel("share of 3 s windows", fontsize=7)
        ax.set_title(str(sp).split("_")[-1], fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(species) :]:
        ax.axis("off")
    if not species:
        axes.flat[0].text(
            0.5,
            0.5,
            "no call-density estimate this round\n(needs a round drawn by the verification design)",
            ha="center",
            va="center",
            fontsize=8,
            transform=axes.flat[0].transAxes,
        )
    fig.suptitle("call density with 95 % intervals (Navine et al. 2024)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, stage="verification", dpi=110)
