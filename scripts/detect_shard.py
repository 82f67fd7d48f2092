"""Snakemake adapter for ``rule detect_shard`` (see activepam.detect.run_shard)."""

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from activepam.detect import run_shard


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
    """Run BirdNET on the recordings of one shard."""
    out_dir = Path(smk.output.segments).parent
    for name in ("segments", "predictions", "embeddings", "quarantine"):
        expected = out_dir / Path(smk.output[name]).name
        if Path(smk.output[name]) != expected or not expected.name.startswith(name):
            raise ValueError(f"output {name} must be {out_dir}/{name}.*, got {smk.output[name]}")
    with logged(smk.log[0]):
        run_shard(smk.input.inventory, smk.wildcards.shard, out_dir, smk.params.parts_dir,
                  dict(smk.params.detect), threads=int(smk.threads))


main(snakemake)  # noqa: F821 - injected by Snakemake
