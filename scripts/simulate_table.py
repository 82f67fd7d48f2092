"""Snakemake adapter for ``rule simulation_table`` (activepam.simulation.steps.table_step): the
README strategy table from claims.json and the divergence sweep's summary.json."""

from activepam.core.logs import rule_log
from activepam.simulation.steps import table_step

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    table_step(smk.input.claims, smk.input.divergence, smk.output.table)
