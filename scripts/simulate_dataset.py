"""Snakemake adapter for ``rule simulation_dataset`` (see activepam.simulation.simulate.prepare_dataset)."""

from activepam.core.logs import rule_log
from activepam.simulation.simulate import prepare_dataset


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Build the simulation dataset (demo detections + ground truth, or a custom dataset)."""
    with rule_log(smk.log[0], smk.threads):
        inputs = {k: str(v) for k, v in smk.input.items()}
        prepare_dataset(smk.params.simulation, inputs, smk.output.dataset)


main(snakemake)  # noqa: F821 - injected by Snakemake
