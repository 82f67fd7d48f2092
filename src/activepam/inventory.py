"""Recording inventory: one row per audio file, with its deployment metadata.

Every audio file under the given folders (recursive, matching ``inventory.extensions``,
case-insensitive) is probed in a thread pool:

* header facts (sample rate, channels, frames, format) via :func:`activepam.io.audio_info`;
* a truthful readability check: the last block of the file is read back, and for WAV the
  ``data`` chunk size declared in the RIFF header is compared with the bytes on disk
  (libsndfile silently clamps a cut WAV to the data present), so a file whose data is shorter
  than its header says is quarantined as ``truncated``.

Files that are zero-length, unreadable, empty (header only), truncated or shorter than
``min_duration_s`` go to the quarantine table (path, stage="inventory", reason); they never stop
the run and are never silently dropped.

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

import argparse
import hashlib
import logging
import os
import re
import struct
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import soundfile as sf
from tqdm import tqdm

from activepam.io import AUDIO_EXTENSIONS, AudioInfo, audio_info, write_csv, write_parquet

log = logging.getLogger(__name__)

STAGE = "inventory"

INVENTORY_SCHEMA = pa.schema([
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
])
INVENTORY_COLUMNS: tuple[str, ...] = tuple(INVENTORY_SCHEMA.names)
QUARANTINE_COLUMNS: tuple[str, ...] = ("path", "stage", "reason")
SITES_COLUMNS: tuple[str, ...] = ("device_id", "site", "country", "habitat", "lat", "lon",
                                  "deployment_start", "deployment_end")
METADATA_COLUMNS: tuple[str, ...] = ("site", "country", "habitat", "lat", "lon")

# frames of slack when reading the last block of an MP3 back (decoder delay / padding frames)
MP3_TAIL_TOLERANCE = 4 * 1152


class SitesError(ValueError):
    """``sites.csv`` is malformed; the message names the file and the line."""


# --------------------------------------------------------------------------- file names


@dataclass(frozen=True)
class FilenamePattern:
    """One recogniser of timestamped file names (matched against the stem)."""

    name: str
    regex: re.Pattern[str]
    utc: bool  # True: the time is UTC by definition; False: in the configured time zone


FILENAME_PATTERNS: tuple[FilenamePattern, ...] = (
    FilenamePattern(
        "tabmon_iso",
        re.compile(r"^(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{2})[_:](?P<M>\d{2})[_:]"
                   r"(?P<S>\d{2})(?:\.(?P<frac>\d{1,6}))?Z$"),
        utc=True),
    FilenamePattern(
        "audiomoth",
        re.compile(r"^(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})$"),
        utc=True),
    FilenamePattern(
        "prefix_date_time",
        re.compile(r"^(?P<prefix>.+?)_(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_"
                   r"(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})$"),
        utc=False),
)

TABMON_DEVICE = re.compile(r"^bugg_RPiID-(?P<device>.+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class FilenameInfo:
    """What a file name tells: device prefix, UTC start time and the pattern that matched."""

    device_id: str | None
    start_time: pd.Timestamp | None
    pattern: str | None


def parse_filename(stem: str, tz: str = "UTC") -> FilenameInfo:
    """Parse a file stem (no extension) with :data:`FILENAME_PATTERNS`.

    ``tz`` is the time zone of names that carry none (``prefix_YYYYMMDD_HHMMSS``). Returns all
    ``None`` when no pattern matches or the date is impossible (e.g. month 13).
    """
    for pattern in FILENAME_PATTERNS:
        m = pattern.regex.match(stem)
        if not m:
            continue
        g = m.groupdict()
        frac = (g.get("frac") or "").ljust(6, "0")
        try:
            naive = datetime(int(g["Y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]),
                             int(g["S"]), int(frac) if frac else 0)
        except ValueError:
            return FilenameInfo(None, None, None)
        zone = timezone.utc if pattern.utc else _zone(tz)
        stamp = pd.Timestamp(naive.replace(tzinfo=zone)).tz_convert("UTC")
        return FilenameInfo(g.get("prefix"), stamp, pattern.name)
    return FilenameInfo(None, None, None)


def _zone(tz: str) -> timezone | ZoneInfo:
    if tz.upper() in ("UTC", "Z"):
        return timezone.utc
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"inventory.timezone: unknown time zone {tz!r}") from exc


def device_from_path(rel_path: str, tz: str = "UTC") -> str | None:
    """Device id: a TABMON folder ``bugg_RPiID-<id>`` in the path, else the file name prefix."""
    p = Path(rel_path)
    for part in reversed(p.parent.parts):
        m = TABMON_DEVICE.match(part)
        if m:
            return m["device"]
    return parse_filename(p.stem, tz).device_id


def sanitize(text: str) -> str:
    """Filesystem-safe form of ``text``: runs of characters outside ``[A-Za-z0-9_.-]`` -> ``-``."""
    out = _UNSAFE.sub("-", text).strip("-.")
    return out or "recording"


def make_recording_ids(device_ids: Sequence[str | None], start_times: Sequence[object],
                       rel_paths: Sequence[str], paths: Sequence[str] | None = None) -> list[str]:
    """Stable, unique, filesystem-safe ids: ``<device>_<YYYYmmddTHHMMSSZ>`` or the sanitized stem.

    Every member of a group of equal ids gets ``-<sha1(rel_path)[:6]>`` appended (falling back
    to the full path when two files share a rel_path under different roots).
    """
    base: list[str] = []
    for dev, t, rel in zip(device_ids, start_times, rel_paths):
        if dev and t is not None and not pd.isna(t):
            base.append(sanitize(f"{dev}_{pd.Timestamp(t).strftime('%Y%m%dT%H%M%SZ')}"))
        else:
            base.append(sanitize(Path(rel).stem))
    ids = list(base)
    counts = pd.Series(base).value_counts()
    for i, b in enumerate(base):
        if counts[b] > 1:
            ids[i] = f"{b}-{_sha(rel_paths[i])}"
    if len(set(ids)) != len(ids) and paths is not None:
        counts2 = pd.Series(ids).value_counts()
        ids = [f"{b}-{_sha(paths[i])}" if counts2[ids[i]] > 1 else ids[i]
               for i, b in enumerate(base)]
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise ValueError(f"inventory: recording_id {dup!r} is not unique (same file listed twice?)")
    return ids


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


# --------------------------------------------------------------------------- sites.csv


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
        raise SitesError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(need {', '.join(SITES_COLUMNS)})")
    rows = []
    for i, rec in enumerate(raw.to_dict("records")):
        line = i + 2  # header is line 1
        rows.append(_parse_site_row(rec, f"{path}:{line}") | {"line": line})
    sites = pd.DataFrame(rows, columns=[*SITES_COLUMNS, "line"])
    sites["deployment_start"] = pd.to_datetime(sites["deployment_start"], utc=True).astype(
        "datetime64[us, UTC]")
    sites["deployment_end"] = pd.to_datetime(sites["deployment_end"], utc=True).astype(
        "datetime64[us, UTC]")
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
    out["deployment_start"] = _parse_date(rec["deployment_start"], "deployment_start", where)
    if out["deployment_start"] is None:
        raise SitesError(f"{where}: deployment_start is empty")
    out["deployment_end"] = _parse_date(rec["deployment_end"], "deployment_end", where)
    if out["deployment_end"] is not None and out["deployment_end"] <= out["deployment_start"]:
        raise SitesError(f"{where}: deployment_end {rec['deployment_end']!r} is not after "
                         f"deployment_start {rec['deployment_start']!r}")
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
                        f"{'open end' if pd.isna(prev.deployment_end) else prev_end.isoformat()})")
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
    left = pd.DataFrame({
        "_row": np.flatnonzero(known.to_numpy()),
        "device_id": out.loc[known, "device_id"].astype(str).to_numpy(),
        "start_time": pd.to_datetime(out.loc[known, "start_time"], utc=True).astype(
            "datetime64[us, UTC]").reset_index(drop=True),
    }).sort_values("start_time", kind="stable")
    right = sites[["device_id", "deployment_start", "deployment_end", *METADATA_COLUMNS]].copy()
    right["device_id"] = right["device_id"].astype(str)
    right = right.sort_values("deployment_start", kind="stable")
    merged = pd.merge_asof(left, right, left_on="start_time", right_on="deployment_start",
                           by="device_id", direction="backward")
    ok = merged["deployment_start"].notna() & (
        merged["deployment_end"].isna() | (merged["start_time"] < merged["deployment_end"]))
    merged = merged[ok]
    rows = merged["_row"].to_numpy()
    for col in METADATA_COLUMNS:
        values = out[col].to_numpy(dtype=object if col not in ("lat", "lon") else "float64",
                                   copy=True)
        values[rows] = merged[col].to_numpy()
        out[col] = values
    return out


# --------------------------------------------------------------------------- audio probing


@dataclass(frozen=True)
class Probe:
    """Outcome of probing one file: header facts, or the reason it is quarantined."""

    path: str
    info: AudioInfo | None = None
    reason: str | None = None


def list_audio_files(roots: Iterable[str | os.PathLike[str]],
                     extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[tuple[str, str]]:
    """``(path, rel_path)`` of every audio file under ``roots`` (recursive, symlinks followed).

    ``path`` keeps the root as given; ``rel_path`` is relative to that root (a file given
    directly has its name as rel_path). Sorted by path; raises ``FileNotFoundError`` for a
    missing root.
    """
    exts = tuple(e.lower() for e in extensions)
    found: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            found[str(root)] = root.name
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"inventory: {root}: no such file or folder")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames.sort()
            for name in filenames:
                if name.lower().endswith(exts):
                    full = Path(dirpath) / name
                    found[str(full)] = full.relative_to(root).as_posix()
    return sorted(found.items())


def probe_audio(path: str | os.PathLike[str], min_duration_s: float = 0.0) -> Probe:
    """Header facts of ``path`` or the reason it cannot be used (never raises for bad audio)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        return Probe(str(path), reason=f"unreadable: {exc.strerror or exc}")
    if size == 0:
        return Probe(str(path), reason="zero-length file")
    try:
        info = audio_info(p)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return Probe(str(path), reason=f"unreadable: {_one_line(exc)}")
    declared = wav_declared_frames(p)
    if info.frames <= 0:
        extra = f" (header declares {declared} frames)" if declared else ""
        return Probe(str(path), info, f"empty: header only, no audio frames{extra}")
    if declared is not None and declared > info.frames:
        return Probe(str(path), info, f"truncated: header declares {declared} frames, "
                                      f"file holds {info.frames}")
    tail = _check_tail(p, info)
    if tail:
        return Probe(str(path), info, tail)
    if info.duration_s < min_duration_s:
        return Probe(str(path), info, f"too short: {info.duration_s:.3g} s < min_duration_s "
                                      f"{min_duration_s:g} s")
    return Probe(str(path), info)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_tail(path: Path, info: AudioInfo) -> str | None:
    """Read the last second back; ``None`` when it is all there, else a quarantine reason."""
    n = min(info.frames, max(1, info.sample_rate))
    tolerance = MP3_TAIL_TOLERANCE if info.format.upper() == "MP3" else 0
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(info.frames - n)
            got = len(f.read(n, dtype="float32", always_2d=True))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        return f"truncated: cannot read the last block ({_one_line(exc)})"
    if got < n - tolerance:
        return f"truncated: header declares {info.frames} frames, data ends about " \
               f"{n - got} frames early"
    return None


