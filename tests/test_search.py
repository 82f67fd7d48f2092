"""Query by example: streamed exact search, usearch indexes (incremental), filters, examples
from segment ids and audio files, and same-species retrieval on generated calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.cli import main as cli_main
from activepam.search import engine as S


def _write_shard(folder: Path, ids: list[str], emb: np.ndarray, sites: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rec = [i.split("@")[0] for i in ids]
    start = [float(i.split("@")[1]) for i in ids]
    flat = pa.array(emb.astype(np.float32).ravel())
    table = pa.table(
        {
            "segment_id": ids,
            "recording_id": rec,
            "start_s": start,
            "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]),
        }
    )
    pq.write_table(table, folder / "embeddings.parquet")
    pq.write_table(
        pa.table({"segment_id": ids, "recording_id": rec, "site": sites}),
        folder / "segments.parquet",
    )
    return folder / "embeddings.parquet"


@pytest.fixture()
def store(tmp_path: Path) -> tuple[Path, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 64))
    n = 3000
    lab = rng.integers(0, 8, size=n)
    emb = centres[lab] + rng.normal(scale=0.6, size=(n, 64))
    ids = [f"rec{i // 10:04d}@{3.0 * (i % 10):.1f}" for i in range(n)]
    sites = [f"s{(i // 10) % 3}" for i in range(n)]
    for s in range(3):
        sl = slice(s * 1000, (s + 1) * 1000)
        _write_shard(tmp_path / "det" / "shards" / f"{s:04d}", ids[sl], emb[sl], sites[sl])
    return tmp_path / "det", emb, ids, sites


def _brute(emb: np.ndarray, ids: list[str], q: np.ndarray, k: int, mask=None) -> list[str]:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    sim = (e @ qq.T).max(axis=1)
    if mask is not None:
        sim = np.where(mask, sim, -np.inf)
    return [ids[i] for i in np.argsort(-sim, kind="stable")[:k]]


def test_exact_streamed_search_equals_brute_force(store) -> None:
    folder, emb, ids, _ = store
    files = S.store_files(folder)
    assert len(files) == 3
    q = S.load_queries([ids[5], ids[2500]], files)
    hits = S.exact_search(files, q, k=25, batch_rows=97)  # tiny batches: bounded memory
    ex = {ids[5], ids[2500]}
    want = [i for i in _brute(emb, ids, emb[[5, 2500]], 27) if i not in ex][:25]
    assert hits["segment_id"].tolist() == want
    assert hits["rank"].tolist() == list(range(1, 26))
    assert (np.diff(hits["similarity"]) <= 1e-6).all()
    assert set(hits["nearest_example"]) <= ex
    assert not (set(hits["segment_id"]) & ex)


def test_filters(store) -> None:
    folder, emb, ids, sites = store
    hits = S.search(folder, [ids[0]], k=10, filters=S.parse_filters(["site=s1,s2"]), exact=True)
    assert len(hits) == 10
    kept = {i for i, s in zip(ids, sites) if s in ("s1", "s2")}
    assert set(hits["segment_id"]) <= kept
    mask = np.array([s in ("s1", "s2") for s in sites])
    assert hits["segment_id"].tolist() == _brute(emb, ids, emb[[0]], 10, mask)
    with pytest.raises(S.SearchError, match="no column habitat"):
        S.search(folder, [ids[0]], k=3, filters={"habitat": ["x"]})
    with pytest.raises(S.SearchError, match="COLUMN=VALUE"):
        S.parse_filters(["site"])
    with pytest.raises(S.SearchError, match="neither an audio file nor a segment id"):
        S.search(folder, ["nope@0.0"], k=3)


def test_index_recall_and_incremental_update(store, tmp_path: Path) -> None:
    folder, emb, ids, sites = store
    built = S.build_indexes(folder)
    assert [b["action"] for b in built] == ["built"] * 3
    assert [b["action"] for b in S.build_indexes(folder)] == ["fresh"] * 3
    queries = [ids[i] for i in (1, 700, 1500, 2999)]
    approx = S.search(folder, queries, k=50)
    exact = S.search(folder, queries, k=50, exact=True)
    assert approx["method"].iloc[0] == "index" and exact["method"].iloc[0] == "exact"
    recall = len(set(approx["segment_id"]) & set(exact["segment_id"])) / 50
    assert recall >= 0.9
    # rewrite shard 1: drop 100 segments, add 50 new ones -> only those change in the index
    rng = np.random.default_rng(5)
    keep = list(range(1000, 1900))
    new = 0.3 * rng.normal(size=(50, 64)) + emb[1000]  # near-copies of one call
    new_ids = [f"new{i:03d}@0.0" for i in range(50)]
    f1 = _write_shard(
        folder / "shards" / "0001",
        [ids[i] for i in keep] + new_ids,
        np.vstack([emb[keep], new]),
        [sites[i] for i in keep] + ["s9"] * 50,
    )
    assert not S.index_is_fresh(f1)
    upd = S.build_indexes(folder)
    assert upd[1] == {
        "file": str(f1),
        "action": "updated",
        "added": 50,
        "removed": 100,
        "kept": 900,
    }
    assert upd[0]["action"] == upd[2]["action"] == "fresh"
    hits = S.search(folder, [ids[1000]], k=30)
    assert hits["method"].iloc[0] == "index"
    assert not set(hits["segment_id"]) & {ids[i] for i in range(1900, 2000)}
    assert len(set(hits["segment_id"]) & set(new_ids)) >= 25  # the added calls are found
    # filters with an index: candidates are filtered, and exact fills in when they fall short
    only_new = S.search(folder, [ids[1000]], k=50, filters={"site": ["s9"]})
    assert set(only_new["segment_id"]) == set(new_ids)


def test_cli_writes_hits(store, tmp_path: Path, capsys) -> None:
    folder, _, ids, _ = store
    out = tmp_path / "hits.csv"
    rc = cli_main(
        [
            "search",
            "--store",
            str(folder),
            "--example",
            ids[3],
            "--k",
            "7",
            "--build-index",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    df = pd.read_csv(out)
    assert len(df) == 7 and list(df.columns) == list(S.HIT_COLUMNS)
    assert cli_main(["search", "--store", str(folder), "--example", ids[3], "--k", "0"]) == 2
    assert "--k must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_same_species_calls_found_above_chance_on_generated_audio(tmp_path: Path) -> None:
    """BirdNET embeddings of the demo generator's calls: hits of a segment holding species X
    hold X far more often than X's share of all segments (chance); an audio clip cut from a
    segment finds that segment first."""
    from activepam.demo import generate as g
    from activepam.detection.detect import detect_files

    raw = tmp_path / "raw"
    g.generate_demo(
        raw,
        {
            "n_sites": 2,
            "countries": ["NO", "ES"],
            "dates": ["2025-05-15"],
            "recordings_per_day": 6,
            "duration_s": 30,
            "mp3_fraction": 0.0,
            "calls_per_minute": 80,
            "n_species": 6,
        },
        seed=3,
        progress=False,
    )
    recs = pd.read_csv(raw / "recordings.csv")
    inv = pd.DataFrame(
        {
            "recording_id": [f"r{i}" for i in range(len(recs))],
            "path": [str(raw / p) for p in recs["rel_path"]],
        }
    )
    detect_files(inv, tmp_path / "det", threads=2, progress=False)
    truth = pd.read_parquet(raw / "ground_truth.parquet")
    rid = dict(zip(recs["rel_path"], inv["recording_id"]))
    truth["segment_id"] = [f"{rid[p]}@{s:.1f}" for p, s in zip(truth["rel_path"], truth["start_s"])]
    segs = pd.read_parquet(tmp_path / "det" / "segments.parquet")["segment_id"]
    by_species = truth.groupby("species")["segment_id"].apply(set)
    lifts = []
    for _sp, holders in by_species.items():
        holders = holders & set(segs)
        if len(holders) < 4:
            continue
        chance = len(holders) / len(segs)
        example = sorted(holders)[0]
        hits = S.search(tmp_path / "det", [example], k=5, exact=True)
        precision = hits["segment_id"].isin(holders).mean()
        lifts.append(precision / chance)
    print("same-species lift over chance (top 5):", np.round(lifts, 2))
    assert len(lifts) >= 3
    assert np.median(lifts) > 2.0
    # an audio file as the example: the segment it was cut from comes first
    seg = truth.iloc[0]
    audio, sr = sf.read(raw / seg["rel_path"])
    clip = tmp_path / "clip.wav"
    sf.write(clip, audio[int(seg["start_s"] * sr) : int((seg["start_s"] + 3) * sr)], sr)
    fig = S.plot_hits(
        S.search(tmp_path / "det", [sorted(by_species.iloc[0])[0]], k=8, exact=True),
        tmp_path / "det" / "segments.parquet",
        [sorted(by_species.iloc[0])[0]],
        tmp_path / "hits.png",
    )
    assert fig.stat().st_size > 20000
    hits = S.search(tmp_path / "det", [str(clip)], k=3, exact=True)
    assert hits["segment_id"].iloc[0] == seg["segment_id"]
    assert hits["similarity"].iloc[0] > 0.95
