"""`make run` on one's own recordings (issue #9, defect 5).

A copy of the repository gets a folder of seeded WAV/FLAC recordings with a sites.csv and a
config overlay as the README's "Your own recordings" steps say (data.raw_dir, data.sites_csv,
demo.enabled false; no label set). `make run CONFIG=overlay.yaml` - the very snakemake call of
`make run` - must do inventory, detection, indices and figures, derive a label set, export
the test set and round 00 for the experts, then stop with exit 0 and say where the annotation
sets are and which command imports the answers. The same on ../shared/realdata/jura_24h
(a subset of its recordings) when that folder exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from repo_copy import copy_repo

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REPO / ".venv" / "bin" / "snakemake").exists(), reason="needs the project's .venv"
    ),
]


def _write_recordings(raw: Path, seed: int = 0) -> None:
    """Four 9 s recordings (two devices, WAV and FLAC) with tonal calls, and sites.csv."""
    rng = np.random.default_rng(seed)
    sr = 32000
    t = np.arange(9 * sr) / sr
    raw.mkdir(parents=True)
    for i, (dev, ext) in enumerate(
        [("devA", "wav"), ("devA", "flac"), ("devB", "wav"), ("devB", "flac")]
    ):
        x = 0.02 * rng.normal(size=t.size)
        for k in range(3):
            on = 1 + 3 * k + rng.uniform(0, 0.5)
            m = (t > on) & (t < on + 0.8)
            x[m] += 0.2 * np.sin(2 * np.pi * (2500 + 700 * k) * t[m])
        sf.write(raw / f"{dev}_20250515_{4 + i:02d}0000.{ext}", x.astype(np.float32), sr)
    pd.DataFrame(
        {
            "device_id": ["devA", "devB"],
            "site": ["siteA", "siteB"],
            "country": ["FR", "FR"],
            "habitat": ["forest", "wetland"],
            "lat": [46.9, 47.2],
            "lon": [6.4, 6.0],
            "deployment_start": ["2025-01-01T00:00:00Z"] * 2,
            "deployment_end": ["", ""],
        }
    ).to_csv(raw / "sites.csv", index=False)


def _make_run(root: Path, raw: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    overlay = {
        "data": {"raw_dir": raw, "sites_csv": f"{raw}/sites.csv"},
        "demo": {"enabled": False},
        "rounds": {"test_size": 6, "n_per_round": 4, "spectrograms": False},
        **(extra or {}),
    }
    (root / "own.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "MPLBACKEND": "Agg"}
    if shutil.which("make"):
        cmd = ["make", "run", "CONFIG=own.yaml"]
    else:  # the same call as the Makefile's run target
        cmd = [
            str(root / ".venv/bin/snakemake"),
            "--cores",
            "2",
            "--profile",
            "profiles/default",
            "--configfile",
            "own.yaml",
        ]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1500)


def _check_waiting(root: Path, res: subprocess.CompletedProcess) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    for path in (
        "results/inventory/inventory.parquet",
        "results/detect/segments.parquet",
        "results/indices/indices.parquet",
        "results/figures/detections_site_hour.png",
        "results/rounds/test/annotation/manifest.csv",
        "results/rounds/round_00/annotation/manifest.csv",
        "data/rounds/round_00.settings.json",
        "data/rounds/test.settings.json",
    ):
        assert (root / path).exists(), path
    assert not (root / "results/rounds/round_00/model.json").exists()  # waits for labels
    assert not (root / "results/rounds/round_01").exists()
    assert "waiting for expert labels" in out
    assert "results/rounds/round_00/annotation/" in out
    assert "activepam labels import <returned tables> --round 0" in out
    assert "--round test" in out
    species = pd.read_csv(root / "results/rounds/label_set.csv")["species"]
    assert len(species) > 10 and species.str.contains("_").all()  # BirdNET labels


def test_make_run_on_own_recordings_exports_round_00(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    copy_repo(root, skip=("data/", "results/"))
    _write_recordings(root / "data/raw/mine")
    res = _make_run(root, "data/raw/mine")
    _check_waiting(root, res)
    assert not (root / "data/raw/mine/species.csv").exists()  # the raw folder is never written


@pytest.mark.realdata
def test_make_run_on_jura_recordings(tmp_path: Path, realdata: Path) -> None:
    src = realdata / "jura_24h"
    if not src.is_dir():
        pytest.skip(f"{src} not found")
    root = tmp_path / "repo"
    copy_repo(root, skip=("data/", "results/"))
    raw = root / "data/raw/jura"
    raw.mkdir(parents=True)
    for name in sorted(p.name for p in src.glob("S4A03895_*.wav"))[4:10]:  # 04:00-09:00
        (raw / name).symlink_to(src / name)
    pd.DataFrame(
        {
            "device_id": ["S4A03895"],
            "site": ["jura"],
            "country": ["FR"],
            "habitat": ["forest"],
            "lat": [46.55],
            "lon": [6.1],
            "deployment_start": ["2019-01-01T00:00:00Z"],
            "deployment_end": [""],
        }
    ).to_csv(raw / "sites.csv", index=False)
    _check_waiting(root, _make_run(root, "data/raw/jura"))
