"""Snakemake adapter for ``rule sample`` (activepam.sampling.steps.sample)."""

from activepam.core.logs import rule_log
from activepam.sampling.steps import sample

with rule_log(snakemake.log[0]):
    i = snakemake.input
    sample(
        i.segments,
        i.embeddings,
        i.indices,
        snakemake.output.sample,
        snakemake.params.strategy,
        labelled=i.get("labelled"),
    )
