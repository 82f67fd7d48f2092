"""Segment uncertainty measures and file-level aggregation (hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from activepam.core.uncertainty import (
    AGGREGATIONS,
    aggregate,
    aggregate_recordings,
    binary_entropy,
    segment_uncertainty,
    top_k,
)

H25 = 0.25 * math.log2(4) + 0.75 * math.log2(4 / 3)  # H(0.25) = 0.811278...


def test_binary_entropy_hand_values() -> None:
    h = binary_entropy(np.array([0.0, 1.0, 0.5, 0.25, 0.75]))
    np.testing.assert_allclose(h, [0.0, 0.0, 1.0, H25, H25], atol=1e-12)
    assert np.all(np.isfinite(binary_entropy(np.array([1e-30, 1 - 1e-16]))))


def test_segment_uncertainty_hand_values() -> None:
    scores = np.array([[0.5, 0.25, 0.0, 1.0], [0.1, 0.4, 0.4, 0.2]], dtype=np.float32)
    u = segment_uncertainty(scores)
    np.testing.assert_array_equal(u["top1_index"], [3, 1])
    np.testing.assert_allclose(u["top1_confidence"], [1.0, 0.4], rtol=1e-6)
    np.testing.assert_allclose(u["top2_confidence"], [0.5, 0.4], rtol=1e-6)
    np.testing.assert_allclose(u["margin"], [0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(u["ratio"], [0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(u["max_binary_entropy"][0], 1.0, atol=1e-9)
    np.testing.assert_allclose(u["mean_binary_entropy"][0], (1.0 + H25) / 4, atol=1e-9)
    h = [binary_entropy(np.array(p)).item() for p in (0.1, 0.4, 0.4, 0.2)]
    np.testing.assert_allclose(u["max_binary_entropy"][1], max(h), rtol=1e-6)
    np.testing.assert_allclose(u["mean_binary_entropy"][1], sum(h) / 4, rtol=1e-6)


def test_segment_uncertainty_edge_shapes() -> None:
    one = segment_uncertainty(np.array([[0.3], [0.0]]))
    np.testing.assert_allclose(one["top2_confidence"], [0.0, 0.0])
    np.testing.assert_allclose(one["ratio"], [0.0, 0.0])  # top1 = 0 -> ratio 0
    empty = segment_uncertainty(np.zeros((0, 5)))
    assert all(len(v) == 0 for v in empty.values())
    with pytest.raises(ValueError, match="2-d"):
        segment_uncertainty(np.zeros(3))


def test_top_k_sorted_desc_ties_by_index() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.9, 0.2], [0.3, 0.3, 0.3, 0.3, 0.3]], dtype=np.float32)
    idx, val = top_k(s, 3)
    np.testing.assert_array_equal(idx, [[1, 3, 2], [0, 1, 2]])
    np.testing.assert_allclose(val, [[0.9, 0.9, 0.5], [0.3, 0.3, 0.3]], rtol=1e-6)
    idx, val = top_k(s, 10)  # capped at the number of species
    assert idx.shape == (2, 5)
    assert np.all(np.diff(val, axis=1) <= 0)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("topk", (0.9 + 0.5) / 2),
        ("mean", (0.1 + 0.5 + 0.3 + 0.9) / 4),
        ("median", 0.4),
        ("max", 0.9),
    ],
)
def test_aggregate_hand_values(method: str, expected: float) -> None:
    assert aggregate([0.1, 0.5, 0.3, 0.9], method, k=2) == pytest.approx(expected)


def test_aggregate_topk_fewer_than_k_is_mean_and_nan_ignored() -> None:
    assert aggregate([0.2, 0.4], "topk", k=10) == pytest.approx(0.3)
    assert aggregate([0.2, np.nan, 0.4], "topk", k=10) == pytest.approx(0.3)
    assert math.isnan(aggregate([], "topk"))


def test_aggregate_mean_event() -> None:
    values = [0.8, 0.2, 0.6, 0.4]
    conf = [0.9, 0.1, 0.5, 0.49]
    assert aggregate(values, "mean_event", event_threshold=0.5, event_conf=conf) == pytest.approx(
        0.7
    )
    assert math.isnan(aggregate(values, "mean_event", event_threshold=0.95, event_conf=conf))
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(values, "mode")


def _segments(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 25, size=12)
    rows = []
    for r, k in enumerate(n):
        for _ in range(k):
            rows.append(
                {
                    "recording_id": f"rec{r:02d}",
                    "max_binary_entropy": rng.random(),
                    "top1_confidence": rng.random(),
                }
            )
    df = pd.DataFrame(rows)
    df.loc[3, "max_binary_entropy"] = np.nan
    return df


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_aggregate_recordings_matches_aggregate(method: str) -> None:
    seg = _segments()
    out = aggregate_recordings(seg, method=method, k=5, event_threshold=0.5)
    assert list(out.columns) == ["recording_id", "score", "n_segments"]
    assert out["recording_id"].is_unique
    for rid, grp in seg.groupby("recording_id"):
        row = out.set_index("recording_id").loc[rid]
        want = aggregate(
            grp["max_binary_entropy"].to_numpy(),
            method,
            k=5,
            event_threshold=0.5,
            event_conf=grp["top1_confidence"].to_numpy(),
        )
        assert row["n_segments"] == len(grp)
        if math.isnan(want):
            assert math.isnan(row["score"])
        else:
            assert row["score"] == pytest.approx(want)


def test_aggregate_recordings_errors() -> None:
    with pytest.raises(KeyError, match="margin"):
        aggregate_recordings(_segments(), column="margin")
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_recordings(_segments(), method="mode")
