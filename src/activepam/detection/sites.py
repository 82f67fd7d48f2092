"""Device deployments from ``sites.csv`` (device_id, site, country, habitat, lat, lon,
deployment_start, deployment_end; an empty end means open-ended) and their resolution: a
recording gets the row of its device whose ``[start, end)`` contains its start time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

#: columns of ``sites.csv``
SITES_COLUMNS: tuple[str, ...] = (
    "device_id",
    "site",
    "country",
    "habitat",
    "lat",
    "lon",
    "deployment_start",
    "deployment_end",
)
#: the deployment's columns a recording gets
METADATA_COLUMNS: tuple[str, ...] = ("site", "country", "habitat", "lat", "lon")


class SitesError(ValueError):
    """``sites.csv`` is malformed; the message names the file and the line."""


def read_sites(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate ``sites.csv``; raise :class:`SitesError` naming file and line.

    Checks: required columns, non-empty device_id and site, ISO dates (naive = UTC), end after
    start, numeric lat/lon in range (empty = unknown), no overlapping deployments of one device.
    Returns one row per deployment with tz-aware UTC ``deployment_start``/``deployment_end``
    (``NaT`` = open-ended) and a ``line`` column (1-based line number in the file).
    """
    path = Path(path)
    if not path.is_file():
        raise SitesError(f"{path}: sites file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SitesError(f"{path}: not a readable CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in SITES_COLUMNS if c not in raw.columns]
    if missing:
        raise SitesError(
            f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(SITES_COLUMNS)})"
        )
    rows = []
    for i, rec in enumerate(raw.to_dict("records")):
        line = i + 2  # header is line 1
        rows.append(_parse_site_row(rec, f"{path}:{line}") | {"line": line})
    sites = pd.DataFrame(rows, columns=[*SITES_COLUMNS, "line"])
    sites["deployment_start"] = pd.to_datetime(sites["deployment_start"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    sites["deployment_end"] = pd.to_datetime(sites["deployment_end"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    sites["lat"] = sites["lat"].astype("float64")
    sites["lon"] = sites["lon"].astype("float64")
    _check_overlaps(sites, path)
    return sites


def _parse_site_row(rec: dict[str, str], where: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for col in ("device_id", "site"):
        out[col] = rec[col].strip()
        if not out[col]:
            raise SitesError(f"{where}: {col} is empty")
    for col in ("country", "habitat"):
        out[col] = rec[col].strip() or None
    for col, lim in (("lat", 90.0), ("lon", 180.0)):
        text = rec[col].strip()
        if not text:
            out[col] = np.nan
            continue
        try:
            value = float(text)
        except ValueError:
            raise SitesError(f"{where}: {col} {text!r} is not a number") from None
        if not -lim <= value <= lim:
            raise SitesError(f"{where}: {col} {value} is outside [-{lim:g}, {lim:g}]")
        out[col] = value
    start = _parse_date(rec["deployment_start"], "deployment_start", where)
    if start is None:
        raise SitesError(f"{where}: deployment_start is empty")
    end = _parse_date(rec["deployment_end"], "deployment_end", where)
    out["deployment_start"] = start
    out["deployment_end"] = end
    if end is not None and end <= start:
        raise SitesError(
            f"{where}: deployment_end {rec['deployment_end']!r} is not after "
            f"deployment_start {rec['deployment_start']!r}"
        )
    return out


def _parse_date(text: str, col: str, where: str) -> pd.Timestamp | None:
    text = text.strip()
    if not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise SitesError(f"{where}: {col} {text!r} is not an ISO date/time") from None
    if pd.isna(stamp):
        raise SitesError(f"{where}: {col} {text!r} is not an ISO date/time")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _check_overlaps(sites: pd.DataFrame, path: Path) -> None:
    far = pd.Timestamp.max.tz_localize("UTC")
    for device, grp in sites.sort_values("deployment_start").groupby("device_id", sort=False):
        prev = None
        for rec in grp.itertuples():
            if prev is not None:
                prev_end = far if pd.isna(prev.deployment_end) else prev.deployment_end
                if rec.deployment_start < prev_end:
                    raise SitesError(
                        f"{path}:{rec.line}: deployment of device {device!r} overlaps the one on "
                        f"line {prev.line} ({rec.deployment_start.isoformat()} < "
                        f"{'open end' if pd.isna(prev.deployment_end) else prev_end.isoformat()})"
                    )
            prev = rec


def resolve_deployments(recordings: pd.DataFrame, sites: pd.DataFrame | None) -> pd.DataFrame:
    """Add site, country, habitat, lat, lon to ``recordings`` (device_id, start_time).

    A recording takes the deployment of its device whose ``[start, end)`` contains its
    start time; with no such row (or no device/time) its metadata stay null.
    """
    out = recordings.copy()
    for col in METADATA_COLUMNS:
        out[col] = np.nan if col in ("lat", "lon") else None
    if sites is None or sites.empty or out.empty:
        return out
    known = out["device_id"].notna() & out["start_time"].notna()
    if not known.any():
        return out
    left = pd.DataFrame(
        {
            "_row": np.flatnonzero(known.to_numpy()),
            "device_id": out.loc[known, "device_id"].astype(str).to_numpy(),
            "start_time": pd.to_datetime(out.loc[known, "start_time"], utc=True)
            .astype("datetime64[us, UTC]")
            .reset_index(drop=True),
        }
    ).sort_values("start_time", kind="stable")
    right = sites[["device_id", "deployment_start", "deployment_end", *METADATA_COLUMNS]].copy()
    right["device_id"] = right["device_id"].astype(str)
    right = right.sort_values("deployment_start", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="start_time",
        right_on="deployment_start",
        by="device_id",
        direction="backward",
    )
    ok = merged["deployment_start"].notna() & (
        merged["deployment_end"].isna() | (merged["start_time"] < merged["deployment_end"])
    )
    merged = merged[ok]
    rows = merged["_row"].to_numpy()
    for col in METADATA_COLUMNS:
        values = out[col].to_numpy(
            dtype=object if col not in ("lat", "lon") else "float64", copy=True
        )
        values[rows] = merged[col].to_numpy()
        out[col] = values
    return out
