"""File-level step of query by example: the function of ``rule search_index``
(workflow/rules/search.smk; scripts/search_index.py calls it, so do the tests)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from activepam.search.engine import update_index

log = logging.getLogger(__name__)


def search_index(embeddings: str | os.PathLike[str], *, dtype: str = "f16") -> dict[str, Any]:
    """``rule search_index``: build or incrementally update the usearch index of one shard's
    embeddings (index files beside them; the rule's declared output is a stamp)."""
    summary = update_index(Path(embeddings), dtype=str(dtype))
    log.info("index %s", summary)
    return summary
