"""Sampling engine (activepam.sampling.engine): hand-computed expectations per strategy step."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activepam.sampling.engine import OUTPUT_COLUMNS, sample
from activepam.sampling.files import run_sampling
from activepam.sampling.segments import SampleInputError, attach_indices, read_labelled
from activepam.sampling.strategies import PRESETS, StrategyError, list_strategies, resolve_strategy
from activepam.sampling.units import recording_units


def _h(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def make_segments(
    n_rec: int = 40,
    seg_per_rec: int = 10,
    n_sites: int = 4,
    n_species: int = 12,
    seed: int = 0,
    emb_dim: int = 8,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic segments table following CONTRACTS.md, plus row-aligned embeddings."""
    rng = np.random.default_rng(seed)
    n = n_rec * seg_per_rec
    rec = np.repeat(np.arange(n_rec), seg_per_rec)
    site = rec % n_sites
    start = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 365 * 24, n_rec) * 3600, unit="s"
    )
    rec_ids = np.array([f"d{r % n_sites}_{start[r]:%Y%m%dT%H%M%SZ}_{r}" for r in range(n_rec)])
    start_s = np.tile(np.arange(seg_per_rec) * 3.0, n_rec)
    top1 = rng.beta(0.7, 1.2, n)
    top2 = top1 * rng.uniform(0, 1, n)
    df = pd.DataFrame(
        {
            "segment_id": [f"{r}@{s:.1f}" for r, s in zip(rec_ids[rec], start_s)],
            "recording_id": rec_ids[rec],
            "path": [f"audio/{r}.flac" for r in rec_ids[rec]],
            "start_s": start_s,
            "end_s": start_s + 3.0,
            "top1_species": [f"Sp{i:02d}" for i in np.minimum(rng.zipf(1.6, n) - 1, n_species - 1)],
            "top1_confidence": top1,
            "top2_confidence": top2,
            "margin": top1 - top2,
            "max_binary_entropy": np.maximum(_h(top1), _h(top2)),
            "mean_binary_entropy": _h(top1) / 10,
            "device_id": [f"d{s}" for s in site],
            "site": [f"S{s}" for s in site],
            "country": np.array(["NO", "DK", "FR", "ES"])[site % 4],
            "habitat": np.array(["forest", "wetland"])[site % 2],
            "lat": np.linspace(60, 40, n_sites)[site],
            "lon": np.linspace(5, -3, n_sites)[site],
            "start_time": start[rec],
            "segment_time": start[rec] + pd.to_timedelta(start_s, unit="s"),
        }
    )
    return df, rng.normal(size=(n, emb_dim)).astype(np.float32)


@pytest.fixture(scope="module")
def segs() -> tuple[pd.DataFrame, np.ndarray]:
    return make_segments()


def _tiny(ids: list[str], score: list[float], **cols: list) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "segment_id": ids,
            "recording_id": [i.split("@")[0] for i in ids],
            "path": [f"{i.split('@')[0]}.wav" for i in ids],
            "start_s": [float(i.split("@")[1]) for i in ids],
            "end_s": [float(i.split("@")[1]) + 3 for i in ids],
            "top1_species": cols.pop("top1_species", ["Sp"] * n),
            "top1_confidence": cols.pop("top1_confidence", [0.5] * n),
            "max_binary_entropy": score,
            **cols,
        }
    )


# --------------------------------------------------------------------------- recording units


def test_topk_entropy_tiny_table() -> None:
    seg = _tiny(
        ["A@0", "A@3", "A@6", "A@9", "B@0", "B@3"],
        [0.9, 0.1, 0.5, 0.7, 0.2, 0.4],
        top1_confidence=[0.1, 0.9, 0.6, 0.2, 0.8, 0.3],
    )
    rec = recording_units(seg, "topk", k=2).set_index("recording_id")
    assert rec.loc["A", "score"] == pytest.approx((0.9 + 0.7) / 2)
    assert rec.loc["B", "score"] == pytest.approx((0.2 + 0.4) / 2)
    assert rec.loc["A", "n_segments"] == 4 and rec.loc["A", "duration_s"] == 12.0
    assert rec.loc["A", "top1_confidence"] == 0.9 and rec.loc["A", "end_s"] == 12.0
    checks = {
        "mean": (0.55, 0.3),
        "median": (0.6, 0.3),
        "max": (0.9, 0.4),
        # events: top-1 >= 0.5 -> A: 0.1, 0.5 ; B: 0.2
        "mean_event": (0.3, 0.2),
    }
    for method, (a, b) in checks.items():
        r = recording_units(seg, method, k=2).set_index("recording_id")["score"]
        assert (r["A"], r["B"]) == (pytest.approx(a), pytest.approx(b)), method
    # default K=10 with fewer segments = mean of all
    assert recording_units(seg).set_index("recording_id").loc["A", "score"] == pytest.approx(0.55)


