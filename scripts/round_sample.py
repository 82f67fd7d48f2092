"""Snakemake adapter for ``rule round_sample`` (see activepam.rounds.sample_round)."""

from activepam.logs import rule_log
from activepam.rounds import excluded_units, sample_round, strategy_for
def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Sample round RR from its score table, excluding labelled units and the test set."""
    with rule_log(smk.log[0]):
        r = smk.wildcards.r
        rounds = smk.params.rounds
        exclude = excluded_units(list(smk.input.labels), smk.input.test_set)
        sample_round(smk.input.scores, strategy_for(smk.params.config, r),
                     int(rounds["n_per_round"]), int(rounds["seed"]) + int(r),
                     smk.input.embeddings, exclude, smk.output[0], params=smk.params.config)


main(snakemake)  # noqa: F821 - injected by Snakemake
