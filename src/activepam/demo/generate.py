"""Seeded demo soundscapes: synthetic bird communities along a European latitude gradient.

A fresh machine has no recordings, so ``make run`` first writes a demo dataset into
``data.raw_dir`` from the ``demo:`` section of ``params.yaml``:

* **Sites** along a latitude gradient (Norway to Spain by default), countries from
  ``demo.countries`` assigned north to south, habitats cycled over the sites. Every site has a
  Bugg recorder (10 hex character device id); two devices swap sites half way through the survey,
  so ``sites.csv`` holds two deployment rows for each of them and the inventory must resolve the
  site from device id + time.
* **Recordings** on every date of ``demo.dates``, ``recordings_per_day`` per site spread over the
  24 hours (the hours are staggered between dates so that all hours get covered), written as MP3
  or FLAC (``mp3_fraction``) in the TABMON layout
  ``proj_<project>/bugg_RPiID-<device>/conf_<config>/<YYYY-MM-DDTHH_MM_SS.000Z>.<ext>``.
* **Species**: real European BirdNET V2.4 labels (``Scientific name_Common name``) whose calls are
  synthetic but acoustically distinct parametric templates (FM up/down sweeps, trills, harmonic
  stacks, warbles, pulse trains, chirp series, two-note whistles), each species its own band and
  timing, with small per-call jitter. The community has a long-tailed (Zipf) abundance, species
  turnover along the gradient (``demo.turnover``: 0 = the same community everywhere, 1 = each
  species confined to a narrow latitude band), diel activity from the solar elevation (dawn
  chorus, diurnal, crepuscular and nocturnal species), seasonal activity (migrants are absent in
  March and late September) and habitat preferences. Calls come in bouts from birds at random
  distances, so some are loud and some faint.
* **Background noise** that differs by habitat and weather: wind (low-pass noise with gusts),
  rain (broadband impulsive drops), insects (narrow-band stridulation on summer nights) and a
  little pink noise everywhere.

Ground truth written beside the audio (paths relative to the output folder):

* ``events.parquet``: every call (rel_path, species, onset_s, offset_s, low_hz, high_hz, ...);
* ``ground_truth.parquet``: one row per (rel_path, 3 s segment on the 0, 3, 6, ... grid, species
  present); a species is present in a segment when at least 0.5 s of one of its calls, or at
  least half of a call shorter than 1 s, falls inside (:func:`segment_truth`);
* ``recordings.csv``, ``sites.csv``, ``species.csv`` and the marker ``.activepam-demo.json``.

Every recording draws from its own random stream, keyed by (seed, site, start time), so the same
seed gives byte-identical files and changing the number of recordings leaves the others alone.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import soundfile as sf
import soxr
import yaml
from astral import Observer
from astral.sun import elevation as solar_elevation
from scipy.signal import butter, lfilter, sosfilt
from tqdm import tqdm

from activepam.core.config import SCHEMA_PATH, ConfigError, load_params
from activepam.core.io import atomic_path, write_csv, write_json, write_parquet

logger = logging.getLogger(__name__)

STAGE = "generate"
#: marker file proving that a folder was written by this generator (holds the parameters)
MARKER = ".activepam-demo.json"
#: bump when the generator's output changes for the same parameters
GENERATOR_VERSION = 1
SEGMENT_S = 3.0
#: a trailing segment shorter than this is not analysed (BirdNET drops chunks < 1.5 s)
MIN_SEGMENT_S = 1.5
#: a species is present in a segment with this much of one call inside ...
MIN_OVERLAP_S = 0.5
#: ... or this fraction of a call shorter than MIN_OVERLAP_S / MIN_CALL_FRACTION
MIN_CALL_FRACTION = 0.5

#: parameters of the ``demo:`` section, with the values used when a key is missing
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "seed": 42,
    "project": "demo",
    "n_sites": 8,
    "countries": ["NO", "DK", "FR", "ES"],
    "habitats": ["forest", "wetland", "farmland"],
    "dates": ["2025-03-20", "2025-05-15", "2025-07-10", "2025-09-25"],
    "recordings_per_day": 8,
    "duration_s": 60,
    "sample_rate": 44100,
    "n_species": 24,
    "turnover": 0.6,
    "mp3_fraction": 0.5,
    "calls_per_minute": 60.0,
    "abundance_exponent": 1.0,
}

#: sample rates an MP3 (MPEG-1/2/2.5 layer III) file can have
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

# --------------------------------------------------------------------------- catalogues

CALL_TYPES = ("upsweep", "downsweep", "trill", "harmonic", "warble", "clicks", "chirp", "whistle")
DIEL_PATTERNS = ("dawn", "diurnal", "crepuscular", "nocturnal")
SEASON_PATTERNS = ("resident", "migrant")


@dataclass(frozen=True)
class SpeciesSpec:
    """Hand-written traits of a catalogue species (loosely inspired by the real bird)."""

    label: str  # BirdNET V2.4 label "Scientific name_Common name"
    call_type: str
    diel: str
    season: str
    habitat: str  # preferred habitat or "any"
    range: str  # "north", "south" or "any": where along the gradient its optimum lies


def _spec(label: str, call: str, diel: str, season: str, habitat: str,
          range_: str = "any") -> SpeciesSpec:
    return SpeciesSpec(label, call, diel, season, habitat, range_)


#: the species pool; ``demo.n_species`` takes the first n (the first 24 cover every call type,
#: nocturnal/diurnal/crepuscular species, migrants, wetland/farmland/forest and north/south)
SPECIES_CATALOGUE: tuple[SpeciesSpec, ...] = (
    _spec("Turdus merula_Eurasian Blackbird", "warble", "dawn", "resident", "any"),
    _spec("Erithacus rubecula_European Robin", "downsweep", "dawn", "resident", "forest"),
    _spec("Fringilla coelebs_Common Chaffinch", "trill", "dawn", "resident", "forest"),
    _spec("Parus major_Great Tit", "whistle", "dawn", "resident", "forest"),
    _spec("Phylloscopus collybita_Common Chiffchaff", "chirp", "dawn", "migrant", "forest"),
    _spec("Columba palumbus_Common Wood-Pigeon", "harmonic", "diurnal", "resident", "farmland"),
    _spec("Troglodytes troglodytes_Eurasian Wren", "trill", "dawn", "resident", "forest"),
    _spec("Strix aluco_Tawny Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Sylvia atricapilla_Eurasian Blackcap", "warble", "dawn", "migrant", "forest"),
    _spec("Alauda arvensis_Eurasian Skylark", "upsweep", "diurnal", "resident", "farmland"),
    _spec("Acrocephalus scirpaceus_Eurasian Reed Warbler", "chirp", "dawn", "migrant", "wetland"),
    _spec("Cuculus canorus_Common Cuckoo", "whistle", "diurnal", "migrant", "any"),
    _spec("Dendrocopos major_Great Spotted Woodpecker", "clicks", "diurnal", "resident", "forest"),
    _spec("Emberiza schoeniclus_Reed Bunting", "downsweep", "dawn", "resident", "wetland"),
    _spec("Caprimulgus europaeus_Eurasian Nightjar", "clicks", "nocturnal", "migrant", "farmland"),
    _spec("Turdus iliacus_Redwing", "downsweep", "dawn", "migrant", "forest", "north"),
    _spec("Luscinia megarhynchos_Common Nightingale", "warble", "nocturnal", "migrant", "forest",
          "south"),
    _spec("Vanellus vanellus_Northern Lapwing", "upsweep", "crepuscular", "resident", "farmland"),
    _spec("Rallus aquaticus_Water Rail", "chirp", "crepuscular", "resident", "wetland"),
    _spec("Upupa epops_Eurasian Hoopoe", "harmonic", "diurnal", "migrant", "farmland", "south"),
    _spec("Fringilla montifringilla_Brambling", "upsweep", "dawn", "migrant", "forest", "north"),
    _spec("Cisticola juncidis_Zitting Cisticola", "clicks", "diurnal", "resident", "farmland",
          "south"),
    _spec("Regulus regulus_Goldcrest", "trill", "dawn", "resident", "forest", "north"),
    _spec("Athene noctua_Little Owl", "whistle", "nocturnal", "resident", "farmland", "south"),
    # 25-
    _spec("Cyanistes caeruleus_Eurasian Blue Tit", "trill", "dawn", "resident", "forest"),
    _spec("Phylloscopus trochilus_Willow Warbler", "downsweep", "dawn", "migrant", "forest",
          "north"),
    _spec("Emberiza citrinella_Yellowhammer", "trill", "diurnal", "resident", "farmland"),
    _spec("Hirundo rustica_Barn Swallow", "warble", "diurnal", "migrant", "farmland"),
    _spec("Corvus corone_Carrion Crow", "harmonic", "diurnal", "resident", "any"),
    _spec("Picus viridis_Eurasian Green Woodpecker", "trill", "diurnal", "resident", "forest"),
    _spec("Bubo bubo_Eurasian Eagle-Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Asio otus_Long-eared Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Otus scops_Eurasian Scops-Owl", "whistle", "nocturnal", "migrant", "forest", "south"),
    _spec("Grus grus_Common Crane", "harmonic", "crepuscular", "migrant", "wetland", "north"),
    _spec("Gallinula chloropus_Eurasian Moorhen", "chirp", "crepuscular", "resident", "wetland"),
    _spec("Fulica atra_Eurasian Coot", "chirp", "diurnal", "resident", "wetland"),
    _spec("Anas platyrhynchos_Mallard", "harmonic", "diurnal", "resident", "wetland"),
    _spec("Numenius arquata_Eurasian Curlew", "upsweep", "crepuscular", "migrant", "wetland"),
    _spec("Sitta europaea_Eurasian Nuthatch", "upsweep", "diurnal", "resident", "forest"),
    _spec("Certhia familiaris_Eurasian Treecreeper", "downsweep", "dawn", "resident", "forest"),
    _spec("Turdus philomelos_Song Thrush", "whistle", "dawn", "resident", "forest"),
    _spec("Turdus viscivorus_Mistle Thrush", "warble", "dawn", "resident", "forest"),
    _spec("Prunella modularis_Dunnock", "warble", "dawn", "resident", "any"),
    _spec("Pyrrhula pyrrhula_Eurasian Bullfinch", "whistle", "diurnal", "resident", "forest"),
    _spec("Carduelis carduelis_European Goldfinch", "warble", "diurnal", "resident", "farmland"),
    _spec("Chloris chloris_European Greenfinch", "trill", "diurnal", "resident", "farmland"),
    _spec("Passer domesticus_House Sparrow", "chirp", "diurnal", "resident", "farmland"),
    _spec("Sturnus vulgaris_European Starling", "clicks", "diurnal", "resident", "farmland"),
    _spec("Oriolus oriolus_Eurasian Golden Oriole", "whistle", "dawn", "migrant", "forest",
          "south"),
    _spec("Merops apiaster_European Bee-eater", "chirp", "diurnal", "migrant", "farmland",
          "south"),
    _spec("Serinus serinus_European Serin", "trill", "diurnal", "resident", "farmland", "south"),
    _spec("Curruca melanocephala_Sardinian Warbler", "clicks", "dawn", "resident", "farmland",
          "south"),
    _spec("Cettia cetti_Cetti's Warbler", "chirp", "dawn", "resident", "wetland", "south"),
    _spec("Coturnix coturnix_Common Quail", "whistle", "crepuscular", "migrant", "farmland"),
    _spec("Crex crex_Corn Crake", "clicks", "nocturnal", "migrant", "farmland"),
    _spec("Botaurus stellaris_Great Bittern", "harmonic", "nocturnal", "resident", "wetland"),
    _spec("Tetrao urogallus_Western Capercaillie", "clicks", "dawn", "resident", "forest",
          "north"),
    _spec("Lagopus lagopus_Willow Ptarmigan", "downsweep", "crepuscular", "resident", "any",
          "north"),
    _spec("Strix uralensis_Ural Owl", "harmonic", "nocturnal", "resident", "forest", "north"),
    _spec("Glaucidium passerinum_Eurasian Pygmy-Owl", "whistle", "crepuscular", "resident",
          "forest", "north"),
    _spec("Aegolius funereus_Boreal Owl", "trill", "nocturnal", "resident", "forest", "north"),
    _spec("Acrocephalus schoenobaenus_Sedge Warbler", "trill", "dawn", "migrant", "wetland"),
    _spec("Phoenicurus phoenicurus_Common Redstart", "downsweep", "dawn", "migrant", "forest"),
    _spec("Ficedula hypoleuca_European Pied Flycatcher", "upsweep", "dawn", "migrant", "forest",
          "north"),
)

#: country code -> (northern latitude, southern latitude, longitude) of a box sites are put in
COUNTRY_BOXES: dict[str, tuple[float, float, float]] = {
    "NO": (63.0, 58.6, 10.5), "SE": (63.5, 55.8, 15.0), "FI": (64.0, 60.5, 25.5),
    "DK": (57.3, 55.0, 9.4), "GB": (57.5, 50.6, -2.2), "IE": (55.0, 51.8, -8.0),
    "NL": (53.3, 51.5, 5.6), "BE": (51.3, 49.8, 4.6), "DE": (54.4, 47.9, 10.2),
    "PL": (54.3, 49.6, 19.3), "CZ": (50.9, 48.8, 15.4), "AT": (48.6, 46.7, 14.2),
    "CH": (47.6, 46.1, 8.1), "FR": (50.3, 43.3, 2.4), "IT": (46.4, 38.2, 12.5),
    "PT": (41.8, 37.2, -8.2), "ES": (43.2, 37.0, -4.0), "GR": (41.3, 36.9, 22.6),
}


@dataclass(frozen=True)
class NoiseProfile:
    """Background-noise levels (dBFS RMS) of a habitat."""

    pink_db: float  # broadband floor, everywhere
    wind_db: float  # wind at a calm-to-breezy day (scaled by the day's wind factor)
    wind_cutoff_hz: float  # low-pass cut-off of the wind (canopy rustle is higher)
    insects_db: float  # stridulation on a warm summer night
    rain_prob: float  # chance that a site-day is rainy


HABITAT_NOISE: dict[str, NoiseProfile] = {
    "forest": NoiseProfile(-56.0, -44.0, 900.0, -42.0, 0.25),
    "wetland": NoiseProfile(-56.0, -46.0, 300.0, -34.0, 0.25),
    "farmland": NoiseProfile(-56.0, -36.0, 250.0, -44.0, 0.25),
    "grassland": NoiseProfile(-56.0, -38.0, 300.0, -38.0, 0.25),
    "urban": NoiseProfile(-48.0, -44.0, 400.0, -50.0, 0.25),
}
DEFAULT_NOISE = NoiseProfile(-56.0, -42.0, 400.0, -42.0, 0.25)

# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Site:
    """A recorder site on the latitude gradient (index 0 = northernmost)."""

    index: int
    name: str
    country: str
    habitat: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Deployment:
    """A device at a site during ``[start, end)`` (``end`` None = still deployed)."""

    device_id: str
    site: Site
    config_id: str
    start: dt.datetime
    end: dt.datetime | None


@dataclass(frozen=True)
class Recording:
    """One file to synthesise."""

    rel_path: str
    site: Site
    device_id: str
    start: dt.datetime
    date_index: int
    duration_s: float
    fmt: str  # "mp3" or "flac"


@dataclass(frozen=True)
class Species:
    """A species of the demo community with its ecology and call template."""

    index: int  # position in the selected community (column of the activity matrix)
    spec: SpeciesSpec
    abundance_rank: int  # 1 = most abundant
    weight: float  # share of calls (Zipf), sums to 1 over the community
    lat_optimum: float
    source_db: float  # peak level (dBFS) of a call at 5 m
    bout_length: float  # mean calls per bout
    call_interval_s: float  # mean onset-to-onset time within a bout
    shape: dict[str, float] = field(default_factory=dict)  # call-template parameters

    @property
    def label(self) -> str:
        return self.spec.label


# --------------------------------------------------------------------------- parameters


def demo_params(params: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The ``demo:`` section completed with :data:`DEFAULTS`, overridden and validated.

    Raises :class:`activepam.core.config.ConfigError` naming the bad ``demo.<key>``.
    """
    merged = copy.deepcopy(DEFAULTS)
    merged.update(copy.deepcopy(dict(params or {})))
    merged.update({k: v for k, v in overrides.items() if v is not None})
    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text())["properties"]["demo"]
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(merged),
                    key=lambda e: list(e.absolute_path))
    problems = [f"demo.{'.'.join(str(p) for p in e.absolute_path) or '<section>'}: {e.message}"
                for e in errors]
    unknown = [c for c in merged["countries"] if c not in COUNTRY_BOXES]
    if unknown:
        problems.append(f"demo.countries: unknown country code(s) {unknown}; "
                        f"known: {sorted(COUNTRY_BOXES)}")
    if merged["n_species"] > len(SPECIES_CATALOGUE):
        problems.append(f"demo.n_species: {merged['n_species']} is more than the "
                        f"{len(SPECIES_CATALOGUE)} species of the catalogue")
    if merged["mp3_fraction"] > 0 and merged["sample_rate"] not in MP3_RATES:
        problems.append(f"demo.sample_rate: MP3 cannot store {merged['sample_rate']} Hz "
                        f"(one of {list(MP3_RATES)}, or set demo.mp3_fraction: 0)")
    for d in merged["dates"]:
        try:
            dt.date.fromisoformat(str(d))
        except ValueError:
            problems.append(f"demo.dates: {d!r} is not a YYYY-MM-DD date")
    if len(set(map(str, merged["dates"]))) != len(merged["dates"]):
        problems.append("demo.dates: dates repeat")
    if problems:
        raise ConfigError("invalid demo parameters\n  " + "\n  ".join(problems))
    merged["dates"] = sorted(str(d) for d in merged["dates"])
    return merged


