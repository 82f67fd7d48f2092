"""Append-only answer journal of one annotator (``annotation/journal/<annotator>.journal.csv``).

Format (CONTRACTS.md "Review journal"): a CSV with the header :data:`JOURNAL_COLUMNS`, one row
per answer event, never rewritten. ``present`` is ``1``, ``0``, ``unsure`` or ``clear`` (the
annotator withdrew the answer); the last event per ``(unit_id, species)`` wins. ``species`` ""
with ``present`` 0 records "reviewed: no species". Notes are a column of the answer rows: the
annotator's note on a unit is written on every answer row of that unit, and a changed note is
saved by re-appending the unit's current answers with the new note (so the last event of every
answered (unit, species) carries the current note, and the import keeps it on every label row).

Durability: every append takes a per-file ``threading.Lock`` (threads of one server) and an
exclusive ``fcntl.flock`` (several server processes on one round), writes whole lines, then
``flush`` + ``os.fsync`` before the answer is acknowledged. A row torn by a power cut or a
SIGKILL in the middle of a write has no final newline; it was never acknowledged, and the next
append (or :func:`repair`) cuts it off, so the file always parses.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: columns of a journal, in order
JOURNAL_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "species",
    "present",
    "annotator",
    "confidence",
    "notes",
    "answered_at",
    "seq",
)
#: accepted ``present`` values of a journal row
PRESENT_VALUES: tuple[str, ...] = ("1", "0", "unsure", "clear")
CLEAR = "clear"
#: file-name suffix of a journal
SUFFIX = ".journal.csv"
#: annotator names: safe as a file name (the journal is ``<annotator>.journal.csv``)
ANNOTATOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class JournalError(ValueError):
    """An answer or a journal file is invalid; the message names the field or file:line."""


def check_annotator(name: str) -> str:
    """``name`` if it is a valid annotator name (letters, digits, ``_.-``, at most 64)."""
    name = str(name or "").strip()
    if not ANNOTATOR_RE.match(name):
        raise JournalError(
            f"annotator {name!r}: use 1-64 letters, digits, '_', '.' or '-' "
            "(it names the journal file)"
        )
    return name


def journal_path(journal_dir: str | Path, annotator: str) -> Path:
    """``<journal_dir>/<annotator>.journal.csv``."""
    return Path(journal_dir) / f"{check_annotator(annotator)}{SUFFIX}"


def clean_text(value: Any, limit: int = 2000) -> str:
    """One-line text for a CSV cell: newlines and tabs become spaces, control characters go."""
    text = re.sub(r"[\r\n\t]+", " ", str(value if value is not None else ""))
    return re.sub(r"[\x00-\x1f\x7f]", "", text).strip()[:limit]


def now_iso() -> str:
    """Current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class State:
    """An annotator's current answers rebuilt from a journal: last event per (unit, species)."""

    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    last_unit: str = ""
    last_seq: int = 0
    events: int = 0

    def apply(self, row: Mapping[str, str]) -> None:
        uid, sp, present = row["unit_id"], row["species"], row["present"]
        unit = self.answers.setdefault(uid, {})
        if present == CLEAR:
            unit.pop(sp, None)
        else:
            unit[sp] = present
        if not unit:
            self.answers.pop(uid, None)
        self.notes[uid] = row.get("notes", "")
        if not self.notes[uid]:
            self.notes.pop(uid)
        self.last_unit = uid
        self.events += 1
        try:
            self.last_seq = max(self.last_seq, int(row.get("seq") or 0))
        except ValueError:
            pass


