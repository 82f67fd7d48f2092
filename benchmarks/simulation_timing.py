"""Timing of the simulation mode on a demo-sized dataset (no audio, no BirdNET needed).

Draws the synthetic stand-in of the default demo (activepam.simulation.synthetic: 256 recordings x
20
segments, 1024-d embeddings like BirdNET's), then times one run (one strategy x one seed, as one
Snakemake job does) per strategy, the full-supervision reference and one stratified analysis
(one divergence-sweep job). Extrapolates the wall time of the default and the full
(params/simulation_full.yaml) simulation on ``--cores`` cores.

    .venv/bin/python benchmarks/simulation_timing.py [--strategies a,b] [--cores 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from threadpoolctl import threadpool_limits

from activepam.simulation.config import SimConfig
from activepam.simulation.loop import full_supervision, run_simulation
from activepam.simulation.probe import features
from activepam.simulation.strategies import resolve_strategy
from activepam.simulation.stratified import stratified_analysis
from activepam.simulation.synthetic import EmbeddingSpec, synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", help="comma-separated (default: params/simulation_full.yaml)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--dim", type=int, default=1024, help="embedding dimensions (BirdNET: 1024)")
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    full_overlay = yaml.safe_load((ROOT / "params" / "simulation_full.yaml").read_text())[
        "simulation"
    ]
    sim = params["simulation"]
    names = args.strategies.split(",") if args.strategies else full_overlay["strategies"]
    with threadpool_limits(1):
        t0 = time.perf_counter()
        ds = synthetic_dataset(params["demo"], EmbeddingSpec(dim=args.dim))
        t_gen = time.perf_counter() - t0
        cfg = SimConfig.from_params(sim)
        t0 = time.perf_counter()
        Z = features(ds.X, cfg.pca_dims)
        full_supervision(ds, cfg, Z)
        t_full = time.perf_counter() - t0
        print(
            f"dataset: {ds.n} segments, {ds.X.shape[1]}-d, {ds.Y.shape[1]} species "
            f"({t_gen:.1f} s); features + full supervision {t_full:.1f} s"
        )
        per = {}
        for name in names:
            spec = resolve_strategy(name, sim.get("presets"), params)
            t0 = time.perf_counter()
            run_simulation(ds, spec, 0, cfg, Z=Z)
            per[name] = time.perf_counter() - t0 + t_full / 2  # + reading/PCA in a job
            print(f"  run {name:28s} {per[name]:6.1f} s")
        t0 = time.perf_counter()
        st = sim.get("stratified", {})
        small = synthetic_dataset(
            params["demo"],
            EmbeddingSpec.from_params(sim.get("divergence", {}).get("embedding")),
            turnover=1.0,
        )
        stratified_analysis(
            small,
            SimConfig.from_params({**sim, "pca_dims": 0}),
            st.get("loso_keys", ["site"]),
            st.get("mi_keys", ["site"]),
        )
        t_strat = time.perf_counter() - t0
        print(f"  one divergence-sweep job (synthetic, {small.X.shape[1]}-d): {t_strat:.1f} s")
    for label, section in (("default", sim), ("full", {**sim, **full_overlay})):
        strategies = [s for s in section["strategies"] if s in per]
        missing = [s for s in section["strategies"] if s not in per]
        runs = sum(per[s] for s in strategies) * len(section["seeds"])
        div = section.get("divergence", sim["divergence"])
        sweep = len(div["turnovers"]) * len(div["seeds"]) * t_strat
        total = (runs + sweep) / args.cores + t_full + t_strat
        note = f" (not timed: {missing})" if missing else ""
        print(
            f"{label}: {len(strategies)} strategies x {len(section['seeds'])} seeds = "
            f"{runs:.0f} s of runs, sweep {sweep:.0f} s -> ~{total / 60:.1f} min on "
            f"{args.cores} cores{note}"
        )


if __name__ == "__main__":
    main()
