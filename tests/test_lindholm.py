"""Lindholm et al. 2025 kit (Top-K entropy): generators, metrics, aggregation, the reduced
embedding-space protocol end to end and a tiny generated-audio run through BirdNET."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core.uncertainty import aggregate
from activepam.simulation import lindholm as L
from activepam.simulation import lindholm_audio as A

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "params" / "protocols" / "lindholm2025.yaml"


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("n_files", [100, 333, 2500])
def test_plan_events_ratio_counts_balance_no_overlap(n_files: int) -> None:
    ev = L.plan_events(n_files, 5, np.random.default_rng(n_files))
    per_file = ev.groupby("file").size()
    assert len(per_file) == round(0.2 * n_files)  # exactly 20% of the files hold events
    assert per_file.min() >= 1 and per_file.max() <= 3
    assert set(per_file.unique()) == {1, 2, 3}
    counts = ev["cls"].value_counts()
    assert set(counts.index) == {1, 2, 3, 4, 5}
    assert counts.max() - counts.min() <= 1  # balanced classes
    assert (ev["onset_s"] > 0).all() and (ev["offset_s"] < 10.0).all()
    dur = ev["offset_s"] - ev["onset_s"]
    assert dur.between(0.3, 2.0).all()
    for _, g in ev.groupby("file"):
        g = g.sort_values("onset_s")
        assert (g["onset_s"].to_numpy()[1:] >= g["offset_s"].to_numpy()[:-1] + 0.15 - 1e-12).all()


def test_plan_events_rejects_bad_settings() -> None:
    with pytest.raises(L.LindholmError, match="event_ratio"):
        L.plan_events(10, 3, np.random.default_rng(0), event_ratio=1.5)
    with pytest.raises(L.LindholmError, match="do not fit"):
        L.plan_events(10, 3, np.random.default_rng(0), events_per_file=(1, 6), event_s=(1, 2))


@pytest.mark.parametrize("snr", [-10.0, 0.0, 10.0])
def test_embedding_frames_snr_exact_and_labels(snr: float) -> None:
    d = L.embedding_frames(60, seed=3, snr_db=snr, return_parts=True)
    noise, signal = d.info["noise"], d.info["signal"]
    assert d.X.shape == (60, 175, 16) and d.y.shape == (60, 175)
    assert ((signal.sum(axis=2) > 0) == (d.y > 0)).all()  # signal exactly on event frames
    centres = (np.arange(175) + 0.5) * 10.0 / 175
    for ev in d.events.itertuples(index=False):
        idx = (centres >= ev.onset_s) & (centres < ev.offset_s)
        assert (d.y[ev.file, idx] == ev.cls).all()
        ratio = signal[ev.file, idx].sum() / noise[ev.file, idx].sum()
        assert 10 * math.log10(ratio) == pytest.approx(snr, abs=1e-9)
    quiet = np.setdiff1d(np.arange(60), d.events["file"])
    assert len(quiet) == 48 and (d.y[quiet] == 0).all()
    np.testing.assert_allclose(np.median(d.X, axis=1), 0.0, atol=1e-6)  # per-file normalised


def test_embedding_frames_seeded() -> None:
    a = L.embedding_frames(20, seed=1)
    b = L.embedding_frames(20, seed=1)
    c = L.embedding_frames(20, seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("snr", [-10.0, 0.0, 10.0])
def test_audio_file_snr_exact(snr: float) -> None:
    tm = A.class_templates(5)
    assert [t[1] for t in tm] == ["warble", "downsweep", "trill", "whistle", "chirp"]
    ev = pd.DataFrame(
        {"file": [0, 0], "cls": [2, 5], "onset_s": [1.0, 4.0], "offset_s": [2.5, 4.7]}
    )
    mix, bg, sig = A.synth_file(ev, tm, snr, np.random.default_rng(0))
    assert len(mix) == 480_000
    np.testing.assert_allclose(mix, bg + sig, atol=1e-7)
    for e in ev.itertuples():
        a, b = round(e.onset_s * 48_000), round(e.offset_s * 48_000)
        s, n = sig[a:b].astype(np.float64), bg[a:b].astype(np.float64)
        assert 10 * math.log10(np.dot(s, s) / np.dot(n, n)) == pytest.approx(snr, abs=1e-4)
    outside = np.ones(480_000, bool)
    outside[48_000:120_000] = outside[192_000:225_600] = False
    assert not sig[outside].any()
    _, _, quiet = A.synth_file(ev.iloc[:0], tm, snr, np.random.default_rng(0))
    assert not quiet.any()


def test_window_starts_and_labels() -> None:
    st = A.window_starts_s(10.0, 0.5)
    np.testing.assert_allclose(st, np.arange(15) * 0.5)
    assert len(A.window_starts_s(10.0, 3.0)) == 3
    ev = pd.DataFrame(
        {
            "file": [0, 0, 1],
            "cls": [1, 2, 3],
            "onset_s": [0.2, 3.4, 8.0],
            "offset_s": [1.2, 5.4, 9.9],
        }
    )
    y = A.window_labels(ev, 3, np.array([0.0, 2.0, 3.0, 7.0]))
    # window [0,3): event 1 fully inside (1.0 s >= 0.5 x 1.0); [2,5): 1.6 s of event 2's 2.0 s;
    # [3,6): all of event 2; [7,10) of file 1: event 3 (1.9 s of 1.9 s); file 2: background
    np.testing.assert_array_equal(y, [[1, 2, 2, 0], [0, 0, 0, 3], [0, 0, 0, 0]])
    # an event covering less than half of itself in the window is not the window's class
    ev1 = pd.DataFrame({"file": [0], "cls": [1], "onset_s": [2.6], "offset_s": [3.8]})
    np.testing.assert_array_equal(A.window_labels(ev1, 1, np.array([0.0, 0.5, 1.0])), [[0, 1, 1]])
    # two events in one window: the larger overlap wins
    ev2 = pd.DataFrame(
        {"file": [0, 0], "cls": [1, 2], "onset_s": [0.1, 1.0], "offset_s": [0.6, 2.8]}
    )
    assert A.window_labels(ev2, 1, np.array([0.0]))[0, 0] == 2


# --------------------------------------------------------------------------- metrics


def test_event_iou_hand_made() -> None:
    t = np.array([0, 1, 1, 0, 2, 2])
    p = np.array([0, 1, 0, 0, 2, 1])
    # class 1: inter {1}, union {1, 2, 5} -> 1/3; class 2: inter {4}, union {4, 5} -> 1/2;
    # class 3 has an empty union and is skipped
    assert L.event_iou(t, p, 3) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert L.event_iou(t, t, 2) == 1.0
    assert L.event_iou(t, np.zeros(6, int), 2) == 0.0
    assert math.isnan(L.event_iou(np.zeros(4, int), np.zeros(4, int), 2))
    # concatenated test set: the same as one long timeline
    assert L.event_iou(t.reshape(2, 3), p.reshape(2, 3), 3) == L.event_iou(t, p, 3)


def test_macro_ap_hand_made() -> None:
    y = np.array([0, 1, 1, 2])
    P = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.2, 0.5], [0.1, 0.3, 0.6]])
    # class 1 scores 0.1, 0.7, 0.2, 0.3 -> ranks 1 (pos), 3 (neg), 4 (pos): AP = (1 + 2/3) / 2
    # class 2 scores 0.1, 0.1, 0.5, 0.6 -> positive first: AP = 1
    assert L.macro_ap(y, P, 2) == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)


def test_entropy_bits() -> None:
    P = np.array([[1.0, 0, 0, 0], [0.25] * 4, [0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(L.entropy_bits(P), [0.0, 2.0, 1.0])


def test_file_scores_hand_made_and_match_core_aggregate() -> None:
    H = np.array([[0.1, 0.9, 0.5, 0.3], [0.2, 0.2, 0.2, 0.8]])
    ev = np.array([[False, True, True, False], [False, False, False, False]])
    np.testing.assert_allclose(L.file_scores(H, ev, "topk", 2), [0.7, 0.5])
    np.testing.assert_allclose(L.file_scores(H, ev, "topk", 1), [0.9, 0.8])
    np.testing.assert_allclose(L.file_scores(H, ev, "topk", None), H.mean(axis=1))
    np.testing.assert_allclose(L.file_scores(H, ev, "topk", 99), H.mean(axis=1))
    np.testing.assert_allclose(L.file_scores(H, ev, "mean", None), [0.45, 0.35])
    np.testing.assert_allclose(L.file_scores(H, ev, "median", None), [0.4, 0.2])
    me = L.file_scores(H, ev, "mean_event", None)
    assert me[0] == pytest.approx(0.7) and math.isnan(me[1])
    for i in range(2):
        for method, k in (("topk", 2), ("mean", 10), ("median", 10)):
            assert L.file_scores(H[i : i + 1], ev[i : i + 1], method, k)[0] == pytest.approx(
                aggregate(H[i], method, k)
            )
        conf = np.where(ev[i], 1.0, 0.0)
        a = aggregate(H[i], "mean_event", event_threshold=0.5, event_conf=conf)
        b = L.file_scores(H[i : i + 1], ev[i : i + 1], "mean_event")[0]
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)
    with pytest.raises(L.LindholmError, match="unknown aggregation"):
        L.file_scores(H, ev, "max")


def test_select_top_nan_last_ties_seeded() -> None:
    s = np.array([0.5, np.nan, 0.9, 0.5, 0.1])
    assert list(L.select_top(s, 1, np.random.default_rng(0))) == [2]
    assert set(L.select_top(s, 3, np.random.default_rng(0))) == {2, 0, 3}
    assert L.select_top(s, 5, np.random.default_rng(0))[-1] == 1
    picks = {int(L.select_top(np.zeros(10), 1, np.random.default_rng(i))[0]) for i in range(20)}
    assert len(picks) > 3  # ties broken at random, not by position


def test_schedule_grows_and_hits_claim_fraction() -> None:
    cfg = L.ALConfig.from_params(L.read_protocol(PROTOCOL))
    fr = cfg.fractions()
    assert fr[0] == pytest.approx(0.005) and fr[-1] == pytest.approx(0.16)
    assert any(abs(f - 0.08) < 1e-12 for f in fr)
    plan = L.schedule(cfg, 2000)
    assert [n for _, n in plan] == [10, 14, 20, 28, 40, 57, 80, 113, 160, 226, 320]
    counts = [n for _, n in L.schedule(cfg, 320)]
    assert counts[0] == 2 and all(b > a for a, b in zip(counts, counts[1:]))
    assert cfg.runs()[:5] == [("topk", 1), ("topk", 3), ("topk", 5), ("topk", 10), ("topk", 20)]
    assert ("mean", None) in cfg.runs() and len(cfg.runs()) == 9
    with pytest.raises(L.LindholmError, match="unknown"):
        L.ALConfig.from_params({"strategies": ["topk", "bald"]})


def test_softmax_probe_learns() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    X = np.eye(3)[y] * 3 + rng.normal(0, 0.5, (600, 3))
    p = L.SoftmaxProbe(3).fit(X[:300], y[:300])
    P = p.predict_proba(X[300:])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    assert (P.argmax(axis=1) == y[300:]).mean() > 0.95
    q = L.SoftmaxProbe(3)
    with pytest.raises(L.LindholmError, match="before fit"):
        q.predict_proba(X)


# --------------------------------------------------------------------------- end to end


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    L.register(parser.add_subparsers())
    return parser


def test_registered_in_cli() -> None:
    from activepam import cli

    assert "activepam.simulation.lindholm" in cli.COMMAND_MODULES


@pytest.mark.slow
def test_embedding_reduced_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lh"
    args = _parser().parse_args(
        [
            "lindholm",
            "embedding",
            "--protocol",
            str(PROTOCOL),
            "--size",
            "ci",
            "--files",
            "250",
            "--seeds",
            "2",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    res = pd.read_parquet(out / "results.parquet")
    full = pd.read_parquet(out / "full.parquet")
    assert (out / "table.md").read_text().strip() == text.strip()
    # every strategy x K, every round, both replicates
    runs = set(map(tuple, res[["strategy", "k"]].drop_duplicates().to_numpy().tolist()))
    assert runs == {
        ("topk", 1),
        ("topk", 3),
        ("topk", 5),
        ("topk", 10),
        ("topk", 20),
        ("mean", -1),
        ("median", -1),
        ("mean_event", -1),
        ("random", -1),
    }
    assert res.groupby(["strategy", "k"])["replicate"].nunique().eq(2).all()
    assert len(full) == 2 and (full["n_labelled"] == 200).all()
    # strategies share the seed set: round 0 identical; labelled counts follow the schedule
    r0 = res[res["round"] == 0].groupby("replicate")["event_iou"].nunique()
    assert (r0 == 1).all()
    assert sorted(res["n_labelled"].unique()) == [
        n for _, n in L.schedule(L.ALConfig.from_params(L.read_protocol(PROTOCOL)), 200)
    ]
    # the printed table: a row per strategy x K, intervals inside [0, 1] around the mean
    for label in (
        "Top-1",
        "Top-3",
        "Top-5",
        "Top-10",
        "Top-20",
        "Mean (= Top-all)",
        "Median",
        "Mean Event Entropy",
        "Random",
        "full supervision",
    ):
        assert text.count(f"| {label} ") == 2, label  # IoU and macro AP tables
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    cells = re.findall(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]", table)
    assert len(cells) > 100
    for m, lo, hi in cells:
        assert 0.0 <= float(lo) <= float(m) + 1e-9 <= float(hi) + 2e-9 <= 1.0 + 2e-9
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert len(claims) == 1 and len(claims[0]["claims"]) == 3
    assert all(isinstance(c["holds"], bool) for c in claims[0]["claims"])
    assert text.count("HOLD") == 3
    # intervals vary the data: replicates are different datasets and splits
    assert full["event_iou"].nunique() == 2
    assert "Event files among the labelled files at 8.0%" in text
    # the saved run re-prints the same tables and verdicts without running anything
    again = _parser().parse_args(
        ["lindholm", "report", "--protocol", str(PROTOCOL), "--out", str(out)]
    )
    assert again.func(again) == 0
    printed = capsys.readouterr().out
    body = text.split("\n", 1)[1].rsplit("wall time", 1)[0]
    assert body.strip() in printed


def test_protocol_unknown_key_named(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("lindholm:\n  seed_fracton: 0.01\n")
    with pytest.raises(L.LindholmError, match="lindholm.seed_fracton"):
        L.read_protocol(bad)
    (tmp_path / "q.yaml").write_text("other: 1\n")
    with pytest.raises(L.LindholmError, match="no 'lindholm:' section"):
        L.read_protocol(tmp_path / "q.yaml")


def test_embedding_unknown_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = _parser().parse_args(
        [
            "lindholm",
            "embedding",
            "--protocol",
            str(PROTOCOL),
            "--size",
            "huge",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func(args) == 2
    assert "lindholm.embedding.huge" in capsys.readouterr().err


@pytest.mark.slow
def test_audio_tiny_through_birdnet(tmp_path: Path) -> None:
    proto = L.read_protocol(PROTOCOL)
    proto["event_ratio"] = 0.5
    data = A.audio_corpus(4, 0.0, proto, threads=2, cache=tmp_path)
    assert data.X.shape == (4, 15, 1024) and np.isfinite(data.X).all()
    assert data.y.shape == (4, 15) and (data.y > 0).any(axis=1).sum() == 2
    assert not data.info["cached"]
    # windows of different content give different embeddings
    assert np.abs(data.X[:, 0] - data.X[:, 7]).max() > 1e-3
    again = A.audio_corpus(4, 0.0, proto, threads=2, cache=tmp_path)
    assert again.info["cached"]
    np.testing.assert_array_equal(again.X, data.X)
    z = A.project(data, 8)
    assert z.X.shape == (4, 15, 8)
