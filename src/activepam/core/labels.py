"""Labels: the label-file contract shared by detection, rounds, review and the workflow.

* the species label set (:func:`read_label_set`, :func:`label_set_path`) and the matching of
  what an annotator typed to it (:class:`SpeciesResolver`);
* an answer's ``present``: 1 present, 0 absent, :data:`UNSURE` (:func:`parse_present`, the
  spellings of CONTRACTS.md "Labels"; anything else is unanswered, :func:`unanswered_why`);
* the round label file ``data/labels/round_RR.csv`` (:data:`LABEL_COLUMNS`, :func:`read_labels`),
  round names (:func:`round_name`) and the clip an annotator hears for a unit
  (:func:`clip_window`);
* :class:`LabelImportError`, raised by the label readers with every problem as
  ``file:line: message``.

Importing, merging and writing label files is :mod:`activepam.rounds.importing` and
:mod:`activepam.rounds.history`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: columns of ``data/labels/round_RR.csv``
LABEL_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_type",
    "recording_id",
    "path",
    "start_s",
    "end_s",
    "species",
    "present",
    "sel_begin_s",
    "sel_end_s",
    "low_hz",
    "high_hz",
    "in_target",
    "annotator",
    "confidence",
    "notes",
    "round",
    "source_file",
    "source_line",
    "conflict",
)
#: ``species`` value of the row that records a reviewed unit with no species present
NO_SPECIES = ""

#: ``present`` of an unsure answer: neither present nor absent (masked in training)
UNSURE = -1
#: the three label values of ``present``: present, absent, unsure
LABEL_VALUES: tuple[int, ...] = (1, 0, UNSURE)

_TRUE = {"1", "yes", "y", "true", "t", "present", "p"}
_FALSE = {"0", "no", "n", "false", "f", "absent", "a"}
_UNSURE = {"unsure", "u", "?!", "maybe", "uncertain", "-1"}
#: Present value of a pre-filled, not yet reviewed row (Raven tables, review page)
UNREVIEWED = "?"


class LabelImportError(ValueError):
    """Label files failed validation; the message lists every problem as ``file:line: msg``."""

    def __init__(
        self, problems: Sequence[str], limit: int = 60, summary: Sequence[str] = ()
    ) -> None:
        self.problems = list(problems)
        #: counts over the problems (e.g. "3 unanswered row(s) in 1 file(s)"), shown first
        self.summary = list(summary)
        shown = self.problems[:limit]
        more = len(self.problems) - len(shown)
        msg = f"{len(self.problems)} problem(s) in the label files:\n  " + "\n  ".join(
            [*self.summary, *shown]
        )
        if more:
            msg += f"\n  ... and {more} more (the CLI lists them all)"
        super().__init__(msg)

    def full(self) -> str:
        """The message with every problem (no limit)."""
        return f"{len(self.problems)} problem(s) in the label files:\n  " + "\n  ".join(
            [*self.summary, *self.problems]
        )


def round_name(round_id: int | str) -> str:
    """Folder/file name of a round: ``round_03`` for 3 or "03"; ``test`` for the test set."""
    if str(round_id) == "test":
        return "test"
    try:
        r = int(round_id)
    except (TypeError, ValueError):
        raise ValueError(f"round must be a number or 'test', got {round_id!r}") from None
    if r < 0 or r > 99:
        raise ValueError(f"round must be in 0..99, got {r}")
    return f"round_{r:02d}"


def clip_window(
    start_s: float, end_s: float, duration_s: float, context_s: float, unit_type: str = "segment"
) -> tuple[float, float]:
    """Clip span in the recording: the unit +- ``context_s`` clipped to ``[0, duration_s]``;
    the whole recording for recording units."""
    if unit_type == "recording":
        return 0.0, float(duration_s)
    lo = max(0.0, float(start_s) - float(context_s))
    hi = min(float(duration_s), float(end_s) + float(context_s))
    return lo, max(lo, hi)


def parse_present(value: Any) -> int | None:
    """1 / 0 / :data:`UNSURE` of a Present cell (spellings in CONTRACTS.md "Labels"); None
    when the cell is *unanswered*: blank, ``?`` or any other value (see :func:`unanswered_why`).
    """
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    if text in _UNSURE:
        return UNSURE
    return None


def unanswered_why(value: Any, column: str = "Present") -> str:
    """Why a Present cell is unanswered (for the ``file:line`` message)."""
    text = str(value if value is not None else "").strip()
    if text == "":
        return (
            f"{column} is blank: unanswered (every row, also a newly drawn selection, must "
            "now carry an explicit value: 1 present, 0 absent or unsure)"
        )
    if text == UNREVIEWED:
        return (
            f"{column} is '?' (model suggestion not reviewed): unanswered; set 1 (present), "
            "0 (absent) or unsure, or delete the row"
        )
    return (
        f"{column} {text!r} is not a known answer (1/yes/present, 0/no/absent, "
        "unsure/maybe/u): unanswered"
    )


def read_label_set(path: str | Path) -> list[str]:
    """Species labels from a CSV with a ``species`` column or a text file (one per line).

    Blank lines and ``#`` comments are skipped; order is kept and duplicates removed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: label set not found")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "species" not in df.columns:
            raise ValueError(
                f"{path}: label set CSV needs a 'species' column (found: {', '.join(df.columns)})"
            )
        labels = [s.strip() for s in df["species"]]
    else:
        labels = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    labels = [s for s in labels if s and not s.startswith("#")]
    if not labels:
        raise ValueError(f"{path}: label set is empty")
    return list(dict.fromkeys(labels))


