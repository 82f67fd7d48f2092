"""Recording inventory: one row per audio file, with its deployment metadata.

Every audio file under the given folders (recursive, matching ``inventory.extensions``,
case-insensitive) is probed in a thread pool:

* header facts (sample rate, channels, frames, format) via :func:`activepam.core.io.audio_info`;
* a truthful readability check: the last block of the file is read back, and for WAV the
  ``data`` chunk size declared in the RIFF header is compared with the bytes on disk
  (libsndfile silently clamps a cut WAV to the data present), so a file whose data is shorter
  than its header says is quarantined as ``truncated``.

Files that are zero-length, unreadable (``permission denied: PATH``), empty (header only),
truncated or shorter than ``min_duration_s`` go to the quarantine table (path,
stage="inventory", reason); they never stop the run and are never silently dropped. Files are
found by :func:`discover_audio` (shared with ``activepam detect``): real paths, each file once,
symlink loops / dangling links / unsupported audio formats reported in the quarantine table.

Recording ids follow the rule in CONTRACTS.md (:class:`IdRegistry`): the name gives the base id,
the SHA-256 of the content keeps it stable across moves and copies, and the registry
``recording_ids.csv`` beside the inventory remembers who got which id, so adding files never
changes the id of a file that was already there. True duplicates (same content at two paths)
are quarantined naming the path they duplicate, and processed once.

The UTC start time and the device id come from the path (see :data:`FILENAME_PATTERNS`):

============================  ==========================================  ===============
pattern                       example                                     time zone
============================  ==========================================  ===============
``tabmon_iso``                ``2025-05-15T04_00_00.000Z.mp3`` (``:`` ok)  UTC (the ``Z``)
``audiomoth``                 ``20190522_050000.WAV``                      UTC
``prefix_date_time``          ``S4A03895_20190522_000000.wav``             ``timezone``
============================  ==========================================  ===============

The device id is the ``<id>`` of a TABMON folder ``bugg_RPiID-<id>`` anywhere in the relative
path, else the filename prefix (``S4A03895``). A file whose name matches no pattern is still
inventoried (status ``ok``) with a null ``start_time``; it then cannot be matched to a deployment
and its site metadata stay null (counted in the warnings).

Deployments come from ``sites.csv`` (device_id, site, country, habitat, lat, lon,
deployment_start, deployment_end; an empty end means open-ended). Devices move between sites, so
a recording gets the row of its device whose ``[start, end)`` contains its start time; no match
leaves the metadata null and is counted as a warning, not quarantined.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from activepam.core.io import AUDIO_EXTENSIONS, write_csv, write_parquet
from activepam.detection.filenames import (
    REGISTRY_NAME,
    IdRegistry,
    base_recording_id,
    device_from_path,
    duplicate_reason,
    file_keys,
    parse_filename,
    time_zone,
)
from activepam.detection.probe import STAGE, FoundFile, Probe, discover_audio, probe_audio
from activepam.detection.sites import read_sites, resolve_deployments

log = logging.getLogger(__name__)

INVENTORY_SCHEMA = pa.schema(
    [
        ("recording_id", pa.string()),
        ("path", pa.string()),
        ("rel_path", pa.string()),
        ("device_id", pa.string()),
        ("site", pa.string()),
        ("country", pa.string()),
        ("habitat", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int64()),
        ("channels", pa.int64()),
        ("format", pa.string()),
        ("status", pa.string()),
        ("shard", pa.string()),
    ]
)
INVENTORY_COLUMNS: tuple[str, ...] = tuple(INVENTORY_SCHEMA.names)
QUARANTINE_COLUMNS: tuple[str, ...] = ("path", "stage", "reason")


@dataclass
class InventoryResult:
    """Inventory table, quarantine table and warning counts of one run."""

    inventory: pd.DataFrame
    quarantine: pd.DataFrame
    warnings: dict[str, int] = field(default_factory=dict)


def assign_shards(
    n: int, shard_size: int, durations_s: Sequence[float] | None = None, shard_hours: float = 0.0
) -> list[str]:
    """Shard ids ``0000``, ``0001``, ... for ``n`` consecutive recordings.

    Without ``shard_hours`` (0): ``shard_size`` recordings each. With ``shard_hours`` > 0 and
    the recordings' ``durations_s``: consecutive recordings are packed until the next one would
    take the shard past ``shard_hours`` of audio (a longer recording gets a shard of its own),
    and never more than ``shard_size`` recordings per shard; so a SLURM job's run time follows
    its audio hours, not its file count. Missing durations count as 0."""
    if shard_size < 1:
        raise ValueError(f"detect.shard_size must be >= 1, got {shard_size}")
    if not shard_hours or shard_hours <= 0:
        if shard_hours and shard_hours < 0:
            raise ValueError(f"detect.shard_hours must be >= 0, got {shard_hours}")
        return [f"{i // shard_size:04d}" for i in range(n)]
    if durations_s is None or len(durations_s) != n:
        raise ValueError("detect.shard_hours needs one duration per recording")
    limit = float(shard_hours) * 3600.0
    out, shard, hours, count = [], 0, 0.0, 0
    for d in durations_s:
        d = float(d) if d is not None and np.isfinite(float(d)) else 0.0
        if count and (count >= shard_size or hours + d > limit):
            shard, hours, count = shard + 1, 0.0, 0
        out.append(f"{shard:04d}")
        hours += d
        count += 1
    return out


def build_inventory(
    roots: Sequence[str | os.PathLike[str]],
    sites: pd.DataFrame | None = None,
    *,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    min_duration_s: float = 0.0,
    shard_size: int = 64,
    threads: int = 4,
    tz: str = "UTC",
    progress: bool = True,
    registry: IdRegistry | None = None,
    shard_hours: float = 0.0,
) -> InventoryResult:
    """Probe every audio file under ``roots`` and build the inventory and quarantine tables.

    Files come from :func:`discover_audio` (its reports go to the quarantine table). Files that
    probe well are hashed (SHA-256; hashes in ``registry`` are reused for files whose size and
    mtime are unchanged) and get their recording_id from ``registry`` (:meth:`IdRegistry.assign`;
    a fresh registry when None); true duplicates are quarantined with the path they duplicate.
    ``registry`` is updated in place: save it to keep the ids of the next run stable.
    """
    time_zone(tz)  # fail early on a bad time zone
    registry = IdRegistry() if registry is None else registry
    found = discover_audio(roots, extensions)
    files = found.files
    paths = [f.path for f in files]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(
            tqdm(
                pool.map(probe_audio, paths, [min_duration_s] * len(paths)),
                total=len(paths),
                desc="inventory",
                unit="file",
                disable=not progress,
            )
        )
    quarantined = list(found.skipped)
    good: list[tuple[FoundFile, Probe]] = []
    for f, probe in zip(files, probes):
        if probe.reason:
            quarantined.append({"path": f.path, "stage": STAGE, "reason": probe.reason})
        else:
            good.append((f, probe))
    keys, errors = file_keys([f.path for f, _ in good], registry, threads)
    quarantined += [{"path": p, "stage": STAGE, "reason": r} for p, r in errors.items()]
    good = [(f, pr) for f, pr in good if f.path in keys]
    names = {f.path: parse_filename(Path(f.rel_path).stem, tz) for f, _ in good}
    devices = {f.path: device_from_path(f.rel_path, tz) for f, _ in good}
    ids, duplicates = registry.assign(
        [
            (
                f.path,
                base_recording_id(devices[f.path], names[f.path].start_time, f.rel_path),
                keys[f.path],
                bool(devices[f.path]) and names[f.path].start_time is not None,
            )
            for f, _ in good
        ]
    )
    for path, same_as in duplicates:
        quarantined.append(
            {"path": path, "stage": STAGE, "reason": duplicate_reason(same_as, ids[same_as])}
        )
    rows = []
    for f, probe in good:
        if f.path not in ids:
            continue
        assert probe.info is not None
        rows.append(
            {
                "recording_id": ids[f.path],
                "path": f.path,
                "rel_path": f.rel_path,
                "device_id": devices[f.path],
                "start_time": names[f.path].start_time,
                "duration_s": probe.info.duration_s,
                "sample_rate": probe.info.sample_rate,
                "channels": probe.info.channels,
                "format": probe.info.format.lower(),
                "status": "ok",
            }
        )
    recs = pd.DataFrame(
        rows,
        columns=[
            "recording_id",
            "path",
            "rel_path",
            "device_id",
            "start_time",
            "duration_s",
            "sample_rate",
            "channels",
            "format",
            "status",
        ],
    )
    recs["start_time"] = pd.to_datetime(recs["start_time"], utc=True).astype("datetime64[us, UTC]")
    recs = resolve_deployments(recs, sites)
    recs["shard"] = assign_shards(
        len(recs), shard_size, recs["duration_s"].to_numpy(float), shard_hours
    )
    inv = _typed(recs[list(INVENTORY_COLUMNS)])
    quarantine = pd.DataFrame(quarantined, columns=list(QUARANTINE_COLUMNS))
    warnings = {
        "files": len(files),
        "quarantined": len(quarantine),
        "duplicates": len(duplicates),
        "skipped": len(found.skipped),
        "no_start_time": int(inv["start_time"].isna().sum()),
        "no_device_id": int(inv["device_id"].isna().sum()),
        "no_deployment": int(inv["site"].isna().sum()),
    }
    return InventoryResult(inv, quarantine, warnings)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through the Arrow schema so dtypes are fixed even for all-null columns."""
    table = pa.Table.from_pandas(
        df.reset_index(drop=True), schema=INVENTORY_SCHEMA, preserve_index=False
    )
    return table.to_pandas()


