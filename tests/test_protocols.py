"""Reproduction kits: the simulation honours imported datasets (predefined split, overlapping
windows, free strata, species lists) and the BioDCASE 2026 / BaseAL protocol runs end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core.metrics import evaluate, macro_scores
from activepam.simulation.cli import _overlaid
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimDataset, SimulationError, custom_dataset
from activepam.simulation.loop import RESULT_COLUMNS, run_simulation
from activepam.simulation.probe import BaseALProbe, Probe, make_probe
from activepam.simulation.replicates import replicate_rows, strata_values
from activepam.simulation.strategies import resolve_strategy
from activepam.simulation.summaries import baseal_aulc, protocol_summary
from activepam.simulation.workflow import simulation_params

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "params" / "protocols" / "biodcase2026.yaml"


def split_dataset(n_rec: int = 12, n_seg: int = 4, dim: int = 6, seed: int = 0) -> SimDataset:
    """``n_rec`` recordings over 2 sites, a predefined split (train / validation / test by
    recording), a free ``year`` column with a missing value, separable species."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(0, 3, (3, dim))
    rows, X, Y = [], [], []
    for r in range(n_rec):
        rec = f"R{r:02d}"
        split = ("train", "train", "validation", "test")[r % 4]
        for k in range(n_seg):
            y = (rng.random(3) < [0.5, 0.4, 0.3]).astype(np.uint8)
            X.append(y @ protos + rng.normal(0, 0.5, dim))
            Y.append(y)
            rows.append(
                {
                    "unit_id": f"{rec}@{3.0 * k:.1f}",
                    "recording_id": rec,
                    "start_s": 3.0 * k,
                    "end_s": 3.0 * k + 3.0,
                    "recording_duration_s": 3.0 * n_seg,
                    "site": f"S{r % 2}",
                    "year": None if r == 0 else str(2019 + r % 3),
                    "split": split,
                }
            )
    return SimDataset(
        pd.DataFrame(rows),
        np.asarray(X, np.float32),
        np.asarray(Y, np.uint8),
        ["a", "b", "c"],
        "split",
    )


CFG = SimConfig(
    seed_size=4,
    batch_size=4,
    rounds=2,
    pca_dims=0,
    strata=("site", "year"),
    budget_unit="units",
    data_fraction=1.0,
)


# --------------------------------------------------------------------------- 1. split


def test_predefined_split_is_honoured_and_fixed_over_replicates():
    ds = split_dataset()
    split = ds.units["split"].to_numpy()
    for seed in (0, 1, 2):
        rep = replicate_rows(ds, CFG, seed)
        assert set(split[rep.split.pool]) == {"train"}
        assert set(split[rep.split.test]) == {"test"}
        assert len(rep.split.pool) == int((split == "train").sum())  # the whole train pool
        assert len(rep.split.test) == int((split == "test").sum())  # no test_fraction
        assert rep.split_seed == -1 and rep.data_seed == -1
    # data_fraction resamples the train pool only; the test set stays whole
    rep = replicate_rows(ds, SimConfig(**{**CFG.__dict__, "data_fraction": 0.5}), 3)
    assert set(split[rep.split.pool]) == {"train"} and rep.data_seed == 3
    assert len(rep.split.pool) < int((split == "train").sum())
    assert len(rep.split.test) == int((split == "test").sum())
    # split_column "" = the random split by site (today's behaviour)
    rep = replicate_rows(ds, SimConfig(**{**CFG.__dict__, "split_column": ""}), 0)
    assert "validation" in set(split[rep.split.pool]) | set(split[rep.split.test])


def test_predefined_split_errors():
    ds = split_dataset()
    ds.units.loc[0, "split"] = "dev"
    with pytest.raises(SimulationError, match="'dev' is not train, validation or test"):
        replicate_rows(ds, CFG, 0)
    ds = split_dataset()
    ds.units["split"] = "train"
    with pytest.raises(SimulationError, match="needs train and test rows"):
        replicate_rows(ds, CFG, 0)


# --------------------------------------------------------------------------- 2. cost


