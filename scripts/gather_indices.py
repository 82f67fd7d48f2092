"""Snakemake adapter for ``rule gather_indices`` (see activepam.detection.indices)."""

import logging

from activepam.core.logs import rule_log
from activepam.detection.indices import gather_indices



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Concatenate the shard tables."""
    with rule_log(smk.log[0]):
        n = gather_indices(list(smk.input.shards), list(smk.input.quarantine),
                           smk.output.indices, smk.output.quarantine)
        logging.getLogger("gather_indices").info("%d index rows -> %s", n, smk.output.indices)


main(snakemake)  # noqa: F821 - injected by Snakemake
