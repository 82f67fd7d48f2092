"""Import an annotation round's answers: Raven tables, label CSVs and review journals.

Raven table semantics (what the expert does):

* every row is one selection of one species (``Species``; a column named ``Annotation`` is
  accepted instead) with an explicit ``Present``: 1 (yes, present, p) = the species is audible
  in that box, 0 (no, absent, a) = the pre-filled model suggestion is wrong, ``unsure`` (u,
  maybe, ?!, -1) = the expert cannot tell (stored as :data:`UNSURE`, not trained on). A blank
  cell (also a newly drawn selection: give it a value), ``?`` (not reviewed) or any other value
  is *unanswered*: reported as ``file:line`` and never a label (the import fails, or with
  ``--skip-unanswered`` leaves that unit out). A table without a ``Present`` column at all
  (drawn from scratch) means every selection is present;
* a Selection number listed once per view (Spectrogram / Waveform) with the same content is one
  selection; a reused number with other content is another answer;
* the annotation is complete for the target: every label-set species without a row is absent
  (closed world), so a completed table with no rows means "no species";
* selections must lie inside the clip; a selection outside the target segment is kept
  (``in_target`` = 0) but does not label the unit.

Import (:func:`import_labels`, CLI ``activepam labels import FILES_OR_DIR --round R``) reads
completed Raven tables, CSV files (``unit_id, species, present[, annotator, confidence,
notes]``; comma, semicolon or tab, UTF-8/cp1252/UTF-16 detected, :mod:`activepam.rounds.tables`)
and review journals (a CSV with an ``answered_at`` column: the last event per unit, annotator
and species wins, ``clear`` withdraws it) and validates every row against the round's manifest
and the label set. All problems are collected and reported together as ``file:line: message``;
no row is ever dropped silently. Conflicts (two annotators disagree, or one annotator gave two
values: ``conflict`` = 1, not trained on) are kept and reported (:func:`find_conflicts`).
Merging the result into ``data/labels/round_RR.csv`` is :mod:`activepam.rounds.history`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.labels import (
    LABEL_COLUMNS,
    NO_SPECIES,
    UNSURE,
    LabelImportError,
    SpeciesResolver,
    parse_present,
    round_name,
    unanswered_why,
)
from activepam.rounds.export import unit_stem
from activepam.rounds.tables import (
    TABLE_SUFFIX,
    DelimitedTable,
    RawRow,
    clip_stem,
    find_column,
    merge_views,
    read_table,
    species_column,
)

#: seconds a selection may stick out of the clip (rounding in Raven)
TIME_TOLERANCE_S = 0.05


def safe_relpath(value: Any, where: str) -> str:
    """``value`` as a relative POSIX path that stays inside the project.

    Raises :class:`ValueError` (message prefixed by ``where``) for absolute paths (POSIX or
    Windows, including drive letters and UNC paths) and for any ``..`` component.
    """
    text = str(value).strip()
    if not text:
        return text
    win, posix = PureWindowsPath(text), PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or win.is_absolute() or win.drive or text.startswith(("~", "\\\\")):
        raise ValueError(
            f"{where}: absolute path {text!r} not allowed (paths must be relative to the project)"
        )
    if ".." in posix.parts:
        raise ValueError(f"{where}: path {text!r} escapes the project ('..' not allowed)")
    return posix.as_posix()


def _float(value: Any, column: str) -> float:
    text = str(value).strip()
    try:
        out = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{column} {text!r} is not a finite number")
    return out


def _optional_float(value: Any, column: str) -> float:
    text = str(value if value is not None else "").strip()
    return float("nan") if text == "" else _float(text, column)


@dataclass
class ImportResult:
    """Validated labels, annotator conflicts and notes (warnings) of one import."""

    labels: pd.DataFrame
    conflicts: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def collect_sources(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Label files from files and folders (``*.txt`` Raven tables, ``*.csv`` label CSVs and
    review journals; ``manifest.csv`` and other files in folders are skipped with a note)."""
    files, notes = [], []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file():
                    continue
                if f.suffix.lower() == ".txt" or (
                    f.suffix.lower() == ".csv"
                    and f.name != "manifest.csv"
                    and not f.name.endswith(".conflicts.csv")
                ):
                    files.append(f)
                elif f.suffix.lower() in (".csv",):
                    notes.append(f"{f}: skipped (not a label file)")
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise LabelImportError(
            [f"{', '.join(map(str, paths))}: no label files (*.txt Raven tables or *.csv) found"]
        )
    return files, notes


