"""`unsure` labels downstream of the import: masked in training, counted in the model sidecar
and in metrics.json (per species and stratum), and re-offered to another annotator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.core import labels as core_labels
from activepam.core.labels import LABEL_COLUMNS, read_labels
from activepam.rounds import rounds as rd
from activepam.rounds import train as tr
from activepam.rounds.export import assign_batches
from activepam.sampling.strategies import StrategyError, resolve_strategy

UNSURE = getattr(core_labels, "UNSURE", -1)
SP = ["A_a", "B_b", "C_c"]
KEYS = ["site", "habitat", "season", "diel"]
SITES = {
    "r0": ("S1", "forest"),
    "r1": ("S1", "forest"),
    "r2": ("S2", "wetland"),
    "r3": ("S2", "wetland"),
}


def segments(n_seg: int = 12) -> pd.DataFrame:
    """4 recordings x ``n_seg`` 3 s segments with the metadata the strata need."""
    t0 = pd.Timestamp("2025-06-01T04:00:00Z")
    rows = []
    for r, (site, habitat) in SITES.items():
        for s in range(n_seg):
            rows.append(
                {
                    "segment_id": f"{r}@{3.0 * s:.1f}",
                    "recording_id": r,
                    "path": f"{r}.wav",
                    "start_s": 3.0 * s,
                    "end_s": 3.0 * s + 3,
                    "top1_species": "A_a",
                    "top1_confidence": np.float32(0.5),
                    "top2_confidence": np.float32(0.2),
                    "margin": np.float32(0.3),
                    "max_binary_entropy": np.float32(1.0),
                    "mean_binary_entropy": np.float32(0.5),
                    "device_id": f"d{r}",
                    "site": site,
                    "country": "NO",
                    "habitat": habitat,
                    "lat": 60.0,
                    "lon": 10.0,
                    "start_time": t0,
                    "segment_time": t0 + pd.Timedelta(seconds=3.0 * s),
                }
            )
    return pd.DataFrame(rows)


def row(
    unit: str,
    species: str,
    present: int,
    annotator: str = "ann",
    unit_type: str = "segment",
    begin: float = np.nan,
    end: float = np.nan,
    conflict: int = 0,
) -> dict:
    rec, start = (unit.split("@")[0], float(unit.split("@")[1])) if "@" in unit else (unit, 0.0)
    return {
        "unit_id": unit,
        "unit_type": unit_type,
        "recording_id": rec,
        "path": f"{rec}.wav",
        "start_s": start,
        "end_s": start + 3 if unit_type == "segment" else 36.0,
        "species": species,
        "present": present,
        "sel_begin_s": begin,
        "sel_end_s": end,
        "in_target": 1,
        "annotator": annotator,
        "confidence": np.nan,
        "notes": "",
        "round": "round_00",
        "source_file": "x.csv",
        "source_line": 2,
        "conflict": conflict,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*LABEL_COLUMNS, "conflict"])))


def toy(n: int = 40, d: int = 6, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Segment ids, embeddings and truth (A frequent, B rarer) of ``n`` segments of r0..r3."""
    rng = np.random.default_rng(seed)
    ids = list(segments()["segment_id"][:n])
    truth = (rng.random((n, 2)) < [0.45, 0.3]).astype(int)
    truth[:2] = [[1, 0], [0, 1]]  # both classes guaranteed
    protos = rng.normal(0, 2, (2, d))
    X = (truth @ protos + rng.normal(0, 0.7, (n, d))).astype(np.float32)
    return ids, X, truth


def answers(
    ids: list[str], truth: np.ndarray, unsure: dict[str, str] | None = None, drop: str | None = None
) -> pd.DataFrame:
    """Label rows of the toy: present species per unit (``""`` row when none); ``unsure``
    turns (unit -> species) into an unsure answer; ``drop`` leaves a unit out."""
    out = []
    for uid, t in zip(ids, truth):
        if uid == drop:
            continue
        sp = [s for s, v in zip(SP, t) if v]
        for s in sp:
            out.append(row(uid, s, UNSURE if (unsure or {}).get(uid) == s else 1))
        if not sp:
            out.append(row(uid, "", 0))
    return frame(out)


