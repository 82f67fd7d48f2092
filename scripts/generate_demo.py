"""Snakemake adapter for ``rule generate_demo`` (see activepam.generate)."""

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from activepam.generate import generate_demo


@contextlib.contextmanager
def logged(path: str) -> Iterator[None]:
    """Send logging, tqdm (stderr) and any traceback to the rule's log file."""
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
    """Write the demo dataset into the folder of the rule's outputs."""
    out_dirs = {Path(p).parent for p in smk.output}
    if len(out_dirs) != 1:
        raise ValueError(f"generate_demo: outputs must share one folder, got {sorted(out_dirs)}")
    with logged(smk.log[0]):
        generate_demo(out_dirs.pop(), dict(smk.params.demo), n_jobs=int(smk.threads))


main(snakemake)  # noqa: F821 - injected by Snakemake
