"""Snakemake adapter for ``rule simulation_gather`` (see activepam.simulation.analysis.gather_to_files)."""

import logging

from activepam.core.logs import rule_log
from activepam.simulation.analysis import gather_to_files


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Gather the strategy x seed runs into the results table, summaries and claims."""
    with rule_log(smk.log[0], smk.threads):
        claims = gather_to_files(
            list(smk.input.runs), smk.input.full, smk.params.simulation, dict(smk.output.items())
        )
        logging.getLogger("simulate").info("claim: %s", claims.get("claim"))


main(snakemake)  # noqa: F821 - injected by Snakemake
