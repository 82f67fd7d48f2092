"""Sampling designs from issue 14: nearest to examples (score similarity, composing with strata
and diversification) and the verification design (score bins per species x site), whose
draws the call-density estimator turns into intervals that cover the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activepam.rounds.answers import round_density
from activepam.sampling.engine import sample
from activepam.sampling.files import run_sampling
from activepam.sampling.strategies import StrategyError
from activepam.sampling.verification import _sigmoid


def _segments(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seg = pd.DataFrame(
        {
            "segment_id": [f"r{i // 20:03d}@{3.0 * (i % 20):.1f}" for i in range(n)],
            "recording_id": [f"r{i // 20:03d}" for i in range(n)],
            "path": "x.wav",
            "start_s": [3.0 * (i % 20) for i in range(n)],
            "end_s": [3.0 * (i % 20) + 3 for i in range(n)],
            "top1_species": rng.choice(["A", "B", "C"], n),
            "top1_confidence": rng.uniform(size=n),
            "max_binary_entropy": rng.uniform(size=n),
            "site": np.where(
                np.arange(n) // 20 % 3 == 0, "s1", np.where(np.arange(n) // 20 % 3 == 1, "s2", "s3")
            ),
        }
    )
    cluster = rng.integers(0, 5, n)
    emb = rng.normal(size=(5, 24))[cluster] + 0.4 * rng.normal(size=(n, 24))
    return seg, cluster, emb


def test_nearest_to_examples_finds_the_examples_cluster(tmp_path: Path) -> None:
    seg, cluster, emb = _segments()
    frame = pd.DataFrame({"segment_id": seg["segment_id"], "embedding": list(emb)})
    ex = [seg["segment_id"][0], seg["segment_id"][1]]
    out = sample(
        seg, {"base": "nearest_examples", "score": {"examples": ex}}, n=30, seed=0, embeddings=frame
    )
    idx = seg.set_index("segment_id").index.get_indexer(out["unit_id"])
    assert not set(out["unit_id"]) & set(ex)
    targets = {cluster[0], cluster[1]}
    assert np.mean([cluster[i] in targets for i in idx]) >= 0.9
    assert out["reason"].str.startswith("similarity").all()
    assert (np.diff(out["score"]) <= 1e-9).all()
    # composes with strata (equal per site) and k-means diversification
    st = sample(
        seg,
        {"base": "nearest_examples_stratified", "score": {"examples": ex}},
        n=30,
        seed=0,
        embeddings=frame,
    )
    assert st.groupby("stratum").size().tolist() == [10, 10, 10]
    # the Parquet store is streamed and gives the same scores as the in-memory table
    f = tmp_path / "embeddings.parquet"
    pq.write_table(
        pa.table(
            {
                "segment_id": seg["segment_id"],
                "recording_id": seg["recording_id"],
                "start_s": seg["start_s"],
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(emb.astype(np.float32).ravel()), 24
                ),
            }
        ),
        f,
    )
    seg_file = tmp_path / "segments.parquet"
    seg.to_parquet(seg_file)
    from_file = run_sampling(
        seg_file,
        {"base": "nearest_examples", "score": {"examples": ex}},
        n=30,
        seed=0,
        embeddings=f,
        progress=False,
    )
    assert from_file["unit_id"].tolist() == out["unit_id"].tolist()


def test_nearest_to_examples_errors() -> None:
    seg, _, emb = _segments(60)
    frame = pd.DataFrame({"segment_id": seg["segment_id"], "embedding": list(emb)})
    with pytest.raises(StrategyError, match="needs embeddings"):
        sample(seg, {"base": "nearest_examples", "score": {"examples": ["r000@0.0"]}}, n=3)
    with pytest.raises(StrategyError, match="needs examples"):
        sample(seg, "nearest_examples", n=3, embeddings=frame)
    with pytest.raises(StrategyError, match="neither an audio file nor a segment"):
        sample(
            seg,
            {"base": "nearest_examples", "score": {"examples": ["zz@0.0"]}},
            n=3,
            embeddings=frame,
        )


def _predictions(
    seg: pd.DataFrame, truth: np.ndarray, rng: np.random.Generator, species: str = "A"
) -> pd.DataFrame:
    score = _sigmoid(rng.normal(np.where(truth, 1.0, -1.0), 1.2))
    return pd.DataFrame({"segment_id": seg["segment_id"], "species": species, "confidence": score})


def test_verification_design_draws_every_bin_and_site() -> None:
    seg, _, _ = _segments()
    rng = np.random.default_rng(1)
    preds = pd.concat(
        [
            _predictions(seg, rng.uniform(size=len(seg)) < p, rng, sp)
            for sp, p in (("A", 0.2), ("B", 0.1))
        ]
    )
    out = sample(
        seg,
        {"base": "verification", "verification": {"species": ["A", "B"], "n_per_bin": 3}},
        n=10,
        seed=0,
        predictions=preds,
        labelled=["r000@0.0"],
    )
    cells = out.groupby(["design_species", "site", "design_bin"]).size()
    assert len(cells) == 2 * 3 * 5 and (cells <= 3).all()  # every species x site x bin
    assert (cells == 3).mean() > 0.8  # a top bin may hold fewer windows in one site
    assert out["unit_id"].is_unique and "r000@0.0" not in set(out["unit_id"])
    assert out["reason"].str.startswith("verification: ").all()
    edges = out["design_bin_edges"].iloc[0].split(";")
    assert edges[0] == "-inf" and edges[-1] == "inf" and len(edges) == 6
    with pytest.raises(StrategyError, match="needs the per-species predictions"):
        sample(seg, "verification", n=10)
    with pytest.raises(StrategyError, match="verification.quantiles"):
        sample(
            seg,
            {"base": "verification", "verification": {"quantiles": [0.9, 0.5]}},
            n=10,
            predictions=preds,
        )


@pytest.mark.slow
def test_verification_rounds_cover_true_density(tmp_path: Path) -> None:
    """The sampler's verification design + expert answers (the truth) -> call density per site
    whose 95 % interval covers the true share of windows in >= 90 % of 30 seeds."""
    from test_answers import _labels

    seg, _, _ = _segments(1800, seed=3)
    base = seg["site"].map({"s1": 0.05, "s2": 0.15, "s3": 0.3}).to_numpy()
    cover = total = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        truth = rng.uniform(size=len(seg)) < base
        preds = _predictions(seg, truth, rng)
        drawn = sample(
            seg,
            {"base": "verification", "verification": {"species": ["A"], "n_per_bin": 20}},
            n=10,
            seed=seed,
            predictions=preds,
        )
        t = dict(zip(seg["segment_id"], truth))
        labels = _labels([(u, "oracle", "A" if t[u] else "", int(t[u])) for u in drawn["unit_id"]])
        est = round_density(drawn, labels, preds, seg, ["A", "B"], strata=["site"], seed=seed)
        share = pd.Series(truth).groupby(seg["site"]).mean()
        for row in est.itertuples():
            cover += int(row.density_lo <= share[row.stratum.split("=")[1]] <= row.density_hi)
            total += 1
    print(f"verification-design density coverage {cover}/{total}")
    assert total == 90
    assert cover / total >= 0.9
    from activepam.sampling.verification import plot_density

    assert plot_density(est, Path(tmp_path) / "density.png").stat().st_size > 5000


def test_typiclust_picks_typical_points_of_uncovered_clusters() -> None:
    from activepam.sampling import diversify as dv

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(6, 4))
    sizes = [200, 150, 120, 80, 40, 10]
    x = np.vstack([c + rng.normal(size=(m, 4)) for c, m in zip(centres, sizes)])
    truth = np.repeat(np.arange(6), sizes)
    picked = dv.typiclust(x, 4, seed=0)
    assert len(picked.pos) == 4
    assert sorted(truth[picked.pos]) == [0, 1, 2, 3]  # the four largest clusters
    for p in picked.pos:  # typical = close to its cluster's centre
        c = truth[p]
        d = np.linalg.norm(x[truth == c] - centres[c], axis=1)
        assert np.linalg.norm(x[p] - centres[c]) <= np.quantile(d, 0.25)
    # a cluster holding a labelled unit is skipped
    seeded = dv.typiclust(x, 4, seeds=centres[:1], seed=0)
    assert 0 not in set(truth[seeded.pos])
    assert all(r.startswith("typiclust") for r in seeded.reason)


def test_typiclust_strategy_runs_without_scores() -> None:
    seg, cluster, emb = _segments()
    frame = pd.DataFrame({"segment_id": seg["segment_id"], "embedding": list(emb)})
    out = sample(seg, "typiclust", n=5, seed=0, embeddings=frame)
    assert len(out) == 5 and out["reason"].str.startswith("typiclust").all()
    idx = seg.set_index("segment_id").index.get_indexer(out["unit_id"])
    assert len(set(cluster[idx])) == 5  # one per cluster of the 5 generated


def test_verification_design_in_computed_strata() -> None:
    """Strata of the design may be computed keys (diel, season), not only columns."""
    seg, _, _ = _segments(600)
    seg = seg.assign(
        lat=60.0,
        lon=10.0,
        segment_time=pd.Timestamp("2025-05-15T00:00:00Z")
        + pd.to_timedelta(np.arange(600) * 137, unit="s"),
    )
    rng = np.random.default_rng(2)
    preds = _predictions(seg, rng.uniform(size=len(seg)) < 0.2, rng)
    out = sample(
        seg,
        {
            "base": "verification",
            "verification": {"species": ["A"], "n_per_bin": 2, "strata": ["diel"]},
        },
        n=10,
        seed=0,
        predictions=preds,
    )
    assert set(out["diel"]) <= {"night", "dawn", "day", "dusk"} and out["diel"].nunique() >= 3
    assert out["design_strata"].iloc[0] == "diel"
    labels = pd.DataFrame(
        {
            "unit_id": out["unit_id"],
            "unit_type": "segment",
            "recording_id": out["recording_id"],
            "path": "x.wav",
            "start_s": 0.0,
            "end_s": 3.0,
            "species": "",
            "present": 0,
            "in_target": 1,
            "annotator": "a",
            "source_file": "f",
            "source_line": 2,
            "notes": "",
        }
    )
    est = round_density(out, labels, preds, seg, ["A"], seed=0)
    assert set(est["stratum"]) == {f"diel={d}" for d in out["diel"].unique()}


def test_verification_design_excludes_whole_labelled_recordings() -> None:
    """The rounds exclude the test set's whole recordings by recording id (issue 10): the
    verification design honours that exactly like the standard sampler."""
    seg, _, _ = _segments()
    rng = np.random.default_rng(3)
    preds = _predictions(seg, rng.uniform(size=len(seg)) < 0.2, rng)
    banned = ["r000", "r001", "r002"]
    out = sample(
        seg,
        {"base": "verification", "verification": {"species": ["A"], "n_per_bin": 20}},
        n=10,
        seed=0,
        predictions=preds,
        labelled=banned,
    )
    assert not set(out["recording_id"]) & set(banned)
    std = sample(seg, "random", n=200, seed=0, labelled=banned)
    assert not set(std["recording_id"]) & set(banned)
