"""Snakemake adapter for ``rule gather_detections`` (see activepam.detect.merge_outputs)."""

import contextlib
import logging
import sys
from collections.abc import Iterator

from activepam.detect import merge_outputs


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
    """Concatenate the shard outputs; quarantine = inventory's + the shards'."""
    with logged(smk.log[0]):
        inputs = {
            "segments": list(smk.input.segments),
            "predictions": list(smk.input.predictions),
            "embeddings": list(smk.input.embeddings),
            "quarantine": [smk.input.inventory_quarantine, *smk.input.quarantine],
        }
        outputs = {k: smk.output[k] for k in ("segments", "predictions", "embeddings",
                                               "quarantine")}
        counts = merge_outputs(inputs, outputs)
        logging.getLogger("gather_detections").info("gathered %s", counts)


main(snakemake)  # noqa: F821 - injected by Snakemake
