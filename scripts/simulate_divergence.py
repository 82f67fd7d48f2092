"""Snakemake adapter for ``rule simulation_divergence``: pool the synthetic divergence sweep,
correlate the leave-one-stratum-out drop with stratum divergence, draw the figures."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from activepam.core.logs import rule_log
from activepam.simulation.analysis import divergence_to_files  # noqa: E402
from activepam.plots.simulation import write_stratified_figures  # noqa: E402


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Gather the sweep and write the correlation summary and figures."""
    with rule_log(smk.log[0], smk.threads):
        out = {"loso": smk.output.loso, "mi": smk.output.mi, "summary": smk.output.summary}
        summary = divergence_to_files(list(smk.input.loso), list(smk.input.mi), out)
        write_stratified_figures(
            pd.read_parquet(smk.output.loso),
            pd.read_parquet(smk.output.mi),
            None,
            summary,
            {"loso": smk.output.loso_fig, "mi": smk.output.mi_fig},
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
