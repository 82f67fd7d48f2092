"""Snakemake adapter for ``rule simulation_figures`` (simulation.steps.figures_to_files)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.core.logs import rule_log  # noqa: E402
from activepam.simulation.steps import figures_to_files  # noqa: E402

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    figures_to_files(
        smk.input.results,
        smk.input.per_run,
        smk.input.summary,
        smk.input.claims,
        dict(smk.output.items()),
        smk.params.simulation.get("strata"),
    )
