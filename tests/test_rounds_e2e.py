"""End-to-end active-learning rounds on a small synthetic project (no BirdNET).

:func:`build_toy_project` writes what the detection stage and the demo generator would: WAV
recordings with one tone per species call, inventory, segments / predictions / embeddings
(Gaussian clusters per species) and the generator's events, so the whole round trip runs in
seconds: round 0 export -> fill the Raven tables -> import -> retrain -> round 1 sample.
Other test files import the builder from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from activepam.core.uncertainty import segment_uncertainty
from activepam.rounds.answers import ANSWER_OUTPUTS

SPECIES = [
    "Turdus merula_Common Blackbird",
    "Erithacus rubecula_European Robin",
    "Fringilla coelebs_Common Chaffinch",
    "Parus major_Great Tit",
    "Sylvia atricapilla_Eurasian Blackcap",
]
OTHER = ["Corvus corax_Common Raven", "Strix aluco_Tawny Owl"]  # BirdNET-only labels
SITES = [("S1", "forest", 60.0, 10.0), ("S2", "wetland", 50.0, 5.0), ("S3", "farmland", 42.0, 0.0)]
SR = 8000
SEG = 3.0


def _tone(freq: float, n: int) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR).astype(np.float32)


def build_toy_project(
    root: Path,
    n_rec_per_site: int = 4,
    duration_s: float = 30.0,
    dim: int = 16,
    seed: int = 0,
    raw_name: str = "toy",
) -> dict[str, Path]:
    """Write a toy project under ``root`` (recordings in data/raw/<raw_name>); returns the paths
    of its tables."""
    rng = np.random.default_rng(seed)
    raw = root / "data" / "raw" / raw_name
    raw.mkdir(parents=True, exist_ok=True)
    protos = rng.normal(0, 1, (len(SPECIES), dim))
    inv, segs, events, embs, preds = [], [], [], [], []
    t0 = pd.Timestamp("2025-05-15T00:00:00Z")
    for si, (site, habitat, lat, lon) in enumerate(SITES):
        for k in range(n_rec_per_site):
            start = t0 + pd.Timedelta(hours=6 * k + si)
            rid = f"dev{si}_{start:%Y%m%dT%H%M%SZ}"
            rel = f"{site}/{rid}.wav"
            path = raw / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            audio = 0.01 * rng.normal(size=int(duration_s * SR)).astype(np.float32)
            n_seg = int(duration_s // SEG)
            for s in range(n_seg):
                # each species calls in a segment with a site-dependent probability
                for j, sp in enumerate(SPECIES):
                    if rng.random() < (0.25 if (j + si) % 3 else 0.45):
                        on = s * SEG + rng.uniform(0.2, 1.5)
                        off = on + rng.uniform(0.8, 1.3)
                        f = 800 + 500 * j
                        a, b = int(on * SR), int(off * SR)
                        audio[a:b] += _tone(f, b - a)
                        events.append(
                            {
                                "rel_path": rel,
                                "species": sp,
                                "onset_s": on,
                                "offset_s": off,
                                "low_hz": f - 100.0,
                                "high_hz": f + 100.0,
                            }
                        )
            sf.write(path, audio, SR, subtype="PCM_16")
            inv.append(
                {
                    "recording_id": rid,
                    "path": path.relative_to(root).as_posix(),
                    "rel_path": rel,
                    "device_id": f"dev{si}",
                    "site": site,
                    "country": "NO",
                    "habitat": habitat,
                    "lat": lat,
                    "lon": lon,
                    "start_time": start,
                    "duration_s": duration_s,
                }
            )
            ev = pd.DataFrame([e for e in events if e["rel_path"] == rel])
            for s in range(n_seg):
                a, b = s * SEG, (s + 1) * SEG
                present = set()
                if len(ev):
                    ov = np.minimum(ev["offset_s"], b) - np.maximum(ev["onset_s"], a)
                    need = np.minimum(0.5, 0.5 * (ev["offset_s"] - ev["onset_s"]))
                    present = set(ev.loc[ov >= need - 1e-9, "species"])
                y = np.array([sp in present for sp in SPECIES], dtype=float)
                sid = f"{rid}@{a:.1f}"
                emb = (y @ protos + rng.normal(0, 0.6, dim)).astype(np.float32)
                embs.append((sid, rid, a, emb))
                # a weak "BirdNET": right species only slightly favoured, confusions added
                conf = 1 / (
                    1
                    + np.exp(
                        -(
                            rng.normal(-1.0, 1.2, len(SPECIES) + len(OTHER))
                            + np.r_[0.8 * y, np.zeros(len(OTHER))]
                        )
                    )
                )
                labels = SPECIES + OTHER
                order = np.argsort(-conf)[:4]
                for rank, j in enumerate(order, start=1):
                    preds.append(
                        {
                            "segment_id": sid,
                            "recording_id": rid,
                            "path": inv[-1]["path"],
                            "start_s": a,
                            "end_s": b,
                            "rank": rank,
                            "species": labels[j],
                            "confidence": float(conf[j]),
                        }
                    )
                u = segment_uncertainty(conf[None, :])
                segs.append(
                    {
                        "segment_id": sid,
                        "recording_id": rid,
                        "path": inv[-1]["path"],
                        "start_s": a,
                        "end_s": b,
                        "top1_species": labels[int(u["top1_index"][0])],
                        "top1_confidence": u["top1_confidence"][0],
                        "top2_confidence": u["top2_confidence"][0],
                        "margin": u["margin"][0],
                        "max_binary_entropy": u["max_binary_entropy"][0],
                        "mean_binary_entropy": u["mean_binary_entropy"][0],
                        "device_id": f"dev{si}",
                        "site": site,
                        "country": "NO",
                        "habitat": habitat,
                        "lat": lat,
                        "lon": lon,
                        "start_time": start,
                        "segment_time": start + pd.Timedelta(seconds=a),
                    }
                )
    out = {
        "raw": raw,
        "inventory": root / "results/inventory/inventory.parquet",
        "segments": root / "results/detect/segments.parquet",
        "predictions": root / "results/detect/predictions.parquet",
        "embeddings": root / "results/detect/embeddings.parquet",
        "events": raw / "events.parquet",
        "species": raw / "species.csv",
    }
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(inv).to_parquet(out["inventory"])
    pd.DataFrame(segs).to_parquet(out["segments"])
    pd.DataFrame(preds).to_parquet(out["predictions"])
    pd.DataFrame(events).to_parquet(out["events"])
    pd.DataFrame({"species": SPECIES}).to_csv(out["species"], index=False)
    table = pa.table(
        {
            "segment_id": [e[0] for e in embs],
            "recording_id": [e[1] for e in embs],
            "start_s": [e[2] for e in embs],
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([e[3] for e in embs]), pa.float32()), dim
            ),
        }
    )
    pq.write_table(table, out["embeddings"])
    return out


KEYS = ["site", "habitat", "season", "diel"]
REPO = Path(__file__).resolve().parents[1]


def toy_config(
    p: dict[str, Path],
    rounds: tuple[str, ...] = ("00", "01"),
    n: int = 40,
    test_size: int = 30,
    labels_dir: str = "data/labels",
    seed: int = 1,
) -> dict:
    """The repo's params.yaml with a small rounds section for the toy project ``p``: what
    Snakemake's ``config`` would be (max_entropy rounds of ``n``, two annotators)."""
    from activepam.rounds.rounds import scores_path

    config = yaml.safe_load((REPO / "params.yaml").read_text())
    config["rounds"].update(
        plan={r: scores_path(r) for r in rounds},
        strategy="max_entropy",
        n_per_round=n,
        test_size=test_size,
        seed=seed,
        context_s=2.0,
        annotators=["ann", "bob"],
        labels_dir=labels_dir,
        strata=KEYS,
        label_set=str(p["species"]),
    )
    config["train"]["calibrate_min"] = 8
    config["evaluate"]["thresholds"]["n_boot"] = 40
    config["evaluate"]["stopping"]["stop_set"] = 200
    return config


