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
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import soundfile as sf
from tqdm import tqdm

from activepam.core.argtypes import non_negative_float, positive_int
from activepam.core.hashing import FileKey, file_key
from activepam.core.io import AUDIO_EXTENSIONS, AudioInfo, audio_info, write_csv, write_parquet

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


def base_recording_id(device_id: str | None, start_time: object, rel_path: str) -> str:
    """The id a recording's name gives: ``<device>_<YYYYmmddTHHMMSSZ>``, else the sanitized stem.

    It depends on this one file's path only, never on other files.
    """
    if device_id and start_time is not None and not pd.isna(start_time):
        return sanitize(f"{device_id}_{pd.Timestamp(start_time).strftime('%Y%m%dT%H%M%SZ')}")
    return sanitize(Path(rel_path).stem)


def make_recording_ids(device_ids: Sequence[str | None], start_times: Sequence[object],
                       rel_paths: Sequence[str], paths: Sequence[str] | None = None,
                       contents: Sequence[str] | None = None) -> list[str]:
    """Unique, filesystem-safe ids of recordings listed in order, without a registry.

    Base id: :func:`base_recording_id`. The FIRST file with a base id keeps it bare; a later
    file whose base id is taken gets ``-<hash[:8]>`` appended (hash = ``contents`` when given,
    e.g. the SHA-256 of the file, else the SHA-1 of its path). With state from earlier runs use
    :class:`IdRegistry` (see CONTRACTS.md, recording_id).
    """
    keys = list(contents) if contents is not None else [
        hashlib.sha1(str(p).encode()).hexdigest() for p in (paths or rel_paths)]
    taken: set[str] = set()
    ids = []
    for dev, t, rel, key in zip(device_ids, start_times, rel_paths, keys):
        ids.append(_claim(base_recording_id(dev, t, rel), key, taken))
    return ids


def _claim(base: str, key: str, taken: set[str] | dict[str, object]) -> str:
    """``base`` when free, else ``base-<key[:8]>`` (longer prefixes of ``key`` if needed)."""
    if base not in taken:
        rid = base
    else:
        for n in (8, 12, 16, 24, 32, 64):
            rid = f"{base}-{key[:n]}"
            if rid not in taken:
                break
        else:
            raise ValueError(f"recording_id {base!r}: cannot make a unique id (same file twice?)")
    if isinstance(taken, set):
        taken.add(rid)
    return rid


REGISTRY_COLUMNS: tuple[str, ...] = ("recording_id", "base_id", "named", "sha256", "size",
                                     "mtime_ns", "path")
#: file name of the registry beside the inventory / detection outputs
REGISTRY_NAME = "recording_ids.csv"