def wav_declared_frames(path: str | os.PathLike[str]) -> int | None:
    """Frames the RIFF/WAVE ``data`` chunk declares, or ``None`` (not a WAV, size unknown).

    libsndfile clamps a cut WAV to the data present, so this is how a truncated WAV is told
    apart from a short one. Streaming sizes (0 or 0xFFFFFFFF) and RF64 count as unknown.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) >= 14:
                        block_align = struct.unpack("<H", fmt[12:14])[0]
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if size in (0, 0xFFFFFFFF) or not block_align:
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


# --------------------------------------------------------------------------- inventory


@dataclass
class InventoryResult:
    """Inventory table, quarantine table and warning counts of one run."""

    inventory: pd.DataFrame
    quarantine: pd.DataFrame
    warnings: dict[str, int] = field(default_factory=dict)


def assign_shards(n: int, shard_size: int) -> list[str]:
    """Shard ids ``0000``, ``0001``, ... for ``n`` consecutive recordings, ``shard_size`` each."""
    if shard_size < 1:
        raise ValueError(f"detect.shard_size must be >= 1, got {shard_size}")
    return [f"{i // shard_size:04d}" for i in range(n)]


def build_inventory(roots: Sequence[str | os.PathLike[str]], sites: pd.DataFrame | None = None, *,
                    extensions: Sequence[str] = AUDIO_EXTENSIONS, min_duration_s: float = 0.0,
                    shard_size: int = 64, threads: int = 4, tz: str = "UTC",
                    progress: bool = True) -> InventoryResult:
    """Probe every audio file under ``roots`` and build the inventory and quarantine tables."""
    _zone(tz)  # fail early on a bad time zone
    files = list_audio_files(roots, extensions)
    paths = [p for p, _ in files]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(tqdm(pool.map(probe_audio, paths, [min_duration_s] * len(paths)),
                           total=len(paths), desc="inventory", unit="file", disable=not progress))
    rows, quarantined = [], []
    for (path, rel), probe in zip(files, probes):
        if probe.reason:
            quarantined.append({"path": path, "stage": STAGE, "reason": probe.reason})
            continue
        assert probe.info is not None
        name = parse_filename(Path(rel).stem, tz)
        rows.append({
            "path": path, "rel_path": rel, "device_id": device_from_path(rel, tz),
            "start_time": name.start_time, "duration_s": probe.info.duration_s,
            "sample_rate": probe.info.sample_rate, "channels": probe.info.channels,
            "format": probe.info.format.lower(), "status": "ok",
        })
    recs = pd.DataFrame(rows, columns=["path", "rel_path", "device_id", "start_time",
                                       "duration_s", "sample_rate", "channels", "format",
                                       "status"])
    recs["start_time"] = pd.to_datetime(recs["start_time"], utc=True).astype("datetime64[us, UTC]")
    recs = resolve_deployments(recs, sites)
    recs["recording_id"] = make_recording_ids(recs["device_id"].tolist(),
                                              recs["start_time"].tolist(),
                                              recs["rel_path"].tolist(), recs["path"].tolist())
    recs["shard"] = assign_shards(len(recs), shard_size)
    inv = _typed(recs[list(INVENTORY_COLUMNS)])
    quarantine = pd.DataFrame(quarantined, columns=list(QUARANTINE_COLUMNS))
    warnings = {
        "files": len(files),
        "quarantined": len(quarantine),
        "no_start_time": int(inv["start_time"].isna().sum()),
        "no_device_id": int(inv["device_id"].isna().sum()),
        "no_deployment": int(inv["site"].isna().sum()),
    }
    return InventoryResult(inv, quarantine, warnings)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through the Arrow schema so dtypes are fixed even for all-null columns."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), schema=INVENTORY_SCHEMA,
                                 preserve_index=False)
    return table.to_pandas()


def inventory_table(df: pd.DataFrame) -> pa.Table:
    """The inventory as an Arrow table with :data:`INVENTORY_SCHEMA`."""
    return pa.Table.from_pandas(df[list(INVENTORY_COLUMNS)], schema=INVENTORY_SCHEMA,
                                preserve_index=False)


def log_warnings(warnings: dict[str, int]) -> None:
    """Log the run summary and a warning for each kind of unresolved metadata."""
    log.info("inventory: %d audio files, %d inventoried, %d quarantined", warnings["files"],
             warnings["files"] - warnings["quarantined"], warnings["quarantined"])
    messages = {
        "no_start_time": "recordings without a start time parsed from the file name",
        "no_device_id": "recordings without a device id (no bugg_RPiID- folder or name prefix)",
        "no_deployment": "recordings without a matching deployment in sites.csv "
                         "(site metadata left null)",
    }
    for key, text in messages.items():
        if warnings.get(key):
            log.warning("inventory: %d %s", warnings[key], text)


def run_inventory(roots: Sequence[str | os.PathLike[str]],
                  sites_csv: str | os.PathLike[str] | None,
                  inventory_path: str | os.PathLike[str],
                  quarantine_path: str | os.PathLike[str], **kwargs: object) -> InventoryResult:
    """Build the inventory (see :func:`build_inventory`) and write both tables atomically."""
    sites = read_sites(sites_csv) if sites_csv else None
    result = build_inventory(roots, sites, **kwargs)  # type: ignore[arg-type]
    log_warnings(result.warnings)
    write_parquet(inventory_table(result.inventory), inventory_path, stage=STAGE)
    write_csv(result.quarantine, quarantine_path, stage=STAGE)
    return result


# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam inventory PATH... --sites SITES.csv --out DIR``."""
    p = subparsers.add_parser("inventory",
                              help="list recordings, probe headers, quarantine bad files",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders (recursive) or audio files")
    p.add_argument("--sites", metavar="SITES.csv", default=None,
                   help="device deployments (device_id,site,...,deployment_start,deployment_end)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="writes DIR/inventory.parquet and DIR/quarantine.csv")
    p.add_argument("--extensions", nargs="+", default=list(AUDIO_EXTENSIONS),
                   help="file name endings scanned (default: %(default)s)")
    p.add_argument("--min-duration", type=float, default=1.0,
                   help="quarantine recordings shorter than this, seconds (default: %(default)s)")
    p.add_argument("--shard-size", type=int, default=64, help="recordings per shard")
    p.add_argument("--timezone", default="UTC",
                   help="time zone of prefix_YYYYMMDD_HHMMSS names (default: %(default)s)")
    p.add_argument("--threads", type=int, default=4, help="header-reading threads")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out = Path(args.out)
    try:
        result = run_inventory(args.paths, args.sites, out / "inventory.parquet",
                               out / "quarantine.csv", extensions=args.extensions,
                               min_duration_s=args.min_duration, shard_size=args.shard_size,
                               threads=args.threads, tz=args.timezone)
    except (SitesError, FileNotFoundError, ValueError) as exc:
        print(f"activepam inventory: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.inventory)} recordings -> {out / 'inventory.parquet'}; "
          f"{len(result.quarantine)} quarantined -> {out / 'quarantine.csv'}")
    return 0

