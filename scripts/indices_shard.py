"""Snakemake adapter for ``rule indices_shard`` (see activepam.indices)."""

import contextlib
import logging
import sys
from collections.abc import Iterator

from activepam.indices import run_indices_shard


@contextlib.contextmanager
def logged(path: str) -> Iterator[None]:
    """Send logging, tqdm (stderr) and any traceback to the rule's log file."""
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
    """Compute the indices of one inventory shard."""
    with logged(smk.log[0]):
        run_indices_shard(
            smk.input.inventory,
            smk.wildcards.shard,
            smk.output.indices,
            smk.output.quarantine,
            threads=int(smk.threads),
            window_s=float(smk.params.window_s),
            anthro_band=tuple(smk.params.anthro_band),
            bio_band=tuple(smk.params.bio_band),
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
