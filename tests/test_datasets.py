"""External dataset importers (WABAD pickles, AnuraSet torch files, BaseAL folders): exact
ids, labels, splits, strata and costs, and refusal of pickles / torch files that run code."""

from __future__ import annotations

import datetime as dt
import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepam.cli import main as cli_main
from activepam.datasets import DatasetError, union_seconds
from activepam.datasets import fixtures as fx
from activepam.datasets import torch_files as T
from activepam.datasets.anuraset import import_anuraset
from activepam.datasets.baseal import import_baseal
from activepam.datasets.safe_pickle import (
    ALLOWED_GLOBALS,
    UnsafePickleError,
    load_pickle,
    loads,
    pickle_globals,
)
from activepam.datasets.wabad import EXCLUDED_SPECIES, PREPRINT_SPECIES, import_wabad
from activepam.simulation.dataset import custom_dataset


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    meta = pd.read_parquet(out / "metadata.parquet")
    emb = pd.read_parquet(out / "embeddings.parquet")
    lab = pd.read_parquet(out / "labels.parquet")
    species = pd.read_csv(out / "species.csv")["species"].tolist()
    return meta, emb, lab, species


def _dense(meta: pd.DataFrame, lab: pd.DataFrame, species: list[str]) -> np.ndarray:
    Y = np.zeros((len(meta), len(species)), dtype=np.uint8)
    row = {u: i for i, u in enumerate(meta["unit_id"])}
    col = {s: j for j, s in enumerate(species)}
    assert set(lab["present"]) <= {1}
    for u, s in zip(lab["unit_id"], lab["species"]):
        Y[row[u], col[s]] = 1
    return Y


# --------------------------------------------------------------------------- WABAD


def test_wabad_import_exact(tmp_path: Path) -> None:
    fix = fx.write_wabad(tmp_path / "WABAD")
    res = import_wabad(tmp_path / "WABAD", tmp_path / "out")
    meta, emb, lab, species = _tables(tmp_path / "out")
    splits = fix["splits"]
    assert res.splits == {"train": 12, "validation": 4, "test": 10}
    files = [f for s in ("train", "validation", "test") for f in splits[s]["df"]["File"]]
    assert meta["split"].tolist() == ["train"] * 12 + ["validation"] * 4 + ["test"] * 10
    assert meta["unit_id"].tolist() == [f"{f[:-4]}@0.0" for f in files]
    assert meta["recording_id"].tolist() == [f[:-4] for f in files]
    assert meta["site"].tolist() == [f.split("_")[0] for f in files]
    assert meta["year"].tolist() == [f.split("_")[1][:4] for f in files]
    assert (meta["start_s"] == 0).all() and (meta["end_s"] == 60).all()
    assert (meta["recording_duration_s"] == 60).all()
    expected_t = [
        dt.datetime.strptime(f[:-4].split("_", 1)[1], "%Y%m%d_%H%M%S").replace(tzinfo=dt.UTC)
        for f in files
    ]
    assert meta["segment_time"].dt.to_pydatetime().tolist() == expected_t
    assert meta["Country"].tolist() == [c for s in splits.values() for c in s["df"]["Country"]]
    # species: the first BirdNET label of each of the preprint's 106 scientific names
    labels = fix["labels"]
    cols = [
        next(i for i, lab_ in enumerate(labels) if lab_.split("_")[0] == s)
        for s in PREPRINT_SPECIES
    ]
    assert len(PREPRINT_SPECIES) == 106 and species == [labels[c] for c in cols]
    Y = np.concatenate([splits[s]["Y"][:, cols] for s in ("train", "validation", "test")])
    assert Y.sum() > 10 and np.array_equal(_dense(meta, lab, species), Y)
    X = np.concatenate([splits[s]["X"] for s in ("train", "validation", "test")])
    assert emb["unit_id"].tolist() == meta["unit_id"].tolist()
    assert np.array_equal(np.stack(emb["embedding"].to_numpy()), X)
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    S = np.concatenate([splits[s]["scores"][:, cols] for s in ("train", "validation", "test")])
    assert np.array_equal(np.stack(scores["score"].to_numpy()), S)
    info = json.loads((tmp_path / "out" / "import.json").read_text())
    assert info["derived_species_not_in_preprint"] == ["Fillerus sp0003"]
    # the custom simulation reads the three tables
    ds = custom_dataset(
        *(
            tmp_path / "out" / f
            for f in ("embeddings.parquet", "labels.parquet", "metadata.parquet")
        )
    )
    assert ds.n == 26 and ds.Y.sum() == Y.sum() and "split" in ds.units


