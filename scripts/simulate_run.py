"""Snakemake adapter for ``rule simulation_run``: one strategy x seed (activepam.simulation.simulate)."""

from activepam.core.logs import rule_log
from activepam.simulation.simulate import run_to_file


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Simulate one active-learning run with the oracle and write its tidy results."""
    with rule_log(smk.log[0], smk.threads):
        run_to_file(
            smk.input.dataset,
            smk.wildcards.strategy,
            int(smk.wildcards.seed),
            smk.params.simulation,
            smk.output.run,
            sampling_params=smk.params.sampling,
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
