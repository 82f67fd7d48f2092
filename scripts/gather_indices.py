"""Snakemake adapter for ``rule gather_indices`` (activepam.detection.steps.gather_indices)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import gather_indices

with rule_log(snakemake.log[0]):
    gather_indices(
        snakemake.input.shards,
        snakemake.input.quarantine,
        snakemake.output.indices,
        snakemake.output.quarantine,
    )
