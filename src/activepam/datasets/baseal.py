"""BaseAL / BioDCASE 2026 task 4 layout -> custom-simulation tables.

Layout (``PATH``):

* ``embeddings/<model>/<stem>.npy``: one embedding per segment (``<stem>_<model>.npy`` is read
  too, the older BaseAL naming); ``--model`` picks the subfolder (default: the only one);
* ``labels.csv``: ``filename,label,validation``; labels separated by ``;`` (an empty label =
  no class present); ``validation=True`` rows are BaseAL's fixed evaluation set, written as
  ``split = test`` (every other row is ``train``, the pool);
* ``metadata.csv`` (optional): ``filename, original_filepath, segment_start, segment_end, ...``;
  a segment's recording is ``original_filepath`` (its stem, sanitised) and its span
  ``segment_start .. segment_end``; the other metadata columns are kept as strata candidates.
  Without it each segment is its own recording ``0 .. segment_s``.

``.npy`` files are read with ``allow_pickle=False``: an object array is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from activepam.datasets import DatasetError, ImportResult, write_import

TRUE = {"true", "1", "yes", "t", "y"}
FALSE = {"false", "0", "no", "f", "n", ""}
OWN_COLUMNS = frozenset(
    {
        "unit_id",
        "recording_id",
        "start_s",
        "end_s",
        "recording_duration_s",
        "split",
        "filename",
        "source_row",
    }
)


def pick_model(root: Path, model: str | None) -> str:
    """The embeddings subfolder: ``model`` if given and present, else the only one."""
    emb = root / "embeddings"
    if not emb.is_dir():
        raise DatasetError(f"{emb}: embeddings folder not found")
    models = sorted(p.name for p in emb.iterdir() if p.is_dir())
    if model:
        if model not in models:
            raise DatasetError(f"{emb}: no model {model!r} (found: {', '.join(models) or 'none'})")
        return model
    if len(models) != 1:
        raise DatasetError(
            f"{emb}: {len(models)} model folders ({', '.join(models) or 'none'}); "
            "choose one with --model"
        )
    return models[0]


def _bool(values: pd.Series, source: str) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower().where(values.notna(), "")
    bad = ~text.isin(TRUE | FALSE)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{source}: row {i + 2}: validation {values.iloc[i]!r} is not True/False"
        )
    return text.isin(TRUE).to_numpy()


def _labels(values: pd.Series) -> list[list[str]]:
    out: list[list[str]] = []
    for v in values:
        if pd.isna(v):
            out.append([])
            continue
        out.append(sorted({p.strip() for p in str(v).split(";") if p.strip()}))
    return out


def _load_embedding(folder: Path, stem: str, model: str) -> np.ndarray | None:
    for path in (folder / f"{stem}.npy", folder / f"{stem}_{model}.npy"):
        if path.exists():
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise DatasetError(f"{path}: {exc}") from None
            if arr.ndim == 2 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
                raise DatasetError(
                    f"{path}: embedding of shape {arr.shape} / dtype {arr.dtype}, "
                    "one vector of numbers expected"
                )
            return arr
    return None


def import_baseal(
    path: str | Path,
    out: str | Path,
    model: str | None = None,
    segment_s: float = 3.0,
) -> ImportResult:
    """Convert a BaseAL dataset folder (see the module doc) into the custom-simulation tables."""
    from activepam.detection.inputs import sanitize_id

    root = Path(path)
    model = pick_model(root, model)
    lab_path = root / "labels.csv"
    if not lab_path.exists():
        raise DatasetError(f"{lab_path}: not found")
    lab = pd.read_csv(
        lab_path, dtype={"filename": str, "label": str}, keep_default_na=False, na_values=[]
    )
    for col in ("filename", "label", "validation"):
        if col not in lab:
            raise DatasetError(f"{lab_path}: no {col!r} column (filename,label,validation)")
    dup = lab["filename"].duplicated()
    if dup.any():
        raise DatasetError(
            f"{lab_path}: row {int(np.flatnonzero(dup.to_numpy())[0]) + 2}: "
            f"duplicate filename {lab.loc[dup, 'filename'].iloc[0]!r}"
        )
    is_eval = _bool(lab["validation"], str(lab_path))
    stems = lab["filename"].map(lambda f: Path(str(f).replace("\\", "/")).stem)
    folder = root / "embeddings" / model
    vectors: list[np.ndarray] = []
    missing: list[int] = []
    for i, stem in enumerate(stems):
        v = _load_embedding(folder, stem, model)
        if v is None:
            missing.append(i)
        else:
            vectors.append(v)
    if missing:
        i = missing[0]
        raise DatasetError(
            f"{folder}: no embedding for {len(missing)} labels.csv row(s) "
            f"(first: row {i + 2}, {stems.iloc[i]}.npy)"
        )
    dims = {len(v) for v in vectors}
    if len(dims) != 1:
        raise DatasetError(f"{folder}: embeddings of different lengths {sorted(dims)}")
    X = np.stack(vectors).astype(np.float32)
    units = pd.DataFrame(
        {
            "recording_id": stems.map(sanitize_id).to_numpy(),
            "start_s": 0.0,
            "end_s": float(segment_s),
            "split": np.where(is_eval, "test", "train"),
            "filename": lab["filename"].to_numpy(),
            "source_row": np.arange(len(lab)),
        }
    )
    meta_path = root / "metadata.csv"
    span = f"each segment its own recording (0-{segment_s:g} s)"
    if meta_path.exists():
        meta = pd.read_csv(meta_path)
        if "filename" not in meta:
            raise DatasetError(f"{meta_path}: no 'filename' column")
        meta["filename"] = meta["filename"].astype(str)
        if meta["filename"].duplicated().any():
            first = meta.loc[meta["filename"].duplicated(), "filename"].iloc[0]
            raise DatasetError(f"{meta_path}: duplicate filename {first!r}")
        m = units[["filename"]].merge(meta, on="filename", how="left")
        has = m["filename"].isin(set(meta["filename"])).to_numpy()
        if "original_filepath" in m:
            orig = m["original_filepath"].astype(object)
            ok = has & orig.notna().to_numpy()
            rec = orig.map(lambda f: sanitize_id(Path(str(f).replace("\\", "/")).stem))
            units.loc[ok, "recording_id"] = rec[ok].to_numpy()
        if "segment_start" in m and "segment_end" in m:
            s = pd.to_numeric(m["segment_start"], errors="coerce")
            e = pd.to_numeric(m["segment_end"], errors="coerce")
            ok = has & s.notna().to_numpy() & e.notna().to_numpy()
            units.loc[ok, "start_s"] = s[ok].to_numpy()
            units.loc[ok, "end_s"] = e[ok].to_numpy()
        span = (
            f"metadata.csv original_filepath + segment_start/segment_end "
            f"({int(has.sum())} of {len(units)} rows)"
        )
        for col in meta.columns:
            if col in ("filename", "original_filepath", "segment_start", "segment_end", "label"):
                continue
            name = f"src_{col}" if col in OWN_COLUMNS else str(col)
            values = m[col]
            if values.dtype == object:
                values = values.where(values.isna(), values.astype(str))
            units[name] = values.to_numpy()
        if "original_filepath" in m:
            units["original_filepath"] = m["original_filepath"].to_numpy()
    label_lists = _labels(lab["label"])
    species = sorted({s for row in label_lists for s in row})
    index = {s: j for j, s in enumerate(species)}
    Y = np.zeros((len(lab), len(species)), dtype=np.uint8)
    for i, row in enumerate(label_lists):
        Y[i, [index[s] for s in row]] = 1
    info = {
        "dataset": "baseal",
        "source": str(root),
        "model": model,
        "span": span,
        "evaluation_rows": int(is_eval.sum()),
        "options": {"segment_s": segment_s},
    }
    return write_import(out, units, X, Y, species, info)
