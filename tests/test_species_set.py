"""Which species the uncertainty is computed over (issue 10, defect 7): by default the project's
label set, else the location/week-filtered species; the full vector stays an option, and the
species set used is reported per segment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from activepam.detection import birdnet as bn
from activepam.detection.detect import detect_files
from activepam.detection.params import species_filter_from_config
from activepam.detection.tables import DetectError


@pytest.fixture(scope="module")
def model() -> bn.BirdNET:
    return bn.BirdNET(threads=2, batch_size=8)


def _noise(path: Path, seconds: float = 9.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.05 * rng.normal(size=int(seconds * 48000))).astype(np.float32), 48000)
    return path


@pytest.mark.slow
def test_auto_prefers_the_label_set_and_keeps_its_full_vector(
    tmp_path: Path, model: bn.BirdNET
) -> None:
    labels = bn.load_labels()
    label_set = tmp_path / "species.csv"
    chosen = labels[200:224]
    pd.DataFrame({"species": chosen}).to_csv(label_set, index=False)
    sf_ = species_filter_from_config({"species_filter": "auto"}, label_set)
    assert sf_.mode == "list" and len(sf_.indices()) == 24
    inv = pd.DataFrame(
        {
            "recording_id": ["r1"],
            "path": [str(_noise(tmp_path / "a.wav"))],
            "lat": [48.0],
            "lon": [7.0],
            "start_time": pd.to_datetime(["2025-05-15T04:00:00Z"], utc=True),
        }
    )
    detect_files(inv, tmp_path / "out", top_k=5, progress=False, model=model, species_filter=sf_)
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert (seg["species_set"] == "label set (24)").all()
    pred = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    # every label-set score of every segment, not only the top 5: one probability vector
    assert pred.groupby("segment_id")["species"].nunique().eq(24).all()
    assert set(pred["species"]) == set(chosen)


@pytest.mark.slow
def test_auto_without_label_set_filters_by_location(tmp_path: Path) -> None:
    sf_ = species_filter_from_config({"species_filter": "auto"}, tmp_path / "missing.csv")
    assert sf_.mode == "location"
    n_loc = len(sf_.indices(46.5, 6.0, 21))
    assert 50 < n_loc < 1500
    assert sf_.describe(46.5, 6.0, 21) == f"location week 21 ({n_loc})"
    assert sf_.describe(None, None, 21) == "all (6522)"  # no location: reported as such
    assert len(species_filter_from_config({"species_filter": "none"}).indices()) == 6522
    with pytest.raises(DetectError, match="label set file .* does not exist"):
        species_filter_from_config({"species_filter": "label_set"}, tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"species": ["Not a bird_Nothing"]}).to_csv(bad, index=False)
    with pytest.raises(DetectError, match="not a BirdNET V2.4 label"):
        species_filter_from_config({"species_filter": "label_set"}, bad).indices()


@pytest.mark.realdata
def test_french_forest_uncertainty_ignores_impossible_species(
    realdata: Path, tmp_path: Path, model: bn.BirdNET
) -> None:
    """24 h of a Jura spruce forest (May): over all 6522 species, the most uncertain species
    include out-of-range ones; with the default (location/week) set none of them can occur."""
    files = sorted((realdata / "jura_24h").glob("S4A03895_*.wav"))[:8]
    inv = pd.DataFrame(
        {
            "recording_id": [f.stem for f in files],
            "path": list(map(str, files)),
            "lat": 46.6,
            "lon": 6.1,
            "start_time": pd.to_datetime("2019-05-22T00:00:00Z", utc=True),
        }
    )
    out = {}
    for mode in ("none", "auto"):
        sf_ = species_filter_from_config({"species_filter": mode}, tmp_path / "no_label_set.csv")
        detect_files(inv, tmp_path / mode, top_k=3, progress=False, model=model, species_filter=sf_)
        out[mode] = pd.read_parquet(tmp_path / mode / "predictions.parquet")
    allowed = {bn.load_labels()[i] for i in bn.species_filter_indices(lat=46.6, lon=6.1, week=20)}
    assert set(out["auto"]["species"]) <= allowed
    assert not set(out["none"]["species"]) <= allowed  # the full vector has impossible ones
    seg = pd.read_parquet(tmp_path / "auto" / "segments.parquet")
    assert seg["species_set"].str.startswith("location week 20").all()