def inventory_table(df: pd.DataFrame) -> pa.Table:
    """The inventory as an Arrow table with :data:`INVENTORY_SCHEMA`."""
    return pa.Table.from_pandas(
        df[list(INVENTORY_COLUMNS)], schema=INVENTORY_SCHEMA, preserve_index=False
    )


def log_warnings(warnings: dict[str, int]) -> None:
    """Log the run summary and a warning for each kind of unresolved metadata."""
    log.info(
        "inventory: %d audio files, %d inventoried, %d quarantined",
        warnings["files"],
        warnings["files"] - warnings["quarantined"] + warnings.get("skipped", 0),
        warnings["quarantined"],
    )
    messages = {
        "duplicates": "true duplicates (same content as another file) quarantined, processed once",
        "skipped": "paths reported by file discovery (symlink loops, links to files listed "
        "already, dangling links, unsupported audio formats)",
        "no_start_time": "recordings without a start time parsed from the file name",
        "no_device_id": "recordings without a device id (no bugg_RPiID- folder or name prefix)",
        "no_deployment": "recordings without a matching deployment in sites.csv "
        "(site metadata left null)",
    }
    for key, text in messages.items():
        if warnings.get(key):
            log.warning("inventory: %d %s", warnings[key], text)


def run_inventory(
    roots: Sequence[str | os.PathLike[str]],
    sites_csv: str | os.PathLike[str] | None,
    inventory_path: str | os.PathLike[str],
    quarantine_path: str | os.PathLike[str],
    registry_path: str | os.PathLike[str] | None = None,
    **kwargs: object,
) -> InventoryResult:
    """Build the inventory (see :func:`build_inventory`) and write both tables atomically.

    The recording-id registry is read from and written back to ``registry_path`` (default:
    ``recording_ids.csv`` beside the inventory); keep it, it is what keeps ids stable.
    """
    sites = read_sites(sites_csv) if sites_csv else None
    registry_path = (
        Path(registry_path)
        if registry_path is not None
        else Path(inventory_path).with_name(REGISTRY_NAME)
    )
    registry = IdRegistry.load(registry_path)
    result = build_inventory(roots, sites, registry=registry, **kwargs)  # type: ignore[arg-type]
    log_warnings(result.warnings)
    write_parquet(inventory_table(result.inventory), inventory_path, stage=STAGE)
    write_csv(result.quarantine, quarantine_path, stage=STAGE)
    registry.save(registry_path, stage=STAGE)
    return result
