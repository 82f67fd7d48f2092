"""Thresholds for a target precision and call density from verification labels.

The coverage tests draw many verification samples from populations whose truth is known and
check that the intervals cover it about as often as they claim (a 95 % interval that covers
the truth in 60 % of the seeds fails)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from activepam.sampling.verification import (
    ThresholdOptions,
    VerificationError,
    _sigmoid,
    assign_bins,
    call_density,
    fit_logistic,
    logit,
    plot_thresholds,
    precision_threshold,
    score_bins,
    species_thresholds,
    verification_design,
)


def test_fit_logistic_matches_sklearn_unpenalised() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    y = (rng.uniform(size=400) < _sigmoid(-0.5 + 1.7 * x)).astype(float)
    a, b = fit_logistic(x, y)
    ref = LogisticRegression(C=1e6, max_iter=1000).fit(x[:, None], y)
    assert a == pytest.approx(ref.intercept_[0], abs=2e-3)
    assert b == pytest.approx(ref.coef_[0, 0], abs=2e-3)
    # batched fits with counts equal the single fit on the repeated rows
    counts = rng.integers(0, 3, size=(3, 400)).astype(float)
    batch = fit_logistic(np.broadcast_to(x, counts.shape), np.broadcast_to(y, counts.shape), counts)
    rep = fit_logistic(np.repeat(x, counts[1].astype(int)), np.repeat(y, counts[1].astype(int)))
    assert batch[1] == pytest.approx(rep, abs=1e-6)


def test_precision_threshold_is_lowest_score_keeping_target() -> None:
    pool = np.array([0.1, 0.2, 0.5, 0.8, 0.9])
    # slope 0 and intercept 0: P(correct) = 0.5 everywhere -> 0.5 reachable at all, 0.6 never
    assert precision_threshold(pool, 0.0, 0.0, 0.5)[0] == 0.1
    assert np.isnan(precision_threshold(pool, 0.0, 0.0, 0.6)[0])
    # steep curve: only scores above 0.5 are correct
    t = precision_threshold(pool, 0.0, 50.0, 0.99)[0]
    assert t == 0.8


def _population(rng: np.random.Generator, n: int = 20000, a: float = 1.0, b: float = 1.5):
    scores = rng.beta(0.6, 1.5, size=n)
    p_true = _sigmoid(a + b * logit(scores))
    return scores, p_true


@pytest.mark.slow
def test_threshold_interval_covers_truth_at_nominal_rate() -> None:
    a_true, b_true = 1.0, 1.5
    covered, reached = 0, 0
    seeds = range(40)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pool, p_true = _population(rng, a=a_true, b=b_true)
        truth = precision_threshold(pool, a_true, b_true, 0.9)[0]
        pick = rng.choice(pool.size, size=250, replace=False)
        correct = (rng.uniform(size=pick.size) < p_true[pick]).astype(int)
        ver = pd.DataFrame({"species": "A", "score": pool[pick], "correct": correct})
        out = species_thresholds(
            ver,
            pd.DataFrame({"species": "A", "score": pool}),
            options=ThresholdOptions(targets=(0.9,), n_boot=200, seed=seed),
        )
        row = out.iloc[0]
        if row.reachable:
            reached += 1
            covered += int(row.threshold_lo <= truth <= row.threshold_hi)
    assert reached >= 36
    assert covered / reached >= 0.85  # nominal 0.95; percentile bootstrap is slightly liberal


def test_thresholds_per_site_and_degenerate_groups() -> None:
    rng = np.random.default_rng(3)
    pool, p = _population(rng, n=4000)
    site = np.where(np.arange(pool.size) % 2 == 0, "s1", "s2")
    pick = rng.choice(pool.size, 300, replace=False)
    ver = pd.DataFrame(
        {
            "species": "A",
            "site": site[pick],
            "score": pool[pick],
            "correct": (rng.uniform(size=300) < p[pick]).astype(int),
        }
    )
    ver = pd.concat(
        [
            ver,
            pd.DataFrame({"species": "B", "site": "s1", "score": [0.9] * 12, "correct": [1] * 12}),
        ]
    )
    pool_df = pd.DataFrame({"species": "A", "site": site, "score": pool})
    pool_df = pd.concat([pool_df, pd.DataFrame({"species": "B", "site": "s1", "score": [0.9]})])
    out = species_thresholds(ver, pool_df, by=["site"], options=ThresholdOptions(n_boot=50))
    assert set(out["group"]) == {"site=s1", "site=s2"}
    b = out[out["species"] == "B"]
    assert (
        b["threshold"].isna().all() and "every verified detection is correct" in b["note"].iloc[0]
    )
    a = out[(out["species"] == "A") & (out["target_precision"] == 0.85)]
    assert a["reachable"].all() and (a["threshold_lo"] <= a["threshold"]).all()


def test_threshold_errors_name_the_column() -> None:
    with pytest.raises(VerificationError, match="lacks column.*correct"):
        species_thresholds(
            pd.DataFrame({"species": ["A"], "score": [0.5]}),
            pd.DataFrame({"species": ["A"], "score": [0.5]}),
        )
    with pytest.raises(VerificationError, match="correct must be 0 or 1"):
        species_thresholds(
            pd.DataFrame({"species": ["A"], "score": [0.5], "correct": [2]}),
            pd.DataFrame({"species": ["A"], "score": [0.5]}),
        )


def test_bins_and_design() -> None:
    scores = np.linspace(0, 1, 101)
    edges = score_bins(scores)
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(edges) == 6
    bins = assign_bins(scores, edges)
    assert bins.min() == 0 and bins.max() == 4
    pool = pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(101)],
            "species": "A",
            "score": scores,
            "site": np.where(scores < 0.3, "x", "y"),
        }
    )
    d = verification_design(pool, n_per_bin=3, strata=["site"], seed=0)
    assert (d.groupby(["site", "bin"]).size() <= 3).all()
    assert set(d["bin"]) == {0, 1, 2, 3, 4}
    assert d["unit_id"].is_unique


def _density_population(rng: np.random.Generator, n: int = 6000):
    site = rng.choice(["s1", "s2", "s3"], size=n)
    base = {"s1": 0.05, "s2": 0.15, "s3": 0.3}
    present = (rng.uniform(size=n) < np.vectorize(base.get)(site)).astype(int)
    # an imperfect model: positives score higher on average, with much overlap
    score = _sigmoid(rng.normal(loc=np.where(present, 1.0, -1.0), scale=1.3))
    return pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(n)],
            "species": "A",
            "score": score,
            "site": site,
            "truth": present,
        }
    )


@pytest.mark.slow
def test_density_interval_covers_true_prevalence_over_seeds() -> None:
    cover, total, widths = 0, 0, []
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        pool = _density_population(rng)
        design = verification_design(pool, n_per_bin=20, strata=["site"], seed=seed)
        ver = design.assign(present=design["truth"])
        est = call_density(pool, ver, strata=["site"], draws=2000, seed=seed)
        truth = pool.groupby("site")["truth"].mean()
        for row in est.itertuples():
            t = truth[row.stratum.split("=")[1]]
            cover += int(row.density_lo <= t <= row.density_hi)
            total += 1
            widths.append(row.density_hi - row.density_lo)
    assert total == 180
    assert cover / total >= 0.90  # nominal 0.95
    assert np.median(widths) < 0.25  # and not trivially wide


def test_density_reports_unverified_bins_and_ignores_unsure() -> None:
    pool = _density_population(np.random.default_rng(0), n=500)
    ver = pool.iloc[:5].assign(present=[1, 0, -1, 0, 1])
    est = call_density(pool, ver)
    row = est.iloc[0]
    assert row.n_verified == 4 and row.n_positive == 2
    assert row.bins_unverified >= 1
    assert 0 <= row.density_lo <= row.density <= row.density_hi <= 1


def test_plot_thresholds(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pool, p = _population(rng, n=2000)
    pick = rng.choice(pool.size, 200, replace=False)
    ver = pd.DataFrame(
        {
            "species": "Turdus merula_Eurasian Blackbird",
            "score": pool[pick],
            "correct": (rng.uniform(size=200) < p[pick]).astype(int),
        }
    )
    thr = species_thresholds(
        ver,
        pd.DataFrame({"species": ver["species"].iloc[0], "score": pool}),
        options=ThresholdOptions(n_boot=30),
    )
    out = plot_thresholds(ver, thr, tmp_path / "thresholds.png")
    assert out.stat().st_size > 5000
