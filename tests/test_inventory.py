"""Inventory: file-name parsing, deployments, quarantine, recording ids, sites.csv checks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from activepam.core.io import AUDIO_EXTENSIONS
from activepam.detection.cli import DEFAULT_EXTENSIONS, register
from activepam.detection.filenames import device_from_path, make_recording_ids, parse_filename
from activepam.detection.inventory import (
    INVENTORY_COLUMNS,
    assign_shards,
    build_inventory,
    run_inventory,
)
from activepam.detection.probe import probe_audio, wav_declared_frames
from activepam.detection.sites import SitesError, read_sites, resolve_deployments

UTC = "UTC"
SITES_HEADER = "device_id,site,country,habitat,lat,lon,deployment_start,deployment_end\n"


def cli_main(argv: list[str]) -> int:
    """``activepam inventory ...`` through the detection CLI's own ``register``."""
    parser = argparse.ArgumentParser(prog="activepam")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# --------------------------------------------------------------------------- file names

PARSE_TABLE = [
    # stem, tz, device, start (UTC), pattern
    ("2025-05-15T04_00_00.000Z", UTC, None, "2025-05-15 04:00:00", "tabmon_iso"),
    ("2025-05-15T04:00:00.000Z", UTC, None, "2025-05-15 04:00:00", "tabmon_iso"),
    ("2025-05-15T04_00_00Z", UTC, None, "2025-05-15 04:00:00", "tabmon_iso"),
    ("2025-05-15T23_59_58.250Z", UTC, None, "2025-05-15 23:59:58.250", "tabmon_iso"),
    ("S4A03895_20190522_000000", UTC, "S4A03895", "2019-05-22 00:00:00", "prefix_date_time"),
    (
        "S4A03895_20190522_060000",
        "Europe/Paris",
        "S4A03895",
        "2019-05-22 04:00:00",
        "prefix_date_time",
    ),
    ("my_rec-01_20240101_123456", UTC, "my_rec-01", "2024-01-01 12:34:56", "prefix_date_time"),
    ("20190522_050000", UTC, None, "2019-05-22 05:00:00", "audiomoth"),
    ("20190522_050000", "Europe/Paris", None, "2019-05-22 05:00:00", "audiomoth"),  # always UTC
    ("MSD-0003_20180427_2minstart00", UTC, None, None, None),
    ("soundscape", UTC, None, None, None),
    ("20191345_000000", UTC, None, None, None),  # month 13
    ("2025-05-15T04_00_00.000", UTC, None, None, None),  # no Z: zone unknown
]


@pytest.mark.parametrize(("stem", "tz", "device", "start", "pattern"), PARSE_TABLE)
def test_parse_filename(
    stem: str, tz: str, device: str | None, start: str | None, pattern: str | None
) -> None:
    info = parse_filename(stem, tz)
    assert info.device_id == device
    assert info.pattern == pattern
    if start is None:
        assert info.start_time is None
    else:
        assert info.start_time == ts(start)
        assert str(info.start_time.tz) == "UTC"


def test_parse_filename_bad_timezone() -> None:
    with pytest.raises(ValueError, match="inventory.timezone"):
        parse_filename("S4A03895_20190522_060000", "Mars/Olympus")


@pytest.mark.parametrize(
    ("rel", "device"),
    [
        (
            "proj_demo/bugg_RPiID-10000000d642707c/conf_6f40914/2025-05-15T04_00_00.000Z.mp3",
            "10000000d642707c",
        ),
        ("jura/S4A03895_20190522_000000.wav", "S4A03895"),
        ("bugg_RPiID-A1/S4A03895_20190522_000000.wav", "A1"),  # the folder wins
        ("moth/20190522_050000.WAV", None),
        ("x/soundscape.flac", None),
    ],
)
def test_device_from_path(rel: str, device: str | None) -> None:
    assert device_from_path(rel) == device


# --------------------------------------------------------------------------- sites.csv


def write_sites(path: Path, rows: list[str]) -> Path:
    path.write_text(SITES_HEADER + "".join(r + "\n" for r in rows))
    return path


