"""Is labelling more still paying off? A stopping rule for active-learning rounds.

Two measures, reported together with a recommendation (:func:`stopping_report`):

* **Stabilising predictions** (Bloodgood & Vijay-Shanker 2009): the round's model and the
  previous round's model predict a fixed, never-labelled *stop set*; their agreement is Cohen's
  kappa over every (unit, species) decision at the models' thresholds. The rule fires when
  kappa has stayed at or above ``kappa_threshold`` (0.99 in the paper) for ``window``
  consecutive round pairs (the paper's window is 3).
* **Expected gain** from a learning-curve fit: an inverse power law
  ``metric(n) = a - b * n**(-c)`` (a ceiling ``a``, diminishing returns) is fit to the rounds'
  (labels, metric) points; the gain expected from the next batch is
  ``metric(n + batch) - metric(n)``. It fires when that gain is below ``min_gain``.

``recommendation`` is ``stop`` when both fire, ``consider stopping`` when one does, else
``continue``; with fewer rounds than a measure needs it says ``not enough rounds``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import curve_fit
from sklearn.metrics import cohen_kappa_score


@dataclass(frozen=True)
class StoppingOptions:
    kappa_threshold: float = 0.99
    window: int = 3
    min_gain: float = 0.005
    batch: int | None = None  # labels in the next round (default: the last round's batch)


def prediction_agreement(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's kappa between two rounds' binary decisions on the stop set (units x species).

    Both all-equal and identical gives 1.0 (kappa is undefined when one rater never varies)."""
    a = np.asarray(previous).astype(int).ravel()
    b = np.asarray(current).astype(int).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"stop-set decisions differ in shape: {np.shape(previous)} vs {np.shape(current)}"
        )
    if np.array_equal(a, b):
        return 1.0
    if np.unique(a).size < 2 and np.unique(b).size < 2:
        return 0.0
    return float(cohen_kappa_score(a, b))


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def fit_learning_curve(
    n_labels: Sequence[float], metric: Sequence[float]
) -> dict[str, float] | None:
    """Inverse power law fit; None with fewer than 3 points or when the fit fails."""
    n = np.asarray(n_labels, dtype=float)
    y = np.asarray(metric, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[ok], y[ok]
    if n.size < 3:
        return None
    p0 = (min(1.0, y.max() + 0.05), max(1e-3, (y.max() - y.min()) * n.min() ** 0.5), 0.5)
    try:
        with warnings.catch_warnings():  # few points: the covariance is often undefined
            warnings.simplefilter("ignore")
            (a, b, c), _ = curve_fit(
                _power_law, n, y, p0=p0, maxfev=20000, bounds=([0.0, 0.0, 0.01], [1.5, np.inf, 5.0])
            )
    except (RuntimeError, ValueError):
        return None
    return {"a": float(a), "b": float(b), "c": float(c)}


def expected_gain(fit: dict[str, float], n_now: float, batch: float) -> float:
    return float(
        _power_law(np.array([n_now + batch]), **fit)[0] - _power_law(np.array([n_now]), **fit)[0]
    )


@dataclass
class StoppingReport:
    recommendation: str
    kappa_history: list[float]
    stabilised: bool | None
    expected_gain: float | None
    gain_small: bool | None
    curve: dict[str, float] | None
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stopping_report(
    n_labels: Sequence[float],
    metric: Sequence[float],
    stop_decisions: Sequence[np.ndarray],
    options: StoppingOptions | None = None,
) -> StoppingReport:
    """Both measures after the latest round.

    ``n_labels`` / ``metric``: one value per round so far (cumulative labels, e.g. macro AP);
    ``stop_decisions``: each round's binary decisions on the same stop set, in round order.
    """
    kappas = [prediction_agreement(a, b) for a, b in zip(stop_decisions, stop_decisions[1:])]
    return report_from_kappas(n_labels, metric, kappas, options)


def report_from_kappas(
    n_labels: Sequence[float],
    metric: Sequence[float],
    kappas: Sequence[float],
    options: StoppingOptions | None = None,
) -> StoppingReport:
    """:func:`stopping_report` from the agreements already computed (``kappas[i]`` between
    rounds i and i + 1)."""
    opts = options or StoppingOptions()
    kappas = [float(k) for k in kappas]
    stabilised: bool | None = None
    if len(kappas) >= opts.window:
        stabilised = bool(all(k >= opts.kappa_threshold for k in kappas[-opts.window :]))
    fit = fit_learning_curve(n_labels, metric)
    gain = small = None
    if fit is not None:
        n = np.asarray(n_labels, dtype=float)
        batch = opts.batch or (float(n[-1] - n[-2]) if n.size > 1 else float(n[-1]))
        gain = expected_gain(fit, float(n[-1]), batch)
        small = bool(gain < opts.min_gain)
    votes = [v for v in (stabilised, small) if v is not None]
    if not votes:
        rec = "not enough rounds"
    elif len(votes) == 2 and all(votes):
        rec = "stop"
    elif any(votes):
        rec = "consider stopping"
    else:
        rec = "continue"
    return StoppingReport(
        rec,
        [round(k, 4) for k in kappas],
        stabilised,
        None if gain is None else round(gain, 5),
        small,
        fit,
        asdict(opts),
    )


def first_stop(
    n_labels: Sequence[float],
    metric: Sequence[float],
    kappas: Sequence[float],
    options: StoppingOptions | None = None,
) -> int | None:
    """Index of the first round after which the rule says ``stop`` (None: it never does)."""
    for r in range(len(n_labels)):
        rep = report_from_kappas(n_labels[: r + 1], metric[: r + 1], kappas[:r], options)
        if rep.recommendation == "stop":
            return r
    return None


def knee(n_labels: Sequence[float], metric: Sequence[float], min_gain: float) -> int | None:
    """First round whose next batch gains less than ``min_gain`` on a (mean) learning curve."""
    y = np.asarray(metric, dtype=float)
    gains = np.diff(y)
    below = np.flatnonzero(gains < min_gain)
    return int(below[0]) if below.size else None


def simulated_stops(
    results: Any,
    options: StoppingOptions | None = None,
    axis: str = "audio_seconds",
    metric: str = "macro_ap",
) -> Any:
    """Where the rule stops each simulated run (:mod:`activepam.simulation.loop` tidy results with
    ``stop_kappa`` rows) against the knee of the strategy's mean learning curve: one row per
    (strategy, seed) with ``stop_round``, ``knee_round`` and their budgets."""
    import pandas as pd

    opts = options or StoppingOptions()
    overall = results[results["stratum"] == "all"]
    curve = overall[overall["metric"] == metric]
    kap = overall[overall["metric"] == "stop_kappa"]
    rows = []
    for strategy, grp in curve.groupby("strategy", sort=True):
        mean = grp.groupby("round")[[axis, "value"]].mean().sort_index()
        k = knee(mean[axis].to_numpy(), mean["value"].to_numpy(), opts.min_gain)
        for seed, run in grp.groupby("seed", sort=True):
            run = run.sort_values("round")
            ks = (
                kap[(kap["strategy"] == strategy) & (kap["seed"] == seed)]
                .sort_values("round")["value"]
                .to_numpy()
            )
            stop = first_stop(run[axis].to_numpy(), run["value"].to_numpy(), ks, opts)
            rows.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "stop_round": stop,
                    "knee_round": k,
                    "stop_budget": None if stop is None else float(run[axis].iloc[stop]),
                    "knee_budget": None if k is None else float(mean[axis].iloc[k]),
                }
            )
    return pd.DataFrame(rows)
