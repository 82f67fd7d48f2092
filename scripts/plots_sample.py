"""Snakemake adapter for ``rule plots_sample`` (activepam.sampling.steps.plots_sample)."""

from activepam.core.logs import rule_log
from activepam.sampling.steps import plots_sample

with rule_log(snakemake.log[0]):
    i = snakemake.input
    plots_sample(
        i.sample,
        i.segments,
        i.embeddings,
        i.indices,
        snakemake.output.composition,
        snakemake.params.strategy,
        labelled=i.get("labelled"),
        map_points=snakemake.params.map_points,
    )