def test_topk_files_strategy_picks_recordings(segs) -> None:
    df, _ = segs
    out = sample(df, "topk_entropy_files", n=5, seed=0)
    rec = recording_units(df, "topk", 10)
    best = rec.sort_values("score", ascending=False)["recording_id"].head(5).tolist()
    assert out["unit_type"].eq("recording").all() and out["unit_id"].tolist() == best
    assert out["start_s"].eq(0).all() and out["end_s"].eq(30.0).all()
    assert "topk(k=10) of max_entropy" in out["reason"].iloc[0]


# --------------------------------------------------------------------------- scores


def test_scores_order_units() -> None:
    seg = _tiny(
        ["A@0", "A@3", "A@6"],
        [0.2, 0.9, 0.5],
        top1_confidence=[0.9, 0.3, 0.6],
        top2_confidence=[0.05, 0.28, 0.1],
        margin=[0.85, 0.02, 0.5],
        mean_binary_entropy=[0.3, 0.1, 0.2],
    )
    first = {
        name: sample(seg, name, n=1)["unit_id"].iloc[0]
        for name in ("max_entropy", "lowest_confidence", "margin", "ratio", "mean_entropy")
    }
    assert first == {
        "max_entropy": "A@3",
        "lowest_confidence": "A@3",
        "margin": "A@3",
        "ratio": "A@3",
        "mean_entropy": "A@0",
    }
    out = sample(seg, "margin", n=3)
    assert out["score"].tolist() == pytest.approx([0.98, 0.5, 0.15])


def test_index_score_with_ascending_rank_and_threshold() -> None:
    seg = _tiny(["A@0", "A@3", "B@0", "C@0"], [0.5] * 4)
    idx = pd.DataFrame(
        {
            "path": ["A.wav", "A.wav", "B.wav", "C.wav"],
            "window_start_s": [0.0, 2.0, 0.0, 0.0],
            "window_end_s": [2.0, 4.0, 5.0, 5.0],
            "TFSD": [0.1, 0.9, 0.5, 0.3],
        }
    )
    units = attach_indices(seg, idx, ["TFSD"])
    assert units["TFSD"].tolist() == [0.1, 0.9, 0.5, 0.3]  # A@3 falls in window 2-4
    assert sample(units, "index_tfsd", n=2)["unit_id"].tolist() == ["A@3", "B@0"]
    low = {"score": {"method": "index", "index": "TFSD", "direction": "low", "threshold": 0.4}}
    assert sample(units, low, n=5)["unit_id"].tolist() == ["A@0", "C@0"]
    with pytest.raises(StrategyError, match="TFSD"):
        sample(seg, "index_tfsd", n=1)


# --------------------------------------------------------------------------- strata


def test_equal_allocation_counts_within_one(segs) -> None:
    df, _ = segs
    out = sample(df, "stratified_entropy", n=30, seed=3)
    counts = out["stratum"].value_counts()
    assert len(out) == 30 and counts.max() - counts.min() <= 1
    assert out["reason"].str.startswith("stratum site=").all()


def test_remainder_goes_to_other_strata() -> None:
    ids = [f"R{i}@0" for i in range(22)]
    seg = _tiny(ids, list(np.linspace(0, 1, 22)), site=["A"] * 2 + ["B"] * 10 + ["C"] * 10)
    out = sample(seg, {"score": {"method": "max_entropy"}, "strata": ["site"]}, n=12)
    assert out["site"].value_counts().to_dict() == {"B": 5, "C": 5, "A": 2}
    # rank interleaves strata: the first three ranks cover all three sites
    assert set(out["site"].head(3)) == {"A", "B", "C"}


