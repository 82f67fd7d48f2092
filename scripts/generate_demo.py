"""Snakemake adapter for ``rule generate_demo`` (see activepam.demo.generate)."""

from pathlib import Path

from activepam.core.logs import rule_log
from activepam.demo.generate import generate_demo



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Write the demo dataset into the folder of the rule's outputs."""
    out_dirs = {Path(p).parent for p in smk.output}
    if len(out_dirs) != 1:
        raise ValueError(f"generate_demo: outputs must share one folder, got {sorted(out_dirs)}")
    with rule_log(smk.log[0]):
        generate_demo(out_dirs.pop(), dict(smk.params.demo), n_jobs=int(smk.threads))


main(snakemake)  # noqa: F821 - injected by Snakemake
