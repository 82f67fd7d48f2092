"""Issue 11, inputs and messages: sample inputs, detect/inventory arguments, unreadable files,
non-finite audio, and a Makefile that never re-points a shared (symlinked) venv."""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.cli import main as cli_main
from activepam.detection import birdnet as bn
from activepam.detection.detect import detect_files
from activepam.detection.inventory import build_inventory
from activepam.detection.probe import probe_audio
from activepam.detection.tables import DetectError

REPO = Path(__file__).resolve().parents[1]


class FakeModel:
    """Cheap deterministic stand-in for BirdNET (right shapes)."""

    batch_size, sensitivity = 4, 1.0

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(windows)
        conf = np.full((n, bn.N_SPECIES), 0.02, dtype=np.float32)
        conf[:, 7] = 0.8
        return conf, np.zeros((n, bn.EMBEDDING_DIM), dtype=np.float32)


def _wav(path: Path, seconds: float = 4.0, sr: int = 48_000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype("float32")
    sf.write(path, x, sr, subtype="FLOAT")
    return path


# --------------------------------------------------------------------------- item 12: sample


def _segments(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rec = [f"r{i // 5}" for i in range(n)]
    start = [3.0 * (i % 5) for i in range(n)]
    top1 = rng.uniform(0.05, 0.95, n)
    return pd.DataFrame(
        {
            "segment_id": [f"{r}@{s:.1f}" for r, s in zip(rec, start)],
            "recording_id": rec,
            "path": [f"audio/{r}.wav" for r in rec],
            "start_s": start,
            "end_s": [s + 3.0 for s in start],
            "top1_species": "Sp_A",
            "top1_confidence": top1,
            "top2_confidence": top1 / 2,
            "margin": top1 / 2,
            "max_binary_entropy": rng.uniform(0.1, 0.9, n),
            "mean_binary_entropy": 0.1,
        }
    )


def _embeddings(ids: list[str], path: Path) -> Path:
    mat = np.random.default_rng(1).normal(size=(len(ids), 4)).astype(np.float32)
    pq.write_table(
        pa.table(
            {
                "segment_id": ids,
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), 4),
            }
        ),
        path,
    )
    return path


def _sample_cli(tmp_path: Path, segs: pd.DataFrame, strategy: str, *extra: str) -> int:
    seg_path = tmp_path / "segments.parquet"
    segs.to_parquet(seg_path)
    return cli_main(
        [
            "sample",
            "--segments",
            str(seg_path),
            "--strategy",
            strategy,
            "--n",
            "5",
            "--out",
            str(tmp_path / "sample.csv"),
            *extra,
        ]
    )


def test_sample_with_foreign_embeddings_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segs = _segments()
    emb = _embeddings([f"other@{i}.0" for i in range(30)], tmp_path / "emb.parquet")
    rc = _sample_cli(tmp_path, segs, "kmeans_entropy", "--embeddings", str(emb))
    err = capsys.readouterr().err
    assert rc == 1
    assert "none of the 30 segment_ids" in err and "emb.parquet" in err


def test_sample_all_nan_scores_fail_naming_the_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segs = _segments().assign(max_binary_entropy=np.nan)
    assert _sample_cli(tmp_path, segs, "max_entropy") == 1
    err = capsys.readouterr().err
    assert "column 'max_binary_entropy': 30 of 30 rows are not finite (30 NaN, 0 inf)" in err


def test_sample_nonfinite_scores_excluded_with_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segs = _segments()
    segs.loc[[0, 1], "max_binary_entropy"] = np.inf
    segs.loc[[2], "max_binary_entropy"] = np.nan
    with caplog.at_level(logging.WARNING):
        assert _sample_cli(tmp_path, segs, "max_entropy") == 0
    assert "column 'max_binary_entropy': 3 of 30 rows are not finite (1 NaN, 2 inf)" in caplog.text
    out = pd.read_csv(tmp_path / "sample.csv")
    assert len(out) == 5 and not set(out["unit_id"]) & set(segs["segment_id"][:3])
    assert np.isfinite(out["score"]).all()