def _hash_ints(*parts: object, n: int = 2) -> tuple[int, ...]:
    """Stable 32-bit integers from a hash of ``parts`` (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return tuple(int.from_bytes(digest[4 * i:4 * i + 4], "little") for i in range(n))


def _hex_id(*parts: object, n: int = 10) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


def child_rng(seed: int, *key: object) -> np.random.Generator:
    """A random stream keyed by ``(seed, *key)``: the same key always gives the same stream."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=_hash_ints(*key)))


# --------------------------------------------------------------------------- layout


def build_sites(p: Mapping[str, Any], seed: int) -> list[Site]:
    """Sites north to south: contiguous groups per country, habitats cycled over the sites."""
    rng = child_rng(seed, "sites")
    groups = np.array_split(np.arange(p["n_sites"]), len(p["countries"]))
    sites: list[tuple[float, float, str]] = []
    for country, idx in zip(p["countries"], groups):
        north, south, lon = COUNTRY_BOXES[country]
        lats = np.linspace(north, south, len(idx) + 2)[1:-1]
        for lat in lats:
            sites.append((float(lat), float(lon + rng.uniform(-0.8, 0.8)), country))
    sites.sort(key=lambda s: -s[0])
    out = []
    per_country: dict[str, int] = {}
    for i, (lat, lon, country) in enumerate(sites):
        habitat = p["habitats"][i % len(p["habitats"])]
        per_country[country] = per_country.get(country, 0) + 1
        name = f"{country}-{habitat}-{per_country[country]}"
        out.append(Site(i, name, country, habitat, round(lat, 4), round(lon, 4)))
    return out


