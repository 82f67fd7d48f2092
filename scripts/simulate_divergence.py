"""Snakemake adapter for ``rule simulation_divergence`` (simulation.steps.divergence_step):
pool the synthetic divergence sweep, correlate the LOSO drop with divergence, draw the figures."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.core.logs import rule_log  # noqa: E402
from activepam.simulation.steps import divergence_step  # noqa: E402

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    divergence_step(list(smk.input.loso), list(smk.input.mi), dict(smk.output.items()))
