"""Snakemake adapter for ``rule simulation_figures`` (see activepam.plots.simulation)."""

import json
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from activepam.core.logs import rule_log
from activepam.plots.simulation import write_strategy_figures  # noqa: E402


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Learning curves, AULC, labels-to-target and per-stratum figures."""
    with rule_log(smk.log[0], smk.threads):
        with open(smk.input.claims) as fh:
            claims = json.load(fh)
        write_strategy_figures(
            pd.read_parquet(smk.input.results),
            pd.read_csv(smk.input.per_run),
            pd.read_csv(smk.input.summary),
            claims,
            dict(smk.output.items()),
            smk.params.simulation.get("strata"),
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
