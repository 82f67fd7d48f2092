"""Issue 11, identities: stable recording ids, one file discovery, content-checked caches.

BirdNET is replaced by :class:`FakeModel` (deterministic logits/embeddings of the right shape
from the window's samples), so these tests exercise ids, discovery and caching, not the model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activepam.core import hashing
from activepam.detection import birdnet as bn
from activepam.detection import detect, probe, steps
from activepam.detection.detect import detect_files
from activepam.detection.filenames import IdRegistry
from activepam.detection.inputs import find_audio
from activepam.detection.inventory import run_inventory

SR = 8000
#: lengths of the generated files: each keeps its last (>= 1 s) BirdNET window, so end_s = length
DURATIONS = (1.5, 2.0, 2.5, 3.0, 4.0, 4.5)


class FakeModel:
    """Stand-in for :class:`activepam.detection.birdnet.BirdNET`: cheap, deterministic, right
    shapes."""

    def __init__(self, threads: int = 1, batch_size: int = 4, sensitivity: float = 1.0) -> None:
        self.batch_size, self.sensitivity = batch_size, sensitivity
        self.windows = 0

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(windows)
        self.windows += n
        level = np.abs(windows).mean(axis=1).astype(np.float32)
        conf = np.full((n, bn.N_SPECIES), 0.01, dtype=np.float32)
        conf[np.arange(n), (level * 1e5).astype(np.int64) % bn.N_SPECIES] = 0.9
        emb = np.repeat(level[:, None], bn.EMBEDDING_DIM, axis=1)
        return conf, emb


def write_audio(path: Path, tag: int, seconds: float | None = None) -> Path:
    """A small WAV whose content (and length) is determined by ``tag``."""
    seconds = DURATIONS[tag % len(DURATIONS)] if seconds is None else seconds
    rng = np.random.default_rng(tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * SR))).astype("float32"), SR)
    return path


def run_detect(folder: Path, out: Path, model: FakeModel | None = None) -> tuple[dict, dict]:
    """``activepam detect FOLDER --out OUT`` with the fake model: (summary, {path: id})."""
    files, skipped = find_audio([folder])
    summary = detect_files(
        files, out, progress=False, model=model or FakeModel(), quarantine=skipped
    )
    seg = pd.read_parquet(out / "segments.parquet")
    return summary, dict(zip(seg["path"], seg["recording_id"]))


def run_inv(folder: Path, out: Path) -> tuple[dict[str, str], pd.DataFrame]:
    res = run_inventory(
        [folder], None, out / "inventory.parquet", out / "quarantine.csv", progress=False, threads=1
    )
    return dict(zip(res.inventory["path"], res.inventory["recording_id"])), res.quarantine


# --------------------------------------------------------------------------- item 9: ids


def test_inventory_backup_copy_keeps_the_existing_id(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    orig = write_audio(raw / "S4A03895_20190522_000000.wav", 1)
    ids, _ = run_inv(raw, tmp_path / "inv")
    assert ids == {str(orig): "S4A03895_20190522T000000Z"}
    # a backup copy (same content) is a true duplicate: reported, not a second recording
    backup = raw / "backup" / orig.name
    backup.parent.mkdir()
    shutil.copy(orig, backup)
    ids, quar = run_inv(raw, tmp_path / "inv")
    assert ids == {str(orig): "S4A03895_20190522T000000Z"}
    row = quar[quar["path"] == str(backup)]
    assert len(row) == 1 and row["reason"].iloc[0].startswith("duplicate: same content")
    assert str(orig) in row["reason"].iloc[0]


def test_inventory_other_file_with_same_name_never_renames_the_first(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    orig = write_audio(raw / "main" / "S4A03895_20190522_000000.wav", 1)
    assert run_inv(raw, tmp_path / "inv")[0] == {str(orig): "S4A03895_20190522T000000Z"}
    # different audio under the same name, in a folder that sorts BEFORE the first one
    other = write_audio(raw / "a_other" / "S4A03895_20190522_000000.wav", 2)
    ids, quar = run_inv(raw, tmp_path / "inv")
    assert ids[str(orig)] == "S4A03895_20190522T000000Z"
    assert ids[str(other)] == f"S4A03895_20190522T000000Z-{hashing.file_key(other).sha256[:8]}"
    assert quar.empty
    # the registry remembers: the same again gives the same ids
    assert run_inv(raw, tmp_path / "inv")[0] == ids
    reg = pd.read_csv(tmp_path / "inv" / "recording_ids.csv", dtype=str)
    assert sorted(reg["recording_id"]) == sorted(ids.values())


def test_detect_second_rec_wav_keeps_rec_at_0(tmp_path: Path) -> None:
    first = write_audio(tmp_path / "audio" / "z" / "rec.wav", 1)
    _, ids = run_detect(tmp_path / "audio", tmp_path / "out")
    assert ids == {str(first): "rec"}
    second = write_audio(tmp_path / "audio" / "a" / "rec.wav", 2)
    summary, ids = run_detect(tmp_path / "audio", tmp_path / "out")
    assert ids[str(first)] == "rec" and ids[str(second)].startswith("rec-")
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert "rec@0.0" in set(seg["segment_id"])
    assert seg.loc[seg["segment_id"] == "rec@0.0", "path"].item() == str(first)
    assert summary["processed"] == [ids[str(second)]]  # the first is not redone


def test_detect_true_duplicate_processed_once(tmp_path: Path) -> None:
    a = write_audio(tmp_path / "audio" / "a" / "rec.wav", 1)
    copy = tmp_path / "audio" / "b" / "rec.wav"
    copy.parent.mkdir(parents=True)
    shutil.copy(a, copy)
    model = FakeModel()
    summary, ids = run_detect(tmp_path / "audio", tmp_path / "out", model)
    assert ids == {str(a): "rec"} and summary["n_processed"] == 1
    quar = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert quar["path"].tolist() == [str(copy)]
    assert (
        quar["reason"].iloc[0].startswith("duplicate: same content")
        and str(a) in quar["reason"].iloc[0]
    )


def test_registry_rules_move_replace_and_reuse() -> None:
    def k(sha: str) -> hashing.FileKey:
        return hashing.FileKey(1, 1, sha * 64)

    reg = IdRegistry()
    ids, dups = reg.assign([("a/x.wav", "x", k("1"), False), ("b/x.wav", "x", k("2"), False)])
    assert ids == {"a/x.wav": "x", "b/x.wav": "x-22222222"} and dups == []
    # moved (same content, new path) keeps its id; replaced in place keeps its id
    ids, _ = reg.assign([("c/x.wav", "x", k("1"), False), ("b/x.wav", "x", k("3"), False)])
    assert ids == {"c/x.wav": "x", "b/x.wav": "x-22222222"}
    # a file that is gone keeps its id reserved: new content never gets it
    ids, _ = reg.assign([("d/x.wav", "x", k("4"), False)])
    assert ids == {"d/x.wav": "x-44444444"}
    # two silent hours with equal bytes but different device/time names are two recordings
    ids, dups = reg.assign([("h1.wav", "D_T1", k("5"), True), ("h2.wav", "D_T2", k("5"), True)])
    assert ids == {"h1.wav": "D_T1", "h2.wav": "D_T2"} and dups == []


# --------------------------------------------------------------------------- item 10: discovery


def _tree_with_links(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    write_audio(d / "sub" / "X.wav", 1)
    os.symlink("..", d / "sub" / "up")  # loop
    os.symlink("X.wav", d / "sub" / "link_to_X.wav")  # the same file again
    os.symlink("missing.wav", d / "dangling.wav")
    (d / "voice.opus").write_bytes(b"OggS" + b"\0" * 100)
    (d / "notes.txt").write_text("not audio, ignored")
    return d


def test_symlink_loop_lists_each_file_once(tmp_path: Path) -> None:
    d = _tree_with_links(tmp_path)
    ids, quar = run_inv(d, tmp_path / "inv")
    assert list(ids) == [str(d / "sub" / "X.wav")]
    reasons = dict(zip(quar["path"], quar["reason"]))
    assert reasons[str(d / "sub" / "up")].startswith("symlink loop")
    assert reasons[str(d / "sub" / "link_to_X.wav")].startswith(f"same file as {d / 'sub'}")
    assert reasons[str(d / "dangling.wav")] == "dangling symlink -> missing.wav"
    assert reasons[str(d / "voice.opus")].startswith("unsupported audio format '.opus'")
    assert str(d / "notes.txt") not in reasons


def test_detect_and_inventory_share_discovery(tmp_path: Path) -> None:
    d = _tree_with_links(tmp_path)
    files, skipped = find_audio([d])
    found = probe.discover_audio([d], stage="detect")
    assert files == [f.path for f in found.files] == [str(d / "sub" / "X.wav")]
    assert skipped == found.skipped and {q["stage"] for q in skipped} == {"detect"}
    _, quar = run_inv(d, tmp_path / "inv")
    assert sorted(zip(quar["path"], quar["reason"])) == sorted(
        (q["path"], q["reason"]) for q in skipped
    )
    summary, ids = run_detect(d, tmp_path / "out")
    assert list(ids) == [str(d / "sub" / "X.wav")] and summary["n_quarantined"] == 4


# --------------------------------------------------------------------------- item 11: caches


def test_replaced_audio_is_detected_again(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "audio" / "a.wav", 1, seconds=7.0)
    summary, _ = run_detect(tmp_path / "audio", tmp_path / "out")
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert seg["end_s"].max() == pytest.approx(7.0) and summary["n_processed"] == 1
    write_audio(path, 2, seconds=19.5)  # new audio behind the same path
    summary, ids = run_detect(tmp_path / "audio", tmp_path / "out")
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert summary["n_processed"] == 1 and summary["n_changed"] == 1
    assert len(seg) == 7 and seg["end_s"].max() == pytest.approx(19.5)
    assert ids == {str(path): "a"}  # same recording, same id, new results
    # touching (or moving) without changing content re-detects nothing
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert run_detect(tmp_path / "audio", tmp_path / "out")[0]["n_processed"] == 0
    moved = tmp_path / "audio" / "sub" / "a.wav"
    moved.parent.mkdir()
    path.rename(moved)
    summary, ids = run_detect(tmp_path / "audio", tmp_path / "out")
    assert summary["n_processed"] == 0 and ids == {str(moved): "a"}
    pred = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(pred["path"]) == {str(moved)}  # outputs name the current path


def test_workflow_shard_cache_checks_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rule detect_shard`` (run_shard on an inventory): a part records its content key."""
    monkeypatch.setattr(detect.bn, "BirdNET", FakeModel)
    raw = tmp_path / "raw"
    path = write_audio(raw / "S4A03895_20190522_000000.wav", 1, seconds=7.0)
    run_inv(raw, tmp_path / "inv")
    cfg = {"batch_size": 4}
    parts = tmp_path / "parts"
    first = steps.detect_shard(
        tmp_path / "inv" / "inventory.parquet",
        "0000",
        tmp_path / "s",
        parts,
        **cfg,
        threads=1,
        progress=False,
    )
    assert first["n_processed"] == 1
    again = steps.detect_shard(
        tmp_path / "inv" / "inventory.parquet",
        "0000",
        tmp_path / "s",
        parts,
        **cfg,
        threads=1,
        progress=False,
    )
    assert again["n_processed"] == 0 and again["n_cached"] == 1
    write_audio(path, 2, seconds=19.5)
    ids, _ = run_inv(raw, tmp_path / "inv")  # re-inventoried: the id is kept
    assert ids == {str(path): "S4A03895_20190522T000000Z"}
    third = steps.detect_shard(
        tmp_path / "inv" / "inventory.parquet",
        "0000",
        tmp_path / "s",
        parts,
        **cfg,
        threads=1,
        progress=False,
    )
    seg = pd.read_parquet(tmp_path / "s" / "segments.parquet")
    assert third["n_processed"] == 1 and seg["end_s"].max() == pytest.approx(19.5)


