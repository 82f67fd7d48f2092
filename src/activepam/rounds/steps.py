"""The step layer of the rounds: one function per Snakemake rule of workflow/rules/rounds.smk.

Each step takes keyword arguments named like the rule's ``input``, ``output`` and ``params``
entries, so ``scripts/round_*.py`` are three-line adapters (:func:`run_rule`) and the tests call
the very same functions with plain paths. The parameters each rule gets from params.yaml are
built by the functions at the end of this module (:func:`sample_params`, ...), used by the
rules and the tests alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

Paths = Sequence[str | Path]


def rule_kwargs(smk: Any) -> dict[str, Any]:
    """Named ``input``, ``output`` and ``params`` entries of a Snakemake job as keyword
    arguments (file lists as lists of str); a name used twice is an error."""
    out: dict[str, Any] = {}
    for part, is_files in ((smk.input, True), (smk.output, True), (smk.params, False)):
        for name, value in part.items():
            if name in out:
                raise ValueError(
                    f"rule {getattr(smk, 'rule', '?')}: {name!r} is both an input/"
                    "output and a param name"
                )
            if is_files:
                value = str(value) if isinstance(value, str) else [str(v) for v in value]
            out[name] = value
    return out


def run_rule(step: Callable[..., Any], smk: Any) -> None:
    """Run ``step`` for the Snakemake job ``smk``, logging to its log file."""
    from activepam.core.logs import rule_log

    with rule_log(smk.log[0] if len(smk.log) else None):
        step(**rule_kwargs(smk))


# --------------------------------------------------------------------------- steps


def rounds_test_set(
    *, segments: str | Path, test_set: str | Path, settings: Mapping[str, Any]
) -> pd.DataFrame:
    """Draw the held-out test segments once (seeded, stratified by site)."""
    from activepam.core.evaluate import choose_test_set
    from activepam.core.io import write_csv

    test = choose_test_set(
        pd.read_parquet(segments), int(settings["n"]), seed=int(settings["seed"])
    )
    write_csv(test, test_set, stage="rounds")
    return test


def _read_units(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"unit_id": str, "recording_id": str})


def round_export(
    *,
    units: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    annotation: str | Path,
    settings: Mapping[str, Any],
    settings_file: str | Path,
) -> pd.DataFrame:
    """Clips, spectrograms, pre-filled Raven tables and manifest.csv of a round (or the test
    set, ``settings["round"] == "test"``); then its settings are frozen in ``settings_file``
    (:mod:`activepam.rounds.freeze`)."""
    from activepam.core.hashing import file_sha256
    from activepam.core.labels import read_label_set
    from activepam.rounds.freeze import freeze
    from activepam.rounds.rounds import export_options, export_round

    key = str(settings["round"])
    sample = _read_units(units)
    strategy = "test_set" if key == "test" else str(settings["strategy"])
    manifest = export_round(
        sample,
        predictions,
        annotation,
        key,
        export_options(settings["export"]),
        strategy,
        label_set=read_label_set(label_set),
    )
    freeze(
        settings,
        settings_file,
        provenance={
            "units": int(len(sample)),
            "sample": str(units),
            "sample_sha256": file_sha256(units),
            "label_set_sha256": file_sha256(label_set),
        },
    )
    log.info("froze the settings of %s -> %s", key, settings_file)
    return manifest


def round_sample(
    *,
    scores: str | Path,
    labels: Paths,
    test_set: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    sample: str | Path,
    settings: Mapping[str, Any],
) -> pd.DataFrame:
    """Sample round RR from its score table with its (frozen or current) strategy, excluding
    labelled units and the test set (with the strategy option ``reoffer_unsure``, units
    answered only "unsure" stay in the pool)."""
    from activepam.rounds.rounds import excluded_units, sample_round, unsure_units

    spec = dict(settings["spec"])
    again = bool(spec.get("reoffer_unsure", False))
    labels = [str(f) for f in labels]
    exclude = excluded_units(labels, test_set, reoffer_unsure=again)
    return sample_round(
        scores,
        spec,
        int(settings["n"]),
        int(settings["seed"]),
        embeddings,
        exclude,
        sample,
        reoffer=unsure_units(labels) if again else None,
        predictions=predictions,
    )


def round_simulated_labels(
    *,
    annotation: str | Path,
    events: str | Path,
    inventory: str | Path,
    label_set: str | Path,
    completed: str | Path,
    labels: str | Path,
    round_id: str,
    unsure: float = 0.0,
    seed: int = 0,
) -> None:
    """Demo: the simulated annotator fills the exported Raven tables from the generator's
    ground truth, then the same importer as ``activepam labels import`` writes the labels."""
    from activepam.rounds.rounds import Oracle, simulate_and_import

    oracle = Oracle.from_files(Path(events).parent, inventory)
    simulate_and_import(
        annotation,
        completed,
        labels,
        str(round_id),
        oracle,
        label_set,
        Path(labels).parent,
        unsure_rate=float(unsure),
        seed=int(seed),
    )


def round_train(
    *,
    labels: Paths,
    segments: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    model: str | Path,
    sidecar: str | Path,
    scored: str | Path,
    round_predictions: str | Path,
    round_id: str,
    train: Mapping[str, Any],
    default_threshold: float,
    top_k: int,
) -> Any:
    """Train on the labels of rounds 00..RR, save the model, re-score every segment."""
    from activepam.core.labels import read_label_set
    from activepam.rounds.train import TrainOptions, train_round

    opts = TrainOptions(
        C=float(train.get("C", 0.1)),
        max_iter=int(train.get("max_iter", 500)),
        calibrate_min=int(train.get("calibrate_min", 10)),
        cv_folds=int(train.get("cv_folds", 3)),
        default_threshold=float(default_threshold),
        seed=int(train.get("seed", 0)),
    )
    return train_round(
        [str(f) for f in labels],
        segments,
        embeddings,
        predictions,
        read_label_set(label_set),
        model,
        sidecar,
        scored,
        round_predictions,
        opts,
        int(top_k),
        round_label=f"round_{round_id}",
    )


def _common_eval(
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    strata_keys: Sequence[str],
    evaluate: Mapping[str, Any],
) -> dict[str, Any]:
    from activepam.core.labels import read_label_set

    return dict(
        test_set=test_set,
        test_labels=test_labels,
        embeddings=embeddings,
        predictions=predictions,
        label_set=read_label_set(label_set),
        keys=list(strata_keys),
        bins=int(evaluate.get("ece_bins", 10)),
        default_threshold=float(evaluate.get("default_threshold", 0.5)),
    )


def rounds_baseline(
    *,
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    metrics: str | Path,
    strata: str | Path,
    species: str | Path,
    confusion: str | Path,
    evaluate: Mapping[str, Any],
    strata_keys: Sequence[str],
) -> dict[str, Any]:
    """BirdNET's own metrics on the test set (the baseline every round is compared with)."""
    from activepam.rounds.rounds import evaluate_model, write_round_metrics

    common = _common_eval(
        test_set, test_labels, embeddings, predictions, label_set, strata_keys, evaluate
    )
    out, per_species, pairs = evaluate_model(None, **common)
    out = {"round": "baseline", "model": "BirdNET", **out}
    write_round_metrics(out, per_species, pairs, metrics, species, confusion, strata)
    return out


