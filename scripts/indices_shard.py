"""Snakemake adapter for ``rule indices_shard`` (see activepam.detection.indices)."""


from activepam.core.logs import rule_log
from activepam.detection.indices import run_indices_shard



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Compute the indices of one inventory shard."""
    with rule_log(smk.log[0]):
        run_indices_shard(
            smk.input.inventory,
            smk.wildcards.shard,
            smk.output.indices,
            smk.output.quarantine,
            threads=int(smk.threads),
            window_s=float(smk.params.window_s),
            anthro_band=tuple(smk.params.anthro_band),
            bio_band=tuple(smk.params.bio_band),
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