def _overlapping() -> SimDataset:
    """One train recording of five 3 s windows with a 1 s hop (0-3 ... 4-7), one test one."""
    rows = [
        {
            "unit_id": f"{rec}@{k}",
            "recording_id": rec,
            "start_s": float(k),
            "end_s": k + 3.0,
            "recording_duration_s": 7.0,
            "split": split,
        }
        for rec, split in (("T", "train"), ("E", "test"))
        for k in range(5)
    ]
    Y = np.tile(np.array([[1], [0]], np.uint8), (5, 1))
    X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    return SimDataset(pd.DataFrame(rows), X, Y, ["a"], "hop")


@pytest.mark.parametrize("cost, seconds", [("clip", 15.0), ("union", 7.0)])
def test_overlapping_windows_cost_their_union(cost, seconds):
    cfg = SimConfig(
        seed_size=5,
        batch_size=1,
        rounds=0,
        pca_dims=0,
        strata=(),
        budget_unit="units",
        context_s=0.0,
        segment_cost=cost,
    )
    res = run_simulation(_overlapping(), resolve_strategy("random"), 0, cfg)
    assert res["n_units"].iloc[0] == 5
    assert res["audio_seconds"].iloc[0] == pytest.approx(seconds)


def test_bad_segment_cost_and_probe():
    with pytest.raises(SimulationError, match="segment_cost"):
        SimConfig(segment_cost="sum")
    with pytest.raises(SimulationError, match="simulation.probe"):
        SimConfig(probe="svm")


# --------------------------------------------------------------------------- 3. strata


def test_free_columns_are_strata_for_evaluation_and_sampling():
    from activepam.core.strata import StrataError, build_strata
    from activepam.sampling import engine as sampling
    from activepam.sampling.strategies import StrategyError, resolve_strategy

    ds = split_dataset()
    st = build_strata(ds.units, ["year"])
    assert st.labels == ["year=2019", "year=2020", "year=2021", "year=unknown"]
    assert st.labels[st.codes[0]] == "year=unknown"  # the missing value
    with pytest.raises(StrataError, match="unknown key 'yeer'"):
        build_strata(ds.units, ["yeer"])
    values = strata_values(ds.units, ["year", "site"])
    assert values["year"][0] == "unknown" and "nan" not in set(values["year"])
    rows = evaluate(ds.Y, np.full(ds.Y.shape, 0.5), values)
    assert {v for k, v, _, _ in rows if k == "year"} == {"2019", "2020", "2021", "unknown", "all"}
    # a strategy may name a free column; a malformed name is refused when resolving
    spec = resolve_strategy(
        "by_year",
        {
            "sampling": {
                "strategies": {
                    "by_year": {"base": "random", "strata": ["year"], "allocation": "equal"}
                }
            }
        },
    )
    assert spec["strata"] == ["year"]
    with pytest.raises(StrategyError, match="neither one of"):
        resolve_strategy(
            "bad", {"sampling": {"strategies": {"bad": {"base": "random", "strata": ["year!"]}}}}
        )
    seg = ds.units.rename(columns={"unit_id": "segment_id"})
    out = sampling.sample(seg, spec, n=8, seed=0)
    picked = seg.set_index("segment_id").loc[out["unit_id"], "year"].fillna("unknown")
    assert picked.value_counts().to_dict() == {"2019": 2, "2020": 2, "2021": 2, "unknown": 2}
    typo = resolve_strategy(
        "typo", {"sampling": {"strategies": {"typo": {"base": "random", "strata": ["yeer"]}}}}
    )
    with pytest.raises(StrataError, match="unknown key 'yeer'"):  # caught at sampling time
        sampling.sample(seg, typo, n=4, seed=0)


# --------------------------------------------------------------------------- 4. species


def test_custom_dataset_reads_species_csv_beside_labels(tmp_path):
    ds = split_dataset()
    pd.DataFrame({"unit_id": ds.units["unit_id"], "embedding": list(ds.X)}).to_parquet(
        tmp_path / "embeddings.parquet"
    )
    ds.units.to_parquet(tmp_path / "metadata.parquet")
    lab = pd.DataFrame(
        {"unit_id": ds.units["unit_id"].iloc[:2], "species": ["b", "a"], "present": 1}
    )
    lab.to_parquet(tmp_path / "labels.parquet")
    args = (
        tmp_path / "embeddings.parquet",
        tmp_path / "labels.parquet",
        tmp_path / "metadata.parquet",
    )
    assert custom_dataset(*args).species == ["a", "b"]
    pd.DataFrame({"species": ["c", "b", "a", "z"]}).to_csv(tmp_path / "species.csv", index=False)
    got = custom_dataset(*args)
    assert got.species == ["c", "b", "a", "z"] and got.Y.shape == (ds.n, 4)
    assert got.Y[0].tolist() == [0, 1, 0, 0] and got.Y[:, 3].sum() == 0
    assert "split" in got.units and "year" in got.units


