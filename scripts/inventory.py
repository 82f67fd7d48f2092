"""Snakemake adapter for ``checkpoint inventory`` (activepam.detection.steps.inventory)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import inventory

with rule_log(snakemake.log[0]):
    inventory(
        snakemake.params.raw_dir,
        snakemake.input.sites,
        snakemake.output.inventory,
        snakemake.output.quarantine,
        extensions=snakemake.params.extensions,
        min_duration_s=snakemake.params.min_duration_s,
        timezone=snakemake.params.timezone,
        shard_size=snakemake.params.shard_size,
        shard_hours=snakemake.params.shard_hours,
        threads=snakemake.threads,
    )
