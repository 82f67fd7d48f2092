"""Snakemake adapter for ``rule plots_detections`` (see activepam.plots.detections)."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from activepam.core.logs import rule_log
from activepam.plots.detections import plot_detection_figures  # noqa: E402



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Draw the detection figures from segments.parquet."""
    with rule_log(smk.log[0]):
        segments = pd.read_parquet(smk.input.segments)
        logging.getLogger("plots").info("%d segments from %s", len(segments), smk.input.segments)
        plot_detection_figures(segments, smk.output.site_hour, smk.output.rank_frequency,
                               smk.output.uncertainty,
                               min_confidence=float(smk.params.min_confidence),
                               top_species=int(smk.params.top_species))


main(snakemake)  # noqa: F821 - injected by Snakemake
