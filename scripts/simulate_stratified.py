"""Snakemake adapter for ``rule simulation_stratified`` (the demo's dataset) and
``rule simulation_divergence_setting`` (a synthetic dataset of one turnover x demo seed)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from activepam.core.logs import rule_log
from activepam.simulation.analysis import stratified_to_files  # noqa: E402
from activepam.plots.simulation import write_stratified_figures  # noqa: E402
from activepam.simulation.simulate import read_dataset  # noqa: E402


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """JSD, mutual information and leave-one-stratum-out of one dataset (+ figures)."""
    sim = smk.params.simulation
    with rule_log(smk.log[0], smk.threads):
        if smk.params.source == "synthetic":
            from activepam.simulation.synthetic import EmbeddingSpec, synthetic_dataset

            turnover, seed = float(smk.wildcards.turnover), int(smk.wildcards.dseed)
            spec = EmbeddingSpec.from_params((sim.get("divergence") or {}).get("embedding"))
            ds = synthetic_dataset(smk.params.demo, spec, turnover=turnover, seed=seed)
            setting = f"turnover={turnover:g} seed={seed}"
            extra = {"turnover": turnover, "demo_seed": seed}
        else:
            ds = read_dataset(smk.input.dataset)
            setting, extra = "default", None
        tables = stratified_to_files(
            ds, sim, dict(smk.output.items()), setting=setting, extra=extra
        )
        if "loso_fig" in smk.output.keys():
            keys = (sim.get("stratified") or {}).get("loso_keys", ["site"])
            write_stratified_figures(
                tables["loso"],
                tables["mi"],
                tables["jsd"],
                None,
                {"loso": smk.output.loso_fig, "mi": smk.output.mi_fig, "jsd": smk.output.jsd_fig},
                jsd_key=keys[0],
            )


main(snakemake)  # noqa: F821 - injected by Snakemake
