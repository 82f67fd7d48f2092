"""Snakemake adapter for ``rule rounds_test_set`` (see activepam.core.evaluate.choose_test_set)."""

import pandas as pd

from activepam.core.logs import rule_log
from activepam.core.evaluate import choose_test_set
from activepam.core.io import write_csv


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Draw the held-out test segments once (seeded, stratified by site)."""
    with rule_log(smk.log[0]):
        segments = pd.read_parquet(smk.input.segments)
        test = choose_test_set(segments, int(smk.params.n), seed=int(smk.params.seed))
        write_csv(test, smk.output[0], stage="rounds")


main(snakemake)  # noqa: F821 - injected by Snakemake
