"""WABAD (as released with McEwen, Bernard & Stowell 2025) -> custom-simulation tables.

Layout (``PATH`` or ``PATH/data_files``):

* ``dataframe_{train,validation,test}.pkl``: a 3-list ``[samples_df, y_true, y_scores]``;
  ``samples_df`` has a ``File`` column, ``y_true`` / ``y_scores`` are N x 6522 over the BirdNET
  V2.4 label order (0/1 labels, BirdNET scores);
* ``embeddings_{split}.pkl``: a 2-list ``[N x 1024 array, files_list]``, rows aligned with
  ``samples_df`` (``files_list == samples_df.File`` is checked);
* ``BirdNET_GLOBAL_6K_V2.4_Labels.txt``: ``Scientific_Common`` per line.

Species: the preprint's 106 European species (:data:`PREPRINT_SPECIES`: present in at least
one 1-minute file in both train and test, *Curruca cantillans* removed; the list of the
preprint's notebook), each the first BirdNET label with that scientific name. ``--species
derived`` applies the rule to the files instead (reported next to the preprint list in
``import.json`` either way).

Strata: ``site = File.split('_')[0]``, ``year = File.split('_')[1][:4]`` (of the file's base
name), ``segment_time`` from ``<site>_<YYYYMMDD>_<HHMMSS>`` when the name has those parts.
Units: one per row; a row's span is its ``Start``/``End`` columns when ``samples_df`` has them,
else the whole file (``0 .. file_duration_s``, 60 s) when each file has one row, else (several
rows per file, no times) consecutive ``window_s`` windows every ``hop_s`` (default: the window)
in row order. ``import.json`` says which rule applied (``span``) and the rows per file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.datasets import DatasetError, ImportResult, name_times, write_import
from activepam.datasets.safe_pickle import load_pickle

#: the preprint's species (scientific names), in its order
PREPRINT_SPECIES: tuple[str, ...] = (
    "Acrocephalus arundinaceus",
    "Acrocephalus scirpaceus",
    "Alauda arvensis",
    "Alectoris chukar",
    "Anas platyrhynchos",
    "Anthus pratensis",
    "Anthus trivialis",
    "Ardea cinerea",
    "Athene noctua",
    "Burhinus oedicnemus",
    "Calandrella brachydactyla",
    "Carduelis carduelis",
    "Certhia brachydactyla",
    "Cettia cetti",
    "Chloris chloris",
    "Chroicocephalus ridibundus",
    "Circus aeruginosus",
    "Cisticola juncidis",
    "Coccothraustes coccothraustes",
    "Columba oenas",
    "Columba palumbus",
    "Corvus corax",
    "Corvus cornix",
    "Corvus corone",
    "Corvus monedula",
    "Cuculus canorus",
    "Curruca communis",
    "Curruca conspicillata",
    "Curruca iberiae",
    "Curruca melanocephala",
    "Curruca undata",
    "Cyanistes caeruleus",
    "Cyanopica cooki",
    "Dendrocopos major",
    "Dendrocoptes medius",
    "Dryocopus martius",
    "Emberiza calandra",
    "Emberiza cia",
    "Emberiza cirlus",
    "Emberiza citrinella",
    "Erithacus rubecula",
    "Falco tinnunculus",
    "Ficedula albicollis",
    "Fringilla coelebs",
    "Fringilla montifringilla",
    "Fulica atra",
    "Galerida cristata",
    "Galerida theklae",
    "Gallinula chloropus",
    "Gallus gallus",
    "Garrulus glandarius",
    "Grus grus",
    "Himantopus himantopus",
    "Hippolais polyglotta",
    "Lanius senator",
    "Larus argentatus",
    "Linaria cannabina",
    "Locustella naevia",
    "Lophophanes cristatus",
    "Lullula arborea",
    "Luscinia megarhynchos",
    "Merops apiaster",
    "Milvus migrans",
    "Motacilla flava",
    "Oriolus oriolus",
    "Parus major",
    "Passer domesticus",
    "Periparus ater",
    "Petronia petronia",
    "Phasianus colchicus",
    "Phoenicopterus roseus",
    "Phoenicurus ochruros",
    "Phylloscopus bonelli",
    "Phylloscopus collybita",
    "Phylloscopus sibilatrix",
    "Phylloscopus trochilus",
    "Pica pica",
    "Picus sharpei",
    "Poecile palustris",
    "Prunella collaris",
    "Prunella modularis",
    "Pyrrhocorax pyrrhocorax",
    "Pyrrhula pyrrhula",
    "Rallus aquaticus",
    "Recurvirostra avosetta",
    "Regulus ignicapilla",
    "Regulus regulus",
    "Remiz pendulinus",
    "Saxicola rubetra",
    "Saxicola rubicola",
    "Serinus serinus",
    "Sitta europaea",
    "Spinus spinus",
    "Streptopelia decaocto",
    "Sturnus unicolor",
    "Sylvia atricapilla",
    "Tachybaptus ruficollis",
    "Tadorna ferruginea",
    "Tadorna tadorna",
    "Tringa glareola",
    "Tringa ochropus",
    "Troglodytes troglodytes",
    "Turdus merula",
    "Turdus philomelos",
    "Turdus viscivorus",
    "Upupa epops",
)
#: removed by the preprint although present in train and test
EXCLUDED_SPECIES: tuple[str, ...] = ("Curruca cantillans",)
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
SPLITS = ("train", "validation", "test")
#: sizes the preprint reports (for the summary)
PREPRINT_SIZES = {"train": 13453, "test": 16123}
START_COLUMNS = ("start_s", "Start", "start", "Start (s)", "Start Time (s)", "Begin Time (s)")
END_COLUMNS = ("end_s", "End", "end", "End (s)", "End Time (s)")
#: metadata columns written by the import (a samples_df column of that name becomes src_<name>)
OWN_COLUMNS = frozenset(
    {
        "unit_id",
        "recording_id",
        "start_s",
        "end_s",
        "recording_duration_s",
        "split",
        "site",
        "year",
        "segment_time",
        "file",
        "source_row",
    }
)


def data_dir(path: str | Path) -> Path:
    """The folder holding the pickles: ``PATH/data_files`` or ``PATH`` itself."""
    path = Path(path)
    for d in (path / "data_files", path):
        if (d / "dataframe_train.pkl").exists() or (d / "dataframe_test.pkl").exists():
            return d
    raise DatasetError(f"{path}: no dataframe_train.pkl / dataframe_test.pkl (WABAD data_files)")


def read_labels(path: str | Path) -> list[str]:
    """BirdNET labels ``Scientific_Common``, one per line."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: BirdNET labels file not found")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    if not lines or any(not ln for ln in lines):
        raise DatasetError(f"{path}: empty line in the labels file")
    return lines