def fit(labels: pd.DataFrame, ids: list[str], X: np.ndarray) -> tr.RoundModel:
    sid, Y = tr.segment_targets(labels, segments(), SP)
    pos = {s: i for i, s in enumerate(ids)}
    opts = tr.TrainOptions(calibrate_min=1000, cv_folds=2)  # plain probes: fast
    return tr.fit_round_model(X[[pos[s] for s in sid]], Y, SP, opts, "h")


# --------------------------------------------------------------------------- training


def test_unsure_cell_is_left_out_of_that_species_fit() -> None:
    ids, X, truth = toy()
    u = next(i for i, t in zip(ids, truth) if t[0] == 1 and t[1] == 1)  # has A and B
    with_unsure = fit(answers(ids, truth, unsure={u: "A_a"}), ids, X)
    without = fit(answers(ids, truth, drop=u), ids, X)
    as_absent = fit(
        answers(ids, truth, drop=u).pipe(
            lambda f: pd.concat([f, frame([row(u, "B_b", 1)])], ignore_index=True)
        ),
        ids,
        X,
    )
    grid = np.random.default_rng(9).normal(0, 2, (50, X.shape[1])).astype(np.float32)
    zeros = np.zeros((len(grid), len(SP)))
    p_uns, p_wo, p_abs = (m.predict(grid, zeros)[:, 0] for m in (with_unsure, without, as_absent))
    np.testing.assert_array_equal(p_uns, p_wo)  # the very probe trained without the unit
    assert with_unsure.thresholds[0] == without.thresholds[0]
    assert np.abs(p_uns - p_abs).max() > 1e-3  # not the probe that took it as absent
    a, b = with_unsure.species["A_a"], with_unsure.species["B_b"]
    assert (a.n_pos, a.n_neg, a.n_masked) == (
        without.species["A_a"].n_pos,
        without.species["A_a"].n_neg,
        1,
    )
    assert b.n_pos == without.species["B_b"].n_pos + 1 and b.n_masked == 0  # B still learns


def test_targets_mask_unsure_and_conflict_votes() -> None:
    lab = frame(
        [
            row("r0@0.0", "A_a", UNSURE),
            row("r0@0.0", "B_b", 1),  # A unsure, C absent
            row("r0@3.0", "A_a", UNSURE, "ann"),
            row("r0@3.0", "A_a", 1, "bob"),  # bob decides
            row("r0@6.0", "B_b", 1, conflict=1),
            row("r0@6.0", "B_b", 0, conflict=1),
            row("r1", "C_c", UNSURE, unit_type="recording", begin=3.5, end=4.5),  # -> r1@3.0
        ]
    )
    sid, Y = tr.segment_targets(lab, segments(), SP)
    y = dict(zip(sid, Y))
    np.testing.assert_array_equal(y["r0@0.0"], [np.nan, 1, 0])
    np.testing.assert_array_equal(y["r0@3.0"], [1, 0, 0])
    np.testing.assert_array_equal(y["r0@6.0"], [0, np.nan, 0])
    np.testing.assert_array_equal(y["r1@3.0"], [0, 0, np.nan])
    np.testing.assert_array_equal(y["r1@0.0"], [0, 0, 0])


def test_label_cells_and_counts() -> None:
    lab = frame(
        [
            row("r0@0.0", "A_a", UNSURE),
            row("r0@0.0", "B_b", 1),
            row("r0@3.0", "", 0),
            row("r0@3.0", "A_a", 1, "bob"),
            row("r0@6.0", "B_b", 1, conflict=1),
            row("r0@6.0", "B_b", 0, conflict=1),
        ]
    )
    cells = tr.label_cells(lab, SP)
    assert len(cells) == 4 * 3  # (unit, annotator) pairs x label set: closed world
    counts = tr.answer_counts(cells, index=SP)
    assert counts.loc["A_a"].tolist() == [1, 2, 1, 0]  # present, absent, unsure, conflict
    assert counts.loc["B_b"].tolist() == [1, 2, 0, 1]
    assert counts.loc["C_c"].tolist() == [0, 4, 0, 0]


# --------------------------------------------------------------------------- files