def test_wabad_derived_species_rule_and_spans(tmp_path: Path) -> None:
    fix = fx.write_wabad(tmp_path / "W", {"train": 12, "validation": 3, "test": 9}, with_times=True)
    import_wabad(tmp_path / "W", tmp_path / "out", species="derived")
    meta, _, _lab, species = _tables(tmp_path / "out")
    tr, te = fix["splits"]["train"]["Y"], fix["splits"]["test"]["Y"]
    latin = [lab_.split("_")[0] for lab_ in fix["labels"]]
    both = sorted({latin[i] for i in np.flatnonzero(tr.any(0) & te.any(0))})
    assert EXCLUDED_SPECIES[0] in both  # present in both splits, removed by the rule
    assert [s.split("_")[0] for s in species] == [s for s in both if s not in EXCLUDED_SPECIES]
    # three 3 s rows per file from the Start/End columns
    assert meta["unit_id"].str.rsplit("@", n=1).str[1].tolist()[:6] == ["0.0", "3.0", "6.0"] * 2
    assert (meta["recording_duration_s"] == 9).all()
    assert meta.groupby("recording_id").size().eq(3).all()


def test_wabad_rows_per_file_without_times(tmp_path: Path) -> None:
    fx.write_wabad(tmp_path / "W", {"train": 6, "test": 6}, with_times=True)
    import_wabad(tmp_path / "W", tmp_path / "timed")
    for split in ("train", "test"):
        path = tmp_path / "W" / "data_files" / f"dataframe_{split}.pkl"
        df, Y, S = load_pickle(path)
        with open(path, "wb") as f:
            pickle.dump([df.drop(columns=["Start", "End"]), Y, S], f)
    res = import_wabad(tmp_path / "W", tmp_path / "order")
    timed = pd.read_parquet(tmp_path / "timed" / "metadata.parquet")
    order = pd.read_parquet(tmp_path / "order" / "metadata.parquet")
    assert order["unit_id"].tolist() == timed["unit_id"].tolist()
    assert order["end_s"].tolist() == timed["end_s"].tolist()
    assert res.info["span"]["train"] == "order within File (3 s windows, 3 s hop)"
    assert res.info["rows_per_file"] == {"train": 3.0, "test": 3.0}


def test_wabad_layout_errors(tmp_path: Path) -> None:
    fx.write_wabad(tmp_path / "W")
    d = tmp_path / "W" / "data_files"
    X, files = load_pickle(d / "embeddings_test.pkl")
    with open(d / "embeddings_test.pkl", "wb") as f:
        pickle.dump([X, files[::-1]], f)
    with pytest.raises(DatasetError, match=r"embeddings_test\.pkl: row 0: .*aligned"):
        import_wabad(tmp_path / "W", tmp_path / "out")
    with open(d / "embeddings_test.pkl", "wb") as f:
        pickle.dump([X, files], f)
    df, Y, S = load_pickle(d / "dataframe_validation.pkl")
    Y[1, 5] = 0.5
    with open(d / "dataframe_validation.pkl", "wb") as f:
        pickle.dump([df, Y, S], f)
    with pytest.raises(DatasetError, match=r"dataframe_validation\.pkl: y_true\[1, 5\]"):
        import_wabad(tmp_path / "W", tmp_path / "out")
    assert not (tmp_path / "out" / "metadata.parquet").exists()