def species_columns(
    labels: list[str], names: tuple[str, ...] | list[str], source: str
) -> list[int]:
    """Column of each scientific name: the first label ``<name>_...`` (the preprint's rule)."""
    latin = [lab.split("_")[0] for lab in labels]
    first: dict[str, int] = {}
    for i, name in enumerate(latin):
        first.setdefault(name, i)
    missing = [n for n in names if n not in first]
    if missing:
        raise DatasetError(f"{source}: species {missing[:3]} not in the labels file")
    return [first[n] for n in names]


def _binary(y: Any, source: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number):
        raise DatasetError(f"{source}: y_true has dtype {arr.dtype}, 0/1 numbers expected")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise DatasetError(f"{source}: y_true[{r}, {c}] = {arr[r, c]!r}, 0/1 expected")
    return arr.astype(np.uint8)


def read_split(d: Path, split: str, n_labels: int) -> dict[str, Any] | None:
    """One split's samples_df, y_true, y_scores, embeddings (None when its pickle is absent)."""
    df_path = d / f"dataframe_{split}.pkl"
    emb_path = d / f"embeddings_{split}.pkl"
    if not df_path.exists():
        return None
    obj = load_pickle(df_path)
    if not (isinstance(obj, (list, tuple)) and len(obj) == 3):
        raise DatasetError(
            f"{df_path}: a 3-list [samples_df, y_true, y_scores] expected, got {type(obj).__name__}"
        )
    df, y_true, y_scores = obj
    if not isinstance(df, pd.DataFrame) or "File" not in df:
        raise DatasetError(f"{df_path}: samples_df must be a DataFrame with a 'File' column")
    n = len(df)
    y_true = np.asarray(y_true)
    if y_true.shape != (n, n_labels):
        raise DatasetError(
            f"{df_path}: y_true has shape {y_true.shape}, ({n}, {n_labels}) "
            "expected (rows of samples_df x BirdNET labels)"
        )
    Y = _binary(y_true, str(df_path))
    del obj, y_true
    scores = None
    if y_scores is not None:
        scores = np.asarray(y_scores)  # cast to float32 after the species columns are taken
        if scores.shape != (n, n_labels) or not np.issubdtype(scores.dtype, np.number):
            raise DatasetError(
                f"{df_path}: y_scores has shape {scores.shape}, ({n}, {n_labels}) expected"
            )
    if not emb_path.exists():
        raise DatasetError(f"{emb_path}: embeddings of split {split!r} not found")
    eobj = load_pickle(emb_path)
    if not (isinstance(eobj, (list, tuple)) and len(eobj) == 2):
        raise DatasetError(f"{emb_path}: a 2-list [embeddings, files_list] expected")
    X = np.asarray(eobj[0])
    files = [str(f) for f in list(eobj[1])]
    if X.ndim != 2 or len(X) != n or not np.issubdtype(X.dtype, np.number):
        raise DatasetError(
            f"{emb_path}: embeddings of shape {X.shape}, ({n}, dim) numbers expected"
        )
    if len(files) != n:
        raise DatasetError(f"{emb_path}: {len(files)} files for {n} samples_df rows")
    ref = df["File"].astype(str).tolist()
    if files != ref:
        i = next(k for k, (a, b) in enumerate(zip(files, ref)) if a != b)
        raise DatasetError(
            f"{emb_path}: row {i}: file {files[i]!r} but samples_df has "
            f"{ref[i]!r}; embeddings must be aligned with samples_df"
        )
    return {"df": df.reset_index(drop=True), "Y": Y, "scores": scores, "X": X, "files": ref}


