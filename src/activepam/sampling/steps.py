"""File-level steps of the sampling stage: one function per rule of workflow/rules/sample.smk
(scripts/sample.py and scripts/plots_sample.py call them; so do the tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from activepam.sampling.files import run_sampling
from activepam.sampling.segments import read_labelled

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def sample(
    segments: PathLike,
    embeddings: PathLike,
    indices: PathLike,
    out: PathLike,
    strategy: Mapping[str, Any],
    labelled: PathLike | None = None,
) -> pd.DataFrame:
    """``rule sample``: one sample of the resolved ``strategy`` written to ``out`` (CSV)."""
    result = run_sampling(
        segments,
        strategy,
        embeddings=embeddings,
        indices=indices,
        labelled=labelled or None,
        out=out,
    )
    log.info("%s: %d units -> %s", strategy["name"], len(result), out)
    return result


def plots_sample(
    sample_csv: PathLike,
    segments: PathLike,
    embeddings: PathLike,
    indices: PathLike,
    composition: PathLike,
    strategy: Mapping[str, Any],
    labelled: PathLike | None = None,
    map_points: int = 5000,
) -> list[str]:
    """``rule plots_sample``: composition, uncertainty and embedding-map figures of one sample,
    written beside ``composition`` (composition.png, uncertainty.png, embedding_map.png)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from activepam.sampling.figures import plot_sample_figures

    paths = plot_sample_figures(
        sample_csv,
        segments,
        strategy,
        Path(composition).parent,
        embeddings=embeddings,
        indices=indices,
        labelled=read_labelled(labelled or None),
        map_points=int(map_points),
    )
    log.info("wrote %s", ", ".join(paths))
    return paths
