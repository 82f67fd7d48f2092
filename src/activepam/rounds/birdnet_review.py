"""Import BirdNET-Analyzer's review output (clips in ``Positive/`` / ``Negative/`` folders).

CLI ``activepam labels import-birdnet-review FOLDER --round R``: each reviewed clip is matched
to a unit of the round's manifest (our exported clip name, or a BirdNET-Analyzer segment name
matched by recording and times), validated like every other import
(:class:`activepam.rounds.importing.Importer`) and merged into the round file
(:func:`activepam.rounds.history.commit_import`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from activepam.core.labels import UNSURE, LabelImportError, SpeciesResolver, round_name
from activepam.rounds.history import import_round
from activepam.rounds.importing import Importer, ImportResult

#: folders BirdNET-Analyzer's review tab moves clips into, and the label each means
BIRDNET_REVIEW_DIRS: dict[str, int] = {"positive": 1, "negative": 0}
#: audio suffixes BirdNET-Analyzer reads (``cfg.ALLOWED_FILETYPES``)
BIRDNET_AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".wma", ".aiff", ".aif"}
)
#: a segment written by ``birdnet_analyzer.segments``:
#: ``<confidence:.3f>_<n>_<recording stem>_<start:.2f>s_<end:.2f>s.<ext>`` (start/end in the
#: recording)
BIRDNET_SEGMENT_RE = re.compile(
    r"^(?P<conf>\d+(?:\.\d+)?)_(?P<n>\d+)_(?P<rec>.+)_"
    r"(?P<start>\d+(?:\.\d+)?)s_(?P<end>\d+(?:\.\d+)?)s$"
)


def _birdnet_unit(
    imp: Importer, stem: str, by_rec: Mapping[str, list[str]]
) -> tuple[str | None, tuple[float, float] | None]:
    """Unit of a reviewed clip: our exported clip name, or a BirdNET-Analyzer segment name
    (recording stem + start/end) matched to the unit overlapping it most (a segment unit that
    covers at least half of it, else a recording unit of that recording)."""
    uid = imp.by_stem.get(stem.lower())
    if uid is not None:
        return uid, None
    m = BIRDNET_SEGMENT_RE.match(stem)
    if not m:
        return None, None
    start, end = float(m["start"]), float(m["end"])
    best, best_ov = None, 0.0
    for cand in by_rec.get(m["rec"].lower(), []):
        u = imp.units[cand]
        if u["unit_type"] == "recording":
            continue
        ov = min(end, float(u["end_s"])) - max(start, float(u["start_s"]))
        if ov > best_ov:
            best, best_ov = cand, ov
    if best is not None and best_ov >= 0.5 * (end - start) - 1e-6:
        return best, (start, end)
    rec_units = [
        c for c in by_rec.get(m["rec"].lower(), []) if imp.units[c]["unit_type"] == "recording"
    ]
    return (rec_units[0] if rec_units else None), (start, end)


def import_birdnet_review(
    folder: str | Path,
    manifest: pd.DataFrame,
    label_set: Sequence[str],
    *,
    round_id: int | str,
    species: str | None = None,
    species_from_folder: bool = False,
    annotator: str | None = None,
    closed_world: bool = False,
    previous: Mapping[str, set[str]] | None = None,
) -> ImportResult:
    """Labels from BirdNET-Analyzer's review tab: clips moved into ``Positive/`` (present = 1)
    and ``Negative/`` (present = 0) folders, either directly under ``folder`` or under one
    folder per species (``<species>/Positive/``, as ``birdnet_analyzer.segments`` writes them).

    Each clip is mapped to a unit of the manifest by its name: one of our exported clips
    (``<stem>.wav``), or a BirdNET-Analyzer segment
    (``<conf>_<n>_<recording>_<start>s_<end>s.wav``) whose recording and times are matched to
    a unit (:func:`_birdnet_unit`). The species is ``species`` or (``species_from_folder``) the
    folder holding ``Positive/``/``Negative/``, resolved against the label set.

    BirdNET-Analyzer's review answers one species per clip, while a label file is closed world
    per (unit, annotator): so every other label-set species of a reviewed unit gets an unsure
    row (masked in training) unless ``closed_world`` (the reviewer vouches that no other
    species is audible).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if (species is None) == (not species_from_folder):
        raise ValueError(
            "give exactly one of species (--species NAME) and "
            "species_from_folder (--species-from-folder)"
        )
    resolver = SpeciesResolver(label_set)
    imp = Importer(manifest, resolver, round_name(round_id), annotator)
    by_rec: dict[str, list[str]] = {}
    for uid, u in imp.units.items():
        for rec_key in {
            PurePosixPath(str(u["path"]).replace("\\", "/")).stem.lower(),
            str(u["recording_id"]).lower(),
        }:
            by_rec.setdefault(rec_key, []).append(uid)
    fixed: str | None = None
    if species is not None:
        fixed = resolver.resolve(species)
        if fixed is None:
            raise LabelImportError([f"--species: {resolver.error(species)}"])
    clips = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and f.suffix.lower() in BIRDNET_AUDIO_SUFFIXES and not f.name.startswith(".")
    )
    pending = 0
    for f in clips:
        verdict = BIRDNET_REVIEW_DIRS.get(f.parent.name.lower())
        if verdict is None:
            pending += 1
            continue
        source = f.relative_to(folder).as_posix()
        imp.sources.append(source)
        sp = fixed
        if sp is None:
            sp_dir = f.parent.parent
            if sp_dir.resolve() == folder.resolve():
                imp.problems.append(
                    f"{source}: no species folder above {f.parent.name}/ (give --species NAME)"
                )
                continue
            sp = resolver.resolve(sp_dir.name)
            if sp is None:
                imp.problems.append(f"{source}: species folder: {resolver.error(sp_dir.name)}")
                continue
        found, span = _birdnet_unit(imp, f.stem, by_rec)
        if found is None:
            imp.problems.append(
                f"{source}: no unit of this round's manifest matches this clip "
                "(expected an exported clip name or a BirdNET-Analyzer segment "
                "<conf>_<n>_<recording>_<start>s_<end>s)"
            )
            continue
        unit = imp.units[found]
        row = {
            **imp.base_row(unit, source, 0),
            "species": sp,
            "present": verdict,
            "in_target": 1,
            "annotator": imp.annotator_of("", unit),
            "notes": "BirdNET-Analyzer review",
        }
        if span is not None:
            row |= {"sel_begin_s": span[0], "sel_end_s": span[1]}
        imp.rows.append(row)
    if pending:
        imp.notes.append(
            f"{pending} clip(s) not reviewed yet (not in a Positive/ or Negative/ folder): left out"
        )
    if not closed_world and imp.rows:
        reviewed: dict[tuple[str, str], set[str]] = {}
        first: dict[tuple[str, str], dict[str, Any]] = {}
        for row in imp.rows:
            key = (row["unit_id"], row["annotator"])
            reviewed.setdefault(key, set()).add(row["species"])
            first.setdefault(key, row)
        for key, done in reviewed.items():
            base = first[key]
            for other in resolver.labels:
                if other not in done:
                    imp.rows.append(
                        {
                            **{
                                c: base[c]
                                for c in (
                                    "unit_id",
                                    "unit_type",
                                    "recording_id",
                                    "path",
                                    "start_s",
                                    "end_s",
                                    "round",
                                    "source_file",
                                    "source_line",
                                    "annotator",
                                )
                            },
                            "species": other,
                            "present": UNSURE,
                            "in_target": 1,
                            "notes": "not reviewed (BirdNET-Analyzer review covers "
                            "one species per clip)",
                        }
                    )
    return imp.result(manifest, previous)


def run_import_birdnet(
    folder: str | Path,
    round_id: int | str,
    manifest_path: str | Path,
    label_set: str | Path,
    out: str | Path,
    labels_dir: str | Path | None = None,
    *,
    species: str | None = None,
    species_from_folder: bool = False,
    annotator: str | None = None,
    closed_world: bool = False,
    force: bool = False,
) -> ImportResult:
    """:func:`import_birdnet_review` + the same merge, history and report as
    :func:`activepam.rounds.history.run_import`."""
    return import_round(
        lambda manifest, labels, prev: import_birdnet_review(
            folder,
            manifest,
            labels,
            round_id=round_id,
            species=species,
            species_from_folder=species_from_folder,
            annotator=annotator,
            closed_world=closed_world,
            previous=prev,
        ),
        manifest_path,
        label_set,
        out,
        labels_dir,
        force=force,
        action="birdnet",
    )
