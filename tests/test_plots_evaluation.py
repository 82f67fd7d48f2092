"""Per-round evaluation figures: reliability diagram, long tail, diel heatmaps, embedding map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core.metrics import expected_calibration_error
from activepam.plots import evaluation as E


def test_calibration_bins_and_ece() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=p.size) < p).astype(float)  # calibrated by construction
    mean_p, freq, n = E.calibration_bins(y, p)
    assert n.sum() == p.size
    assert np.allclose(mean_p, freq, atol=0.03)
    assert E.ece(y, p) < 0.02
    over = np.clip(p * 1.6, 0, 1)  # over-confident
    assert E.ece(y, over) > 0.1
    # NaN cells (unknown truth) are left out, the rest agrees with evaluate's ECE
    y2 = y.copy()
    y2[:100] = np.nan
    assert E.ece(y2, p) == pytest.approx(expected_calibration_error(y[100:], p[100:]))


@pytest.mark.slow
def test_figures_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    species = [f"Genus{i} sp_Bird {i}" for i in range(12)]
    P = rng.uniform(size=(300, 12))
    Y = (rng.uniform(size=P.shape) < P * 0.5).astype(float)
    assert E.reliability_diagram(Y, P, species, tmp_path / "rel.png").stat().st_size > 10000
    per = pd.DataFrame(
        {
            "species": species,
            "n_train_positive": rng.integers(0, 60, 12),
            "ap": rng.uniform(size=12),
            "strata_covered": rng.integers(0, 5, 12),
        }
    )
    assert E.long_tail(per, tmp_path / "tail.png").stat().st_size > 5000
    scores = pd.DataFrame(P[:, :5], columns=species[:5])
    scores["site"] = rng.choice(["A", "B", "C"], size=300)
    scores["hour"] = rng.integers(0, 24, size=300)
    act = E.diel_activity(scores, species)
    assert set(act.columns) == {"species", "site", "hour", "mean_p"}
    assert len(act) <= 5 * 3 * 24
    row = act.iloc[0]
    m = scores[(scores["site"] == row.site) & (scores["hour"] == row.hour)][row.species].mean()
    assert row.mean_p == pytest.approx(m)
    assert E.diel_heatmaps(act, tmp_path / "diel.png", top=4).stat().st_size > 5000
    X = rng.normal(size=(300, 32))
    role = np.array(["pool"] * 250 + ["labelled"] * 40 + ["sampled"] * 10)
    xy, method = E.project_2d(X)
    assert xy.shape == (300, 2) and method in ("UMAP", "PCA")
    assert E.embedding_map(X, role, tmp_path / "map.png").stat().st_size > 5000
