"""Ground truth and tables of the demo: species present per 3 s segment from the call events
(the presence rule of :mod:`activepam.core.presence`), and sites.csv / species.csv."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.presence import (
    EPS,
    MIN_CALL_FRACTION,
    MIN_OVERLAP_S,
    MIN_SEGMENT_S,
    call_overlap,
    required_overlap,
    too_short,
)
from activepam.demo.catalogue import Deployment, Species
from activepam.demo.layout import iso_utc
from activepam.demo.synth import synth_call

SEGMENT_S = 3.0


def segment_starts(
    duration_s: float, segment_s: float = SEGMENT_S, min_len_s: float = MIN_SEGMENT_S
) -> np.ndarray:
    """Starts of the analysed segments: 0, 3, 6, ... (a trailing piece < 1.5 s is dropped)."""
    starts = np.arange(0.0, duration_s, segment_s)
    return starts[(duration_s - starts) >= min(min_len_s, duration_s) - 1e-9]


EVENT_COLUMNS = {
    "rel_path": "str",
    "species": "str",
    "onset_s": "float64",
    "offset_s": "float64",
    "low_hz": "float64",
    "high_hz": "float64",
    "call_type": "str",
    "level_db": "float64",
    "snr_db": "float64",
    "distance_m": "float64",
}
TRUTH_COLUMNS = {
    "rel_path": "str",
    "start_s": "float64",
    "end_s": "float64",
    "species": "str",
    "n_calls": "int64",
    "overlap_s": "float64",
    "snr_db": "float64",
    "level_db": "float64",
}


def segment_truth(
    events: pd.DataFrame,
    durations: Mapping[str, float],
    segment_s: float = SEGMENT_S,
    min_overlap_s: float = MIN_OVERLAP_S,
    min_fraction: float = MIN_CALL_FRACTION,
) -> pd.DataFrame:
    """Species present per (recording, segment) from call events.

    A call makes its species present in a segment when the overlap is at least
    ``min(min_overlap_s, min_fraction * call duration)``. Rows: rel_path, start_s, end_s,
    species, n_calls (calls counted present), overlap_s (largest), snr_db and level_db (of the
    loudest present call); sorted by rel_path, start_s, species.
    """
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in TRUTH_COLUMNS.items()})
    if events.empty:
        return empty
    ev = events.reset_index(drop=True)
    dur = ev["rel_path"].map(durations)
    if dur.isna().any():
        missing = ev.loc[dur.isna(), "rel_path"].iloc[0]
        raise KeyError(f"segment_truth: no duration for {missing!r}")
    first = np.floor(ev["onset_s"].to_numpy() / segment_s).astype(int)
    last = np.ceil(ev["offset_s"].to_numpy() / segment_s).astype(int) - 1
    counts = np.maximum(last - first + 1, 0)
    idx = np.repeat(np.arange(len(ev)), counts)
    seg = first[idx] + (np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts))
    start = seg * segment_s
    end = np.minimum(start + segment_s, dur.to_numpy()[idx])
    on, off = ev["onset_s"].to_numpy()[idx], ev["offset_s"].to_numpy()[idx]
    overlap = call_overlap(on, off, start, end)
    need = required_overlap(on, off, min_overlap_s, min_fraction)
    d = dur.to_numpy()[idx]
    analysed = (start >= 0) & (start < d) & ~too_short(d - start, d)
    keep = (overlap >= need - EPS) & analysed
    if not keep.any():
        return empty
    rows = pd.DataFrame(
        {
            "rel_path": ev["rel_path"].to_numpy()[idx][keep],
            "start_s": start[keep],
            "end_s": end[keep],
            "species": ev["species"].to_numpy()[idx][keep],
            "overlap_s": overlap[keep],
            "snr_db": ev["snr_db"].to_numpy()[idx][keep] if "snr_db" in ev else np.nan,
            "level_db": ev["level_db"].to_numpy()[idx][keep] if "level_db" in ev else np.nan,
        }
    )
    out = (
        rows.groupby(["rel_path", "start_s", "end_s", "species"], sort=True)
        .agg(
            n_calls=("overlap_s", "size"),
            overlap_s=("overlap_s", "max"),
            snr_db=("snr_db", "max"),
            level_db=("level_db", "max"),
        )
        .reset_index()
    )
    out["overlap_s"] = out["overlap_s"].round(4)
    return out[list(TRUTH_COLUMNS)].astype(TRUTH_COLUMNS)


def sites_table(deployments: Sequence[Deployment]) -> pd.DataFrame:
    """``sites.csv``: one row per deployment, ISO UTC times, empty end = still deployed."""
    rows = [
        {
            "device_id": d.device_id,
            "site": d.site.name,
            "country": d.site.country,
            "habitat": d.site.habitat,
            "lat": d.site.lat,
            "lon": d.site.lon,
            "deployment_start": iso_utc(d.start),
            "deployment_end": iso_utc(d.end),
            "config_id": d.config_id,
        }
        for d in deployments
    ]
    return pd.DataFrame(rows).sort_values(["device_id", "deployment_start"], ignore_index=True)


def species_table(species: Sequence[Species], sr: int) -> pd.DataFrame:
    """``species.csv``: the community, its ecology and call templates (by abundance rank).

    f_low, f_high and call_duration_s are those of the template's nominal (unjittered) call.
    """
    rows = []
    for s in species:
        x, low, high = synth_call(
            s.spec.call_type, s.shape, np.random.default_rng(0), sr, jitter=False
        )
        rows.append(
            {
                "species": s.label,
                "call_type": s.spec.call_type,
                "abundance_rank": s.abundance_rank,
                "abundance_weight": round(s.weight, 6),
                "f_low": round(low, 1),
                "f_high": round(high, 1),
                "call_duration_s": round(len(x) / sr, 3),
                "lat_optimum": s.lat_optimum,
                "diel_pattern": s.spec.diel,
                "season_pattern": s.spec.season,
                "habitat_preference": s.spec.habitat,
                "range": s.spec.range,
                "source_db": round(s.source_db, 2),
                "bout_length": round(s.bout_length, 3),
                "call_interval_s": round(s.call_interval_s, 3),
                "template": json.dumps(s.shape, sort_keys=True),
            }
        )
    return pd.DataFrame(rows).sort_values("abundance_rank", ignore_index=True)


def frame(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    return df.astype(dict(columns))