def _iso_name(t: dt.datetime) -> str:
    """TABMON file stem: ``2025-05-15T04_00_00.000Z``."""
    return t.strftime("%Y-%m-%dT%H_%M_%S") + f".{t.microsecond // 1000:03d}Z"


def _iso_utc(t: dt.datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(p: Mapping[str, Any]) -> list[tuple[int, dt.datetime]]:
    """(date index, UTC start) of every recording slot, the same at every site.

    ``recordings_per_day`` slots are spread evenly over the day; date ``d`` is shifted by ``d``
    hours (modulo the slot spacing), so that over several dates every hour of the day is covered.
    """
    step_min = 1440.0 / p["recordings_per_day"]
    out = []
    for d, day in enumerate(p["dates"]):
        midnight = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        stagger = (d * 60.0) % step_min if step_min >= 60 else 0.0
        for slot in range(p["recordings_per_day"]):
            minute = math.floor(slot * step_min + stagger)
            out.append((d, midnight + dt.timedelta(minutes=minute)))
    return out


def build_deployments(sites: Sequence[Site], times: Sequence[dt.datetime], seed: int,
                      ) -> list[Deployment]:
    """One device per site; the devices of sites 0 and 1 swap sites half way through.

    The swap happens half way between two recording slots, so no recording is ambiguous.
    Deployments start a day before the first recording; the last ones are open-ended.
    """
    times = sorted(set(times))
    start = dt.datetime.combine(times[0].date(), dt.time(), dt.timezone.utc) - dt.timedelta(days=1)
    devices = [_hex_id(seed, "device", s.index) for s in sites]

    def conf(device: str, site: Site) -> str:
        return _hex_id(seed, "conf", device, site.name, n=8)

    if len(sites) < 2 or len(times) < 2:
        logger.warning("demo: no device move (needs >= 2 sites and >= 2 recording times)")
        return [Deployment(d, s, conf(d, s), start, None) for d, s in zip(devices, sites)]
    half = len(times) // 2
    swap = times[half - 1] + (times[half] - times[half - 1]) / 2
    swap = swap.replace(second=0, microsecond=0)
    out = []
    for device, site in zip(devices, sites):
        if site.index > 1:
            out.append(Deployment(device, site, conf(device, site), start, None))
            continue
        other = sites[1 - site.index]
        out.append(Deployment(device, site, conf(device, site), start, swap))
        out.append(Deployment(device, other, conf(device, other), swap, None))
    return out


def _deployment_at(deployments: Sequence[Deployment], site: Site, t: dt.datetime) -> Deployment:
    for d in deployments:
        if d.site.index == site.index and d.start <= t and (d.end is None or t < d.end):
            return d
    raise RuntimeError(f"no deployment at site {site.name} at {t}")  # pragma: no cover


def build_recordings(p: Mapping[str, Any], sites: Sequence[Site],
                     deployments: Sequence[Deployment], seed: int) -> list[Recording]:
    """Every (site, slot) recording with its device, TABMON path and file format.

    Exactly ``round(mp3_fraction * n)`` recordings are MP3: those with the smallest hash value
    of (seed, site, time), so each recording's format is stable as the dataset grows.
    """
    slots = schedule(p)
    rows = []
    for site in sites:
        for d, t in slots:
            dep = _deployment_at(deployments, site, t)
            key = _hash_ints(seed, "format", site.name, t.isoformat(), n=1)[0]
            rows.append((site, d, t, dep, key))
    n_mp3 = int(round(p["mp3_fraction"] * len(rows)))
    mp3_keys = set(sorted((r[4], i) for i, r in enumerate(rows))[:n_mp3])
    out = []
    for i, (site, d, t, dep, key) in enumerate(rows):
        fmt = "mp3" if (key, i) in mp3_keys else "flac"
        rel = (f"proj_{p['project']}/bugg_RPiID-{dep.device_id}/conf_{dep.config_id}/"
               f"{_iso_name(t)}.{fmt}")
        out.append(Recording(rel, site, dep.device_id, t, d, float(p["duration_s"]), fmt))
    return out


# --------------------------------------------------------------------------- community

#: frequency range (Hz) of the template's position parameter, per call type
_TYPE_BANDS: dict[str, tuple[float, float]] = {
    "upsweep": (1100.0, 4500.0), "downsweep": (2500.0, 8000.0), "trill": (2500.0, 8000.0),
    "harmonic": (250.0, 1300.0), "warble": (1800.0, 5500.0), "clicks": (700.0, 4500.0),
    "chirp": (4500.0, 9500.0), "whistle": (1000.0, 4500.0),
}


def _draw_shape(call_type: str, position: float, rng: np.random.Generator) -> dict[str, float]:
    """Template parameters of one species; ``position`` in (0, 1) places it in its type's band."""
    lo, hi = _TYPE_BANDS[call_type]
    f = lo * (hi / lo) ** position
    u = rng.uniform
    if call_type in ("upsweep", "downsweep"):
        ratio = u(1.4, 2.4) if call_type == "upsweep" else u(0.4, 0.7)
        return {"f_start": f, "f_end": f * ratio, "dur": u(0.15, 0.6), "curve": u(0.6, 1.6)}
    if call_type == "trill":
        return {"fc": f, "n_notes": float(rng.integers(6, 19)), "note": u(0.02, 0.06),
                "gap": u(0.01, 0.05), "bw": u(0.1, 0.35), "drift": u(-0.25, 0.1)}
    if call_type == "harmonic":
        return {"f0": f, "n_harm": float(rng.integers(3, 8)), "tilt": u(0.5, 1.5),
                "syll": u(0.2, 0.7), "n_syll": float(rng.integers(1, 4)), "gap": u(0.1, 0.35),
                "arch": u(-0.08, 0.1)}
    if call_type == "warble":
        return {"fc": f, "depth": u(0.08, 0.25), "rate": u(6.0, 22.0), "dur": u(0.8, 2.2)}
    if call_type == "clicks":
        return {"fc": f, "rate": u(8.0, 45.0), "pulse": u(0.0015, 0.006), "dur": u(0.8, 2.5)}
    if call_type == "chirp":
        return {"f_high": f, "ratio": u(0.35, 0.6), "chirp": u(0.03, 0.08),
                "n_chirps": float(rng.integers(2, 6)), "gap": u(0.06, 0.18)}
    if call_type == "whistle":
        ratio = u(0.7, 0.85) if rng.random() < 0.5 else u(1.15, 1.35)
        return {"f1": f, "f2": f * ratio, "note": u(0.2, 0.55), "gap": u(0.05, 0.2),
                "vib_depth": u(0.005, 0.02), "vib_rate": u(4.0, 8.0)}
    raise ValueError(f"unknown call type {call_type!r}")


def gradient_span(sites: Sequence[Site]) -> tuple[float, float]:
    """(south, north) latitude of the gradient, with a small margin around the sites."""
    lats = [s.lat for s in sites]
    south, north = min(lats), max(lats)
    margin = max(0.5, 0.05 * (north - south))
    return south - margin, north + margin


def build_species(p: Mapping[str, Any], sites: Sequence[Site], seed: int) -> list[Species]:
    """The first ``n_species`` catalogue species with abundance, latitude optimum and template.

    Abundance ranks follow the catalogue order with a little seeded shuffling; weights are Zipf
    (``abundance_exponent``). Latitude optima are stratified over the gradient (northern and
    southern species in the outer thirds). Species of one call type get distinct bands.
    """
    specs = SPECIES_CATALOGUE[: p["n_species"]]
    n = len(specs)
    rng = child_rng(seed, "community")
    order = np.argsort(np.arange(n) + rng.normal(0.0, 2.0, n), kind="stable")
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(1, n + 1)
    weights = 1.0 / ranks.astype(float) ** p["abundance_exponent"]
    weights /= weights.sum()
    south, north = gradient_span(sites)
    strata = rng.permutation(n)
    by_type: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        by_type.setdefault(s.call_type, []).append(i)
    out = []
    for i, s in enumerate(specs):
        srng = child_rng(seed, "species", s.label)
        if s.range == "north":
            q = srng.uniform(0.7, 1.0)
        elif s.range == "south":
            q = srng.uniform(0.0, 0.3)
        else:
            q = (strata[i] + srng.uniform(0.1, 0.9)) / n
        members = by_type[s.call_type]
        position = (members.index(i) + srng.uniform(0.3, 0.7)) / len(members)
        out.append(Species(
            index=i, spec=s, abundance_rank=int(ranks[i]), weight=float(weights[i]),
            lat_optimum=round(float(south + q * (north - south)), 3),
            source_db=float(srng.uniform(-12.0, -3.0)),
            bout_length=float(srng.uniform(1.0, 6.0)),
            call_interval_s=float(srng.uniform(1.5, 5.0)),
            shape={k: round(float(v), 5) for k, v in
                   _draw_shape(s.call_type, position, srng).items()},
        ))
    return out


def latitude_suitability(species: Sequence[Species], lat: float, turnover: float,
                         span: tuple[float, float]) -> np.ndarray:
    """Relative occurrence of each species at ``lat``: ``(1 - t) + t * gauss(lat - optimum)``.

    The Gaussian is 12 % of the gradient wide, so ``turnover = 1`` confines each species to a
    narrow latitude band and ``turnover = 0`` gives the same community everywhere.
    """
    sigma = 0.12 * (span[1] - span[0])
    opt = np.array([s.lat_optimum for s in species])
    return (1.0 - turnover) + turnover * np.exp(-0.5 * ((lat - opt) / sigma) ** 2)


def _bump(x: float, mu: float, sd: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sd) ** 2)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def diel_activity(pattern: str, sun_elevation: float, morning: bool) -> float:
    """Singing activity (about 0..1) from the solar elevation in degrees."""
    e = sun_elevation
    if pattern == "dawn":  # chorus peak just after sunrise, some day song, a short dusk peak
        peak = _bump(e, 4.0, 7.0) if morning else 0.35 * _bump(e, 0.0, 5.0)
        return 0.02 + 0.3 * _sigmoid(e / 3.0) + 0.8 * peak
    if pattern == "diurnal":
        return 0.03 + 0.9 * _sigmoid((e - 2.0) / 3.0)
    if pattern == "crepuscular":
        return 0.03 + 0.9 * _bump(e, -3.0, 5.0)
    if pattern == "nocturnal":
        return 0.03 + 0.9 * _sigmoid((-e - 5.0) / 2.5)
    raise ValueError(f"unknown diel pattern {pattern!r}")


