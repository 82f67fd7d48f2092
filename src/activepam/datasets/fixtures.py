"""Tiny datasets in the external layouts (WABAD, AnuraSet, BaseAL), for tests and protocol runs.

Each writer builds a seeded fixture in ``root`` with the *outside* tools of that layout
(:func:`pickle.dump` of real pandas / numpy objects for WABAD, :func:`~activepam.datasets.
torch_files.save_pt` for AnuraSet's tensors, ``.npy`` + CSV files for BaseAL) and returns what
it wrote (arrays, file names), so an import can be checked exactly against it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.datasets.torch_files import save_pt
from activepam.datasets.wabad import EXCLUDED_SPECIES, LABELS_FILE, PREPRINT_SPECIES

#: width of the BirdNET V2.4 label list
BIRDNET_WIDTH = 6522
WABAD_SITES = ("AIG", "BAR", "CAB")
ANURASET_SITES = ("INCT17", "INCT20955", "INCT4", "INCT41")


def birdnet_labels(width: int = BIRDNET_WIDTH) -> list[str]:
    """A BirdNET-like label list: the preprint's species and *Curruca cantillans* at spread
    positions, fillers ``Fillerus sp0001_Filler 1`` elsewhere."""
    labels = [f"Fillerus sp{i:04d}_Filler {i}" for i in range(width)]
    names = [*PREPRINT_SPECIES, *EXCLUDED_SPECIES]
    step = width // (len(names) + 1)
    for k, name in enumerate(names):
        labels[(k + 1) * step] = f"{name}_{name.split()[-1].title()} bird"
    return labels


def write_wabad(
    root: str | Path,
    sizes: Mapping[str, int] | None = None,
    dim: int = 8,
    seed: int = 0,
    with_times: bool = False,
) -> dict[str, Any]:
    """WABAD ``data_files`` with ``sizes`` rows per split (default train 12, validation 4,
    test 10). Rows are whole 1-minute files ``<site>_<YYYYMMDD>_<HHMMSS>.wav`` (with
    ``with_times``: three 3 s rows per file with ``Start``/``End`` columns). Labels are sparse:
    up to two of the first 12 preprint species per row, *Curruca cantillans* and one filler
    species present in train and test (so the derived species rule differs from the list)."""
    rng = np.random.default_rng(seed)
    sizes = dict(sizes or {"train": 12, "validation": 4, "test": 10})
    d = Path(root) / "data_files"
    d.mkdir(parents=True, exist_ok=True)
    labels = birdnet_labels()
    (d / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
    col = {lab.split("_")[0]: i for i, lab in reversed(list(enumerate(labels)))}
    common = [col[s] for s in PREPRINT_SPECIES[:12]]
    extra = [col[EXCLUDED_SPECIES[0]], col["Fillerus sp0003"]]
    out: dict[str, Any] = {"labels": labels, "splits": {}}
    day = 0
    for s_i, (split, n) in enumerate(sizes.items()):
        rows, per = [], 3 if with_times else 1
        for i in range(n):
            if i % per == 0:
                day += 1
                site = WABAD_SITES[(i // per) % len(WABAD_SITES)]
                year = 2020 + (day % 3)
                name = f"{site}_{year}{(day % 12) + 1:02d}{(day % 27) + 1:02d}_0{day % 10}0000.wav"
            rows.append(
                {
                    "File": name,
                    "Country": "Spain" if i % 2 else "Portugal",
                    **(
                        {"Start": 3.0 * (i % per), "End": 3.0 * (i % per) + 3.0}
                        if with_times
                        else {}
                    ),
                }
            )
        df = pd.DataFrame(rows)
        if split == "test":
            df = df.astype({"File": object, "Country": object})  # pandas 2 style object columns
        Y = np.zeros((n, BIRDNET_WIDTH), dtype=np.uint8)
        for i in range(n):
            Y[i, rng.choice(common, size=int(rng.integers(0, 3)), replace=False)] = 1
        if split in ("train", "test") and n >= 2:
            Y[0, extra[0]] = 1
            Y[1, extra[1]] = 1
        scores = rng.random((n, BIRDNET_WIDTH), dtype=np.float32)
        X = rng.normal(size=(n, dim)).astype(np.float32)
        proto = (4, 2, 5)[s_i % 3]
        with open(d / f"dataframe_{split}.pkl", "wb") as f:
            pickle.dump([df, Y.astype(np.float32), scores], f, protocol=proto)
        with open(d / f"embeddings_{split}.pkl", "wb") as f:
            pickle.dump([X, df["File"].tolist()], f, protocol=proto)
        out["splits"][split] = {"df": df, "Y": Y, "scores": scores, "X": X}
    return out


def write_anuraset(
    root: str | Path,
    recordings: Mapping[str, int] | None = None,
    windows: int = 5,
    n_species: int = 42,
    dim: int = 8,
    seed: int = 0,
    with_times: bool = True,
    species_columns: bool = False,
) -> dict[str, Any]:
    """AnuraSet ``train/`` and ``test/`` folders: ``recordings`` 1-minute files per split
    (default train 6, test 4) of ``windows`` 3 s windows every 1 s, ``fname =
    <site>_<YYYYMMDD>_<HHMM>`` over the 4 sites and dates in periods A, B, C and outside them.
    ``data.csv`` has ``min_t``/``max_t`` with ``with_times`` and the species as its last
    columns with ``species_columns``. Tensors are written with :func:`save_pt`."""
    rng = np.random.default_rng(seed)
    recordings = dict(recordings or {"train": 6, "test": 4})
    dates = ("20191015", "20200110", "20201120", "20200601", "20191201", "20210105")
    out: dict[str, Any] = {"species": [f"SP{j:02d}" for j in range(n_species)], "splits": {}}
    r_global = 0
    for split, n_rec in recordings.items():
        folder = Path(root) / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for _r in range(n_rec):
            site = ANURASET_SITES[r_global % len(ANURASET_SITES)]
            fname = f"{site}_{dates[r_global % len(dates)]}_{(r_global * 3) % 24:02d}00"
            r_global += 1
            for k in range(windows):
                rows.append(
                    {
                        "fname": fname,
                        **({"min_t": float(k), "max_t": float(k) + 3.0} if with_times else {}),
                    }
                )
        data = pd.DataFrame(rows)
        n = len(data)
        Y = (rng.random((n, n_species)) < 0.08).astype(np.float32)
        X = rng.normal(size=(n, dim)).astype(np.float32)
        if species_columns:
            data = pd.concat([data, pd.DataFrame(Y.astype(int), columns=out["species"])], axis=1)
        data.to_csv(folder / "data.csv", index=False)
        save_pt(folder / "embeddings.pt", X)
        save_pt(folder / "labels.pt", Y)
        out["splits"][split] = {"data": data, "X": X, "Y": Y.astype(np.uint8)}
    return out


def write_baseal(
    root: str | Path,
    n_files: int = 8,
    segments: int = 2,
    model: str = "birdnet",
    dim: int = 8,
    seed: int = 0,
    with_metadata: bool = True,
) -> dict[str, Any]:
    """A BaseAL folder: ``n_files`` recordings of ``segments`` 3 s segments, one ``.npy`` per
    segment (alternating ``<stem>.npy`` and ``<stem>_<model>.npy`` names), multi-label
    ``labels.csv`` (``;``-separated, some empty), every fourth recording ``validation=True``,
    and ``metadata.csv`` with the recordings and spans (and a ``site`` column)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    emb = root / "embeddings" / model
    emb.mkdir(parents=True, exist_ok=True)
    classes = ("dog", "rain", "rooster")
    lab_rows, meta_rows, vectors = [], [], {}
    for r in range(n_files):
        for s in range(segments):
            stem = f"{r + 1}-{1000 + r}-A-{r % 3}_{3 * s:03d}_{3 * s + 3:03d}"
            filename = f"{stem}.mp3"
            v = rng.normal(size=dim).astype(np.float32)
            name = f"{stem}.npy" if (r + s) % 2 == 0 else f"{stem}_{model}.npy"
            np.save(emb / name, v if s % 2 == 0 else v[None, :])
            vectors[filename] = v
            picked = [c for c in classes if rng.random() < 0.4]
            lab_rows.append(
                {"filename": filename, "label": ";".join(picked), "validation": r % 4 == 3}
            )
            meta_rows.append(
                {
                    "filename": filename,
                    "original_filepath": f"{r + 1}-{1000 + r}-A.wav",
                    "segment_start": 3.0 * s,
                    "segment_end": 3.0 * s + 3.0,
                    "label": ";".join(picked),
                    "site": f"S{r % 2}",
                    "fold": r % 5,
                }
            )
    labels = pd.DataFrame(lab_rows)
    labels.to_csv(root / "labels.csv", index=False)
    if with_metadata:
        pd.DataFrame(meta_rows).to_csv(root / "metadata.csv", index=False)
    return {
        "labels": labels,
        "metadata": pd.DataFrame(meta_rows),
        "vectors": vectors,
        "model": model,
        "classes": classes,
    }