def write_project(root: Path) -> dict[str, Path]:
    """segments / embeddings / predictions, labels of round 00 (one unsure A answer, one
    unsure B answer at site S2), a test set with its labels (one unsure answer)."""
    seg = segments()
    ids, X, truth = toy(n=len(seg), seed=5)
    p = {k: root / f"{k}.parquet" for k in ("segments", "embeddings", "predictions")}
    seg.to_parquet(p["segments"])
    pq.write_table(
        pa.table(
            {
                "segment_id": ids,
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(X.ravel(), pa.float32()), X.shape[1]
                ),
            }
        ),
        p["embeddings"],
    )
    pd.DataFrame(
        {
            "segment_id": ids,
            "recording_id": seg["recording_id"],
            "path": seg["path"],
            "start_s": seg["start_s"],
            "end_s": seg["end_s"],
            "rank": 1,
            "species": "A_a",
            "confidence": np.float32(0.4),
        }
    ).to_parquet(p["predictions"])
    test_ids = [i for i in ids if i.endswith(("@0.0", "@3.0", "@6.0", "@9.0"))]
    train_ids = [i for i in ids if i not in test_ids][:24]
    train = pd.Series(list(truth), index=ids)
    u_a = next(i for i in train_ids if train[i][0] == 1 and i.startswith("r0"))
    u_b = next(i for i in train_ids if train[i][1] == 1 and i.startswith("r2"))
    lab = answers(train_ids, np.stack(train[train_ids]), unsure={u_a: "A_a", u_b: "B_b"})
    p["labels"] = root / "round_00.csv"
    lab.to_csv(p["labels"], index=False)
    t = (
        seg.set_index("segment_id")
        .loc[test_ids]
        .reset_index()
        .rename(columns={"segment_id": "unit_id"})
        .assign(unit_type="segment")
    )
    p["test_set"] = root / "test_set.csv"
    t.to_csv(p["test_set"], index=False)
    tl = answers(test_ids, np.stack(train[test_ids]))
    tl = tl[~((tl["unit_id"] == test_ids[0]) & (tl["species"] == "B_b"))]
    tl = pd.concat([tl, frame([row(test_ids[0], "B_b", UNSURE)])], ignore_index=True)
    p["test_labels"] = root / "test.csv"
    tl.to_csv(p["test_labels"], index=False)
    return p


def test_train_round_and_metrics_count_unsure(tmp_path: Path) -> None:
    p = write_project(tmp_path)
    d = tmp_path / "round_00"
    model = tr.train_round(
        [p["labels"]],
        p["segments"],
        p["embeddings"],
        p["predictions"],
        SP,
        d / "model.joblib",
        d / "model.json",
        d / "scored.parquet",
        d / "pred.parquet",
        tr.TrainOptions(),
        round_label="round_00",
    )
    labels = read_labels(p["labels"])
    side = json.loads((d / "model.json").read_text())
    assert side["species"]["A_a"]["n_unsure"] == 1 and side["species"]["B_b"]["n_unsure"] == 1
    assert side["species"]["A_a"]["n_masked"] == 1
    n_units = labels["unit_id"].nunique()
    for sp in SP:
        c = side["species"][sp]
        assert c["n_present"] + c["n_absent"] + c["n_unsure"] + c["n_conflict"] == n_units
        assert c["n_present"] == int(((labels["species"] == sp) & (labels["present"] == 1)).sum())
    assert side["answers"]["n_unsure"] == 2
    # the hash covers the unsure rows: they are part of the training labels
    assert side["training_hash"] == tr.training_hash(labels)
    assert tr.training_hash(labels[labels["present"] != UNSURE]) != side["training_hash"]
    assert model.summary()["A_a"]["n_unsure"] == 1

    common = dict(
        test_set=p["test_set"],
        test_labels=p["test_labels"],
        embeddings=p["embeddings"],
        predictions=p["predictions"],
        label_set=SP,
        keys=KEYS,
    )
    base, *_ = rd.evaluate_model(None, **common)
    (tmp_path / "baseline.json").write_text(json.dumps({"overall": base["overall"]}))
    metrics, species, confusion = rd.round_metrics(
        "00",
        d / "model.joblib",
        d / "model.json",
        tmp_path / "baseline.json",
        round_labels=p["labels"],
        segments=p["segments"],
        **common,
    )
    rd.write_round_metrics(
        metrics,
        species,
        confusion,
        d / "metrics.json",
        d / "species.csv",
        d / "confusion.csv",
        d / "strata.json",
    )
    m = json.loads((d / "metrics.json").read_text())
    rl = m["labels"]["round"]
    assert rl["n_unsure"] == 2 and rl["n_units"] == n_units and rl["n_units_unsure"] == 2
    assert rl["species"]["A_a"]["n_unsure"] == 1 and rl["species"]["C_c"]["n_unsure"] == 0
    assert {k: v["n_unsure"] for k, v in rl["strata"]["site"].items()} == {"S1": 1, "S2": 1}
    assert rl["strata"]["habitat"]["wetland"]["n_unsure"] == 1
    assert set(rl["strata"]) == set(KEYS)
    assert sum(v["n_units"] for v in rl["strata"]["diel"].values()) == n_units
    tl = m["labels"]["test"]
    assert tl["n_unsure"] == 1 and tl["species"]["B_b"]["n_unsure"] == 1
    assert sum(v["n_unsure"] for v in tl["strata"]["site"].values()) == 1
    assert species.set_index("species").loc["A_a", "train_unsure"] == 1
    assert m["labels"]["train"] == side["answers"]
    hist = rd.history([d / "metrics.json"])
    assert hist["n_unsure"].tolist() == [2]


