"""Targets from labels, the per-species probe with BirdNET fallback, re-scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core.labels import LABEL_COLUMNS
from activepam.core.uncertainty import binary_entropy
from activepam.rounds import train as tr

SP = ["A_a", "B_b", "C_c"]


def segments(n_rec: int = 2, n_seg: int = 4) -> pd.DataFrame:
    rows = []
    for r in range(n_rec):
        for s in range(n_seg):
            rows.append(
                {
                    "segment_id": f"r{r}@{3.0 * s:.1f}",
                    "recording_id": f"r{r}",
                    "path": f"x/r{r}.wav",
                    "start_s": 3.0 * s,
                    "end_s": 3.0 * s + 3,
                    "top1_species": "Z_z",
                    "top1_confidence": np.float32(0.5),
                    "top2_confidence": np.float32(0.1),
                    "margin": np.float32(0.4),
                    "max_binary_entropy": np.float32(1.0),
                    "mean_binary_entropy": np.float32(0.5),
                    "site": "S",
                }
            )
    return pd.DataFrame(rows)


def label(
    unit: str,
    species: str,
    present: int,
    annotator: str = "ann",
    unit_type: str = "segment",
    begin: float = np.nan,
    end: float = np.nan,
    in_target: int = 1,
) -> dict:
    rec = unit.split("@")[0]
    start = float(unit.split("@")[1]) if "@" in unit else 0.0
    return {
        "unit_id": unit,
        "unit_type": unit_type,
        "recording_id": rec,
        "path": "",
        "start_s": start,
        "end_s": start + 3 if unit_type == "segment" else 12.0,
        "species": species,
        "present": present,
        "sel_begin_s": begin,
        "sel_end_s": end,
        "in_target": in_target,
        "annotator": annotator,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=list(LABEL_COLUMNS))


def test_segment_targets_closed_world() -> None:
    lab = frame(
        [
            label("r0@0.0", "A_a", 1),
            label("r0@0.0", "B_b", 0),
            label("r0@3.0", "", 0),  # empty table: negative for every species
            label("r0@6.0", "C_c", 1, in_target=0),
        ]
    )  # outside the target: not a label
    ids, Y = tr.segment_targets(lab, segments(), SP)
    assert list(ids) == ["r0@0.0", "r0@3.0", "r0@6.0"]
    np.testing.assert_array_equal(Y, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_recording_units_and_votes() -> None:
    lab = frame(
        [
            label("r1", "A_a", 1, unit_type="recording", begin=3.5, end=4.0),  # -> r1@3.0
            label("r1", "B_b", 1, unit_type="recording"),  # untimed: somewhere -> unknown
            label("r0@0.0", "A_a", 1, "ann"),
            label("r0@0.0", "A_a", 1, "bob"),
            label("r0@0.0", "", 0, "cid"),  # 2 vs 1: present
            label("r0@3.0", "C_c", 1, "ann"),
            label("r0@3.0", "", 0, "bob"),  # tie: unknown
        ]
    )
    ids, Y = tr.segment_targets(lab, segments(), SP)
    y = dict(zip(ids, Y))
    assert set(ids) == {"r0@0.0", "r0@3.0", "r1@0.0", "r1@3.0", "r1@6.0", "r1@9.0"}
    np.testing.assert_array_equal(y["r1@3.0"], [1, np.nan, 0])
    np.testing.assert_array_equal(y["r1@0.0"], [0, np.nan, 0])
    np.testing.assert_array_equal(y["r0@0.0"], [1, 0, 0])
    np.testing.assert_array_equal(y["r0@3.0"], [0, 0, np.nan])


def test_targets_reject_unknown_units_and_species() -> None:
    with pytest.raises(tr.TrainError, match="unit 'zz@0.0' is not a segment"):
        tr.segment_targets(frame([label("zz@0.0", "A_a", 1)]), segments(), SP)
    with pytest.raises(tr.TrainError, match="species 'Q_q'"):
        tr.segment_targets(frame([label("r0@0.0", "Q_q", 1)]), segments(), SP)


def test_training_hash_order_invariant() -> None:
    lab = frame([label("r0@0.0", "A_a", 1), label("r0@3.0", "", 0)])
    h = tr.training_hash(lab)
    assert h == tr.training_hash(lab.iloc[::-1])
    assert len(h) == 64
    changed = lab.copy()
    changed.loc[0, "present"] = 0
    assert tr.training_hash(changed) != h


def test_tune_threshold() -> None:
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    t = tr.tune_threshold(y, p)
    assert 0.3 < t <= 0.7
    assert tr.tune_threshold(np.zeros(3), p[:3], 0.42) == 0.42


def toy_xy(n: int = 120, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < [0.4, 0.08, 0.0]).astype(float)
    protos = rng.normal(0, 2, (3, d))
    X = Y @ protos + rng.normal(0, 0.5, (n, d))
    return X.astype(np.float32), Y


def test_fit_probe_calibration_and_fallback() -> None:
    X, Y = toy_xy()
    model = tr.fit_round_model(X, Y, SP, tr.TrainOptions(calibrate_min=20), "h")
    kinds = {s: m.kind for s, m in model.species.items()}
    assert kinds == {"A_a": "calibrated", "B_b": "probe", "C_c": "birdnet"}
    assert model.species["C_c"].n_pos == 0 and model.species["C_c"].n_neg == 120
    B = np.full((len(X), 3), 0.33)
    P = model.predict(X, B)
    assert np.all(P[:, 2] == 0.33)  # no positives: BirdNET's own scores
    from sklearn.metrics import average_precision_score

    assert average_precision_score(Y[:, 0], P[:, 0]) > 0.95
    assert 0 < model.thresholds[0] < 1
    assert model.summary()["A_a"]["kind"] == "calibrated"


def test_masked_labels_are_ignored() -> None:
    X, Y = toy_xy()
    Y[:60, 0] = np.nan
    model = tr.fit_round_model(X, Y, SP, tr.TrainOptions())
    assert model.species["A_a"].n_pos + model.species["A_a"].n_neg == 60


def test_save_load_and_sidecar(tmp_path: Path) -> None:
    X, Y = toy_xy()
    model = tr.fit_round_model(X, Y, SP, tr.TrainOptions(), "abc")
    tr.save_model(model, tmp_path / "m.joblib", tmp_path / "m.json", {"round": "round_00"})
    back = tr.load_model(tmp_path / "m.joblib")
    np.testing.assert_allclose(
        back.predict(X, np.zeros((len(X), 3))), model.predict(X, np.zeros((len(X), 3)))
    )
    import json

    side = json.loads((tmp_path / "m.json").read_text())
    assert side["training_hash"] == "abc" and side["round"] == "round_00"
    assert side["species"]["C_c"]["kind"] == "birdnet"


def test_birdnet_matrix_and_rescoring() -> None:
    seg = segments(1, 3)
    preds = pd.DataFrame(
        {
            "segment_id": ["r0@0.0", "r0@0.0", "r0@3.0"],
            "species": ["A_a", "Z_z", "C_c"],
            "confidence": [0.9, 0.8, 0.4],
        }
    )
    B = tr.birdnet_matrix(preds, seg["segment_id"], SP)
    np.testing.assert_allclose(B, [[0.9, 0, 0], [0, 0, 0.4], [0, 0, 0]])
    out = tr.rescored_segments(seg, B, SP)
    assert list(out.columns) == list(seg.columns)
    assert (out.dtypes == seg.dtypes).all()
    assert list(out["top1_species"]) == ["A_a", "C_c", "A_a"]
    np.testing.assert_allclose(out["max_binary_entropy"], binary_entropy(B).max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(out["margin"], [0.9, 0.4, 0.0], rtol=1e-6)
    long = tr.predictions_long(seg, B, SP, k=2)
    assert list(long.columns) == [
        "segment_id",
        "recording_id",
        "path",
        "start_s",
        "end_s",
        "rank",
        "species",
        "confidence",
    ]
    assert len(long) == 6 and long["species"].iloc[0] == "A_a"
