"""Snakemake adapter for ``rule simulation_dataset`` (see activepam.simulate.prepare_dataset)."""

from activepam.simulate import log_to, prepare_dataset


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Build the simulation dataset (demo detections + ground truth, or a custom dataset)."""
    with log_to(smk.log[0], smk.threads):
        inputs = {k: str(v) for k, v in smk.input.items()}
        prepare_dataset(smk.params.simulation, inputs, smk.output.dataset)


main(snakemake)  # noqa: F821 - injected by Snakemake
