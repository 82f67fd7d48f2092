"""Stopping rule: stabilising predictions (kappa) and the learning curve's expected gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepam.core.stopping import (
    StoppingOptions,
    expected_gain,
    fit_learning_curve,
    prediction_agreement,
    stopping_report,
)


def _curve(n: np.ndarray, a: float = 0.9, b: float = 3.0, c: float = 0.8) -> np.ndarray:
    return a - b * n ** (-c)


def test_agreement() -> None:
    x = np.array([[1, 0, 0], [0, 1, 0]])
    assert prediction_agreement(x, x) == 1.0
    assert prediction_agreement(x, 1 - x) < 0
    with pytest.raises(ValueError, match="shape"):
        prediction_agreement(x, x[:1])


def test_curve_fit_recovers_ceiling_and_gain() -> None:
    n = np.arange(50, 550, 50, dtype=float)
    fit = fit_learning_curve(n, _curve(n))
    assert fit is not None and fit["a"] == pytest.approx(0.9, abs=0.01)
    true_gain = _curve(np.array([550.0]))[0] - _curve(np.array([500.0]))[0]
    assert expected_gain(fit, 500, 50) == pytest.approx(true_gain, rel=0.1)
    assert fit_learning_curve([50, 100], [0.2, 0.3]) is None


def _decisions(rng: np.random.Generator, flips: float, base: np.ndarray) -> np.ndarray:
    out = base.copy()
    m = rng.uniform(size=base.shape) < flips
    out[m] = 1 - out[m]
    return out


@pytest.mark.slow
def test_rule_fires_only_after_the_curve_flattens() -> None:
    """A simulated campaign: the metric follows a learning curve with noise, and the models'
    disagreement on the stop set shrinks with the curve's slope. The rule must say continue
    while the curve is steep and stop after the knee, not before."""
    rng = np.random.default_rng(0)
    base = (rng.uniform(size=(400, 12)) < 0.1).astype(int)
    n = np.arange(50, 2050, 50, dtype=float)
    metric = _curve(n) + rng.normal(scale=0.002, size=n.size)
    slope = np.abs(np.gradient(_curve(n), n)) * 50  # metric change per batch
    decisions = [_decisions(rng, min(0.3, 3 * s), base) for s in slope]
    opts = StoppingOptions(kappa_threshold=0.97, window=3, min_gain=0.005)
    recs = [
        stopping_report(n[: i + 1], metric[: i + 1], decisions[: i + 1], opts).recommendation
        for i in range(n.size)
    ]
    assert recs[0] == "not enough rounds"
    # knee: the first round after which one more batch gains less than min_gain (true curve)
    knee = int(np.argmax(slope < opts.min_gain))
    assert 3 <= knee < n.size - 10
    first_signal = next(i for i, r in enumerate(recs) if r in ("consider stopping", "stop"))
    first_stop = recs.index("stop")
    assert knee - 1 <= first_signal <= knee + 1  # the gain measure flags the knee
    assert first_stop >= knee  # never "stop" while the curve is still steep
    assert all(r in ("continue", "not enough rounds") for r in recs[: knee - 1])
    assert all(r == "stop" for r in recs[first_stop:])  # and it stays stopped


def test_report_is_json_ready() -> None:
    import json

    n = np.array([50.0, 100, 150, 200])
    rep = stopping_report(n, _curve(n), [np.zeros((5, 2))] * 4, StoppingOptions(window=3))
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["recommendation"] in ("stop", "consider stopping", "continue")
    assert d["kappa_history"] == [1.0, 1.0, 1.0] and d["stabilised"] is True


@pytest.mark.slow
def test_rule_stops_near_the_knee_of_simulated_learning_curves() -> None:
    """The project's simulation (oracle AL on a small separable dataset, where the curve
    flattens within a few rounds): the stopping rule says stop at or after the knee of the
    strategy's mean learning curve, and within a few rounds of it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_simulate import tiny_dataset

    from activepam.core.stopping import simulated_stops
    from activepam.simulation.config import SimConfig
    from activepam.simulation.loop import run_simulation
    from activepam.simulation.strategies import resolve_strategy

    ds = tiny_dataset(n_rec_per_site=10, n_seg=10, seed=2)
    cfg = SimConfig(
        seed_size=4,
        batch_size=4,
        rounds=14,
        pca_dims=0,
        strata=("site",),
        test_fraction=0.34,
        budget_unit="units",
    )
    spec = resolve_strategy("random")
    res = pd.concat([run_simulation(ds, spec, seed, cfg) for seed in range(4)])
    kap = res[res["metric"] == "stop_kappa"]
    assert len(kap) == 4 * 14 and kap["value"].between(-1, 1).all()
    stops = simulated_stops(
        res, StoppingOptions(kappa_threshold=0.9, window=3, min_gain=0.01), axis="n_units"
    )
    assert len(stops) == 4 and stops["knee_round"].notna().all()
    fired = stops.dropna(subset=["stop_round"])
    assert len(fired) >= 3
    late = fired["stop_round"] - fired["knee_round"]
    assert (late >= -1).all()  # not while the curve is still steep
    assert (late <= 6).all()  # and not long after it flattened
