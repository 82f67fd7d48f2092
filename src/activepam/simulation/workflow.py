"""Workflow helpers of the simulation (read by workflow/rules/simulate.smk at parse time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activepam.core.config import schema_defaults
from activepam.simulation.dataset import SimulationError


def simulation_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``simulation`` section with ``context_s`` resolved: unset or null = ``rounds.context_s``
    (the context the rounds export on each side of a segment, so a simulated segment costs the
    listening time of the clip an expert would get)."""
    sim = dict(config.get("simulation") or {})
    if sim.get("context_s") is None:
        default = schema_defaults("rounds")["context_s"]
        sim["context_s"] = float((config.get("rounds") or {}).get("context_s", default))
    return sim


def workflow_dataset_inputs(config: Mapping[str, Any], results: str = "results") -> dict[str, str]:
    """Snakemake inputs of the simulation dataset: the demo run's detections + ground truth,
    or the custom dataset's embeddings, labels and metadata."""
    sim = config.get("simulation") or {}
    if sim.get("dataset", "demo") == "custom":
        missing = [k for k in ("embeddings", "labels", "metadata") if not sim.get(k)]
        if missing:
            raise SimulationError(f"simulation.{missing[0]}: a path is needed for dataset: custom")
        return {k: str(sim[k]) for k in ("embeddings", "labels", "metadata")}
    raw = config["data"]["raw_dir"]
    return {
        "segments": f"{results}/detect/segments.parquet",
        "embeddings": f"{results}/detect/embeddings.parquet",
        "inventory": f"{results}/inventory/inventory.parquet",
        "ground_truth": f"{raw}/ground_truth.parquet",
        "events": f"{raw}/events.parquet",
        "species": f"{raw}/species.csv",
    }


def workflow_targets(config: Mapping[str, Any], results: str = "results") -> list[str]:
    """Final outputs of the simulation for ``rule all`` (none when it cannot run: the demo
    dataset needs ``demo.enabled``)."""
    sim = config.get("simulation") or {}
    if not sim or (sim.get("dataset", "demo") == "demo" and not config["demo"].get("enabled")):
        return []
    d = f"{results}/simulation"
    return [
        f"{d}/results.parquet",
        f"{d}/claims.json",
        f"{d}/figures/learning_curves.png",
        f"{d}/figures/aulc.png",
        f"{d}/figures/labels_to_target.png",
        f"{d}/figures/per_stratum.png",
        f"{d}/figures/stratified_loso.png",
        f"{d}/figures/divergence_loso.png",
        f"{d}/divergence/summary.json",
        f"{d}/strategy_table.md",
    ]


#: the SimConfig keys of the simulation section (probe, split, budget, strata, ...)
CONFIG_KEYS: tuple[str, ...] = (
    "seed_size",
    "batch_size",
    "batch_growth",
    "rounds",
    "test_fraction",
    "split_seed",
    "context_s",
    "budget_unit",
    "vary_split",
    "data_fraction",
    "pca_dims",
    "whiten",
    "probe_C",
    "probe_max_iter",
    "threshold",
    "strata",
    "split_column",
    "segment_cost",
    "cold_start",
    "probe",
    "probe_hidden",
    "probe_epochs",
    "probe_batch",
    "probe_lr",
    "timing",
    "stratum_metrics",
)
#: the keys of the simulation section each rule of simulate.smk reads (its ``params``), so
#: changing a key reruns only the rules that use it
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset",),
    "full": (*CONFIG_KEYS, "seeds"),
    "run": (*CONFIG_KEYS, "presets", "metric"),
    "gather": (
        "metric",
        "budget_axis",
        "target_fraction",
        "mid_budget",
        "vary_split",
        "data_fraction",
        "context_s",
        "claim",
        "comparisons",
    ),
    "figures": ("strata",),
    "stratified": (*CONFIG_KEYS, "stratified"),
    "divergence_setting": (*CONFIG_KEYS, "stratified", "divergence.embedding"),
}


def rule_params(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """The keys of :func:`simulation_params` that ``rule`` reads (:data:`RULE_KEYS`; a dotted
    key keeps only that sub-key of a mapping), absent keys left out."""
    sim = simulation_params(config)
    out: dict[str, Any] = {}
    for key in RULE_KEYS[rule]:
        head, _, sub = key.partition(".")
        if head not in sim:
            continue
        if sub:
            inner = sim[head] or {}
            if sub in inner:
                out.setdefault(head, {})[sub] = inner[sub]
        else:
            out[head] = sim[head]
    return out
