"""Snakemake adapter for ``checkpoint inventory`` (see activepam.detection.inventory)."""


from activepam.core.logs import rule_log
from activepam.detection.inventory import run_inventory



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Probe data.raw_dir and write the inventory and quarantine tables."""
    with rule_log(smk.log[0]):
        run_inventory(
            [smk.params.raw_dir],
            smk.input.sites,
            smk.output.inventory,
            smk.output.quarantine,
            extensions=list(smk.params.extensions),
            min_duration_s=float(smk.params.min_duration_s),
            shard_size=int(smk.params.shard_size),
            shard_hours=float(smk.params.shard_hours),
            tz=str(smk.params.timezone),
            threads=int(smk.threads),
        )


main(snakemake)  # noqa: F821 - injected by Snakemake
