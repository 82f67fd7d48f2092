"""McEwen, Bernard & Stowell 2025 kit: the preprint's metrics on hand-made cases, I(S;Y) on a
hand-made contingency table, its three samplers, and the protocol end to end (reduced size) on
the WABAD and AnuraSet fixtures with every output of the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.core.metrics import evaluate, macro_scores
from activepam.simulation import mcewen
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimDataset, SimulationError
from activepam.simulation.divergence import mutual_information

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "params" / "protocols" / "mcewen2025.yaml"
ANURA = ROOT / "params" / "protocols" / "mcewen2025_anuraset.yaml"

# 4 units x 3 classes: class 0 has 3 positives (ranked perfectly: AP 1), class 1 one positive
# ranked third (AP 1/3), class 2 none (not present: left out of every score)
Y_HAND = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=np.uint8)
P_HAND = np.array([[0.9, 0.9, 0.6], [0.8, 0.8, 0.6], [0.7, 0.3, 0.6], [0.1, 0.1, 0.6]])


# --------------------------------------------------------------------------- 1. metrics


def test_support_weighted_ap_macro_ap_and_f1_over_the_classes_present():
    sc = mcewen.stratum_scores(Y_HAND, P_HAND, threshold=0.5)
    assert sc["cmAP"] == pytest.approx((1 + 1 / 3) / 2)
    assert sc["mAP"] == pytest.approx((3 * 1 + 1 * (1 / 3)) / 4)  # weighted by positives
    # class 0: all right (F1 1); class 1: its positive below 0.5, two negatives above (F1 0);
    # class 2 (no positive, predicted everywhere) is not counted: 0.5, not 1/3
    assert sc["F1-macro"] == pytest.approx(0.5)
    assert sc["n_classes"] == 2
    # the simulation's rows carry the same numbers
    ms = macro_scores(Y_HAND, P_HAND, 0.5)
    assert (ms["weighted_ap"], ms["macro_ap"], ms["macro_f1"]) == pytest.approx(
        (sc["mAP"], sc["cmAP"], sc["F1-macro"])
    )


def test_stratum_scores_agree_with_scikit_learn_on_random_strata():
    from sklearn.metrics import average_precision_score, f1_score

    rng = np.random.default_rng(3)
    Y = (rng.random((60, 7)) < 0.2).astype(np.uint8)
    Y[:, 6] = 0  # a class absent from the stratum
    P = rng.random((60, 7))
    present = Y.sum(axis=0) > 0
    sc = mcewen.stratum_scores(Y, P)
    assert sc["mAP"] == pytest.approx(
        average_precision_score(Y[:, present], P[:, present], average="weighted")
    )
    assert sc["cmAP"] == pytest.approx(
        average_precision_score(Y[:, present], P[:, present], average="macro")
    )
    assert sc["F1-macro"] == pytest.approx(
        f1_score(Y[:, present], P[:, present] > 0.5, average="macro", zero_division=0)
    )
    assert sc["mAP"] != pytest.approx(sc["cmAP"])  # the two definitions differ here


def test_pielou_and_cv_of_per_stratum_scores():
    assert mcewen.evenness([0.2, 0.2, 0.2]) == pytest.approx({"pielou": 1.0, "cv": 0.0})
    e = mcewen.evenness([0.1, 0.3])
    assert e["cv"] == pytest.approx(0.1 / 0.2)  # sd (ddof 0) / mean
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert e["pielou"] == pytest.approx(h / math.log(2))
    assert mcewen.evenness([1.0, 0.0])["pielou"] == pytest.approx(0.0)
    assert all(math.isnan(v) for v in mcewen.evenness([0.4]).values())


def test_evaluation_per_stratum_with_the_requested_metrics():
    strata = {"site": np.array(["A", "A", "B", "B"])}
    Y = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], dtype=np.uint8)
    P = np.array([[0.8, 0.2], [0.3, 0.6], [0.9, 0.1], [0.2, 0.1]])
    rows = evaluate(Y, P, strata, 0.5, stratum_metrics=("weighted_ap", "macro_ap", "macro_f1"))
    got = {(v, m): x for k, v, m, x in rows if k == "site"}
    assert got[("A", "weighted_ap")] == pytest.approx(1.0)
    # site B: only class 0 is present (2 positives: 0.9 ranked first, 0.2 last of 2) = AP 1
    assert got[("B", "macro_ap")] == pytest.approx(1.0)
    assert got[("B", "macro_f1")] == pytest.approx(2 * 1 / (2 + 1))
    assert got[("all", "cv_macro_f1")] == pytest.approx(abs(1 - 2 / 3) / 2 / ((1 + 2 / 3) / 2))
    assert {m for _, m in got} >= {"pielou_weighted_ap", "cv_weighted_ap"}
    # the default metrics are unchanged (no weighted_ap rows)
    assert "weighted_ap" not in {m for _, _, m, _ in evaluate(Y, P, strata, 0.5)}
    with pytest.raises(SimulationError, match="stratum_metrics"):
        SimConfig(stratum_metrics=("weighted_ap", "auroc"))


# --------------------------------------------------------------------------- 2. I(S;Y)


def _draws(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Units with one present species each, ``table[s][y]`` of them in stratum s."""
    codes, Y = [], []
    for s, row in enumerate(table):
        for y, n in enumerate(row):
            for _ in range(n):
                codes.append(s)
                Y.append(np.eye(len(row), dtype=np.uint8)[y])
    return np.asarray(codes), np.asarray(Y)