def label_set_path(params: Mapping[str, Any]) -> Path:
    """``rounds.label_set``, or ``species.csv`` in ``data.raw_dir`` when empty."""
    rounds = params.get("rounds") or {}
    path = rounds.get("label_set") or ""
    if path:
        return Path(path)
    return Path((params.get("data") or {}).get("raw_dir", "data/raw")) / "species.csv"


#: words of common names too generic to make a name similar on their own
_GENERIC_WORDS = frozenset(
    {
        "common",
        "eurasian",
        "european",
        "northern",
        "southern",
        "great",
        "lesser",
        "little",
        "american",
        "western",
        "eastern",
    }
)


class SpeciesResolver:
    """Map what an annotator typed to a label-set label.

    Accepted, case-insensitive: the full label (``Turdus merula_Common Blackbird``), or its
    scientific or common part alone when that part is unique in the label set.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._exact = {s: s for s in self.labels}
        lookup: dict[str, set[str]] = {}
        for lab in self.labels:
            keys = {lab.lower()}
            if "_" in lab:
                sci, common = lab.split("_", 1)
                keys |= {sci.strip().lower(), common.strip().lower()}
            for k in keys:
                lookup.setdefault(k, set()).add(lab)
        self._lookup = {k: next(iter(v)) for k, v in lookup.items() if len(v) == 1}
        self._choices = sorted(lookup)

    def resolve(self, name: str) -> str | None:
        """The label for ``name``, or None when it is not in the label set."""
        name = str(name).strip()
        return self._exact.get(name) or self._lookup.get(name.lower())

    #: similarity (difflib ratio) a label needs to be suggested
    SUGGEST_CUTOFF = 0.75

    def suggestions(self, name: str, n: int = 3) -> list[str]:
        """Labels similar to an unknown ``name``, best first (at most ``n``).

        The scientific part is compared with the labels' scientific parts and the common part
        with their common parts (a lone name with both), so a shared word such as "Common"
        never makes an unrelated species look close. A ``Scientific_Common`` query scores the
        mean of both parts, or one part alone when that part is very close (a typo).
        """
        text = str(name).strip().lower()
        if not text:
            return []
        ratio = lambda a, b: difflib.SequenceMatcher(None, a, b).ratio()  # noqa: E731
        q_sci, q_com = (p.strip() for p in text.split("_", 1)) if "_" in text else (text, text)
        both = "_" in text
        scored = []
        for lab in self.labels:
            low = lab.lower()
            l_sci, l_com = (p.strip() for p in low.split("_", 1)) if "_" in low else (low, low)
            s_sci, s_com = ratio(q_sci, l_sci), ratio(q_com, l_com)
            if both:
                score = max(
                    ratio(text, low), (s_sci + s_com) / 2, *(s for s in (s_sci, s_com) if s >= 0.8)
                )
            else:
                score = max(s_sci, s_com, ratio(text, low))
                if set(text.split()) - _GENERIC_WORDS and set(text.split()) <= set(l_com.split()):
                    score = max(score, 0.8)  # "Blackbird" -> "..._Common Blackbird"
            if score >= self.SUGGEST_CUTOFF:
                scored.append((-score, lab))
        return [lab for _, lab in sorted(scored)[:n]]

    def suggest(self, name: str) -> str | None:
        """The closest label to an unknown ``name`` (:meth:`suggestions`), or None."""
        best = self.suggestions(name, 1)
        return best[0] if best else None

    def error(self, name: str) -> str:
        """One-line message for an unknown species: the closest real labels, never an
        unrelated one; a well-formed ``Scientific_Common`` name is said to be missing from the
        label set."""
        hints = self.suggestions(name)
        well_formed = re.fullmatch(r"[A-Z][a-z]+ [a-z-]+_\S.*", str(name).strip()) is not None
        msg = f"species {name!r} is not in the label set"
        if well_formed:
            if hints:
                return msg + f"; closest in the label set: {', '.join(map(repr, hints))}"
            return msg + " (no similar label; add it to the label set if it belongs there)"
        if hints:
            return msg + f"; did you mean {' or '.join(map(repr, hints))}?"
        return msg


def read_labels(path: str | Path) -> pd.DataFrame:
    """A label file written by :func:`activepam.rounds.history.write_labels` (species "" kept
    as empty string; ``conflict`` added as 0 to files written before it existed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: label file not found")
    df = pd.read_csv(
        path,
        dtype={
            "unit_id": str,
            "recording_id": str,
            "species": str,
            "annotator": str,
            "notes": str,
            "round": str,
            "source_file": str,
            "path": str,
        },
        keep_default_na=False,
        na_values={
            c: [""]
            for c in (
                "start_s",
                "end_s",
                "sel_begin_s",
                "sel_end_s",
                "low_hz",
                "high_hz",
                "confidence",
            )
        },
    )
    missing = sorted(
        {
            "unit_id",
            "unit_type",
            "recording_id",
            "start_s",
            "end_s",
            "species",
            "present",
            "in_target",
            "annotator",
        }
        - set(df.columns)
    )
    if missing:
        raise ValueError(f"{path}: label file lacks column(s): {', '.join(missing)}")
    present = pd.to_numeric(df["present"], errors="coerce")
    bad = ~present.isin(LABEL_VALUES)
    if bad.any():
        raise ValueError(
            f"{path}:{int(np.flatnonzero(bad)[0]) + 2}: present must be 1, 0 or {UNSURE} (unsure)"
        )
    df["present"] = present.astype("int64")
    if "conflict" not in df.columns:
        df["conflict"] = 0
    df["conflict"] = pd.to_numeric(df["conflict"], errors="coerce").fillna(0).astype("int64")
    return df