def test_sample_rejects_bad_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(
            [
                "sample",
                "--segments",
                "x.parquet",
                "--strategy",
                "random",
                "--n",
                "0",
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
    assert "argument --n: must be an integer >= 1, got '0'" in capsys.readouterr().err


# --------------------------------------------------------------------------- item 13: detect


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
        (["--batch-size", "-3"], "argument --batch-size: must be an integer >= 1, got '-3'"),
        (["--threads", "0"], "argument --threads: must be an integer >= 1"),
        (["--top-k", "0"], "argument --top-k: must be an integer in [1, 6522]"),
        (["--overlap", "3"], "argument --overlap: must be a finite number in [0, 2.9]"),
        (["--sensitivity", "nan"], "argument --sensitivity: must be a finite number in [0.5, 1.5]"),
        (["--week", "0"], "argument --week: must be an integer in [1, 48] or -1"),
    ],
)
def test_detect_arguments_validated_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    wav = _wav(tmp_path / "a.wav")
    with pytest.raises(SystemExit) as exc:
        cli_main(["detect", str(wav), "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing was done


def test_detect_files_refuses_bad_batch_size(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav")
    for bad in (0, -1):
        with pytest.raises(DetectError, match="batch_size must be >= 1"):
            detect_files(
                [str(wav)], tmp_path / "o", batch_size=bad, model=FakeModel(), progress=False
            )


def test_inventory_arguments_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["inventory", str(tmp_path), "--out", str(tmp_path / "o"), "--shard-size", "0"])
    assert "argument --shard-size: must be an integer >= 1, got '0'" in capsys.readouterr().err


def _deny(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``open(path)`` fail as for a chmod-000 file (tests run as root, which reads it)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if not isinstance(file, int) and os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_permission_denied_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = _wav(tmp_path / "audio" / "locked.wav")
    _wav(tmp_path / "audio" / "ok.wav", seed=1)
    _deny(monkeypatch, locked)
    assert probe_audio(locked).reason == f"permission denied: {locked}"
    res = build_inventory([tmp_path / "audio"], progress=False, threads=1)
    assert res.quarantine["reason"].tolist() == [f"permission denied: {locked}"]
    summary = detect_files(
        [str(locked), str(tmp_path / "audio" / "ok.wav")],
        tmp_path / "o",
        model=FakeModel(),
        progress=False,
    )
    assert summary["quarantine"][0]["reason"] == f"permission denied: {locked}"
    assert summary["n_finished"] == 1


def test_permission_denied_for_real_as_nobody(tmp_path: Path) -> None:
    """chmod 000 checked by the kernel: run the probe as `nobody` when we are root."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop privileges")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"lk_perm_{os.getpid()}"
    work.mkdir(mode=0o755, exist_ok=True)
    try:
        locked = _wav(work / "locked.wav")
        locked.chmod(0o000)
        code = (
            "import sys; from activepam.detection.probe import probe_audio; "
            "print(probe_audio(sys.argv[1]).reason)"
        )
        import activepam.detection.probe

        src = Path(activepam.detection.probe.__file__).resolve().parents[2]  # the code under test
        env = dict(os.environ, PYTHONPATH=str(src))
        proc = subprocess.run(
            [
                setpriv,
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                str(REPO / ".venv" / "bin" / "python"),
                "-c",
                code,
                str(locked),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"nobody cannot run the venv here: {proc.stderr.strip()[-200:]}")
        assert proc.stdout.strip() == f"permission denied: {locked}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_nonfinite_samples_are_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sr = 48_000
    x = (0.1 * np.random.default_rng(0).standard_normal(4 * sr)).astype("float32")
    x[100:110] = np.nan
    x[5000] = np.inf
    x[sr * 3 + 7] = -np.inf
    bad = tmp_path / "nan.wav"
    sf.write(bad, x, sr, subtype="FLOAT")
    clean = _wav(tmp_path / "clean.wav", seed=2)
    with caplog.at_level(logging.WARNING):
        summary = detect_files(
            [str(bad), str(clean)], tmp_path / "o", model=FakeModel(), progress=False
        )
    assert summary["nonfinite"] == {str(bad): 12}
    assert f"{bad}: 12 NaN/inf samples" in caplog.text
    seg = pd.read_parquet(tmp_path / "o" / "segments.parquet")
    per_rec = seg.groupby("recording_id")["nonfinite_samples"].unique()
    assert list(per_rec["nan"]) == [12] and list(per_rec["clean"]) == [0]


# --------------------------------------------------------------------------- item 14: Makefile


def _clone_with_linked_venv(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, clone / name)  # fresh mtimes, newer than any stamp
    (clone / ".venv").symlink_to(REPO / ".venv")
    return clone


def test_make_never_reinstalls_into_a_linked_venv(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    clone = _clone_with_linked_venv(tmp_path)
    for target in ("venv", "test", "run"):
        proc = subprocess.run(
            ["make", "-n", target],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "pip install" not in proc.stdout, (target, proc.stdout)
        assert ".installed" not in proc.stdout
    proc = subprocess.run(
        ["make", "venv"], cwd=clone, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert "not reinstalling" in proc.stderr and str(clone / "src") in proc.stderr


def test_make_still_installs_a_missing_own_venv(tmp_path: Path) -> None:
    """The dry run above can fail: with a real (missing) .venv, make plans the install."""
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    clone = _clone_with_linked_venv(tmp_path)
    (clone / ".venv").unlink()
    proc = subprocess.run(
        ["make", "-n", "venv"], cwd=clone, capture_output=True, text=True, timeout=60, check=False
    )
    assert "pip install --quiet --no-deps -e ." in proc.stdout
