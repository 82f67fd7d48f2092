"""Acoustic indices: golden values on real Jura audio, DC invariance, windows, quarantine."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.detection.indices import (
    INDEX_COLUMNS,
    INDICES_SCHEMA,
    compute_indices,
    indices_for_inventory,
    indices_of_samples,
    roi_index,
)

JURA = "jura_24h/S4A03895_20190522_{}.wav"

# Computed once (scikit-maad 1.5.2, scipy 1.17, nperseg 1024, bands 0-1000 / 1000-10000 Hz),
# whole 10 s recordings at 22 kHz. Night (00h) vs dawn chorus (05h, 06h): the dawn files have
# many more ROIs, spectral peaks, a higher BI and an NDSI rising from -0.94 to -0.22. ADI is
# slightly *higher* at night (flat low-level noise fills every 1 kHz band evenly), as is usual.
GOLDEN = {
    "000000": {
        "ACI": 294.51054941484654,
        "ADI": 2.189864255020381,
        "AEI": 0.0629896285262775,
        "BI": 47.86448914487698,
        "NDSI": -0.9413924935698522,
        "rBA": 0.03018838623527374,
        "Ht": 0.9671836228749865,
        "Hf": 0.331508138943058,
        "H": 0.3206292428354912,
        "TFSD": 0.7456422849156117,
        "NP": 4.0,
        "ROI_count": 1.0,
        "nROI": 6.0236565420560755,
        "aROI": 0.04928446261682243,
        "BGNt": -46.91463976304162,
        "SNRt": 0.8594350468373051,
        "ACTtFraction": 0.13286713286713286,
        "rms_dBFS": -52.49597321268211,
    },  # noqa: E501
    "050000": {
        "ACI": 299.35121898446243,
        "ADI": 2.189755299419967,
        "AEI": 0.0684078124241524,
        "BI": 70.93769909035802,
        "NDSI": -0.8897309781143345,
        "rBA": 0.05835170358253707,
        "Ht": 0.9742113094974554,
        "Hf": 0.3442606960848501,
        "H": 0.33538266354132734,
        "TFSD": 0.7564484963170303,
        "NP": 7.0,
        "ROI_count": 17.0,
        "nROI": 102.40216121495328,
        "aROI": 1.7372773072429908,
        "BGNt": -45.81066634560513,
        "SNRt": 0.6119073531938497,
        "ACTtFraction": 0.0979020979020979,
        "rms_dBFS": -51.329755204344,
    },  # noqa: E501
    "060000": {
        "ACI": 346.25456063755666,
        "ADI": 2.156659521774166,
        "AEI": 0.1483333398853455,
        "BI": 208.89296614045185,
        "NDSI": -0.21782827991473278,
        "rBA": 0.642267660379862,
        "Ht": 0.9141967114026048,
        "Hf": 0.6682818128913295,
        "H": 0.6109410356354243,
        "TFSD": 0.8283451514338313,
        "NP": 20.0,
        "ROI_count": 52.0,
        "nROI": 313.23014018691595,
        "aROI": 8.724262558411215,
        "BGNt": -40.898346433598505,
        "SNRt": 2.0596707674393357,
        "ACTtFraction": 0.14918414918414918,
        "rms_dBFS": -47.73192130788714,
    },  # noqa: E501
}


@pytest.fixture(scope="module")
def jura(realdata: Path) -> dict[str, pd.Series]:
    return {h: compute_indices(realdata / JURA.format(h)).iloc[0] for h in GOLDEN}


def check_sane(row: pd.Series, n_bands: int) -> None:
    for col in INDEX_COLUMNS:
        assert np.isfinite(row[col]), col
    assert 0 <= row["ADI"] <= math.log(n_bands) + 1e-12
    assert 0 <= row["AEI"] <= 1
    assert -1 <= row["NDSI"] <= 1
    assert 0 <= row["Ht"] <= 1 and 0 <= row["Hf"] <= 1 and 0 <= row["H"] <= 1
    assert 0 <= row["TFSD"] <= 1 and 0 <= row["aROI"] <= 100 and 0 <= row["ACTtFraction"] <= 1
    assert row["NP"] >= 0 and row["ROI_count"] >= 0 and row["rms_dBFS"] <= 0


@pytest.mark.parametrize("hour", sorted(GOLDEN))
def test_golden_values(jura: dict[str, pd.Series], hour: str) -> None:
    row = jura[hour]
    assert row["window_start_s"] == 0.0 and row["window_end_s"] == 10.0
    assert row["sample_rate"] == 22000
    check_sane(row, n_bands=9)
    got = np.array([row[c] for c in GOLDEN[hour]], dtype=float)
    np.testing.assert_allclose(
        got,
        list(GOLDEN[hour].values()),
        rtol=1e-6,
        err_msg=f"indices of {JURA.format(hour)} changed",
    )


def test_dawn_chorus_vs_night(jura: dict[str, pd.Series]) -> None:
    night, dawn = jura["000000"], jura["060000"]
    assert dawn["ROI_count"] > 10 * night["ROI_count"]
    assert dawn["NP"] > night["NP"] and dawn["BI"] > night["BI"] and dawn["H"] > night["H"]
    assert dawn["NDSI"] > night["NDSI"] + 0.5


@pytest.mark.parametrize("hour", ["060000", "070000"])
def test_roi_index_matches_maad(realdata: Path, hour: str) -> None:
    """The fast double threshold gives maad's region_of_interest_index values exactly."""
    import warnings

    import maad.features
    import maad.sound

    x, sr = sf.read(realdata / JURA.format(hour))
    sxx, tn, fn, _ = maad.sound.spectrogram(x - x.mean(), sr, nperseg=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n_roi, a_roi = maad.features.region_of_interest_index(sxx, tn, fn)
    count, per_min, cover = roi_index(sxx, tn, fn)
    assert count > 10
    assert per_min == pytest.approx(n_roi, rel=1e-12)
    assert cover == pytest.approx(a_roi, rel=1e-12)


def test_dc_offset_removed(realdata: Path, tmp_path: Path) -> None:
    """File + constant offset (exact in float32) gives the same indices as the file."""
    src = realdata / JURA.format("060000")
    x, sr = sf.read(src, dtype="float32")
    assert abs(float(x.mean())) > 0.02  # the Jura recorder has a DC offset
    shifted = tmp_path / "offset.wav"
    sf.write(shifted, x + np.float32(0.25), sr, subtype="FLOAT")
    a, b = compute_indices(src).iloc[0], compute_indices(shifted).iloc[0]
    np.testing.assert_allclose(
        b[list(INDEX_COLUMNS)].astype(float), a[list(INDEX_COLUMNS)].astype(float), rtol=1e-6
    )


def test_dc_offset_arrays() -> None:
    rng = np.random.default_rng(1)
    sr = 22050
    t = np.arange(5 * sr) / sr
    x = 0.01 * rng.standard_normal(len(t)) + 0.05 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
    a, b = indices_of_samples(x, sr), indices_of_samples(x - 0.3, sr)
    for col in INDEX_COLUMNS:
        assert b[col] == pytest.approx(a[col], rel=1e-6, abs=1e-12), col


def test_silence_and_low_rate() -> None:
    silent = indices_of_samples(np.zeros(16000 * 3), 16000)
    assert silent["rms_dBFS"] == -np.inf
    assert all(np.isnan(silent[c]) for c in INDEX_COLUMNS if c != "rms_dBFS")
    x = np.random.default_rng(2).standard_normal(8000 * 3) * 0.1
    low = indices_of_samples(x, 8000)  # bio band clipped to 1000-4000 Hz: 3 ADI bands
    assert 0 <= low["ADI"] <= math.log(3) + 1e-12
    with pytest.raises(ValueError, match="too short"):
        indices_of_samples(x[:100], 8000)


def test_windows(realdata: Path) -> None:
    path = realdata / JURA.format("050000")
    df = compute_indices(path, window_s=3)
    assert df["window_start_s"].tolist() == [0.0, 3.0, 6.0]  # 9-10 s (< half a window) skipped
    assert df["window_end_s"].tolist() == [3.0, 6.0, 9.0]
    capped = compute_indices(path, window_s=0, max_window_s=4)
    assert capped["window_start_s"].tolist() == [0.0, 4.0, 8.0]
    assert capped["window_end_s"].tolist() == [4.0, 8.0, 10.0]
    assert df[list(INDEX_COLUMNS)].notna().all().all()


def test_indices_for_inventory_quarantines_bad_files(realdata: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    inventory = pd.DataFrame(
        {
            "recording_id": ["r0", "bad", "r5"],
            "path": [
                str(realdata / JURA.format("000000")),
                str(bad),
                str(realdata / JURA.format("050000")),
            ],
            "site": ["jura", None, "jura"],
            "start_time": pd.to_datetime(["2019-05-22 00:00", None, "2019-05-22 05:00"], utc=True),
            "shard": ["0000", "0000", "0001"],
        }
    )
    indices, quarantine = indices_for_inventory(inventory, threads=2, window_s=5, progress=False)
    assert indices["recording_id"].tolist() == ["r0", "r0", "r5", "r5"]
    assert indices["window_time"].iloc[1] == pd.Timestamp("2019-05-22 00:00:05", tz="UTC")
    assert quarantine["path"].tolist() == [str(bad)]
    assert quarantine["stage"].tolist() == ["indices"]

    # shards + gather (DuckDB), including an empty shard: the rules indices_shard and
    # gather_indices through their step functions, with params.yaml's ``indices`` defaults
    from activepam.detection import steps

    inv_path = tmp_path / "inventory.parquet"
    inventory.to_parquet(inv_path)
    sh = tmp_path / "shards"
    for shard in ("0000", "0001", "0002"):
        steps.indices_shard(
            inv_path,
            shard,
            sh / f"{shard}.parquet",
            sh / f"{shard}.q.csv",
            window_s=0,
            anthro_band=[0, 1000],
            bio_band=[1000, 10000],
        )
    n = steps.gather_indices(
        [sh / f"{s}.parquet" for s in ("0001", "0000", "0002")],
        [sh / f"{s}.q.csv" for s in ("0000", "0001", "0002")],
        tmp_path / "indices.parquet",
        tmp_path / "quarantine.csv",
    )
    table = pq.read_table(tmp_path / "indices.parquet")
    assert n == 2 and table.schema.equals(INDICES_SCHEMA)
    assert table.column("recording_id").to_pylist() == ["r0", "r5"]
    assert pd.read_csv(tmp_path / "quarantine.csv")["path"].tolist() == [str(bad)]