# --------------------------------------------------------------------------- re-sampling


def test_reoffer_unsure_units_to_another_annotator(tmp_path: Path) -> None:
    seg = segments(2)
    seg.to_parquet(tmp_path / "scores.parquet")
    lab = frame(
        [
            row("r0@0.0", "A_a", UNSURE, "ann"),  # all unsure
            row("r0@3.0", "A_a", UNSURE, "ann"),
            row("r0@3.0", "B_b", 1, "ann"),  # settled
            row("r1@0.0", "", 0, "bob"),
            row("r2@0.0", "B_b", UNSURE, "ann"),
            row("r2@0.0", "C_c", UNSURE, "bob"),
        ]
    )
    lab.to_csv(tmp_path / "round_00.csv", index=False)
    files = [tmp_path / "round_00.csv"]
    assert rd.unsure_units(files) == {"r0@0.0": {"ann"}, "r2@0.0": {"ann", "bob"}}
    assert rd.excluded_units(files, None, reoffer_unsure=True) == ["r0@3.0", "r1@0.0"]
    params = {"sampling": {"strategies": {"again": {"base": "random", "reoffer_unsure": True}}}}
    assert rd.reoffer_unsure(params, "again") and not rd.reoffer_unsure(params, "random")
    with pytest.raises(StrategyError, match="reoffer_unsure"):
        resolve_strategy({"reoffer_unsure": "yes"})

    exclude = rd.excluded_units(files, None, reoffer_unsure=True)
    sample = rd.sample_round(
        tmp_path / "scores.parquet",
        "random",
        6,
        0,
        None,
        exclude,
        tmp_path / "sample.parquet",
        reoffer=rd.unsure_units(files),
    )
    by = dict(zip(sample["unit_id"], sample["unsure_by"]))
    assert by["r0@0.0"] == "ann" and by["r2@0.0"] == "ann;bob" and by["r3@0.0"] == ""
    again = sample["unit_id"] == "r0@0.0"
    assert sample.loc[again, "reason"].iloc[0].endswith("re-offered: unsure by ann")

    # export: the unit goes to an annotator who was not unsure about it
    for r in SITES:
        sf.write(tmp_path / f"{r}.wav", np.zeros(8000 * 6, dtype=np.float32), 8000)
    sample = sample.assign(path=[str(tmp_path / f"{r}.wav") for r in sample["recording_id"]])
    for first in ("r0@0.0", "r2@0.0"):  # rank 1 goes to "ann" round-robin
        ordered = pd.concat(
            [sample[sample["unit_id"] == first], sample[sample["unit_id"] != first]],
            ignore_index=True,
        )
        ordered["rank"] = np.arange(1, len(ordered) + 1)
        plain = assign_batches(ordered.drop(columns="unsure_by"), ["ann", "bob"])
        assert plain.iloc[0] == "ann"
        opts = rd.export_options(
            {"annotators": ["ann", "bob"], "spectrograms": False, "context_s": 0.0}
        )
        man = rd.export_round(
            ordered, _empty_predictions(tmp_path), tmp_path / f"ann_{first}", "01", opts
        )
        got = dict(zip(man["unit_id"], man["annotator"]))
        if first == "r0@0.0":
            assert got["r0@0.0"] == "bob"
        else:
            assert got["r2@0.0"] == "ann"  # both were unsure: kept where round-robin put it
        load = pd.Series(list(got.values())).value_counts()
        assert abs(load.get("ann", 0) - load.get("bob", 0)) <= 1