def season_activity(pattern: str, day_of_year: int) -> float:
    """Seasonal activity: residents sing most in spring; migrants are absent outside Apr-Sep."""
    song = _bump(day_of_year, 135.0, 55.0)
    if pattern == "resident":
        return 0.35 + 0.65 * song
    if pattern == "migrant":
        present = _sigmoid((day_of_year - 105.0) / 4.0) * _sigmoid((255.0 - day_of_year) / 4.0)
        return present * (0.3 + 0.7 * song)
    raise ValueError(f"unknown season pattern {pattern!r}")


def solar_state(site: Site, t: dt.datetime) -> tuple[float, bool]:
    """(solar elevation in degrees, before local solar noon) at a site and time."""
    elev = float(solar_elevation(Observer(site.lat, site.lon), t))
    local_h = (t.hour + t.minute / 60.0 + site.lon / 15.0) % 24.0
    return elev, local_h < 12.0


def expected_calls(species: Sequence[Species], p: Mapping[str, Any], site: Site,
                   t: dt.datetime, span: tuple[float, float]) -> np.ndarray:
    """Expected number of calls of each species in a recording at ``site`` starting at ``t``.

    ``calls_per_minute`` is shared among the species by their Zipf weight times their latitude
    suitability (renormalised per site), then scaled by habitat preference (0.2 off the
    preferred habitat), diel and seasonal activity (each at most about 1).
    """
    mid = t + dt.timedelta(seconds=p["duration_s"] / 2)
    elev, morning = solar_state(site, mid)
    doy = mid.timetuple().tm_yday
    weight = np.array([s.weight for s in species])
    local = weight * latitude_suitability(species, site.lat, p["turnover"], span)
    local /= local.sum()  # the site's community: same total, composition shifts with latitude
    rate = np.empty(len(species))
    for i, s in enumerate(species):
        habitat = 1.0 if s.spec.habitat in ("any", site.habitat) else 0.2
        rate[i] = (local[i] * habitat * diel_activity(s.spec.diel, elev, morning)
                   * season_activity(s.spec.season, doy))
    return rate * p["calls_per_minute"] * p["duration_s"] / 60.0