def play_rounds(
    root: Path,
    p: dict[str, Path],
    rounds: tuple[str, ...] = ("00", "01"),
    n: int = 40,
    test_size: int = 30,
    labels_dir: str = "data/labels",
    config: dict | None = None,
) -> list[dict]:
    """Run the rules of workflow/rules/rounds.smk in the order Snakemake runs them, through
    the same step functions (:mod:`activepam.rounds.steps`) and with the rule's file names and
    params (cwd = ``root``): test set -> its export -> simulated expert -> baseline, then per
    round sample -> export -> simulated expert -> train/re-score -> evaluate -> figures ->
    answers. Returns the metrics per round."""
    from activepam.rounds import rounds as rd
    from activepam.rounds import steps
    from activepam.rounds.freeze import settings_path

    assert Path.cwd() == root
    cfg = config or toy_config(p, rounds, n, test_size, labels_dir)
    labels_dir = cfg["rounds"]["labels_dir"]
    label_set = cfg["rounds"]["label_set"]
    seed = cfg["rounds"]["seed"]
    ev = cfg["evaluate"]
    evaluate = {"ece_bins": ev["ece_bins"], "default_threshold": ev["default_threshold"]}
    detect = dict(segments=p["segments"], embeddings=p["embeddings"], predictions=p["predictions"])
    rdir = Path("results/rounds")
    test = dict(test_set=rdir / "test_set.csv", test_labels=f"{labels_dir}/test.csv")

    def simulated_labels(name: str) -> None:  # rule round_simulated_labels
        steps.round_simulated_labels(
            annotation=rdir / name / "annotation",
            events=p["events"],
            inventory=p["inventory"],
            label_set=label_set,
            completed=rdir / name / "simulated",
            labels=f"{labels_dir}/{name}.csv",
            round_id=name.removeprefix("round_"),
            unsure=cfg["rounds"].get("simulated_unsure", 0.0),
            seed=seed,
        )

    steps.rounds_test_set(
        segments=p["segments"], test_set=test["test_set"], settings=steps.testset_params(cfg)
    )
    steps.round_export(
        units=test["test_set"],
        predictions=p["predictions"],
        label_set=steps.export_params(cfg, "test", label_set)["label_set"],
        annotation=rdir / "test/annotation",
        settings=steps.export_params(cfg, "test", label_set),
        settings_file=settings_path("test"),
    )
    simulated_labels("test")
    steps.rounds_baseline(
        **test,
        embeddings=p["embeddings"],
        predictions=p["predictions"],
        label_set=label_set,
        metrics=rdir / "baseline_metrics.json",
        strata=rdir / "baseline_strata_metrics.json",
        species=rdir / "baseline_per_species.csv",
        confusion=rdir / "baseline_confusion.csv",
        evaluate=evaluate,
        strata_keys=cfg["rounds"]["strata"],
    )
    out = []
    for r in rounds:
        d = rdir / f"round_{r}"
        steps.round_sample(
            scores=rd.scores_path(r),
            labels=rd.label_files(labels_dir, r, inclusive=False),
            test_set=test["test_set"],
            embeddings=p["embeddings"],
            predictions=rd.predictions_path(r),
            sample=d / "sample.parquet",
            settings=steps.sample_params(cfg, r),
        )
        settings = steps.export_params(cfg, r, label_set)
        steps.round_export(
            units=d / "sample.parquet",
            predictions=rd.predictions_path(r),
            label_set=settings["label_set"],
            annotation=d / "annotation",
            settings=settings,
            settings_file=settings_path(r),
        )
        simulated_labels(f"round_{r}")
        steps.round_train(
            labels=rd.label_files(labels_dir, r),
            **detect,
            label_set=label_set,
            model=d / "model.joblib",
            sidecar=d / "model.json",
            scored=d / "segments_scored.parquet",
            round_predictions=d / "predictions.parquet",
            round_id=r,
            train={
                k: cfg["train"][k] for k in ("C", "max_iter", "calibrate_min", "cv_folds", "seed")
            },
            default_threshold=ev["default_threshold"],
            top_k=cfg["detect"]["top_k"],
        )
        metrics = steps.round_evaluate(
            model=d / "model.joblib",
            sidecar=d / "model.json",
            labels=f"{labels_dir}/round_{r}.csv",
            baseline=rdir / "baseline_metrics.json",
            **detect,
            **test,
            label_set=label_set,
            round_predictions=rd.round_files(r, "predictions.parquet"),
            sidecars=rd.round_files(r, "model.json"),
            previous_metrics=rd.metrics_files(r)[:-1],
            metrics=d / "metrics.json",
            strata=d / "strata_metrics.json",
            species=d / "per_species.csv",
            confusion=d / "confusion.csv",
            round_id=r,
            evaluate={**evaluate, "stopping": ev.get("stopping", {})},
            strata_keys=cfg["rounds"]["strata"],
            seed=seed,
        )
        steps.round_plots(
            metrics=rd.metrics_files(r),
            strata=d / "strata_metrics.json",
            confusion=d / "confusion.csv",
            species=d / "per_species.csv",
            history=d / "history.csv",
            learning_curve=d / "learning_curve.png",
            strata_heatmap=d / "strata_heatmap.png",
            confusion_pairs=d / "confusion_pairs.png",
            species_ap=d / "species_ap.png",
            top_pairs=ev.get("confusion_pairs", 10),
        )
        steps.round_answers(
            labels=rd.label_files(labels_dir, r),
            detector_predictions=p["predictions"],
            sample_predictions=rd.predictions_path(r),
            round_predictions=d / "predictions.parquet",
            segments=p["segments"],
            sample=d / "sample.parquet",
            model=d / "model.joblib",
            sidecar=d / "model.json",
            per_species=d / "per_species.csv",
            **test,
            embeddings=p["embeddings"],
            label_set=label_set,
            thresholds=ev.get("thresholds", {}),
            seed=seed,
            **{name.replace(".", "_"): d / name for name in ANSWER_OUTPUTS},
        )
        out.append(metrics)
    return out