def _empty_predictions(root: Path) -> Path:
    path = root / "pred.parquet"
    if not path.exists():
        pd.DataFrame(
            {
                "segment_id": pd.Series([], dtype=str),
                "recording_id": pd.Series([], dtype=str),
                "path": pd.Series([], dtype=str),
                "start_s": pd.Series([], dtype=float),
                "end_s": pd.Series([], dtype=float),
                "rank": pd.Series([], dtype=int),
                "species": pd.Series([], dtype=str),
                "confidence": pd.Series([], dtype=np.float32),
            }
        ).to_parquet(path)
    return path


def test_defaults_unchanged(tmp_path: Path) -> None:
    assert resolve_strategy("max_entropy")["reoffer_unsure"] is False
    frame([row("r0@0.0", "A_a", UNSURE, "ann"), row("r1@0.0", "A_a", 1)]).to_csv(
        tmp_path / "round_00.csv", index=False
    )
    files = [tmp_path / "round_00.csv"]
    assert rd.excluded_units(files, None) == ["r0@0.0", "r1@0.0"]
    segments(2).to_parquet(tmp_path / "scores.parquet")
    s = rd.sample_round(
        tmp_path / "scores.parquet",
        "random",
        4,
        0,
        None,
        rd.excluded_units(files, None),
        tmp_path / "s.parquet",
    )
    assert "unsure_by" not in s.columns and not {"r0@0.0", "r1@0.0"} & set(s["unit_id"])
    t = pd.DataFrame({"rank": [1, 2, 3]})
    assert assign_batches(t, ["ann", "bob"]).tolist() == ["ann", "bob", "ann"]
    assert assign_batches(t, ["ann", "bob"], avoid=None).tolist() == ["ann", "bob", "ann"]


# --------------------------------------------------------------------------- simulated expert


class _Truth:
    """Oracle stand-in: A calls in every span."""

    def calls(self, recording_id: str, a: float, b: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "species": ["A_a"],
                "onset_s": [a + 0.5],
                "offset_s": [a + 1.5],
                "low_hz": [1000.0],
                "high_hz": [2000.0],
            }
        )


def _prefilled() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Selection": [1, 2],
            "View": "Spectrogram 1",
            "Channel": 1,
            "Begin Time (s)": [4.0, 4.0],
            "End Time (s)": [7.0, 7.0],
            "Low Freq (Hz)": 0,
            "High Freq (Hz)": 12000,
            "Species": ["A_a", "B_b"],
            "Present": "?",
            "Confidence": "0.5",
            "Annotator": "",
            "Notes": "",
        }
    )


def test_simulated_annotator_writes_explicit_values_and_optional_unsure() -> None:
    unit = {
        "unit_id": "r0@6.0",
        "unit_type": "segment",
        "recording_id": "r0",
        "start_s": 6.0,
        "end_s": 9.0,
        "clip_start_s": 2.0,
        "clip_end_s": 13.0,
    }
    plain = rd.completed_table(unit, _prefilled(), _Truth(), "ann")
    assert dict(zip(plain["Species"], plain["Present"])) == {"B_b": 0, "A_a": 1}
    assert rd.completed_table(unit, _prefilled(), _Truth(), "ann", unsure_rate=0.0).equals(plain)
    allu = rd.completed_table(unit, _prefilled(), _Truth(), "ann", unsure_rate=1.0)
    assert set(allu["Present"]) == {"unsure"} and len(allu) == len(plain)
    draws = [
        tuple(
            rd.completed_table(unit, _prefilled(), _Truth(), "ann", 0.5, rd._unit_rng(s, "r0@6.0"))[
                "Present"
            ]
        )
        for s in range(20)
    ]
    assert draws[0] == tuple(
        rd.completed_table(unit, _prefilled(), _Truth(), "ann", 0.5, rd._unit_rng(0, "r0@6.0"))[
            "Present"
        ]
    )
    assert len(set(draws)) > 1  # seeded, and the seed matters
    with pytest.raises(rd.RoundsError, match="simulated_unsure"):
        rd.completed_table(unit, _prefilled(), _Truth(), "ann", unsure_rate=1.5)


