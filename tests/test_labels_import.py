"""Label import semantics (issue 11 "Labels", issue 13 import side): unanswered rows, same-
annotator conflicts, Raven view pairs, header-only CSVs, merge + history of a round file,
delimiters/encodings, earlier-round overlaps, species suggestions, unsure, review journals and
BirdNET-Analyzer review folders."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from activepam.cli import main as cli_main
from activepam.core.labels import (
    LABEL_VALUES,
    UNSURE,
    LabelImportError,
    SpeciesResolver,
    read_labels,
)
from activepam.rounds.birdnet_review import import_birdnet_review
from activepam.rounds.export import read_manifest
from activepam.rounds.history import (
    history_dir,
    previous_label_units,
    read_history,
    restore_labels,
    run_import,
    write_labels,
)
from activepam.rounds.importing import import_labels
from activepam.rounds.tables import RAVEN_COLUMNS, TABLE_SUFFIX

LABELS = [
    "Turdus merula_Common Blackbird",
    "Erithacus rubecula_European Robin",
    "Parus major_Great Tit",
]
HEADER = "\t".join(RAVEN_COLUMNS)


def manifest_for(stems: list[str], annotators: list[str] | None = None) -> pd.DataFrame:
    """Segment units ``<stem>@4.0`` (4-7 s) whose 11 s clips are named ``<stem>.wav``."""
    rows = []
    for i, s in enumerate(stems):
        rows.append(
            {
                "unit_id": f"{s}@4.0",
                "unit_type": "segment",
                "recording_id": s,
                "path": f"data/raw/x/{s}.wav",
                "start_s": 4.0,
                "end_s": 7.0,
                "clip_start_s": 0.0,
                "clip_end_s": 11.0,
                "target_begin_s": 4.0,
                "target_end_s": 7.0,
                "clip_file": f"all/{s}.wav",
                "table_file": f"all/{s}{TABLE_SUFFIX}",
                "batch": "all",
                "annotator": (annotators or [""])[i % len(annotators or [""])],
            }
        )
    return pd.DataFrame(rows)


def raven(path: Path, rows: list[list[object]]) -> Path:
    path.write_text(HEADER + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def sel(
    begin: float,
    end: float,
    species: str,
    present: object = 1,
    annotator: str = "ann",
    n: int = 1,
    view: str = "Spectrogram 1",
) -> list[object]:
    return [n, view, 1, begin, end, 500, 5000, species, present, "", annotator, ""]


def csv_file(
    path: Path, rows: list[str], header: str = "unit_id,species,present,annotator"
) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def problems(exc: pytest.ExceptionInfo[LabelImportError]) -> str:
    return "\n".join(exc.value.problems)


# --------------------------------------------------------------------------- 1. unanswered


def test_blank_question_mark_and_unknown_present_are_unanswered(tmp_path: Path) -> None:
    t = raven(
        tmp_path / f"recA{TABLE_SUFFIX}",
        [
            sel(4.5, 5.5, LABELS[0], ""),
            sel(4.5, 5.5, LABELS[1], "?", n=2),
            sel(4.5, 5.5, LABELS[2], "xyz", n=3),
            sel(5.0, 6.0, LABELS[0], 1, n=4),
        ],
    )
    with pytest.raises(LabelImportError) as exc:
        import_labels([t], manifest_for(["recA"]), LABELS, round_id=0)
    text = problems(exc)
    assert exc.value.summary[0].startswith("3 unanswered row(s) in 1 file(s)")
    assert len(exc.value.problems) == 3 and str(exc.value).startswith("3 problem(s)")
    assert f"{t.name}:2: Present is blank" in text
    assert "newly drawn selection, must now carry an explicit value" in text
    assert f"{t.name}:3: Present is '?'" in text
    assert f"{t.name}:4: Present 'xyz' is not a known answer" in text
    c = csv_file(tmp_path / "x.csv", [f"recA@4.0,{LABELS[0]},,ann"])
    with pytest.raises(LabelImportError, match="x.csv:2: present is empty"):
        import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)


def test_skip_unanswered_leaves_the_whole_unit_out(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    a = raven(
        tmp_path / f"recA{TABLE_SUFFIX}",
        [sel(4.5, 5.5, LABELS[0], 1), sel(4.5, 5.5, LABELS[1], "", n=2)],
    )
    b = raven(tmp_path / f"recB{TABLE_SUFFIX}", [sel(4.5, 5.5, LABELS[2], 0)])
    res = import_labels([a, b], m, LABELS, round_id=0, skip_unanswered=True)
    # recA's explicit row is left out too: otherwise LABELS[1] would become absent (closed world)
    assert list(res.labels["unit_id"]) == ["recB@4.0"]
    note = next(n for n in res.notes if "unanswered" in n)
    assert "1 unanswered row(s)" in note and f"{a.name}:3" in note
    with pytest.raises(LabelImportError, match="no explicit answers"):
        import_labels([a], m, LABELS, round_id=0, skip_unanswered=True)


def test_table_without_present_column_means_present(tmp_path: Path) -> None:
    t = tmp_path / f"recA{TABLE_SUFFIX}"
    t.write_text("Selection\tBegin Time (s)\tEnd Time (s)\tSpecies\n1\t4.5\t5.5\tParus major\n")
    res = import_labels([t], manifest_for(["recA"]), LABELS, round_id=0)
    assert list(res.labels["present"]) == [1]


# --------------------------------------------------------------------------- 2. conflicts


def test_same_annotator_present_and_absent_is_a_conflict(tmp_path: Path) -> None:
    c = csv_file(
        tmp_path / "x.csv",
        [
            f"recA@4.0,{LABELS[0]},1,ann",
            f"recA@4.0,{LABELS[1]},1,ann",
            f"recA@4.0,{LABELS[0]},0,ann",
        ],
    )
    res = import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    assert list(res.labels["conflict"]) == [1, 0, 1]
    conf = res.conflicts
    assert conf[["unit_id", "species", "kind", "present_by", "absent_by"]].values.tolist() == [
        ["recA@4.0", LABELS[0], "same_annotator", "ann", "ann"]
    ]
    assert conf["sources"].iloc[0] == "x.csv:2;x.csv:4"
    assert any(
        "annotator ann answered present and absent (x.csv:2;x.csv:4)" in n for n in res.notes
    )
    out = write_labels(res, tmp_path / "labels" / "round_00.csv")
    back = read_labels(out)
    assert list(back["conflict"]) == [1, 0, 1]
    assert "same_annotator" in (out.parent / "round_00.conflicts.csv").read_text()


# --------------------------------------------------------------------------- 3. views


def test_view_pairs_merge_but_reused_selection_numbers_are_kept(tmp_path: Path) -> None:
    rows = [
        sel(4.5, 5.5, LABELS[0], n=1),
        sel(5.0, 6.0, LABELS[1], n=1, view="Waveform 1"),  # reused number, other content
        sel(6.0, 6.5, LABELS[2], n=2),
        sel(6.0, 6.5, LABELS[2], n=2, view="Waveform 1"),
    ]  # a true view pair
    t = raven(tmp_path / f"recA{TABLE_SUFFIX}", rows)
    res = import_labels([t], manifest_for(["recA"]), LABELS, round_id=0)
    assert list(res.labels["species"]) == [LABELS[0], LABELS[1], LABELS[2]]
    assert list(res.labels["source_line"]) == [2, 3, 4]
    assert any("1 row(s) repeating a selection in another view merged" in n for n in res.notes)


def test_view_pairs_with_differing_measurements_are_one_selection(tmp_path: Path) -> None:
    """Raven leaves measurements such as Avg Power Density empty in the Waveform row."""
    t = tmp_path / f"recA{TABLE_SUFFIX}"
    t.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
        "\tAvg Power Density (dB FS/Hz)\tAnnotation\tPresent\n"
        "1\tWaveform 1\t1\t4.709509878\t5.096397225\t1739.012\t3798.813\t\tParus major\t1\n"
        "1\tSpectrogram 1\t1\t4.709509878\t5.096397225\t1739.012\t3798.813\t-75.87\t"
        "Parus major\t1\n"
        "2\tWaveform 1\t1\t5.5\t6.5\t1587.060\t4136.485\t\tParus major\t0\n"
        "2\tSpectrogram 1\t1\t5.5\t6.5\t1587.060\t4136.485\t-71.2\tErithacus rubecula\t1\n"
    )
    res = import_labels([t], manifest_for(["recA"]), LABELS, round_id=0)
    assert res.labels[["species", "present", "source_line"]].values.tolist() == [
        [LABELS[2], 1, 3],
        [LABELS[2], 0, 4],
        [LABELS[1], 1, 5],
    ]


# --------------------------------------------------------------------------- 4. header only


def test_header_only_csv_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = csv_file(tmp_path / "x.csv", [])
    with pytest.raises(LabelImportError, match="x.csv:1: header only"):
        import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    monkeypatch.chdir(tmp_path)
    manifest_for(["recA"]).to_csv("manifest.csv", index=False)
    pd.DataFrame({"species": LABELS}).to_csv("species.csv", index=False)
    rc = cli_main(
        [
            "labels",
            "import",
            "x.csv",
            "--round",
            "0",
            "--manifest",
            "manifest.csv",
            "--label-set",
            "species.csv",
            "--params",
            "none.yaml",
        ]
    )
    assert rc == 1 and "header only" in capsys.readouterr().err
    assert not (tmp_path / "data" / "labels" / "round_00.csv").exists()
    # an empty Raven table (header only) still means "no species"
    t = raven(tmp_path / f"recA{TABLE_SUFFIX}", [])
    res = import_labels([t], manifest_for(["recA"]), LABELS, round_id=0)
    assert list(res.labels["species"]) == [""] and list(res.labels["present"]) == [0]


# --------------------------------------------------------------------------- 5. merge + history


def _setup_round(root: Path) -> tuple[Path, Path]:
    m = manifest_for([f"rec{i}" for i in range(6)], annotators=["ann"])
    m.to_csv(root / "manifest.csv", index=False)
    pd.DataFrame({"species": LABELS}).to_csv(root / "species.csv", index=False)
    return root / "manifest.csv", root / "species.csv"


def test_round_twice_second_annotator_forced_partial_batch_and_restore(tmp_path: Path) -> None:
    """Must show: no row of either batch is lost, and the history restores earlier states."""
    manifest, species = _setup_round(tmp_path)
    out = tmp_path / "labels" / "round_00.csv"
    full = csv_file(tmp_path / "ann.csv", [f"rec{i}@4.0,{LABELS[i % 3]},1,ann" for i in range(6)])
    run_import([full], 0, manifest, species, out)
    first = out.read_bytes()
    run_import([full], 0, manifest, species, out)  # the same batch again: a no-op
    assert out.read_bytes() == first
    bob = csv_file(tmp_path / "bob.csv", [f"rec{i}@4.0,,0,bob" for i in range(3)])
    run_import([bob], 0, manifest, species, out)  # a second annotator: added
    lab = read_labels(out)
    assert len(lab) == 9 and set(lab["annotator"]) == {"ann", "bob"}
    assert len(pd.read_csv(out.with_name("round_00.conflicts.csv"))) == 3  # ann vs bob
    # a partial re-answer by ann: refused without --force, replaces only its 2 pairs with it
    partial = csv_file(
        tmp_path / "ann_fix.csv", [f"rec{i}@4.0,{LABELS[2]},1,ann" for i in range(2)]
    )
    with pytest.raises(LabelImportError) as exc:
        run_import([partial], 0, manifest, species, out)
    assert (
        "ann_fix.csv:2: unit 'rec0@4.0' annotator 'ann' already answered (from ann.csv:2)"
        in problems(exc)
    )
    run_import([partial], 0, manifest, species, out, force=True)
    lab = read_labels(out)
    assert len(lab) == 9  # nothing lost: 4 untouched ann rows + 2 replaced + bob's 3
    ann = lab[lab["annotator"] == "ann"].set_index("unit_id")["species"]
    assert ann["rec0@4.0"] == LABELS[2] and ann["rec1@4.0"] == LABELS[2]
    assert ann["rec5@4.0"] == LABELS[2] and ann["rec3@4.0"] == LABELS[0]
    assert (lab["annotator"] == "bob").sum() == 3
    log = read_history(out)
    assert [e["action"] for e in log] == ["import", "import", "import"]
    assert [e["rows_total"] for e in log] == [6, 9, 9]
    assert log[2]["pairs_replaced"] == 2 and log[2]["force"] is True
    hdir = history_dir(out)
    assert sorted(p.name for p in hdir.glob("*.csv")) == [
        "0001.csv",
        "0001.round.csv",
        "0002.csv",
        "0002.round.csv",
        "0003.csv",
        "0003.round.csv",
    ]
    assert len(pd.read_csv(hdir / "0003.csv")) == 2  # the rows of that import only
    # restore the state before the forced import, then the first one; both are undoable
    restore_labels(out, 2)
    back = read_labels(out)
    assert len(back) == 9 and back[back["annotator"] == "ann"]["species"].tolist() == [
        LABELS[i % 3] for i in range(6)
    ]
    restore_labels(out, 1)
    assert out.read_bytes() == first
    restore_labels(out, 3)
    assert read_labels(out)["species"].tolist() == lab["species"].tolist()
    assert [e["action"] for e in read_history(out)][3:] == ["restore"] * 3
    with pytest.raises(ValueError, match="no history entry 99"):
        restore_labels(out, 99)


def test_concurrent_imports_of_different_annotators_lose_nothing(tmp_path: Path) -> None:
    manifest, species = _setup_round(tmp_path)
    out = tmp_path / "labels" / "round_00.csv"
    names = ["ann", "bob", "eve", "kim"]
    files = [
        csv_file(tmp_path / f"{a}.csv", [f"rec{i}@4.0,{LABELS[i % 3]},1,{a}" for i in range(6)])
        for a in names
    ]
    errors: list[BaseException] = []

    def work(f: Path) -> None:
        try:
            run_import([f], 0, manifest, species, out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lab = read_labels(out)
    assert len(lab) == 24 and sorted(set(lab["annotator"])) == names
    assert [e["n"] for e in read_history(out)] == [1, 2, 3, 4]


def test_round_file_edited_by_hand_is_adopted_into_history(tmp_path: Path) -> None:
    manifest, species = _setup_round(tmp_path)
    out = tmp_path / "labels" / "round_00.csv"
    out.parent.mkdir()
    old = import_labels(
        [csv_file(tmp_path / "a.csv", ["rec0@4.0,,0,ann"])],
        read_manifest(manifest),
        LABELS,
        round_id=0,
    )
    write_labels(old, out)  # a round file from before histories existed
    run_import([csv_file(tmp_path / "b.csv", ["rec1@4.0,,0,bob"])], 0, manifest, species, out)
    assert [e["action"] for e in read_history(out)] == ["adopt", "import"]
    assert len(read_labels(out)) == 2
    restore_labels(out, 1)
    assert read_labels(out)["unit_id"].tolist() == ["rec0@4.0"]


def test_cli_history_and_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _setup_round(tmp_path)
    csv_file(tmp_path / "a.csv", ["rec0@4.0,,0,ann"])
    csv_file(tmp_path / "b.csv", ["rec1@4.0,,0,bob"])
    base = ["--round", "0", "--params", "none.yaml"]
    imp = ["--manifest", "manifest.csv", "--label-set", "species.csv"]
    assert cli_main(["labels", "import", "a.csv", *base, *imp]) == 0
    assert cli_main(["labels", "import", "b.csv", *base, *imp]) == 0
    capsys.readouterr()
    assert cli_main(["labels", "history", *base]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and "a.csv" in table[1] and "b.csv" in table[2]
    assert cli_main(["labels", "restore", "--to", "1", *base]) == 0
    assert read_labels("data/labels/round_00.csv")["unit_id"].tolist() == ["rec0@4.0"]
    assert cli_main(["labels", "restore", "--to", "7", *base]) == 1
    assert "no history entry 7" in capsys.readouterr().err


# --------------------------------------------------------------------------- 6. encodings


@pytest.mark.parametrize(
    "encoding, bom",
    [("utf-8", b""), ("utf-16", b""), ("utf-16-le", b""), ("utf-8", b"\xef\xbb\xbf")],
)
def test_semicolons_and_utf16_are_read(tmp_path: Path, encoding: str, bom: bytes) -> None:
    c = tmp_path / "x.csv"
    text = "unit_id;species;present;annotator\nrecA@4.0;Erithacus rubecula;1;zoë\n"
    c.write_bytes(bom + text.encode(encoding))
    res = import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    assert res.labels[["species", "annotator"]].values.tolist() == [[LABELS[1], "zoë"]]


def test_utf16_raven_table_and_header_shown_when_columns_missing(tmp_path: Path) -> None:
    t = tmp_path / f"recA{TABLE_SUFFIX}"
    t.write_bytes(
        (HEADER + "\n" + "\t".join(map(str, sel(4.5, 5.5, LABELS[0]))) + "\n").encode("utf-16")
    )
    assert len(import_labels([t], manifest_for(["recA"]), LABELS, round_id=0).labels) == 1
    c = tmp_path / "x.csv"
    c.write_bytes("unit;species\nrecA@4.0;x\n".encode("utf-16"))
    with pytest.raises(LabelImportError) as exc:
        import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    assert "missing column(s) unit_id, present" in problems(exc)
    assert "header read as utf-16, ';'-separated: unit | species" in problems(exc)


# --------------------------------------------------------------------------- 7. earlier rounds


def test_already_labelled_units_all_listed_and_counted(tmp_path: Path) -> None:
    stems = [f"r{i:02d}" for i in range(70)]
    m = manifest_for(stems)
    c = csv_file(tmp_path / "x.csv", [f"{s}@4.0,,0,ann" for s in stems])
    out = write_labels(
        import_labels([c], m, LABELS, round_id=0), tmp_path / "labels" / "round_00.csv"
    )
    c2 = csv_file(tmp_path / "y.csv", [f"{s}@4.0,,0,bob" for s in stems] + ["r00@4.0,,0,eve"])
    prev = previous_label_units(out.parent, "round_01")
    with pytest.raises(LabelImportError) as exc:
        import_labels([c2], m, LABELS, round_id=1, previous=prev)
    text = problems(exc)
    assert exc.value.summary == [
        f"70 of 70 unit(s) of this import were already labelled in "
        f"{out.as_posix()} (units are labelled in one round only; "
        "listed below)"
    ]
    assert len(exc.value.problems) == 70 and str(exc.value).startswith("70 problem(s)")
    assert all("was already labelled in" in p for p in exc.value.problems)
    assert f"y.csv:71: unit 'r69@4.0' was already labelled in {out.as_posix()}" in text
    assert "... and 10 more" in str(exc.value)  # the message says how many are not shown
    assert "r69@4.0" in exc.value.full()  # and the CLI prints every one


# --------------------------------------------------------------------------- 8. species names


def test_species_suggestions_by_scientific_and_common_name() -> None:
    labels = [
        "Turdus merula_Common Blackbird",
        "Fringilla coelebs_Common Chaffinch",
        "Parus major_Great Tit",
    ]
    r = SpeciesResolver(labels)
    msg = r.error("Corvus corax_Common Raven")
    assert "not in the label set" in msg and "Fringilla" not in msg
    assert r.suggest("Common Raven") is None  # "Common" alone is no similarity
    r2 = SpeciesResolver(labels + ["Corvus corone_Carrion Crow"])
    assert "closest in the label set: 'Corvus corone_Carrion Crow'" in r2.error(
        "Corvus corax_Common Raven"
    )
    assert r.suggest("Blackbird") == labels[0]
    assert r.suggest("Parus majr") == labels[2]


# --------------------------------------------------------------------------- 9. unsure


def test_unsure_from_csv_raven_and_read_back(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    c = csv_file(
        tmp_path / "x.csv", [f"recA@4.0,{LABELS[0]},unsure,ann", f"recA@4.0,{LABELS[1]},P,ann"]
    )
    t = raven(
        tmp_path / f"recB{TABLE_SUFFIX}",
        [sel(4.5, 5.5, LABELS[2], "maybe"), sel(4.5, 5.5, LABELS[0], "A", n=2)],
    )
    res = import_labels([c, t], m, LABELS, round_id=0)
    assert list(res.labels["present"]) == [UNSURE, 1, UNSURE, 0]
    assert UNSURE == -1 and LABEL_VALUES == (1, 0, -1)
    assert any("2 unsure answer(s)" in n for n in res.notes)
    back = read_labels(write_labels(res, tmp_path / "round_00.csv"))
    assert list(back["present"]) == [-1, 1, -1, 0]
    bad = csv_file(tmp_path / "e.csv", ["recA@4.0,,unsure,ann"])
    with pytest.raises(LabelImportError, match="empty species with present=unsure"):
        import_labels([bad], m, LABELS, round_id=0)


def test_unsure_is_neither_present_nor_absent_between_annotators(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    c = csv_file(
        tmp_path / "x.csv",
        [
            f"recA@4.0,{LABELS[0]},1,ann",
            f"recA@4.0,{LABELS[0]},unsure,bob",  # not a conflict
            f"recB@4.0,{LABELS[0]},1,ann",
            f"recB@4.0,{LABELS[0]},0,bob",
            f"recB@4.0,{LABELS[0]},unsure,eve",
        ],
    )
    res = import_labels([c], m, LABELS, round_id=0)
    conf = res.conflicts
    assert conf[["unit_id", "kind", "present_by", "absent_by", "unsure_by"]].values.tolist() == [
        ["recB@4.0", "annotators", "ann", "bob", "eve"]
    ]
    assert (res.labels["conflict"] == 0).all()
    same = csv_file(
        tmp_path / "s.csv", [f"recA@4.0,{LABELS[0]},1,ann", f"recA@4.0,{LABELS[0]},u,ann"]
    )
    assert import_labels([same], m, LABELS, round_id=0).conflicts["kind"].tolist() == [
        "same_annotator"
    ]


def test_all_unsure_units_may_be_labelled_again(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    c = csv_file(
        tmp_path / "x.csv",
        [
            f"recA@4.0,{LABELS[0]},unsure,ann",
            f"recA@4.0,{LABELS[1]},unsure,ann",
            f"recB@4.0,{LABELS[0]},unsure,ann",
            f"recB@4.0,{LABELS[1]},0,ann",
        ],
    )
    out = write_labels(
        import_labels([c], m, LABELS, round_id=0), tmp_path / "labels" / "round_00.csv"
    )
    prev = previous_label_units(out.parent, "round_01")
    assert prev == {out.as_posix(): {"recB@4.0"}}
    again = csv_file(tmp_path / "y.csv", [f"recA@4.0,{LABELS[0]},1,bob"])
    assert len(import_labels([again], m, LABELS, round_id=1, previous=prev).labels) == 1
    refused = csv_file(tmp_path / "z.csv", [f"recB@4.0,{LABELS[0]},1,bob"])
    with pytest.raises(LabelImportError, match="already labelled"):
        import_labels([refused], m, LABELS, round_id=1, previous=prev)


# --------------------------------------------------------------------------- 10. journal

JOURNAL_HEADER = "unit_id,species,present,annotator,confidence,notes,answered_at,seq"


def test_journal_last_event_wins_and_clear_removes(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB", "recC"])
    jdir = tmp_path / "journal"
    jdir.mkdir()
    t = "2026-12-01T10:00:0{}Z"
    csv_file(
        jdir / "ann.journal.csv",
        [
            f"recA@4.0,{LABELS[0]},1,ann,,,{t.format(1)},1",
            f"recA@4.0,{LABELS[0]},0,ann,,second thoughts,{t.format(2)},2",  # supersedes seq 1
            f"recA@4.0,{LABELS[1]},unsure,ann,0.4,,{t.format(3)},3",
            f"recB@4.0,{LABELS[2]},1,ann,,,{t.format(5)},5",
            f"recB@4.0,{LABELS[2]},clear,ann,,,{t.format(6)},6",  # withdrawn
            f"recC@4.0,{LABELS[2]},1,,,,{t.format(4)},4",  # annotator from name
            f"recA@4.0,{LABELS[1]},1,ann,,,{t.format(0)},0",  # older (seq 0)
        ],
        header=JOURNAL_HEADER,
    )
    csv_file(
        jdir / "bob.journal.csv", [f"recA@4.0,,0,bob,,,{t.format(1)},1"], header=JOURNAL_HEADER
    )
    csv_file(jdir / "eve.journal.csv", [], header=JOURNAL_HEADER)  # opened, nothing answered
    res = import_labels([jdir], m, LABELS, round_id=0)
    got = res.labels[
        ["unit_id", "species", "present", "annotator", "notes", "source_file", "source_line"]
    ].values.tolist()
    assert got == [
        ["recA@4.0", LABELS[0], 0, "ann", "second thoughts", "ann.journal.csv", 3],
        ["recA@4.0", LABELS[1], -1, "ann", "", "ann.journal.csv", 4],
        ["recC@4.0", LABELS[2], 1, "ann", "", "ann.journal.csv", 7],
        ["recA@4.0", "", 0, "bob", "", "bob.journal.csv", 2],
    ]
    assert res.labels["confidence"].iloc[1] == pytest.approx(0.4)
    assert (res.labels["conflict"] == 0).all()  # superseded events are not conflicts
    assert any(
        "ann.journal.csv: journal of 7 event(s): 3 superseded by a later answer, 1 "
        "answer(s) cleared, 3 kept" in n
        for n in res.notes
    )
    assert any("eve.journal.csv: journal has no answers yet" in n for n in res.notes)
    bad = csv_file(
        tmp_path / "bad.journal.csv",
        [f"recA@4.0,{LABELS[0]},,ann,,,{t.format(1)},x"],
        header=JOURNAL_HEADER,
    )
    with pytest.raises(LabelImportError) as exc:
        import_labels([bad], m, LABELS, round_id=0)
    assert "bad.journal.csv:2: seq 'x' is not an integer" in problems(exc)


# --------------------------------------------------------------------------- 11. BirdNET-Analyzer


def _clip(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(800, dtype=np.float32), 8000)


def test_birdnet_analyzer_review_folders(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB", "recC"])
    root = tmp_path / "review"
    # BirdNET-Analyzer segments: <conf>_<n>_<recording>_<start>s_<end>s.wav per species folder
    _clip(root / "Common Blackbird" / "Positive" / "0.812_1_recA_4.00s_7.00s.wav")
    _clip(root / "Common Blackbird" / "Negative" / "0.301_2_recB_4.50s_7.50s.wav")
    _clip(root / "Common Blackbird" / "0.290_3_recC_4.00s_7.00s.wav")  # not reviewed yet
    _clip(root / "European Robin" / "Positive" / "recA.wav")  # one of our exported clips
    res = import_birdnet_review(
        root, m, LABELS, round_id=0, species_from_folder=True, annotator="kim"
    )
    lab = res.labels
    answered = lab[lab["present"] != UNSURE].set_index("source_file")
    assert answered[["unit_id", "species", "present", "annotator"]].sort_index().to_dict(
        "index"
    ) == {
        "Common Blackbird/Negative/0.301_2_recB_4.50s_7.50s.wav": {
            "unit_id": "recB@4.0",
            "species": LABELS[0],
            "present": 0,
            "annotator": "kim",
        },
        "Common Blackbird/Positive/0.812_1_recA_4.00s_7.00s.wav": {
            "unit_id": "recA@4.0",
            "species": LABELS[0],
            "present": 1,
            "annotator": "kim",
        },
        "European Robin/Positive/recA.wav": {
            "unit_id": "recA@4.0",
            "species": LABELS[1],
            "present": 1,
            "annotator": "kim",
        },
    }
    assert answered.loc[
        "Common Blackbird/Negative/0.301_2_recB_4.50s_7.50s.wav", "sel_begin_s"
    ] == pytest.approx(4.5)
    # one species reviewed per clip: the other label-set species are unsure, not absent
    unsure = lab[lab["present"] == UNSURE]
    assert sorted(map(tuple, unsure[["unit_id", "species"]].values.tolist())) == [
        ("recA@4.0", LABELS[2]),
        ("recB@4.0", LABELS[1]),
        ("recB@4.0", LABELS[2]),
    ]
    assert (lab["conflict"] == 0).all()
    assert any("1 clip(s) not reviewed yet" in n for n in res.notes)
    closed = import_birdnet_review(
        root, m, LABELS, round_id=0, species_from_folder=True, closed_world=True
    )
    assert (closed.labels["present"] != UNSURE).all() and len(closed.labels) == 3
    flat = tmp_path / "flat"
    _clip(flat / "Positive" / "0.900_1_recC_4.00s_7.00s.wav")
    one = import_birdnet_review(flat, m, LABELS, round_id=0, species="Great Tit", closed_world=True)
    assert one.labels[["unit_id", "species", "present"]].values.tolist() == [
        ["recC@4.0", LABELS[2], 1]
    ]
    with pytest.raises(LabelImportError, match="no species folder"):
        import_birdnet_review(flat, m, LABELS, round_id=0, species_from_folder=True)
    _clip(flat / "Negative" / "0.500_2_recZ_1.00s_4.00s.wav")
    with pytest.raises(
        LabelImportError,
        match="Negative/0.500_2_recZ_1.00s_4.00s.wav: no unit of this round's manifest matches",
    ):
        import_birdnet_review(flat, m, LABELS, round_id=0, species="Great Tit")


def test_cli_import_birdnet_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _setup_round(tmp_path)
    _clip(tmp_path / "rev" / "Great Tit" / "Positive" / "0.700_1_rec2_4.00s_7.00s.wav")
    args = [
        "labels",
        "import-birdnet-review",
        "rev",
        "--round",
        "0",
        "--species-from-folder",
        "--manifest",
        "manifest.csv",
        "--label-set",
        "species.csv",
        "--annotator",
        "kim",
        "--params",
        "none.yaml",
    ]
    assert cli_main(args) == 0
    lab = read_labels("data/labels/round_00.csv")
    assert lab.loc[lab["present"] == 1, ["unit_id", "species"]].values.tolist() == [
        ["rec2@4.0", LABELS[2]]
    ]
    assert (
        json.loads(Path("data/labels/history/round_00/log.jsonl").read_text().splitlines()[0])[
            "action"
        ]
        == "birdnet"
    )
