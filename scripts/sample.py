"""Snakemake adapter for ``rule sample`` (see activepam.sampling.run_sampling)."""

import contextlib
import logging
import sys
from collections.abc import Iterator

from activepam.sampling import run_sampling


@contextlib.contextmanager
def logged(path: str) -> Iterator[None]:
    """Send logging, progress bars and any traceback to the rule's log file."""
    with open(path, "w") as log_file:
        old_stderr, sys.stderr = sys.stderr, log_file
        logging.basicConfig(stream=log_file, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except Exception:
            logging.getLogger("snakemake.script").exception("failed")
            raise
        finally:
            sys.stderr = old_stderr


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Draw one sample with the resolved strategy of the ``strategy`` wildcard."""
    with logged(smk.log[0]):
        labelled = smk.input.get("labelled") or None
        result = run_sampling(smk.input.segments, smk.params.strategy,
                              embeddings=smk.input.embeddings, indices=smk.input.indices,
                              labelled=labelled, out=smk.output.sample)
        logging.getLogger("sample").info("%s: %d units -> %s", smk.wildcards.strategy,
                                         len(result), smk.output.sample)


main(snakemake)  # noqa: F821 - injected by Snakemake
