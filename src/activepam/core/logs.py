"""Logging for Snakemake scripts: one helper shared by every ``scripts/*.py`` adapter."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def rule_log(path: str | Path | None, threads: int | None = None) -> Iterator[None]:
    """Send logging, tqdm (stderr) and any traceback of a rule's script to its log file.

    ``threads`` (Snakemake's) caps the BLAS/OpenMP thread pools: small matrix products are much
    slower with more threads than the job was given. ``path=None`` logs to stderr.
    """
    handle = open(path, "w") if path else None  # noqa: SIM115 - closed below
    old_stderr = sys.stderr
    limits: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=max(1, int(threads)))
    try:
        if handle is not None:
            sys.stderr = handle
            logging.basicConfig(stream=handle, level=logging.INFO, force=True, format=LOG_FORMAT)
        with limits:
            yield
    except Exception:
        logging.getLogger("snakemake.script").exception("failed")
        raise
    finally:
        sys.stderr = old_stderr
        if handle is not None:
            handle.close()
