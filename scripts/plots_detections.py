"""Snakemake adapter for ``rule plots_detections`` (see activepam.plots.detections)."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from activepam.plots.detections import plot_detection_figures  # noqa: E402


@contextlib.contextmanager
def logged(path: str) -> Iterator[None]:
    """Send logging and any traceback to the rule's log file."""
    with open(path, "w") as log_file:
        old_stderr, sys.stderr = sys.stderr, log_file
        logging.basicConfig(stream=log_file, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except Exception:
            logging.getLogger("snakemake.script").exception("failed")
            raise
        finally:
            sys.stderr = old_stderr


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Draw the detection figures from segments.parquet."""
    with logged(smk.log[0]):
        segments = pd.read_parquet(smk.input.segments)
        logging.getLogger("plots").info("%d segments from %s", len(segments), smk.input.segments)
        plot_detection_figures(segments, smk.output.site_hour, smk.output.rank_frequency,
                               smk.output.uncertainty,
                               min_confidence=float(smk.params.min_confidence),
                               top_species=int(smk.params.top_species))


main(snakemake)  # noqa: F821 - injected by Snakemake
