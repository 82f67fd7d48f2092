"""Snakemake adapter for ``rule simulation_full`` (activepam.simulation.steps.full_to_file)."""

from activepam.core.logs import rule_log
from activepam.simulation.steps import full_to_file

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    full_to_file(smk.input.dataset, smk.params.simulation, smk.output.full)