# --------------------------------------------------------------------------- call synthesis


def _fade(n: int, k: int) -> np.ndarray:
    """Envelope of ``n`` samples with raised-cosine ramps of ``k`` samples at both ends."""
    env = np.ones(n, dtype=np.float64)
    k = min(k, n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        env[:k] = ramp
        env[n - k:] = ramp[::-1]
    return env


def _tone(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Sine following an instantaneous-frequency track (Hz per sample)."""
    return np.sin(phase0 + 2.0 * np.pi * np.cumsum(freq) / sr)


def _sweep(f0: float, f1: float, dur: float, sr: int, curve: float = 1.0) -> np.ndarray:
    n = max(2, int(dur * sr))
    u = np.linspace(0.0, 1.0, n) ** curve
    return _tone(f0 * (f1 / f0) ** u, sr)


def synth_call(call_type: str, shape: Mapping[str, float], rng: np.random.Generator, sr: int,
               jitter: bool = True) -> tuple[np.ndarray, float, float]:
    """One call of a species template: (samples peak-normalised to 1, low_hz, high_hz).

    With ``jitter`` each call varies a little: frequencies by about 3 %, durations by about 7 %
    and note counts by one; without it the call is the template's nominal one.
    """
    fs = math.exp(rng.normal(0.0, 0.03)) if jitter else 1.0  # frequency jitter
    ts = math.exp(rng.normal(0.0, 0.07)) if jitter else 1.0  # duration jitter
    dn = (lambda: int(rng.integers(-1, 2))) if jitter else (lambda: 0)  # note-count jitter
    nyq = 0.45 * sr
    s = {k: v for k, v in shape.items()}
    if call_type in ("upsweep", "downsweep"):
        f0, f1 = min(s["f_start"] * fs, nyq), min(s["f_end"] * fs, nyq)
        dur = s["dur"] * ts
        x = _sweep(f0, f1, dur, sr, s["curve"]) * _fade(max(2, int(dur * sr)), int(0.1 * dur * sr))
        low, high = min(f0, f1), max(f0, f1)
    elif call_type == "trill":
        n_notes = max(3, int(s["n_notes"]) + dn())
        note, period = s["note"] * ts, (s["note"] + s["gap"]) * ts
        total = n_notes * period - s["gap"] * ts
        t = np.arange(int(total * sr)) / sr
        tau = np.mod(t, period)
        fc = s["fc"] * fs * (1.0 + s["drift"] * t / total)
        freq = fc * (1.0 + s["bw"] / 2 - s["bw"] * np.minimum(tau / note, 1.0))
        freq = np.minimum(freq, nyq)
        env = np.where(tau < note, np.sin(np.pi * np.minimum(tau / note, 1.0)) ** 2, 0.0)
        x = _tone(freq, sr) * env
        f_lo = s["fc"] * fs * min(1.0, 1.0 + s["drift"])
        f_hi = s["fc"] * fs * max(1.0, 1.0 + s["drift"])
        low, high = f_lo * (1 - s["bw"] / 2), min(f_hi * (1 + s["bw"] / 2), nyq)
    elif call_type == "harmonic":
        n_h = int(s["n_harm"])
        syll, gap = s["syll"] * ts, s["gap"] * ts
        n_syll = max(1, int(s["n_syll"]))
        ns = max(2, int(syll * sr))
        u = np.linspace(0.0, 1.0, ns)
        f0 = s["f0"] * fs * (1.0 + s["arch"] * np.sin(np.pi * u))
        phase = 2.0 * np.pi * np.cumsum(f0) / sr
        k = np.arange(1, n_h + 1)[:, None]
        amp = (k ** -s["tilt"]) * (k * f0.max() < nyq)
        one = (amp * np.sin(k * phase)).sum(axis=0) * _fade(ns, int(0.08 * ns)) * (1.0 - 0.4 * u)
        pause = np.zeros(int(gap * sr))
        x = np.concatenate([one if i == 0 else np.concatenate([pause, one]) for i in range(n_syll)])
        low = s["f0"] * fs * min(1.0, 1.0 + s["arch"])
        high = min(n_h * s["f0"] * fs * max(1.0, 1.0 + s["arch"]), nyq)
    elif call_type == "warble":
        dur = s["dur"] * ts
        t = np.arange(int(dur * sr)) / sr
        fc = s["fc"] * fs
        freq = fc * (1.0 + s["depth"] * np.sin(2 * np.pi * s["rate"] * t + rng.uniform(0, 6.283)))
        x = _tone(np.minimum(freq, nyq), sr) * _fade(len(t), int(0.08 * sr))
        low, high = fc * (1 - s["depth"]), min(fc * (1 + s["depth"]), nyq)
    elif call_type == "clicks":
        dur = s["dur"] * ts
        t = np.arange(int(dur * sr)) / sr
        fc, sigma = min(s["fc"] * fs, nyq), s["pulse"] / 6.0
        period = 1.0 / (s["rate"] / ts)
        tau = np.mod(t, period)
        env = np.exp(-0.5 * ((tau - 3 * sigma) / sigma) ** 2)
        x = np.sin(2 * np.pi * fc * t) * env * _fade(len(t), int(0.05 * sr))
        bw = 2.0 / (2 * np.pi * sigma)
        low, high = max(50.0, fc - bw), min(fc + bw, nyq)
    elif call_type == "chirp":
        n_chirps = max(1, int(s["n_chirps"]) + dn())
        fh = min(s["f_high"] * fs, nyq)
        fl = fh * s["ratio"]
        chirp = s["chirp"] * ts
        nc = max(2, int(chirp * sr))
        one = _sweep(fh, fl, chirp, sr) * np.sin(np.pi * np.linspace(0, 1, nc)) ** 2
        pause = np.zeros(int(s["gap"] * ts * sr))
        x = np.concatenate([one if i == 0 else np.concatenate([pause, one])
                            for i in range(n_chirps)])
        low, high = fl, fh
    elif call_type == "whistle":
        note, gap = s["note"] * ts, s["gap"] * ts
        nn = max(2, int(note * sr))
        t = np.arange(nn) / sr
        vib = 1.0 + s["vib_depth"] * np.sin(2 * np.pi * s["vib_rate"] * t)
        f1, f2 = min(s["f1"] * fs, nyq), min(s["f2"] * fs, nyq)
        fade = _fade(nn, int(0.15 * nn))
        x = np.concatenate([_tone(f1 * vib, sr) * fade, np.zeros(int(gap * sr)),
                            _tone(f2 * vib, sr) * fade])
        low = min(f1, f2) * (1 - s["vib_depth"])
        high = max(f1, f2) * (1 + s["vib_depth"])
    else:
        raise ValueError(f"unknown call type {call_type!r}")
    peak = float(np.max(np.abs(x))) or 1.0
    return (x / peak).astype(np.float32), float(low), float(high)


# --------------------------------------------------------------------------- noise

_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786], dtype=np.float32)
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400], dtype=np.float32)


def _rms_scale(x: np.ndarray, level_db: float) -> np.ndarray:
    """``x`` scaled in place to an RMS of ``level_db`` dBFS."""
    rms = math.sqrt(float(np.dot(x, x)) / max(len(x), 1)) or 1.0
    x *= np.float32(10 ** (level_db / 20.0) / rms)
    return x


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance white noise (uniform: cheaper than Gaussian, sounds the same)."""
    x = rng.random(n, dtype=np.float32)
    x -= np.float32(0.5)
    x *= np.float32(math.sqrt(12.0))
    return x


def pink_noise(rng: np.random.Generator, n: int, level_db: float) -> np.ndarray:
    """1/f noise (Kellet's three-pole filter on white noise) at ``level_db`` dBFS RMS."""
    x = lfilter(_PINK_B, _PINK_A, _white(rng, n)).astype(np.float32, copy=False)
    return _rms_scale(x, level_db)


def _smooth_random(rng: np.random.Generator, n_out: int, n_knots: int) -> np.ndarray:
    """Slowly varying standard-normal-ish curve of ``n_out`` points (linear through knots)."""
    knots = lfilter([0.5], [1.0, -0.5], rng.standard_normal(n_knots + 1)) / 0.58
    return np.interp(np.linspace(0, n_knots, n_out), np.arange(n_knots + 1), knots)


def wind_noise(rng: np.random.Generator, n: int, sr: int, cutoff_hz: float, level_db: float,
               ) -> np.ndarray:
    """Low-pass noise with gusts, made at 1/10 of the rate and resampled with soxr."""
    sr_w = sr // 10
    n_w = n // 10 + 32
    sos = butter(2, min(cutoff_hz, 0.45 * sr_w), fs=sr_w, output="sos")
    gust = np.exp(0.7 * _smooth_random(rng, n_w, max(2, int(n_w / sr_w * 1.5))))
    x = (sosfilt(sos, _white(rng, n_w)) * gust).astype(np.float32)
    _rms_scale(x, level_db)
    y = soxr.resample(x, sr_w, sr, quality="LQ")
    if len(y) < n:
        y = np.concatenate([y, np.zeros(n - len(y), dtype=np.float32)])
    return y[:n]


def rain_noise(rng: np.random.Generator, n: int, sr: int, drops_per_s: float, level_db: float,
               ) -> np.ndarray:
    """Broadband impulsive drops: a sparse impulse train through a decaying high-pass."""
    n_drops = rng.poisson(drops_per_s * n / sr)
    imp = np.zeros(n, dtype=np.float32)
    pos = rng.integers(0, n, n_drops)
    np.add.at(imp, pos, rng.lognormal(0.0, 0.8, n_drops).astype(np.float32)
              * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n_drops))
    x = lfilter(np.float32([1.0, -1.0]), np.float32([1.0, -0.85]), imp)
    return _rms_scale(x.astype(np.float32, copy=False), level_db)


def _tiled(period: np.ndarray, n: int) -> np.ndarray:
    return np.tile(period, n // len(period) + 1)[:n]


def insect_noise(rng: np.random.Generator, n: int, sr: int, level_db: float) -> np.ndarray:
    """Narrow-band stridulation: a 3.5-9 kHz carrier gated by pulses (and chirps).

    Every part is periodic, so one period of each is computed and tiled (the carrier frequency
    is rounded to 10 Hz so that 0.1 s holds whole cycles).
    """
    block = sr // 10
    cycles = int(round(rng.uniform(3500.0, min(9000.0, 0.4 * sr)) * block / sr))
    carrier = np.sin(2 * np.pi * cycles * np.arange(block) / block + rng.uniform(0, 6.28))
    pulse = max(4, int(sr / rng.uniform(20.0, 70.0)))
    on = max(2, int(pulse * rng.uniform(0.3, 0.6)))
    gate = np.zeros(pulse)
    gate[:on] = np.sin(np.pi * np.arange(on) / on)
    x = _tiled(carrier.astype(np.float32), n) * _tiled(gate.astype(np.float32), n)
    chirp_duty = rng.choice([rng.uniform(0.3, 0.8), 1.0])
    if chirp_duty < 1.0:
        period = max(pulse, int(sr * rng.uniform(0.25, 1.5)))
        on = int(chirp_duty * period)
        mask = np.zeros(period, dtype=np.float32)
        mask[:on] = _fade(on, int(0.01 * sr))  # 10 ms ramps: no clicks at chirp edges
        x *= _tiled(mask, n)
    return _rms_scale(x, level_db)


@dataclass(frozen=True)
class Weather:
    """Weather of a site-day (shared by that day's recordings)."""

    rainy: bool
    wind_db: float  # offset to the habitat's wind level


def day_weather(seed: int, site: Site, date_index: int, profile: NoiseProfile) -> Weather:
    """Rain and wind of a site-day, keyed by (seed, site, date)."""
    rng = child_rng(seed, "weather", site.name, date_index)
    return Weather(bool(rng.random() < profile.rain_prob), float(rng.normal(0.0, 5.0)))


def background(rng: np.random.Generator, n: int, sr: int, site: Site, t: dt.datetime,
               weather: Weather) -> tuple[np.ndarray, dict[str, Any]]:
    """Habitat- and weather-dependent background noise plus its description.

    Pink noise everywhere (+6 dB when it rains), wind (habitat level + the day's offset),
    rain drops on rainy days (most recordings of a rainy day), insects on summer nights.
    """
    prof = HABITAT_NOISE.get(site.habitat, DEFAULT_NOISE)
    rain = weather.rainy and rng.random() < 0.7
    x = pink_noise(rng, n, prof.pink_db + rng.uniform(-3.0, 3.0) + (6.0 if rain else 0.0))
    wind_db = prof.wind_db + weather.wind_db + rng.normal(0.0, 2.0)
    x += wind_noise(rng, n, sr, prof.wind_cutoff_hz * rng.uniform(0.8, 1.25), wind_db)
    if rain:
        x += rain_noise(rng, n, sr, rng.uniform(10.0, 200.0), rng.uniform(-52.0, -32.0))
    elev, _ = solar_state(site, t)
    activity = _bump(t.timetuple().tm_yday, 200.0, 40.0) * (0.25 + 0.75 * _sigmoid(-elev / 3.0))
    insects_db = prof.insects_db + 20.0 * math.log10(max(activity, 1e-6)) + rng.normal(0.0, 2.0)
    if insects_db > -70.0:
        x += insect_noise(rng, n, sr, insects_db)
    info = {"rain": bool(rain), "wind_db": round(wind_db, 2),
            "insects_db": round(insects_db, 2) if insects_db > -70.0 else float("nan")}
    return x, info


def _band_share(noise: np.ndarray, sr: int, nfft: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(bin frequencies, cumulative share of noise power) from every 8th frame of ``noise``."""
    n_frames = len(noise) // nfft
    if n_frames == 0:
        noise = np.pad(noise, (0, nfft - len(noise)))
        n_frames = 1
    frames = noise[: n_frames * nfft].reshape(n_frames, nfft)[::8]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=1)) ** 2, axis=0)
    return np.fft.rfftfreq(nfft, 1.0 / sr), np.cumsum(power) / max(power.sum(), 1e-30)


# --------------------------------------------------------------------------- one recording


@dataclass(frozen=True)
class Context:
    """Everything a worker needs to synthesise any recording."""

    params: Mapping[str, Any]
    seed: int
    species: tuple[Species, ...]
    span: tuple[float, float]
    out_dir: Path


def plan_calls(rng: np.random.Generator, ctx: Context, rec: Recording,
               ) -> list[tuple[Species, float, float]]:
    """(species, onset_s, distance_m) of every call in a recording: Poisson bouts of calls."""
    lam = expected_calls(ctx.species, ctx.params, rec.site, rec.start, ctx.span)
    calls = []
    for s, rate in zip(ctx.species, lam):
        n_bouts = rng.poisson(rate / s.bout_length)
        for _ in range(n_bouts):
            start = rng.uniform(-0.3 * rec.duration_s, rec.duration_s)
            distance = 5.0 + 295.0 * math.sqrt(rng.random())  # uniform over a disc
            n_calls = 1 + rng.poisson(s.bout_length - 1.0)
            gaps = s.call_interval_s * np.exp(rng.normal(0.0, 0.15, n_calls))
            onsets = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
            calls.extend((s, float(o), distance) for o in onsets)
    return calls


def synthesise(ctx: Context, rec: Recording) -> tuple[np.ndarray, list[dict[str, Any]],
                                                    dict[str, Any]]:
    """Audio, call events and noise description of one recording (no file written)."""
    p, sr = ctx.params, int(ctx.params["sample_rate"])
    rng = child_rng(ctx.seed, "recording", rec.site.name, rec.start.isoformat())
    n = int(round(rec.duration_s * sr))
    weather = day_weather(ctx.seed, rec.site, rec.date_index,
                          HABITAT_NOISE.get(rec.site.habitat, DEFAULT_NOISE))
    audio, info = background(rng, n, sr, rec.site, rec.start, weather)
    noise_power = float(np.dot(audio, audio)) / max(n, 1)
    freqs, share = _band_share(audio, sr)
    calls_rng = child_rng(ctx.seed, "calls", rec.site.name, rec.start.isoformat())
    events = []
    for s, onset, distance in plan_calls(calls_rng, ctx, rec):
        x, low, high = synth_call(s.spec.call_type, s.shape, calls_rng, sr)
        i0 = int(round(onset * sr))
        if i0 < 0 or i0 + len(x) > n:  # only calls wholly inside the recording
            continue
        centre_khz = math.sqrt(low * high) / 1000.0
        level_db = s.source_db - 20.0 * math.log10(distance / 5.0) - 0.004 * centre_khz * distance
        amp = 10 ** (level_db / 20.0)
        audio[i0:i0 + len(x)] += (amp * x).astype(np.float32)
        band = float(np.interp(high, freqs, share) - np.interp(low, freqs, share))
        call_power = amp ** 2 * float(np.mean(np.square(x, dtype=np.float64)))
        snr = 10.0 * math.log10(call_power / max(noise_power * max(band, 1e-4), 1e-20))
        events.append({"rel_path": rec.rel_path, "species": s.label, "onset_s": i0 / sr,
                       "offset_s": (i0 + len(x)) / sr, "low_hz": round(low, 1),
                       "high_hz": round(high, 1), "call_type": s.spec.call_type,
                       "level_db": round(level_db, 2), "snr_db": round(snr, 2),
                       "distance_m": round(distance, 1)})
    np.clip(audio, -1.0, 1.0, out=audio)
    info["noise_db"] = round(10.0 * math.log10(max(noise_power, 1e-20)), 2)
    info["n_calls"] = len(events)
    return audio, events, info


def write_audio(audio: np.ndarray, path: Path, sr: int, fmt: str) -> None:
    """Write a recording atomically: FLAC 16 bit, or MP3 (VBR) through libsndfile/LAME."""
    with atomic_path(path, STAGE) as tmp:
        if fmt == "mp3":
            sf.write(tmp, audio, sr, format="MP3", bitrate_mode="VARIABLE",
                     compression_level=0.5)
        else:
            sf.write(tmp, audio, sr, format="FLAC", subtype="PCM_16")


def make_recording(ctx: Context, rec: Recording) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Synthesise and write one recording; returns its events and its recordings.csv row."""
    audio, events, info = synthesise(ctx, rec)
    write_audio(audio, ctx.out_dir / rec.rel_path, int(ctx.params["sample_rate"]), rec.fmt)
    row = {"rel_path": rec.rel_path, "device_id": rec.device_id, "site": rec.site.name,
           "start_time": _iso_utc(rec.start), "duration_s": rec.duration_s, "format": rec.fmt,
           "sample_rate": int(ctx.params["sample_rate"]), "country": rec.site.country,
           "habitat": rec.site.habitat, **info}
    return events, row


# --------------------------------------------------------------------------- ground truth


def segment_starts(duration_s: float, segment_s: float = SEGMENT_S,
                   min_len_s: float = MIN_SEGMENT_S) -> np.ndarray:
    """Starts of the analysed segments: 0, 3, 6, ... (a trailing piece < 1.5 s is dropped)."""
    starts = np.arange(0.0, duration_s, segment_s)
    return starts[(duration_s - starts) >= min(min_len_s, duration_s) - 1e-9]


EVENT_COLUMNS = {"rel_path": "str", "species": "str", "onset_s": "float64",
                 "offset_s": "float64", "low_hz": "float64", "high_hz": "float64",
                 "call_type": "str", "level_db": "float64", "snr_db": "float64",
                 "distance_m": "float64"}
TRUTH_COLUMNS = {"rel_path": "str", "start_s": "float64", "end_s": "float64", "species": "str",
                 "n_calls": "int64", "overlap_s": "float64", "snr_db": "float64",
                 "level_db": "float64"}


def segment_truth(events: pd.DataFrame, durations: Mapping[str, float],
                  segment_s: float = SEGMENT_S, min_overlap_s: float = MIN_OVERLAP_S,
                  min_fraction: float = MIN_CALL_FRACTION) -> pd.DataFrame:
    """Species present per (recording, segment) from call events.

    A call makes its species present in a segment when the overlap is at least
    ``min(min_overlap_s, min_fraction * call duration)``. Rows: rel_path, start_s, end_s,
    species, n_calls (calls counted present), overlap_s (largest), snr_db and level_db (of the
    loudest present call); sorted by rel_path, start_s, species.
    """
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in TRUTH_COLUMNS.items()})
    if events.empty:
        return empty
    ev = events.reset_index(drop=True)
    dur = ev["rel_path"].map(durations)
    if dur.isna().any():
        missing = ev.loc[dur.isna(), "rel_path"].iloc[0]
        raise KeyError(f"segment_truth: no duration for {missing!r}")
    first = np.floor(ev["onset_s"].to_numpy() / segment_s).astype(int)
    last = np.ceil(ev["offset_s"].to_numpy() / segment_s).astype(int) - 1
    counts = np.maximum(last - first + 1, 0)
    idx = np.repeat(np.arange(len(ev)), counts)
    seg = first[idx] + (np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts))
    start = seg * segment_s
    end = np.minimum(start + segment_s, dur.to_numpy()[idx])
    on, off = ev["onset_s"].to_numpy()[idx], ev["offset_s"].to_numpy()[idx]
    overlap = np.minimum(off, end) - np.maximum(on, start)
    need = np.minimum(min_overlap_s, min_fraction * (off - on))
    d = dur.to_numpy()[idx]
    analysed = (start >= 0) & (start < d) & (d - start >= np.minimum(MIN_SEGMENT_S, d) - 1e-9)
    keep = (overlap >= need - 1e-9) & analysed
    if not keep.any():
        return empty
    rows = pd.DataFrame({
        "rel_path": ev["rel_path"].to_numpy()[idx][keep], "start_s": start[keep],
        "end_s": end[keep], "species": ev["species"].to_numpy()[idx][keep],
        "overlap_s": overlap[keep],
        "snr_db": ev["snr_db"].to_numpy()[idx][keep] if "snr_db" in ev else np.nan,
        "level_db": ev["level_db"].to_numpy()[idx][keep] if "level_db" in ev else np.nan,
    })
    out = (rows.groupby(["rel_path", "start_s", "end_s", "species"], sort=True)
           .agg(n_calls=("overlap_s", "size"), overlap_s=("overlap_s", "max"),
                snr_db=("snr_db", "max"), level_db=("level_db", "max"))
           .reset_index())
    out["overlap_s"] = out["overlap_s"].round(4)
    return out[list(TRUTH_COLUMNS)].astype(TRUTH_COLUMNS)


