"""Snakemake adapter for ``checkpoint inventory`` (see activepam.inventory)."""

import contextlib
import logging
import sys
from collections.abc import Iterator

from activepam.inventory import run_inventory


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
    """Probe data.raw_dir and write the inventory and quarantine tables."""
    with logged(smk.log[0]):
        run_inventory(
            [smk.params.raw_dir],
            smk.input.sites,
            smk.output.inventory,
            smk.output.quarantine,
            extensions=list(smk.params.extensions),
            min_duration_s=float(smk.params.min_duration_s),
            shard_size=int(smk.params.shard_size),
            tz=str(smk.params.timezone),
            threads=int(smk.threads),
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
