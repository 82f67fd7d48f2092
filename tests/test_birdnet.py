"""BirdNET V2.4 model: labels, outputs, determinism, species filters and the golden soundscape."""

from __future__ import annotations

import datetime as dt
import json
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


@pytest.mark.slow
def test_predict_shapes_determinism_and_batching(model: bn.BirdNET, noise: np.ndarray) -> None:
    conf, emb = model.predict(noise)
    assert conf.shape == (3, bn.N_SPECIES) and conf.dtype == np.float32
    assert emb.shape == (3, bn.EMBEDDING_DIM) and emb.dtype == np.float32
    assert np.all((conf >= 0) & (conf <= 1)) and np.all(np.isfinite(emb))
    conf2, emb2 = model.predict(noise)
    np.testing.assert_array_equal(conf, conf2)
    np.testing.assert_array_equal(emb, emb2)
    single = np.concatenate([model.predict(noise[i : i + 1])[0] for i in range(3)])
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
def soundscape_runs(
    realdata: Path, model: bn.BirdNET, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, pd.DataFrame]:
    """Segments of the FLAC and MP3 soundscape through the full detection code path."""
    folder = realdata / "birdnet_soundscape"
    out = tmp_path_factory.mktemp("golden")
    runs = {}
    for ext in ("flac", "mp3"):
        summary = detect_files(
            [folder / f"soundscape.{ext}"], out / ext, progress=False, model=model
        )
        assert summary["n_quarantined"] == 0
        runs[ext] = pd.read_parquet(out / ext / "segments.parquet")
        runs[ext + "_pred"] = pd.read_parquet(out / ext / "predictions.parquet")
    return runs


@pytest.mark.realdata
def test_golden_flac_matches_birdnet_reference(
    realdata: Path, soundscape_runs: dict[str, pd.DataFrame]
) -> None:
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


# --------------------------------------------------------------------------- split model (issue 15)


@pytest.fixture(scope="module")
def whole_model() -> bn.BirdNET:
    """The original graph, spectrogram layers included, in the interpreter."""
    return bn.BirdNET(threads=1, batch_size=8, frontend="model")


@pytest.mark.slow
def test_numpy_frontend_matches_whole_model(model: bn.BirdNET, whole_model: bn.BirdNET) -> None:
    assert model.frontend is not None and whole_model.frontend is None
    rng = np.random.default_rng(15)
    t = np.arange(bn.WINDOW_SAMPLES) / bn.SAMPLE_RATE
    windows = np.stack(
        [
            rng.normal(0, 0.05, bn.WINDOW_SAMPLES),
            0.3 * np.sin(2 * np.pi * (3000 + 2000 * np.sin(2 * np.pi * t)) * t),
            np.zeros(bn.WINDOW_SAMPLES),  # silence: the normalisation divides by eps
            1e-4 * rng.standard_normal(bn.WINDOW_SAMPLES),
        ]
    ).astype(np.float32)
    logits, emb = model.predict_logits(windows)
    want_logits, want_emb = whole_model.predict_logits(windows)
    # same operators on the same float32/float64 values: identical in practice
    np.testing.assert_allclose(logits, want_logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb, want_emb, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_short_last_batch_and_parallel_workers_change_nothing(model: bn.BirdNET) -> None:
    rng = np.random.default_rng(3)
    windows = rng.normal(0, 0.05, (19, bn.WINDOW_SAMPLES)).astype(np.float32)
    conf, emb = model.predict(windows)  # 8 + 8 + a short batch of 3, spread over 2 workers
    one = [model.predict(windows[i : i + 1]) for i in (0, 9, 18)]
    for row, (c, e) in zip((0, 9, 18), one):
        np.testing.assert_array_equal(c[0], conf[row])
        np.testing.assert_array_equal(e[0], emb[row])
    futures = [model.submit(windows[lo : lo + 8]) for lo in range(0, 19, 8)]
    got = [f.result() for f in futures]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), conf)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), emb)
    with pytest.raises(ValueError, match="shape"):
        model.submit(windows[:, :100])


@pytest.mark.slow
def test_split_model_cached_and_self_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(bn.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    real = bn._split_model

    def counting(buf: bytes):  # noqa: ANN202
        calls.append(1)
        return real(buf)

    monkeypatch.setattr(bn, "_split_model", counting)
    source, name, params = bn.split_model()
    assert isinstance(source, Path) and source.is_file() and name == bn.EMBEDDING_TENSOR
    meta = json.loads(next((tmp_path / "cache" / "birdnet").glob("*-s*.json")).read_text())
    assert meta["check_max_logit_diff"] <= bn.SPLIT_TOLERANCE
    again = bn.split_model()
    assert len(calls) == 1 and again[0] == source  # the next start-up reads the cache
    assert {k: v.tolist() for k, v in again[2].items()} == {
        k: v.tolist() for k, v in params.items()
    }
    source.write_bytes(b"truncated")  # a damaged cache file is rebuilt
    assert bn.split_model()[0] == source and len(calls) == 2
    fe = bn.FrontEnd(params)
    parts = fe(np.zeros((2, bn.WINDOW_SAMPLES), np.float32))
    assert [p.shape for p in parts] == [(2 * fe.frames, n) for *_, n in fe.layers]


@pytest.mark.slow
def test_broken_split_falls_back_to_whole_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model_path: Path | None = None):  # noqa: ANN202
        raise bn.BirdNETError("not BirdNET V2.4's front end")

    monkeypatch.setattr(bn, "split_model", broken)
    m = bn.BirdNET(threads=1, batch_size=2)
    assert m.frontend is None
    assert m.predict(np.zeros((1, bn.WINDOW_SAMPLES), np.float32))[0].shape == (1, bn.N_SPECIES)
    with pytest.raises(bn.BirdNETError):
        bn.BirdNET(threads=1, batch_size=2, frontend="numpy")
