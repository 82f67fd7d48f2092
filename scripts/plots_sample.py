"""Snakemake adapter for ``rule plots_sample`` (see activepam.plots.sampling)."""

import logging
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.core.logs import rule_log
from activepam.plots.sampling import plot_sample_figures  # noqa: E402
from activepam.sampling.sample_io import read_labelled  # noqa: E402



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Composition, uncertainty and embedding-map figures of one sample."""
    with rule_log(smk.log[0]):
        labelled = read_labelled(smk.input.get("labelled") or None)
        paths = plot_sample_figures(smk.input.sample, smk.input.segments, smk.params.strategy,
                                    Path(smk.output.composition).parent,
                                    embeddings=smk.input.embeddings, indices=smk.input.indices,
                                    labelled=labelled, map_points=int(smk.params.map_points))
        logging.getLogger("plots").info("wrote %s", ", ".join(paths))


main(snakemake)  # noqa: F821 - injected by Snakemake
