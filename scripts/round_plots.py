"""Snakemake adapter for ``rule round_plots`` (see activepam.plots.rounds)."""

import json
from pathlib import Path

import pandas as pd

from activepam.core.logs import rule_log
from activepam.core.io import write_csv
from activepam.plots.rounds import plot_round_figures
from activepam.rounds.rounds import history


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Learning curve (rounds 00..RR), per-stratum heatmap, confusion pairs and per-species AP
    of round RR."""
    with rule_log(smk.log[0]):
        files = list(smk.input.metrics)
        hist = history(files)
        write_csv(hist, smk.output.history, stage="plots")
        strata = json.loads(Path(smk.input.strata).read_text())
        confusion = pd.read_csv(smk.input.confusion)
        o = smk.output
        plot_round_figures(hist, strata, confusion, o.learning_curve, o.strata_heatmap,
                           o.confusion_pairs, int(smk.params.top_pairs),
                           species=pd.read_csv(smk.input.species), species_out=o.species_ap)


main(snakemake)  # noqa: F821 - injected by Snakemake
