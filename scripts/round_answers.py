"""Snakemake adapter for ``rule round_answers`` (see activepam.rounds.answers.write_round_answers)."""

from pathlib import Path

from activepam.rounds.annotations import read_label_set
from activepam.rounds.answers import write_round_answers
from activepam.core.logs import rule_log
from activepam.sampling.verification import ThresholdOptions


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Thresholds for a target precision, call density and the evaluation figures of round RR."""
    with rule_log(smk.log[0]):
        i = smk.input
        t = dict(smk.params.thresholds)
        opts = ThresholdOptions(targets=tuple(t.get("targets", (0.85, 0.9, 0.95, 0.99))),
                                n_boot=int(t.get("n_boot", 300)),
                                min_verified=int(t.get("min_verified", 10)),
                                seed=int(smk.params.seed))
        summary = write_round_answers(
            str(Path(smk.output.thresholds_csv).parent), list(i.labels), i.detector_predictions,
            i.sample_predictions, i.round_predictions, i.segments, i.sample, i.model,
            i.sidecar, i.per_species, i.test_set, i.test_labels, i.embeddings,
            read_label_set(i.label_set), threshold_options=opts, seed=int(smk.params.seed))
        print(summary)


main(snakemake)  # noqa: F821 - injected by Snakemake
