"""Detection pipeline: windowing, quarantine, resume, outputs, CLI and shard merging."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.detection import birdnet as bn
from activepam.detection import gather, inputs, tables
from activepam.detection.cli import register
from activepam.detection.detect import Windower, detect_files, window_starts
from activepam.detection.params import SpeciesFilter

SR = 44_100


@pytest.fixture(scope="module")
def model() -> bn.BirdNET:
    return bn.BirdNET(threads=2, batch_size=4)


def _tone(seconds: float, freq: float, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    x = (x + rng.normal(0, 0.01, t.size)).astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small good recordings (7 s -> 3 windows each)."""
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "a.wav", _tone(7.0, 3000, 1), SR)
    sf.write(d / "b.flac", _tone(7.0, 4500, 2, channels=2), SR)
    sf.write(d / "c.mp3", _tone(7.0, 6000, 3), SR)
    return d


def _birdnet_reference_starts(
    n: int, hop: int, size: int = 144_000, minsize: int = 48_000
) -> list[int]:
    """BirdNET-Analyzer's split_signal start positions (re-stated for the test)."""
    last = int((n - size + hop - 1) / hop) * hop
    if last < 0:
        last = 0
    elif n - last < minsize:
        last -= hop
    return list(range(0, last + 1, hop))


@pytest.mark.parametrize("overlap", [0.0, 1.0, 1.5, 2.9])
def test_window_starts_match_birdnet(overlap: float) -> None:
    hop = int(48_000 * (3 - overlap))
    for n in [
        48_000,
        60_000,
        143_999,
        144_000,
        144_001,
        191_999,
        192_000,
        300_000,
        5_760_000,
        5_760_000 + 47_999,
        5_760_000 + 48_000,
        1_234_567,
    ]:
        assert list(window_starts(n, hop)) == _birdnet_reference_starts(n, hop), n
    # shorter than 1 s: no window (BirdNET is inconsistent there; we quarantine instead)
    assert window_starts(47_999, hop).size == 0 and window_starts(0, hop).size == 0


@pytest.mark.parametrize("overlap", [0.0, 1.5])
def test_streaming_windower_equals_direct_split(overlap: float) -> None:
    rng = np.random.default_rng(3)
    sig = rng.normal(size=1_000_003).astype(np.float32)
    hop = int(48_000 * (3 - overlap))
    win = Windower(hop)
    got: list[tuple[int, np.ndarray]] = []
    pos = 0
    while pos < sig.size:
        step = int(rng.integers(1, 200_000))
        got += [(s, w.copy()) for s, w in win.push(sig[pos : pos + step])]
        pos += step
    got += list(win.finish())
    starts = window_starts(sig.size, hop)
    assert [s for s, _ in got] == list(starts)
    padded = np.concatenate([sig, np.zeros(144_000, np.float32)])
    for s, w in got:
        np.testing.assert_array_equal(w, padded[s : s + 144_000])


def test_recording_ids_from_paths(tmp_path: Path) -> None:
    # ids come from the content-aware registry rule: the files must exist (issue 11)
    for i, rel in enumerate(["x/rec one.wav", "y/rec one.wav", "z/other.flac"]):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, _tone(1.5, 3000 + 100 * i, i), SR)
    recs = inputs.recordings_from_paths(
        [
            str(tmp_path / p)
            for p in ["x/rec one.wav", "y/rec one.wav", "z/other.flac", "z/other.flac"]
        ]
    )
    ids = [r.recording_id for r in recs]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert ids[0] == "rec_one" and ids[1].startswith("rec_one-") and ids[2] == "other"
    assert all(
        set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        for i in ids
    )


