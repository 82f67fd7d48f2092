"""Simulation mode: probe, metrics, dataset I/O and the active-learning loop (tiny, seeded)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from activepam.core.metrics import (
    auroc,
    average_precision,
    evaluate,
    expected_calibration_error,
    f1_score,
)
from activepam.simulation.config import SimConfig, batch_schedule, n_units
from activepam.simulation.dataset import (
    SimDataset,
    SimulationError,
    custom_dataset,
    demo_labels,
    labels_matrix,
    read_dataset,
    write_dataset,
)
from activepam.simulation.loop import RESULT_COLUMNS, full_supervision, run_simulation
from activepam.simulation.probe import Probe
from activepam.simulation.replicates import split_test
from activepam.simulation.strategies import resolve_strategy
from activepam.simulation.workflow import workflow_dataset_inputs, workflow_targets

SITES = [("A", 60.0), ("B", 55.0), ("C", 45.0), ("D", 40.0)]


REPO = Path(__file__).resolve().parents[1]


def tiny_dataset(
    n_rec_per_site: int = 6, n_seg: int = 5, dim: int = 8, n_species: int = 4, seed: int = 0
) -> SimDataset:
    """4 sites x ``n_rec_per_site`` recordings x ``n_seg`` 3 s segments, separable species."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(0, 3, (n_species, dim))
    rows, X, Y = [], [], []
    t0 = pd.Timestamp("2025-05-15T00:00:00Z")
    for s_i, (site, lat) in enumerate(SITES):
        for r in range(n_rec_per_site):
            start = t0 + pd.Timedelta(hours=4 * r)
            rec = f"{site}_{r:02d}"
            for k in range(n_seg):
                y = (rng.random(n_species) < [0.5, 0.3, 0.2, 0.1 if s_i == 0 else 0.0]).astype(
                    np.uint8
                )
                X.append(y @ protos + rng.normal(0, 1, dim))
                Y.append(y)
                rows.append(
                    {
                        "unit_id": f"{rec}@{3.0 * k:.1f}",
                        "recording_id": rec,
                        "path": f"{rec}.wav",
                        "start_s": 3.0 * k,
                        "end_s": 3.0 * k + 3.0,
                        "recording_duration_s": 3.0 * n_seg,
                        "site": site,
                        "lat": lat,
                        "lon": 5.0,
                        "habitat": "forest",
                        "segment_time": start + pd.Timedelta(seconds=3 * k),
                        "start_time": start,
                    }
                )
    return SimDataset(
        pd.DataFrame(rows),
        np.asarray(X, dtype=np.float32),
        np.asarray(Y, dtype=np.uint8),
        [f"sp{i}" for i in range(n_species)],
        "tiny",
    )


CFG = SimConfig(
    seed_size=2,
    batch_size=2,
    rounds=3,
    pca_dims=0,
    strata=("site", "lat_band"),
    test_fraction=0.34,
    budget_unit="units",  # counts of units (the listening-seconds budgets: tests/test_fair.py)
)


# --------------------------------------------------------------------------- probe and metrics


def test_probe_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5))
    Y = np.column_stack(
        [(X[:, 0] + rng.normal(0, 1, 120) > 0), (X[:, 1] > 1.0), np.zeros(120, dtype=bool)]
    ).astype(np.uint8)
    probe = Probe(C=0.7, max_iter=500, tol=1e-8).fit(X, Y)
    for j in range(2):
        ref = LogisticRegression(C=0.7, tol=1e-10, max_iter=2000).fit(X, Y[:, j])
        np.testing.assert_allclose(probe.W[:, j], ref.coef_[0], atol=1e-4)
        np.testing.assert_allclose(probe.b[j], ref.intercept_[0], atol=1e-4)
    # a species without positives gets the constant smoothed prevalence (0.5 / 121)
    np.testing.assert_allclose(probe.predict_proba(X)[:, 2], 0.5 / 121)


def test_probe_warm_start_and_bad_c():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    Y = (X[:, :1] > 0).astype(np.uint8)
    probe = Probe(max_iter=300).fit(X, Y)
    first = probe.n_iter_
    probe.fit(X, Y)
    assert probe.n_iter_ < first
    with pytest.raises(SimulationError):
        Probe(C=0)


def test_average_precision_and_auroc_match_sklearn_with_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.random(50) < 0.3
        s = np.round(rng.random(50), 1)  # many ties
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(average_precision(np.zeros(4), np.ones(4)))
    assert np.isnan(auroc(np.ones(4), np.ones(4)))