def test_mutual_information_in_bits_and_as_a_fraction_of_h_y():
    # strata determine the species (2 x 2, balanced): I = H(Y) = 1 bit
    mi = mutual_information(*_draws([[4, 0], [0, 4]]), n_permutations=0)
    assert (mi["mi_bits"], mi["species_entropy_bits"], mi["fraction"]) == pytest.approx((1, 1, 1))
    # [[3, 1], [1, 3]]: I = 1 - H(3/4) bits
    h34 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    mi = mutual_information(*_draws([[3, 1], [1, 3]]), n_permutations=0)
    assert mi["mi_bits"] == pytest.approx(1 - h34)
    # [[2, 0, 0], [0, 1, 1]]: I = H(S) = 1 bit, H(Y) = H(1/2, 1/4, 1/4) = 1.5 bits
    mi = mutual_information(*_draws([[2, 0, 0], [0, 1, 1]]), n_permutations=0)
    assert mi["mi_bits"] == pytest.approx(1.0)
    assert mi["species_entropy_bits"] == pytest.approx(1.5)
    assert mi["fraction"] == pytest.approx(2 / 3)
    # independent strata: I = 0
    mi = mutual_information(*_draws([[2, 2], [2, 2]]), n_permutations=5)
    assert mi["mi_bits"] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- 3. samplers


def _overlay_sim() -> tuple[dict, dict]:
    from activepam.core.config import load_params
    from activepam.simulation.cli import _overlaid
    from activepam.simulation.workflow import simulation_params

    params = _overlaid(load_params(ROOT / "params.yaml"), [str(OVERLAY)])
    return params, simulation_params(params)


def test_overlays_are_valid_and_map_the_protocol():
    from activepam.core.config import load_params
    from activepam.simulation.cli import _overlaid
    from activepam.simulation.workflow import simulation_params

    params, sim = _overlay_sim()
    cfg = SimConfig.from_params(sim)
    assert sim["strategies"] == ["binary", "cluster", "stratified", "random"]
    assert sim["seeds"] == [0, 1, 2, 3, 4]
    assert (cfg.seed_size, cfg.batch_size, cfg.rounds) == (50, 50, 10)
    assert (cfg.cold_start, cfg.budget_unit, cfg.data_fraction) == (True, "units", 1.0)
    assert cfg.strata == ("site", "year")
    assert cfg.stratum_metrics == ("weighted_ap", "macro_ap", "macro_f1")
    anura = simulation_params(
        _overlaid(load_params(ROOT / "params.yaml"), [str(OVERLAY), str(ANURA)])
    )
    acfg = SimConfig.from_params(anura)
    assert (acfg.seed_size, acfg.batch_size, acfg.rounds) == (20, 20, 25)
    assert acfg.strata == ("site", "period") and anura["strategies"] == sim["strategies"]
    assert mcewen.OVERLAYS["anuraset"] == (
        str(OVERLAY.relative_to(ROOT)),
        str(ANURA.relative_to(ROOT)),
    )