@pytest.mark.slow
def test_outputs_contract_and_topk_sorted(
    audio_dir: Path, model: bn.BirdNET, tmp_path: Path
) -> None:
    files = sorted(str(p) for p in audio_dir.iterdir())
    summary = detect_files(files, tmp_path, top_k=5, progress=False, model=model)
    assert summary["n_finished"] == 3 and summary["n_quarantined"] == 0
    for kind, schema in tables.OUTPUT_SCHEMAS.items():
        got = pq.read_schema(tmp_path / f"{kind}.parquet")
        assert got.names == schema.names, kind
    emb_type = pq.read_schema(tmp_path / "embeddings.parquet").field("embedding").type
    assert pa.types.is_fixed_size_list(emb_type) and emb_type.list_size == 1024
    assert emb_type.value_type == pa.float32()
    seg = pd.read_parquet(tmp_path / "segments.parquet")
    assert len(seg) == 9 and seg["segment_id"].is_unique
    assert list(seg.loc[seg.recording_id == "a", "start_s"]) == [0.0, 3.0, 6.0]
    assert seg.loc[seg.segment_id == "a@6.0", "end_s"].item() == pytest.approx(7.0)
    assert seg["site"].isna().all() and seg["segment_time"].isna().all()
    pred = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(pred) == 9 * 5
    for sid, grp in pred.groupby("segment_id"):
        assert list(grp["rank"]) == [1, 2, 3, 4, 5]
        assert np.all(np.diff(grp["confidence"].to_numpy()) <= 0), sid
        top = seg.set_index("segment_id").loc[sid]
        assert grp["species"].iloc[0] == top["top1_species"]
        assert grp["confidence"].iloc[0] == pytest.approx(top["top1_confidence"], abs=1e-6)
        assert grp["confidence"].iloc[1] == pytest.approx(top["top2_confidence"], abs=1e-6)
    emb = pd.read_parquet(tmp_path / "embeddings.parquet")
    assert list(emb["segment_id"]) == list(seg["segment_id"])


@pytest.mark.slow
def test_inventory_metadata_and_species_list(
    audio_dir: Path, model: bn.BirdNET, tmp_path: Path
) -> None:
    labels = bn.load_labels()
    species = tmp_path / "species.txt"
    species.write_text("\n".join(labels[100:120]) + "\n")
    inv = pd.DataFrame(
        {
            "recording_id": ["dev1_20250515T040000Z", "dev2_x"],
            "path": [str(audio_dir / "a.wav"), str(audio_dir / "b.flac")],
            "site": ["S1", "S2"],
            "lat": [59.9, 40.4],
            "lon": [10.7, -3.7],
            "start_time": pd.to_datetime(["2025-05-15T04:00:00Z", None], utc=True),
            "status": ["ok", "ok"],
        }
    )
    detect_files(
        inv,
        tmp_path / "out",
        top_k=3,
        progress=False,
        model=model,
        species_filter=SpeciesFilter("list", species_list=str(species)),
    )
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert list(seg["site"].unique()) == ["S1", "S2"]
    row = seg[seg.segment_id == "dev1_20250515T040000Z@3.0"].iloc[0]
    assert row["segment_time"] == pd.Timestamp("2025-05-15T04:00:03Z")
    assert row["start_time"] == pd.Timestamp("2025-05-15T04:00:00Z")
    assert seg.loc[seg.recording_id == "dev2_x", "segment_time"].isna().all()
    pred = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(pred["species"]) <= set(labels[100:120])


