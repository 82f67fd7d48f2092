"""Snakemake adapter for ``rule gather_indices`` (see activepam.indices)."""

import contextlib
import logging
import sys
from collections.abc import Iterator

from activepam.indices import gather_indices


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
    """Concatenate the shard tables."""
    with logged(smk.log[0]):
        n = gather_indices(list(smk.input.shards), list(smk.input.quarantine),
                           smk.output.indices, smk.output.quarantine)
        logging.getLogger("gather_indices").info("%d index rows -> %s", n, smk.output.indices)


main(snakemake)  # noqa: F821 - injected by Snakemake
