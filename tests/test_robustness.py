"""Faults and bad input (issue #6): kill-and-resume, corrupt files, disk-full and permission
errors, configuration errors, path safety.

Tests that run BirdNET or a Snakemake workflow are marked slow.
"""

from __future__ import annotations

import copy
import errno
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml
from repo_copy import copy_repo

from activepam.core import io as apio
from activepam.core.config import ConfigError, load_params, validate_params

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# --------------------------------------------------------------------------- helpers


def write_noise(path: Path, seconds: float, sr: int = 48_000, seed: int = 0) -> Path:
    """Seeded quiet noise plus a tone (WAV or FLAC from the suffix)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * (2000 + 300 * seed) * t) + 0.01 * rng.normal(size=t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr)
    return path


def corrupt_middle(path: Path, nbytes: int = 20_000, seed: int = 0) -> Path:
    """Overwrite bytes in the middle of a file: the header stays valid, decoding fails midway."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + nbytes] = (
        np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    )
    path.write_bytes(bytes(data))
    return path


def n_windows(seconds: float, hop: float = 3.0, min_len: float = 1.0) -> int:
    """BirdNET-Analyzer's number of 3 s windows (last chunk kept when >= 1 s)."""
    full, rest = divmod(seconds, hop)
    return int(full) + (1 if rest >= min_len else 0)


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def activepam_cli(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "activepam", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def repo_params() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def set_key(params: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return out


# --------------------------------------------------------------------------- configuration


def test_repo_params_yaml_is_valid() -> None:
    """The shipped params.yaml passes its own schema (YAML pitfalls included: bare NO = false)."""
    load_params(REPO / "params.yaml")


@pytest.mark.parametrize(
    "key, value",
    [
        ("detect.batch_size", 0),
        ("detect.shard_size", "ten"),
        ("detect.overlap_s", 3.0),
        ("detect.species_filter", "everywhere"),
        ("demo.n_sites", -1),
        ("inventory.extensions", ["flac"]),
        ("indices.bio_band", [1000]),
        ("demo.countries", [False, "DK"]),  # what an unquoted NO turns into
    ],
)
def test_bad_value_names_key_and_file(tmp_path: Path, key: str, value: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(set_key(repo_params(), key, value)))
    with pytest.raises(ConfigError) as err:
        load_params(bad)
    msg = str(err.value)
    assert key.split(".")[0] + "." + key.split(".")[1] in msg
    assert str(bad) in msg


def test_unknown_and_missing_keys_are_named(tmp_path: Path) -> None:
    params = set_key(repo_params(), "detect.batchsize", 16)  # typo of batch_size
    del params["indices"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError) as err:
        load_params(bad)
    msg = str(err.value)
    assert "detect.batchsize: unknown key (did you mean 'batch_size'?)" in msg
    assert "'indices' is a required property" in msg


def test_every_bad_key_is_reported_at_once() -> None:
    params = set_key(set_key(repo_params(), "detect.batch_size", 0), "detect.top_k", 0)
    with pytest.raises(ConfigError) as err:
        validate_params(params)
    assert "detect.batch_size" in str(err.value) and "detect.top_k" in str(err.value)


def test_unreadable_parameter_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parameter file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("detect: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_params(tmp_path / "list.yaml")


@pytest.mark.slow
def test_snakemake_reports_bad_config_before_any_work(tmp_path: Path) -> None:
    """`snakemake --configfile bad.yaml` fails at parse time, names the key, creates nothing."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("detect:\n  batch_size: 0\n")
    smk = Path(PY).parent / "snakemake"
    if not smk.exists():
        pytest.skip(f"{smk} not installed")
    proc = subprocess.run(
        [str(smk), "-s", str(REPO / "Snakefile"), "--cores", "1", "--configfile", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "detect.batch_size" in out and "minimum of 1" in out
    assert "Building DAG" not in out  # rejected while parsing, before scheduling any job
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- disk full / permission


def _frame(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"segment_id": [f"r@{i * 3.0:.1f}" for i in range(n)], "x": rng.random(n)})


@pytest.mark.parametrize("where", ["write", "rename"])
def test_disk_full_names_path_and_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "results" / "detect" / "segments.parquet"

    def enospc(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "write":
        monkeypatch.setattr(apio.pq, "write_table", enospc)
    else:
        monkeypatch.setattr(apio.os, "replace", enospc)
    with pytest.raises(apio.StageIOError) as err:
        apio.write_parquet(_frame(), target, stage="detect")
    assert err.value.errno == errno.ENOSPC
    assert str(target) in str(err.value) and "detect" in str(err.value)
    assert "No space left on device" in str(err.value)
    assert not target.exists() and tmp_files(tmp_path) == []


def test_real_file_size_limit_names_path_and_stage(tmp_path: Path) -> None:
    """A kernel write error (EFBIG from RLIMIT_FSIZE, the closest thing to a full disk without
    mounting one) surfaces as StageIOError naming the path and stage; no temp file remains."""
    target = tmp_path / "out" / "indices.parquet"
    code = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np, pandas as pd
        from activepam.core.io import StageIOError, write_parquet
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        df = pd.DataFrame({{"x": np.random.default_rng(0).random(200_000)}})
        try:
            write_parquet(df, {str(target)!r}, stage="indices")
        except StageIOError as exc:
            print(exc, file=sys.stderr)
            sys.exit(3)
    """)
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert str(target) in proc.stderr and "[indices]" in proc.stderr
    assert not target.exists() and tmp_files(tmp_path) == []


def _nobody_can_import(setpriv: str, tmp_path: Path) -> bool:
    """Can `nobody` run the venv's python and import activepam? Not when the clone sits in a
    folder only root may enter (e.g. a `mktemp -d`)."""
    probe = subprocess.run(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            PY,
            "-c",
            "import activepam.core.io",
        ],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    return probe.returncode == 0


def test_permission_denied_names_path_and_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing into a folder the user may not write to (run as `nobody` when we are root,
    since root bypasses permission bits). Where `nobody` cannot reach the checkout, the kernel's
    EACCES is raised in-process at the same call (os.replace) instead."""
    outdir = tmp_path / "readonly"
    outdir.mkdir()
    target = outdir / "inventory.parquet"
    code = (
        "import sys; from activepam.core.io import StageIOError, write_csv; import pandas as pd\n"
        "try:\n"
        f"    write_csv(pd.DataFrame({{'a': [1]}}), {str(target)!r}, stage='inventory')\n"
        "except StageIOError as exc:\n"
        "    print(exc, file=sys.stderr); sys.exit(3)\n"
    )
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        tmp_path.chmod(0o755)
        if setpriv is None or not _nobody_can_import(setpriv, tmp_path):

            def denied(src: str, dst: str) -> None:
                raise PermissionError(errno.EACCES, "Permission denied", str(dst))

            monkeypatch.setattr(apio.os, "replace", denied)
            with pytest.raises(apio.StageIOError) as info:
                apio.write_csv(pd.DataFrame({"a": [1]}), target, stage="inventory")
            message = str(info.value)
            assert str(target) in message and "[inventory]" in message
            assert "Permission denied" in message
            assert not list(outdir.glob("*.tmp")), "temporary file left behind"
            return
        outdir.chmod(0o755)  # root-owned, not writable by nobody
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", PY, "-c", code]
    else:
        outdir.chmod(0o500)
        cmd = [PY, "-c", code]
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    outdir.chmod(0o755)
    assert proc.returncode == 3, proc.stderr
    assert str(target) in proc.stderr and "[inventory]" in proc.stderr
    assert "Permission denied" in proc.stderr


@pytest.mark.parametrize("obstacle", ["target_is_dir", "parent_is_file"])
def test_unwritable_path_names_path_and_stage(tmp_path: Path, obstacle: str) -> None:
    if obstacle == "target_is_dir":
        target = tmp_path / "segments.parquet"
        target.mkdir()
    else:
        (tmp_path / "detect").write_text("a file where a folder should be")
        target = tmp_path / "detect" / "segments.parquet"
    with pytest.raises(apio.StageIOError) as err:
        apio.write_parquet(_frame(10), target, stage="detect")
    assert str(target) in str(err.value) and "[detect]" in str(err.value)
    assert tmp_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["inventory", "detect"])
def test_cli_unwritable_output_names_path_and_stage(tmp_path: Path, stage: str) -> None:
    """A stage's command line reports an output it cannot write with the path and the stage
    (`[stage]` from activepam.core.io or `activepam <stage>:`), as one line, without a traceback."""
    write_noise(tmp_path / "audio" / "a.wav", 3.0)
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    proc = activepam_cli(stage, str(tmp_path / "audio"), "--out", str(out), timeout=120)
    assert proc.returncode != 0
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert str(out) in last, last
    assert re.search(rf"\[{stage}\]|activepam {stage}:", last), last
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


# --------------------------------------------------------------------------- kill and resume


def _segments(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "segments.parquet").to_pandas()


@pytest.mark.slow
def test_sigkill_detection_then_resume(tmp_path: Path) -> None:
    """SIGKILL `activepam detect` once part files appear; the re-run completes with every
    segment exactly once, identical to an uninterrupted run, and leaves no temp files."""
    importlib.import_module("activepam.detection.detect")
    from activepam.core.hashing import table_digest

    audio = tmp_path / "audio"
    seconds = 30.0
    for i in range(8):
        write_noise(audio / f"rec{i:02d}.{'flac' if i % 2 else 'wav'}", seconds, seed=i)
    out = tmp_path / "killed"
    args = [
        "detect",
        str(audio),
        "--out",
        str(out),
        "--threads",
        "1",
        "--batch-size",
        "8",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [PY, "-m", "activepam", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 180
    try:
        while not list(out.glob("parts/*/*.segments.parquet")):
            assert proc.poll() is None, f"detect ended before it could be killed: {proc.stderr}"
            assert time.monotonic() < deadline, "no part file appeared within 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(out.glob("parts/*/*.segments.parquet")))
    assert 1 <= done_before < 8, "kill came too late to test resuming"
    assert not (out / "segments.parquet").exists()
    # a half-written part a kill can leave behind (atomic writes leave only *.tmp files)
    parts = next(out.glob("parts/*"))
    (parts / ".rec07.embeddings.parquet.abc123.tmp").write_bytes(b"PAR1 half written")

    rerun = activepam_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    seg = _segments(out)
    assert seg["segment_id"].is_unique
    assert len(seg) == 8 * n_windows(seconds)
    assert seg.groupby("recording_id").size().eq(n_windows(seconds)).all()
    for kind in ("predictions", "embeddings"):
        table = pq.read_table(out / f"{kind}.parquet").to_pandas()
        assert set(table["segment_id"]) == set(seg["segment_id"])
    assert len(pq.read_table(out / "embeddings.parquet")) == len(seg)
    assert tmp_files(tmp_path) == []
    assert pd.read_csv(out / "quarantine.csv").empty

    clean = tmp_path / "clean"
    assert activepam_cli(*args[:2], "--out", str(clean), *args[4:]).returncode == 0
    for kind in ("segments", "predictions", "embeddings"):
        assert (
            table_digest(out / f"{kind}.parquet").digest
            == table_digest(clean / f"{kind}.parquet").digest
        ), kind


# ---------------------------------------------------------------------- corrupt file in a shard


@pytest.mark.slow
def test_corrupt_file_mid_shard_is_quarantined_not_fatal(tmp_path: Path) -> None:
    """A file whose header is fine but whose data is garbage halfway (passes the inventory's
    probe) sits in the middle of a shard: the shard completes, the file is quarantined."""
    seconds = 30.0
    paths = [write_noise(tmp_path / "audio" / f"r{i}.flac", seconds, seed=i) for i in range(5)]
    corrupt_middle(paths[2])
    inv = pd.DataFrame(
        {
            "recording_id": [f"dev1_2025051{i}T000000Z" for i in range(5)],
            "path": [str(p) for p in paths],
            "status": "ok",
            "shard": ["0000"] * 5,
        }
    )
    extra = write_noise(tmp_path / "audio" / "other_shard.flac", 6.0, seed=9)
    inv.loc[len(inv)] = ["dev2_20250510T000000Z", str(extra), "ok", "0001"]
    inv_path = tmp_path / "inventory.parquet"
    inv.to_parquet(inv_path)
    out = tmp_path / "shards" / "0000"
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())["detect"]
    from activepam.detection.steps import DETECT_KEYS, detect_shard

    detect_shard(
        inv_path,
        "0000",
        out,
        tmp_path / "parts",
        **{k: cfg[k] for k in (*DETECT_KEYS, "batch_size") if k in cfg},
        threads=1,
        progress=False,
    )

    seg = _segments(out)
    assert sorted(seg["path"].unique()) == sorted(str(p) for i, p in enumerate(paths) if i != 2)
    assert len(seg) == 4 * n_windows(seconds) and seg["segment_id"].is_unique
    quar = pd.read_csv(out / "quarantine.csv")
    assert quar["path"].tolist() == [str(paths[2])]
    assert quar["stage"].tolist() == ["detect"]
    assert "decode failed" in quar["reason"].iloc[0]
    # nothing silently dropped: every shard recording is either detected or quarantined
    assert set(seg["path"]) | set(quar["path"]) == {str(p) for p in paths}
    assert tmp_files(tmp_path) == []


# --------------------------------------------------------------------------- path safety


@pytest.mark.slow
@pytest.mark.parametrize("rid", ["../../../escaped", "ABSOLUTE", "sub/../../../escaped"])
def test_detect_part_files_stay_inside_parts_dir(tmp_path: Path, rid: str) -> None:
    """A recording_id from an imported inventory must not steer part files out of parts_dir
    (`..` and absolute ids are rejected or made safe)."""
    detect = importlib.import_module("activepam.detection.detect")
    if rid == "ABSOLUTE":
        rid = str(tmp_path / "abs" / "escaped")
    work = tmp_path / "project"
    wav = write_noise(work / "audio" / "a.wav", 3.0)
    inv = pd.DataFrame(
        {"recording_id": [rid], "path": [str(wav)], "status": ["ok"], "shard": ["0000"]}
    )
    before = set(tmp_path.rglob("*"))
    try:
        detect.detect_files(inv, work / "out", threads=1, parts_dir=work / "parts", progress=False)
    except (detect.DetectError, ValueError) as exc:  # rejecting the id is fine too
        assert rid in str(exc)
    allowed = (work / "parts", work / "out")
    outside = sorted(
        p
        for p in set(tmp_path.rglob("*")) - before
        if p.is_file() and not any(p.resolve().is_relative_to(a) for a in allowed)
    )
    assert outside == [], f"files written outside parts_dir/out_dir: {outside}"


# ---------------------------------------------------------------------- workflow kill and resume


@pytest.mark.slow
def test_workflow_sigkill_during_detection_resumes(tmp_path: Path) -> None:
    """SIGKILL the whole Snakemake run (process group: Snakemake and its jobs, as when a node
    dies) while detection shards run; `snakemake --unlock` + the same command completes with
    every segment exactly once and no temporary file left in results/."""
    smk = REPO / ".venv" / "bin" / "snakemake"
    if not (REPO / "workflow" / "rules" / "detect.smk").exists() or not smk.exists():
        pytest.skip("workflow detection rules not available")
    work = tmp_path / "repo"
    copy_repo(work)
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    cmd = [
        str(smk),
        "results/detect/segments.parquet",
        "--profile",
        "profiles/default",
        "--configfile",
        "params/ci_small.yaml",
        "--cores",
        "2",
    ]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    parts = work / "results" / "detect" / "parts"
    deadline = time.monotonic() + 300
    try:
        while not list(parts.glob("*/*.segments.parquet")):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no detection part file within 300 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (work / "results" / "detect" / "segments.parquet").exists()
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts.glob("*/*.parquet")}

    subprocess.run(
        [str(smk), "--unlock", "--configfile", "params/ci_small.yaml", "--cores", "1"],
        cwd=work,
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    rerun = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]

    results = work / "results"
    inv = pd.read_parquet(results / "inventory" / "inventory.parquet")
    ok = inv[inv["status"] == "ok"] if "status" in inv.columns else inv
    quarantined = pd.read_csv(results / "detect" / "quarantine.csv")
    ok = ok[~ok["path"].isin(quarantined["path"])]
    seg = _segments(results / "detect")
    assert seg["segment_id"].is_unique
    assert len(seg) == sum(n_windows(d) for d in ok["duration_s"])
    assert set(seg["recording_id"]) == set(ok["recording_id"])
    assert tmp_files(results) == []
    # resumed, not redone: part files finished before the kill were reused as they were
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished


# --------------------------------------------------------------------------- path safety: labels


@pytest.mark.parametrize(
    "value",
    [
        "../data/labels/round_00.csv",
        "a/../../b.wav",
        "..",
        "/etc/passwd",
        "~/clips/a.wav",
        "C:\\clips\\a.wav",
        "\\\\server\\share\\a.wav",
        "a\\..\\..\\b.wav",
    ],
)
def test_safe_relpath_rejects_escaping_paths(value: str) -> None:
    ann = importlib.import_module("activepam.rounds.importing")
    with pytest.raises(ValueError, match="labels.csv:3"):
        ann.safe_relpath(value, "labels.csv:3")


def test_safe_relpath_keeps_project_paths() -> None:
    ann = importlib.import_module("activepam.rounds.importing")
    assert ann.safe_relpath("alice/clip_01.wav", "x") == "alice/clip_01.wav"
    assert ann.safe_relpath("alice\\clip_01.wav", "x") == "alice/clip_01.wav"


def test_export_writes_only_inside_out_dir(tmp_path: Path) -> None:
    """Unit ids and annotator names become file names only after sanitising: an exported
    round never creates a file outside its folder, whatever the sample table holds."""
    ann = importlib.import_module("activepam.rounds.export")
    wav = write_noise(tmp_path / "project" / "audio" / "rec.wav", 12.0)
    ids = ["../../escaped", str(tmp_path / "abs_escaped"), "..", "a/../../../escaped2"]
    sample = pd.DataFrame(
        {
            "unit_id": ids,
            "unit_type": "segment",
            "recording_id": "rec",
            "path": str(wav),
            "start_s": [0.0, 3.0, 6.0, 9.0],
            "end_s": [3.0, 6.0, 9.0, 12.0],
        }
    )
    preds = pd.DataFrame(
        columns=["segment_id", "recording_id", "start_s", "end_s", "rank", "species", "confidence"]
    )
    out = tmp_path / "project" / "results" / "rounds" / "round_00" / "annotation"
    before = set(tmp_path.rglob("*"))
    opts = ann.ExportOptions(annotators=("../../mallory", "/tmp/eve"), spectrograms=False)
    manifest = ann.export_annotation_set(sample, out, preds, round_id=0, options=opts)
    created = [p for p in set(tmp_path.rglob("*")) - before if p.is_file()]
    assert created and all(p.resolve().is_relative_to(out.resolve()) for p in created), created
    imp = importlib.import_module("activepam.rounds.importing")
    for col in ("clip_file", "table_file"):
        for value in manifest[col]:
            assert imp.safe_relpath(value, col) == value


def _label_case(tmp_path: Path, extra_col: str, value: str) -> tuple[Path, pd.DataFrame]:
    manifest = pd.DataFrame(
        {
            "unit_id": ["u1"],
            "unit_type": ["segment"],
            "recording_id": ["rec"],
            "path": ["data/raw/rec.wav"],
            "start_s": [0.0],
            "end_s": [3.0],
            "clip_start_s": [0.0],
            "clip_end_s": [7.0],
            "clip_file": ["all/u1.wav"],
            "table_file": ["all/u1.txt"],
            "batch": ["all"],
            "annotator": [""],
        }
    )
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "unit_id": ["u1"],
            "species": ["Turdus merula_Eurasian Blackbird"],
            "present": [1],
            extra_col: [value],
        }
    ).to_csv(labels, index=False)
    return labels, manifest


@pytest.mark.parametrize("value", ["../../../etc/cron.d/x", "/etc/passwd"])
def test_label_import_rejects_escaping_paths(tmp_path: Path, value: str) -> None:
    """Path cells of imported label files are refused (file:line named), nothing is written."""
    ann = importlib.import_module("activepam.rounds.importing")
    labels, manifest = _label_case(tmp_path, "clip_file", value)
    with pytest.raises(ann.LabelImportError) as err:
        ann.import_labels([labels], manifest, ["Turdus merula_Eurasian Blackbird"], round_id=0)
    assert "labels.csv:2" in str(err.value) and value in str(err.value)


def test_label_import_raven_begin_path_with_dotdot_is_refused(tmp_path: Path) -> None:
    ann = importlib.import_module("activepam.rounds.importing")
    _, manifest = _label_case(tmp_path, "notes", "")
    table = tmp_path / "u1.Table.1.selections.txt"
    header = [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Species",
        "Present",
        "Begin Path",
    ]
    row = [
        "1",
        "Spectrogram 1",
        "1",
        "4.0",
        "5.0",
        "Turdus merula_Eurasian Blackbird",
        "1",
        "../../secret/u1.wav",
    ]
    table.write_text("\t".join(header) + "\n" + "\t".join(row) + "\n")
    with pytest.raises(ann.LabelImportError) as err:
        ann.import_labels([table], manifest, ["Turdus merula_Eurasian Blackbird"], round_id=0)
    assert "Begin Path" in str(err.value) and "'..' not allowed" in str(err.value)
