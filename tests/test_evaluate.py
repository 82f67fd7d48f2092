"""Test-set choice, metrics (AP, AUROC, F1, ECE), per-stratum spread, round figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core import evaluate as ev
from activepam.core import metrics
from activepam.core.strata import allocate
from activepam.plots import rounds as pr

SP = ["A_a", "B_b", "C_c"]


def segs(n: int = 60) -> pd.DataFrame:
    sites = np.array(["S1"] * 30 + ["S2"] * 20 + ["S3"] * 10)[:n]
    t0 = pd.Timestamp("2025-06-01T00:00:00Z")
    return pd.DataFrame(
        {
            "segment_id": [f"r{i // 10}@{3.0 * (i % 10):.1f}" for i in range(n)],
            "recording_id": [f"r{i // 10}" for i in range(n)],
            "path": "x.wav",
            "start_s": [3.0 * (i % 10) for i in range(n)],
            "end_s": [3.0 * (i % 10) + 3 for i in range(n)],
            "site": sites,
            "habitat": np.where(sites == "S1", "forest", "wetland"),
            "lat": 50.0,
            "lon": 5.0,
            "segment_time": [t0 + pd.Timedelta(hours=3 * i) for i in range(n)],
        }
    )


def test_choose_test_set_whole_recordings_stratified_and_seeded() -> None:
    # issue 10 defect 1: the test set is whole recordings (segments r0..r5, 10 each; S3 has a
    # single recording, which stays in the pool)
    s = segs()
    a = ev.choose_test_set(s, 20, seed=3)
    assert len(a) == 20 and a["unit_id"].is_unique
    recs = set(a["recording_id"])
    assert len(recs) == 2 and (s["recording_id"].isin(recs).sum() == 20)
    assert a["site"].nunique() == 2 and "S3" not in set(a["site"])  # one recording per site
    shuffled = s.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(a, ev.choose_test_set(shuffled, 20, seed=3))
    assert any(not a.equals(ev.choose_test_set(s, 20, seed=k)) for k in range(4, 10))
    assert len(ev.choose_test_set(s, 12, seed=0)) == 10  # nearest whole-recording size
    with pytest.raises(ev.EvaluationError, match="only 60 segments"):
        ev.choose_test_set(s, 61)


def test_allocate_proportional_with_a_floor_of_one() -> None:
    # the one largest-remainder allocator (core.strata.allocate; evaluate's copy was merged)
    alloc = allocate([100, 1, 5], 10, weights=np.array([100.0, 1.0, 5.0]), minimum=1)
    assert alloc.tolist() == [8, 1, 1]
    # capped at the sizes, the rest redistributed; n over the total gives every unit
    assert allocate([2, 50], 10, weights=np.array([30.0, 1.0]), minimum=1).tolist() == [2, 8]
    assert allocate([3, 4], 99, weights=np.array([3.0, 4.0])).tolist() == [3, 4]


def test_rounds_metrics_match_sklearn_on_masked_cells() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(7)
    Y = (rng.random((90, 4)) < 0.3).astype(float)
    Y[rng.random(Y.shape) < 0.15] = np.nan  # unknown cells are left out per species
    P = np.round(rng.random(Y.shape), 1)  # ties
    m = ev.summary_metrics(Y, P, np.full(4, 0.5))
    aps, aucs = [], []
    for j in range(4):
        k = ~np.isnan(Y[:, j])
        aps.append(average_precision_score(Y[k, j], P[k, j]))
        aucs.append(roc_auc_score(Y[k, j], P[k, j]))
    known = ~np.isnan(Y)
    assert m["macro_ap"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert m["macro_auroc"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert m["micro_ap"] == pytest.approx(average_precision_score(Y[known], P[known]), abs=1e-12)
    sp = ev.per_species_metrics(Y, P, np.full(4, 0.5), ["a", "b", "c", "d"])
    np.testing.assert_allclose(sp["ap"], aps, atol=1e-12)


def test_summary_metrics_perfect_and_masked() -> None:
    Y = np.array([[1, 0, np.nan], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float)
    P = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.3, 0.2]])
    m = ev.summary_metrics(Y, P, np.full(3, 0.5))
    assert m["macro_ap"] == pytest.approx(1.0)
    assert m["micro_ap"] == pytest.approx(1.0)
    assert m["macro_auroc"] == pytest.approx(1.0)
    assert m["macro_f1"] == pytest.approx(1.0)
    assert m["n_species_evaluated"] == 2 and m["n_positives"] == 3
    bad = ev.summary_metrics(Y, 1 - P, np.full(3, 0.5))
    assert bad["macro_auroc"] == pytest.approx(0.0) and bad["macro_f1"] == pytest.approx(0.0)


def test_ece() -> None:
    y = np.array([1, 0, 1, 0])
    assert metrics.expected_calibration_error(y, np.array([1.0, 0.0, 1.0, 0.0])) == 0.0
    assert metrics.expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)


def test_coefficient_of_variation() -> None:
    assert metrics.coefficient_of_variation([1.0, 1.0, np.nan]) == 0.0
    assert metrics.coefficient_of_variation([1.0, 3.0]) == pytest.approx(0.5)
    assert np.isnan(metrics.coefficient_of_variation([0.7]))


def test_strata_metrics_and_species() -> None:
    s = segs(40).rename(columns={"segment_id": "unit_id"})
    rng = np.random.default_rng(0)
    Y = (rng.random((40, 3)) < 0.3).astype(float)
    P = np.clip(Y * 0.6 + rng.random((40, 3)) * 0.5, 0, 1)
    metrics, species = ev.evaluate_scores(
        Y,
        P,
        np.full(3, 0.5),
        s,
        SP,
        ["site", "habitat", "season", "diel"],
        train_counts={"A_a": {"n_pos": 4, "kind": "probe"}},
    )
    assert set(metrics["strata"]) == {"site", "habitat", "season", "diel"}
    assert set(metrics["strata"]["site"]["levels"]) == {"S1", "S2"}
    assert set(metrics["strata"]["diel"]["levels"]) <= {"night", "dawn", "day", "dusk"}
    assert metrics["strata"]["season"]["levels"].keys() == {"summer"}
    assert np.isfinite(metrics["strata"]["site"]["cv"]["macro_ap"])
    assert list(species["species"]) == SP
    assert species.loc[0, "train_positives"] == 4 and species.loc[0, "model"] == "probe"


def test_confusion_pairs() -> None:
    Y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    P = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.7], [0.0, 0.9, 0.0]])
    c = ev.confusion_pairs(Y, P, np.full(3, 0.5), SP)
    assert c.values.tolist() == [["A_a", "B_b", 2], ["A_a", "C_c", 1]]


def test_round_figures(tmp_path: Path) -> None:
    hist = pd.DataFrame(
        {
            "round": ["round_00", "round_01"],
            "n_labelled_units": [50, 100],
            "macro_ap": [0.4, 0.6],
            "baseline_macro_ap": [0.2, 0.2],
            "micro_ap": [0.5, 0.7],
            "baseline_micro_ap": [0.3, 0.3],
            "macro_auroc": [0.8, 0.9],
            "baseline_macro_auroc": [0.6, 0.6],
            "macro_f1": [0.3, 0.5],
            "baseline_macro_f1": [0.1, 0.1],
        }
    )
    lev = {"macro_ap": 0.5, "macro_f1": 0.4, "n_units": 10}
    metrics = {
        "round": "round_01",
        "strata": {
            "site": {
                "levels": {"S1": lev, "S2": {**lev, "macro_ap": None}},
                "cv": {"macro_ap": 0.1, "macro_f1": None},
            }
        },
    }
    conf = pd.DataFrame({"true": ["A_a", "A_a"], "predicted": ["B_b", "C_c"], "count": [3, 1]})
    out = [tmp_path / f"{n}.png" for n in ("curve", "strata", "confusion", "species")]
    species = pd.DataFrame(
        {
            "species": SP,
            "ap": [0.9, 0.3, np.nan],
            "train_positives": [12, 0, 0],
            "test_positives": [3, 1, 0],
            "model": ["probe", "birdnet", "birdnet"],
        }
    )
    pr.plot_round_figures(hist, metrics, conf, *out[:3], species=species, species_out=out[3])
    assert all(p.stat().st_size > 2000 for p in out)
    empty = pr.confusion_figure(conf.iloc[:0])
    assert empty.axes