def _lock_for(path: Path) -> threading.Lock:
    key = os.path.realpath(path)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def parse(text: str, source: str = "journal") -> list[dict[str, str]]:
    """Rows of a journal's text; an unterminated last line (a torn write) is ignored."""
    if not text:
        return []
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != JOURNAL_COLUMNS:
        raise JournalError(
            f"{source}:1: not a review journal (header {','.join(header)!r}, "
            f"expected {','.join(JOURNAL_COLUMNS)!r})"
        )
    rows = []
    for line_no, cells in enumerate(reader, start=2):
        if len(cells) != len(JOURNAL_COLUMNS):
            raise JournalError(
                f"{source}:{line_no}: {len(cells)} fields, expected {len(JOURNAL_COLUMNS)}"
            )
        rows.append(dict(zip(JOURNAL_COLUMNS, cells)))
    return rows


def read_events(path: str | Path) -> list[dict[str, str]]:
    """Every event of a journal file, in order (``[]`` when the file does not exist)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return parse(text, str(path))


def state_of(rows: Iterable[Mapping[str, str]]) -> State:
    """:class:`State` after replaying ``rows`` in order."""
    st = State()
    for r in rows:
        st.apply(r)
    return st


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The journal file of one annotator; safe for threads and for several processes."""

    def __init__(self, journal_dir: str | Path, annotator: str) -> None:
        self.annotator = check_annotator(annotator)
        self.path = journal_path(journal_dir, self.annotator)

    def read(self) -> list[dict[str, str]]:
        return read_events(self.path)

    def state(self) -> State:
        return state_of(self.read())

    def transact(
        self, make_rows: Callable[[State], Sequence[Mapping[str, Any]]]
    ) -> list[dict[str, str]]:
        """Under the file's locks: rebuild the state from the file, ask ``make_rows(state)``
        for the events to append, append them (``seq``, ``answered_at`` and ``annotator``
        filled in), flush and fsync. Returns the rows written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _lock_for(self.path):
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            with os.fdopen(fd, "r+", encoding="utf-8", newline="") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    return self._append_locked(f, make_rows, created)
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _append_locked(
        self, f: Any, make_rows: Callable[[State], Sequence[Mapping[str, Any]]], created: bool
    ) -> list[dict[str, str]]:
        f.seek(0)
        text = f.read()
        if text and not text.endswith("\n"):  # torn, never acknowledged last row: cut it
            keep = text[: text.rfind("\n") + 1]
            f.seek(0)
            f.truncate(len(keep.encode("utf-8")))
            text = keep
        state = state_of(parse(text, str(self.path)))
        rows = [dict(r) for r in make_rows(state)]
        if not rows:
            return []
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if not text:
            w.writerow(JOURNAL_COLUMNS)
        stamp = now_iso()
        out = []
        for i, r in enumerate(rows, start=1):
            row = {
                "unit_id": str(r["unit_id"]),
                "species": str(r.get("species", "")),
                "present": str(r["present"]),
                "annotator": self.annotator,
                "confidence": clean_text(r.get("confidence", "")),
                "notes": clean_text(r.get("notes", "")),
                "answered_at": stamp,
                "seq": str(state.last_seq + i),
            }
            if row["present"] not in PRESENT_VALUES:
                raise JournalError(
                    f"present {row['present']!r} must be one of {', '.join(PRESENT_VALUES)}"
                )
            w.writerow([row[c] for c in JOURNAL_COLUMNS])
            out.append(row)
        f.seek(0, os.SEEK_END)
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
        if created:
            _fsync_dir(self.path.parent)
        return out

    def append(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """Append ``rows`` (``unit_id, species, present[, confidence, notes]``)."""
        return self.transact(lambda _state: rows)


def repair(journal_dir: str | Path) -> list[Path]:
    """Cut a torn (unterminated) last row off every journal in ``journal_dir``; returns the
    files repaired."""
    fixed = []
    for p in sorted(Path(journal_dir).glob(f"*{SUFFIX}")):
        raw = p.read_bytes()
        if raw and not raw.endswith(b"\n"):
            name = p.name[: -len(SUFFIX)]
            if ANNOTATOR_RE.match(name):
                Journal(journal_dir, name).transact(lambda _s: [])
                fixed.append(p)
    return fixed
