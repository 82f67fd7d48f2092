"""Learning-curve statistics and per-run / per-strategy summaries of simulated runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from activepam.simulation.loop import BUDGET_COLS, REPLICATE_COLS, RUN_KEYS


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
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if x_min is not None and len(xs):
        if xs[0] > x_min + 1e-9:
            return float("nan")
        if xs[0] < x_min:
            keep = xs >= x_min
            y_at = float(np.interp(x_min, xs, ys))
            xs, ys = np.insert(xs[keep], 0, x_min), np.insert(ys[keep], 0, y_at)
    if x_max is not None and len(xs) and xs[-1] > x_max:
        keep = xs <= x_max
        y_at = float(np.interp(x_max, xs, ys))
        xs, ys = np.append(xs[keep], x_max), np.append(ys[keep], y_at)
    if len(xs) == 0:
        return float("nan")
    if len(xs) == 1 or xs[-1] == xs[0]:
        return float(ys.mean())
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))


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
PROTOCOL_COLUMNS = [
    "strategy",
    "seed",
    "n_labelled",
    "baseal_aulc",
    "aulc",
    "final",
    "n_positives",
    "sampling_s",
]


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
        rows.append(
            {
                "strategy": strategy,
                "seed": int(seed),
                "n_labelled": int(x[-1]),
                "baseal_aulc": baseal_aulc(x, y),
                "aulc": aulc(x, y),
                "final": float(y[-1]),
                "n_positives": int(g["n_positives"].iloc[-1]) if "n_positives" in g else -1,
                "sampling_s": float(np.sum(t)) if np.isfinite(t).all() else float("nan"),
            }
        )
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


#: the primary cost axis: seconds of audio an expert listens to (context included)
PRIMARY_BUDGET = "audio_seconds"


def overall_metric(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (strategy, unit, seed, round) with the budget columns and ``value``."""
    sel = results[(results["stratum"] == "all") & (results["metric"] == metric)]
    if sel.empty:
        raise KeyError(f"results: no overall rows for metric {metric!r}")
    extra = [c for c in REPLICATE_COLS if c in sel]
    return (
        sel[RUN_KEYS + extra + BUDGET_COLS + ["value"]].sort_values(RUN_KEYS).reset_index(drop=True)
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
        c for c in per_run.columns if c not in skip and pd.api.types.is_numeric_dtype(per_run[c])
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
