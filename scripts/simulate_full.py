"""Snakemake adapter for ``rule simulation_full`` (see activepam.simulate.full_to_file)."""

from activepam.simulate import full_to_file, log_to


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Metrics of the probe trained on the whole pool (the full-supervision reference)."""
    with log_to(smk.log[0], smk.threads):
        full_to_file(smk.input.dataset, smk.params.simulation, smk.output.full)


main(snakemake)  # noqa: F821 - injected by Snakemake