def _display(path: Path, bases: Sequence[Path]) -> str:
    """Portable name of an input file: relative to the import argument that contained it."""
    for b in bases:
        try:
            rel = path.resolve().relative_to(b.resolve() if b.is_dir() else b.resolve().parent)
            return rel.as_posix()
        except ValueError:
            continue
    return path.name


JOURNAL_SUFFIX = ".journal.csv"
#: journal ``present`` value withdrawing an answer
JOURNAL_CLEAR = "clear"


class Importer:
    """Row-by-row validation shared by Raven tables, CSV files and review journals."""

    def __init__(
        self,
        manifest: pd.DataFrame,
        resolver: SpeciesResolver,
        round_label: str,
        default_annotator: str | None,
    ) -> None:
        self.resolver = resolver
        self.round = round_label
        self.default_annotator = default_annotator
        self.units = {str(r["unit_id"]): r for r in manifest.to_dict("records")}
        self.by_stem: dict[str, str] = {}
        for uid, r in self.units.items():
            for key in ("clip_file", "table_file"):
                name = PurePosixPath(str(r.get(key) or "")).name
                if name:
                    self.by_stem[clip_stem(name).lower()] = uid
            self.by_stem.setdefault(unit_stem(uid).lower(), uid)
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.rows: list[dict[str, Any]] = []
        #: unanswered rows: (source, line, unit_id, annotator, message)
        self.unanswered: list[tuple[str, int, str, str, str]] = []
        #: display names of the files read
        self.sources: list[str] = []

    def annotator_of(self, value: str, unit: Mapping[str, Any]) -> str:
        """The annotator of a row: its own value, else the unit's batch annotator, else the
        default (``--annotator``), else ``unknown``."""
        return (
            value or str(unit.get("annotator") or "") or self.default_annotator or "unknown"
        ).strip()

    def unit_of(self, uid: str, where: str) -> Mapping[str, Any] | None:
        """The manifest row of ``uid``, or None (a problem ``where: unknown unit_id``)."""
        unit = self.units.get(uid)
        if unit is None:
            self.problems.append(f"{where}: unknown unit_id {uid!r} (not in this round's manifest)")
        return unit

    def base_row(self, unit: Mapping[str, Any], source: str, line: int) -> dict[str, Any]:
        """The unit and source columns of a label row."""
        return {
            "unit_id": str(unit["unit_id"]),
            "unit_type": unit["unit_type"],
            "recording_id": unit["recording_id"],
            "path": unit["path"],
            "start_s": float(unit["start_s"]),
            "end_s": float(unit["end_s"]),
            "round": self.round,
            "source_file": source,
            "source_line": line,
        }

    def _read(self, path: Path, source: str, preferred: str) -> DelimitedTable | None:
        try:
            return read_table(path, preferred)
        except LabelImportError as exc:
            self.problems.extend(p.replace(str(path), source, 1) for p in exc.problems)
        except OSError as exc:
            self.problems.append(f"{source}: cannot read: {exc.strerror or exc}")
        return None

    def raven(self, path: Path, source: str) -> None:
        t = self._read(path, source, "\t")
        if t is None:
            return
        header, rows = t.header, t.rows
        where = f"{source}"
        uid = self.by_stem.get(clip_stem(path.name).lower())
        if uid is None:
            self.problems.append(
                f"{where}: no unit of this round's manifest has a clip named "
                f"{clip_stem(path.name)!r} (tables are matched to units by file "
                f"name, <clip>{TABLE_SUFFIX})"
            )
            return
        unit = self.units[uid]
        sp_col = species_column(header)
        needed = {"Begin Time (s)", "End Time (s)"}
        missing = sorted(c for c in needed if not find_column(header, c))
        if sp_col is None:
            missing.append("Species (or Annotation)")
        if missing or sp_col is None:
            self.problems.append(
                f"{where}:1: missing column(s) {', '.join(missing)} (found: "
                f"{', '.join(h for h in header if h) or 'none'}; "
                f"{t.described()})"
            )
            return
        rows, merged = merge_views(rows, header)
        if merged:
            self.notes.append(
                f"{where}: {merged} row(s) repeating a selection in another view merged"
            )
        self._check_path_cells(rows, header, where)
        if not rows:
            self.rows.append(
                {
                    **self.base_row(unit, source, 1),
                    "species": NO_SPECIES,
                    "present": 0,
                    "in_target": 1,
                    "annotator": self.annotator_of("", unit),
                    "notes": "empty table: no species",
                }
            )
            return
        cols = {
            n: find_column(header, n)
            for n in (
                "Begin Time (s)",
                "End Time (s)",
                "Low Freq (Hz)",
                "High Freq (Hz)",
                "Present",
                "Confidence",
                "Annotator",
                "Notes",
            )
        }
        clip_len = float(unit["clip_end_s"]) - float(unit["clip_start_s"])
        for r in rows:
            self._raven_row(r, cols, sp_col, unit, clip_len, source)

    def _raven_row(
        self,
        r: RawRow,
        cols: Mapping[str, str | None],
        sp_col: str,
        unit: Mapping[str, Any],
        clip_len: float,
        source: str,
    ) -> None:
        where = f"{source}:{r.line}"
        get = lambda name: r.cells.get(cols[name] or "", "")  # noqa: E731
        try:
            begin = _float(get("Begin Time (s)"), "Begin Time (s)")
            end = _float(get("End Time (s)"), "End Time (s)")
            low = _optional_float(get("Low Freq (Hz)"), "Low Freq (Hz)")
            high = _optional_float(get("High Freq (Hz)"), "High Freq (Hz)")
            conf = _optional_float(get("Confidence"), "Confidence")
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        # no Present column at all (a table drawn from scratch): every selection is present
        present = parse_present(get("Present")) if cols["Present"] else 1
        if present is None:
            self.unanswered.append(
                (
                    source,
                    r.line,
                    str(unit["unit_id"]),
                    self.annotator_of(get("Annotator"), unit),
                    f"{where}: {unanswered_why(get('Present'))}",
                )
            )
            return
        if end <= begin:
            self.problems.append(
                f"{where}: End Time (s) {end:g} is not after Begin Time (s) {begin:g}"
            )
            return
        if begin < -TIME_TOLERANCE_S or end > clip_len + TIME_TOLERANCE_S:
            self.problems.append(
                f"{where}: selection {begin:g}-{end:g} s is outside the clip (0-{clip_len:g} s)"
            )
            return
        name = r.cells.get(sp_col, "")
        if not name:
            self.problems.append(f"{where}: empty {sp_col}: name the species or delete the row")
            return
        species = self.resolver.resolve(name)
        if species is None:
            self.problems.append(f"{where}: {self.resolver.error(name)}")
            return
        abs_b = float(unit["clip_start_s"]) + max(0.0, begin)
        abs_e = float(unit["clip_start_s"]) + min(clip_len, end)
        in_target = 1
        if unit["unit_type"] != "recording":
            overlap = min(abs_e, float(unit["end_s"])) - max(abs_b, float(unit["start_s"]))
            in_target = int(overlap > 1e-6)
            if not in_target:
                self.notes.append(
                    f"{where}: selection {begin:g}-{end:g} s lies outside the "
                    f"target segment; kept with in_target=0 (does not label "
                    "the unit)"
                )
        self.rows.append(
            {
                **self.base_row(unit, source, r.line),
                "species": species,
                "present": present,
                "sel_begin_s": round(abs_b, 4),
                "sel_end_s": round(abs_e, 4),
                "low_hz": low,
                "high_hz": high,
                "in_target": in_target,
                "annotator": self.annotator_of(get("Annotator"), unit),
                "confidence": conf,
                "notes": get("Notes"),
            }
        )

    def _check_path_cells(self, rows: Sequence[RawRow], header: Sequence[str], where: str) -> None:
        """Reject unsafe values in path-like columns (Raven's Begin Path: name only)."""
        for h in header:
            low = h.lower()
            if not ("path" in low or "file" in low) or not h:
                continue
            for r in rows:
                value = r.cells.get(h, "")
                if not value:
                    continue
                if low in ("begin path", "end path"):
                    # Raven writes the absolute path of the opened sound file; only its name is
                    # informative here and it is never opened.
                    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
                        self.problems.append(
                            f"{where}:{r.line}: {h} {value!r} escapes the "
                            "project ('..' not allowed)"
                        )
                    continue
                try:
                    safe_relpath(value, f"{where}:{r.line}: {h}")
                except ValueError as exc:
                    self.problems.append(str(exc))

    def csv(self, path: Path, source: str) -> None:
        t = self._read(path, source, ",")
        if t is None:
            return
        header, rows = t.header, t.rows
        if find_column(header, "answered_at"):
            self.journal(t, path, source)
            return
        missing = [c for c in ("unit_id", "species", "present") if not find_column(header, c)]
        if missing:
            self.problems.append(
                f"{source}:1: missing column(s) {', '.join(missing)} (a label "
                "CSV needs unit_id, species, present[, annotator, confidence, "
                f"notes]; {t.described()})"
            )
            return
        if not rows:
            self.problems.append(
                f"{source}:1: header only, no label rows (an empty CSV labels "
                "nothing; give one row per answer)"
            )
            return
        self._check_path_cells(rows, header, source)
        col = {
            n: find_column(header, n)
            for n in ("unit_id", "species", "present", "annotator", "confidence", "notes")
        }
        for r in rows:
            get = lambda name: r.cells.get(col[name] or "", "")  # noqa: E731
            self._answer(
                r.line,
                source,
                get("unit_id"),
                get("species"),
                get("present"),
                get("annotator"),
                get("confidence"),
                get("notes"),
            )

    def _answer(
        self,
        line: int,
        source: str,
        uid: str,
        name: str,
        present_text: str,
        annotator: str,
        confidence: str,
        notes: str,
        record: bool = True,
    ) -> dict[str, Any] | None:
        """Validate one CSV / journal answer; append it (``record``) and return the row."""
        where = f"{source}:{line}"
        unit = self.unit_of(uid, where)
        if unit is None:
            return None
        try:
            conf = _optional_float(confidence, "confidence")
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        present = parse_present(present_text)
        who = self.annotator_of(annotator, unit)
        if present is None:
            why = unanswered_why(present_text, "present")
            if present_text.strip() == "":
                why = "present is empty: " + why.split(": ", 1)[1]
            self.unanswered.append((source, line, uid, who, f"{where}: {why}"))
            return None
        if name == "":
            if present != 0:
                self.problems.append(
                    f"{where}: empty species with present="
                    f"{'1' if present == 1 else 'unsure'} (an empty species "
                    "with present=0 marks a unit with no species)"
                )
                return None
            species: str | None = NO_SPECIES
        else:
            species = self.resolver.resolve(name)
            if species is None:
                self.problems.append(f"{where}: {self.resolver.error(name)}")
                return None
        row = {
            **self.base_row(unit, source, line),
            "species": species,
            "present": present,
            "in_target": 1,
            "annotator": who,
            "confidence": conf,
            "notes": notes,
        }
        if record:
            self.rows.append(row)
        return row

    def journal(self, t: DelimitedTable, path: Path, source: str) -> None:
        """A review journal (CONTRACTS.md "Review journal"): the last event per (unit,
        annotator, species) wins (by ``seq``, then line); ``clear`` withdraws the answer."""
        missing = [c for c in ("unit_id", "species", "present") if not find_column(t.header, c)]
        if missing:
            self.problems.append(
                f"{source}:1: journal lacks column(s) {', '.join(missing)} ({t.described()})"
            )
            return
        if not t.rows:
            self.notes.append(f"{source}: journal has no answers yet")
            return
        col = {
            n: find_column(t.header, n)
            for n in ("unit_id", "species", "present", "annotator", "confidence", "notes", "seq")
        }
        file_annotator = (
            path.name[: -len(JOURNAL_SUFFIX)] if path.name.lower().endswith(JOURNAL_SUFFIX) else ""
        )
        events: list[tuple[float, int, tuple[str, str, str], dict[str, Any] | None]] = []
        for r in t.rows:
            get = lambda name: r.cells.get(col[name] or "", "")  # noqa: E731
            seq_text = get("seq")
            try:
                seq = float(int(seq_text)) if seq_text else math.inf
            except ValueError:
                self.problems.append(f"{source}:{r.line}: seq {seq_text!r} is not an integer")
                continue
            ann = get("annotator") or file_annotator
            uid, name = get("unit_id"), get("species")
            if get("present").strip().lower() == JOURNAL_CLEAR:
                unit = self.unit_of(uid, f"{source}:{r.line}")
                if unit is None:
                    continue
                species = NO_SPECIES if name == "" else self.resolver.resolve(name)
                if species is None:
                    self.problems.append(f"{source}:{r.line}: {self.resolver.error(name)}")
                    continue
                key = (uid, self.annotator_of(ann, unit), species)
                events.append((seq, r.line, key, None))
                continue
            row = self._answer(
                r.line,
                source,
                uid,
                name,
                get("present"),
                ann,
                get("confidence"),
                get("notes"),
                record=False,
            )
            if row is not None:
                events.append(
                    (seq, r.line, (row["unit_id"], row["annotator"], row["species"]), row)
                )
        last: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        for _, _, key, row in sorted(events, key=lambda e: (e[0], e[1])):
            last[key] = row
        superseded = len(events) - len(last)
        cleared = sum(v is None for v in last.values())
        kept = [row for row in last.values() if row is not None]
        self.rows.extend(sorted(kept, key=lambda row: row["source_line"]))
        if superseded or cleared:
            self.notes.append(
                f"{source}: journal of {len(events)} event(s): {superseded} "
                f"superseded by a later answer, {cleared} answer(s) cleared, "
                f"{len(kept)} kept"
            )

    def result(
        self,
        manifest: pd.DataFrame,
        previous: Mapping[str, set[str]] | None,
        skip_unanswered: bool = False,
    ) -> ImportResult:
        """Check the collected rows (unanswered, earlier rounds) and build the result."""
        labels = pd.DataFrame(self.rows).reindex(columns=list(LABEL_COLUMNS))
        problems = list(self.problems)
        summary: list[str] = []
        notes = list(self.notes)
        if self.unanswered:
            n_files = len({u[0] for u in self.unanswered})
            msgs = [u[4] for u in self.unanswered]
            if skip_unanswered:
                drop = {(u[0], u[2], u[3]) for u in self.unanswered}
                keys = list(zip(labels["source_file"], labels["unit_id"], labels["annotator"]))
                mask = np.array([k in drop for k in keys], dtype=bool)
                labels = labels[~mask]
                notes.append(
                    f"{len(msgs)} unanswered row(s) in {n_files} file(s); their "
                    f"{len(drop)} unit(s) were left out of this import (their other "
                    f"rows too, so that no species becomes absent by omission): " + "; ".join(msgs)
                )
            else:
                summary.append(
                    f"{len(msgs)} unanswered row(s) in {n_files} file(s) (blank, "
                    "'?' or unknown Present): answer them, or pass "
                    "--skip-unanswered to import the other units"
                )
                problems.extend(msgs)
        n_units = labels["unit_id"].nunique()
        for prev_file, units in (previous or {}).items():
            again = labels[labels["unit_id"].isin(units)].drop_duplicates("unit_id")
            if len(again):
                summary.append(
                    f"{len(again)} of {n_units} unit(s) of this import were already "
                    f"labelled in {prev_file} (units are labelled in one round "
                    "only; listed below)"
                )
            for r in again.itertuples(index=False):
                problems.append(
                    f"{r.source_file}:{r.source_line}: unit {r.unit_id!r} was "
                    f"already labelled in {prev_file}"
                )
        if not problems and labels.empty:
            names = sorted(set(self.sources))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            problems.append(f"no explicit answers in {shown or 'the input'}: nothing to import")
        if problems:
            raise LabelImportError(problems, summary=summary)
        labels = mark_conflicts(finalise_labels(labels))
        conflicts = find_conflicts(labels)
        dups = find_duplicates(labels)
        if len(dups):
            notes.append(
                f"{len(dups)} duplicate row(s) kept (same unit, annotator, species, "
                f"times): first at {dups['source_file'].iloc[0]}:"
                f"{dups['source_line'].iloc[0]}"
            )
        notes.extend(conflict_notes(conflicts))
        unlabelled = sorted(set(manifest["unit_id"].astype(str)) - set(labels["unit_id"]))
        if unlabelled:
            notes.append(
                f"{len(unlabelled)} of {len(manifest)} units have no labels yet: "
                f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}"
            )
        n_unsure = int((labels["present"] == UNSURE).sum())
        if n_unsure:
            notes.append(f"{n_unsure} unsure answer(s) (kept; not trained on)")
        return ImportResult(labels, conflicts, notes, sorted(set(self.sources)))


