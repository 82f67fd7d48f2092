"""The round label file ``data/labels/round_RR.csv``: merge of all imports, with a history.

The round file is the merge of all imports (:func:`commit_import`): an import adds (unit,
annotator) pairs, an identical re-import changes nothing, and re-answering a pair needs
``--force``, which replaces exactly that pair; another annotator's rows are never removed.
Every change is kept in ``<labels_dir>/history/round_RR/`` (``activepam labels
history|restore``: :func:`read_history`, :func:`restore_labels`). Conflicts are written to
``round_RR.conflicts.csv``. :func:`run_import` is the whole ``activepam labels import`` step:
read, validate (:mod:`activepam.rounds.importing`), merge, record, report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from activepam.core.io import write_csv
from activepam.core.labels import (
    LABEL_COLUMNS,
    UNSURE,
    LabelImportError,
    read_label_set,
    read_labels,
)
from activepam.rounds.export import read_manifest
from activepam.rounds.importing import (
    ImportResult,
    finalise_labels,
    find_conflicts,
    import_labels,
    mark_conflicts,
)

log = logging.getLogger(__name__)


def write_labels(result: ImportResult, out: str | Path, force: bool = False) -> Path:
    """Write the labels (and ``<name>.conflicts.csv`` when annotators disagree).

    Refuses to overwrite an existing label file unless ``force`` (:func:`commit_import` merges
    into it instead).
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(
            f"{out} exists: labels are never overwritten (use --force to replace them deliberately)"
        )
    _write_round(result.labels, result.conflicts, out)
    return out


def _write_round(labels: pd.DataFrame, conflicts: pd.DataFrame, out: Path) -> None:
    write_csv(labels.reindex(columns=list(LABEL_COLUMNS)), out, stage="labels")
    cpath = out.with_name(out.stem + ".conflicts.csv")
    if len(conflicts):
        write_csv(conflicts, cpath, stage="labels")
    elif cpath.exists():
        cpath.unlink()


def previous_label_units(labels_dir: str | Path, round_label: str) -> dict[str, set[str]]:
    """Unit ids of the label files a new import must not overlap: for ``round_RR`` the earlier
    rounds and ``test.csv``; for ``test`` every round. A unit whose answers there are all
    unsure is not included: it may be offered again (to another annotator) and labelled in a
    later round."""
    out = {}
    for f in sorted(Path(labels_dir).glob("*.csv")):
        if f.stem == round_label or not re.fullmatch(r"round_\d{2}|test", f.stem):
            continue
        if (
            round_label.startswith("round_")
            and f.stem.startswith("round_")
            and f.stem >= round_label
        ):
            continue  # a later round's (possibly stale) file is not "before" this one
        lab = read_labels(f)
        settled = lab.groupby(lab["unit_id"].astype(str))["present"].apply(
            lambda p: bool((p != UNSURE).any())
        )
        out[f.as_posix()] = set(settled.index[settled.to_numpy(bool)])
    return out


#: label columns compared to decide whether a re-imported (unit, annotator) pair changed
_COMPARE_COLUMNS: tuple[str, ...] = (
    "species",
    "present",
    "sel_begin_s",
    "sel_end_s",
    "low_hz",
    "high_hz",
    "in_target",
    "confidence",
    "notes",
)


def _pair_answers(rows: pd.DataFrame) -> dict[tuple[str, str], tuple[tuple[str, ...], ...]]:
    """Canonical answers per (unit, annotator): sorted tuples of :data:`_COMPARE_COLUMNS`."""
    out: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for r in rows.to_dict("records"):
        cells = []
        for c in _COMPARE_COLUMNS:
            v = r.get(c)
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{v:.3f}"
            cells.append(str(v if v is not None else ""))
        out.setdefault((str(r["unit_id"]), str(r["annotator"])), []).append(tuple(cells))
    return {k: tuple(sorted(v)) for k, v in out.items()}


