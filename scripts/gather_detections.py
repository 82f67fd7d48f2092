"""Snakemake adapter for ``rule gather_detections`` (activepam.detection.steps)."""

from activepam.core.logs import rule_log
from activepam.detection.steps import gather_detections

with rule_log(snakemake.log[0]):
    i = snakemake.input
    gather_detections(
        i.segments,
        i.predictions,
        i.embeddings,
        i.quarantine,
        i.store,
        i.inventory_quarantine,
        snakemake.output,
    )
