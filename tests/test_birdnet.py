"""BirdNET V2.4 model: labels, outputs, determinism, species filters and the golden soundscape."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.detection import birdnet as bn
from activepam.detection.detect import detect_files


@pytest.fixture(scope="module")
def model() -> bn.BirdNET:
    return bn.BirdNET(threads=2, batch_size=8)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(0, 0.05, (3, bn.WINDOW_SAMPLES)).astype(np.float32)


def test_model_files_and_labels() -> None:
    folder = bn.model_dir()
    assert (folder / bn.MODEL_FILE).is_file()
    labels = bn.load_labels()
    assert len(labels) == bn.N_SPECIES == 6522
    assert len(set(labels)) == len(labels)
    assert all("_" in label for label in labels)
    assert "Turdus merula_Eurasian Blackbird" in labels


def test_predict_shapes_determinism_and_batching(model: bn.BirdNET, noise: np.ndarray) -> None:
    conf, emb = model.predict(noise)
    assert conf.shape == (3, bn.N_SPECIES) and conf.dtype == np.float32
    assert emb.shape == (3, bn.EMBEDDING_DIM) and emb.dtype == np.float32
    assert np.all((conf >= 0) & (conf <= 1)) and np.all(np.isfinite(emb))
    conf2, emb2 = model.predict(noise)
    np.testing.assert_array_equal(conf, conf2)
    np.testing.assert_array_equal(emb, emb2)
    single = np.concatenate([model.predict(noise[i:i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(single, conf, atol=1e-5)  # batch size does not change results


def test_flat_sigmoid_matches_birdnet_formula() -> None:
    x = np.array([-20.0, -1.0, 0.0, 2.0, 30.0], dtype=np.float32)
    want = 1 / (1 + np.exp(-np.clip(x, -15, 15)))
    np.testing.assert_allclose(bn.flat_sigmoid(x), want, rtol=1e-6)
    # user sensitivity 1.5 = BirdNET's "more detections" = a flatter sigmoid (slope 0.5)
    want15 = 1 / (1 + np.exp(-0.5 * np.clip(x, -15, 15)))
    np.testing.assert_allclose(bn.flat_sigmoid(x, 1.5), want15, rtol=1e-6)


def test_species_list_filter(tmp_path: Path) -> None:
    labels = bn.load_labels()
    good = tmp_path / "species.txt"
    good.write_text(f"# my list\n{labels[10]}\n\n{labels[3]}  # comment\n")
    np.testing.assert_array_equal(bn.species_filter_indices(species_list=good), [3, 10])
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{labels[0]}\nTurdus merula\n")
    with pytest.raises(bn.BirdNETError, match=r"bad\.txt:2: 'Turdus merula'"):
        bn.species_filter_indices(species_list=bad)
    with pytest.raises(bn.BirdNETError, match="cannot read"):
        bn.species_filter_indices(species_list=tmp_path / "missing.txt")


def test_location_filter_meta_model() -> None:
    assert bn.week_48(dt.date(2025, 1, 1)) == 1
    assert bn.week_48(dt.date(2025, 5, 15)) == 19
    assert bn.week_48(dt.date(2025, 12, 31)) == 48
    labels = bn.load_labels()
    oslo_june = bn.species_filter_indices(lat=59.9, lon=10.7, week=22)
    assert 0 < len(oslo_june) < bn.N_SPECIES
    kept = {labels[i] for i in oslo_june}
    assert "Turdus merula_Eurasian Blackbird" in kept
    assert "Cardinalis cardinalis_Northern Cardinal" not in kept
    all_year = bn.species_filter_indices(lat=59.9, lon=10.7, week=-1)
    assert len(all_year) > 0
    with pytest.raises(bn.BirdNETError, match="week"):
        bn.species_filter_indices(lat=59.9, lon=10.7, week=49)
    with pytest.raises(bn.BirdNETError, match="lat and lon"):
        bn.species_filter_indices(lat=59.9)


# --------------------------------------------------------------------------- golden soundscape


@pytest.fixture(scope="module")
def soundscape_runs(realdata: Path, model: bn.BirdNET,
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Segments of the FLAC and MP3 soundscape through the full detection code path."""
    folder = realdata / "birdnet_soundscape"
    out = tmp_path_factory.mktemp("golden")
    runs = {}
    for ext in ("flac", "mp3"):
        summary = detect_files([folder / f"soundscape.{ext}"], out / ext, progress=False,
                               model=model)
        assert summary["n_quarantined"] == 0
        runs[ext] = pd.read_parquet(out / ext / "segments.parquet")
        runs[ext + "_pred"] = pd.read_parquet(out / ext / "predictions.parquet")
    return runs


@pytest.mark.realdata
def test_golden_flac_matches_birdnet_reference(realdata: Path,
                                               soundscape_runs: dict[str, pd.DataFrame]) -> None:
    ref = pd.read_csv(realdata / "birdnet_soundscape" / "reference_predictions_birdnet_v2.4.csv")
    seg = soundscape_runs["flac"].set_index("start_s")
    assert len(seg) == 40  # 120 s / 3 s
    best = ref.sort_values("confidence", ascending=False).groupby("start_s").head(1)
    for row in best.itertuples():
        got = seg.loc[row.start_s]
        assert got["top1_species"] == row.scientific_common, row
        assert abs(got["top1_confidence"] - row.confidence) <= 0.01, row
    # every reference detection (>= 0.1) is among our top-k with the same confidence
    pred = soundscape_runs["flac_pred"]
    for row in ref.itertuples():
        hit = pred[(pred["start_s"] == row.start_s) & (pred["species"] == row.scientific_common)]
        assert len(hit) == 1, row
        assert abs(float(hit["confidence"].iloc[0]) - row.confidence) <= 0.01, row


@pytest.mark.realdata
def test_mp3_copy_agrees_with_flac(soundscape_runs: dict[str, pd.DataFrame]) -> None:
    flac = soundscape_runs["flac"].set_index("start_s")["top1_species"]
    mp3 = soundscape_runs["mp3"].set_index("start_s")["top1_species"]
    assert len(mp3) == len(flac) == 40
    agreement = float((flac == mp3.reindex(flac.index)).mean())
    assert agreement >= 0.75, agreement
