"""File-level sampling: the columns a strategy reads, units from the segments Parquet, the
sample enriched with the chosen segments' columns and written (:func:`run_sampling`, used by
the CLI, the Snakemake rule and the benchmarks), and the inputs of the Snakemake sample rules."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from tqdm import tqdm

from activepam.core.strata import KEY_COLUMNS, TIME_KEYS
from activepam.sampling import scores as sc
from activepam.sampling.engine import OUTPUT_COLUMNS, sample
from activepam.sampling.segments import (
    BASE_COLUMNS,
    RECORDING_METADATA,
    PathLike,
    SampleInputError,
    attach_indices,
    check_embedding_ids,
    exclude_nonfinite,
    read_labelled,
    read_segments,
)
from activepam.sampling.sources import embedding_source
from activepam.sampling.strategies import EMBEDDING_METHODS, resolve_strategy

log = logging.getLogger(__name__)


def needed_columns(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(required, optional) segment columns a strategy reads."""
    required = list(BASE_COLUMNS)
    if spec["unit"] == "recording":
        required.remove("segment_id")
    elif spec["score"]["method"] != "index":
        required.remove("path")  # added to the chosen segments afterwards (_enrich)
    optional = list(RECORDING_METADATA) + [
        "top2_confidence",
        "margin",
        "max_binary_entropy",
        "mean_binary_entropy",
        "segment_time",
    ]
    if spec["score"]["method"] != "index":
        required += [c for c in sc.required_columns(spec["score"]) if c not in required]
    for key in spec["strata"]:
        required += [c for c in KEY_COLUMNS[key] if c not in required]
    if (
        TIME_KEYS.intersection(spec["strata"])
        or spec["pool"]["months"]
        or spec["pool"]["date_from"]
        or spec["pool"]["date_to"]
    ):
        optional += ["segment_time", "start_time"]
    if spec["score"]["method"] == "margin":
        required.remove("margin")
        optional += ["margin", "top2_confidence"]
    return required, list(dict.fromkeys(c for c in optional if c not in required))


def load_units(
    segments: PathLike, spec: Mapping[str, Any], indices: PathLike | None = None
) -> pd.DataFrame:
    """Segments with the columns ``spec`` needs (pool filters pushed down), indices attached."""
    required, optional = needed_columns(spec)
    units = read_segments(segments, required, spec["pool"], spec["unit"], optional)
    if spec["score"]["method"] == "index":
        if indices is None:
            raise SampleInputError(
                f"strategy {spec['name']!r} scores by index "
                f"{spec['score']['index']}: pass --indices"
            )
        units = attach_indices(units, indices, [spec["score"]["index"]])
    return exclude_nonfinite(units, sorted(sc.required_columns(spec["score"])), segments)


def _enrich(sample_df: pd.DataFrame, segments: PathLike) -> pd.DataFrame:
    """Add the remaining segment columns (metadata, uncertainty) of the chosen segments."""
    import pyarrow.dataset as ds

    if sample_df.empty or (sample_df["unit_type"] != "segment").any():
        return sample_df
    dataset = ds.dataset(str(segments), format="parquet")
    blank = {c for c in sample_df.columns if c != "unit_id" and sample_df[c].isna().all()}
    extra = [
        c
        for c in dataset.schema.names
        if c not in sample_df.columns or c in blank or c == "segment_id"
    ]
    if extra == ["segment_id"]:
        return sample_df
    sample_df = sample_df.drop(columns=[c for c in extra if c in blank])
    table = dataset.to_table(
        columns=extra, filter=ds.field("segment_id").isin(sample_df["unit_id"].tolist())
    )
    more = table.to_pandas().drop_duplicates("segment_id")
    merged = sample_df.merge(
        more, left_on="unit_id", right_on="segment_id", how="left", suffixes=("", "_dup")
    )
    if "segment_id_dup" in merged:
        merged = merged.drop(columns="segment_id_dup")
    first = [c for c in OUTPUT_COLUMNS if c in merged]
    rest = [c for c in merged.columns if c not in first and c != "strategy"]
    return merged[[*first, *rest, "strategy"]]


def run_sampling(
    segments: PathLike,
    strategy: str | Mapping[str, Any],
    n: int | None = None,
    seed: int | None = None,
    embeddings: PathLike | None = None,
    indices: PathLike | None = None,
    labelled: PathLike | Iterable[str] | None = None,
    out: PathLike | None = None,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    predictions: PathLike | None = None,
) -> pd.DataFrame:
    """File-level sampling (CLI, Snakemake, benchmark): read, :func:`sample`, enrich, write CSV.
    ``predictions`` (long top-k table) feeds ``design: verification``."""
    from activepam.core.io import write_csv

    spec = resolve_strategy(strategy, params)
    if isinstance(labelled, (str, os.PathLike)):
        labelled_ids = read_labelled(labelled)
    else:
        labelled_ids = [str(x) for x in (labelled or ())]
    clock = time.perf_counter()

    def step(what: str) -> None:
        nonlocal clock
        log.info("sample %s: %s in %.1f s", spec["name"], what, time.perf_counter() - clock)
        clock = time.perf_counter()
        bar.update()

    with tqdm(total=3, desc=f"sample {spec['name']}", disable=not progress, file=sys.stderr) as bar:
        units = load_units(segments, spec, indices)
        step(f"read {len(units)} segments")
        source: Any = embeddings  # a path, or the source built from it when it is needed
        if embeddings is not None and (
            spec["diversify"]["method"] in EMBEDDING_METHODS
            or spec["score"]["method"] == "similarity"
        ):
            source = embedding_source(embeddings, units)
            key = "segment_id" if spec["unit"] == "segment" else "recording_id"
            check_embedding_ids(source, units[key], key, segments)
        result = sample(
            units,
            spec,
            n=n,
            seed=seed,
            embeddings=source,
            labelled=labelled_ids,
            predictions=predictions,
        )
        del units
        step(f"selected {len(result)} units")
        result = _enrich(result, segments)
        if out is not None:
            write_csv(result, out, stage="sample")
        step("added metadata and wrote the sample")
    return result


def workflow_inputs(config: Mapping[str, Any], results: str = "results") -> dict[str, str]:
    """Inputs of the Snakemake sample rules: detections, embeddings, indices and, when
    ``sampling.labelled`` is set, the labelled-ids CSV."""
    inputs = {
        "segments": f"{results}/detect/segments.parquet",
        "embeddings": f"{results}/detect/embeddings.parquet",
        "indices": f"{results}/indices/indices.parquet",
    }
    labelled = (config.get("sampling") or {}).get("labelled", "")
    if labelled:
        inputs["labelled"] = str(labelled)
    return inputs
