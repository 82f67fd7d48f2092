"""AnuraSet (as released with McEwen, Bernard & Stowell 2025) -> custom-simulation tables.

Layout: ``PATH/{train,test}/`` (and ``validation/`` when present), each with

* ``embeddings.pt``: N x 1024 tensor (or ``embeddings.npy``);
* ``labels.pt``: N x 42 0/1 tensor (or ``labels.npy``);
* ``data.csv``: N rows with ``fname`` = ``{site}_{YYYYMMDD}_{HHMM[SS]}`` (the 1-minute recording)
  and, when present, each window's ``min_t``/``max_t`` (or ``start_s``/``end_s``) in seconds.

Windows are 3 s long with a 1 s hop, so neighbouring windows overlap: every window is a unit of
recording ``fname`` with its own ``start_s``/``end_s`` (from ``min_t``/``max_t``, else from its
order within the recording: ``k * hop_s .. k * hop_s + window_s``). The listening cost of a set
of windows is the union of their spans per recording
(:func:`activepam.datasets.union_seconds`), and a recording never straddles two splits.

Strata: ``site`` (4 sites), ``year``, ``year_month`` (``YYYYMM``), ``period`` (the preprint's
seasons: A = 2019-09..11, B = 2019-12..2020-04, C = 2020-10..2021-01; empty outside),
``segment_time`` (UTC, the names' clock taken as UTC + ``utc_offset_h``).

Species names: ``--species-file`` (one per line), else the last K columns of ``data.csv`` when
they are 0/1 and equal ``labels.pt`` column by column, else ``class_00`` ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.datasets import DatasetError, ImportResult, name_times, write_import
from activepam.datasets.torch_files import load_pt_array

SPLITS = ("train", "validation", "test")
#: the preprint's custom temporal strata (``temporal_custom``): period -> YYYYMM months
PERIODS: dict[str, tuple[str, ...]] = {
    "A": ("201909", "201910", "201911"),
    "B": ("201912", "202001", "202002", "202003", "202004"),
    "C": ("202010", "202011", "202012", "202101"),
}
TIME_COLUMNS = (("min_t", "max_t"), ("start_s", "end_s"))
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
        "year_month",
        "period",
        "segment_time",
        "fname",
        "source_row",
    }
)


def read_array(folder: Path, stem: str) -> np.ndarray:
    """``<stem>.pt`` (restricted torch reader) or ``<stem>.npy`` (``allow_pickle=False``)."""
    pt, npy = folder / f"{stem}.pt", folder / f"{stem}.npy"
    if pt.exists():
        return load_pt_array(pt, ndim=2)
    if npy.exists():
        try:
            arr = np.load(npy, allow_pickle=False)
        except ValueError as exc:  # object arrays need pickle: refused
            raise DatasetError(f"{npy}: {exc}") from None
        if arr.ndim != 2:
            raise DatasetError(f"{npy}: array of shape {arr.shape}, 2-d expected")
        return arr
    raise DatasetError(f"{pt}: not found (nor {npy.name})")


def period_of(year_month: pd.Series) -> pd.Series:
    """The preprint's period (A/B/C) of ``YYYYMM`` values; missing outside the three periods."""
    lookup = {m: k for k, months in PERIODS.items() for m in months}
    return year_month.map(lookup).astype(object)


def _species_names(
    data: pd.DataFrame, Y: np.ndarray, species_file: str | Path | None, source: str
) -> tuple[list[str], str]:
    k = Y.shape[1]
    if species_file:
        names = [ln.strip() for ln in Path(species_file).read_text().splitlines() if ln.strip()]
        if len(names) != k:
            raise DatasetError(f"{species_file}: {len(names)} species for {k} label columns")
        return names, str(species_file)
    if data.shape[1] > k:
        tail = data.iloc[:, -k:]
        vals = tail.apply(pd.to_numeric, errors="coerce")
        if vals.notna().all().all() and np.array_equal(vals.to_numpy(), Y):
            return [str(c) for c in tail.columns], f"{source} (last {k} columns)"
    return [f"class_{i:02d}" for i in range(k)], "generic"


def read_split(root: Path, split: str) -> dict[str, Any] | None:
    folder = root / split
    if not folder.is_dir():
        return None
    csv = folder / "data.csv"
    if not csv.exists():
        raise DatasetError(f"{csv}: not found")
    data = pd.read_csv(csv)
    if "fname" not in data:
        raise DatasetError(f"{csv}: no 'fname' column")
    X = read_array(folder, "embeddings")
    Y = read_array(folder, "labels")
    if len(X) != len(data) or len(Y) != len(data):
        raise DatasetError(
            f"{folder}: {len(data)} rows in data.csv, {len(X)} embeddings, {len(Y)} label rows"
        )
    bad = (Y != 0) & (Y != 1)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise DatasetError(f"{folder}/labels: [{r}, {c}] = {Y[r, c]!r}, 0/1 expected")
    if not np.issubdtype(X.dtype, np.number):
        raise DatasetError(f"{folder}/embeddings: dtype {X.dtype}, numbers expected")
    return {"data": data, "X": X, "Y": Y.astype(np.uint8), "csv": csv}