# --------------------------------------------------------------------------- tables


def sites_table(deployments: Sequence[Deployment]) -> pd.DataFrame:
    """``sites.csv``: one row per deployment, ISO UTC times, empty end = still deployed."""
    rows = [{"device_id": d.device_id, "site": d.site.name, "country": d.site.country,
             "habitat": d.site.habitat, "lat": d.site.lat, "lon": d.site.lon,
             "deployment_start": _iso_utc(d.start), "deployment_end": _iso_utc(d.end),
             "config_id": d.config_id} for d in deployments]
    return pd.DataFrame(rows).sort_values(["device_id", "deployment_start"], ignore_index=True)


def species_table(species: Sequence[Species], sr: int) -> pd.DataFrame:
    """``species.csv``: the community, its ecology and call templates (by abundance rank).

    f_low, f_high and call_duration_s are those of the template's nominal (unjittered) call.
    """
    rows = []
    for s in species:
        x, low, high = synth_call(s.spec.call_type, s.shape, np.random.default_rng(0), sr,
                                  jitter=False)
        rows.append({
            "species": s.label, "call_type": s.spec.call_type,
            "abundance_rank": s.abundance_rank, "abundance_weight": round(s.weight, 6),
            "f_low": round(low, 1), "f_high": round(high, 1),
            "call_duration_s": round(len(x) / sr, 3), "lat_optimum": s.lat_optimum,
            "diel_pattern": s.spec.diel, "season_pattern": s.spec.season,
            "habitat_preference": s.spec.habitat, "range": s.spec.range,
            "source_db": round(s.source_db, 2), "bout_length": round(s.bout_length, 3),
            "call_interval_s": round(s.call_interval_s, 3),
            "template": json.dumps(s.shape, sort_keys=True),
        })
    return pd.DataFrame(rows).sort_values("abundance_rank", ignore_index=True)