def _pool(n_per_site: int = 20, seed: int = 0) -> tuple[SimDataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = []
    for s in ("A", "B", "C"):
        for i in range(n_per_site):
            rows.append(
                {
                    "unit_id": f"{s}{i:02d}@0.0",
                    "recording_id": f"{s}{i:02d}",
                    "start_s": 0.0,
                    "end_s": 3.0,
                    "recording_duration_s": 3.0,
                    "site": s,
                }
            )
    n = len(rows)
    ds = SimDataset(
        pd.DataFrame(rows),
        rng.normal(size=(n, 5)).astype(np.float32),
        np.zeros((n, 4), dtype=np.uint8),
        ["a", "b", "c", "d"],
        "pool",
    )
    return ds, rng.random((n, 4))


def _select(name: str, n: int, ds: SimDataset, P: np.ndarray) -> tuple[list[str], pd.DataFrame]:
    from activepam.simulation.loop import _pool_embeddings, _pool_segments
    from activepam.simulation.strategies import resolve_strategy, sampling_selector

    params, sim = _overlay_sim()
    spec = resolve_strategy(name, sim["presets"], params)
    seg = _pool_segments(ds, np.arange(ds.n), P)
    emb = _pool_embeddings(seg, ds.X)
    return sampling_selector(spec)(seg, n, 0, emb, []), seg


def test_binary_is_top_k_max_binary_entropy():
    ds, P = _pool()
    picked, seg = _select("binary", 7, ds, P)
    top = seg.sort_values("max_binary_entropy", ascending=False)["segment_id"].head(7)
    assert picked == top.tolist()


def test_stratified_is_equal_allocation_with_top_k_in_each_site():
    ds, P = _pool()
    picked, seg = _select("stratified", 9, ds, P)
    chosen = seg.set_index("segment_id").loc[picked]
    assert chosen["site"].value_counts().to_dict() == {"A": 3, "B": 3, "C": 3}
    for site, g in seg.groupby("site"):
        top = g.sort_values("max_binary_entropy", ascending=False)["segment_id"].head(3)
        assert set(chosen.index[chosen["site"] == site]) == set(top)


def test_cluster_is_ward_on_a_20_percent_subsample_with_k_the_batch(monkeypatch):
    from sklearn.cluster import AgglomerativeClustering

    seen: list[tuple[int, int]] = []
    fit = AgglomerativeClustering.fit_predict

    def spy(self, X, y=None):
        seen.append((len(X), self.n_clusters))
        return fit(self, X)

    monkeypatch.setattr(AgglomerativeClustering, "fit_predict", spy)
    ds, P = _pool(n_per_site=40)  # 120 candidates
    picked, seg = _select("cluster", 6, ds, P)
    assert seen == [(24, 6)]  # ceil(0.2 x 120) rows, k = the batch
    assert len(set(picked)) == 6
    # most uncertain per cluster: the overall most uncertain segment is always picked
    assert seg.loc[seg["max_binary_entropy"].idxmax(), "segment_id"] in picked


def test_subsample_fraction_is_validated():
    from activepam.sampling.strategies import StrategyError, resolve_strategy

    def spec(sub):
        return {
            "sampling": {
                "strategies": {"w": {"base": "ward_entropy", "diversify": {"subsample": sub}}}
            }
        }

    assert resolve_strategy("w", spec(0.2))["diversify"]["subsample"] == 0.2
    assert resolve_strategy("w", spec(500))["diversify"]["subsample"] == 500
    for bad in (1.5, 0.0, 1, -0.2):
        with pytest.raises(StrategyError, match="diversify.subsample"):
            resolve_strategy("w", spec(bad))


# --------------------------------------------------------------------------- 4. end to end


def _reduced(tmp_path: Path, size: int) -> Path:
    p = tmp_path / "reduced.yaml"
    p.write_text(f"simulation:\n  seed_size: {size}\n  batch_size: {size}\n")
    return p


def _check_outputs(
    out: Path,
    imported: Path,
    strategies: list[str],
    keys: list[str],
    seeds: list[int],
    per_round: int,
    rounds: int,
) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for name in summary["files"].values():
        assert (out / name).exists(), name
    for key in keys:
        for s in strategies:
            assert (out / "figures" / f"per_stratum_{key}_{s}.png").stat().st_size > 1000
    for f in (
        "jsd_label_site.png",
        "jsd_pred_site.png",
        "exclusion_drop_ap.png",
        "exclusion_drop_f1.png",
    ):
        assert (out / "figures" / f).stat().st_size > 1000
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["strategy"]) == set(strategies) and set(res["seed"]) == set(seeds)
    assert int(res["round"].max()) == rounds
    # every metric of the preprint per stratum value of every key (free columns included)
    fin = mcewen.final_rows(res)
    for key in keys:
        got = fin[(fin["stratum"] == key) & (fin["stratum_value"] != "all")]
        assert set(got["metric"]) == {"weighted_ap", "macro_ap", "macro_f1"}
        vals = got["value"].to_numpy(dtype=float)
        assert np.isfinite(vals).all() and (vals >= 0).all() and (vals <= 1).all()
    # selections: the cold start + every round's batch, never twice, all from the train pool
    sel = pd.read_parquet(out / "selections.parquet")
    for _, g in sel.groupby(["strategy", "seed"]):
        assert len(g) == per_round * (rounds + 1) and g["unit_id"].is_unique
        assert g.groupby("round").size().eq(per_round).all()
    table = pd.read_csv(out / "per_stratum.csv")
    for _, g in table.groupby(["strategy", "key"]):
        assert g["n_selected"].sum() == pytest.approx(per_round * (rounds + 1))
        assert ((g["macro_f1"] >= 0) & (g["macro_f1"] <= 1)).all()
    # stratified spends every batch evenly over the sites (water-filling: differences <= 1)
    meta = pd.read_parquet(imported / "metadata.parquet").set_index("unit_id")
    st = sel[sel["strategy"] == "stratified"].assign(
        site=lambda d: meta.loc[d["unit_id"], "site"].to_numpy()
    )
    counts = st.groupby(["seed", "round", "site"]).size().unstack(fill_value=0)
    assert counts.shape[1] == meta.loc[meta["split"] == "train", "site"].nunique()
    assert (counts.max(axis=1) - counts.min(axis=1)).le(1).all()
    strat = pd.read_csv(out / "strategies.csv")
    assert set(strat["key"]) == set(keys)
    for col in ("mean_macro_f1", "mean_weighted_ap", "mean_macro_ap", "pielou_weighted_ap"):
        v = strat[col].to_numpy(dtype=float)
        assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1 + 1e-9).all(), col
    assert (strat["cv_weighted_ap"] >= 0).all()
    # F1 can be 0 in every stratum on random fixture labels: its Pielou J is then undefined
    j = strat["pielou_macro_f1"].to_numpy(dtype=float)
    assert ((j[np.isfinite(j)] >= 0) & (j[np.isfinite(j)] <= 1 + 1e-9)).all()
    mi = pd.read_csv(out / "mutual_information.csv")
    assert {"train", "test", "train+test"} <= set(mi["split"])
    assert ((mi["mi_bits"] >= 0) & (mi["fraction"] >= 0) & (mi["fraction"] <= 1)).all()
    assert (mi["mi_bits"] <= mi["species_entropy_bits"] + 1e-9).all()
    jsd = pd.read_csv(out / "jsd.csv")
    assert ((jsd["jsd_label"] >= 0) & (jsd["jsd_label"] <= 1)).all()
    assert (jsd.loc[jsd["a"] == jsd["b"], ["jsd_label", "jsd_pred"]].abs() < 1e-9).all().all()
    exc = pd.read_csv(out / "exclusion.csv")
    assert {"jsd_label", "jsd_pred", "drop_ap", "drop_f1"} <= set(exc.columns)
    sites = {r["stratum_value"] for r in summary["per_stratum"]["site"]}
    assert set(exc["stratum_value"]) == sites
    return summary


