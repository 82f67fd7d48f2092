"""Snakemake adapter for ``rule simulation_stratified`` (the simulation dataset) and
``rule simulation_divergence_setting`` (one synthetic turnover x demo seed):
activepam.simulation.steps.stratified_step."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.core.logs import rule_log  # noqa: E402
from activepam.simulation.steps import stratified_step  # noqa: E402

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    if smk.params.source == "synthetic":
        stratified_step(
            smk.params.simulation,
            dict(smk.output.items()),
            demo=smk.params.demo,
            turnover=float(smk.wildcards.turnover),
            demo_seed=int(smk.wildcards.dseed),
        )
    else:
        stratified_step(smk.params.simulation, dict(smk.output.items()), dataset=smk.input.dataset)
