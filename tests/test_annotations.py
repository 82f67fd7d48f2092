"""Export of annotation sets and import/validation of expert labels (Raven tables, CSVs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from activepam.cli import main as cli_main
from activepam.core.labels import (
    LABEL_COLUMNS,
    NO_SPECIES,
    LabelImportError,
    SpeciesResolver,
    read_label_set,
    read_labels,
)
from activepam.rounds.export import (
    MANIFEST_COLUMNS,
    ExportOptions,
    assign_batches,
    export_annotation_set,
)
from activepam.rounds.history import previous_label_units, write_labels
from activepam.rounds.importing import import_labels, safe_relpath
from activepam.rounds.tables import RAVEN_COLUMNS, TABLE_SUFFIX

LABELS = [
    "Turdus merula_Common Blackbird",
    "Erithacus rubecula_European Robin",
    "Parus major_Great Tit",
]
HEADER = "\t".join(RAVEN_COLUMNS)


def manifest_for(stems: list[str], clip_len: float = 11.0, start_s: float = 4.0) -> pd.DataFrame:
    """A manifest of segment units whose clips are named ``stems`` (clip starts at 0)."""
    rows = []
    for s in stems:
        rows.append(
            {
                "unit_id": f"{s}@{start_s:.1f}",
                "unit_type": "segment",
                "recording_id": s,
                "path": f"data/raw/x/{s}.wav",
                "start_s": start_s,
                "end_s": start_s + 3,
                "clip_start_s": 0.0,
                "clip_end_s": clip_len,
                "target_begin_s": start_s,
                "target_end_s": start_s + 3,
                "clip_file": f"all/{s}.wav",
                "table_file": f"all/{s}{TABLE_SUFFIX}",
                "batch": "all",
                "annotator": "",
            }
        )
    return pd.DataFrame(rows)


def table(path: Path, rows: list[list[object]], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def row(
    begin: float,
    end: float,
    species: str,
    present: object = 1,
    annotator: str = "ann",
    sel: int = 1,
) -> list[object]:
    return [sel, "Spectrogram 1", 1, begin, end, 500, 5000, species, present, "", annotator, ""]


def problems(exc: pytest.ExceptionInfo[LabelImportError]) -> str:
    return "\n".join(exc.value.problems)


# --------------------------------------------------------------------------- valid input


def test_import_raven_table_labels_target(tmp_path: Path) -> None:
    m = manifest_for(["recA"])
    f = table(
        tmp_path / f"recA{TABLE_SUFFIX}",
        [
            row(4.5, 5.5, LABELS[0]),
            row(5.0, 6.0, "parus major", 0, sel=2),
            row(0.2, 1.0, LABELS[1], sel=3),
        ],
    )  # inside the clip, outside the target segment
    res = import_labels([f], m, LABELS, round_id=0)
    lab = res.labels
    assert list(lab.columns) == list(LABEL_COLUMNS)
    assert list(lab["species"]) == [LABELS[0], LABELS[2], LABELS[1]]  # scientific name resolved
    assert list(lab["present"]) == [1, 0, 1]
    assert list(lab["in_target"]) == [1, 1, 0]
    assert lab["sel_begin_s"].iloc[0] == pytest.approx(4.5)
    assert list(lab["source_line"]) == [2, 3, 4]
    assert (lab["round"] == "round_00").all()
    assert any("outside the target segment" in n for n in res.notes)


def test_empty_table_means_no_species(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "edge_cases" / "EmptyExample.Table.1.selections.txt"
    res = import_labels(
        [src], manifest_for(["EmptyExample"]), LABELS, round_id=1, default_annotator="eve"
    )
    lab = res.labels
    assert len(lab) == 1
    assert lab["species"].iloc[0] == NO_SPECIES and lab["present"].iloc[0] == 0
    assert lab["annotator"].iloc[0] == "eve"


def test_annotation_column_accepted(realdata: Path) -> None:
    src = realdata / "edge_cases" / "raven_with_Annotation_col.txt"
    res = import_labels([src], manifest_for(["raven_with_Annotation_col"]), ["CSWA"], round_id=0)
    assert list(res.labels["species"]) == ["CSWA"]
    assert res.labels["in_target"].iloc[0] == 1  # 1.90-4.11 s overlaps the 4-7 s target


def test_real_table_with_codes_not_in_label_set(realdata: Path) -> None:
    src = realdata / "edge_cases" / "MSD-0003_20180427_2minstart00.Table.1.selections.txt"
    m = manifest_for(["MSD-0003_20180427_2minstart00"], clip_len=120.0)
    with pytest.raises(LabelImportError) as exc:
        import_labels([src], m, LABELS, round_id=0)
    text = problems(exc)
    assert f"{src.name}:2: species 'WOTH' is not in the label set" in text
    assert f"{src.name}:9: species 'LOWA'" in text
    assert f"{src.name}:11: empty Species" in text  # the unlabelled last selection
    assert len(exc.value.problems) == 10


def test_real_table_imports_with_matching_label_set(realdata: Path) -> None:
    src = realdata / "edge_cases" / "MSD-0003_20180427_2minstart00.Table.1.selections.txt"
    m = manifest_for(["MSD-0003_20180427_2minstart00"], clip_len=120.0, start_s=3.0)
    tmp = import_labels  # the empty-species row still has to be fixed by the expert
    with pytest.raises(LabelImportError, match="empty Species"):
        tmp([src], m, ["WOTH", "EATO", "LOWA"], round_id=0)


def test_csv_labels_and_negative_marker(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    f = tmp_path / "labels.csv"
    f.write_text(
        "unit_id,species,present,annotator,confidence,notes\n"
        f"recA@4.0,{LABELS[0]},1,ann,0.9,sure\n"
        "recB@4.0,,0,ann,,nothing audible\n"
    )
    res = import_labels([f], m, LABELS, round_id=2)
    lab = res.labels
    assert list(lab["unit_id"]) == ["recA@4.0", "recB@4.0"]
    assert list(lab["species"]) == [LABELS[0], ""]
    assert lab["confidence"].iloc[0] == pytest.approx(0.9)
    assert np.isnan(lab["sel_begin_s"].iloc[0])


def test_view_duplicates_merged(tmp_path: Path) -> None:
    rows = [row(4.5, 5.5, LABELS[0]), row(4.5, 5.5, LABELS[0])]
    rows[1][1] = "Waveform 1"
    f = table(tmp_path / f"recA{TABLE_SUFFIX}", rows)
    res = import_labels([f], manifest_for(["recA"]), LABELS, round_id=0)
    assert len(res.labels) == 1
    assert any("merged" in n for n in res.notes)


def test_folder_import_skips_manifest_and_reports_unlabelled(tmp_path: Path) -> None:
    m = manifest_for(["recA", "recB"])
    d = tmp_path / "returned"
    d.mkdir()
    m.to_csv(d / "manifest.csv", index=False)
    table(d / f"recA{TABLE_SUFFIX}", [row(4.5, 5.5, LABELS[0])])
    res = import_labels([d], m, LABELS, round_id=0)
    assert set(res.labels["unit_id"]) == {"recA@4.0"}
    assert any("1 of 2 units have no labels yet" in n for n in res.notes)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, expected",
    [
        ("Selection\tBegin Time (s)\tSpecies\n1\t4.0\tX\n", ":1: missing column(s) End Time (s)"),
        (
            "Selection\tBegin Time (s)\tEnd Time (s)\n1\t4\t5\n",
            ":1: missing column(s) Species (or Annotation)",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\tabc\t5\t0\t1\t{LABELS[0]}\t1\t\t\t\n",
            ":2: Begin Time (s) 'abc' is not a number",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t4\t50\t0\t1\t{LABELS[0]}\t1\t\t\t\n",
            ":2: selection 4-50 s is outside the clip (0-11 s)",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t6\t5\t0\t1\t{LABELS[0]}\t1\t\t\t\n",
            ":2: End Time (s) 5 is not after Begin Time (s) 6",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t4\t5\t0\t1\t{LABELS[0]}\t?\t\t\t\n",
            ":2: Present is '?' (model suggestion not reviewed)",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t4\t5\t0\t1\t{LABELS[0]}\tperhaps\t\t\t\n",
            ":2: Present 'perhaps' is not a known answer",
        ),  # "maybe" now means unsure
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t4\t5\t0\t1\tTurdus merla\t1\t\t\t\n",
            "did you mean 'Turdus merula_Common Blackbird'?",
        ),
        (
            f"{HEADER}\n1\tSpectrogram 1\t1\t4\t5\t0\t1\t{LABELS[0]}\t1\t\t\t\textra\n",
            ":2: 13 fields but the header has 12",
        ),
        ("", ":1: empty file"),
    ],
)
def test_bad_raven_tables(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / f"recA{TABLE_SUFFIX}"
    f.write_text(content)
    with pytest.raises(LabelImportError) as exc:
        import_labels([f], manifest_for(["recA"]), LABELS, round_id=0)
    assert expected in problems(exc)
    assert f.name in problems(exc)


def test_unknown_table_and_unit_ids(tmp_path: Path) -> None:
    t = table(tmp_path / f"stranger{TABLE_SUFFIX}", [row(4.5, 5.5, LABELS[0])])
    c = tmp_path / "x.csv"
    c.write_text(
        f"unit_id,species,present\nnope@1.0,{LABELS[0]},1\nrecA@4.0,,1\nrecA@4.0,{LABELS[0]},\n"
    )
    with pytest.raises(LabelImportError) as exc:
        import_labels([t, c], manifest_for(["recA"]), LABELS, round_id=0)
    text = problems(exc)
    assert "no unit of this round's manifest has a clip named 'stranger'" in text
    assert "x.csv:2: unknown unit_id 'nope@1.0'" in text
    assert "x.csv:3: empty species with present=1" in text
    assert "x.csv:4: present is empty" in text


def test_csv_missing_columns(tmp_path: Path) -> None:
    c = tmp_path / "x.csv"
    c.write_text("unit,species\nrecA@4.0,a\n")
    with pytest.raises(LabelImportError, match=r"x.csv:1: missing column\(s\) unit_id, present"):
        import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)


@pytest.mark.parametrize(
    "value",
    [
        "../secrets.wav",
        "/etc/passwd",
        "C:\\Users\\x.wav",
        "\\\\server\\share\\x.wav",
        "a/../../b.wav",
    ],
)
def test_paths_never_escape(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="absolute path|escapes the project"):
        safe_relpath(value, "here")
    c = tmp_path / "x.csv"
    c.write_text(f"unit_id,species,present,path\nrecA@4.0,{LABELS[0]},1,{value}\n")
    with pytest.raises(LabelImportError, match="x.csv:2: path"):
        import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)


def test_raven_begin_path_is_name_only(tmp_path: Path) -> None:
    header = HEADER + "\tBegin Path"
    ok = table(
        tmp_path / f"recA{TABLE_SUFFIX}",
        [row(4.5, 5.5, LABELS[0]) + ["C:\\clips\\recA.wav"]],
        header,
    )
    assert len(import_labels([ok], manifest_for(["recA"]), LABELS, round_id=0).labels) == 1
    table(ok, [row(4.5, 5.5, LABELS[0]) + ["../../recA.wav"]], header)
    with pytest.raises(LabelImportError, match="Begin Path '../../recA.wav' escapes"):
        import_labels([ok], manifest_for(["recA"]), LABELS, round_id=0)


def test_conflicts_kept_and_reported(tmp_path: Path) -> None:
    m = manifest_for(["recA"])
    a = tmp_path / "ann.csv"
    a.write_text(f"unit_id,species,present,annotator\nrecA@4.0,{LABELS[0]},1,ann\n")
    b = tmp_path / "bob.csv"
    b.write_text("unit_id,species,present,annotator\nrecA@4.0,,0,bob\n")
    res = import_labels([a, b], m, LABELS, round_id=0)
    assert len(res.labels) == 2  # both kept
    assert res.conflicts[["unit_id", "species", "present_by", "absent_by"]].values.tolist() == [
        ["recA@4.0", LABELS[0], "ann", "bob"]
    ]
    assert any(n.startswith("conflict: unit recA@4.0") for n in res.notes)
    out = write_labels(res, tmp_path / "labels" / "round_00.csv")
    assert (out.parent / "round_00.conflicts.csv").exists()


def test_duplicates_reported(tmp_path: Path) -> None:
    c = tmp_path / "x.csv"
    c.write_text(
        f"unit_id,species,present,annotator\nrecA@4.0,{LABELS[0]},1,ann\n"
        f"recA@4.0,{LABELS[0]},1,ann\n"
    )
    res = import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    assert len(res.labels) == 2
    assert any("2 duplicate row(s) kept" in n for n in res.notes)


def test_never_overwrite_and_no_relabelling(tmp_path: Path) -> None:
    m = manifest_for(["recA"])
    c = tmp_path / "x.csv"
    c.write_text(f"unit_id,species,present\nrecA@4.0,{LABELS[0]},1\n")
    res = import_labels([c], m, LABELS, round_id=0)
    out = tmp_path / "labels" / "round_00.csv"
    write_labels(res, out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_labels(res, out)
    assert out.read_bytes() == before
    write_labels(res, out, force=True)
    prev = previous_label_units(out.parent, "round_01")
    assert prev == {out.as_posix(): {"recA@4.0"}}
    with pytest.raises(LabelImportError, match="x.csv:2: unit 'recA@4.0' was already labelled in"):
        import_labels([c], m, LABELS, round_id=1, previous=prev)
    assert previous_label_units(out.parent, "round_00") == {}


def test_read_labels_roundtrip(tmp_path: Path) -> None:
    c = tmp_path / "x.csv"
    c.write_text("unit_id,species,present\nrecA@4.0,,0\n")
    res = import_labels([c], manifest_for(["recA"]), LABELS, round_id=0)
    out = write_labels(res, tmp_path / "round_00.csv")
    back = read_labels(out)
    assert back["species"].iloc[0] == "" and back["present"].iloc[0] == 0
    assert back["unit_id"].iloc[0] == "recA@4.0"


def test_label_set_and_resolver(tmp_path: Path) -> None:
    txt = tmp_path / "labels.txt"
    txt.write_text("# my species\nA_a\n\nB_b\nA_a\n")
    assert read_label_set(txt) == ["A_a", "B_b"]
    r = SpeciesResolver(LABELS)
    assert r.resolve("european robin") == LABELS[1]
    assert r.resolve("Corvus corax") is None
    assert r.suggest("Corvus corax_Common Raven") is None  # nothing close: no silly hint
    assert r.suggest("Erithacus rubecola") == LABELS[1]


# --------------------------------------------------------------------------- export + CLI


@pytest.fixture()
def clip_source(tmp_path: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    sr = 8000
    wav = tmp_path / "data" / "rec.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.random.default_rng(0).normal(0, 0.05, 20 * sr).astype(np.float32), sr)
    sample = pd.DataFrame(
        {
            "unit_id": ["rec@0.0", "rec@9.0", "rec@18.0", "rec"],
            "recording_id": "rec",
            "unit_type": ["segment", "segment", "segment", "recording"],
            "path": "data/rec.wav",
            "start_s": [0.0, 9.0, 18.0, 0.0],
            "end_s": [3.0, 12.0, 20.0, 20.0],
            "rank": [1, 2, 3, 4],
            "site": "S1",
            "stratum": ["a", "a", "b", "b"],
            "segment_time": pd.Timestamp("2025-05-01T04:00:00Z"),
        }
    )
    preds = pd.DataFrame(
        {
            "segment_id": ["rec@0.0", "rec@0.0", "rec@9.0", "rec@18.0", "rec@18.0"],
            "recording_id": "rec",
            "start_s": [0.0, 0.0, 9.0, 18.0, 18.0],
            "end_s": [3.0, 3.0, 12.0, 20.0, 20.0],
            "rank": [1, 2, 1, 1, 2],
            "species": [LABELS[0], "Corvus corax_Common Raven", LABELS[1], LABELS[2], LABELS[0]],
            "confidence": [0.8, 0.5, 0.05, 0.6, 0.3],
        }
    )
    return tmp_path, sample, preds


def test_export_clips_tables_manifest(clip_source: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    root, sample, preds = clip_source
    opts = ExportOptions(context_s=4.0, annotators=("ann", "bob"))
    m = export_annotation_set(
        sample,
        root / "out",
        preds,
        round_id=2,
        strategy="s",
        options=opts,
        label_set=LABELS,
        root=root,
    )
    assert list(m.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert list(m["batch"]) == ["ann", "bob", "ann", "bob"]
    durations = [sf.info(str(root / "out" / c)).duration for c in m["clip_file"]]
    assert durations == pytest.approx([7.0, 11.0, 6.0, 20.0])  # clipped at the file bounds
    assert list(m["clip_start_s"]) == pytest.approx([0.0, 5.0, 14.0, 0.0])
    assert list(m["target_begin_s"]) == pytest.approx([0.0, 4.0, 4.0, 0.0])
    assert m["top_predictions"].iloc[0] == f"{LABELS[0]}:0.800;Corvus corax_Common Raven:0.500"
    assert (root / "out" / m["spectrogram_file"].iloc[1]).stat().st_size > 1000
    t = pd.read_csv(
        root / "out" / m["table_file"].iloc[0], sep="\t", dtype=str, keep_default_na=False
    )
    assert list(t.columns) == list(RAVEN_COLUMNS)
    assert list(t["Species"]) == [LABELS[0]]  # not-in-label-set suggestion left out
    assert list(t["Present"]) == ["?"] and t["Annotator"].iloc[0] == "ann"
    low = pd.read_csv(root / "out" / m["table_file"].iloc[1], sep="\t", dtype=str)
    assert list(low["Species"]) == [LABELS[1]]  # the top-1 always, even below the minimum
    rec = pd.read_csv(root / "out" / m["table_file"].iloc[3], sep="\t")
    assert rec["Begin Time (s)"].tolist() == [0.0, 18.0]  # each species at its best segment
    assert m["time"].iloc[0].startswith("2025-05-01T04:00:00")


def test_untouched_export_is_refused(clip_source: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    root, sample, preds = clip_source
    m = export_annotation_set(sample, root / "out", preds, round_id=0, label_set=LABELS, root=root)
    with pytest.raises(LabelImportError, match="not reviewed"):
        import_labels([root / "out"], m, LABELS, round_id=0)


def test_stratum_batches() -> None:
    s = pd.DataFrame({"rank": [1, 2, 3, 4, 5], "stratum": ["a", "a", "a", "b", "c"]})
    b = assign_batches(s, ["x", "y"], "stratum")
    assert b.groupby(s["stratum"]).nunique().max() == 1  # a stratum stays with one annotator
    assert set(b) == {"x", "y"}


def test_cli_import(
    clip_source: tuple[Path, pd.DataFrame, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, sample, preds = clip_source
    monkeypatch.chdir(root)
    m = export_annotation_set(
        sample.iloc[:2], "results/rounds/round_00/annotation", preds, round_id=0, label_set=LABELS
    )
    returned = root / "returned"
    shutil.copytree("results/rounds/round_00/annotation", returned)
    for f in returned.rglob("*.txt"):
        f.write_text(f.read_text().replace("\t?\t", "\t1\t"))
    labels = root / "labels.csv"
    pd.DataFrame({"species": LABELS}).to_csv(labels, index=False)
    args = [
        "labels",
        "import",
        str(returned),
        "--round",
        "0",
        "--label-set",
        str(labels),
        "--params",
        "none.yaml",
    ]
    assert cli_main(args) == 0
    out = root / "data" / "labels" / "round_00.csv"
    lab = read_labels(out)
    assert set(lab["unit_id"]) == set(m["unit_id"])
    assert "label rows for 2 units" in capsys.readouterr().err
    # the round file is the merge of all imports: an identical re-import changes nothing
    assert cli_main(args) == 0
    assert "nothing new to import" in capsys.readouterr().err
    for f in returned.rglob("*.txt"):  # a changed answer needs --force
        f.write_text(f.read_text().replace(f"{LABELS[0]}\t1\t", f"{LABELS[0]}\t0\t"))
    assert cli_main(args) == 1
    assert "--force replaces exactly these pairs" in capsys.readouterr().err
    assert cli_main(args + ["--force"]) == 0


def test_placeholder_row_without_suggestions(
    clip_source: tuple[Path, pd.DataFrame, pd.DataFrame],
) -> None:
    root, sample, preds = clip_source
    only_other = preds.assign(species="Corvus corax_Common Raven")
    m = export_annotation_set(
        sample.iloc[:1], root / "out", only_other, round_id=0, label_set=LABELS, root=root
    )
    t = pd.read_csv(
        root / "out" / m["table_file"].iloc[0], sep="\t", dtype=str, keep_default_na=False
    )
    assert list(t["Species"]) == [""] and list(t["Present"]) == ["?"]
    with pytest.raises(LabelImportError, match="not reviewed"):  # untouched: refused
        import_labels([root / "out"], m, LABELS, round_id=0)
    table(root / "out" / m["table_file"].iloc[0], [])  # the expert deleted the row: no species
    lab = import_labels([root / "out"], m, LABELS, round_id=0).labels
    assert list(lab["species"]) == [""] and list(lab["present"]) == [0]