def test_proportional_and_divergence_allocation() -> None:
    ids = [f"R{i}@0" for i in range(40)]
    site = ["A"] * 10 + ["B"] * 10 + ["C"] * 20
    species = ["x"] * 10 + ["x"] * 10 + ["y"] * 20  # A and B identical, C different
    seg = _tiny(ids, list(np.linspace(0, 1, 40)), site=site, top1_species=species)
    prop = sample(seg, {"strata": ["site"], "allocation": "proportional"}, n=8)
    assert prop["site"].value_counts().to_dict() == {"C": 4, "A": 2, "B": 2}
    div = sample(seg, {"strata": ["site"], "allocation": "divergence"}, n=8)
    # weights: A 0.5, B 0.5, C 1.0 -> 2, 2, 4
    assert div["site"].value_counts().to_dict() == {"C": 4, "A": 2, "B": 2}


def test_confidence_bins_uniform_per_species(segs) -> None:
    df, _ = segs
    out = sample(df, "confidence_bins", n=60, seed=1)
    pool = df.assign(bin=np.minimum(np.floor(df["top1_confidence"] * 10), 9))
    sizes = pool.groupby(["top1_species", "bin"]).size()
    got = (
        out.assign(bin=np.minimum(np.floor(out["top1_confidence"] * 10), 9))
        .groupby(["top1_species", "bin"])
        .size()
    )
    full = got[sizes.loc[got.index] > got]  # strata not exhausted
    assert full.max() - full.min() <= 1


def test_diel_and_season_strata(segs) -> None:
    df, _ = segs
    out = sample(df, "gradient_entropy", n=20, seed=0)
    pattern = r"lat_band=\d+-\d+\|season=\w+\|diel=(night|dawn|day|dusk)"
    assert out["stratum"].str.match(pattern).all()


# --------------------------------------------------------------------------- diversification


def _blobs() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    x = np.vstack([c + rng.normal(0, 0.3, (10, 2)) for c in centres])
    ids = [f"R{i}@0" for i in range(30)]
    return _tiny(ids, list(rng.uniform(0, 1, 30))), x