MOVING = [
    "D1,A,NO,forest,60.0,10.0,2025-01-01T00:00:00Z,2025-05-01T00:00:00Z",
    "D1,B,DK,wetland,55.0,9.0,2025-05-01T00:00:00Z,",
    "D2,C,FR,farmland,46.0,2.0,2025-03-01,2025-04-01",
]


def test_read_sites_ok(tmp_path: Path) -> None:
    sites = read_sites(write_sites(tmp_path / "sites.csv", MOVING))
    assert len(sites) == 3
    assert str(sites["deployment_start"].dt.tz) == "UTC"
    assert pd.isna(sites.loc[1, "deployment_end"])
    assert sites["line"].tolist() == [2, 3, 4]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["D1,A,NO,forest,60,10,not-a-date,"], r"sites\.csv:2: deployment_start 'not-a-date'"),
        (
            ["D1,A,NO,forest,60,10,2025-01-01,", "D1,B,NO,forest,60,10,2025-13-01,"],
            r"sites\.csv:3: deployment_start '2025-13-01'",
        ),
        (
            ["D1,A,NO,forest,60,10,2025-01-01,2025-03-01", "D1,B,NO,forest,60,10,2025-02-01,"],
            r"sites\.csv:3: deployment of device 'D1' overlaps the one on line 2",
        ),
        (
            ["D1,A,NO,forest,60,10,2025-01-01,", "D1,B,NO,forest,60,10,2025-02-01,"],
            r"sites\.csv:3: .*overlaps the one on line 2 .*open end",
        ),
        (
            ["D1,A,NO,forest,60,10,2025-03-01,2025-01-01"],
            r"sites\.csv:2: deployment_end .* not after",
        ),
        (["D1,A,NO,forest,north,10,2025-01-01,"], r"sites\.csv:2: lat 'north' is not a number"),
        (["D1,A,NO,forest,95,10,2025-01-01,"], r"sites\.csv:2: lat 95.0 is outside"),
        ([",A,NO,forest,60,10,2025-01-01,"], r"sites\.csv:2: device_id is empty"),
        (["D1,A,NO,forest,60,10,,"], r"sites\.csv:2: deployment_start is empty"),
    ],
)
def test_read_sites_errors(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(SitesError, match=message):
        read_sites(write_sites(tmp_path / "sites.csv", rows))


def test_read_sites_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "sites.csv"
    path.write_text("device_id,site,lat,lon\nD1,A,1,2\n")
    with pytest.raises(
        SitesError,
        match=r"sites\.csv: missing column\(s\) country, habitat, "
        r"deployment_start, deployment_end",
    ):
        read_sites(path)
    with pytest.raises(SitesError, match="not found"):
        read_sites(tmp_path / "nope.csv")


def test_resolve_deployments_moving_device(tmp_path: Path) -> None:
    sites = read_sites(write_sites(tmp_path / "sites.csv", MOVING))
    recs = pd.DataFrame(
        {
            "device_id": ["D1", "D1", "D1", "D1", "D2", "D2", "D3", "D1", None],
            "start_time": [
                ts("2025-02-01 05:00"),
                ts("2025-05-01 00:00"),
                ts("2025-04-30 23:59"),
                ts("2024-12-31 23:00"),
                ts("2025-03-15"),
                ts("2025-04-01 00:00"),
                ts("2025-03-15"),
                pd.NaT,
                ts("2025-03-15"),
            ],
        }
    )
    out = resolve_deployments(recs, sites)
    assert [None if pd.isna(v) else v for v in out["site"]][:6] == ["A", "B", "A", None, "C", None]
    assert out["site"].iloc[6:].isna().all()  # unknown device, no time, no device
    assert out.loc[1, "country"] == "DK" and out.loc[1, "lat"] == 55.0
    assert np.isnan(out.loc[3, "lat"])
    assert out["device_id"].tolist()[:2] == ["D1", "D1"]  # input columns untouched


# --------------------------------------------------------------------------- recording ids


def test_recording_ids_stable_unique_safe() -> None:
    t = ts("2025-05-15 04:00")
    devices = ["D1", "D1", None, None, "D2", "weird dev/1"]
    times = [t, t, None, pd.NaT, t, t]
    rels = ["a/x.mp3", "b/x.mp3", "c/na me#1.wav", "d/na me#1.wav", "e/y.flac", "f/z.wav"]
    ids = make_recording_ids(devices, times, rels)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in ids)
    # the first file keeps the bare id, a later one with the same base gets a hash suffix
    # (issue 11: ids of files already there never change when another file is added)
    assert ids[0] == "D1_20250515T040000Z" and ids[1].startswith("D1_20250515T040000Z-")
    assert ids[2] == "na-me-1" and ids[3].startswith("na-me-1-")
    assert ids[4] == "D2_20250515T040000Z"
    assert ids[5] == "weird-dev-1_20250515T040000Z"
    assert make_recording_ids(devices, times, rels) == ids  # stable