@pytest.mark.slow
def test_location_filter_per_recording(audio_dir: Path, model: bn.BirdNET, tmp_path: Path) -> None:
    inv = pd.DataFrame(
        {
            "recording_id": ["oslo"],
            "path": [str(audio_dir / "a.wav")],
            "lat": [59.9],
            "lon": [10.7],
            "start_time": pd.to_datetime(["2025-06-01T04:00:00Z"], utc=True),
        }
    )
    detect_files(
        inv,
        tmp_path,
        top_k=50,
        progress=False,
        model=model,
        species_filter=SpeciesFilter("location", threshold=0.03),
    )
    pred = pd.read_parquet(tmp_path / "predictions.parquet")
    allowed = {bn.load_labels()[i] for i in bn.species_filter_indices(lat=59.9, lon=10.7, week=21)}
    assert set(pred["species"]) <= allowed


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    zero = folder / "zero.wav"
    zero.write_bytes(b"")
    garbage = folder / "garbage.mp3"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    good = folder / "long.flac"
    sf.write(good, _tone(40.0, 2500, 5), SR)
    blob = good.read_bytes()
    cut = folder / "cut.flac"
    cut.write_bytes(blob[: len(blob) // 2])
    return {"zero": zero, "garbage": garbage, "cut": cut}


@pytest.mark.realdata
def test_edge_cases_quarantined_not_fatal(
    realdata: Path, model: bn.BirdNET, tmp_path: Path
) -> None:
    edge = realdata / "edge_cases"
    bad = _bad_files(tmp_path / "bad")
    files = sorted(str(p) for p in edge.iterdir() if p.suffix in (".wav", ".mp3"))
    files += [str(p) for p in bad.values()]
    summary = detect_files(files, tmp_path / "out", progress=False, model=model)
    quar = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert list(quar.columns) == ["path", "stage", "reason"]
    names = {Path(p).name for p in quar["path"]}
    assert {
        "empty_2c.wav",
        "stereo.wav",
        "veryshort.wav",
        "short_no_metadata.wav",
        "zero.wav",
        "garbage.mp3",
        "cut.flac",
    } <= names
    assert quar["reason"].str.len().gt(0).all() and (quar["stage"] == "detect").all()
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert {"metadata", "audiomoth_gps", "silence_10s"} <= set(seg["recording_id"])
    assert summary["n_finished"] == len(set(seg["recording_id"]))
    assert not (set(seg["path"]) & set(quar["path"]))


@pytest.mark.slow
def test_mid_decode_failure_is_quarantined(
    model: bn.BirdNET, tmp_path: Path, audio_dir: Path
) -> None:
    bad = _bad_files(tmp_path / "bad")
    files = [str(bad["cut"]), str(audio_dir / "a.wav")]
    detect_files(files, tmp_path / "out", progress=False, model=model, probe=False)
    quar = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert list(quar["path"]) == [str(bad["cut"])]
    assert quar["reason"].iloc[0].startswith("decode failed")
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert set(seg["recording_id"]) == {"a"}  # no partial rows of the cut file


@pytest.mark.slow
def test_resume_skips_finished_and_never_duplicates(
    audio_dir: Path, model: bn.BirdNET, tmp_path: Path
) -> None:
    files = sorted(str(p) for p in audio_dir.iterdir())
    out = tmp_path / "out"
    first = detect_files(files, out, progress=False, model=model)
    before = {k: pd.read_parquet(out / f"{k}.parquet") for k in tables.OUTPUT_SCHEMAS}
    parts = Path(first["parts_dir"])
    # simulate a run killed while writing b: its segments part is gone, a temp file is left
    (parts / "b.segments.parquet").unlink()
    stale = parts / ".b.segments.parquet.x1y2z3.tmp"
    stale.write_bytes(b"half written")
    second = detect_files(files, out, progress=False, model=model)
    assert second["n_cached"] == 2 and second["n_processed"] == 1
    assert not stale.exists()
    for kind, df in before.items():
        after = pd.read_parquet(out / f"{kind}.parquet")
        assert len(after) == len(df), kind
        if kind == "embeddings":
            np.testing.assert_allclose(
                np.stack(after["embedding"]), np.stack(df["embedding"]), atol=1e-5
            )
            continue
        pd.testing.assert_frame_equal(after, df, check_exact=False, atol=1e-5)
    assert before["segments"]["segment_id"].is_unique
    third = detect_files(files, out, progress=False, model=model)
    assert third["n_processed"] == 0 and third["n_cached"] == 3
    # other parameters -> other parts folder, nothing reused
    fourth = detect_files(files, out, top_k=3, progress=False, model=model)
    assert fourth["n_processed"] == 3 and fourth["params_hash"] != first["params_hash"]


@pytest.mark.slow
def test_merge_outputs_concatenates_shards(
    audio_dir: Path, model: bn.BirdNET, tmp_path: Path
) -> None:
    detect_files([str(audio_dir / "a.wav")], tmp_path / "s0", progress=False, model=model)
    detect_files(
        [str(audio_dir / "b.flac"), str(tmp_path / "nope.wav")],
        tmp_path / "s1",
        progress=False,
        model=model,
    )
    detect_files([], tmp_path / "s2", progress=False, model=model)  # an empty shard
    inv_q = tmp_path / "inv_quarantine.csv"
    pd.DataFrame([{"path": "x.wav", "stage": "inventory", "reason": "zero-length file"}]).to_csv(
        inv_q, index=False
    )
    shards = [tmp_path / s for s in ("s0", "s1", "s2")]
    inputs = {k: [d / f"{k}.parquet" for d in shards] for k in tables.OUTPUT_SCHEMAS}
    inputs["quarantine"] = [inv_q] + [d / "quarantine.csv" for d in shards]
    outputs = {k: tmp_path / "all" / f"{k}.parquet" for k in tables.OUTPUT_SCHEMAS}
    outputs["quarantine"] = tmp_path / "all" / "quarantine.csv"
    counts = gather.merge_outputs(inputs, outputs)
    assert counts["segments"] == 6 and counts["predictions"] == 60 and counts["quarantine"] == 2
    seg = pd.read_parquet(outputs["segments"])
    assert list(seg["recording_id"].unique()) == ["a", "b"]
    quar = pd.read_csv(outputs["quarantine"])
    assert list(quar["stage"]) == ["inventory", "detect"]
    emb_type = pq.read_schema(outputs["embeddings"]).field("embedding").type
    assert pa.types.is_fixed_size_list(emb_type) and emb_type.list_size == 1024


# --------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="activepam")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.mark.slow
def test_cli_exit_codes_and_quarantine_lines(
    audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_files(tmp_path / "bad")
    (tmp_path / "bad" / "long.flac").unlink()
    rc = _cli(
        [
            "detect",
            str(tmp_path / "bad"),
            str(tmp_path / "missing.wav"),
            "--out",
            str(tmp_path / "o1"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    for p in [*bad.values(), tmp_path / "missing.wav"]:
        assert f"quarantined: {p}: " in err
    assert len(pd.read_csv(tmp_path / "o1" / "quarantine.csv")) == 4

    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "bad", mixed)
    shutil.copy(audio_dir / "a.wav", mixed / "sub_a.wav")
    rc = _cli(
        [
            "detect",
            str(mixed),
            "--out",
            str(tmp_path / "o2"),
            "--top-k",
            "2",
            "--batch-size",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert len(pd.read_parquet(tmp_path / "o2" / "segments.parquet")) == 3
    assert len(pd.read_parquet(tmp_path / "o2" / "predictions.parquet")) == 6

    bad_list = tmp_path / "list.txt"
    bad_list.write_text("Not a species\n")
    rc = _cli(
        ["detect", str(mixed), "--out", str(tmp_path / "o3"), "--species-list", str(bad_list)]
    )
    assert rc == 2
    assert "list.txt:1: 'Not a species'" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    """SIGKILL a detection run once a recording is finished, then re-run it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(6):
        sf.write(audio / f"r{i}.wav", _tone(30.0, 2000 + 500 * i, i), SR)
    out = tmp_path / "out"
    code = (
        "import sys; from activepam.detection.detect import detect_files; "
        "detect_files(sorted(sys.argv[1:-1]), sys.argv[-1], batch_size=4, progress=False)"
    )
    files = sorted(str(p) for p in audio.iterdir())
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *files, str(out)], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if list(out.glob("parts/*/*.segments.parquet")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done_before = len(list(out.glob("parts/*/*.segments.parquet")))
    assert 1 <= done_before < 6
    assert not (out / "segments.parquet").exists()
    summary = detect_files(files, out, batch_size=4, progress=False)
    assert summary["n_cached"] == done_before and summary["n_processed"] == 6 - done_before
    seg = pd.read_parquet(out / "segments.parquet")
    assert len(seg) == 60 and seg["segment_id"].is_unique
    pred = pd.read_parquet(out / "predictions.parquet")
    assert len(pred) == 600 and not pred.duplicated(["segment_id", "rank"]).any()
    assert not list(out.glob("parts/*/.*.tmp"))


def test_detect_shard_outputs_share_one_folder(tmp_path: Path) -> None:
    """rule detect_shard's step: its tables must be <folder>/<name>.* (else a clear error)."""
    from activepam.detection.steps import SHARD_TABLES, shard_out_dir

    good = {k: str(tmp_path / "0000" / f"{k}.parquet") for k in SHARD_TABLES}
    assert shard_out_dir(good) == tmp_path / "0000"
    bad = dict(good, quarantine=str(tmp_path / "elsewhere" / "quarantine.csv"))
    with pytest.raises(ValueError, match="output quarantine must be"):
        shard_out_dir(bad)