# --------------------------------------------------------------------------- safety


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _evil_payloads(marker: Path) -> dict[str, bytes]:
    m = str(marker)
    return {
        "os.system reduce": pickle.dumps(_System(marker), protocol=4),
        "os.system proto 0": pickle.dumps(_System(marker), protocol=0),
        "builtins.eval": f"cbuiltins\neval\n(Vopen({m!r}, 'w')\ntR.".encode(),
        "__builtin__.exec": f"c__builtin__\nexec\n(Vopen({m!r}, 'w')\ntR.".encode(),
        "builtins.getattr": b"cbuiltins\ngetattr\n(cbuiltins\nobject\nV__subclasses__\ntR.",
        "numpy.load": b"cnumpy\nload\n(Vx.npy\ntR.",
        "pandas.read_pickle": b"cpandas\nread_pickle\n(Vx.pkl\ntR.",
        "pandas.eval": f"cpandas\neval\n(Vopen({m!r}, 'w')\ntR.".encode(),
        "codec zlib": b"c_codecs\nencode\n(Vx\nVzlib\ntR.",
        "nested in list": pickle.dumps([np.zeros(2), {"a": _System(marker)}], protocol=2),
    }


@pytest.mark.parametrize("name", list(_evil_payloads(Path("m"))))
def test_malicious_pickle_refused_without_running(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_evil_payloads(marker)[name])
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    if "system" in name or name == "nested in list":
        assert re.search(r"refused global '(posix|nt|os)\.system'", msg), msg
    elif name == "codec zlib":
        assert "allowed for latin1 text only" in msg
    else:
        assert f"refused global '{name.replace('__builtin__', 'builtins')}'" in msg, msg
    assert not marker.exists()
    # the same payload is executable by the standard unpickler (the test can fail)
    if name in ("os.system reduce", "builtins.eval"):
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_malicious_wabad_pickle_refused_by_import_and_cli(tmp_path: Path, capsys) -> None:
    fx.write_wabad(tmp_path / "W")
    marker = tmp_path / "pwned"
    d = tmp_path / "W" / "data_files"
    df, Y, _S = load_pickle(d / "dataframe_train.pkl")
    with open(d / "dataframe_train.pkl", "wb") as f:
        pickle.dump([df, Y, _System(marker)], f)
    with pytest.raises(
        UnsafePickleError,
        match=r"dataframe_train\.pkl: refused global "
        r"'(posix|nt|os)\.system'",
    ):
        import_wabad(tmp_path / "W", tmp_path / "out")
    rc = cli_main(
        ["datasets", "import", "wabad", str(tmp_path / "W"), "--out", str(tmp_path / "out")]
    )
    assert rc == 2 and "refused global" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out" / "metadata.parquet").exists()


def _sample_objects() -> list[object]:
    df = pd.DataFrame(
        {
            "File": ["AIG_20210101_060000.wav", "BAR_20200202_070000.wav"],
            "i": [1, 2],
            "f": [0.5, np.nan],
            "b": [True, False],
            "o": np.array(["x", None], dtype=object),
            "t": pd.to_datetime(["2020-01-01", "2020-02-01"]),
            "tz": pd.to_datetime(["2020-01-01", "2020-02-01"]).tz_localize("UTC"),
            "c": pd.Categorical(["u", "v"]),
            "n": pd.array([1, None], dtype="Int64"),
            "td": pd.to_timedelta([1, 2], unit="s"),
        }
    )
    return [
        df,
        df.astype({"File": object}),
        df["File"],
        df.set_index("File"),
        df.set_index(["File", "i"]),
        pd.Index(["a", "b"]),
        np.zeros((2, 3), np.float32),
        np.array(["a", "b"]),
        np.float64(1.5),
        [df, np.eye(2), np.ones((2, 4))],
        {"a": (1, 2), "b": {1, 2}},
        pd.Timestamp("2020-01-01"),
    ]


