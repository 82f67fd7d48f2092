"""Layout and community of the demo: sites along the latitude gradient, the recording schedule,
deployments (two devices swap sites), the species community (Zipf abundance, turnover along
the gradient) and its diel and seasonal activity."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astral import Observer
from astral.sun import elevation as solar_elevation

from activepam.demo.catalogue import (
    COUNTRY_BOXES,
    SPECIES_CATALOGUE,
    Deployment,
    Recording,
    Site,
    Species,
)
from activepam.demo.params import child_rng, hash_ints, hex_id

logger = logging.getLogger(__name__)


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


def iso_name(t: dt.datetime) -> str:
    """TABMON file stem: ``2025-05-15T04_00_00.000Z``."""
    return t.strftime("%Y-%m-%dT%H_%M_%S") + f".{t.microsecond // 1000:03d}Z"


def iso_utc(t: dt.datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(p: Mapping[str, Any]) -> list[tuple[int, dt.datetime]]:
    """(date index, UTC start) of every recording slot, the same at every site.

    ``recordings_per_day`` slots are spread evenly over the day; date ``d`` is shifted by ``d``
    hours (modulo the slot spacing), so that over several dates every hour of the day is covered.
    """
    step_min = 1440.0 / p["recordings_per_day"]
    out = []
    for d, day in enumerate(p["dates"]):
        midnight = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        stagger = (d * 60.0) % step_min if step_min >= 60 else 0.0
        for slot in range(p["recordings_per_day"]):
            minute = math.floor(slot * step_min + stagger)
            out.append((d, midnight + dt.timedelta(minutes=minute)))
    return out


def build_deployments(
    sites: Sequence[Site],
    times: Sequence[dt.datetime],
    seed: int,
) -> list[Deployment]:
    """One device per site; the devices of sites 0 and 1 swap sites half way through.

    The swap happens half way between two recording slots, so no recording is ambiguous.
    Deployments start a day before the first recording; the last ones are open-ended.
    """
    times = sorted(set(times))
    start = dt.datetime.combine(times[0].date(), dt.time(), dt.UTC) - dt.timedelta(days=1)
    devices = [hex_id(seed, "device", s.index) for s in sites]

    def conf(device: str, site: Site) -> str:
        return hex_id(seed, "conf", device, site.name, n=8)

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


def build_recordings(
    p: Mapping[str, Any], sites: Sequence[Site], deployments: Sequence[Deployment], seed: int
) -> list[Recording]:
    """Every (site, slot) recording with its device, TABMON path and file format.

    Exactly ``round(mp3_fraction * n)`` recordings are MP3: those with the smallest hash value
    of (seed, site, time), so each recording's format is stable as the dataset grows.
    """
    slots = schedule(p)
    rows = []
    for site in sites:
        for d, t in slots:
            dep = _deployment_at(deployments, site, t)
            key = hash_ints(seed, "format", site.name, t.isoformat(), n=1)[0]
            rows.append((site, d, t, dep, key))
    n_mp3 = int(round(p["mp3_fraction"] * len(rows)))
    mp3_keys = set(sorted((r[4], i) for i, r in enumerate(rows))[:n_mp3])
    out = []
    for i, (site, d, t, dep, key) in enumerate(rows):
        fmt = "mp3" if (key, i) in mp3_keys else "flac"
        rel = (
            f"proj_{p['project']}/bugg_RPiID-{dep.device_id}/conf_{dep.config_id}/"
            f"{iso_name(t)}.{fmt}"
        )
        out.append(Recording(rel, site, dep.device_id, t, d, float(p["duration_s"]), fmt))
    return out


#: frequency range (Hz) of the template's position parameter, per call type
_TYPE_BANDS: dict[str, tuple[float, float]] = {
    "upsweep": (1100.0, 4500.0),
    "downsweep": (2500.0, 8000.0),
    "trill": (2500.0, 8000.0),
    "harmonic": (250.0, 1300.0),
    "warble": (1800.0, 5500.0),
    "clicks": (700.0, 4500.0),
    "chirp": (4500.0, 9500.0),
    "whistle": (1000.0, 4500.0),
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
        return {
            "fc": f,
            "n_notes": float(rng.integers(6, 19)),
            "note": u(0.02, 0.06),
            "gap": u(0.01, 0.05),
            "bw": u(0.1, 0.35),
            "drift": u(-0.25, 0.1),
        }
    if call_type == "harmonic":
        return {
            "f0": f,
            "n_harm": float(rng.integers(3, 8)),
            "tilt": u(0.5, 1.5),
            "syll": u(0.2, 0.7),
            "n_syll": float(rng.integers(1, 4)),
            "gap": u(0.1, 0.35),
            "arch": u(-0.08, 0.1),
        }
    if call_type == "warble":
        return {"fc": f, "depth": u(0.08, 0.25), "rate": u(6.0, 22.0), "dur": u(0.8, 2.2)}
    if call_type == "clicks":
        return {"fc": f, "rate": u(8.0, 45.0), "pulse": u(0.0015, 0.006), "dur": u(0.8, 2.5)}
    if call_type == "chirp":
        return {
            "f_high": f,
            "ratio": u(0.35, 0.6),
            "chirp": u(0.03, 0.08),
            "n_chirps": float(rng.integers(2, 6)),
            "gap": u(0.06, 0.18),
        }
    if call_type == "whistle":
        ratio = u(0.7, 0.85) if rng.random() < 0.5 else u(1.15, 1.35)
        return {
            "f1": f,
            "f2": f * ratio,
            "note": u(0.2, 0.55),
            "gap": u(0.05, 0.2),
            "vib_depth": u(0.005, 0.02),
            "vib_rate": u(4.0, 8.0),
        }
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
        out.append(
            Species(
                index=i,
                spec=s,
                abundance_rank=int(ranks[i]),
                weight=float(weights[i]),
                lat_optimum=round(float(south + q * (north - south)), 3),
                source_db=float(srng.uniform(-12.0, -3.0)),
                bout_length=float(srng.uniform(1.0, 6.0)),
                call_interval_s=float(srng.uniform(1.5, 5.0)),
                shape={
                    k: round(float(v), 5)
                    for k, v in _draw_shape(s.call_type, position, srng).items()
                },
            )
        )
    return out


def latitude_suitability(
    species: Sequence[Species], lat: float, turnover: float, span: tuple[float, float]
) -> np.ndarray:
    """Relative occurrence of each species at ``lat``: ``(1 - t) + t * gauss(lat - optimum)``.

    The Gaussian is 12 % of the gradient wide, so ``turnover = 1`` confines each species to a
    narrow latitude band and ``turnover = 0`` gives the same community everywhere.
    """
    sigma = 0.12 * (span[1] - span[0])
    opt = np.array([s.lat_optimum for s in species])
    return (1.0 - turnover) + turnover * np.exp(-0.5 * ((lat - opt) / sigma) ** 2)


def bump(x: float, mu: float, sd: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sd) ** 2)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def diel_activity(pattern: str, sun_elevation: float, morning: bool) -> float:
    """Singing activity (about 0..1) from the solar elevation in degrees."""
    e = sun_elevation
    if pattern == "dawn":  # chorus peak just after sunrise, some day song, a short dusk peak
        peak = bump(e, 4.0, 7.0) if morning else 0.35 * bump(e, 0.0, 5.0)
        return 0.02 + 0.3 * sigmoid(e / 3.0) + 0.8 * peak
    if pattern == "diurnal":
        return 0.03 + 0.9 * sigmoid((e - 2.0) / 3.0)
    if pattern == "crepuscular":
        return 0.03 + 0.9 * bump(e, -3.0, 5.0)
    if pattern == "nocturnal":
        return 0.03 + 0.9 * sigmoid((-e - 5.0) / 2.5)
    raise ValueError(f"unknown diel pattern {pattern!r}")


def season_activity(pattern: str, day_of_year: int) -> float:
    """Seasonal activity: residents sing most in spring; migrants are absent outside Apr-Sep."""
    song = bump(day_of_year, 135.0, 55.0)
    if pattern == "resident":
        return 0.35 + 0.65 * song
    if pattern == "migrant":
        present = sigmoid((day_of_year - 105.0) / 4.0) * sigmoid((255.0 - day_of_year) / 4.0)
        return present * (0.3 + 0.7 * song)
    raise ValueError(f"unknown season pattern {pattern!r}")


def solar_state(site: Site, t: dt.datetime) -> tuple[float, bool]:
    """(solar elevation in degrees, before local solar noon) at a site and time."""
    elev = float(solar_elevation(Observer(site.lat, site.lon), t))
    local_h = (t.hour + t.minute / 60.0 + site.lon / 15.0) % 24.0
    return elev, local_h < 12.0


def expected_calls(
    species: Sequence[Species],
    p: Mapping[str, Any],
    site: Site,
    t: dt.datetime,
    span: tuple[float, float],
) -> np.ndarray:
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
        rate[i] = (
            local[i]
            * habitat
            * diel_activity(s.spec.diel, elev, morning)
            * season_activity(s.spec.season, doy)
        )
    return rate * p["calls_per_minute"] * p["duration_s"] / 60.0