def test_hand_computed_metrics():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.3, 0.1])
    # ranks: 1 (P=1), 0, 1 (P=2/3) -> AP = (1 + 2/3) / 2
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert f1_score(y, s >= 0.5) == pytest.approx(2 * 1 / (2 + 2))
    # ECE: bins 0.9 (y=1), 0.8 (0), 0.3 (1), 0.1 (0) -> |1-.9|+|0-.8|+|1-.3|+|0-.1| / 4
    assert expected_calibration_error(y, s) == pytest.approx((0.1 + 0.8 + 0.7 + 0.1) / 4)


def test_evaluate_agrees_with_round_evaluation_module():
    rounds_ev = importlib.import_module("activepam.core.evaluate")
    rng = np.random.default_rng(4)
    Y = (rng.random((80, 5)) < 0.2).astype(np.uint8)
    Y[:, 4] = 0
    P = np.clip(Y * 0.5 + rng.random((80, 5)) * 0.6, 0, 1)
    ours = {m: v for s, _, m, v in evaluate(Y, P) if s == "all"}
    ref = rounds_ev.summary_metrics(Y, P, np.full(5, 0.5))
    for m in ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece"):
        assert ours[m] == pytest.approx(ref[m]), m
    assert ours["n_species_eval"] == ref["n_species_evaluated"] == 4


