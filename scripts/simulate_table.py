"""Snakemake adapter for ``rule simulation_table``: the README strategy table
(activepam.simulation.analysis.strategy_table) from claims.json and the divergence sweep's summary.json,
written to results/simulation/strategy_table.md and printed to the log."""

import logging

from activepam.simulation.analysis import table_to_file
from activepam.core.logs import rule_log


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Write and log the strategy table with its claim sentences."""
    with rule_log(smk.log[0], smk.threads):
        text = table_to_file(smk.input.claims, smk.output.table, smk.input.divergence)
        logging.getLogger("simulate").info("strategy table:\n%s", text)


main(snakemake)  # noqa: F821 - injected by Snakemake