@dataclass
class IdRegistry:
    """Memory of the recording ids given so far: one row per id (``recording_id, base_id,
    named, sha256, size, mtime_ns, path`` = the content and the path it was last seen at;
    ``named``: the base id came from device + time in the name).

    Rows are never dropped (a file that is gone keeps its id reserved, so its id is never
    given to other content, and it gets the id back when it returns). :meth:`assign`
    implements the id rule of CONTRACTS.md.
    """

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> IdRegistry:
        """Registry from a CSV written by :meth:`save` (empty when ``path`` does not exist)."""
        if path is None or not Path(path).is_file():
            return cls()
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: recording-id registry is not a readable CSV: {exc}") \
                from exc
        missing = [c for c in REGISTRY_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: recording-id registry lacks column(s) {', '.join(missing)}")
        rows: dict[str, dict[str, Any]] = {}
        for i, rec in enumerate(df.to_dict("records")):
            rid = rec["recording_id"]
            if not rid or rid in rows:
                raise ValueError(f"{path}:{i + 2}: recording_id {rid!r} is empty or repeated")
            rows[rid] = {"recording_id": rid, "base_id": rec["base_id"],
                         "named": rec["named"].strip().lower() in ("1", "true"),
                         "sha256": rec["sha256"],
                         "size": int(rec["size"] or 0), "mtime_ns": int(rec["mtime_ns"] or 0),
                         "path": rec["path"]}
        return cls(rows)

    def save(self, path: str | os.PathLike[str], stage: str = "inventory") -> None:
        """Write the registry atomically (sorted by recording_id)."""
        df = pd.DataFrame([self.rows[k] for k in sorted(self.rows)],
                          columns=list(REGISTRY_COLUMNS))
        df["named"] = df["named"].astype(bool).astype(int)
        write_csv(df, path, stage=stage)

    def assign(self, files: Sequence[tuple[str, str, FileKey, bool]]
               ) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """Ids of ``files`` = ``(path, base_id, key, named)``; updates the registry.

        ``named`` means the base id identifies the recording (device + start time from the
        name). Returns ``{path: recording_id}`` for the files to process and
        ``(path, same_as_path)`` for true duplicates. Rule, in order:

        1. files with equal content (SHA-256) are one recording, except that *named* files
           whose names differ are distinct recordings (two silent hours can be byte-equal);
           of each recording's files, the one at the registry's path (else the first by path)
           is processed, the others are true duplicates;
        2. content already registered -> its id (moved, renamed or re-found files keep their
           id); a named file does not take the id of a *named* row with another base id;
        3. else the path already registered and its id not claimed by rule 2 -> that id (the
           file was replaced in place: same recording, new content, to be re-detected);
        4. else the base id when no registry row and no earlier file of this run has it, else
           ``<base>-<sha256[:8]>`` (longer if needed). Files are taken in path order.
        """
        rows = [self.rows[k] for k in sorted(self.rows)]
        by_path: dict[str, str] = {}
        for row in rows:
            by_path.setdefault(str(row["path"]), str(row["recording_id"]))
        groups: dict[tuple[str, str | None], list[tuple[str, str, FileKey, bool]]] = {}
        for item in sorted(files, key=lambda f: f[0]):
            groups.setdefault((item[2].sha256, item[1] if item[3] else None), []).append(item)
        # an un-named file with the content of a named recording is a duplicate of it
        for (sha, base), items in list(groups.items()):
            if base is None:
                named_groups = sorted(g for g in groups if g[0] == sha and g[1] is not None)
                if named_groups:
                    groups[named_groups[0]] += items
                    del groups[(sha, base)]
        canonical: list[tuple[str, str, FileKey, bool]] = []
        duplicates: list[tuple[str, str]] = []
        for (sha, base), items in groups.items():
            known = {str(r["path"]) for r in rows if r["sha256"] == sha}
            first = next((it for it in items if it[0] in known), items[0])
            canonical.append(first)
            duplicates += [(it[0], first[0]) for it in items if it is not first]
        canonical.sort(key=lambda f: f[0])
        ids: dict[str, str] = {}
        claimed: set[str] = set()
        for path, base, key, named in canonical:  # rule 2
            for row in rows:
                rid = str(row["recording_id"])
                if row["sha256"] == key.sha256 and rid not in claimed and \
                        (not named or not row["named"] or row["base_id"] == base):
                    ids[path] = rid
                    claimed.add(rid)
                    break
        for path, _, _, _ in canonical:  # rule 3
            known_id = by_path.get(path)
            if path not in ids and known_id is not None and known_id not in claimed:
                ids[path] = known_id
                claimed.add(known_id)
        taken = set(self.rows) | claimed
        for path, base, key, _ in canonical:  # rule 4
            if path not in ids:
                ids[path] = _claim(base, key.sha256, taken)
        for path, base, key, named in canonical:
            rid = ids[path]
            self.rows[rid] = {"recording_id": rid, "base_id": base, "named": named,
                              "sha256": key.sha256, "size": key.size,
                              "mtime_ns": key.mtime_ns, "path": path}
        return ids, duplicates


def duplicate_reason(same_as: str, recording_id: str) -> str:
    """Quarantine reason of a true duplicate (same content as a processed file)."""
    return f"duplicate: same content (SHA-256) as {same_as} (recording_id {recording_id}); " \
           "processed once"


def os_reason(exc: OSError, path: str | os.PathLike[str]) -> str:
    """Quarantine reason for an ``OSError``: ``permission denied: PATH``, ``file not found:
    PATH`` or ``unreadable: <strerror>``."""
    if isinstance(exc, PermissionError):
        return f"permission denied: {path}"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {path}"
    return f"unreadable: {exc.strerror or _one_line(exc)}"


def file_keys(paths: Sequence[str], registry: IdRegistry | None = None, threads: int = 4,
              ) -> tuple[dict[str, FileKey], dict[str, str]]:
    """Content keys of ``paths`` (hashes reused from ``registry`` for unchanged files) and the
    quarantine reason of each file that could not be read."""
    known = {}
    if registry is not None:
        by_path = {str(r["path"]): r for r in registry.rows.values()}
        known = {p: FileKey(int(r["size"]), int(r["mtime_ns"]), str(r["sha256"]))
                 for p, r in by_path.items()}

    def one(path: str) -> FileKey | str:
        try:
            return file_key(path, known.get(path))
        except OSError as exc:
            return os_reason(exc, path)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(one, paths))
    keys = {p: r for p, r in zip(paths, results) if isinstance(r, FileKey)}
    errors = {p: r for p, r in zip(paths, results) if isinstance(r, str)}
    return keys, errors


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