def test_allowlist_covers_installed_pandas_and_numpy() -> None:
    for obj in _sample_objects():
        assert pickle_globals(obj) <= ALLOWED_GLOBALS, pickle_globals(obj) - ALLOWED_GLOBALS
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            back = loads(pickle.dumps(obj, protocol=proto), "sample")
            if isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
                assert back.equals(obj)
            elif isinstance(obj, np.ndarray):
                assert np.array_equal(back, obj)


def _std_loads_ok(data: bytes) -> bool:
    try:
        pickle.loads(data)
    except pickle.UnpicklingError:
        return False
    return True


def test_forged_arrow_offsets_refused() -> None:
    """A pandas >= 3 string column whose Arrow offsets point past its data loads silently with
    pickle (reads would leave the buffer) and is refused here."""
    if pd.Series(["x"]).dtype == object:
        pytest.skip("strings are not Arrow-backed in this pandas")
    data = pickle.dumps(pd.Series(["abcdefgh"]), protocol=5)
    needle, forged = (8).to_bytes(8, "little"), (100000).to_bytes(8, "little")
    candidates = [
        data[:i] + forged + data[i + 8 :] for i in range(len(data)) if data[i : i + 8] == needle
    ]
    bad = next(b for b in candidates if _std_loads_ok(b))  # the offsets, not a length prefix
    with pytest.raises(Exception, match="out of bounds"):
        pickle.loads(bad).array._pa_array.validate(full=True)
    with pytest.raises(UnsafePickleError, match="forged: corrupt Arrow string array"):
        loads(bad, "forged")


