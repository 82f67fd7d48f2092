"""Detection figures from a small synthetic segments table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from activepam.plots.detections import (
    detections_site_hour,
    plot_detection_figures,
    site_hour_counts,
    species_counts,
    species_label,
    species_rank_frequency,
    uncertainty_histograms,
)

SPECIES = [
    "Turdus merula_Eurasian Blackbird",
    "Erithacus rubecula_European Robin",
    "Fringilla coelebs_Common Chaffinch",
    "Parus major_Great Tit",
    "Phylloscopus collybita_Common Chiffchaff",
    "Sylvia atricapilla_Eurasian Blackcap",
    "Troglodytes troglodytes_Eurasian Wren",
    "Cuculus canorus_Common Cuckoo",
    "Strix aluco_Tawny Owl",
    "Columba palumbus_Common Wood-Pigeon",
]


def synthetic_segments(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Segments table with the CONTRACTS.md columns: 4 sites, long-tailed species."""
    rng = np.random.default_rng(seed)
    sites = pd.DataFrame(
        {
            "site": ["S01", "S02", "S03", "S04"],
            "lat": [60.1, 55.0, 46.2, 40.3],
            "country": ["NO", "DK", "FR", "ES"],
        }
    )
    site_idx = rng.integers(0, len(sites), n)
    p = 1 / np.arange(1, len(SPECIES) + 1) ** 1.5
    top1 = rng.beta(0.8, 2.0, n)
    top2 = top1 * rng.uniform(0, 1, n)
    start = pd.Timestamp("2025-05-15", tz="UTC") + pd.to_timedelta(rng.integers(0, 24, n), unit="h")
    ent = lambda q: -(q * np.log2(q) + (1 - q) * np.log2(1 - q))  # noqa: E731
    return pd.DataFrame(
        {
            "segment_id": [f"r{i}@0.0" for i in range(n)],
            "recording_id": [f"r{i}" for i in range(n)],
            "path": [f"r{i}.flac" for i in range(n)],
            "start_s": 0.0,
            "end_s": 3.0,
            "top1_species": rng.choice(SPECIES, n, p=p / p.sum()),
            "top1_confidence": top1,
            "top2_confidence": top2,
            "margin": top1 - top2,
            "max_binary_entropy": ent(np.clip(top1, 1e-6, 1 - 1e-6)),
            "mean_binary_entropy": rng.uniform(0, 0.05, n),
            "device_id": sites["site"].to_numpy()[site_idx],
            "site": sites["site"].to_numpy()[site_idx],
            "country": sites["country"].to_numpy()[site_idx],
            "habitat": "forest",
            "lat": sites["lat"].to_numpy()[site_idx],
            "lon": 5.0,
            "start_time": start,
            "segment_time": start,
        }
    )


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return synthetic_segments()


def test_site_hour_counts(segments: pd.DataFrame) -> None:
    counts = site_hour_counts(segments, 0.1)
    assert list(counts.columns) == list(range(24))
    assert list(counts.index) == ["S01", "S02", "S03", "S04"]  # north to south
    assert counts.to_numpy().sum() == (segments["top1_confidence"] >= 0.1).sum()


def test_site_hour_counts_unknown_site(segments: pd.DataFrame) -> None:
    seg = segments.copy()
    seg.loc[:9, ["site", "lat"]] = [None, np.nan]
    counts = site_hour_counts(seg, 0.0)
    assert counts.to_numpy().sum() == len(seg)
    assert "(no site)" in counts.index
    seg.loc[10:14, "segment_time"] = pd.NaT
    assert site_hour_counts(seg, 0.0).to_numpy().sum() == len(seg) - 5
    title = detections_site_hour(seg, 0.0).axes[0].get_title()
    assert "5 detections without a time not shown" in title


def test_species_counts_sorted(segments: pd.DataFrame) -> None:
    counts = species_counts(segments, 0.1)
    assert counts.is_monotonic_decreasing
    assert counts.sum() == (segments["top1_confidence"] >= 0.1).sum()
    assert species_label(SPECIES[0]) == "Eurasian Blackbird"
    assert species_label("Noise") == "Noise"


def test_figures_are_figures(segments: pd.DataFrame) -> None:
    assert isinstance(detections_site_hour(segments, 0.1), Figure)
    fig = species_rank_frequency(segments, 0.1, top_species=5)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert len(ax.get_xticklabels()) == 5
    fig = uncertainty_histograms(segments)
    assert [a.get_title() for a in fig.axes] == [
        "max_binary_entropy",
        "mean_binary_entropy",
        "margin",
        "top1_confidence",
    ]


def test_empty_segments_still_draw(segments: pd.DataFrame, tmp_path) -> None:
    empty = segments.iloc[:0]
    plot_detection_figures(empty, tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png")
    assert all((tmp_path / n).stat().st_size > 0 for n in ("a.png", "b.png", "c.png"))


@pytest.mark.slow
def test_plot_detection_figures_writes_pngs(segments: pd.DataFrame, tmp_path) -> None:
    paths = [tmp_path / "figures" / n for n in ("site_hour.png", "rank.png", "unc.png")]
    plot_detection_figures(segments, *paths, min_confidence=0.1, top_species=8)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figures").glob("*.tmp"))