#: extensions of audio formats that are not scanned (unless listed in ``extensions``): such
#: files are reported (quarantine reason "unsupported audio format"), never silently skipped
OTHER_AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".aifc", ".amr", ".caf", ".wv", ".ape",
    ".alac", ".3gp", ".webm", ".mka", ".oga", ".spx", ".au", ".snd", ".w64", ".rf64", ".mp2",
    ".mp4", ".m4b", ".wave", ".flc")


@dataclass(frozen=True)
class FoundFile:
    """One audio file found by :func:`discover_audio`."""

    path: str  # as reached from the root given (root prefix kept)
    rel_path: str  # relative to that root (a file given directly: its name)
    real_path: str  # symlinks resolved: the identity of the file on disk


@dataclass
class Discovery:
    """Audio files to use and the reported rest (``path, stage, reason`` rows)."""

    files: list[FoundFile]
    skipped: list[dict[str, str]]


def discover_audio(roots: Iterable[str | os.PathLike[str]],
                   extensions: Sequence[str] = AUDIO_EXTENSIONS, stage: str = STAGE,
                   missing: str = "raise") -> Discovery:
    """The ONE file discovery of inventory and detect: audio files under ``roots``.

    * folders are scanned recursively, entries in name order; a file given directly is used
      when its extension is scanned, else reported;
    * extensions are matched case-insensitively; a file with another *audio* extension
      (:data:`OTHER_AUDIO_EXTENSIONS`, e.g. ``.opus``) is reported as unsupported, other files
      (``.txt``, ``.csv``) are ignored;
    * symlinks are followed, but every file and folder is identified by its real path: the
      real tree is walked first, linked files/folders afterwards, so a file reached twice
      (a link to it, a linked folder, overlapping roots) is listed once, under its first
      non-link path, and the other path is reported; a link back into a folder being walked
      (``ln -s .. d/sub/up``) is reported as a symlink loop and never followed;
    * a dangling symlink and an unreadable folder are reported;
    * a missing root raises ``FileNotFoundError`` (``missing="raise"``) or is reported
      (``missing="report"``).

    ``files`` are sorted by path; ``skipped`` rows are in discovery order.
    """
    exts = tuple(e.lower() for e in extensions)
    found: dict[str, FoundFile] = {}
    skipped: list[dict[str, str]] = []
    seen_dirs: dict[str, str] = {}

    def report(path: object, reason: str) -> None:
        skipped.append({"path": str(path), "stage": stage, "reason": reason})

    def consider(path: Path, rel: str, explicit: bool = False) -> None:
        suffix = path.suffix.lower()
        if not path.name.lower().endswith(exts):
            if suffix in OTHER_AUDIO_EXTENSIONS or explicit:
                report(path, f"unsupported audio format {suffix!r} (scanned: {' '.join(exts)})")
            return
        if path.is_symlink() and not path.exists():
            report(path, f"dangling symlink -> {os.readlink(path)}")
            return
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            report(path, "not a regular file")
        elif real in found:
            report(path, f"same file as {found[real].path} (reached again through a symlink)")
        else:
            found[real] = FoundFile(str(path), rel, real)

    def walk(top: Path, top_rel: str, links: list[tuple[Path, str]]) -> None:
        stack = [(top, top_rel)]
        while stack:
            folder, rel = stack.pop()
            real = os.path.realpath(folder)
            if real in seen_dirs:
                target = os.readlink(folder) if folder.is_symlink() else real
                parent_real = os.path.realpath(folder.parent)
                if Path(parent_real).is_relative_to(real):
                    report(folder, f"symlink loop: -> {target} leads back to {seen_dirs[real]} "
                                   "(not followed)")
                else:
                    report(folder, f"folder already scanned as {seen_dirs[real]} (not followed)")
                continue
            seen_dirs[real] = str(folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                report(folder, os_reason(exc, folder))
                continue
            subdirs = []
            for entry in entries:
                path = folder / entry.name
                sub_rel = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    links.append((path, sub_rel))  # after the real tree
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append((path, sub_rel))
                else:
                    consider(path, sub_rel)
            stack.extend(reversed(subdirs))

    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            if missing == "raise":
                raise FileNotFoundError(f"{stage}: {root}: no such file or folder")
            report(root, "file not found")
            continue
        if not root.is_dir():
            consider(root, root.name, explicit=True)
            continue
        links: list[tuple[Path, str]] = []
        walk(root, "", links)
        while links:
            path, rel = links.pop(0)
            if path.is_dir():
                walk(path, rel, links)
            else:
                consider(path, rel)
    return Discovery(sorted(found.values(), key=lambda f: f.path), skipped)


def list_audio_files(roots: Iterable[str | os.PathLike[str]],
                     extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[tuple[str, str]]:
    """``(path, rel_path)`` of every audio file under ``roots`` (see :func:`discover_audio`)."""
    return [(f.path, f.rel_path) for f in discover_audio(roots, extensions).files]


def probe_audio(path: str | os.PathLike[str], min_duration_s: float = 0.0) -> Probe:
    """Header facts of ``path`` or the reason it cannot be used (never raises for bad audio)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:  # libsndfile says only "System error." for these
            f.read(1)
    except OSError as exc:
        return Probe(str(path), reason=os_reason(exc, path))
    if size == 0:
        return Probe(str(path), reason="zero-length file")
    try:
        info = audio_info(p)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if isinstance(exc, OSError):
            return Probe(str(path), reason=os_reason(exc, path))
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


def assign_shards(n: int, shard_size: int, durations_s: Sequence[float] | None = None,
                  shard_hours: float = 0.0) -> list[str]:
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


def build_inventory(roots: Sequence[str | os.PathLike[str]], sites: pd.DataFrame | None = None, *,
                    extensions: Sequence[str] = AUDIO_EXTENSIONS, min_duration_s: float = 0.0,
                    shard_size: int = 64, threads: int = 4, tz: str = "UTC",
                    progress: bool = True, registry: IdRegistry | None = None,
                    shard_hours: float = 0.0) -> InventoryResult:
    """Probe every audio file under ``roots`` and build the inventory and quarantine tables.

    Files come from :func:`discover_audio` (its reports go to the quarantine table). Files that
    probe well are hashed (SHA-256; hashes in ``registry`` are reused for files whose size and
    mtime are unchanged) and get their recording_id from ``registry`` (:meth:`IdRegistry.assign`;
    a fresh registry when None); true duplicates are quarantined with the path they duplicate.
    ``registry`` is updated in place: save it to keep the ids of the next run stable.
    """
    _zone(tz)  # fail early on a bad time zone
    registry = IdRegistry() if registry is None else registry
    found = discover_audio(roots, extensions)
    files = found.files
    paths = [f.path for f in files]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(tqdm(pool.map(probe_audio, paths, [min_duration_s] * len(paths)),
                           total=len(paths), desc="inventory", unit="file", disable=not progress))
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
    ids, duplicates = registry.assign([
        (f.path, base_recording_id(devices[f.path], names[f.path].start_time, f.rel_path),
         keys[f.path], bool(devices[f.path]) and names[f.path].start_time is not None)
        for f, _ in good])
    for path, same_as in duplicates:
        quarantined.append({"path": path, "stage": STAGE,
                            "reason": duplicate_reason(same_as, ids[same_as])})
    rows = []
    for f, probe in good:
        if f.path not in ids:
            continue
        assert probe.info is not None
        rows.append({
            "recording_id": ids[f.path], "path": f.path, "rel_path": f.rel_path,
            "device_id": devices[f.path], "start_time": names[f.path].start_time,
            "duration_s": probe.info.duration_s, "sample_rate": probe.info.sample_rate,
            "channels": probe.info.channels, "format": probe.info.format.lower(),
            "status": "ok",
        })
    recs = pd.DataFrame(rows, columns=["recording_id", "path", "rel_path", "device_id",
                                       "start_time", "duration_s", "sample_rate", "channels",
                                       "format", "status"])
    recs["start_time"] = pd.to_datetime(recs["start_time"], utc=True).astype("datetime64[us, UTC]")
    recs = resolve_deployments(recs, sites)
    recs["shard"] = assign_shards(len(recs), shard_size, recs["duration_s"].to_numpy(float),
                                  shard_hours)
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
             warnings["files"] - warnings["quarantined"] + warnings.get("skipped", 0),
             warnings["quarantined"])
    messages = {
        "duplicates": "true duplicates (same content as another file) quarantined, "
                      "processed once",
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


def run_inventory(roots: Sequence[str | os.PathLike[str]],
                  sites_csv: str | os.PathLike[str] | None,
                  inventory_path: str | os.PathLike[str],
                  quarantine_path: str | os.PathLike[str],
                  registry_path: str | os.PathLike[str] | None = None,
                  **kwargs: object) -> InventoryResult:
    """Build the inventory (see :func:`build_inventory`) and write both tables atomically.

    The recording-id registry is read from and written back to ``registry_path`` (default:
    ``recording_ids.csv`` beside the inventory); keep it, it is what keeps ids stable.
    """
    sites = read_sites(sites_csv) if sites_csv else None
    registry_path = Path(registry_path) if registry_path is not None else \
        Path(inventory_path).with_name(REGISTRY_NAME)
    registry = IdRegistry.load(registry_path)
    result = build_inventory(roots, sites, registry=registry, **kwargs)  # type: ignore[arg-type]
    log_warnings(result.warnings)
    write_parquet(inventory_table(result.inventory), inventory_path, stage=STAGE)
    write_csv(result.quarantine, quarantine_path, stage=STAGE)
    registry.save(registry_path, stage=STAGE)
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
    p.add_argument("--min-duration", type=non_negative_float, default=1.0,
                   help="quarantine recordings shorter than this, seconds (default: %(default)s)")
    p.add_argument("--shard-size", type=positive_int, default=64, help="recordings per shard")
    p.add_argument("--timezone", default="UTC",
                   help="time zone of prefix_YYYYMMDD_HHMMSS names (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=4, help="header-reading threads")
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

