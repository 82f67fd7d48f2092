"""File-level steps of the simulation: one function per rule of workflow/rules/simulate.smk
(scripts/simulate_*.py are adapters calling them; so do the tests).

rule -> step: simulation_dataset -> :func:`prepare_dataset`; simulation_full ->
:func:`full_to_file`; simulation_run -> :func:`run_to_file`; simulation_gather ->
:func:`gather_to_files`; simulation_figures -> :func:`figures_to_files`;
simulation_stratified / simulation_divergence_setting -> :func:`stratified_step`;
simulation_divergence -> :func:`divergence_step`; simulation_table -> :func:`table_step`.
Each takes only the keys of the ``simulation`` section its rule passes
(:data:`activepam.simulation.workflow.RULE_KEYS`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activepam.core.io import write_parquet
from activepam.simulation.claims import divergence_summary, read_runs, summarise
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import (
    SimDataset,
    SimulationError,
    custom_dataset,
    demo_dataset,
    read_dataset,
    write_dataset,
)
from activepam.simulation.loop import full_supervision, run_simulation
from activepam.simulation.strategies import resolve_strategy
from activepam.simulation.stratified import stratified_analysis

log = logging.getLogger(__name__)


def prepare_dataset(
    sim: Mapping[str, Any], inputs: Mapping[str, str], out: str | Path
) -> SimDataset:
    """Build the simulation dataset named by ``sim['dataset']`` and write it to ``out``.

    ``inputs``: for ``demo`` the keys segments, embeddings, ground_truth, events, species,
    inventory;
    for ``custom`` embeddings, labels, metadata.
    """
    kind = sim.get("dataset", "demo")
    if kind == "demo":
        ds = demo_dataset(
            inputs["segments"],
            inputs["embeddings"],
            inputs["ground_truth"],
            inputs.get("species"),
            inputs.get("inventory"),
            name="demo",
            events_path=inputs.get("events"),
        )
    elif kind == "custom":
        ds = custom_dataset(inputs["embeddings"], inputs["labels"], inputs["metadata"])
    else:
        raise SimulationError(f"simulation.dataset: unknown dataset {kind!r} (demo | custom)")
    log.info(
        "dataset %s: %d segments, %d recordings, %d species, %d-d embeddings, %d positive labels",
        ds.name,
        ds.n,
        ds.units["recording_id"].nunique(),
        len(ds.species),
        ds.X.shape[1],
        int(ds.Y.sum()),
    )
    write_dataset(ds, out)
    return ds


def run_to_file(
    dataset: str | Path,
    strategy: str,
    seed: int,
    sim: Mapping[str, Any],
    out: str | Path,
    sampling_params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One strategy x seed run on a dataset file; writes the tidy rows to ``out`` (Parquet)."""
    t0 = time.perf_counter()
    ds = read_dataset(dataset)
    cfg = SimConfig.from_params(sim)
    spec = resolve_strategy(strategy, sim.get("presets"), sampling_params)
    res = run_simulation(ds, spec, int(seed), cfg, progress=progress)
    write_parquet(res, out, stage="simulate")
    last = res[(res["stratum"] == "all") & (res["metric"] == sim.get("metric", "macro_ap"))].iloc[
        -1
    ]
    log.info(
        "%s seed %s: %d rounds, %d units, final %s %.4f, %.1f s",
        strategy,
        seed,
        int(last["round"]),
        int(last["n_units"]),
        sim.get("metric", "macro_ap"),
        float(last["value"]),
        time.perf_counter() - t0,
    )
    return res


def full_to_file(dataset: str | Path, sim: Mapping[str, Any], out: str | Path) -> pd.DataFrame:
    """Full-supervision metrics of a dataset file, written to ``out`` (Parquet)."""
    ds = read_dataset(dataset)
    full = full_supervision(ds, SimConfig.from_params(sim), seeds=sim.get("seeds") or [0])
    write_parquet(full, out, stage="simulate")
    return full


def gather_to_files(
    run_paths: Sequence[str], full_path: str, sim: Mapping[str, Any], out: Mapping[str, str]
) -> dict[str, Any]:
    """Gather the runs and write ``results`` (Parquet), ``results_csv``, ``per_run`` (CSV),
    ``summary`` (CSV) and ``claims`` (JSON); returns the claims."""
    from activepam.core.io import write_csv, write_json, write_parquet

    results = read_runs(run_paths)
    full = pd.read_parquet(full_path)
    per_run, summary, claims = summarise(results, full, sim)
    write_parquet(results, out["results"], stage="simulate")
    write_csv(results, out["results_csv"], stage="simulate")
    write_csv(per_run, out["per_run"], stage="simulate")
    write_csv(summary, out["summary"], stage="simulate")
    write_json(claims, out["claims"], stage="simulate")
    log.info("claim: %s", claims.get("claim"))
    return claims