def test_kmeans_picks_most_uncertain_per_cluster() -> None:
    seg, x = _blobs()
    strat = {"score": {"method": "max_entropy"}, "diversify": {"method": "kmeans", "candidates": 0}}
    out = sample(seg, strat, n=3, embeddings=x)
    blob = {f"R{i}@0": i // 10 for i in range(30)}
    assert sorted(blob[u] for u in out["unit_id"]) == [0, 1, 2]
    best = (
        seg.assign(b=[i // 10 for i in range(30)])
        .sort_values("max_binary_entropy")
        .groupby("b")["segment_id"]
        .last()
    )
    assert set(out["unit_id"]) == set(best)
    assert out["cluster"].nunique() == 3 and out["reason"].str.contains("most uncertain").all()


def test_ward_picks_one_per_cluster() -> None:
    seg, x = _blobs()
    strat = {
        "score": {"method": "max_entropy"},
        "diversify": {"method": "ward", "candidates": 0, "subsample": 12},
    }
    out = sample(seg, strat, n=3, embeddings=x)
    assert sorted(int(u[1:-2]) // 10 for u in out["unit_id"]) == [0, 1, 2]


def test_kmeans_with_fewer_clusters_than_batch() -> None:
    seg, x = _blobs()
    strat = {
        "score": {"method": "max_entropy"},
        "diversify": {"method": "kmeans", "candidates": 0, "k": 3},
    }
    out = sample(seg, strat, n=7, embeddings=x)
    per_blob = pd.Series([int(u[1:-2]) // 10 for u in out["unit_id"]]).value_counts()
    assert len(out) == 7 and sorted(per_blob.tolist()) == [2, 2, 3]


def test_farthest_first_picks_extremes() -> None:
    # a dense centre (most uncertain first pick) and four far corners
    pts = np.array(
        [[0, 0], [0.1, 0], [0, 0.1], [-0.1, 0], [5, 5], [-5, 5], [5, -5], [-5, -5]], float
    )
    ids = [f"P{i}@0" for i in range(8)]
    seg = _tiny(ids, [1.0, 0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1])
    strat = {
        "score": {"method": "max_entropy"},
        "diversify": {"method": "farthest_first", "candidates": 0},
    }
    out = sample(seg, strat, n=5, embeddings=pts)
    assert set(out["unit_id"]) == {"P0@0", "P4@0", "P5@0", "P6@0", "P7@0"}
    # seeded by labelled corners: the remaining corners come first
    lab = sample(seg, strat, n=2, embeddings=pts, labelled=["P4@0", "P7@0"])
    assert set(lab["unit_id"]) == {"P5@0", "P6@0"}


def test_species_balanced_min_per_species() -> None:
    species = ["common"] * 50 + ["mid"] * 8 + ["rare1"] * 2 + ["rare2"]
    ids = [f"R{i}@0" for i in range(len(species))]
    seg = _tiny(ids, list(np.random.default_rng(1).uniform(0, 1, len(ids))), top1_species=species)
    strat = {
        "score": {"method": "max_entropy"},
        "diversify": {"method": "species_balanced", "min_per_species": 2},
    }
    out = sample(seg, strat, n=10)
    counts = out["top1_species"].value_counts().to_dict()
    assert counts["rare2"] == 1 and counts["rare1"] == 2 and counts["mid"] >= 2
    assert counts["common"] >= 2 and sum(counts.values()) == 10
    # within a species the most uncertain are chosen
    common = seg[seg.top1_species == "common"].nlargest(counts["common"], "max_binary_entropy")
    assert set(common["segment_id"]) <= set(out["unit_id"])


def test_embeddings_as_dataframe_and_recording_means(segs) -> None:
    df, emb = segs
    frame = pd.DataFrame(
        {"segment_id": df["segment_id"], "recording_id": df["recording_id"], "embedding": list(emb)}
    )
    a = sample(df, "kmeans_entropy", n=6, seed=2, embeddings=emb)
    b = sample(df, "kmeans_entropy", n=6, seed=2, embeddings=frame)
    pd.testing.assert_frame_equal(a, b)
    files = sample(
        df, {"base": "topk_entropy_files", "diversify": {"method": "kmeans"}}, n=4, embeddings=frame
    )
    assert files["unit_type"].eq("recording").all() and len(files) == 4
    with pytest.raises(StrategyError, match="needs embeddings"):
        sample(df, "kmeans_entropy", n=3)


def test_units_without_embeddings_leave_the_pool(segs) -> None:
    df, emb = segs
    part = pd.DataFrame({"segment_id": df["segment_id"][:100], "embedding": list(emb[:100])})
    out = sample(df, "kmeans_entropy", n=5, embeddings=part)
    assert out["unit_id"].isin(df["segment_id"][:100]).all()


# --------------------------------------------------------------------------- pool


def test_labelled_never_resampled(segs) -> None:
    df, emb = segs
    first = sample(df, "max_entropy", n=50)
    rec = df["recording_id"].iloc[0]
    labelled = first["unit_id"].tolist() + [rec]
    for name in ("max_entropy", "random", "stratified_kmeans_entropy", "species_balanced"):
        again = sample(df, name, n=len(df), embeddings=emb, labelled=labelled)
        assert not again["unit_id"].isin(labelled).any()
        assert not again["recording_id"].eq(rec).any()
        assert (
            len(again)
            == len(df) - 50 - (df.recording_id.eq(rec) & ~df.segment_id.isin(first.unit_id)).sum()
        )
    files = sample(df, "topk_entropy_files", n=100, labelled=[rec])
    assert rec not in set(files["unit_id"]) and len(files) == df.recording_id.nunique() - 1
    # a labelled segment removes its recording from recording units
    seg_of_other = df["segment_id"].iloc[-1]
    files = sample(df, "topk_entropy_files", n=100, labelled=[seg_of_other])
    assert df["recording_id"].iloc[-1] not in set(files["unit_id"])


def test_empty_pool_gives_empty_sample(segs) -> None:
    df, _ = segs
    out = sample(df, "stratified_entropy", n=5, labelled=df["recording_id"].unique())
    assert out.empty and tuple(out.columns[: len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS


def test_pool_filters(segs) -> None:
    df, _ = segs
    strat = {
        "base": "max_entropy",
        "pool": {"sites": ["S1", "S2"], "min_confidence": 0.2, "months": [1, 2, 3, 4, 5, 6]},
    }
    out = sample(df, strat, n=1000)
    assert set(out["site"]) <= {"S1", "S2"} and out["top1_confidence"].min() >= 0.2
    assert pd.to_datetime(out["segment_time"]).dt.month.le(6).all()
    expect = df[
        df.site.isin(["S1", "S2"]) & (df.top1_confidence >= 0.2) & df.segment_time.dt.month.le(6)
    ]
    assert len(out) == len(expect)
    dated = sample(df, {"pool": {"date_from": "2025-03-01", "date_to": "2025-03-31"}}, n=1000)
    assert pd.to_datetime(dated["segment_time"]).dt.month.eq(3).all()


def test_batch_size_met_or_pool_exhausted(segs) -> None:
    df, _ = segs
    assert len(sample(df, "stratified_random", n=123)) == 123
    assert len(sample(df, "stratified_random", n=10_000)) == len(df)


def test_output_columns_and_rank(segs) -> None:
    df, _ = segs
    out = sample(df, "stratified_entropy", n=8)
    assert tuple(out.columns[: len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS
    assert out["rank"].tolist() == list(range(1, 9)) and out["unit_type"].eq("segment").all()
    assert {"site", "max_binary_entropy", "top1_species", "strategy"} <= set(out.columns)
    assert out["cluster"].eq(-1).all() and out["unit_id"].is_unique


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "name",
    [
        "random",
        "stratified_kmeans_entropy",
        "farthest_first",
        "confidence_bins",
        "species_balanced",
        "ward_entropy",
    ],
)
def test_determinism(segs, name: str) -> None:
    df, emb = segs
    a = sample(df, name, n=15, seed=7, embeddings=emb)
    b = sample(df.copy(), name, n=15, seed=7, embeddings=emb.copy())
    pd.testing.assert_frame_equal(a, b)


def test_seed_changes_random_sample(segs) -> None:
    df, _ = segs
    one, two = (set(sample(df, "random", n=20, seed=s).unit_id) for s in (1, 2))
    assert one != two


# --------------------------------------------------------------------------- strategies


def test_list_and_resolve_strategies() -> None:
    names = list_strategies()
    for required in (
        "random",
        "lowest_confidence",
        "confidence_bins",
        "max_entropy",
        "mean_entropy",
        "margin",
        "ratio",
        "index_tfsd",
        "topk_entropy_files",
        "kmeans_entropy",
        "farthest_first",
        "species_balanced",
        "stratified_entropy",
        "stratified_kmeans_entropy",
    ):
        assert names[required]
    params = {
        "sampling": {
            "strategies": {
                "mine": {"base": "stratified_entropy", "strata": ["country"], "n": 7},
                "max_entropy": {"n": 3, "description": "overridden"},
                "chain": {"base": "mine", "seed": 5},
            }
        }
    }
    mine = resolve_strategy("mine", params)
    assert mine["strata"] == ["country"] and mine["n"] == 7
    assert mine["score"]["method"] == "max_entropy"
    assert resolve_strategy("max_entropy", params)["n"] == 3
    assert resolve_strategy("chain", params)["strata"] == ["country"]
    assert list_strategies(params)["max_entropy"] == "overridden"
    assert set(PRESETS) <= set(list_strategies(params))


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"unit": "file"}, "unit"),
        ({"diversify": {"method": "kmeanz"}}, "diversify.method"),
        ({"score": {"method": "entropy"}}, "score.method"),
        ({"strata": ["site", "pla-net"]}, "strata"),  # free columns pass; malformed names not
        ({"allocation": "greedy"}, "allocation"),
        ({"n": 0}, "n"),
        ({"pool": {"sitez": ["A"]}}, "pool.sitez"),
        ({"aggregation": {"k": 0}}, "aggregation.k"),
        ({"strata_options": {"twilight_low": 10}}, "twilight_low"),
        ({"colour": "red"}, "colour"),
        ({"base": "nope"}, "base"),
    ],
)
def test_validation_names_the_key(bad: dict, key: str) -> None:
    with pytest.raises(StrategyError, match=key.replace(".", r"\.")):
        resolve_strategy(bad)


def test_unknown_strategy_name() -> None:
    with pytest.raises(StrategyError, match="unknown strategy 'nope'"):
        resolve_strategy("nope")


# --------------------------------------------------------------------------- files and CLI


def _write(tmp: Path, df: pd.DataFrame, emb: np.ndarray) -> tuple[Path, Path]:
    seg_path, emb_path = tmp / "segments.parquet", tmp / "embeddings.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), seg_path)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])
    pq.write_table(
        pa.table(
            {
                "segment_id": df["segment_id"],
                "recording_id": df["recording_id"],
                "start_s": df["start_s"],
                "embedding": arr,
            }
        ),
        emb_path,
    )
    return seg_path, emb_path


def _cli(argv: list[str]) -> int:
    from activepam.sampling.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sample", *argv])
    return args.func(args)


def test_run_sampling_matches_in_memory(tmp_path: Path, segs) -> None:
    df, emb = segs
    seg_path, emb_path = _write(tmp_path, df, emb)
    files = run_sampling(
        seg_path,
        "stratified_kmeans_entropy",
        n=10,
        seed=4,
        embeddings=emb_path,
        out=tmp_path / "s.csv",
        progress=False,
    )
    mem = sample(df, "stratified_kmeans_entropy", n=10, seed=4, embeddings=emb)
    assert files["unit_id"].tolist() == mem["unit_id"].tolist()
    assert files["reason"].tolist() == mem["reason"].tolist()
    assert {"country", "habitat", "mean_binary_entropy"} <= set(files.columns)
    csv = pd.read_csv(tmp_path / "s.csv")
    assert csv["unit_id"].tolist() == mem["unit_id"].tolist()
    # determinism through the files: byte-identical CSV
    run_sampling(
        seg_path,
        "stratified_kmeans_entropy",
        n=10,
        seed=4,
        embeddings=emb_path,
        out=tmp_path / "t.csv",
        progress=False,
    )
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "t.csv").read_bytes()


def test_run_sampling_recording_units(tmp_path: Path, segs) -> None:
    df, emb = segs
    seg_path, emb_path = _write(tmp_path, df, emb)
    files = run_sampling(seg_path, "topk_entropy_files", n=6, embeddings=emb_path, progress=False)
    mem = sample(df, "topk_entropy_files", n=6)
    assert files["unit_type"].eq("recording").all() and files["unit_id"].is_unique
    assert files["unit_id"].tolist() == mem["unit_id"].tolist()
    assert files["score"].tolist() == pytest.approx(mem["score"].tolist())
    assert files["n_segments"].eq(10).all() and files["end_s"].eq(30.0).all()


def test_cli_sample_and_list(tmp_path: Path, segs, capsys) -> None:
    df, emb = segs
    seg_path, emb_path = _write(tmp_path, df, emb)
    pd.DataFrame({"unit_id": df["segment_id"][:5]}).to_csv(tmp_path / "lab.csv", index=False)
    out = tmp_path / "out" / "sample.csv"
    rc = _cli(
        [
            "--segments",
            str(seg_path),
            "--embeddings",
            str(emb_path),
            "--strategy",
            "farthest_first",
            "--n",
            "12",
            "--seed",
            "1",
            "--out",
            str(out),
            "--labelled",
            str(tmp_path / "lab.csv"),
        ]
    )
    assert rc == 0
    got = pd.read_csv(out)
    assert len(got) == 12 and not got["unit_id"].isin(df["segment_id"][:5]).any()
    assert _cli(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "topk_entropy_files" in listing and "farthest_first" in listing
    cfg = tmp_path / "strategy.yaml"
    cfg.write_text("base: stratified_entropy\nstrata: [habitat]\nn: 4\n")
    assert _cli(["--segments", str(seg_path), "--config", str(cfg), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert len(got) == 4 and got["stratum"].str.startswith("habitat=").all()
    bad = tmp_path / "bad.yaml"
    bad.write_text("diversify: {method: kmeanz}\n")
    assert _cli(["--segments", str(seg_path), "--config", str(bad), "--out", str(out)]) == 1
    assert "diversify.method" in capsys.readouterr().err
    assert (
        _cli(
            [
                "--segments",
                str(tmp_path / "missing.parquet"),
                "--strategy",
                "random",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert "file not found" in capsys.readouterr().err


def test_missing_column_named(tmp_path: Path, segs) -> None:
    df, emb = segs
    seg_path, _ = _write(tmp_path, df.drop(columns=["habitat"]), emb)
    with pytest.raises(SampleInputError, match="habitat"):
        run_sampling(seg_path, {"strata": ["habitat"]}, n=3, progress=False)


def test_read_labelled(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("segment_id,x\ns1,1\ns2,2\n")
    (tmp_path / "b.csv").write_text("id\nr1\n")
    assert read_labelled(tmp_path / "a.csv") == ["s1", "s2"]
    assert read_labelled(tmp_path / "b.csv") == ["r1"]
    assert read_labelled("") == []
    with pytest.raises(SampleInputError, match="not found"):
        read_labelled(tmp_path / "zzz.csv")