def _units(
    df: pd.DataFrame,
    split: str,
    file_duration_s: float,
    utc_offset_h: float,
    source: str,
    window_s: float = 3.0,
    hop_s: float | None = None,
) -> tuple[pd.DataFrame, str]:
    from activepam.detection.inputs import sanitize_id

    names = df["File"].astype(str).map(lambda f: Path(f.replace("\\", "/")).name)
    parts = names.str.split("_")
    start_col = next((c for c in START_COLUMNS if c in df), None)
    end_col = next((c for c in END_COLUMNS if c in df), None)
    if start_col and end_col:
        start = pd.to_numeric(df[start_col], errors="coerce").astype(float)
        end = pd.to_numeric(df[end_col], errors="coerce").astype(float)
        if start.isna().any() or end.isna().any():
            i = int(np.flatnonzero((start.isna() | end.isna()).to_numpy())[0])
            raise DatasetError(f"{source}: row {i}: non-numeric {start_col}/{end_col}")
        span = f"columns {start_col}/{end_col}"
    elif not names.duplicated().any():
        start = pd.Series(0.0, index=df.index)
        end = pd.Series(float(file_duration_s), index=df.index)
        span = f"whole file (0-{file_duration_s:g} s)"
    else:  # several rows per file without times: consecutive windows in row order
        k = df.groupby(names.to_numpy(), sort=False).cumcount().to_numpy()
        start = pd.Series(k * float(hop_s or window_s), index=df.index)
        end = start + float(window_s)
        span = f"order within File ({window_s:g} s windows, {hop_s or window_s:g} s hop)"
    units = pd.DataFrame(
        {
            "recording_id": names.map(lambda n: sanitize_id(Path(n).stem)),
            "start_s": start.to_numpy(),
            "end_s": end.to_numpy(),
            "split": split,
            "site": parts.str[0],
            "year": parts.str[1].str[:4],
            "segment_time": name_times(parts.str[1], parts.str[2], utc_offset_h)
            + pd.to_timedelta(start.to_numpy(), unit="s"),
            "file": df["File"].astype(str).to_numpy(),
            "source_row": np.arange(len(df)),
        }
    )
    if start_col is None and span.startswith("whole file"):
        units["recording_duration_s"] = float(file_duration_s)
    for col in df.columns:
        if col in ("File", start_col, end_col):
            continue
        name = f"src_{col}" if str(col) in OWN_COLUMNS else str(col)
        values = df[col]
        if values.dtype == object:
            values = values.where(values.isna(), values.astype(str))
        units[name] = values.to_numpy()
    return units, span


