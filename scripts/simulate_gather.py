"""Snakemake adapter for ``rule simulation_gather`` (activepam.simulation.steps.gather_to_files)."""

from activepam.core.logs import rule_log
from activepam.simulation.steps import gather_to_files

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    gather_to_files(
        list(smk.input.runs), smk.input.full, smk.params.simulation, dict(smk.output.items())
    )