def test_stat_cache_skips_rehash_of_unchanged_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_audio(tmp_path / "a.wav", 1)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    key = hashing.file_key(path)
    assert key.mtime_ns == 1_000_000_000
    monkeypatch.setattr(hashing, "file_sha256", lambda p: pytest.fail("re-hashed"))
    assert hashing.file_key(path, key) == key
    fresh = write_audio(tmp_path / "b.wav", 2)
    monkeypatch.undo()
    assert hashing.file_key(fresh).mtime_ns == -1  # just written: never trusted (racy)


# --------------------------------------------------------------------------- property test


FOLDERS = ("a", "b", "c/d")
NAMES = ("rec.wav", "S4A03895_20190522_000000.wav", "other.wav")
SLOTS = tuple(f"{f}/{n}" for f in FOLDERS for n in NAMES)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "copy", "move", "replace"]), st.integers(0, 99), st.integers(0, 99)
    ),
    min_size=1,
    max_size=5,
)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_ids_survive_any_add_copy_move_replace(ops: list[tuple[str, int, int]]) -> None:
    """Any sequence of adding, copying, moving and replacing files keeps the ids of untouched
    files (detect and inventory) and re-detects exactly the files whose content changed."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = root / "audio"
        content: dict[str, int] = {}  # path -> content tag
        tag = 0
        for slot in ("a/rec.wav", "b/S4A03895_20190522_000000.wav"):
            tag += 1
            content[str(write_audio(audio / slot, tag))] = tag
        _, det_ids = run_detect(audio, root / "out")
        inv_ids, _ = run_inv(audio, root / "inv")
        for kind, i, j in ops:
            paths = sorted(content)
            dst = str(audio / SLOTS[j % len(SLOTS)])
            src = paths[i % len(paths)] if paths else None
            if kind in ("add", "copy", "move") and dst in content or src is None:
                continue
            # a copy leaves its source alone; a move touches both ends
            touched = {"add": {dst}, "copy": {dst}, "move": {src, dst}, "replace": {src}}[kind]
            if kind == "add" or kind == "replace":
                tag += 1
                target = dst if kind == "add" else src
                write_audio(Path(target), tag)
                content[target] = tag
            elif kind == "copy":
                Path(dst).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
                content[dst] = content[src]
            else:
                Path(dst).parent.mkdir(parents=True, exist_ok=True)
                os.rename(src, dst)
                content[dst] = content.pop(src)
            summary, new_det = run_detect(audio, root / "out")
            new_inv, quar = run_inv(audio, root / "inv")
            for before, after in ((det_ids, new_det), (inv_ids, new_inv)):
                for path, rid in before.items():
                    if path not in touched:
                        assert after.get(path) == rid, (kind, path)
                if kind == "move" and src in before:  # the id follows the content
                    holder = [p for p, r in after.items() if r == before[src]]
                    assert holder and content[holder[0]] == content[dst]
                # one id per content; every other path is a reported duplicate
                assert len({content[p] for p in after}) == len(after) == len(set(content.values()))
                dups = set(quar["path"][quar["reason"].str.startswith("duplicate")])
                assert set(after) | dups == set(content)
            changed = [new_det[dst if kind == "add" else src]] if kind in ("add", "replace") else []
            assert summary["processed"] == changed, (kind, summary["processed"])
            seg = pd.read_parquet(root / "out" / "segments.parquet")
            ends = seg.groupby("path")["end_s"].max()
            for path in new_det:
                assert ends[path] == pytest.approx(
                    DURATIONS[content[path] % len(DURATIONS)], abs=0.01
                )
            det_ids, inv_ids = new_det, new_inv
