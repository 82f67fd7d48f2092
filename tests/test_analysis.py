"""Learning-curve statistics, divergence, mutual information, LOSO and the claims summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_simulate import tiny_dataset

from activepam.core.io import jsonable
from activepam.core.metrics import spread
from activepam.simulation.claims import summarise
from activepam.simulation.config import SimConfig
from activepam.simulation.divergence import (
    correlate,
    divergence_to_rest,
    mutual_information,
    stratum_label_distributions,
)
from activepam.simulation.steps import gather_to_files
from activepam.simulation.stratified import leave_one_stratum_out, stratified_analysis
from activepam.simulation.summaries import aulc, budget_to_target, learning_curves, t_interval

# --------------------------------------------------------------------------- curve statistics


def test_t_interval_hand_computed():
    mean, lo, hi, n = t_interval([1.0, 2.0, 3.0, np.nan])
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd = 1
    assert (mean, n) == (2.0, 3)
    assert lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert t_interval([5.0])[:3] == (5.0, 5.0, 5.0)
    assert np.isnan(t_interval([])[0])


def test_aulc_normalised_trapezoid():
    assert aulc([0.1, 0.2, 0.3], [0.4, 0.4, 0.4]) == pytest.approx(0.4)
    assert aulc([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)
    # cut at 0.5 with interpolation: mean of the line y = x on [0, 0.5] = 0.25
    assert aulc([0.0, 1.0], [0.0, 1.0], x_max=0.5) == pytest.approx(0.25)
    assert aulc([0.2], [0.7]) == 0.7


def test_budget_to_target_interpolates():
    assert budget_to_target([0.1, 0.2, 0.3], [0.2, 0.6, 0.9], 0.8) == pytest.approx(
        0.2 + 0.1 * 2 / 3
    )
    assert budget_to_target([0.1, 0.2], [0.9, 0.95], 0.5) == 0.1
    assert np.isnan(budget_to_target([0.1, 0.2], [0.1, 0.2], 0.5))


def test_spread_cv_and_pielou():
    assert spread([0.5, 0.5, 0.5]) == pytest.approx((0.0, 1.0))
    cv, j = spread([1.0, 0.0])
    assert cv == pytest.approx(1.0) and j == pytest.approx(0.0)
    p = np.array([0.2, 0.3, 0.5])
    assert spread(p)[1] == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    assert np.isnan(spread([0.4])[0])


# --------------------------------------------------------------------------- divergence and MI


def test_divergence_to_rest_extremes():
    same = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(divergence_to_rest(same), 0.0, atol=1e-12)
    disjoint = np.array([[5.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(divergence_to_rest(disjoint), 1.0)


def test_mutual_information_bounds():
    # each stratum has its own species: MI = H(species) = 1 bit, fraction 1
    codes = np.array([0, 0, 1, 1])
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    mi = mutual_information(codes, Y, n_permutations=0)
    assert mi["mi_bits"] == pytest.approx(1.0) and mi["fraction"] == pytest.approx(1.0)
    # same species mix in every stratum: MI = 0
    Y2 = np.array([[1, 1], [1, 1], [1, 1], [1, 1]])
    assert mutual_information(codes, Y2, n_permutations=3)["mi_bits"] == pytest.approx(
        0.0, abs=1e-12
    )


def test_correlate():
    c = correlate([1, 2, 3, 4], [2, 4, 6, 8.5])
    assert c["pearson_r"] > 0.99 and c["spearman_rho"] == pytest.approx(1.0) and c["n"] == 4
    assert np.isnan(correlate([1, 2], [1, 2])["pearson_r"])


@pytest.mark.slow
def test_leave_one_stratum_out_flags_the_stratum_with_its_own_species():
    ds = tiny_dataset(n_rec_per_site=6, n_seg=5)  # sp3 only at site A
    cfg = SimConfig(pca_dims=0, strata=("site",))
    loso = leave_one_stratum_out(ds, "site", cfg, seed=0)
    assert list(loso["stratum_value"]) == ["A", "B", "C", "D"]
    a = loso.set_index("stratum_value").loc["A"]
    others = loso.set_index("stratum_value").drop("A")
    assert a["jsd_label"] > others["jsd_label"].max()
    assert a["drop_ap"] > others["drop_ap"].max()
    assert {"ap_in", "ap_out", "f1_in", "jsd_pred", "mean_pairwise_jsd"} <= set(loso.columns)


@pytest.mark.slow
def test_stratified_analysis_tables():
    ds = tiny_dataset(n_rec_per_site=4, n_seg=4)
    cfg = SimConfig(pca_dims=0, strata=("site",))
    out = stratified_analysis(
        ds, cfg, ["site"], ["site", "lat_band"], setting="t", n_permutations=2
    )
    assert set(out) == {"loso", "mi", "jsd"}
    assert list(out["mi"]["key"]) == ["site", "lat_band", "site+lat_band"]
    assert (out["mi"]["setting"] == "t").all() and (out["loso"]["dataset"] == "tiny").all()
    extra = stratified_analysis(
        ds, cfg, ["site"], ["site"], n_permutations=0, extra={"turnover": 0.5, "demo_seed": 1}
    )
    assert (extra["loso"]["turnover"] == 0.5).all() and (extra["mi"]["demo_seed"] == 1).all()
    assert len(out["jsd"]) == 16


# --------------------------------------------------------------------------- summaries and claims


def fake_results() -> pd.DataFrame:
    """Two strategies x 3 seeds x 3 rounds: 'good' is always 0.2 above 'base'."""
    rows = []
    for strategy, offset in (("good", 0.2), ("base", 0.0)):
        for seed in range(3):
            for r in range(3):
                frac = 0.05 * (r + 1)
                value = 0.3 + offset + 0.1 * r + 0.01 * seed
                rows.append(
                    {
                        "strategy": strategy,
                        "unit": "recording",
                        "seed": seed,
                        "round": r,
                        "n_units": r + 1,
                        "n_segments": 20 * (r + 1),
                        "n_recordings": r + 1,
                        "audio_seconds": 60.0 * (r + 1),
                        "unit_fraction": frac,
                        "segment_fraction": frac,
                        "recording_fraction": frac,
                        "audio_fraction": frac,
                        "stratum": "all",
                        "stratum_value": "all",
                        "metric": "macro_ap",
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def test_summarise_claims(tmp_path):
    results = fake_results()
    full = pd.DataFrame(
        {"stratum": ["all"], "stratum_value": ["all"], "metric": ["macro_ap"], "value": [0.7]}
    )
    params = {
        "metric": "macro_ap",
        "budget_axis": "recording_fraction",
        "target_fraction": 0.95,
        "claim": {"strategy": "good", "baseline": "base", "max_budget": 0.15},
    }
    per_run, summary, claims = summarise(results, full, params)
    assert claims["target"] == pytest.approx(0.665)
    # the middle of the window every run covers (0.05 .. 0.15), no longer half the final budget
    assert claims["mid_budget"] == pytest.approx(0.10)
    good = per_run[per_run.strategy == "good"]
    # good: 0.5, 0.6, 0.7 (+0.01 seed) at 0.05, 0.10, 0.15 -> crosses 0.665 between 0.10 and 0.15
    assert good["to_target_recording_fraction"].iloc[0] == pytest.approx(0.10 + 0.05 * 0.65)
    assert per_run[per_run.strategy == "base"]["reached_target"].sum() == 0
    c = claims["claim"]
    assert c["reaches_target_within_max_budget_runs"] == 3
    assert c["mean_curve_within_max_budget"] is True
    assert c["aulc_mid_disjoint_above_baseline"] is True
    assert c["aulc_mid_difference_paired"]["mean"] == pytest.approx(0.2)
    runs = []
    for (s, seed), g in results.groupby(["strategy", "seed"]):
        p = tmp_path / f"{s}_{seed}.parquet"
        g.to_parquet(p)
        runs.append(str(p))
    full.to_parquet(tmp_path / "full.parquet")
    out = {
        k: str(tmp_path / f"{k}.{e}")
        for k, e in (
            ("results", "parquet"),
            ("results_csv", "csv"),
            ("per_run", "csv"),
            ("summary", "csv"),
            ("claims", "json"),
        )
    }
    gather_to_files(runs, str(tmp_path / "full.parquet"), params, out)
    claims_file = json.loads((tmp_path / "claims.json").read_text())  # strict JSON: no NaN
    assert claims_file["strategies"]["base"]["to_target_mean_curve"] is None
    assert len(pd.read_parquet(out["results"])) == len(results)


def test_learning_curves_interval():
    curves = learning_curves(fake_results(), budget="recording_fraction")
    row = curves[(curves.strategy == "good") & (curves["round"] == 0)].iloc[0]
    assert row["mean"] == pytest.approx(0.51) and row["n_seeds"] == 3
    assert row["low"] < 0.51 < row["high"]


def test_jsonable():
    out = jsonable({"a": np.float64("nan"), "b": [np.int64(2), float("inf")], "c": np.bool_(True)})
    assert out == {"a": None, "b": [2, None], "c": True}


def test_write_json_is_nan_free(tmp_path):
    # write_json cleans plain floats and arrays too (json.dumps alone writes NaN, invalid JSON)
    from activepam.core.io import write_json

    path = write_json({"x": float("nan"), "arr": np.array([1.0, np.inf])}, tmp_path / "a.json")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "x": None,
        "arr": [1.0, None],
    }


@pytest.mark.slow
def test_figures_render(tmp_path):
    from activepam.simulation import figures as figs

    results = fake_results()
    full = pd.DataFrame(
        {"stratum": ["all"], "stratum_value": ["all"], "metric": ["macro_ap"], "value": [0.7]}
    )
    params = {
        "budget_axis": "recording_fraction",
        "claim": {"strategy": "good", "baseline": "base"},
    }
    per_run, summary, claims = summarise(results, full, params)
    out = {
        k: str(tmp_path / f"{k}.png")
        for k in ("learning_curves", "aulc", "to_target", "per_stratum")
    }
    figs.write_strategy_figures(results, per_run, summary, claims, out)
    loso = pd.DataFrame(
        {
            "dataset": "d",
            "setting": ["0", "0", "1", "1"],
            "key": "site",
            "stratum_value": list("abab"),
            "jsd_label": [0.1, 0.2, 0.5, 0.7],
            "drop_ap": [0.0, 0.01, 0.1, 0.2],
        }
    )
    mi = pd.DataFrame(
        {
            "dataset": "d",
            "setting": ["0", "1"],
            "key": "site",
            "fraction": [0.1, 0.4],
            "fraction_corrected": [0.05, 0.3],
        }
    )
    jsd = pd.DataFrame(
        {"key": "site", "a": list("aabb"), "b": list("abab"), "jsd_label": [0, 0.5, 0.5, 0]}
    )
    figs.write_stratified_figures(
        loso, mi, jsd, None, {k: str(tmp_path / f"s_{k}.png") for k in ("loso", "mi", "jsd")}
    )
    for p in [*out.values(), *(tmp_path / f"s_{k}.png" for k in ("loso", "mi", "jsd"))]:
        assert pd.io.common.file_exists(str(p))


# --------------------------------------------------------------------------- synthetic stand-in

SMALL_DEMO = {
    "n_sites": 4,
    "countries": ["NO", "ES"],
    "dates": ["2025-05-15"],
    "recordings_per_day": 6,
    "duration_s": 30,
    "n_species": 12,
    "mp3_fraction": 0.0,
}


def test_synthetic_dataset_follows_the_generator_and_turnover():
    from activepam.simulation.synthetic import EmbeddingSpec, call_events, synthetic_dataset

    spec = EmbeddingSpec(dim=16)
    ds = synthetic_dataset(SMALL_DEMO, spec, turnover=1.0)
    again = synthetic_dataset(SMALL_DEMO, spec, turnover=1.0)
    np.testing.assert_array_equal(ds.X, again.X)
    assert ds.X.shape == (4 * 6 * 10, 16) and ds.Y.shape[1] == 12
    assert ds.units["site"].nunique() == 4 and ds.info["turnover"] == 1.0
    recs, events, species, p = call_events(SMALL_DEMO, turnover=1.0)
    assert len(recs) == 24 and p["turnover"] == 1.0
    assert (events["offset_s"] <= 30).all() and (events["onset_s"] >= 0).all()

    def mean_jsd(turnover: float) -> float:
        d = synthetic_dataset(SMALL_DEMO, spec, turnover=turnover)
        codes, labels = pd.factorize(d.units["site"], sort=True)
        return float(
            np.nanmean(divergence_to_rest(stratum_label_distributions(codes, len(labels), d.Y)))
        )

    assert mean_jsd(1.0) > mean_jsd(0.0)
