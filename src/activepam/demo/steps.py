"""File-level step of the demo stage: the function of ``rule generate_demo``
(workflow/rules/demo.smk; scripts/generate_demo.py calls it, so do the tests)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from activepam.demo.generate import generate_demo as _generate


def generate_demo(
    outputs: Iterable[str | os.PathLike[str]],
    demo: Mapping[str, Any],
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """``rule generate_demo``: write the demo dataset into the one folder of ``outputs``.

    ``demo`` holds the ``demo:`` keys the generator reads
    (:data:`activepam.demo.params.DEMO_KEYS`; missing keys take their defaults).
    """
    out_dirs = {Path(p).parent for p in outputs}
    if len(out_dirs) != 1:
        raise ValueError(f"generate_demo: outputs must share one folder, got {sorted(out_dirs)}")
    return _generate(out_dirs.pop(), dict(demo), n_jobs=int(threads), progress=progress)