# --------------------------------------------------------------------------- end to end


AGAIN = {"sampling": {"strategies": {"again": {"base": "random", "reoffer_unsure": True}}}}


@pytest.mark.slow
def test_unsure_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated expert answers unsure -> Raven tables -> import -> masked in training ->
    re-offered next round to the other annotator -> imported again (the rules' step functions,
    :mod:`activepam.rounds.steps`, in the workflow's order; a strategy with reoffer_unsure)."""
    from test_rounds_e2e import build_toy_project

    from activepam.core.labels import read_label_set
    from activepam.rounds import steps

    monkeypatch.chdir(tmp_path)
    p = build_toy_project(tmp_path, n_rec_per_site=1, duration_s=15.0, dim=8)
    species = read_label_set(p["species"])
    spec = resolve_strategy("again", AGAIN)
    export = {"context_s": 1.0, "annotators": ["ann", "bob"], "spectrograms": False}
    test_set = tmp_path / "test_set.csv"  # 15 segments: no room for a test set
    pd.DataFrame({"unit_id": [], "recording_id": []}).to_csv(test_set, index=False)

    def play(r: str, n: int, unsure: float) -> pd.DataFrame:
        """rules round_sample -> round_export -> round_simulated_labels of round ``r``."""
        d = Path(f"results/rounds/round_{r}")
        steps.round_sample(
            scores=p["segments"],
            labels=rd.label_files("labels", r, False),
            test_set=test_set,
            embeddings=p["embeddings"],
            predictions=p["predictions"],
            sample=d / "sample.parquet",
            settings={"spec": spec, "n": n, "seed": int(r)},
        )
        man = steps.round_export(
            units=d / "sample.parquet",
            predictions=p["predictions"],
            label_set=p["species"],
            annotation=d / "annotation",
            settings={"round": r, "strategy": "again", "export": export},
            settings_file=f"data/rounds/round_{r}.settings.json",
        )
        steps.round_simulated_labels(
            annotation=d / "annotation",
            events=p["events"],
            inventory=p["inventory"],
            label_set=p["species"],
            completed=d / "simulated",
            labels=f"labels/round_{r}.csv",
            round_id=r,
            unsure=unsure,
            seed=1,
        )
        return man

    d0 = Path("results/rounds/round_00")
    play("00", 10, unsure=0.6)
    tables = list((d0 / "simulated").rglob("*.txt"))
    cells = pd.concat(
        [pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False)["Present"] for t in tables]
    )
    assert set(cells) <= {"0", "1", "unsure"} and "unsure" in set(cells)
    lab0 = read_labels("labels/round_00.csv")
    assert (lab0["present"] == UNSURE).any()
    steps.round_train(
        labels=["labels/round_00.csv"],
        segments=p["segments"],
        embeddings=p["embeddings"],
        predictions=p["predictions"],
        label_set=p["species"],
        model=d0 / "model.joblib",
        sidecar=d0 / "model.json",
        scored=d0 / "scored.parquet",
        round_predictions=d0 / "pred.parquet",
        round_id="00",
        train={"calibrate_min": 1000, "cv_folds": 2},
        default_threshold=0.5,
        top_k=10,
    )
    side = json.loads((d0 / "model.json").read_text())
    n_unsure = int((tr.label_cells(lab0, species)["answer"] == "unsure").sum())
    assert side["answers"]["n_unsure"] == n_unsure > 0

    again = rd.unsure_units(["labels/round_00.csv"])
    assert again  # seed 1 makes at least one unit all-unsure
    man = play("01", 15, unsure=0.0)
    s1 = pd.read_parquet("results/rounds/round_01/sample.parquet")
    assert set(again) <= set(s1["unit_id"])
    who = dict(zip(man["unit_id"], man["annotator"]))
    for uid, unsure_by in again.items():
        if len(unsure_by) == 1:
            assert who[uid] not in unsure_by
    lab1 = read_labels("labels/round_01.csv")
    assert set(again) <= set(lab1["unit_id"]) and not (lab1["present"] == UNSURE).any()
