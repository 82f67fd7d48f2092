"""Snakemake adapter for ``rule round_sample`` (see activepam.rounds.rounds.sample_round)."""

from activepam.core.logs import rule_log
from activepam.rounds.rounds import (excluded_units, reoffer_unsure, sample_round, strategy_for,
                              unsure_units)
def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Sample round RR from its score table, excluding labelled units and the test set (with
    the strategy option reoffer_unsure, units answered only "unsure" stay in the pool)."""
    with rule_log(smk.log[0]):
        r = smk.wildcards.r
        rounds = smk.params.rounds
        strategy = strategy_for(smk.params.config, r)
        labels = list(smk.input.labels)
        again = reoffer_unsure(smk.params.config, strategy)
        exclude = excluded_units(labels, smk.input.test_set, reoffer_unsure=again)
        sample_round(smk.input.scores, strategy, int(rounds["n_per_round"]),
                     int(rounds["seed"]) + int(r), smk.input.embeddings, exclude, smk.output[0],
                     params=smk.params.config, reoffer=unsure_units(labels) if again else None,
                     predictions=smk.input.predictions)


main(snakemake)  # noqa: F821 - injected by Snakemake