@dataclass
class MergeResult:
    """The round file after an import and what the import changed."""

    labels: pd.DataFrame
    applied: pd.DataFrame
    added: list[tuple[str, str]]
    replaced: list[tuple[str, str]]
    unchanged: list[tuple[str, str]]


def merge_round(existing: pd.DataFrame, new: pd.DataFrame, force: bool = False) -> MergeResult:
    """Merge an import into the round file: new (unit, annotator) pairs are added; a pair
    re-imported with identical answers is left as it is; a pair with different answers needs
    ``force`` and then replaces exactly that pair's rows. No other row is ever removed.
    Raises :class:`LabelImportError` (``file:line`` of the new row and the earlier one) for
    changed pairs without ``force``."""
    old_ans, new_ans = _pair_answers(existing), _pair_answers(new)
    added = [k for k in new_ans if k not in old_ans]
    unchanged = [k for k in new_ans if k in old_ans and old_ans[k] == new_ans[k]]
    changed = [k for k in new_ans if k in old_ans and old_ans[k] != new_ans[k]]
    if changed and not force:

        def first(df: pd.DataFrame, k: tuple[str, str]) -> pd.Series:
            hit = (df["unit_id"].astype(str) == k[0]) & (df["annotator"].astype(str) == k[1])
            return df[hit].iloc[0]

        summary = [
            f"{len(changed)} (unit, annotator) pair(s) of this import were answered "
            "differently in the round file already (--force replaces exactly these "
            "pairs; every other row is kept)"
        ]
        problems = []
        for k in changed:
            n, o = first(new, k), first(existing, k)
            problems.append(
                f"{n['source_file']}:{n['source_line']}: unit {k[0]!r} annotator "
                f"{k[1]!r} already answered (from {o['source_file']}:"
                f"{o['source_line']})"
            )
        raise LabelImportError(problems, summary=summary)
    keys_new = list(zip(new["unit_id"].astype(str), new["annotator"].astype(str)))
    take = set(added) | set(changed)
    applied = new[[k in take for k in keys_new]]
    keys_old = list(zip(existing["unit_id"].astype(str), existing["annotator"].astype(str)))
    kept = existing[[k not in set(changed) for k in keys_old]]
    frames = [f for f in (kept, applied) if len(f)]
    merged = pd.concat(frames, ignore_index=True) if frames else new.iloc[0:0]
    merged = mark_conflicts(finalise_labels(merged.reindex(columns=list(LABEL_COLUMNS))))
    return MergeResult(merged, applied, added, changed, unchanged)


def history_dir(out: str | Path) -> Path:
    """History folder of a round file: ``<labels_dir>/history/<round>/``."""
    out = Path(out)
    return out.parent / "history" / out.stem