def round_evaluate(
    *,
    model: str | Path,
    sidecar: str | Path,
    labels: str | Path,
    segments: str | Path,
    baseline: str | Path,
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    round_predictions: Paths,
    sidecars: Paths,
    previous_metrics: Paths,
    metrics: str | Path,
    strata: str | Path,
    species: str | Path,
    confusion: str | Path,
    round_id: str,
    evaluate: Mapping[str, Any],
    strata_keys: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """Test-set metrics of round RR's model, with the stopping block (rounds 00..RR)."""
    from activepam.core.stopping import StoppingOptions
    from activepam.rounds.answers import stopping_block
    from activepam.rounds.rounds import round_metrics, write_round_metrics

    common = _common_eval(
        test_set, test_labels, embeddings, predictions, label_set, strata_keys, evaluate
    )
    out, per_species, pairs = round_metrics(
        str(round_id), model, sidecar, baseline, round_labels=labels, segments=segments, **common
    )
    st = dict(evaluate.get("stopping") or {})
    opts = StoppingOptions(
        kappa_threshold=float(st.get("kappa_threshold", 0.99)),
        window=int(st.get("window", 3)),
        min_gain=float(st.get("min_gain", 0.005)),
    )
    out["stopping"] = stopping_block(
        [str(f) for f in round_predictions],
        [str(f) for f in sidecars],
        [str(f) for f in previous_metrics],
        out,
        str(segments),
        str(test_set),
        common["label_set"],
        int(st.get("stop_set", 2000)),
        int(seed),
        opts,
    )
    write_round_metrics(out, per_species, pairs, metrics, species, confusion, strata)
    return out


def round_answers(
    *,
    labels: Paths,
    detector_predictions: str | Path,
    sample_predictions: str | Path,
    round_predictions: str | Path,
    segments: str | Path,
    sample: str | Path,
    model: str | Path,
    sidecar: str | Path,
    per_species: str | Path,
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    label_set: str | Path,
    thresholds: Mapping[str, Any],
    seed: int,
    **outputs: Any,
) -> dict[str, Any]:
    """Thresholds for a target precision, call density and the evaluation figures of round RR
    (``outputs``: the files of :data:`activepam.rounds.answers.ANSWER_OUTPUTS`, written beside
    ``thresholds_csv``)."""
    from activepam.core.labels import read_label_set
    from activepam.rounds.answers import write_round_answers
    from activepam.sampling.verification import ThresholdOptions

    opts = ThresholdOptions(
        targets=tuple(thresholds.get("targets", (0.85, 0.9, 0.95, 0.99))),
        n_boot=int(thresholds.get("n_boot", 300)),
        min_verified=int(thresholds.get("min_verified", 10)),
        seed=int(seed),
    )
    summary = write_round_answers(
        str(Path(outputs["thresholds_csv"]).parent),
        [str(f) for f in labels],
        str(detector_predictions),
        str(sample_predictions),
        str(round_predictions),
        str(segments),
        str(sample),
        str(model),
        str(sidecar),
        str(per_species),
        str(test_set),
        str(test_labels),
        str(embeddings),
        read_label_set(label_set),
        threshold_options=opts,
        seed=int(seed),
    )
    print(summary)
    return summary


def round_plots(
    *,
    metrics: Paths,
    strata: str | Path,
    confusion: str | Path,
    species: str | Path,
    history: str | Path,
    learning_curve: str | Path,
    strata_heatmap: str | Path,
    confusion_pairs: str | Path,
    species_ap: str | Path,
    top_pairs: int = 10,
) -> pd.DataFrame:
    """Learning curve (rounds 00..RR), per-stratum heatmap, confusion pairs and per-species AP
    of round RR."""
    from activepam.core.io import write_csv
    from activepam.plots.rounds import plot_round_figures
    from activepam.rounds.rounds import history as round_history

    hist = round_history([str(f) for f in metrics])
    write_csv(hist, history, stage="plots")
    plot_round_figures(
        hist,
        json.loads(Path(strata).read_text()),
        pd.read_csv(confusion),
        learning_curve,
        strata_heatmap,
        confusion_pairs,
        int(top_pairs),
        species=pd.read_csv(species),
        species_out=species_ap,
    )
    return hist


def rounds_label_set(
    *,
    inventory: str | Path,
    predictions: str | Path,
    label_set: str | Path,
    species_filter: str = "auto",
    species_list: str = "",
    location_threshold: float = 0.03,
) -> list[str]:
    """The default label set without the demo and without ``rounds.label_set``: the species
    BirdNET's meta-model expects at the sites (each recording's lat/lon and week, threshold
    ``detect.location_threshold``; ``detect.species_filter: list``: that list), restricted to
    nothing else; recordings without a location add the species BirdNET detected in them
    (top-1 of predictions.parquet). Written as a CSV with a ``species`` column."""
    from activepam.core.io import write_csv

    species = default_label_set(
        inventory, predictions, species_filter, species_list, location_threshold
    )
    write_csv(pd.DataFrame({"species": species}), label_set, stage="rounds")
    log.info("label set: %d species -> %s", len(species), label_set)
    return species


def default_label_set(
    inventory: str | Path,
    predictions: str | Path,
    species_filter: str = "auto",
    species_list: str = "",
    location_threshold: float = 0.03,
) -> list[str]:
    """See :func:`rounds_label_set` (sorted BirdNET labels)."""
    import numpy as np

    from activepam.detection import birdnet as bn

    if species_filter == "list" and species_list:
        return sorted(set(bn.read_species_list(species_list)))
    labels = bn.load_labels()
    inv = pd.read_parquet(inventory)
    if "status" in inv.columns:
        inv = inv[inv["status"] == "ok"]
    keep: set[str] = set()
    unlocated: list[str] = []
    weeks: dict[tuple[float, float, int], None] = {}
    for row in inv.to_dict("records"):
        lat, lon = row.get("lat"), row.get("lon")
        if lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
            unlocated.append(str(row["recording_id"]))
            continue
        start = row.get("start_time")
        week = -1 if start is None or pd.isna(start) else bn.week_48(pd.Timestamp(start))
        weeks[(round(float(lat), 4), round(float(lon), 4), int(week))] = None
    for lat, lon, week in weeks:
        idx = bn.species_filter_indices(
            lat=lat, lon=lon, week=week, threshold=float(location_threshold)
        )
        keep.update(labels[int(i)] for i in idx)
    if unlocated or not keep:
        pred = pd.read_parquet(predictions, columns=["recording_id", "rank", "species"])
        pred = pred[pred["rank"] == 1]
        if keep:
            pred = pred[pred["recording_id"].astype(str).isin(unlocated)]
        keep.update(str(s) for s in pred["species"].dropna())
    if not keep:
        raise ValueError(
            f"{inventory}: no recording has a location and BirdNET detected "
            "nothing: set rounds.label_set to a species list"
        )
    return sorted(keep)


# --------------------------------------------------------------------------- params


def sample_params(config: Mapping[str, Any], round_id: str) -> dict[str, Any]:
    """``settings`` of rule round_sample: strategy spec, n and seed of round RR (frozen once
    exported, see :func:`activepam.rounds.freeze.round_settings`)."""
    from activepam.rounds.freeze import round_settings

    s = round_settings(config, round_id)
    return {k: s[k] for k in ("round", "strategy", "spec", "n", "seed")}


def testset_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` of rule rounds_test_set: size and seed (frozen once exported)."""
    from activepam.rounds.freeze import round_settings

    s = round_settings(config, "test")
    return {k: s[k] for k in ("round", "n", "seed")}


def export_params(config: Mapping[str, Any], round_id: str, label_set: str) -> dict[str, Any]:
    """``settings`` of rule round_export / rounds_export_test: everything frozen at export."""
    from activepam.rounds.freeze import round_settings

    return round_settings(config, round_id, label_set)
