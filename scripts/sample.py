"""Snakemake adapter for ``rule sample`` (see activepam.sampling.engine.run_sampling)."""

import logging

from activepam.core.logs import rule_log
from activepam.sampling.engine import run_sampling



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Draw one sample with the resolved strategy of the ``strategy`` wildcard."""
    with rule_log(smk.log[0]):
        labelled = smk.input.get("labelled") or None
        result = run_sampling(smk.input.segments, smk.params.strategy,
                              embeddings=smk.input.embeddings, indices=smk.input.indices,
                              labelled=labelled, out=smk.output.sample)
        logging.getLogger("sample").info("%s: %d units -> %s", smk.wildcards.strategy,
                                         len(result), smk.output.sample)


main(snakemake)  # noqa: F821 - injected by Snakemake
