"""Snakemake adapter for ``rule search_index`` (see activepam.search.engine.update_index)."""

import logging
from pathlib import Path

from activepam.core.logs import rule_log
from activepam.search.engine import update_index


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Build or incrementally update the usearch index of one shard's embeddings."""
    with rule_log(smk.log[0]):
        summary = update_index(Path(smk.input.embeddings), dtype=str(smk.params.dtype))
        logging.getLogger("activepam.search.engine").info("index %s", summary)


main(snakemake)  # noqa: F821 - injected by Snakemake
