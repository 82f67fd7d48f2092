"""Raven selection tables and delimited label files: the format, read and written.

Reading (:func:`read_table`) detects the encoding (BOMs, UTF-16 without BOM, UTF-8, cp1252,
latin-1) and the delimiter (tab, comma or semicolon) and keeps every row's line number, so
that every problem can be reported as ``file:line``. :func:`merge_views` folds the rows Raven
writes once per view (Waveform / Spectrogram) of one selection; :func:`clip_stem` links a table
to its clip by file name (``<stem>.Table.1.selections.txt``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from activepam.core.io import atomic_path
from activepam.core.labels import LabelImportError

#: columns of an exported Raven selection table (Raven's own first seven, then ours)
RAVEN_COLUMNS: tuple[str, ...] = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Species",
    "Present",
    "Confidence",
    "Annotator",
    "Notes",
)
#: accepted names of the species column of a Raven table, in order of preference
SPECIES_COLUMNS: tuple[str, ...] = ("Species", "Annotation")
#: suffix Raven Pro gives saved selection tables
TABLE_SUFFIX = ".Table.1.selections.txt"
_TABLE_RE = re.compile(r"\.Table\.\d+\.selections\.txt$", re.IGNORECASE)


@dataclass
class RawRow:
    """One data line of an input file: its 1-based line number and cells by column name."""

    line: int
    cells: dict[str, str]


@dataclass
class DelimitedTable:
    """A delimited text file as read: header, data rows, and how it was decoded."""

    header: list[str]
    rows: list[RawRow]
    delimiter: str
    encoding: str

    def described(self) -> str:
        """``header read as utf-16, ';'-separated: a | b | c`` (for missing-column messages)."""
        name = {"\t": "tab", ",": "','", ";": "';'"}.get(self.delimiter, repr(self.delimiter))
        cols = " | ".join(h for h in self.header if h) or "none"
        return f"header read as {self.encoding}, {name}-separated: {cols}"


#: delimiters tried when reading a table (the file's preferred one wins ties)
DELIMITERS: tuple[str, ...] = ("\t", ",", ";")


def _decode(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a file: BOMs (UTF-8, UTF-16 LE/BE), UTF-16 without BOM (NUL
    bytes in every other position), then UTF-8, cp1252, latin-1."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    head = raw[:2000]
    if len(head) >= 4:
        odd, even = head[1::2].count(0), head[0::2].count(0)
        half = len(head) // 2
        if odd > 0.4 * half and even < 0.05 * half:
            return raw.decode("utf-16-le", errors="replace"), "utf-16-le"
        if even > 0.4 * half and odd < 0.05 * half:
            return raw.decode("utf-16-be", errors="replace"), "utf-16-be"
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 decodes anything


def sniff_delimiter(header_line: str, preferred: str) -> str:
    """The delimiter of :data:`DELIMITERS` that splits ``header_line`` into the most fields
    (``preferred`` on ties)."""
    best, best_n = preferred, len(next(csv.reader([header_line], delimiter=preferred), []))
    for d in DELIMITERS:
        n = len(next(csv.reader([header_line], delimiter=d), []))
        if n > best_n:
            best, best_n = d, n
    return best


def read_table(path: str | Path, preferred: str = "\t") -> DelimitedTable:
    """A tab-, comma- or semicolon-separated file in any of the encodings of :func:`_decode`.

    The delimiter is detected from the header line (``preferred`` on ties). Short rows are
    padded with empty cells; cells beyond the header must be empty.
    """
    path = Path(path)
    text, encoding = _decode(path.read_bytes())
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise LabelImportError([f"{path}:1: empty file (no header line)"])
    delimiter = sniff_delimiter(lines[0], preferred)
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    while header and header[-1] == "":
        header.pop()
    problems, rows = [], []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            problems.append(
                f"{path}:{line_no}: {len(cells)} fields but the header has {len(header)}"
            )
            continue
        cells = cells + [""] * (len(header) - len(cells))
        rows.append(RawRow(line_no, {h: c.strip() for h, c in zip(header, cells) if h}))
    if problems:
        raise LabelImportError(problems)
    return DelimitedTable(header, rows, delimiter, encoding)


def find_column(header: Sequence[str], name: str) -> str | None:
    """The header cell naming column ``name`` (case-insensitive), or None."""
    lower = {h.lower(): h for h in header}
    return lower.get(name.lower())


def species_column(header: Sequence[str]) -> str | None:
    """The species column of a header: the first of :data:`SPECIES_COLUMNS` present."""
    return next((c for c in (find_column(header, n) for n in SPECIES_COLUMNS) if c), None)


#: Raven columns that make up the *content* of a selection (the answer); measurement columns
#: (e.g. "Avg Power Density") differ between a selection's Waveform and Spectrogram rows
SELECTION_CONTENT: tuple[str, ...] = (
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    *SPECIES_COLUMNS,
    "Present",
    "Confidence",
    "Annotator",
    "Notes",
)


def _content_cell(value: str) -> str:
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return value.strip().lower()


def merge_views(rows: list[RawRow], header: Sequence[str]) -> tuple[list[RawRow], int]:
    """Raven lists a selection once per view (Waveform, Spectrogram): rows with the same
    Selection number AND the same content (:data:`SELECTION_CONTENT`: times, frequencies,
    species, Present, ...; measurements may differ) are one selection (the Spectrogram row is
    kept). A reused Selection number with other content (another species, other times) is
    another answer: kept. Returns the rows and how many view rows were merged.
    """
    sel, view = find_column(header, "Selection"), find_column(header, "View")
    if not sel or not view:
        return rows, 0
    content_cols = [c for c in (find_column(header, n) for n in SELECTION_CONTENT) if c]
    groups: dict[tuple[Any, ...], list[RawRow]] = {}
    for r in rows:
        content = tuple(_content_cell(r.cells.get(c, "")) for c in content_cols)
        key = (r.cells.get(sel, ""), content) if r.cells.get(sel, "") else (id(r),)
        groups.setdefault(key, []).append(r)
    keep_ids: set[int] = set()
    merged = 0
    for grp in groups.values():
        views = [r.cells.get(view, "") for r in grp]
        if len(grp) == 1 or len(set(views)) == 1:
            keep_ids.update(id(r) for r in grp)  # one view (or exact repeats: kept, reported)
            continue
        by_view: dict[str, list[RawRow]] = {}
        for r, v in zip(grp, views):
            by_view.setdefault(v, []).append(r)
        spec = [v for v in by_view if v.lower().startswith("spectrogram")]
        best = spec[0] if spec else max(by_view, key=lambda v: len(by_view[v]))
        keep_ids.update(id(r) for r in by_view[best])
        merged += len(grp) - len(by_view[best])
    return [r for r in rows if id(r) in keep_ids], merged


def clip_stem(name: str) -> str:
    """Clip stem of a Raven table or clip file name."""
    stem = _TABLE_RE.sub("", name)
    for suffix in (".txt", ".wav", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def write_raven_table(
    rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] = RAVEN_COLUMNS
) -> Path:
    """Write a tab-separated Raven selection table atomically."""
    df = pd.DataFrame(list(rows), columns=list(columns))
    with atomic_path(path, "export") as tmp:
        df.to_csv(
            tmp, sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\"
        )
    return Path(path)
