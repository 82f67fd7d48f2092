"""Snakemake adapter for ``rule detect_shard`` (see activepam.detection.detect.run_shard)."""

from pathlib import Path

from activepam.core.logs import rule_log
from activepam.detection.detect import run_shard



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Run BirdNET on the recordings of one shard."""
    out_dir = Path(smk.output.segments).parent
    for name in ("segments", "predictions", "embeddings", "quarantine"):
        expected = out_dir / Path(smk.output[name]).name
        if Path(smk.output[name]) != expected or not expected.name.startswith(name):
            raise ValueError(f"output {name} must be {out_dir}/{name}.*, got {smk.output[name]}")
    with rule_log(smk.log[0]):
        run_shard(smk.input.inventory, smk.wildcards.shard, out_dir, smk.params.parts_dir,
                  dict(smk.params.detect), threads=int(smk.threads),
                  label_set=smk.params.label_set)


main(snakemake)  # noqa: F821 - injected by Snakemake