@pytest.mark.slow
def test_protocol_end_to_end_on_the_wabad_fixture(tmp_path, capsys):
    from activepam.cli import main
    from activepam.datasets.fixtures import WABAD_SITES, write_wabad

    write_wabad(tmp_path / "raw", sizes={"train": 150, "validation": 6, "test": 60}, seed=1)
    imported = tmp_path / "wabad"
    assert main(["datasets", "import", "wabad", str(tmp_path / "raw"), "--out", str(imported)]) == 0
    out = tmp_path / "out"
    argv = [
        "mcewen2025",
        "--params",
        str(ROOT / "params.yaml"),
        "--overlay",
        str(OVERLAY),
        "--overlay",
        str(_reduced(tmp_path, 12)),
        "--imported",
        str(imported),
        "--rounds",
        "2",
        "--seed",
        "0",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "published F1" in text and "0.236-0.262" in text and "1.537" in text
    summary = _check_outputs(
        out,
        imported,
        ["binary", "cluster", "stratified", "random"],
        ["site", "year"],
        [0, 1],
        per_round=12,
        rounds=2,
    )
    assert summary["dataset"] == "wabad" and summary["published"]["mi_bits"] == 1.537
    sites = {r["stratum_value"] for r in summary["per_stratum"]["site"]}
    assert sites == set(WABAD_SITES)
    assert {r["stratum_value"] for r in summary["per_stratum"]["year"]} <= {"2020", "2021", "2022"}
    # --report-only rewrites the report from the saved runs, identically
    before = (out / "per_stratum.csv").read_text()
    assert main([*argv, "--report-only"]) == 0
    assert (out / "per_stratum.csv").read_text() == before


@pytest.mark.slow
def test_protocol_end_to_end_on_the_anuraset_fixture(tmp_path, capsys, monkeypatch):
    from activepam.cli import main
    from activepam.datasets.fixtures import write_anuraset

    write_anuraset(tmp_path / "raw", recordings={"train": 18, "test": 6}, windows=8, seed=2)
    imported = tmp_path / "anuraset"
    assert (
        main(["datasets", "import", "anuraset", str(tmp_path / "raw"), "--out", str(imported)]) == 0
    )
    out = tmp_path / "out"
    # no --overlay: import.json says anuraset, so both protocol overlays apply (run from the
    # repository root, as the README's command)
    monkeypatch.chdir(ROOT)
    assert (
        main(
            [
                "mcewen2025",
                "--imported",
                str(imported),
                "--rounds",
                "3",
                "--seed",
                "0",
                "--strategy",
                "stratified",
                "--strategy",
                "binary",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "0.497" in text and "0.482" in text and "1.644" in text
    summary = _check_outputs(
        out, imported, ["stratified", "binary"], ["site", "period"], [0], per_round=20, rounds=3
    )
    assert summary["protocol"]["strata"] == ["site", "period"]
    periods = {r["stratum_value"] for r in summary["per_stratum"]["period"]}
    assert periods <= {"A", "B", "C", "unknown"} and len(periods) >= 2


def test_bad_import_folder_is_a_clear_error(tmp_path, capsys):
    from activepam.cli import main

    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "mcewen2025",
                "--params",
                str(ROOT / "params.yaml"),
                "--overlay",
                str(OVERLAY),
                "--imported",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "embeddings.parquet, labels.parquet, metadata.parquet not found" in err
    assert "activepam datasets import" in err
