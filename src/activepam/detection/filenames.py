"""Recording file names and ids: the UTC start time and device id a path tells
(:data:`FILENAME_PATTERNS`, :func:`parse_filename`, :func:`device_from_path`) and the recording
ids that stay stable across moves and copies (:class:`IdRegistry`, rule in CONTRACTS.md)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from activepam.core.hashing import FileKey, file_key
from activepam.core.io import write_csv


@dataclass(frozen=True)
class FilenamePattern:
    """One recogniser of timestamped file names (matched against the stem)."""

    name: str
    regex: re.Pattern[str]
    utc: bool  # True: the time is UTC by definition; False: in the configured time zone


FILENAME_PATTERNS: tuple[FilenamePattern, ...] = (
    FilenamePattern(
        "tabmon_iso",
        re.compile(
            r"^(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{2})[_:](?P<M>\d{2})[_:]"
            r"(?P<S>\d{2})(?:\.(?P<frac>\d{1,6}))?Z$"
        ),
        utc=True,
    ),
    FilenamePattern(
        "audiomoth",
        re.compile(r"^(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})$"),
        utc=True,
    ),
    FilenamePattern(
        "prefix_date_time",
        re.compile(
            r"^(?P<prefix>.+?)_(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_"
            r"(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})$"
        ),
        utc=False,
    ),
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
            naive = datetime(
                int(g["Y"]),
                int(g["m"]),
                int(g["d"]),
                int(g["H"]),
                int(g["M"]),
                int(g["S"]),
                int(frac) if frac else 0,
            )
        except ValueError:
            return FilenameInfo(None, None, None)
        zone = UTC if pattern.utc else time_zone(tz)
        stamp = pd.Timestamp(naive.replace(tzinfo=zone)).tz_convert("UTC")
        return FilenameInfo(g.get("prefix"), stamp, pattern.name)
    return FilenameInfo(None, None, None)


def time_zone(tz: str) -> timezone | ZoneInfo:
    if tz.upper() in ("UTC", "Z"):
        return UTC
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


def make_recording_ids(
    device_ids: Sequence[str | None],
    start_times: Sequence[object],
    rel_paths: Sequence[str],
    paths: Sequence[str] | None = None,
    contents: Sequence[str] | None = None,
) -> list[str]:
    """Unique, filesystem-safe ids of recordings listed in order, without a registry.

    Base id: :func:`base_recording_id`. The FIRST file with a base id keeps it bare; a later
    file whose base id is taken gets ``-<hash[:8]>`` appended (hash = ``contents`` when given,
    e.g. the SHA-256 of the file, else the SHA-1 of its path). With state from earlier runs use
    :class:`IdRegistry` (see CONTRACTS.md, recording_id).
    """
    keys = (
        list(contents)
        if contents is not None
        else [hashlib.sha1(str(p).encode()).hexdigest() for p in (paths or rel_paths)]
    )
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


REGISTRY_COLUMNS: tuple[str, ...] = (
    "recording_id",
    "base_id",
    "named",
    "sha256",
    "size",
    "mtime_ns",
    "path",
)
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
            raise ValueError(f"{path}: recording-id registry is not a readable CSV: {exc}") from exc
        missing = [c for c in REGISTRY_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: recording-id registry lacks column(s) {', '.join(missing)}")
        rows: dict[str, dict[str, Any]] = {}
        for i, rec in enumerate(df.to_dict("records")):
            rid = rec["recording_id"]
            if not rid or rid in rows:
                raise ValueError(f"{path}:{i + 2}: recording_id {rid!r} is empty or repeated")
            rows[rid] = {
                "recording_id": rid,
                "base_id": rec["base_id"],
                "named": rec["named"].strip().lower() in ("1", "true"),
                "sha256": rec["sha256"],
                "size": int(rec["size"] or 0),
                "mtime_ns": int(rec["mtime_ns"] or 0),
                "path": rec["path"],
            }
        return cls(rows)

    def save(self, path: str | os.PathLike[str], stage: str = "inventory") -> None:
        """Write the registry atomically (sorted by recording_id)."""
        df = pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=list(REGISTRY_COLUMNS))
        df["named"] = df["named"].astype(bool).astype(int)
        write_csv(df, path, stage=stage)

    def assign(
        self, files: Sequence[tuple[str, str, FileKey, bool]]
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
        for (sha, _base), items in groups.items():
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
                if (
                    row["sha256"] == key.sha256
                    and rid not in claimed
                    and (not named or not row["named"] or row["base_id"] == base)
                ):
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
            self.rows[rid] = {
                "recording_id": rid,
                "base_id": base,
                "named": named,
                "sha256": key.sha256,
                "size": key.size,
                "mtime_ns": key.mtime_ns,
                "path": path,
            }
        return ids, duplicates


def duplicate_reason(same_as: str, recording_id: str) -> str:
    """Quarantine reason of a true duplicate (same content as a processed file)."""
    return (
        f"duplicate: same content (SHA-256) as {same_as} (recording_id {recording_id}); "
        "processed once"
    )


def os_reason(exc: OSError, path: str | os.PathLike[str]) -> str:
    """Quarantine reason for an ``OSError``: ``permission denied: PATH``, ``file not found:
    PATH`` or ``unreadable: <strerror>``."""
    if isinstance(exc, PermissionError):
        return f"permission denied: {path}"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {path}"
    return f"unreadable: {exc.strerror or one_line(exc)}"


def file_keys(
    paths: Sequence[str],
    registry: IdRegistry | None = None,
    threads: int = 4,
) -> tuple[dict[str, FileKey], dict[str, str]]:
    """Content keys of ``paths`` (hashes reused from ``registry`` for unchanged files) and the
    quarantine reason of each file that could not be read."""
    known = {}
    if registry is not None:
        by_path = {str(r["path"]): r for r in registry.rows.values()}
        known = {
            p: FileKey(int(r["size"]), int(r["mtime_ns"]), str(r["sha256"]))
            for p, r in by_path.items()
        }

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


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