def read_history(out: str | Path) -> list[dict[str, Any]]:
    """Entries of a round's ``log.jsonl`` (oldest first)."""
    log_path = history_dir(out) / "log.jsonl"
    if not log_path.exists():
        return []
    entries = []
    for i, line in enumerate(log_path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{log_path}:{i}: not a JSON line") from None
    return entries


@contextmanager
def _history_lock(out: Path) -> Iterator[Path]:
    """Exclusive lock of a round's history (one import / restore at a time)."""
    hdir = history_dir(out)
    hdir.mkdir(parents=True, exist_ok=True)
    with open(hdir / ".lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            pass
        yield hdir


def _append_log(hdir: Path, entry: Mapping[str, Any]) -> None:
    with open(hdir / "log.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _snapshot(
    hdir: Path, n: int, round_labels: pd.DataFrame, rows: pd.DataFrame | None = None
) -> None:
    if rows is not None:
        write_csv(rows.reindex(columns=list(LABEL_COLUMNS)), hdir / f"{n:04d}.csv", stage="labels")
    write_csv(
        round_labels.reindex(columns=list(LABEL_COLUMNS)),
        hdir / f"{n:04d}.round.csv",
        stage="labels",
    )


def _adopt_current(out: Path, hdir: Path, entries: list[dict[str, Any]]) -> list[str]:
    """Keep a round file that the history does not know (written before histories existed,
    or edited by hand) as a history entry before it is changed."""
    if not out.exists():
        if entries:
            return [
                f"{out} is missing: starting from no labels (the history keeps every "
                f"earlier state: `activepam labels restore --round ... --to "
                f"{entries[-1]['n']}`)"
            ]
        return []
    if (
        entries
        and (hdir / f"{entries[-1]['n']:04d}.round.csv").exists()
        and (hdir / f"{entries[-1]['n']:04d}.round.csv").read_bytes() == out.read_bytes()
    ):
        return []
    n = (entries[-1]["n"] + 1) if entries else 1
    labels = read_labels(out)
    _snapshot(hdir, n, labels)
    entry = {
        "n": n,
        "action": "adopt",
        "time": _now(),
        "rows_total": int(len(labels)),
        "units_total": int(labels["unit_id"].nunique()),
        "note": "round file not in the history (older or edited by hand): kept as it was",
    }
    _append_log(hdir, entry)
    entries.append(entry)
    return [f"{out}: kept the existing round file as history entry {n} before changing it"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def commit_import(
    result: ImportResult, out: str | Path, force: bool = False, action: str = "import"
) -> tuple[MergeResult | None, list[str]]:
    """Merge an import into the round file ``out`` (:func:`merge_round`), write it atomically
    with its conflicts file, and record the import in the round's history (rows of the import,
    the round file after it, a ``log.jsonl`` line). Returns the merge (None when nothing
    changed) and notes."""
    out = Path(out)
    with _history_lock(out) as hdir:
        entries = read_history(out)
        notes = _adopt_current(out, hdir, entries)
        existing = read_labels(out) if out.exists() else pd.DataFrame(columns=list(LABEL_COLUMNS))
        merged = merge_round(existing, result.labels, force=force)
        if merged.unchanged:
            notes.append(
                f"{len(merged.unchanged)} (unit, annotator) pair(s) re-imported with "
                "identical answers: unchanged"
            )
        if not merged.added and not merged.replaced:
            notes.append(f"{out}: nothing new to import (unchanged)")
            return None, notes
        n = (entries[-1]["n"] + 1) if entries else 1
        conflicts = find_conflicts(merged.labels)
        _snapshot(hdir, n, merged.labels, merged.applied)
        _write_round(merged.labels, conflicts, out)
        _append_log(
            hdir,
            {
                "n": n,
                "action": action,
                "time": _now(),
                "sources": result.sources,
                "force": bool(force),
                "annotators": sorted(set(merged.applied["annotator"])),
                "rows_added": int(len(merged.applied)),
                "pairs_added": len(merged.added),
                "pairs_replaced": len(merged.replaced),
                "pairs_unchanged": len(merged.unchanged),
                "replaced": [list(k) for k in merged.replaced],
                "rows_total": int(len(merged.labels)),
                "units_total": int(merged.labels["unit_id"].nunique()),
                "conflicts": int(len(conflicts)),
            },
        )
        if merged.replaced:
            notes.append(
                f"--force: replaced the answers of {len(merged.replaced)} (unit, "
                f"annotator) pair(s); history entry {n - 1 if n > 1 else 0} keeps "
                "the earlier state"
            )
        return merged, notes


def restore_labels(out: str | Path, to: int) -> pd.DataFrame:
    """Rebuild the round file ``out`` as it was after history entry ``to`` (written atomically,
    recorded as a new ``restore`` entry, so a restore can be undone too)."""
    out = Path(out)
    with _history_lock(out) as hdir:
        entries = read_history(out)
        known = {e["n"] for e in entries}
        state = hdir / f"{int(to):04d}.round.csv"
        if int(to) not in known or not state.exists():
            raise ValueError(
                f"{hdir}: no history entry {to} (entries: "
                f"{', '.join(map(str, sorted(known))) or 'none'})"
            )
        _adopt_current(out, hdir, entries)
        labels = mark_conflicts(
            finalise_labels(read_labels(state).reindex(columns=list(LABEL_COLUMNS)))
        )
        conflicts = find_conflicts(labels)
        n = entries[-1]["n"] + 1
        _snapshot(hdir, n, labels)
        _write_round(labels, conflicts, out)
        _append_log(
            hdir,
            {
                "n": n,
                "action": "restore",
                "time": _now(),
                "restored": int(to),
                "rows_total": int(len(labels)),
                "units_total": int(labels["unit_id"].nunique()),
                "conflicts": int(len(conflicts)),
            },
        )
        return labels


def format_history(entries: Sequence[Mapping[str, Any]]) -> str:
    """The history as a small text table."""
    lines = [
        f"{'n':>4}  {'time':25}  {'action':8}  {'+rows':>6}  {'+pairs':>6}  "
        f"{'replaced':>8}  {'rows':>6}  {'units':>5}  sources / note"
    ]
    for e in entries:
        what = (
            ", ".join(e.get("sources") or [])
            or e.get("note", "")
            or (f"restored entry {e['restored']}" if "restored" in e else "")
        )
        if len(what) > 60:
            what = what[:57] + "..."
        lines.append(
            f"{e['n']:>4}  {e.get('time', ''):25}  {e.get('action', ''):8}  "
            f"{e.get('rows_added', ''):>6}  {e.get('pairs_added', ''):>6}  "
            f"{e.get('pairs_replaced', ''):>8}  {e.get('rows_total', ''):>6}  "
            f"{e.get('units_total', ''):>5}  {what}"
        )
    return "\n".join(lines)


def _report(
    result: ImportResult, merged: MergeResult | None, notes: Sequence[str], out: Path
) -> None:
    for note in [*result.notes, *notes]:
        log.warning(note)
        print(f"activepam labels: {note}", file=sys.stderr)
    if merged is None:
        return
    lab = merged.labels
    n_conf = len(find_conflicts(lab))
    print(
        f"activepam labels: {len(merged.applied)} label rows for "
        f"{merged.applied['unit_id'].nunique()} units imported; the round file has "
        f"{len(lab)} label rows for {lab['unit_id'].nunique()} units -> {out}"
        f"{f'; {n_conf} conflict(s)' if n_conf else ''}",
        file=sys.stderr,
    )


def import_round(
    read: Callable[[pd.DataFrame, list[str], dict[str, set[str]]], ImportResult],
    manifest_path: str | Path,
    label_set: str | Path,
    out: str | Path,
    labels_dir: str | Path | None = None,
    *,
    force: bool = False,
    action: str = "import",
) -> ImportResult:
    """One import step: read the round's manifest and the label set, ``read(manifest, labels,
    previous)`` the answers (``previous``: :func:`previous_label_units` of ``labels_dir``, else
    the round file's folder), merge them into the round file ``out`` (:func:`commit_import`,
    history entry ``action``) and report notes/conflicts on stderr (and the log)."""
    out = Path(out)
    manifest = read_manifest(manifest_path)
    labels = read_label_set(label_set)
    prev = previous_label_units(labels_dir or out.parent, out.stem)
    result = read(manifest, labels, prev)
    merged, notes = commit_import(result, out, force=force, action=action)
    _report(result, merged, notes, out)
    return result


def run_import(
    paths: Sequence[str | Path],
    round_id: int | str,
    manifest_path: str | Path,
    label_set: str | Path,
    out: str | Path,
    labels_dir: str | Path | None = None,
    force: bool = False,
    annotator: str | None = None,
    skip_unanswered: bool = False,
) -> ImportResult:
    """Import, merge into the round file (:func:`commit_import`: never removes another
    annotator's rows; ``force`` replaces re-answered (unit, annotator) pairs only), record the
    history, report notes/conflicts on stderr (and the log)."""
    out = Path(out)
    return import_round(
        lambda manifest, labels, prev: import_labels(
            paths,
            manifest,
            labels,
            round_id=round_id,
            default_annotator=annotator,
            previous=prev,
            skip_unanswered=skip_unanswered,
        ),
        manifest_path,
        label_set,
        out,
        labels_dir,
        force=force,
    )
