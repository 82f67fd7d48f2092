"""Snakemake adapter for ``rule plots_sample`` (see activepam.plots.sampling)."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.plots.sampling import plot_sample_figures  # noqa: E402
from activepam.sample_io import read_labelled  # noqa: E402


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
    """Composition, uncertainty and embedding-map figures of one sample."""
    with logged(smk.log[0]):
        labelled = read_labelled(smk.input.get("labelled") or None)
        paths = plot_sample_figures(smk.input.sample, smk.input.segments, smk.params.strategy,
                                    Path(smk.output.composition).parent,
                                    embeddings=smk.input.embeddings, indices=smk.input.indices,
                                    labelled=labelled, map_points=int(smk.params.map_points))
        logging.getLogger("plots").info("wrote %s", ", ".join(paths))


main(snakemake)  # noqa: F821 - injected by Snakemake