def _answer_rows(labels: pd.DataFrame) -> pd.DataFrame:
    return labels[(labels["in_target"] == 1) & (labels["species"] != NO_SPECIES)]


def mark_conflicts(labels: pd.DataFrame) -> pd.DataFrame:
    """``conflict`` = 1 on the in-target rows of every (unit, annotator, species) for which
    that annotator gave different explicit values (present / absent / unsure), else 0."""
    labels = labels.copy()
    labels["conflict"] = 0
    if labels.empty:
        return labels
    ans = _answer_rows(labels)
    n_vals = ans.groupby(["unit_id", "annotator", "species"])["present"].transform("nunique")
    labels.loc[n_vals[n_vals > 1].index, "conflict"] = 1
    labels["conflict"] = labels["conflict"].astype("int64")
    return labels


#: columns of ``round_RR.conflicts.csv``
CONFLICT_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "species",
    "kind",
    "present_by",
    "absent_by",
    "unsure_by",
    "sources",
)


def find_conflicts(labels: pd.DataFrame) -> pd.DataFrame:
    """Disputed (unit, species) cells (:data:`CONFLICT_COLUMNS`, ``sources`` as file:line).

    ``kind = same_annotator``: one annotator gave different explicit values (rows flagged by
    :func:`mark_conflicts`). ``kind = annotators``: one annotator says present (an in-target
    present row), another absent (an absent row, or no row: closed world). Unsure is neither:
    unsure annotators are listed in ``unsure_by`` but unsure against present or absent alone is
    not a conflict; a cell an annotator contradicted themselves on does not take part.
    """
    cols = list(CONFLICT_COLUMNS)
    if labels.empty:
        return pd.DataFrame(columns=cols)
    if "conflict" not in labels.columns:
        labels = mark_conflicts(labels)

    def where(g: pd.DataFrame) -> str:
        return ";".join(f"{f}:{ln}" for f, ln in zip(g["source_file"], g["source_line"]))

    out = []
    ans = _answer_rows(labels)
    for (uid, ann, sp), g in ans[ans["conflict"] == 1].groupby(
        ["unit_id", "annotator", "species"], sort=True
    ):
        vals = set(g["present"])
        out.append(
            {
                "unit_id": uid,
                "species": sp,
                "kind": "same_annotator",
                "present_by": ann if 1 in vals else "",
                "absent_by": ann if 0 in vals else "",
                "unsure_by": ann if UNSURE in vals else "",
                "sources": where(g),
            }
        )
    for uid, grp in labels.groupby("unit_id", sort=True):
        annotators = sorted(grp["annotator"].unique())
        if len(annotators) < 2:
            continue
        a = _answer_rows(grp)
        bad = set(zip(a.loc[a["conflict"] == 1, "annotator"], a.loc[a["conflict"] == 1, "species"]))
        for sp, sgrp in a[a["present"] == 1].groupby("species", sort=True):
            yes = sorted(x for x in sgrp["annotator"].unique() if (x, sp) not in bad)
            unsure = sorted(
                x
                for x in a.loc[
                    (a["species"] == sp) & (a["present"] == UNSURE), "annotator"
                ].unique()
                if (x, sp) not in bad and x not in yes
            )
            no = [x for x in annotators if x not in yes and x not in unsure and (x, sp) not in bad]
            if yes and no:
                out.append(
                    {
                        "unit_id": uid,
                        "species": sp,
                        "kind": "annotators",
                        "present_by": ";".join(yes),
                        "absent_by": ";".join(no),
                        "unsure_by": ";".join(unsure),
                        "sources": where(grp[(grp["species"] == sp) | (grp["annotator"].isin(no))]),
                    }
                )
    return pd.DataFrame(out, columns=cols)


