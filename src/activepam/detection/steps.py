"""File-level steps of the detection stage: one function per rule of workflow/rules/
{inventory,detect,indices,plots}.smk (the scripts/*.py adapters call them; so do the tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activepam.detection.inventory import InventoryResult, run_inventory
from activepam.detection.tables import DetectError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: the ``detect`` keys that change detection results: the params of ``rule detect_shard``
#: (threads and batch_size do not change the numbers, so they are not params)
DETECT_KEYS: tuple[str, ...] = (
    "overlap_s",
    "sensitivity",
    "top_k",
    "species_filter",
    "species_list",
    "location_threshold",
    "embedding_dtype",
)
#: outputs of ``rule detect_shard`` besides the store folder: ``<out_dir>/<name>.*``
SHARD_TABLES: tuple[str, ...] = ("segments", "predictions", "embeddings", "quarantine")


def inventory(
    raw_dir: PathLike,
    sites: PathLike | None,
    inventory: PathLike,
    quarantine: PathLike,
    *,
    extensions: Sequence[str],
    min_duration_s: float,
    timezone: str = "UTC",
    shard_size: int = 64,
    shard_hours: float = 0.0,
    threads: int = 2,
) -> InventoryResult:
    """``checkpoint inventory``: probe ``raw_dir``, write the inventory and quarantine tables."""
    return run_inventory(
        [raw_dir],
        sites,
        inventory,
        quarantine,
        extensions=list(extensions),
        min_duration_s=float(min_duration_s),
        shard_size=int(shard_size),
        shard_hours=float(shard_hours),
        tz=str(timezone),
        threads=int(threads),
    )


def shard_out_dir(outputs: Mapping[str, PathLike]) -> Path:
    """The folder of ``rule detect_shard``'s tables; each must be ``<folder>/<name>.*``."""
    out_dir = Path(outputs["segments"]).parent
    for name in SHARD_TABLES:
        path = Path(outputs[name])
        if path.parent != out_dir or not path.name.startswith(name):
            raise ValueError(f"output {name} must be {out_dir}/{name}.*, got {path}")
    return out_dir


def detect_shard(
    inventory: PathLike,
    shard: str,
    out_dir: PathLike,
    parts_dir: PathLike,
    *,
    overlap_s: float = 0.0,
    sensitivity: float = 1.0,
    top_k: int = 10,
    species_filter: str = "auto",
    species_list: str = "",
    location_threshold: float = 0.03,
    embedding_dtype: str = "float32",
    label_set: PathLike | None = None,
    batch_size: int = 32,
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """``rule detect_shard``: detection for the inventory rows of one ``shard``.

    Part files live in ``parts_dir`` (outside the rule's declared outputs) so recordings
    finished by a killed job survive and are skipped when the job is re-run. The shard's
    embedding-store files go to ``out_dir/store`` (``embedding_dtype``). The keywords up to
    ``embedding_dtype`` are the ``detect`` keys of :data:`DETECT_KEYS`; ``label_set`` is the
    project's label set file (``species_filter`` auto / label_set).
    """
    from activepam.detection.detect import detect_files
    from activepam.detection.params import species_filter_from_config

    inv = pd.read_parquet(inventory)
    if "shard" not in inv.columns:
        raise DetectError(f"{inventory}: inventory lacks the shard column")
    rows = inv[inv["shard"].astype(str) == str(shard)].reset_index(drop=True)
    log.info("shard %s: %d of %d inventory recordings", shard, len(rows), len(inv))
    cfg = {
        "species_filter": species_filter,
        "species_list": species_list,
        "location_threshold": location_threshold,
    }
    return detect_files(
        rows,
        out_dir,
        threads=int(threads),
        batch_size=int(batch_size),
        overlap_s=float(overlap_s),
        sensitivity=float(sensitivity),
        top_k=int(top_k),
        species_filter=species_filter_from_config(cfg, label_set),
        parts_dir=parts_dir,
        progress=progress,
        embedding_store=Path(out_dir) / "store",
        embedding_dtype=str(embedding_dtype),
        shard=shard,
    )


def gather_detections(
    segments: Sequence[PathLike],
    predictions: Sequence[PathLike],
    embeddings: Sequence[PathLike],
    quarantine: Sequence[PathLike],
    store: Sequence[PathLike],
    inventory_quarantine: PathLike,
    outputs: Mapping[str, PathLike],
) -> dict[str, int]:
    """``rule gather_detections``: concatenate the shard tables (quarantine = the inventory's +
    the shards') and hard-link the shards' store files into ``outputs["store"]``."""
    from activepam.core.store import link_store
    from activepam.detection.gather import merge_outputs

    inputs = {
        "segments": list(segments),
        "predictions": list(predictions),
        "embeddings": list(embeddings),
        "quarantine": [inventory_quarantine, *quarantine],
    }
    counts = merge_outputs(inputs, {k: outputs[k] for k in SHARD_TABLES})
    counts["store_files"] = link_store(list(store), outputs["store"])
    log.info("gathered %s", counts)
    return counts


def indices_shard(
    inventory: PathLike,
    shard: str,
    indices: PathLike,
    quarantine: PathLike,
    *,
    window_s: float,
    anthro_band: Iterable[float],
    bio_band: Iterable[float],
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``rule indices_shard``: acoustic indices of the recordings of one inventory shard."""
    from activepam.detection.indices import run_indices_shard

    return run_indices_shard(
        inventory,
        shard,
        indices,
        quarantine,
        threads=int(threads),
        window_s=float(window_s),
        anthro_band=tuple(anthro_band),
        bio_band=tuple(bio_band),
    )


def gather_indices(
    shards: Sequence[PathLike],
    quarantine: Sequence[PathLike],
    indices: PathLike,
    quarantine_out: PathLike,
) -> int:
    """``rule gather_indices``: concatenate the shard tables; returns the number of rows."""
    from activepam.detection import indices as ix

    n = ix.gather_indices(list(shards), list(quarantine), indices, quarantine_out)
    log.info("%d index rows -> %s", n, indices)
    return n


def plots_detections(
    segments: PathLike,
    site_hour: PathLike,
    rank_frequency: PathLike,
    uncertainty: PathLike,
    *,
    min_confidence: float = 0.1,
    top_species: int = 25,
) -> None:
    """``rule plots_detections``: the three detection figures from segments.parquet."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from activepam.plots.detections import plot_detection_figures

    table = pd.read_parquet(segments)
    log.info("%d segments from %s", len(table), segments)
    plot_detection_figures(
        table,
        site_hour,
        rank_frequency,
        uncertainty,
        min_confidence=float(min_confidence),
        top_species=int(top_species),
    )
