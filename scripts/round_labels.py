"""Snakemake adapter for ``rule round_simulated_labels`` (demo only): the simulated annotator
fills the exported Raven tables from the generator's ground truth, then the same importer as
``activepam labels import`` writes the label file."""

from pathlib import Path

from activepam.core.logs import rule_log
from activepam.rounds.rounds import Oracle, simulate_and_import
def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Simulated expert + label import for one round (or the test set)."""
    with rule_log(smk.log[0]):
        name = smk.wildcards.name
        round_id = "test" if name == "test" else name.removeprefix("round_")
        oracle = Oracle.from_files(Path(smk.input.events).parent, smk.input.inventory)
        simulate_and_import(smk.input.annotation, smk.output.completed, smk.output.labels,
                            round_id, oracle, smk.input.label_set,
                            Path(smk.output.labels).parent,
                            unsure_rate=float(smk.params.unsure), seed=int(smk.params.seed))


main(snakemake)  # noqa: F821 - injected by Snakemake