def _units(
    data: pd.DataFrame,
    split: str,
    window_s: float,
    hop_s: float,
    utc_offset_h: float,
    duration_s: float | None,
    source: str,
) -> tuple[pd.DataFrame, str]:
    from activepam.detection.inputs import sanitize_id

    fname = data["fname"].astype(str).map(lambda f: Path(f.replace("\\", "/")).stem)
    cols = next(((a, b) for a, b in TIME_COLUMNS if a in data and b in data), None)
    if cols:
        start = pd.to_numeric(data[cols[0]], errors="coerce").astype(float)
        end = pd.to_numeric(data[cols[1]], errors="coerce").astype(float)
        if start.isna().any() or end.isna().any():
            i = int(np.flatnonzero((start.isna() | end.isna()).to_numpy())[0])
            raise DatasetError(f"{source}: row {i + 2}: non-numeric {cols[0]}/{cols[1]}")
        span = f"columns {cols[0]}/{cols[1]}"
    else:
        k = data.groupby(fname, sort=False).cumcount().to_numpy()
        start = pd.Series(k * float(hop_s), index=data.index)
        end = start + float(window_s)
        span = f"order within fname ({window_s:g} s windows, {hop_s:g} s hop)"
    parts = fname.str.split("_")
    date = parts.str[1].fillna("")
    ym = date.str.extract(r"^(\d{6})")[0]
    units = pd.DataFrame(
        {
            "recording_id": fname.map(sanitize_id),
            "start_s": start.to_numpy(),
            "end_s": end.to_numpy(),
            "split": split,
            "site": parts.str[0],
            "year": ym.str[:4],
            "year_month": ym,
            "period": period_of(ym),
            "segment_time": name_times(date, parts.str[2], utc_offset_h)
            + pd.to_timedelta(start.to_numpy(), unit="s"),
            "fname": data["fname"].astype(str).to_numpy(),
            "source_row": np.arange(len(data)),
        }
    )
    if duration_s:
        units["recording_duration_s"] = float(duration_s)
        if (units["end_s"] > duration_s).any():
            i = int(np.flatnonzero((units["end_s"] > duration_s).to_numpy())[0])
            raise DatasetError(
                f"{source}: row {i + 2}: window ends after the recording duration {duration_s:g} s"
            )
    return units, span


def import_anuraset(
    path: str | Path,
    out: str | Path,
    window_s: float = 3.0,
    hop_s: float = 1.0,
    recording_duration_s: float | None = None,
    species_file: str | Path | None = None,
    utc_offset_h: float = 0.0,
) -> ImportResult:
    """Convert an AnuraSet release (see the module doc) into the custom-simulation tables."""
    root = Path(path)
    parts = {s: read_split(root, s) for s in SPLITS}
    present = {s: p for s, p in parts.items() if p is not None}
    if not present:
        raise DatasetError(f"{root}: no train/ or test/ folder with data.csv")
    widths = {p["Y"].shape[1] for p in present.values()}
    dims = {p["X"].shape[1] for p in present.values()}
    if len(widths) != 1 or len(dims) != 1:
        raise DatasetError(
            f"{root}: label widths {sorted(widths)} / embedding dims "
            f"{sorted(dims)} differ between splits"
        )
    first = next(iter(present.values()))
    species, species_source = _species_names(
        first["data"], first["Y"], species_file, str(first["csv"])
    )
    frames, spans = [], {}
    for split, p in present.items():
        units, span = _units(
            p["data"], split, window_s, hop_s, utc_offset_h, recording_duration_s, str(p["csv"])
        )
        for col in p["data"].columns:
            if col == "fname" or (col in species and species_source != "generic"):
                continue
            name = f"src_{col}" if str(col) in OWN_COLUMNS else str(col)
            values = p["data"][col]
            if values.dtype == object:
                values = values.where(values.isna(), values.astype(str))
            units[name] = values.to_numpy()
        frames.append(units)
        spans[split] = span
    units = pd.concat(frames, ignore_index=True)
    info = {
        "dataset": "anuraset",
        "source": str(root),
        "span": spans,
        "species_source": species_source,
        "periods": {k: list(v) for k, v in PERIODS.items()},
        "options": {
            "window_s": window_s,
            "hop_s": hop_s,
            "recording_duration_s": recording_duration_s,
            "utc_offset_h": utc_offset_h,
        },
    }
    return write_import(
        out,
        units,
        np.concatenate([p["X"] for p in present.values()]),
        np.concatenate([p["Y"] for p in present.values()]),
        species,
        info,
    )
