"""Snakemake adapter for ``rule simulation_run`` (activepam.simulation.steps.run_to_file)."""

from activepam.core.logs import rule_log
from activepam.simulation.steps import run_to_file

smk = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(smk.log[0], smk.threads):
    run_to_file(
        smk.input.dataset,
        smk.wildcards.strategy,
        int(smk.wildcards.seed),
        smk.params.simulation,
        smk.output.run,
        sampling_params=smk.params.sampling,
    )
