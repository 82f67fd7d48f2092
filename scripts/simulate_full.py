"""Snakemake adapter for ``rule simulation_full`` (see activepam.simulation.simulate.full_to_file)."""

from activepam.core.logs import rule_log
from activepam.simulation.simulate import full_to_file
def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Metrics of the probe trained on the whole pool (the full-supervision reference)."""
    with rule_log(smk.log[0], smk.threads):
        full_to_file(smk.input.dataset, smk.params.simulation, smk.output.full)


main(snakemake)  # noqa: F821 - injected by Snakemake