# --------------------------------------------------------------------------- cold start


def test_cold_start_lets_the_strategy_pick_the_seed_set():
    ds = split_dataset()
    calls: list[tuple[pd.DataFrame, int, list]] = []

    def selector(units, n, seed, emb, labelled):
        calls.append((units, n, list(labelled)))
        fresh = [u for u in units["segment_id"] if u not in set(labelled)]
        return sorted(fresh)[-n:]  # deterministic, unlike the random seed set

    spec = resolve_strategy("margin")
    cold = SimConfig(**{**CFG.__dict__, "cold_start": True})
    res = run_simulation(ds, spec, 0, cold, selector=selector)
    units0, n0, lab0 = calls[0]
    assert n0 == 4 and lab0 == []
    assert units0["margin"].nunique() == 1  # an untrained model: uniform scores
    assert units0["max_binary_entropy"].nunique() == 1
    assert len(calls) == CFG.rounds + 1
    assert calls[1][2] == sorted(units0["segment_id"])[-4:]  # round 0 = the strategy's picks
    assert res.loc[res["round"] == 0, "n_units"].iloc[0] == 4
    calls.clear()
    run_simulation(ds, spec, 0, CFG, selector=selector)
    assert len(calls) == CFG.rounds and calls[0][2] != sorted(units0["segment_id"])[-4:]


@pytest.mark.parametrize("name", ["random", "margin", "farthest_first", "typiclust"])
def test_cold_start_runs_the_sampling_engine(name):
    cold = SimConfig(**{**CFG.__dict__, "cold_start": True, "strata": ()})
    res = run_simulation(split_dataset(), resolve_strategy(name), 1, cold)
    assert res.groupby("round")["n_units"].first().tolist() == [4, 8, 12]


# --------------------------------------------------------------------------- round columns


def test_positives_and_sampling_time_columns():
    ds = split_dataset()
    res = run_simulation(ds, resolve_strategy("random"), 0, CFG)
    assert list(res.columns) == RESULT_COLUMNS
    assert res["sampling_s"].isna().all()  # off by default: results stay reproducible
    # n_positives = the positive labels of the labelled units (recomputed from the seed set)
    rep = replicate_rows(ds, CFG, 0)
    pool_ids = ds.units["unit_id"].to_numpy()[rep.split.pool]
    seed_ids = np.random.default_rng(0).permutation(pool_ids)[:4]
    expected = int(ds.Y[ds.units["unit_id"].isin(seed_ids).to_numpy()].sum())
    assert res.loc[res["round"] == 0, "n_positives"].iloc[0] == expected
    assert res.groupby("round")["n_positives"].first().is_monotonic_increasing
    timed = run_simulation(
        ds, resolve_strategy("random"), 0, SimConfig(**{**CFG.__dict__, "timing": True})
    )
    first = timed.groupby("round")["sampling_s"].first()
    assert first.iloc[0] == 0.0 and (first.iloc[1:] > 0).all()


# --------------------------------------------------------------------------- metric and head


def test_baseal_aulc_by_hand():
    # (0,0) prepended: 0.5*50*0.4 + 50*(0.4+0.6)/2 = 10 + 25 = 35, / 100
    assert baseal_aulc([50, 100], [0.4, 0.6]) == pytest.approx(0.35)
    assert baseal_aulc([100, 50], [0.6, 0.4]) == pytest.approx(0.35)  # order-free
    assert baseal_aulc([50, 100, 150], [0.5, 0.5, 0.5]) == pytest.approx(0.5 * (1 - 50 / 300))
    assert np.isnan(baseal_aulc([], []))
    res = pd.DataFrame(
        {
            "strategy": "s",
            "seed": 0,
            "round": [0, 1],
            "n_units": [50, 100],
            "stratum": "all",
            "stratum_value": "all",
            "metric": "macro_ap",
            "value": [0.4, 0.6],
            "n_positives": [7, 12],
            "sampling_s": [0.0, 0.5],
        }
    )
    row = protocol_summary(res).iloc[0]
    assert row["baseal_aulc"] == pytest.approx(0.35) and row["aulc"] == pytest.approx(0.5)
    assert row["n_labelled"] == 100 and row["n_positives"] == 12
    assert row["sampling_s"] == pytest.approx(0.5) and row["final"] == pytest.approx(0.6)


