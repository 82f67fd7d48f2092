"""McEwen, Bernard & Stowell 2025 (stratified active learning): the protocol and its report.

The preprint ("Stratified active learning for spatiotemporal generalisation in large-scale
bioacoustic monitoring", bioRxiv 10.1101/2025.09.01.673472; code
github.com/BenMcEwen1/Stratified-Sampling) compares three samplers on WABAD and AnuraSet:
``binary`` (top-k max binary entropy), ``cluster`` (Ward on a 20 % subsample, k = the batch,
the most uncertain segment per cluster) and ``stratified`` (equal allocation over the sites,
top-k within each), and scores every test stratum over the classes present in it.

The protocol is the params overlay ``params/protocols/mcewen2025.yaml`` (+
``mcewen2025_anuraset.yaml``); :func:`run_protocol` runs it with the simulation's AL loop
(:func:`activepam.simulation.loop.run_simulation`) and records which segments each strategy
picked (:func:`recording_selector`), and :func:`write_report` writes the preprint's outputs:

* per test stratum at the final round, over the classes present in the stratum: "mAP" =
  support-weighted AP (``weighted_ap``), cmAP = macro AP (``macro_ap``), F1-macro at the
  threshold (``macro_f1``), mean and sd over the repeats, next to the number of segments
  selected in that stratum (``per_stratum.csv``, ``figures/per_stratum_<key>_<strategy>.png``);
* per strategy: the mean per-stratum score, Pielou evenness and CV of the per-stratum scores
  (``strategies.csv``), the mean per-stratum F1 printed next to the published numbers;
* I(S;Y) in bits and I/H(Y) per stratum key on the train, test and train+test rows, with the
  permutation baseline of the plug-in bias (``mutual_information.csv``);
* Jensen-Shannon divergence (base 2, bits) between the strata's label distributions and
  between their predicted-probability distributions (out-of-fold probe predictions), as
  clustermaps (``jsd.csv``, ``figures/jsd_{label,pred}_<key>.png``); the preprint uses
  scipy's ``jensenshannon(p, q) ** 2`` in nats (= ours x ln 2);
* the exclusion analysis: a probe trained without a stratum vs one that also saw part of it
  (size-matched), the drop on that stratum against the stratum's divergence from the rest
  (:func:`activepam.simulation.stratified.leave_one_stratum_out`; ``exclusion.csv``,
  ``exclusion_correlation.csv``, ``figures/exclusion_<drop>.png``);
* ``summary.json`` with all of the above and the published numbers, ``report.md`` the text.

``activepam mcewen2025 --imported DIR --out DIR`` does both steps (the overlays are chosen
from the import's ``import.json`` dataset unless ``--overlay`` is given).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.metrics import macro_scores, spread
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimDataset, SimulationError
from activepam.simulation.strategies import Selector

log = logging.getLogger(__name__)

#: the preprint's names of the per-stratum metrics
METRIC_NAMES = {"weighted_ap": "mAP", "macro_ap": "cmAP", "macro_f1": "F1-macro"}
PROTOCOL_METRICS = tuple(METRIC_NAMES)
#: overlays of each dataset (paths relative to the repository root)
OVERLAYS: dict[str, tuple[str, ...]] = {
    "wabad": ("params/protocols/mcewen2025.yaml",),
    "anuraset": ("params/protocols/mcewen2025.yaml", "params/protocols/mcewen2025_anuraset.yaml"),
}
#: what the preprint's repository reports (figures/*.json, the notebook): I(S;Y) over the
#: sites in bits and as a fraction of H(Y); mean per-site F1-macro per strategy ([low, high]
#: when its runs disagree)
PUBLISHED: dict[str, dict[str, Any]] = {
    "wabad": {
        "key": "site",
        "mi_bits": 1.537,
        "mi_fraction": 0.343,
        "mean_stratum_f1": {
            "binary": [0.221, 0.221],
            "cluster": [0.236, 0.262],
            "stratified": [0.183, 0.183],
        },
    },
    "anuraset": {
        "key": "site",
        "mi_bits": 1.644,
        "mi_fraction": 0.406,
        "mean_stratum_f1": {
            "binary": [0.482, 0.482],
            "cluster": [0.506, 0.506],
            "stratified": [0.497, 0.497],
        },
    },
}
SELECTION_COLUMNS = ["strategy", "seed", "round", "unit_id"]
#: the tables of an import folder (``activepam datasets import``), in custom_dataset's order
IMPORT_FILES = ("embeddings.parquet", "labels.parquet", "metadata.parquet")


# --------------------------------------------------------------------------- metrics


def stratum_scores(Y: np.ndarray, P: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The preprint's scores of one stratum over the classes present in it (at least one
    positive among its units): ``mAP`` = support-weighted AP (scikit-learn's
    ``average="weighted"``), ``cmAP`` = macro AP, ``F1-macro`` of ``P >= threshold``, and
    ``n_classes``. The same numbers as the simulation's ``weighted_ap`` / ``macro_ap`` /
    ``macro_f1`` rows (:func:`activepam.core.metrics.macro_scores`)."""
    sc = macro_scores(np.asarray(Y), np.asarray(P), threshold)
    return {
        "mAP": sc["weighted_ap"],
        "cmAP": sc["macro_ap"],
        "F1-macro": sc["macro_f1"],
        "n_classes": sc["n_species_eval"],
    }


