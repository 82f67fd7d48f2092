"""Scale paths: out-of-core sampler, shards by audio hours, cached patched BirdNET model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from activepam.core.store import write_store
from activepam.detection import birdnet as bn
from activepam.detection.inventory import assign_shards
from activepam.sampling.engine import sample
from activepam.sampling.outofcore import outofcore_sample
from activepam.sampling.strategies import StrategyError

DIM = 1024


def _segments(n_rec: int = 60, seg: int = 10, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    sites = {"s0": (60.0, 10.0), "s1": (45.0, 5.0), "s2": (38.0, -4.0)}
    for r in range(n_rec):
        site = list(sites)[r % 3]
        start = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(
            minutes=int(rng.integers(0, 365 * 24 * 60))
        )
        for k in range(seg):
            rows.append(
                {
                    "segment_id": f"r{r:03d}@{3.0 * k:.1f}",
                    "recording_id": f"r{r:03d}",
                    "path": f"/a/r{r:03d}.wav",
                    "start_s": 3.0 * k,
                    "end_s": 3.0 * k + 3,
                    "top1_species": "A_a",
                    "top1_confidence": rng.uniform(),
                    "max_binary_entropy": rng.uniform(),
                    "device_id": f"d{r % 3}",
                    "site": site,
                    "lat": sites[site][0],
                    "lon": sites[site][1],
                    "start_time": start,
                    "segment_time": start + pd.Timedelta(seconds=3.0 * k),
                }
            )
    df = pd.DataFrame(rows)
    for c in ("start_time", "segment_time"):
        df[c] = df[c].astype("datetime64[us, UTC]")
    return df


def test_outofcore_equals_in_memory_top_scores(tmp_path: Path) -> None:
    df = _segments()
    path = tmp_path / "segments.parquet"
    df.to_parquet(path)
    labelled = df["segment_id"].iloc[:15].tolist()
    stats: dict = {}
    ooc = outofcore_sample(
        path,
        "stratified_entropy",
        n=40,
        labelled=labelled,
        memory_limit="200MB",
        temp_dir=tmp_path,
        stats=stats,
    )
    mem = sample(df, "stratified_entropy", n=40, labelled=labelled)
    assert sorted(ooc["unit_id"]) == sorted(mem["unit_id"])
    assert dict(zip(ooc["unit_id"], ooc["stratum"])) == dict(zip(mem["unit_id"], mem["stratum"]))
    assert not set(labelled) & set(ooc["unit_id"])
    assert stats["pool_rows"] == len(df) - 15 and stats["candidates"] == 40
    assert ooc["rank"].tolist() == list(range(1, 41))


def test_outofcore_kmeans_fetches_by_partition(tmp_path: Path) -> None:
    df = _segments(n_rec=30)
    path = tmp_path / "segments.parquet"
    df.to_parquet(path)
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (len(df), DIM)).astype(np.float32)
    sources = {}
    for rid, idx in df.groupby("recording_id").indices.items():
        sources[rid] = pa.table(
            {
                "segment_id": df["segment_id"].iloc[idx].tolist(),
                "start_s": df["start_s"].iloc[idx],
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb[idx].ravel()), DIM),
            }
        )
    meta = df.drop_duplicates("recording_id")[["recording_id", "device_id", "start_time"]]
    write_store(sources, meta, tmp_path / "store", row_group_size=4)
    strategy = {"base": "stratified_kmeans_entropy", "strata": ["site"], "n": 9}
    stats: dict = {}
    ooc = outofcore_sample(path, strategy, embeddings=tmp_path / "store", stats=stats)
    mem = sample(df, strategy, embeddings=tmp_path / "store")
    assert ooc["unit_id"].tolist() == mem["unit_id"].tolist()
    assert stats["fetch"]["rows_wanted"] == 90
    assert stats["fetch"]["row_groups"] < stats["fetch"]["row_groups_total"]


def test_outofcore_rejects_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "segments.parquet"
    _segments(n_rec=3).to_parquet(path)
    with pytest.raises(StrategyError, match="not supported"):
        outofcore_sample(path, {"base": "max_entropy", "strata": ["lat_band"]})
    with pytest.raises(StrategyError, match="needs embeddings"):
        outofcore_sample(path, "kmeans_entropy")


def test_shards_by_audio_hours() -> None:
    hours = [0.5, 0.5, 0.5, 3.0, 0.2, 0.2, 0.2, 0.2]
    got = assign_shards(len(hours), 64, [h * 3600 for h in hours], shard_hours=1.0)
    assert got == ["0000", "0000", "0001", "0002", "0003", "0003", "0003", "0003"]
    # shard_size still caps the files per shard
    assert assign_shards(4, 2, [1.0] * 4, shard_hours=10)[-1] == "0001"
    assert assign_shards(3, 2) == ["0000", "0000", "0001"]
    with pytest.raises(ValueError, match="shard_hours"):
        assign_shards(2, 2, None, shard_hours=1)


def test_patched_model_cached_by_model_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"model-v1")
    monkeypatch.setenv(bn.CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def fake_patch(buf: bytes) -> tuple[bytes, str]:
        calls.append(buf)
        return buf + b"+emb", "emb"

    monkeypatch.setattr(bn, "_patched_model", fake_patch)
    assert bn.patched_model_bytes(model) == (b"model-v1+emb", "emb")
    assert bn.patched_model_bytes(model) == (b"model-v1+emb", "emb")
    assert len(calls) == 1  # second process start: from the cache
    cached = next((tmp_path / "cache" / "birdnet").glob("*.tflite"))
    cached.write_bytes(b"corrupt")
    assert bn.patched_model_bytes(model) == (b"model-v1+emb", "emb")
    assert len(calls) == 2  # a cache file that fails its hash is rebuilt
    model.write_bytes(b"model-v2")  # another installed model: another key
    assert bn.patched_model_bytes(model) == (b"model-v2+emb", "emb")
    assert len(calls) == 3


def test_sample_command_out_of_core(tmp_path: Path) -> None:
    """``activepam sample --out-of-core`` is the bounded-memory sampler: same units as the
    function, labelled units (CSV) left out, CSV written."""
    from activepam.cli import main as cli_main

    df = _segments()
    path = tmp_path / "segments.parquet"
    df.to_parquet(path)
    labelled = df["segment_id"].iloc[:15].tolist()
    pd.DataFrame({"unit_id": labelled}).to_csv(tmp_path / "done.csv", index=False)
    out = tmp_path / "sample.csv"
    rc = cli_main(
        [
            "sample",
            "--segments",
            str(path),
            "--strategy",
            "stratified_entropy",
            "--n",
            "40",
            "--labelled",
            str(tmp_path / "done.csv"),
            "--out",
            str(out),
            "--out-of-core",
            "--memory-limit",
            "200MB",
        ]
    )
    assert rc == 0
    got = pd.read_csv(out, dtype={"unit_id": str})
    want = outofcore_sample(path, "stratified_entropy", n=40, labelled=labelled)
    assert sorted(got["unit_id"]) == sorted(want["unit_id"]) and len(got) == 40
    assert not set(labelled) & set(got["unit_id"])
    rc = cli_main(
        [
            "sample",
            "--segments",
            str(path),
            "--strategy",
            "kmeans_entropy_files",
            "--out",
            str(tmp_path / "x.csv"),
            "--out-of-core",
        ]
    )
    assert rc == 1  # recording units: refused with a message, not a traceback
