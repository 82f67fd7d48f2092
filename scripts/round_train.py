"""Snakemake adapter for ``rule round_train`` (see activepam.rounds.train.train_round)."""

from activepam.core.logs import rule_log
from activepam.rounds.annotations import read_label_set
from activepam.rounds.train import TrainOptions, train_round


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Train on the labels of rounds 00..RR, save the model, re-score every segment."""
    with rule_log(smk.log[0]):
        t = dict(smk.params.train)
        opts = TrainOptions(C=float(t.get("C", 0.1)), max_iter=int(t.get("max_iter", 500)),
                            calibrate_min=int(t.get("calibrate_min", 10)),
                            cv_folds=int(t.get("cv_folds", 3)),
                            default_threshold=float(smk.params.default_threshold),
                            seed=int(t.get("seed", 0)))
        o = smk.output
        train_round(list(smk.input.labels), smk.input.segments, smk.input.embeddings,
                    smk.input.predictions, read_label_set(smk.input.label_set), o.model,
                    o.sidecar, o.scored, o.predictions, opts, int(smk.params.top_k),
                    round_label=f"round_{smk.wildcards.r}")


main(snakemake)  # noqa: F821 - injected by Snakemake