def import_wabad(
    path: str | Path,
    out: str | Path,
    species: str = "preprint",
    file_duration_s: float = 60.0,
    utc_offset_h: float = 0.0,
    window_s: float = 3.0,
    hop_s: float | None = None,
) -> ImportResult:
    """Convert a WABAD release (see the module doc) into the custom-simulation tables."""
    d = data_dir(path)
    labels = read_labels(d / LABELS_FILE)
    parts = {s: read_split(d, s, len(labels)) for s in SPLITS}
    present = {s: p for s, p in parts.items() if p is not None}
    derived: list[str] | None = None
    if "train" in present and "test" in present:
        both = present["train"]["Y"].any(axis=0) & present["test"]["Y"].any(axis=0)
        latin = [lab.split("_")[0] for lab in labels]
        derived = sorted({latin[i] for i in np.flatnonzero(both)} - set(EXCLUDED_SPECIES))
    if species == "preprint":
        names: list[str] = list(PREPRINT_SPECIES)
    elif species == "derived":
        if derived is None:
            raise DatasetError(
                f"{d}: --species derived needs dataframe_train.pkl and dataframe_test.pkl"
            )
        names = derived
    else:
        raise DatasetError(f"species: {species!r} is not preprint | derived")
    cols = species_columns(labels, names, str(d / LABELS_FILE))
    frames, Xs, Ys, Ss, spans = [], [], [], [], {}
    for split, p in present.items():
        units, span = _units(
            p["df"],
            split,
            file_duration_s,
            utc_offset_h,
            str(d / f"dataframe_{split}.pkl"),
            window_s,
            hop_s,
        )
        frames.append(units)
        Xs.append(p["X"])
        Ys.append(p["Y"][:, cols])
        if p["scores"] is not None:
            Ss.append(p["scores"][:, cols].astype(np.float32))
        spans[split] = span
    if not frames:
        raise DatasetError(f"{d}: no split found")
    dims = {x.shape[1] for x in Xs}
    if len(dims) != 1:
        raise DatasetError(f"{d}: embedding dimensions differ between splits: {sorted(dims)}")
    info = {
        "dataset": "wabad",
        "source": str(d),
        "species_rule": species,
        "species_labels": [labels[c] for c in cols],
        "span": spans,
        "preprint_sizes": PREPRINT_SIZES,
        "derived_species_not_in_preprint": (
            sorted(set(derived) - set(PREPRINT_SPECIES)) if derived is not None else None
        ),
        "preprint_species_not_derived": (
            sorted(set(PREPRINT_SPECIES) - set(derived)) if derived is not None else None
        ),
        "rows_per_file": {
            s: float(p["df"]["File"].value_counts().mean()) for s, p in present.items()
        },
        "options": {
            "file_duration_s": file_duration_s,
            "utc_offset_h": utc_offset_h,
            "window_s": window_s,
            "hop_s": hop_s,
        },
    }
    units = pd.concat(frames, ignore_index=True)
    scores = np.concatenate(Ss) if len(Ss) == len(frames) else None
    return write_import(
        out,
        units,
        np.concatenate(Xs),
        np.concatenate(Ys),
        [labels[c] for c in cols],
        info,
        scores=scores,
    )