def _frame(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    return df.astype(dict(columns))


# --------------------------------------------------------------------------- folder handling

_AUDIO_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}_\d{2}_\d{2}\.\d{3}Z\.(mp3|flac)$")


def _check_out_dir(out_dir: Path) -> None:
    """Refuse a non-empty folder that this generator did not make."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise FileExistsError(
            f"{out_dir}: folder is not empty and has no {MARKER} marker; refusing to write the "
            "demo dataset into it (choose an empty folder or remove it)")


def _remove_stale(out_dir: Path, keep: set[str]) -> int:
    """Delete generator-made audio (``proj_*/.../<ISO>.mp3|flac``) not in ``keep``."""
    removed = 0
    for proj in sorted(out_dir.glob("proj_*")):
        if not proj.is_dir():
            continue
        for path in sorted(proj.rglob("*")):
            if path.is_file() and _AUDIO_NAME.match(path.name):
                if path.relative_to(out_dir).as_posix() not in keep:
                    path.unlink()
                    removed += 1
        for d in sorted((q for q in proj.rglob("*") if q.is_dir()), key=lambda q: -len(q.parts)):
            if not any(d.iterdir()):
                d.rmdir()
        if not any(proj.iterdir()):
            shutil.rmtree(proj)
    return removed


# --------------------------------------------------------------------------- entry point


def generate_demo(out_dir: Path | str, params: Mapping[str, Any] | None = None,
                  seed: int | None = None, *, n_jobs: int = 1, progress: bool = True,
                  ) -> dict[str, Any]:
    """Write the demo dataset into ``out_dir``; returns a summary.

    ``params`` is the ``demo:`` section of params.yaml (missing keys take :data:`DEFAULTS`);
    ``seed`` overrides ``params["seed"]``. ``n_jobs`` threads synthesise and encode recordings
    in parallel (the output does not depend on it). Regenerating into a folder this generator
    made replaces its files; any other non-empty folder is refused.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    p = demo_params(params, seed=seed)
    seed = int(p["seed"])
    _check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({"generator": "activepam.demo.generate", "version": GENERATOR_VERSION,
                "params": p}, out_dir / MARKER, STAGE)

    sites = build_sites(p, seed)
    slots = schedule(p)
    deployments = build_deployments(sites, [t for _, t in slots], seed)
    recordings = build_recordings(p, sites, deployments, seed)
    species = build_species(p, sites, seed)
    removed = _remove_stale(out_dir, {r.rel_path for r in recordings})
    if removed:
        logger.info("demo: removed %d audio files of an earlier generation", removed)
    ctx = Context(p, seed, tuple(species), gradient_span(sites), out_dir)
    logger.info("demo: %d sites, %d species, %d recordings of %.0f s into %s (seed %d)",
                len(sites), len(species), len(recordings), p["duration_s"], out_dir, seed)

    results: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
    bar = tqdm(total=len(recordings), desc="generate demo", unit="rec", disable=not progress,
               file=sys.stderr)
    work: Callable[[Recording], tuple[list[dict[str, Any]], dict[str, Any]]] = (
        lambda rec: make_recording(ctx, rec))
    if n_jobs <= 1:
        for rec in recordings:
            results.append(work(rec))
            bar.update()
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for res in pool.map(work, recordings):
                results.append(res)
                bar.update()
    bar.close()

    events = _frame([e for evs, _ in results for e in evs], EVENT_COLUMNS)
    events = events.sort_values(["rel_path", "onset_s", "species"], ignore_index=True)
    rec_table = pd.DataFrame([row for _, row in results]).sort_values("rel_path",
                                                                       ignore_index=True)
    truth = segment_truth(events, {r.rel_path: r.duration_s for r in recordings})
    write_csv(sites_table(deployments), out_dir / "sites.csv", STAGE)
    write_csv(rec_table, out_dir / "recordings.csv", STAGE)
    write_csv(species_table(species, int(p["sample_rate"])), out_dir / "species.csv", STAGE)
    write_parquet(events, out_dir / "events.parquet", STAGE)
    write_parquet(truth, out_dir / "ground_truth.parquet", STAGE)

    summary = {
        "out_dir": str(out_dir), "seed": seed, "n_sites": len(sites),
        "n_devices": len({d.device_id for d in deployments}), "n_deployments": len(deployments),
        "n_recordings": len(recordings),
        "n_mp3": sum(r.fmt == "mp3" for r in recordings),
        "n_flac": sum(r.fmt == "flac" for r in recordings),
        "audio_s": float(sum(r.duration_s for r in recordings)),
        "n_species": len(species), "n_events": len(events), "n_truth_rows": len(truth),
        "n_species_present": int(truth["species"].nunique()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    logger.info("demo: %s", summary)
    return summary


# --------------------------------------------------------------------------- CLI


def _cli(args: argparse.Namespace) -> int:
    try:
        if args.params is not None:
            demo = load_params(args.params)["demo"]
        elif Path("params.yaml").is_file():
            demo = load_params("params.yaml")["demo"]
        else:
            demo = {}
        p = demo_params(demo, n_sites=args.n_sites, duration_s=args.duration_s,
                        recordings_per_day=args.recordings_per_day, n_species=args.n_species,
                        turnover=args.turnover)
        summary = generate_demo(args.out, p, seed=args.seed, n_jobs=args.threads,
                                progress=not args.quiet)
    except (ConfigError, FileExistsError) as exc:
        print(f"activepam generate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam generate``."""
    sp = subparsers.add_parser(
        "generate", help="write the seeded demo soundscape dataset",
        description="Write the seeded demo dataset (audio in the TABMON layout, sites.csv, "
                    "recordings.csv, species.csv, events.parquet, ground_truth.parquet).")
    sp.add_argument("--out", required=True, type=Path, help="output folder (empty or a demo)")
    sp.add_argument("--params", type=Path, default=None,
                    help="params.yaml to read the demo: section from (default ./params.yaml "
                         "when present, else built-in defaults)")
    sp.add_argument("--seed", type=int, default=None, help="random seed (default demo.seed)")
    sp.add_argument("--n-sites", type=int, default=None, help="override demo.n_sites")
    sp.add_argument("--duration-s", type=float, default=None, help="override demo.duration_s")
    sp.add_argument("--recordings-per-day", type=int, default=None,
                    help="override demo.recordings_per_day")
    sp.add_argument("--n-species", type=int, default=None, help="override demo.n_species")
    sp.add_argument("--turnover", type=float, default=None, help="override demo.turnover")
    sp.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                    help="recordings synthesised and encoded in parallel")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cli)