@pytest.mark.slow
def test_two_rounds_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """export -> fill Raven tables -> import -> retrain -> round 1 excludes labelled units;
    the retrained probe beats the BirdNET baseline on the test set."""
    from activepam.core.labels import read_labels
    from activepam.rounds import rounds as rd
    from activepam.rounds.export import read_manifest

    p = build_toy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    history = play_rounds(tmp_path, p)
    base = json.loads(Path("results/rounds/baseline_metrics.json").read_text())
    seg = pd.read_parquet(p["segments"])
    test_ids = set(pd.read_csv("results/rounds/test_set.csv")["unit_id"])
    assert pd.read_csv("results/rounds/test_set.csv").groupby("site").size().min() >= 9

    lab0, lab1 = (read_labels(f"data/labels/round_{r}.csv") for r in ("00", "01"))
    for r, lab in (("00", lab0), ("01", lab1)):
        d = Path(f"results/rounds/round_{r}")
        m = read_manifest(d / "annotation" / "manifest.csv")
        assert set(m["batch"]) == {"ann", "bob"}
        assert set(lab["unit_id"]) == set(m["unit_id"])  # every exported unit labelled
        assert not set(m["unit_id"]) & test_ids
        assert (d / "annotation" / m["table_file"].iloc[0]).exists()
        assert (d / "annotation" / m["spectrogram_file"].iloc[0]).exists()
        info = sf.info(str(d / "annotation" / m["clip_file"].iloc[0]))
        assert 3.0 <= info.duration <= 7.01
        scored = pd.read_parquet(d / "segments_scored.parquet")
        assert list(scored.columns) == list(seg.columns)
        assert len(scored) == len(seg)
        for fig in rd.ROUND_FIGURES:
            assert (d / f"{fig}.png").stat().st_size > 2000
        for name in ANSWER_OUTPUTS:  # from labels to answers (issue 14)
            assert (d / name).stat().st_size > (2000 if name.endswith(".png") else 50)
        thr = pd.read_csv(d / "thresholds.csv")
        assert set(thr["target_precision"]) == {0.85, 0.9, 0.95, 0.99}
        assert thr["n_verified"].max() >= 10
        dens = pd.read_csv(d / "density.csv")  # max_entropy rounds: not a verification design
        assert dens["note"].str.contains("not estimable").all()
    # round 1 excludes round 0's units and the test set
    assert set(lab0["unit_id"]).isdisjoint(lab1["unit_id"])
    # the simulated expert agreed with the generator's truth (negatives included)
    assert (lab0["species"] == "").sum() + (lab0["present"] == 1).sum() > 0
    last = history[-1]
    assert [h["n_labelled_units"] for h in history] == [40, 80]
    assert last["overall"]["macro_ap"] > base["overall"]["macro_ap"] + 0.1
    assert last["overall"]["macro_auroc"] > base["overall"]["macro_auroc"]
    assert last["improvement"]["macro_ap"] > 0.1
    assert set(last["strata"]) == set(KEYS)
    assert last["strata"]["site"]["cv"]["macro_ap"] is not None
    model = json.loads(Path("results/rounds/round_01/model.json").read_text())
    assert len(model["training_hash"]) == 64
    assert model["label_files"] == ["data/labels/round_00.csv", "data/labels/round_01.csv"]
    stop = [h["stopping"] for h in history]
    assert stop[0]["recommendation"] == "not enough rounds" and stop[0]["kappa_history"] == []
    assert len(stop[1]["kappa_history"]) == 1
    assert stop[1]["n_stop_units"] == min(200, len(seg) - len(test_ids))
    assert -1 <= stop[1]["kappa_history"][0] <= 1
    saved = json.loads(Path("results/rounds/round_01/metrics.json").read_text())
    assert saved["stopping"]["kappa_history"] == stop[1]["kappa_history"]
    hist = pd.read_csv("results/rounds/round_01/history.csv")
    assert hist["stop_recommendation"].tolist() == [h["recommendation"] for h in stop]
    assert list(hist["n_labelled_units"]) == [40, 80]