def test_baseal_probe_is_the_documented_mlp_and_learns():
    ds = split_dataset(n_rec=40)
    cfg = SimConfig(probe="baseal_mlp")
    probe = make_probe(cfg, seed=0)
    assert isinstance(probe, BaseALProbe)
    probe.fit(ds.X, ds.Y)
    m = probe.model
    assert (m.hidden_layer_sizes, m.activation, m.solver) == ((ds.X.shape[1],), "relu", "adam")
    assert (m.learning_rate_init, m.batch_size, m.max_iter, m.alpha) == (1e-3, 32, 10, 0.0)
    assert m.n_iter_ == 10 and len(m.loss_curve_) == 10
    probe.fit(ds.X, ds.Y)
    assert probe.model is m and len(m.loss_curve_) == 20  # 10 more epochs, same weights
    for _ in range(8):
        probe.fit(ds.X, ds.Y)
    P = probe.predict_proba(ds.X)
    assert P.shape == ds.Y.shape
    assert macro_scores(ds.Y, P)["macro_ap"] > 0.9
    assert isinstance(make_probe(SimConfig()), Probe)
    one = BaseALProbe(hidden=4).fit(ds.X, ds.Y[:, :1])  # a single species still works
    assert one.predict_proba(ds.X).shape == (ds.n, 1)


# --------------------------------------------------------------------------- the protocol


def test_biodcase2026_overlay_is_valid_and_maps_the_protocol():
    from activepam.core.config import load_params

    params = _overlaid(load_params(ROOT / "params.yaml"), [str(OVERLAY)])
    s = simulation_params(params)
    cfg = SimConfig.from_params(s)
    assert s["strategies"] == ["random", "margin", "coreset", "typiclust"]
    assert s["seeds"] == [0, 1, 2, 3, 4]
    assert (cfg.cold_start, cfg.probe, cfg.budget_unit, cfg.timing) == (
        True,
        "baseal_mlp",
        "units",
        True,
    )
    assert cfg.seed_size + cfg.batch_size * cfg.rounds == 500 and cfg.batch_size == 50
    spec = resolve_strategy("coreset", s["presets"], params)
    assert spec.strategy["diversify"]["method"] == "farthest_first"
    assert spec.strategy["diversify"]["candidates"] == 0


def test_biodcase2026_runs_end_to_end_on_the_baseal_fixture(tmp_path, capsys):
    from activepam.cli import main
    from activepam.datasets.fixtures import write_baseal

    write_baseal(tmp_path / "raw", n_files=40, segments=3)
    imported = tmp_path / "imported"
    assert (
        main(["datasets", "import", "baseal", str(tmp_path / "raw"), "--out", str(imported)]) == 0
    )
    out = tmp_path / "res.parquet"
    argv = [
        "simulate",
        "--params",
        str(ROOT / "params.yaml"),
        "--overlay",
        str(OVERLAY),
        "--imported",
        str(imported),
        "--rounds",
        "1",
        "--seed",
        "0",
        "--seed",
        "1",
        "--summary",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "baseal_aulc" in text
    res = pd.read_parquet(out)
    assert set(res["strategy"]) == {"random", "margin", "coreset", "typiclust"}
    meta = pd.read_parquet(imported / "metadata.parquet")
    train = int((meta["split"] == "train").sum())
    assert train == 90  # 30 train files x 3 segments; 50 + 50 capped at the pool
    assert res.groupby("round")["n_units"].max().tolist() == [50, 90]
    assert res["sampling_s"].notna().all() and (res["n_positives"] > 0).all()
    summary = protocol_summary(res)
    assert len(summary) == 8 and summary["baseal_aulc"].between(0, 1).all()
