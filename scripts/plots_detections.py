"""Snakemake adapter for ``rule plots_detections`` (activepam.detection.steps)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import plots_detections

with rule_log(snakemake.log[0]):
    o = snakemake.output
    plots_detections(
        snakemake.input.segments,
        o.site_hour,
        o.rank_frequency,
        o.uncertainty,
        **dict(snakemake.params.items()),
    )
