"""Snakemake adapter for ``rule detect_shard`` (activepam.detection.steps.detect_shard)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import detect_shard, shard_out_dir

with rule_log(snakemake.log[0]):
    # params: the result-changing detect keys + parts_dir + label_set; batch_size changes no
    # number, so it is read from the config (editing it reruns nothing)
    detect_shard(
        snakemake.input.inventory,
        snakemake.wildcards.shard,
        shard_out_dir(snakemake.output),
        **dict(snakemake.params.items()),
        batch_size=snakemake.config["detect"]["batch_size"],
        threads=snakemake.threads,
    )