def conflict_notes(conflicts: pd.DataFrame) -> list[str]:
    """One note per conflict (printed by the import)."""
    notes = []
    for c in conflicts.itertuples(index=False):
        if c.kind == "same_annotator":
            vals = [
                v
                for v, who in (
                    ("present", c.present_by),
                    ("absent", c.absent_by),
                    ("unsure", c.unsure_by),
                )
                if who
            ]
            notes.append(
                f"conflict: unit {c.unit_id} species {c.species}: annotator "
                f"{c.present_by or c.absent_by or c.unsure_by} answered "
                f"{' and '.join(vals)} ({c.sources}); kept, not trained on until "
                "resolved (see conflicts file)"
            )
        else:
            notes.append(
                f"conflict: unit {c.unit_id} species {c.species}: present for "
                f"{c.present_by}, absent for {c.absent_by} (kept; see conflicts file)"
            )
    return notes


def find_duplicates(labels: pd.DataFrame) -> pd.DataFrame:
    """Rows repeating (unit, annotator, species, present, selection times) - kept, reported."""
    if labels.empty:
        return labels
    key = ["unit_id", "annotator", "species", "present", "sel_begin_s", "sel_end_s"]
    k = labels[key].copy()
    k[["sel_begin_s", "sel_end_s"]] = k[["sel_begin_s", "sel_end_s"]].round(2)
    return labels[k.duplicated(keep=False)]


