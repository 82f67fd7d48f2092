"""Snakemake adapter for ``rule simulation_dataset`` (simulation.steps.prepare_dataset)."""

from activepam.core.logs import rule_log
from activepam.simulation.steps import prepare_dataset

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    prepare_dataset(
        smk.params.simulation, {k: str(v) for k, v in smk.input.items()}, smk.output.dataset
    )