def test_assign_shards() -> None:
    assert assign_shards(5, 2) == ["0000", "0000", "0001", "0001", "0002"]
    assert assign_shards(0, 64) == []
    with pytest.raises(ValueError):
        assign_shards(3, 0)


# --------------------------------------------------------------------------- probing & quarantine


def write_tone(path: Path, seconds: float = 2.0, sr: int = 16000, fmt: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(seconds * sr))).astype("float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, format=fmt) if fmt else sf.write(path, x, sr)
    return path


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_truncated_files_are_quarantined(tmp_path: Path, ext: str) -> None:
    path = cut_in_half(write_tone(tmp_path / f"cut.{ext}", seconds=4.0))
    probe = probe_audio(path, min_duration_s=0.5)
    assert probe.reason is not None and probe.reason.startswith("truncated"), probe


def test_wav_declared_frames(tmp_path: Path) -> None:
    full = write_tone(tmp_path / "full.wav", seconds=2.0)
    assert wav_declared_frames(full) == 32000
    assert wav_declared_frames(cut_in_half(write_tone(tmp_path / "h.wav", 2.0))) == 32000
    assert sf.info(tmp_path / "h.wav").frames < 32000  # libsndfile clamps silently
    assert wav_declared_frames(write_tone(tmp_path / "x.flac", 1.0)) is None


def test_probe_reasons(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 10)
    write_tone(tmp_path / "short.flac", seconds=0.2)
    write_tone(tmp_path / "ok.flac", seconds=2.0)
    assert probe_audio(tmp_path / "zero.wav").reason == "zero-length file"
    assert probe_audio(tmp_path / "text.wav").reason.startswith("unreadable: ")
    assert probe_audio(tmp_path / "short.flac", 1.0).reason.startswith("too short: 0.2 s")
    ok = probe_audio(tmp_path / "ok.flac", 1.0)
    assert ok.reason is None and ok.info.duration_s == pytest.approx(2.0)


def test_edge_cases_quarantined(realdata: Path) -> None:
    res = build_inventory([realdata / "edge_cases"], min_duration_s=1.0, threads=2, progress=False)
    reasons = {Path(p).name: r for p, r in zip(res.quarantine["path"], res.quarantine["reason"])}
    assert reasons["empty_2c.wav"].startswith("empty: header only")
    for name in ("veryshort.wav", "stereo.wav", "short_no_metadata.wav"):
        assert reasons[name].startswith("too short"), name
    assert set(res.inventory["rel_path"]) == {
        "audiomoth_gps.wav",
        "metadata.wav",
        "silence_10s.mp3",
    }
    n_audio = len(
        [
            p
            for p in (realdata / "edge_cases").iterdir()
            if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg")
        ]
    )
    assert len(res.inventory) + len(res.quarantine) == n_audio  # nothing dropped
    assert (res.quarantine["stage"] == "inventory").all()
    assert res.warnings["no_start_time"] == 3


def test_real_wav_cut_in_half(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "jura_24h" / "S4A03895_20190522_000000.wav"
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    assert probe_audio(dst).reason.startswith("truncated: header declares 220000 frames")


def test_jura_inventory_with_sites(realdata: Path, tmp_path: Path) -> None:
    sites = write_sites(
        tmp_path / "sites.csv",
        [
            "S4A03895,jura-a,FR,forest,46.5,6.1,2019-05-01T00:00:00Z,2019-05-22T12:00:00Z",
            "S4A03895,jura-b,FR,forest,46.6,6.2,2019-05-22T12:00:00Z,",
        ],
    )
    res = run_inventory(
        [realdata / "jura_24h"],
        sites,
        tmp_path / "out" / "inventory.parquet",
        tmp_path / "out" / "quarantine.csv",
        shard_size=10,
        threads=2,
        progress=False,
    )
    inv = res.inventory
    hourly = inv[inv["device_id"] == "S4A03895"].set_index("recording_id")
    assert len(hourly) == 24
    assert hourly.loc["S4A03895_20190522T110000Z", "site"] == "jura-a"
    assert hourly.loc["S4A03895_20190522T120000Z", "site"] == "jura-b"
    assert hourly["sample_rate"].eq(22000).all() and hourly["duration_s"].eq(10.0).all()
    assert inv.loc[inv["rel_path"] == "spinetail.wav", "start_time"].isna().all()
    assert res.warnings["no_deployment"] == 1  # spinetail: no device, no time
    assert inv["shard"].tolist() == [f"{i // 10:04d}" for i in range(25)]
    table = pq.read_table(tmp_path / "out" / "inventory.parquet")
    assert tuple(table.schema.names) == INVENTORY_COLUMNS
    assert str(table.schema.field("start_time").type) == "timestamp[us, tz=UTC]"
    assert pd.read_csv(tmp_path / "out" / "quarantine.csv").columns.tolist() == [
        "path",
        "stage",
        "reason",
    ]


def test_tabmon_layout_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    dev = raw / "proj_demo" / "bugg_RPiID-10000000abc" / "conf_1"
    write_tone(dev / "2025-05-15T04_00_00.000Z.flac")
    write_tone(dev / "2025-05-15T05_00_00.000Z.flac")
    write_tone(raw / "other" / "notes_without_time.WAV")
    (raw / "other" / "broken.mp3").write_bytes(b"\x00" * 100)
    (raw / "readme.txt").write_text("not scanned")
    sites = write_sites(
        tmp_path / "sites.csv", ["10000000abc,S01,NO,forest,60.1,10.2,2025-01-01T00:00:00Z,"]
    )
    rc = cli_main(
        [
            "inventory",
            str(raw),
            "--sites",
            str(sites),
            "--out",
            str(tmp_path / "o"),
            "--shard-size",
            "2",
            "--threads",
            "2",
        ]
    )
    assert rc == 0
    assert "3 recordings" in capsys.readouterr().out
    inv = pd.read_parquet(tmp_path / "o" / "inventory.parquet")
    assert inv["recording_id"].tolist() == [
        "notes_without_time",
        "10000000abc_20250515T040000Z",
        "10000000abc_20250515T050000Z",
    ]
    assert inv["site"].tolist()[1:] == ["S01", "S01"]
    assert inv["shard"].tolist() == ["0000", "0000", "0001"]
    assert inv["status"].eq("ok").all() and inv["format"].tolist() == ["wav", "flac", "flac"]
    assert inv["path"].str.startswith(str(raw)).all()
    q = pd.read_csv(tmp_path / "o" / "quarantine.csv")
    assert q["path"].tolist() == [str(raw / "other" / "broken.mp3")]


def test_cli_reports_bad_sites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tone(tmp_path / "raw" / "a.flac")
    bad = write_sites(tmp_path / "sites.csv", ["D1,A,NO,forest,60,10,yesterday,"])
    assert (
        cli_main(
            ["inventory", str(tmp_path / "raw"), "--sites", str(bad), "--out", str(tmp_path / "o")]
        )
        == 1
    )
    assert "sites.csv:2: deployment_start 'yesterday'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_default_extensions_are_the_scanned_ones() -> None:
    """The CLI's default --extensions (kept import-light) equal what the stage scans."""
    assert DEFAULT_EXTENSIONS == tuple(AUDIO_EXTENSIONS)