def import_labels(
    paths: Sequence[str | Path],
    manifest: pd.DataFrame,
    label_set: Sequence[str],
    *,
    round_id: int | str,
    default_annotator: str | None = None,
    previous: Mapping[str, set[str]] | None = None,
    skip_unanswered: bool = False,
) -> ImportResult:
    """Validate label files against a round's ``manifest`` and ``label_set``.

    ``previous`` maps earlier label files to the unit ids they label: a unit labelled before
    is refused. Unanswered rows (blank, ``?`` or unknown Present) are problems, or with
    ``skip_unanswered`` their units are left out of this import (reported per file:line).
    Raises :class:`LabelImportError` listing every problem; otherwise returns the label rows
    (:data:`LABEL_COLUMNS`, in input order), conflicts and notes.
    """
    files, notes = collect_sources(paths)
    bases = [Path(p) for p in paths]
    imp = Importer(manifest, SpeciesResolver(label_set), round_name(round_id), default_annotator)
    imp.notes.extend(notes)
    for f in files:
        source = _display(f, bases)
        try:
            safe_relpath(source, "source file")
        except ValueError:
            source = f.name
        imp.sources.append(source)
        if f.suffix.lower() == ".csv":
            imp.csv(f, source)
        else:
            imp.raven(f, source)
    return imp.result(manifest, previous, skip_unanswered)


def finalise_labels(labels: pd.DataFrame) -> pd.DataFrame:
    labels = labels.copy()
    labels["present"] = labels["present"].astype("int64")
    labels["in_target"] = labels["in_target"].fillna(1).astype("int64")
    labels["source_line"] = labels["source_line"].astype("int64")
    labels["conflict"] = labels["conflict"].fillna(0).astype("int64")
    for c in ("species", "annotator", "notes"):
        labels[c] = labels[c].fillna("").astype(str)
    return labels
