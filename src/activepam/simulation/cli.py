"""``activepam simulate``: argument parsing; the handler ends in one call of
:func:`simulate_command`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.io import write_csv, write_parquet
from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimulationError, custom_dataset, read_dataset
from activepam.simulation.loop import run_simulation
from activepam.simulation.probe import config_features
from activepam.simulation.strategies import resolve_strategy
from activepam.simulation.workflow import simulation_params


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam simulate``: active learning with an oracle on a labelled dataset."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate active learning with an oracle (strategy comparison)",
        description="Run strategies x seeds of pool-based active learning with an oracle on a "
        "fully labelled dataset and write the tidy results table. The dataset is a "
        "simulation dataset Parquet (results/simulation/dataset.parquet) or the three "
        "files --embeddings/--labels/--metadata.",
    )
    p.add_argument("--dataset", help="simulation dataset Parquet (written by the workflow)")
    p.add_argument("--embeddings", help="Parquet: unit_id (or segment_id) + embedding")
    p.add_argument("--labels", help="CSV/Parquet: unit_id, species, present (0/1)")
    p.add_argument(
        "--metadata", help="CSV/Parquet: unit_id, recording_id, start_s, end_s, strata columns"
    )
    p.add_argument(
        "--strategy",
        action="append",
        help="strategy name (repeatable; default: params simulation.strategies)",
    )
    p.add_argument("--seed", type=int, action="append", help="repeat seed (repeatable)")
    p.add_argument("--rounds", type=int, help="override simulation.rounds")
    p.add_argument("--params", default="params.yaml", help="parameter file (simulation section)")
    p.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="YAML",
        help="params overlay merged over --params (repeatable; e.g. params/protocols/*.yaml)",
    )
    p.add_argument(
        "--imported",
        metavar="DIR",
        help="a folder written by `activepam datasets import` (its embeddings, labels and "
        "metadata .parquet)",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print the BaseAL-style table per strategy (BaseAL AULC, our AULC over labels, "
        "final metric, positives labelled, sampling time; mean and sd over seeds)",
    )
    p.add_argument("--list", action="store_true", help="list the strategies and exit")
    p.add_argument("--out", help="tidy results Parquet (a .csv is written beside it)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    return simulate_command(
        params_path=args.params,
        overlays=args.overlay,
        dataset=args.dataset,
        imported=args.imported,
        embeddings=args.embeddings,
        labels=args.labels,
        metadata=args.metadata,
        strategies=args.strategy,
        seeds=args.seed,
        rounds=args.rounds,
        out=args.out,
        summary=args.summary,
        list_only=args.list,
    )


def simulate_command(
    *,
    params_path: str = "params.yaml",
    overlays: Sequence[str] = (),
    dataset: str | None = None,
    imported: str | None = None,
    embeddings: str | None = None,
    labels: str | None = None,
    metadata: str | None = None,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    rounds: int | None = None,
    out: str | None = None,
    summary: bool = False,
    list_only: bool = False,
) -> int:
    """``activepam simulate``: strategies x seeds on a dataset file, an imported folder or
    embeddings + labels + metadata; writes the tidy results (Parquet + CSV); exit code."""
    from activepam.core.config import ConfigError, load_params

    try:
        params = load_params(params_path)
        params = _overlaid(params, overlays)
    except ConfigError as exc:
        print(f"activepam simulate: {exc}", file=sys.stderr)
        return 2
    sim = simulation_params(params)
    if list_only:
        from activepam.sampling.strategies import list_strategies

        merged = {
            "sampling": {
                "strategies": {
                    **(params.get("sampling") or {}).get("strategies", {}),
                    **(sim.get("presets") or {}),
                }
            }
        }
        for name, desc in list_strategies(merged).items():
            print(f"{name:28s} {desc}")
        return 0
    if not out:
        print("activepam simulate: --out is required", file=sys.stderr)
        return 2
    if rounds is not None:
        sim["rounds"] = rounds
    try:
        if dataset:
            ds = read_dataset(dataset)
        elif imported:
            d = Path(imported)
            ds = custom_dataset(
                d / "embeddings.parquet", d / "labels.parquet", d / "metadata.parquet", name=d.name
            )
        elif embeddings and labels and metadata:
            ds = custom_dataset(embeddings, labels, metadata)
        else:
            print(
                "activepam simulate: give --dataset, --imported or --embeddings, --labels and "
                "--metadata",
                file=sys.stderr,
            )
            return 2
        cfg = SimConfig.from_params(sim)
        Z = config_features(ds.X, cfg)
        frames = []
        for name in strategies or sim.get("strategies", ["random"]):
            spec = resolve_strategy(name, sim.get("presets"), params)
            for seed in seeds or sim.get("seeds", [0]):
                t0 = time.perf_counter()
                frames.append(run_simulation(ds, spec, seed, cfg, Z=Z, progress=True))
                print(f"{name} seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    except SimulationError as exc:
        print(f"activepam simulate: {exc}", file=sys.stderr)
        return 2
    table = pd.concat(frames, ignore_index=True)
    write_parquet(table, out, stage="simulate")
    write_csv(table, Path(out).with_suffix(".csv"), stage="simulate")
    print(f"{len(table)} rows -> {out}")
    if summary:
        from activepam.simulation.summaries import protocol_summary

        print(format_protocol_summary(protocol_summary(table, sim.get("metric", "macro_ap"))))
    return 0


def format_protocol_summary(per_run: pd.DataFrame) -> str:
    """Mean (sd) over seeds per strategy of
    :func:`activepam.simulation.summaries.protocol_summary`."""
    cols = ["baseal_aulc", "aulc", "final", "n_positives", "sampling_s"]
    lines = [f"{'strategy':24s} {'runs':>4s} {'labels':>6s} " + " ".join(f"{c:>17s}" for c in cols)]
    for name, g in per_run.groupby("strategy", sort=False):
        cells = []
        for c in cols:
            v = g[c].to_numpy(dtype=np.float64)
            sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            cells.append(f"{v.mean():>9.3f} ({sd:5.3f})")
        lines.append(f"{name:24s} {len(g):4d} {int(g['n_labelled'].max()):6d} " + " ".join(cells))
    return "\n".join(lines)


def _overlaid(params: dict[str, Any], overlays: Sequence[str]) -> dict[str, Any]:
    """``params`` with every overlay YAML merged over it in order (nested mappings merged,
    lists and values replaced, as Snakemake's --configfile), then validated."""
    import yaml

    from activepam.core.config import ConfigError, validate_params
    from activepam.sampling.strategies import deep_merge

    for path in overlays:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: overlay not found")
        over = yaml.safe_load(p.read_text()) or {}
        if not isinstance(over, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
        params = deep_merge(params, over)
        validate_params(params, source=str(p))
    return params
