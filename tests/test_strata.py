"""Strata, solar position, allocation and divergence (activepam.core.strata)."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from activepam.core.strata import (
    StrataError,
    allocate,
    build_strata,
    confidence_bin,
    diel_period,
    divergence_weights,
    jensen_shannon,
    lat_band,
    pairwise_jsd,
    season,
    solar_elevation,
    species_distributions,
    to_unix_seconds,
)


def _ts(*stamps: str) -> np.ndarray:
    return to_unix_seconds(pd.Series(pd.to_datetime(list(stamps), utc=True)))


# --------------------------------------------------------------------------- solar / diel


def test_solar_elevation_matches_astral() -> None:
    from astral import Observer
    from astral.sun import elevation

    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-65, 70, 50), rng.uniform(-180, 180, 50)
    secs = rng.uniform(0, 365 * 86400, 50) + pd.Timestamp("2025-01-01", tz="UTC").timestamp()
    ours = solar_elevation(lat, lon, secs)
    ref = [
        elevation(Observer(a, o), dt.datetime.fromtimestamp(t, dt.UTC), with_refraction=False)
        for a, o, t in zip(lat, lon, secs)
    ]
    assert np.max(np.abs(ours - np.array(ref))) < 0.05


def test_diel_known_cases_lat48_june() -> None:
    # lat 48 N, lon 0 in June: solar noon ~12:00 UTC, sunrise ~04:00, sunset ~20:00 UTC
    t = _ts(
        "2025-06-21T12:00:00Z",
        "2025-06-21T00:00:00Z",
        "2025-06-21T04:00:00Z",
        "2025-06-21T20:00:00Z",
    )
    out = diel_period(np.full(4, 48.0), np.zeros(4), t)
    assert list(out) == ["day", "night", "dawn", "dusk"]


def test_diel_thresholds_and_missing() -> None:
    t = _ts("2025-06-21T04:00:00Z", "2025-06-21T04:00:00Z")
    # with a 0-wide twilight window dawn vanishes: sunrise elevation is ~0 -> day or night
    narrow = diel_period(np.array([48.0, np.nan]), np.array([0.0, 0.0]), t, -0.0001, 0.0001)
    assert narrow[0] in ("day", "night") and pd.isna(narrow[1])
    with pytest.raises(StrataError, match="twilight_low"):
        diel_period(np.zeros(1), np.zeros(1), t[:1], 5, -5)


def test_diel_vectorised_fast() -> None:
    n = 300_000
    rng = np.random.default_rng(0)
    sites = rng.integers(0, 50, n)
    lat, lon = np.linspace(35, 70, 50)[sites], np.linspace(-10, 25, 50)[sites]
    t = pd.Timestamp("2025-01-01", tz="UTC").timestamp() + rng.integers(0, 365 * 288, n) * 300.0
    t0 = time.perf_counter()
    out = diel_period(lat, lon, t)
    assert time.perf_counter() - t0 < 5
    assert set(out.categories) == {"night", "dawn", "day", "dusk"}
    # agrees with the exact per-row elevation up to the 10-min rounding (<= 1.25 deg)
    exact = solar_elevation(lat[:2000], lon[:2000], t[:2000])
    codes = np.asarray(out.codes[:2000])
    assert np.all(exact[codes == 2] > 6 - 1.3)
    assert np.all(exact[codes == 0] < -6 + 1.3)
    assert np.all(np.abs(exact[(codes == 1) | (codes == 3)]) < 6 + 1.3)


# --------------------------------------------------------------------------- keys


def test_season_default_and_custom() -> None:
    months = np.array([1, 3, 6, 9, 12, -1])
    assert list(season(months)[:5]) == ["winter", "spring", "summer", "autumn", "winter"]
    assert pd.isna(season(months)[5])
    wet = season(np.array([1, 7]), {"wet": [11, 12, 1, 2, 3, 4], "dry": [5, 6, 7, 8, 9, 10]})
    assert list(wet) == ["wet", "dry"]
    with pytest.raises(StrataError, match="more than one season"):
        season(months, {"a": [1, 2], "b": [2]})
    with pytest.raises(StrataError, match="13"):
        season(months, {"a": [13]})


def test_lat_band_width_and_edges() -> None:
    lat = np.array([44.9, 45.0, 51.2, np.nan])
    assert list(lat_band(lat, 5)[:3]) == ["40-45", "45-50", "50-55"]
    assert pd.isna(lat_band(lat, 5)[3])
    edged = lat_band(np.array([30.0, 40.0, 55.0, 60.0, 70.0]), edges=[35, 50, 60])
    assert pd.isna(edged[0]) and pd.isna(edged[4])
    assert list(edged[1:4]) == ["35-50", "50-60", "50-60"]
    with pytest.raises(StrataError, match="lat_band_edges"):
        lat_band(lat, edges=[5, 1])


def test_confidence_bins() -> None:
    out = confidence_bin(np.array([0.0, 0.05, 0.1, 0.35, 0.99, 1.0]))
    assert list(out) == ["0-0.1", "0-0.1", "0.1-0.2", "0.3-0.4", "0.9-1", "0.9-1"]
    assert len(out.categories) == 10


def test_build_strata_combination_and_unknown() -> None:
    units = pd.DataFrame(
        {
            "site": ["A", "A", "B", None],
            "lat": [48.0, 48.0, 48.0, 48.0],
            "lon": [0.0, 0.0, 0.0, 0.0],
            "segment_time": pd.to_datetime(
                [
                    "2025-06-21T12:00:00Z",
                    "2025-06-21T00:00:00Z",
                    "2025-06-21T12:00:00Z",
                    "2025-06-21T12:00:00Z",
                ]
            ),
        }
    )
    st = build_strata(units, ["site", "diel"])
    labels = [st.labels[c] for c in st.codes]
    assert labels == [
        "site=A|diel=day",
        "site=A|diel=night",
        "site=B|diel=day",
        "site=unknown|diel=day",
    ]
    assert build_strata(units, []).labels == ["all"]
    with pytest.raises(StrataError, match="unknown key"):
        build_strata(units, ["planet"])
    with pytest.raises(StrataError, match="habitat"):
        build_strata(units, ["habitat"])


def test_recording_time_is_midpoint() -> None:
    recs = pd.DataFrame(
        {
            "recording_id": ["r"],
            "lat": [48.0],
            "lon": [0.0],
            "duration_s": [7200.0],
            "start_time": pd.to_datetime(["2025-06-21T03:00:00Z"]),
        }
    )
    # midpoint 04:00 UTC -> dawn (start 03:00 would be night-ish)
    assert build_strata(recs, ["diel"]).labels == ["diel=dawn"]


# --------------------------------------------------------------------------- allocation


def test_equal_allocation_within_one() -> None:
    for n in (7, 10, 23, 100):
        alloc = allocate([50, 50, 50, 50, 50, 50, 50], n, seed=n)
        assert alloc.sum() == n and alloc.max() - alloc.min() <= 1


def test_remainder_redistribution() -> None:
    # equal share 10 each; stratum 0 has only 1 unit, stratum 1 only 2: the rest water-fills
    alloc = allocate([1, 2, 100], 30)
    assert list(alloc) == [1, 2, 27]
    alloc = allocate([1, 2, 100, 100], 30)
    assert alloc[:2].tolist() == [1, 2] and sorted(alloc[2:].tolist()) == [13, 14]


def test_allocation_meets_batch_or_takes_all() -> None:
    assert allocate([3, 4], 100).tolist() == [3, 4]
    assert allocate([], 5).tolist() == []
    assert allocate([5, 5, 5], 0).tolist() == [0, 0, 0]


def test_proportional_and_weighted_allocation() -> None:
    assert allocate([10, 30, 60], 10, weights=np.array([10, 30, 60])).tolist() == [1, 3, 6]
    # zero-weight strata only get units once the weighted ones are full
    assert allocate([2, 50], 10, weights=np.array([1.0, 0.0])).tolist() == [2, 8]
    with pytest.raises(ValueError, match="weights"):
        allocate([1, 2], 3, weights=np.array([1.0]))


def test_minimum_per_stratum() -> None:
    alloc = allocate([1, 5, 100], 9, weights=np.array([0.0, 0.0, 1.0]), minimum=2)
    assert alloc.tolist() == [1, 2, 6]


def test_allocation_seeded_ties() -> None:
    a = allocate([10] * 6, 3, seed=1)
    assert a.sum() == 3 and a.max() == 1
    assert np.array_equal(a, allocate([10] * 6, 3, seed=1))


# --------------------------------------------------------------------------- divergence


def test_jsd_identical_zero_disjoint_one() -> None:
    p = np.array([0.2, 0.3, 0.5])
    assert jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    m = pairwise_jsd(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]]))
    assert m[0, 1] == pytest.approx(0) and m[0, 2] == pytest.approx(1) and np.allclose(m, m.T)


def test_divergence_weights_from_species() -> None:
    codes = np.array([0, 0, 1, 1, 2, 2])
    species = pd.Series(["a", "b", "a", "b", "c", "c"])
    dists = species_distributions(codes, 3, species)
    assert np.allclose(dists[0], dists[1])
    w = divergence_weights(dists)
    # strata 0 and 1 identical (JSD 0), both disjoint from 2 (JSD 1)
    assert w.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert divergence_weights(dists[:1]).tolist() == [1.0]