def stratified_to_files(
    ds: SimDataset,
    sim: Mapping[str, Any],
    out: Mapping[str, str],
    setting: str = "default",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Stratified analysis of one dataset; writes ``loso``, ``mi`` and ``jsd`` (Parquet)."""
    from activepam.core.io import write_parquet

    st = dict(sim.get("stratified") or {})
    cfg = SimConfig.from_params(sim)
    tables = stratified_analysis(
        ds,
        cfg,
        st.get("loso_keys", ["site"]),
        st.get("mi_keys", ["site"]),
        int(st.get("folds", 2)),
        bool(st.get("size_matched", True)),
        seed=int(sim.get("split_seed", 0)),
        setting=setting,
        n_permutations=int(st.get("permutations", 20)),
        extra=extra,
    )
    for name in ("loso", "mi", "jsd"):
        write_parquet(tables[name], out[name], stage="simulate")
    return tables


def divergence_to_files(
    loso_paths: Sequence[str], mi_paths: Sequence[str], out: Mapping[str, str]
) -> dict[str, Any]:
    """Pool the sweep's LOSO / MI tables; write ``loso`` and ``mi`` (Parquet) and ``summary``
    (JSON with the correlations); returns the summary."""
    from activepam.core.io import write_json, write_parquet

    loso = pd.concat([pd.read_parquet(p) for p in loso_paths], ignore_index=True)
    mi = pd.concat([pd.read_parquet(p) for p in mi_paths], ignore_index=True)
    summary = divergence_summary(loso, mi)
    write_parquet(loso, out["loso"], stage="simulate")
    write_parquet(mi, out["mi"], stage="simulate")
    write_json(summary, out["summary"], stage="simulate")
    return summary


def figures_to_files(
    results: str,
    per_run: str,
    summary: str,
    claims: str,
    out: Mapping[str, str],
    strata: Sequence[str] | None = None,
) -> None:
    """Learning curves, AULC, labels-to-target and per-stratum figures of the gathered runs."""
    import json

    from activepam.simulation.figures import write_strategy_figures

    with open(claims) as fh:
        claims_dict = json.load(fh)
    write_strategy_figures(
        pd.read_parquet(results),
        pd.read_csv(per_run),
        pd.read_csv(summary),
        claims_dict,
        out,
        strata,
    )


def stratified_step(
    sim: Mapping[str, Any],
    out: Mapping[str, str],
    dataset: str | None = None,
    demo: Mapping[str, Any] | None = None,
    turnover: float | None = None,
    demo_seed: int | None = None,
) -> dict[str, pd.DataFrame]:
    """JSD, mutual information and leave-one-stratum-out of the simulation ``dataset`` file or,
    with ``demo`` + ``turnover`` + ``demo_seed``, of the synthetic dataset of one divergence
    setting; writes the tables and, when ``out`` names ``loso_fig``, the figures."""
    if dataset is None:
        from activepam.simulation.synthetic import EmbeddingSpec, synthetic_dataset

        if demo is None or turnover is None or demo_seed is None:
            raise SimulationError("stratified_step: give a dataset or demo, turnover, demo_seed")
        spec = EmbeddingSpec.from_params((sim.get("divergence") or {}).get("embedding"))
        ds = synthetic_dataset(demo, spec, turnover=float(turnover), seed=int(demo_seed))
        setting = f"turnover={float(turnover):g} seed={int(demo_seed)}"
        extra: dict[str, Any] | None = {"turnover": float(turnover), "demo_seed": int(demo_seed)}
    else:
        ds, setting, extra = read_dataset(dataset), "default", None
    tables = stratified_to_files(ds, sim, out, setting=setting, extra=extra)
    if "loso_fig" in out:
        from activepam.simulation.figures import write_stratified_figures

        keys = (sim.get("stratified") or {}).get("loso_keys", ["site"])
        write_stratified_figures(
            tables["loso"],
            tables["mi"],
            tables["jsd"],
            None,
            {"loso": out["loso_fig"], "mi": out["mi_fig"], "jsd": out["jsd_fig"]},
            jsd_key=keys[0],
        )
    return tables


def divergence_step(
    loso_paths: Sequence[str], mi_paths: Sequence[str], out: Mapping[str, str]
) -> dict[str, Any]:
    """:func:`divergence_to_files` of the sweep, then its LOSO and MI figures."""
    from activepam.simulation.figures import write_stratified_figures

    summary = divergence_to_files(loso_paths, mi_paths, out)
    write_stratified_figures(
        pd.read_parquet(out["loso"]),
        pd.read_parquet(out["mi"]),
        None,
        summary,
        {"loso": out["loso_fig"], "mi": out["mi_fig"]},
    )
    return summary


def table_step(claims: str, divergence: str | None, out: str) -> str:
    """The README strategy table (:func:`activepam.simulation.table.table_to_file`), logged."""
    from activepam.simulation.table import table_to_file

    text = table_to_file(claims, out, divergence)
    log.info("strategy table:\n%s", text)
    return text