def evenness(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Pielou evenness J and coefficient of variation (sd / mean, ddof 0) of per-stratum
    scores (:func:`activepam.core.metrics.spread`; NaN for fewer than two finite values)."""
    cv, j = spread(values)
    return {"pielou": j, "cv": cv}


# --------------------------------------------------------------------------- the runs


@dataclass
class ProtocolRun:
    """Tidy results of every strategy x seed (the simulation's table) and the segments each
    run labelled: ``selections`` has one row per (strategy, seed, round, unit_id), ``round`` =
    the round whose model first saw the unit (0 = the cold-start pick)."""

    results: pd.DataFrame
    selections: pd.DataFrame


def recording_selector(select: Selector, calls: list[list[str]]) -> Selector:
    """``select`` that also appends every call's chosen unit ids to ``calls``."""

    def wrapped(
        units: pd.DataFrame,
        n: int,
        seed: int,
        embeddings: pd.DataFrame | None,
        labelled: Sequence[str],
    ) -> list[str]:
        chosen = list(select(units, n, seed, embeddings, labelled))
        calls.append([str(u) for u in chosen])
        return chosen

    return wrapped


def run_protocol(
    ds: SimDataset,
    sim: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
) -> ProtocolRun:
    """Every strategy x seed of the ``simulation`` section ``sim`` on ``ds``, recording the
    segments each run picked. Without ``cold_start`` the random seed set is not recorded
    (only the rounds' batches are counted per stratum)."""
    from activepam.simulation.loop import RESULT_COLUMNS, run_simulation
    from activepam.simulation.probe import config_features
    from activepam.simulation.strategies import resolve_strategy, sampling_selector

    cfg = SimConfig.from_params(sim)
    Z = config_features(ds.X, cfg)
    frames, picks = [], []
    for name in strategies or sim.get("strategies", ["random"]):
        spec = resolve_strategy(name, sim.get("presets"), params)
        for seed in seeds if seeds is not None else sim.get("seeds", [0]):
            calls: list[list[str]] = []
            t0 = time.perf_counter()
            selector = recording_selector(sampling_selector(spec), calls)
            res = run_simulation(
                ds, spec, int(seed), cfg, selector=selector, Z=Z, progress=progress
            )
            done = int(res["round"].max()) if len(res) else 0
            first = 0 if cfg.cold_start else 1
            for i, ids in enumerate(calls):
                if first + i <= done:  # a pick after the last evaluated round was never used
                    picks += [(name, int(seed), first + i, u) for u in ids]
            frames.append(res)
            log.info("%s seed %s: %d rounds, %.1f s", name, seed, done, time.perf_counter() - t0)
    results = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
    )
    return ProtocolRun(results, pd.DataFrame(picks, columns=SELECTION_COLUMNS))


# --------------------------------------------------------------------------- tables


def final_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of every (strategy, seed)'s last evaluated round."""
    last = results.groupby(["strategy", "seed"])["round"].transform("max")
    return results[results["round"] == last]


def unit_strata(
    ds: SimDataset, keys: Sequence[str], options: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Stratum values of every unit (index: unit_id) for ``keys``, plus its split."""
    from activepam.simulation.replicates import strata_values

    values = strata_values(ds.units, keys, options)
    out = pd.DataFrame({k: np.asarray(v).astype(str) for k, v in values.items()})
    out.index = ds.units["unit_id"].astype(str).to_numpy()
    if "split" in ds.units:
        out["split"] = ds.units["split"].astype(str).str.strip().str.lower().to_numpy()
    return out


def _selection_strata(
    selections: pd.DataFrame, ds: SimDataset, strata: pd.DataFrame
) -> pd.DataFrame:
    """``selections`` with the stratum columns of each picked unit (a recording id maps to its
    first unit)."""
    rec_first = pd.Series(
        ds.units["unit_id"].astype(str).to_numpy(),
        index=ds.units["recording_id"].astype(str).to_numpy(),
    )
    rec_first = rec_first[~rec_first.index.duplicated()]
    ids = selections["unit_id"].astype(str)
    unit = ids.where(ids.isin(strata.index), ids.map(rec_first))
    if unit.isna().any():
        bad = ids[unit.isna()].iloc[0]
        raise SimulationError(f"selections: unit {bad!r} is not in the dataset")
    return pd.concat(
        [selections.reset_index(drop=True), strata.loc[unit.to_numpy()].reset_index(drop=True)],
        axis=1,
    )


def per_stratum_table(
    results: pd.DataFrame,
    selections: pd.DataFrame,
    ds: SimDataset,
    keys: Sequence[str],
    options: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = PROTOCOL_METRICS,
) -> pd.DataFrame:
    """One row per (strategy, key, stratum value): the final-round metrics' mean and sd over
    seeds (``<metric>``, ``<metric>_sd``; only the metrics the results have), the segments
    selected there (mean over seeds, ``n_selected``) and the stratum's pool / test sizes."""
    strata = unit_strata(ds, keys, options)
    fin = final_rows(results)
    fin = fin[
        fin["stratum"].isin(keys) & (fin["stratum_value"] != "all") & fin["metric"].isin(metrics)
    ]
    rows = []
    sel = _selection_strata(selections, ds, strata) if len(selections) else None
    split = strata["split"] if "split" in strata else pd.Series("train", index=strata.index)
    for (strategy, key, value), g in fin.groupby(
        ["strategy", "stratum", "stratum_value"], sort=False
    ):
        row: dict[str, Any] = {"strategy": strategy, "key": key, "stratum_value": value}
        for m, h in g.groupby("metric"):
            v = h["value"].to_numpy(dtype=np.float64)
            row[m] = float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
            row[f"{m}_sd"] = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else 0.0
        seeds = sorted(results.loc[results["strategy"] == strategy, "seed"].unique())
        row["n_seeds"] = len(seeds)
        if sel is not None:
            mine = sel[(sel["strategy"] == strategy) & (sel[key] == value)]
            row["n_selected"] = len(mine) / max(len(seeds), 1)
        else:
            row["n_selected"] = np.nan
        in_key = strata[key] == value
        row["n_pool"] = int((in_key & (split == "train")).sum())
        row["n_test"] = int((in_key & (split == "test")).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def strategy_table(
    results: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str] = PROTOCOL_METRICS
) -> pd.DataFrame:
    """Per strategy and stratum key at the final round: the mean over the key's strata of
    each metric (``mean_<metric>``), its Pielou evenness and CV over the strata (``pielou_*``,
    ``cv_*``), each as the mean over seeds with the sd over seeds (``*_sd``), the overall
    macro AP and the labels spent."""
    fin = final_rows(results)
    rows = []
    for (strategy, key), g in fin[fin["stratum"].isin(keys)].groupby(
        ["strategy", "stratum"], sort=False
    ):
        per_seed: dict[str, list[float]] = {}
        for _, h in g.groupby("seed"):
            for m in metrics:
                v = h.loc[(h["metric"] == m) & (h["stratum_value"] != "all"), "value"]
                if not len(v):
                    continue
                v = v.to_numpy(dtype=np.float64)
                per_seed.setdefault(f"mean_{m}", []).append(
                    float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
                )
                for s in ("pielou", "cv"):
                    w = h.loc[(h["metric"] == f"{s}_{m}") & (h["stratum_value"] == "all"), "value"]
                    per_seed.setdefault(f"{s}_{m}", []).append(
                        float(w.iloc[0]) if len(w) else np.nan
                    )
        all_rows = fin[(fin["strategy"] == strategy) & (fin["stratum"] == "all")]
        row: dict[str, Any] = {
            "strategy": strategy,
            "key": key,
            "n_seeds": int(g["seed"].nunique()),
            "n_labelled": float(all_rows["n_units"].mean()) if len(all_rows) else np.nan,
            "n_strata": int(g.loc[g["stratum_value"] != "all", "stratum_value"].nunique()),
        }
        for col, v in per_seed.items():
            a = np.asarray(v, dtype=np.float64)
            ok = np.isfinite(a)
            row[col] = float(a[ok].mean()) if ok.any() else np.nan
            row[f"{col}_sd"] = float(a[ok].std(ddof=1)) if ok.sum() > 1 else 0.0
        ap = all_rows.loc[all_rows["metric"] == "macro_ap", "value"]
        row["overall_macro_ap"] = float(ap.mean()) if len(ap) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _subset(ds: SimDataset, mask: np.ndarray, name: str) -> SimDataset:
    rows = np.flatnonzero(mask)
    return SimDataset(
        ds.units.iloc[rows].reset_index(drop=True), ds.X[rows], ds.Y[rows], list(ds.species), name
    )


def _split_masks(ds: SimDataset) -> dict[str, np.ndarray]:
    """train, test and train+test rows (every row when the dataset has no split column)."""
    if "split" not in ds.units:
        return {"all": np.ones(ds.n, dtype=bool)}
    split = ds.units["split"].astype(str).str.strip().str.lower().to_numpy()
    masks = {"train": split == "train", "test": split == "test"}
    masks["train+test"] = masks["train"] | masks["test"]
    return {k: m for k, m in masks.items() if m.any()}


def mutual_information_by_split(
    ds: SimDataset, keys: Sequence[str], cfg: SimConfig, n_permutations: int = 20, seed: int = 0
) -> pd.DataFrame:
    """I(S;Y) in bits and I/H(Y) per stratum key (and all keys combined) on the train, test
    and train+test rows (:func:`activepam.simulation.stratified.mutual_information_table`:
    every (unit, present species) pair is one draw of (stratum, species))."""
    from activepam.simulation.stratified import mutual_information_table

    frames = []
    for split, mask in _split_masks(ds).items():
        t = mutual_information_table(
            _subset(ds, mask, f"{ds.name}:{split}"), keys, cfg, n_permutations, seed
        )
        t.insert(0, "split", split)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- the report


def _published(dataset: str | None) -> dict[str, Any] | None:
    return PUBLISHED.get(str(dataset).lower()) if dataset else None


def _range(v: Sequence[float] | None) -> str:
    if not v:
        return "-"
    return f"{v[0]:.3f}" if v[0] == v[1] else f"{v[0]:.3f}-{v[1]:.3f}"


def _f(v: Any, spec: str = ".3f") -> str:
    try:
        return "n/a" if v is None or not np.isfinite(float(v)) else format(float(v), spec)
    except (TypeError, ValueError):
        return "n/a"


def _cell(row: Mapping[str, Any], metric: str) -> str:
    return f"{_f(row.get(f'mean_{metric}'))} ({_f(row.get(f'mean_{metric}_sd'))})"


def format_report(summary: Mapping[str, Any]) -> str:
    """The report's text: per strategy the mean per-stratum scores (ours, mean (sd) over
    seeds) next to the published mean per-site F1, I(S;Y), the exclusion analysis."""
    pub = summary.get("published") or {}
    lines = [
        f"McEwen, Bernard & Stowell 2025 on {summary.get('dataset') or 'this dataset'}: "
        f"{summary['n_pool']} pool units, {summary['n_test']} test units, "
        f"{summary['n_species']} classes",
    ]
    for key, rows in summary["strategies"].items():
        lines.append("")
        lines.append(
            f"per-{key} scores at the final round (mean over the {key}s; mean (sd) "
            "over seeds; over the classes present in each stratum)"
        )
        head = (
            f"{'strategy':12s} {'runs':>4s} {'labels':>6s} {'F1-macro':>15s} "
            f"{'published F1':>12s} {'mAP':>15s} {'cmAP':>15s} {'Pielou F1':>9s} "
            f"{'CV F1':>7s}"
        )
        lines.append(head)
        published = (pub.get("mean_stratum_f1") or {}) if pub.get("key") == key else {}
        for r in rows:
            lines.append(
                f"{r['strategy']:12s} {r['n_seeds']:4d} {_f(r['n_labelled'], '.0f'):>6s} "
                f"{_cell(r, 'macro_f1'):>15s} {_range(published.get(r['strategy'])):>12s} "
                f"{_cell(r, 'weighted_ap'):>15s} {_cell(r, 'macro_ap'):>15s} "
                f"{_f(r.get('pielou_macro_f1')):>9s} {_f(r.get('cv_macro_f1')):>7s}"
            )
    lines.append("")
    lines.append("I(S;Y) in bits, I/H(Y) (permutation-corrected I/H in brackets)")
    for r in summary["mutual_information"]:
        lines.append(
            f"  {r['key']:12s} {r['split']:10s} I = {_f(r['mi_bits'])} bits, "
            f"I/H = {_f(r['fraction'])} [{_f(r['fraction_corrected'])}], "
            f"{r['n_strata']} strata"
        )
    if pub:
        lines.append(
            f"  published ({pub['key']}): I = {pub['mi_bits']:.3f} bits, "
            f"I/H = {pub['mi_fraction']:.3f}"
        )
    exc = summary.get("exclusion") or []
    if exc:
        lines.append("")
        lines.append(
            "exclusion (leave one stratum out, size-matched): correlation over the "
            "strata of the drop with the stratum's JSD to the rest (no p-value)"
        )
        for r in exc:
            lines.append(
                f"  {r['key']:8s} {r['y']:8s} ~ {r['x']:10s} n = {r['n']}, "
                f"r = {_f(r['pearson_r'], '.2f')}, "
                f"Spearman = {_f(r['spearman_rho'], '.2f')}"
            )
    return "\n".join(lines)


def write_report(
    run: ProtocolRun,
    ds: SimDataset,
    sim: Mapping[str, Any],
    out: str | Path,
    dataset: str | None = None,
    exclusion: bool = True,
) -> dict[str, Any]:
    """Write the preprint's outputs of ``run`` into ``out`` (see the module docstring) and
    return the summary (also ``summary.json``; ``report.md`` is its text)."""
    from activepam.core.io import save_figure, write_csv, write_json, write_text
    from activepam.plots.mcewen import clustermap_figure, stratum_bars_figure
    from activepam.simulation.figures import loso_figure
    from activepam.simulation.probe import config_features
    from activepam.simulation.stratified import (
        jsd_long,
        leave_one_stratum_out,
        loso_correlation,
        out_of_fold_predictions,
    )

    out = Path(out)
    cfg = SimConfig.from_params(sim)
    keys = [k for k in cfg.strata if k in set(run.results["stratum"])]
    metrics = [m for m in PROTOCOL_METRICS if m in set(run.results["metric"])]
    strat = dict(sim.get("stratified") or {})
    loso_keys = [k for k in strat.get("loso_keys", keys[:1]) if k]
    mi_keys = list(strat.get("mi_keys", keys))
    files: dict[str, str] = {}

    table = per_stratum_table(run.results, run.selections, ds, keys, cfg.strata_options, metrics)
    files["per_stratum"] = write_csv(table, out / "per_stratum.csv", stage="mcewen").name
    strategies = strategy_table(run.results, keys, metrics)
    files["strategies"] = write_csv(strategies, out / "strategies.csv", stage="mcewen").name
    shown = "macro_f1" if "macro_f1" in metrics else metrics[0]
    for key in keys:
        for strategy in table["strategy"].unique():
            fig = stratum_bars_figure(table, strategy, key, shown, METRIC_NAMES[shown])
            name = f"figures/per_stratum_{key}_{strategy}.png"
            save_figure(fig, out / name, stage="mcewen")
            files[f"per_stratum_{key}_{strategy}"] = name

    masks = _split_masks(ds)
    rows = masks["train+test"] if "train+test" in masks else next(iter(masks.values()))
    both = _subset(ds, rows, ds.name)
    mi = mutual_information_by_split(ds, mi_keys, cfg, int(strat.get("permutations", 20)))
    files["mutual_information"] = write_csv(mi, out / "mutual_information.csv", stage="mcewen").name
    Z = config_features(both.X, cfg)
    P = out_of_fold_predictions(both, Z, cfg, seed=0)
    jsd = pd.concat([jsd_long(both, k, cfg, P) for k in loso_keys], ignore_index=True)
    files["jsd"] = write_csv(jsd, out / "jsd.csv", stage="mcewen").name
    for key in loso_keys:
        g = jsd[jsd["key"] == key]
        labels = list(dict.fromkeys(g["a"]))
        for value, what in (("jsd_label", "label"), ("jsd_pred", "predicted-probability")):
            M = g.pivot(index="a", columns="b", values=value).loc[labels, labels].to_numpy()
            fig = clustermap_figure(
                M,
                labels,
                f"JSD between {key} strata: {what} distributions ({both.name}, train + test)",
            )
            name = f"figures/{value}_{key}.png"
            save_figure(fig, out / name, stage="mcewen")
            files[f"{value}_{key}"] = name

    exclusion_rows: list[dict[str, Any]] = []
    if exclusion and loso_keys:
        loso = pd.concat(
            [
                leave_one_stratum_out(
                    both,
                    k,
                    cfg,
                    Z,
                    int(strat.get("folds", 2)),
                    bool(strat.get("size_matched", True)),
                    0,
                    P_oof=P,
                )
                for k in loso_keys
            ],
            ignore_index=True,
        )
        loso.insert(0, "setting", "protocol")
        loso.insert(0, "dataset", both.name)
        files["exclusion"] = write_csv(loso, out / "exclusion.csv", stage="mcewen").name
        corr = pd.concat(
            [
                loso_correlation(loso, x, y)
                for x in ("jsd_label", "jsd_pred")
                for y in ("drop_ap", "drop_f1")
                if y in loso
            ],
            ignore_index=True,
        )
        files["exclusion_correlation"] = write_csv(
            corr, out / "exclusion_correlation.csv", stage="mcewen"
        ).name
        exclusion_rows = corr.to_dict("records")
        for y in ("drop_ap", "drop_f1"):
            if y not in loso:
                continue
            c = {
                f"{r['key']}:{y}~jsd_label": r
                for r in exclusion_rows
                if r["y"] == y and r["x"] == "jsd_label"
            }
            save_figure(
                loso_figure(loso, c, "jsd_label", y),
                out / f"figures/exclusion_{y}.png",
                stage="mcewen",
            )
            files[f"exclusion_{y}"] = f"figures/exclusion_{y}.png"

    masks_all = _split_masks(ds)
    summary: dict[str, Any] = {
        "paper": "McEwen, Bernard & Stowell 2025 (bioRxiv 10.1101/2025.09.01.673472)",
        "dataset": dataset,
        "n_pool": int(masks_all.get("train", np.ones(ds.n, bool)).sum()),
        "n_test": int(masks_all.get("test", np.zeros(ds.n, bool)).sum()),
        "n_species": len(ds.species),
        "protocol": {
            k: sim.get(k)
            for k in (
                "strategies",
                "seeds",
                "seed_size",
                "batch_size",
                "rounds",
                "budget_unit",
                "cold_start",
                "strata",
                "stratum_metrics",
                "probe",
                "probe_C",
            )
        },
        "metric_names": METRIC_NAMES,
        "strategies": {k: strategies[strategies["key"] == k].to_dict("records") for k in keys},
        "per_stratum": {k: table[table["key"] == k].to_dict("records") for k in keys},
        "mutual_information": mi.to_dict("records"),
        "jsd_base": "bits (log 2); the preprint's jensenshannon(p, q) ** 2 is in nats "
        "= ours x ln 2",
        "exclusion": exclusion_rows,
        "published": _published(dataset),
        "files": files,
    }
    from activepam.core.io import jsonable

    summary = jsonable(summary)
    text = format_report(summary)
    summary["files"]["summary"] = "summary.json"
    summary["files"]["report"] = "report.md"
    write_json(summary, out / "summary.json", stage="mcewen")
    write_text(text + "\n", out / "report.md", stage="mcewen")
    return summary


# --------------------------------------------------------------------------- CLI


def imported_dataset_name(folder: str | Path) -> str | None:
    """The ``dataset`` of an import's ``import.json`` (wabad, anuraset, baseal), if any."""
    meta = Path(folder) / "import.json"
    if not meta.exists():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("dataset")
    except (OSError, ValueError) as exc:
        raise SimulationError(f"{meta}: {exc}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam mcewen2025``: the McEwen et al. 2025 protocol and its report."""
    p = subparsers.add_parser(
        "mcewen2025",
        help="McEwen, Bernard & Stowell 2025 stratified AL: protocol runs + report",
        description="Run the McEwen et al. 2025 protocol (binary / cluster / stratified / "
        "random x seeds) on an imported dataset and write its outputs: per-stratum mAP, cmAP, "
        "F1-macro next to the segments selected per stratum, Pielou and CV, I(S;Y), JSD "
        "clustermaps, the exclusion analysis and the published numbers.",
    )
    p.add_argument(
        "--imported",
        required=True,
        metavar="DIR",
        help="a folder written by `activepam datasets import` (wabad, anuraset)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--params", default="params.yaml", help="parameter file")
    p.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="YAML",
        help="params overlays (default: params/protocols/mcewen2025.yaml, + "
        "mcewen2025_anuraset.yaml for an AnuraSet import)",
    )
    p.add_argument("--strategy", action="append", help="strategy (repeatable)")
    p.add_argument("--seed", type=int, action="append", help="repeat seed (repeatable)")
    p.add_argument("--rounds", type=int, help="override simulation.rounds (reduced size)")
    p.add_argument("--no-exclusion", action="store_true", help="skip the exclusion analysis")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-write the report from OUT/results.parquet and OUT/selections.parquet",
    )
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from activepam.core.config import ConfigError, load_params
    from activepam.core.io import write_parquet
    from activepam.simulation.cli import _overlaid
    from activepam.simulation.dataset import custom_dataset
    from activepam.simulation.workflow import simulation_params

    d = Path(args.imported)
    out = Path(args.out)
    missing = [f for f in IMPORT_FILES if not (d / f).exists()]
    if missing:
        print(
            f"activepam mcewen2025: {d}: {', '.join(missing)} not found (write the folder "
            "with `activepam datasets import wabad|anuraset PATH --out DIR`)",
            file=sys.stderr,
        )
        return 2
    try:
        name = imported_dataset_name(d)
        overlays = args.overlay or list(OVERLAYS.get(str(name), OVERLAYS["wabad"]))
        params = _overlaid(load_params(args.params), overlays)
    except (ConfigError, SimulationError) as exc:
        print(f"activepam mcewen2025: {exc}", file=sys.stderr)
        return 2
    sim = simulation_params(params)
    if args.rounds is not None:
        sim["rounds"] = args.rounds
    try:
        emb, lab, meta = (d / f for f in IMPORT_FILES)
        ds = custom_dataset(emb, lab, meta, name=d.name)
        if args.report_only:
            run = ProtocolRun(
                pd.read_parquet(out / "results.parquet"),
                pd.read_parquet(out / "selections.parquet"),
            )
        else:
            t0 = time.perf_counter()
            run = run_protocol(ds, sim, params, args.strategy, args.seed, progress=True)
            write_parquet(run.results, out / "results.parquet", stage="mcewen")
            write_parquet(run.selections, out / "selections.parquet", stage="mcewen")
            print(
                f"{len(run.results)} rows -> {out / 'results.parquet'} "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
        summary = write_report(run, ds, sim, out, name, exclusion=not args.no_exclusion)
    except (SimulationError, FileNotFoundError) as exc:
        print(f"activepam mcewen2025: {exc}", file=sys.stderr)
        return 2
    print(format_report(summary))
    print(f"\noutputs -> {out} (summary.json, report.md, figures/)")
    return 0