def test_pickle_from_older_numpy_and_pandas_names() -> None:
    """numpy 1.x / pandas 2.x spell the same globals differently; they map to the installed
    objects (a numpy 1 array pickle written by hand)."""
    legacy = pickle.dumps(np.arange(3.0), protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert b"numpy.core.multiarray" in legacy
    assert np.array_equal(loads(legacy, "legacy"), np.arange(3.0))
    # a DataFrame of object columns (pandas 2 style) with the pandas 2.x class paths
    df = pd.DataFrame(
        {"File": np.array(["AIG_20210101_060000.wav", "b_2"], dtype=object), "x": [1.0, 2.0]}
    )
    df.columns = pd.Index(list(df.columns), dtype=object)
    data = pickle.dumps(df, protocol=2)
    for new, old in (
        (b"cpandas.core.frame\nDataFrame\n", b"cpandas\nDataFrame\n"),
        (b"cpandas.core.indexes.base\nIndex\n", b"cpandas\nIndex\n"),
        (b"cpandas.core.indexes.range\nRangeIndex\n", b"cpandas\nRangeIndex\n"),
        (b"numpy.core.multiarray", b"numpy._core.multiarray"),
    ):
        assert old in data
        data = data.replace(old, new)
    assert loads(data, "pandas2").equals(df)


# --------------------------------------------------------------------------- torch files


def test_pt_roundtrip_dtypes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for dtype in ("f4", "f8", "f2", "i8", "i4", "u1", "i1", "?"):
        a = (rng.random((5, 3)) * 4).astype(dtype)
        T.save_pt(tmp_path / "t.pt", a)
        b = T.load_pt_array(tmp_path / "t.pt", ndim=2)
        assert b.dtype == a.dtype and np.array_equal(a, b)
    with zipfile.ZipFile(tmp_path / "t.pt") as zf:
        assert sorted(zf.namelist()) == ["t/byteorder", "t/data.pkl", "t/data/0", "t/version"]


class _View(T._TensorStub):
    """A tensor view with its own offset / stride (a transposed slice)."""

    def __init__(self, storage, shape, offset, stride) -> None:
        super().__init__(storage, shape)
        self.offset, self.stride = offset, stride

    def __reduce__(self):
        func, args = super().__reduce__()
        return func, (args[0], self.offset, self.shape, self.stride, *args[4:])


def _pt_bytes(obj: object, storage: np.ndarray, byteorder: str = "little") -> bytes:
    buf = io.BytesIO()
    T._TorchPickler(buf, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", byteorder)
        zf.writestr("archive/data/0", storage.tobytes())
    return out.getvalue()


def test_pt_strided_views_bounds_and_byteorder(tmp_path: Path) -> None:
    base = np.arange(20, dtype="<f4")
    st = T._StorageStub("0", "FloatStorage", 20)
    path = tmp_path / "v.pt"
    path.write_bytes(_pt_bytes(_View(st, (3, 4), 2, (1, 5)), base))
    expected = np.lib.stride_tricks.as_strided(base[2:], (3, 4), (4, 20))
    assert np.array_equal(T.load_pt_array(path), expected)
    path.write_bytes(_pt_bytes({"x": _View(st, (2, 2), 0, (10, 1)), "y": [1, 2]}, base))
    obj = T.load_pt(path)
    assert np.array_equal(obj["x"], [[0, 1], [10, 11]]) and obj["y"] == [1, 2]
    path.write_bytes(_pt_bytes(_View(st, (3, 4), 3, (1, 5)), base))  # one element too far
    with pytest.raises(UnsafePickleError, match="reaches element 20 of a storage of 20"):
        T.load_pt(path)
    big = np.arange(6, dtype=">i8")
    path.write_bytes(
        _pt_bytes(_View(T._StorageStub("0", "LongStorage", 6), (6,), 0, (1,)), big, "big")
    )
    assert T.load_pt_array(path).tolist() == list(range(6))


def test_bfloat16_storage_decoding() -> None:
    x = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    raw = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    assert np.array_equal(T._decode(raw, "bf16", False, 3, "s"), x)


def test_malicious_pt_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad_pid = io.BytesIO()

    class _Pid(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "not a storage type", "0", "cpu", 1) if obj == "S" else None

    _Pid(bad_pid, protocol=2).dump(["S"])
    cases = {
        "system": (pickle.dumps(_System(marker), protocol=2), "refused global"),
        "eval": (b"cbuiltins\neval\n(Vopen('x','w')\ntR.", "refused global 'builtins.eval'"),
        "torch.load": (b"ctorch\nload\n(Vx\ntR.", "refused global 'torch.load'"),
        "pid": (bad_pid.getvalue(), "is not a torch storage"),
    }
    for name, (payload, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
            zf.writestr("archive/data/0", b"\0" * 8)
        with pytest.raises(UnsafePickleError, match=message):
            T.load_pt(path)
    assert not marker.exists()
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(np.zeros(2)))
    with pytest.raises(T.TorchFileError, match="not a zip-format torch file"):
        T.load_pt(tmp_path / "legacy.pt")


def test_pt_against_real_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    torch.save(torch.from_numpy(a).t(), tmp_path / "real.pt")
    assert np.array_equal(T.load_pt_array(tmp_path / "real.pt"), a.T)
    T.save_pt(tmp_path / "ours.pt", a)
    assert np.array_equal(torch.load(tmp_path / "ours.pt", weights_only=True).numpy(), a)


# --------------------------------------------------------------------------- AnuraSet


def test_anuraset_import_exact_and_overlap_cost(tmp_path: Path) -> None:
    fix = fx.write_anuraset(tmp_path / "A")
    res = import_anuraset(tmp_path / "A", tmp_path / "out")
    meta, emb, lab, species = _tables(tmp_path / "out")
    data = pd.concat([fix["splits"][s]["data"] for s in ("train", "test")], ignore_index=True)
    assert res.splits == {"train": 30, "test": 20} and len(species) == 42
    assert meta["unit_id"].tolist() == [
        f"{f}@{t:.1f}" for f, t in zip(data["fname"], data["min_t"])
    ]
    assert meta["recording_id"].tolist() == data["fname"].tolist()
    assert (meta["end_s"] - meta["start_s"] == 3).all()
    assert meta.groupby("recording_id")["split"].nunique().eq(1).all()
    assert meta["site"].tolist() == data["fname"].str.split("_").str[0].tolist()
    assert meta["site"].nunique() == 4
    by_date = {
        d: None if pd.isna(p) else p
        for d, p in zip(meta["fname"].str.split("_").str[1], meta["period"])
    }
    assert by_date == {
        "20191015": "A",
        "20200110": "B",
        "20201120": "C",
        "20200601": None,
        "20191201": "B",
        "20210105": "C",
    }
    first = meta.iloc[1]
    assert first["segment_time"] == pd.Timestamp("2019-10-15 00:00:01", tz="UTC")
    Y = np.concatenate([fix["splits"][s]["Y"] for s in ("train", "test")])
    assert np.array_equal(_dense(meta, lab, species), Y)
    X = np.concatenate([fix["splits"][s]["X"] for s in ("train", "test")])
    assert np.array_equal(np.stack(emb["embedding"].to_numpy()), X)
    # five 3 s windows every 1 s: 7 s of audio, not 15; with 4 s context: 0..11 s
    rec = meta[meta["recording_id"] == meta["recording_id"].iloc[0]]
    assert union_seconds(rec["recording_id"], rec["start_s"], rec["end_s"]) == 7.0
    assert (rec["end_s"] - rec["start_s"]).sum() == 15.0
    assert (
        union_seconds(
            rec["recording_id"], rec["start_s"], rec["end_s"], 4.0, rec["recording_duration_s"]
        )
        == 7.0
    )
    two = rec.iloc[[0, 4]]
    assert union_seconds(two["recording_id"], two["start_s"], two["end_s"], 1.0) == 8.0


def test_anuraset_order_spans_species_columns_and_npy(tmp_path: Path) -> None:
    fx.write_anuraset(tmp_path / "A1", seed=3)
    fix = fx.write_anuraset(tmp_path / "A2", seed=3, with_times=False, species_columns=True)
    r1 = import_anuraset(tmp_path / "A1", tmp_path / "o1")
    r2 = import_anuraset(tmp_path / "A2", tmp_path / "o2")
    m1, _, l1, s1 = _tables(tmp_path / "o1")
    m2, _, l2, s2 = _tables(tmp_path / "o2")
    assert m1["unit_id"].tolist() == m2["unit_id"].tolist()
    assert s1 == [f"class_{j:02d}" for j in range(42)] and s2 == fix["species"]
    assert (
        "order within fname" in r2.info["span"]["train"]
        and r1.info["span"]["train"] == "columns min_t/max_t"
    )
    assert np.array_equal(_dense(m1, l1, s1), _dense(m2, l2, s2))
    assert not any(c in m2 for c in fix["species"])  # species columns are labels, not strata
    # .npy instead of .pt; an object .npy is refused (allow_pickle=False)
    folder = tmp_path / "A1" / "test"
    X = T.load_pt_array(folder / "embeddings.pt")
    (folder / "embeddings.pt").unlink()
    np.save(folder / "embeddings.npy", X)
    import_anuraset(tmp_path / "A1", tmp_path / "o3")
    assert np.array_equal(
        np.stack(pd.read_parquet(tmp_path / "o3" / "embeddings.parquet")["embedding"].to_numpy())[
            30:
        ],
        X,
    )
    np.save(folder / "embeddings.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="embeddings.npy: .*allow_pickle"):
        import_anuraset(tmp_path / "A1", tmp_path / "o4")


def test_anuraset_recording_in_two_splits_is_an_error(tmp_path: Path) -> None:
    fix = fx.write_anuraset(tmp_path / "A")
    data = fix["splits"]["test"]["data"].copy()
    data.loc[data.index[:5], "fname"] = fix["splits"]["train"]["data"]["fname"].iloc[0]
    data.to_csv(tmp_path / "A" / "test" / "data.csv", index=False)
    with pytest.raises(DatasetError, match="is in splits \\['test', 'train'\\]"):
        import_anuraset(tmp_path / "A", tmp_path / "out")


# --------------------------------------------------------------------------- BaseAL


def test_baseal_import_exact(tmp_path: Path, capsys) -> None:
    fix = fx.write_baseal(tmp_path / "B")
    rc = cli_main(
        ["datasets", "import", "baseal", str(tmp_path / "B"), "--out", str(tmp_path / "out")]
    )
    assert rc == 0 and "16 units (train 12, test 4)" in capsys.readouterr().out
    meta, emb, lab, species = _tables(tmp_path / "out")
    labels, md = fix["labels"], fix["metadata"]
    assert species == ["dog", "rain", "rooster"]
    assert meta["filename"].tolist() == labels["filename"].tolist()
    assert meta["recording_id"].tolist() == md["original_filepath"].str[:-4].tolist()
    assert meta["unit_id"].tolist() == [
        f"{r[:-4]}@{s:.1f}" for r, s in zip(md["original_filepath"], md["segment_start"])
    ]
    assert meta["split"].tolist() == np.where(labels["validation"], "test", "train").tolist()
    assert meta["site"].tolist() == md["site"].tolist() and "label" not in meta
    Y = np.array([[int(c in str(v).split(";")) for c in species] for v in labels["label"]])
    assert (Y.sum(axis=1) == 0).any() and (Y.sum(axis=1) >= 2).any()
    assert np.array_equal(_dense(meta, lab, species), Y)
    X = np.stack([fix["vectors"][f] for f in labels["filename"]])
    assert np.array_equal(np.stack(emb["embedding"].to_numpy()), X)


def test_baseal_model_choice_and_missing_files(tmp_path: Path) -> None:
    fx.write_baseal(tmp_path / "B", with_metadata=False)
    import_baseal(tmp_path / "B", tmp_path / "out")
    meta = pd.read_parquet(tmp_path / "out" / "metadata.parquet")
    assert meta["recording_id"].tolist() == meta["filename"].str[:-4].tolist()
    assert (meta["start_s"] == 0).all() and (meta["end_s"] == 3).all()
    (tmp_path / "B" / "embeddings" / "perch").mkdir()
    with pytest.raises(DatasetError, match="2 model folders \\(birdnet, perch\\); choose"):
        import_baseal(tmp_path / "B", tmp_path / "out")
    with pytest.raises(DatasetError, match="no model 'beats' \\(found: birdnet, perch\\)"):
        import_baseal(tmp_path / "B", tmp_path / "out", model="beats")
    next((tmp_path / "B" / "embeddings" / "birdnet").glob("2-*.npy")).unlink()
    with pytest.raises(DatasetError, match="no embedding for 1 labels.csv row"):
        import_baseal(tmp_path / "B", tmp_path / "out", model="birdnet")


# --------------------------------------------------------------------------- cost helper


def test_union_seconds_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    rec = rng.choice(["a", "b", "c"], size=40)
    start = rng.integers(0, 50, size=40).astype(float)
    end = start + 3.0
    dur = np.full(40, 55.0)
    for ctx in (0.0, 2.0):
        grid = np.arange(0, 60, 0.5) + 0.25
        lo, hi = np.maximum(start - ctx, 0), np.minimum(end + ctx, dur)
        brute = sum(
            0.5
            * ((grid[None, :] > lo[rec == r, None]) & (grid[None, :] < hi[rec == r, None]))
            .any(0)
            .sum()
            for r in "abc"
        )
        assert union_seconds(rec, start, end, ctx, dur) == pytest.approx(brute)