def test_evaluate_per_stratum_rows_and_spread():
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.uint8)
    P = Y * 0.9 + 0.05
    rows = evaluate(Y, P, {"site": np.array(["a", "a", "b", "b"])})
    table = pd.DataFrame(rows, columns=["stratum", "value", "metric", "v"])
    per_site = table[
        (table.stratum == "site") & (table.metric == "macro_ap") & (table.value != "all")
    ]
    assert set(per_site["value"]) == {"a", "b"} and np.allclose(per_site["v"], 1.0)
    spread = table[(table.stratum == "site") & (table.value == "all")].set_index("metric")["v"]
    assert spread["cv_macro_ap"] == pytest.approx(0.0)
    assert spread["pielou_macro_ap"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- config, split, budget


def test_sizes_and_schedule():
    assert n_units(0.02, 192) == 4  # ceil(3.84)
    assert n_units(0.001, 100) == 1
    assert n_units(7, 5) == 5
    assert batch_schedule(2, 1.0, 3, 100) == [2, 2, 2]
    assert batch_schedule(2, 1.5, 4, 100) == [2, 3, 4, 7]
    with pytest.raises(SimulationError):
        SimConfig(test_fraction=1.0)
    with pytest.raises(SimulationError):
        SimConfig(batch_growth=0.5)


def test_split_keeps_recordings_whole_and_every_site_in_both():
    ds = tiny_dataset()
    split = split_test(ds, 0.34, seed=0)
    test_recs = set(ds.units.recording_id.iloc[split.test])
    pool_recs = set(ds.units.recording_id.iloc[split.pool])
    assert not test_recs & pool_recs
    assert len(split.pool) + len(split.test) == ds.n
    for site, _ in SITES:
        assert sum(r.startswith(site) for r in test_recs) == 2  # round(0.34 * 6)
        assert any(r.startswith(site) for r in pool_recs)
    again = split_test(ds, 0.34, seed=0)
    np.testing.assert_array_equal(split.test, again.test)


# --------------------------------------------------------------------------- dataset I/O


def test_dataset_roundtrip(tmp_path):
    ds = tiny_dataset(n_rec_per_site=2)
    path = write_dataset(ds, tmp_path / "ds.parquet")
    back = read_dataset(path)
    assert back.species == ds.species and back.name == "tiny"
    np.testing.assert_array_equal(back.Y, ds.Y)
    np.testing.assert_allclose(back.X, ds.X)
    assert list(back.units.unit_id) == list(ds.units.unit_id)
    with pytest.raises(SimulationError, match="not found"):
        read_dataset(tmp_path / "missing.parquet")


def test_labels_matrix_errors_and_negatives():
    labels = pd.DataFrame(
        {"unit_id": ["u1", "u2", "u2"], "species": ["a", "b", "a"], "present": [1, 1, 0]}
    )
    Y, species = labels_matrix(labels, ["u1", "u2", "u3"])
    assert species == ["a", "b"]
    np.testing.assert_array_equal(Y, [[1, 0], [0, 1], [0, 0]])
    with pytest.raises(SimulationError, match="unknown unit ids"):
        labels_matrix(labels, ["u1"])
    bad = labels.assign(present=[1, 2, 0])
    with pytest.raises(SimulationError, match="row 3: present must be 0 or 1"):
        labels_matrix(bad, ["u1", "u2", "u3"])
    with pytest.raises(SimulationError, match="species 'b' not in"):
        labels_matrix(labels, ["u1", "u2"], species=["a"])


def test_custom_dataset_from_files(tmp_path):
    ds = tiny_dataset(n_rec_per_site=2)
    emb = pd.DataFrame({"unit_id": ds.units.unit_id, "embedding": list(ds.X)})
    emb.iloc[::-1].to_parquet(tmp_path / "emb.parquet")  # order must not matter
    rows = [
        (u, ds.species[j], 1) for u, y in zip(ds.units.unit_id, ds.Y) for j in np.flatnonzero(y)
    ]
    pd.DataFrame(rows, columns=["unit_id", "species", "present"]).to_csv(
        tmp_path / "labels.csv", index=False
    )
    ds.units.to_parquet(tmp_path / "meta.parquet")
    back = custom_dataset(
        tmp_path / "emb.parquet", tmp_path / "labels.csv", tmp_path / "meta.parquet"
    )
    np.testing.assert_allclose(back.X, ds.X)
    cols = [ds.species.index(s) for s in back.species]
    np.testing.assert_array_equal(back.Y, ds.Y[:, cols])
    with pytest.raises(SimulationError, match="not found"):
        custom_dataset(
            tmp_path / "nope.parquet", tmp_path / "labels.csv", tmp_path / "meta.parquet"
        )


def test_demo_labels_map_ground_truth_to_segments():
    segments = pd.DataFrame(
        {
            "segment_id": ["r1@0.0", "r1@3.0", "r2@0.0"],
            "recording_id": ["r1", "r1", "r2"],
            "start_s": [0.0, 3.0, 0.0],
        }
    )
    inventory = pd.DataFrame({"recording_id": ["r1", "r2"], "rel_path": ["a/x.flac", "a/y.mp3"]})
    gt = pd.DataFrame(
        {
            "rel_path": ["a/x.flac", "a/y.mp3"],
            "start_s": [3.0, 0.0],
            "end_s": [6.0, 3.0],
            "species": ["s1", "s2"],
        }
    )
    out = demo_labels(gt, segments, inventory)
    assert sorted(zip(out.unit_id, out.species)) == [("r1@3.0", "s1"), ("r2@0.0", "s2")]
    with pytest.raises(SimulationError, match="match no detected segment"):
        demo_labels(gt.assign(start_s=[9.0, 0.0]), segments, inventory)


# --------------------------------------------------------------------------- strategies and runs


def test_resolve_strategy_presets_and_errors():
    presets = {
        "median_entropy_files": {"base": "topk_entropy_files", "aggregation": {"method": "median"}}
    }
    spec = resolve_strategy("median_entropy_files", presets)
    assert spec.unit == "recording" and spec.aggregation["method"] == "median"
    assert spec.column == "max_binary_entropy"
    assert resolve_strategy("random").unit == "segment"
    with pytest.raises(SimulationError, match="unknown strategy"):
        resolve_strategy("no_such_strategy")


@pytest.mark.parametrize("name", ["random_files", "topk_entropy_files", "random", "max_entropy"])
def test_run_simulation_budgets(name):
    ds = tiny_dataset()
    spec = resolve_strategy(name)
    res = run_simulation(ds, spec, 0, CFG)
    assert list(res.columns) == RESULT_COLUMNS
    overall = res[(res.stratum == "all") & (res.metric == "macro_ap")].sort_values("round")
    assert list(overall["round"]) == [0, 1, 2, 3]
    assert list(overall["n_units"]) == [2, 4, 6, 8]
    seg_per_unit = 5 if spec.unit == "recording" else 1
    assert list(overall["n_segments"]) == [2 * seg_per_unit * (r + 1) for r in range(4)]
    if spec.unit == "recording":
        # a recording costs its duration (15 s), its segments are all labelled
        np.testing.assert_allclose(overall["audio_seconds"], overall["n_recordings"] * 15.0)
        np.testing.assert_allclose(overall["unit_fraction"], overall["recording_fraction"])
    else:
        # 3 s + 4 s context each side, clipped to the 15 s recording: 7..11 s per segment
        per = overall["audio_seconds"] / overall["n_segments"]
        assert ((per >= 7.0) & (per <= 11.0)).all()
    assert overall["value"].notna().all()
    strata = set(res.loc[res.stratum != "all", "stratum"])
    assert strata == {"site", "lat_band"}
    assert {"cv_macro_ap", "pielou_macro_f1"} <= set(res.metric)


@pytest.mark.slow
def test_run_is_deterministic_and_seed_set_shared_across_strategies():
    ds = tiny_dataset()
    a = run_simulation(ds, resolve_strategy("topk_entropy_files"), 3, CFG)
    b = run_simulation(ds, resolve_strategy("topk_entropy_files"), 3, CFG)
    pd.testing.assert_frame_equal(a, b)
    c = run_simulation(ds, resolve_strategy("random_files"), 3, CFG)
    r0 = lambda df: df[df["round"] == 0].drop(columns="strategy").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(r0(a), r0(c))


def test_run_stops_when_pool_is_exhausted():
    ds = tiny_dataset(n_rec_per_site=3)
    cfg = SimConfig(
        seed_size=2,
        batch_size=3,
        rounds=10,
        pca_dims=0,
        strata=("site",),
        test_fraction=0.34,
        budget_unit="units",
    )
    res = run_simulation(ds, resolve_strategy("random_files"), 0, cfg)
    overall = res[(res.stratum == "all") & (res.metric == "macro_ap")]
    assert overall["recording_fraction"].iloc[-1] == pytest.approx(1.0)
    assert overall["n_units"].is_monotonic_increasing
    assert overall["round"].max() < 10


def test_selector_resampling_labelled_units_is_an_error():
    ds = tiny_dataset()

    def bad(units, n, seed, emb, labelled):
        return list(labelled[:1])

    with pytest.raises(SimulationError, match="re-sampled"):
        run_simulation(ds, resolve_strategy("random_files"), 0, CFG, selector=bad)


def test_full_supervision_beats_seed_set():
    ds = tiny_dataset()
    full = full_supervision(ds, CFG)
    res = run_simulation(ds, resolve_strategy("random_files"), 0, CFG)
    first = res[(res.stratum == "all") & (res.metric == "macro_ap") & (res["round"] == 0)][
        "value"
    ].iloc[0]
    best = full[(full.stratum == "all") & (full.metric == "macro_ap")]["value"].iloc[0]
    assert best > first and best > 0.8


def test_workflow_targets_and_inputs():
    config = {
        "data": {"raw_dir": "raw"},
        "demo": {"enabled": False},
        "simulation": {"dataset": "demo"},
    }
    assert workflow_targets(config) == []
    config["demo"]["enabled"] = True
    assert "results/simulation/claims.json" in workflow_targets(config)
    assert workflow_dataset_inputs(config)["ground_truth"] == "raw/ground_truth.parquet"
    config["simulation"] = {"dataset": "custom", "embeddings": "e.parquet", "labels": ""}
    with pytest.raises(SimulationError, match="simulation.labels"):
        workflow_dataset_inputs(config)


def test_cli_runs_and_lists(tmp_path, capsys):
    from activepam.cli import main

    path = write_dataset(tiny_dataset(n_rec_per_site=3), tmp_path / "ds.parquet")
    out = tmp_path / "res.parquet"
    params = str(Path(__file__).resolve().parents[1] / "params.yaml")
    argv = [
        "simulate",
        "--dataset",
        str(path),
        "--strategy",
        "random_files",
        "--seed",
        "0",
        "--seed",
        "1",
        "--rounds",
        "1",
        "--params",
        params,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    res = pd.read_parquet(out)
    assert set(res["seed"]) == {0, 1} and res["round"].max() == 1
    assert (tmp_path / "res.csv").exists()
    assert main(["simulate", "--list", "--params", params]) == 0
    assert "median_entropy_files" in capsys.readouterr().out
    assert main(["simulate", "--strategy", "random", "--params", params, "--out", str(out)]) == 2


# --------------------------------------------------------------------------- workflow params


def _smk(tmp_path: Path, overlay: dict, *args: str) -> subprocess.CompletedProcess:
    """``snakemake`` of the repository's workflow in ``tmp_path`` with ``overlay`` as config."""
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [
        str(snakemake),
        *args,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--cores",
        "1",
        "--configfile",
        str(path),
    ]  # --configfile last: it takes several values
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def _planned(proc: subprocess.CompletedProcess) -> set[str]:
    """Rules a dry run would run (its job table)."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("simulation_") and parts[1].isdigit():
            jobs.add(parts[0])
    return jobs


@pytest.mark.slow
def test_changing_a_key_reruns_only_the_rules_that_read_it(tmp_path):
    """Each simulate.smk rule takes only its keys (RULE_KEYS): after a real run of the dataset,
    run and full-supervision rules, a key only the divergence rules read changes nothing, a
    probe key reruns the run and the reference but not the dataset."""
    ds = tiny_dataset(n_rec_per_site=3)
    pd.DataFrame({"unit_id": ds.units.unit_id, "embedding": list(ds.X)}).to_parquet(
        tmp_path / "emb.parquet"
    )
    rows = [
        (u, ds.species[j], 1) for u, y in zip(ds.units.unit_id, ds.Y) for j in np.flatnonzero(y)
    ]
    pd.DataFrame(rows, columns=["unit_id", "species", "present"]).to_csv(
        tmp_path / "labels.csv", index=False
    )
    ds.units.to_parquet(tmp_path / "meta.parquet")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    sim = {
        "dataset": "custom",
        "embeddings": str(tmp_path / "emb.parquet"),
        "labels": str(tmp_path / "labels.csv"),
        "metadata": str(tmp_path / "meta.parquet"),
        "strategies": ["random_files"],
        "seeds": [0],
        "rounds": 1,
        "seed_size": 2,
        "batch_size": 2,
        "budget_unit": "units",
        "pca_dims": 0,
        "strata": ["site"],
        "test_fraction": 0.34,
        "stratified": {"permutations": 2},
        "divergence": {"turnovers": [0.5], "seeds": [0], "embedding": {"noise": 0.5}},
    }
    base = {"demo": {"enabled": False}, "simulation": sim}
    targets = [
        "results/simulation/runs/random_files/0.parquet",
        "results/simulation/full_supervision.parquet",
    ]
    done = _smk(tmp_path, base, *targets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _planned(_smk(tmp_path, base, "-n", *targets)) == set()
    divergence_only = {
        **sim,
        "divergence": {**sim["divergence"], "embedding": {"noise": 0.9}},
        "stratified": {"permutations": 3},
        "claim": {"strategy": "a", "baseline": "b"},
    }
    planned = _planned(_smk(tmp_path, {**base, "simulation": divergence_only}, "-n", *targets))
    assert planned == set(), planned
    probe = {**sim, "probe_C": 0.5}
    planned = _planned(_smk(tmp_path, {**base, "simulation": probe}, "-n", *targets))
    assert planned == {"simulation_run", "simulation_full"}, planned


def test_simconfig_defaults_are_the_schema_defaults():
    """The schema's ``default:`` is the single source of SimConfig's defaults (probe_C was 1.0
    in code and 0.1 in params.yaml)."""
    from activepam.core.config import schema_defaults
    from activepam.simulation.workflow import CONFIG_KEYS

    schema = schema_defaults("simulation")
    cfg = SimConfig()
    for key in CONFIG_KEYS:
        if key == "context_s":  # null in the simulation section = rounds.context_s
            assert schema[key] is None
            assert cfg.context_s == schema_defaults("rounds")["context_s"]
            continue
        want = schema[key]
        assert getattr(cfg, key) == (tuple(want) if isinstance(want, list) else want), key
    assert cfg.probe_C == 0.1
    assert set(CONFIG_KEYS) == set(SimConfig.__dataclass_fields__) - {"strata_options"}


def test_validation_fills_declared_defaults_but_not_inside_user_strategies():
    from activepam.core.config import load_params, validate_params

    params = load_params(REPO / "params.yaml")
    del params["simulation"]["probe"], params["simulation"]["pca_dims"]
    params["sampling"]["strategies"] = {"mine": {"base": "random"}}
    validate_params(params)
    assert params["simulation"]["probe"] == "logistic" and params["simulation"]["pca_dims"] == 128
    # a user strategy's missing keys inherit from its base: no schema default is put there
    assert params["sampling"]["strategies"]["mine"] == {"base": "random"}
    assert SimConfig.from_params(params["simulation"]).pca_dims == 128
