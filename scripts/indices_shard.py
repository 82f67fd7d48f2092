"""Snakemake adapter for ``rule indices_shard`` (activepam.detection.steps.indices_shard)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import indices_shard

with rule_log(snakemake.log[0]):
    indices_shard(
        snakemake.input.inventory,
        snakemake.wildcards.shard,
        snakemake.output.indices,
        snakemake.output.quarantine,
        **dict(snakemake.params.items()),
        threads=snakemake.threads,
    )
