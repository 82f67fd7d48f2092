"""Parameters of the demo generator: the ``demo:`` section completed with :data:`DEFAULTS` and
validated (:func:`demo_params`), and the keyed random streams every part draws from."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from activepam.core.config import SCHEMA_PATH, ConfigError
from activepam.demo.catalogue import COUNTRY_BOXES, SPECIES_CATALOGUE

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

#: the ``demo:`` keys the generator reads (all but ``enabled``, which only switches the rule
#: on): the params of ``rule generate_demo``
DEMO_KEYS: tuple[str, ...] = tuple(k for k in DEFAULTS if k != "enabled")


def demo_params(params: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The ``demo:`` section completed with :data:`DEFAULTS`, overridden and validated.

    Raises :class:`activepam.core.config.ConfigError` naming the bad ``demo.<key>``.
    """
    merged = copy.deepcopy(DEFAULTS)
    merged.update(copy.deepcopy(dict(params or {})))
    merged.update({k: v for k, v in overrides.items() if v is not None})
    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text())["properties"]["demo"]
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(merged),
        key=lambda e: list(e.absolute_path),
    )
    problems = [
        f"demo.{'.'.join(str(p) for p in e.absolute_path) or '<section>'}: {e.message}"
        for e in errors
    ]
    unknown = [c for c in merged["countries"] if c not in COUNTRY_BOXES]
    if unknown:
        problems.append(
            f"demo.countries: unknown country code(s) {unknown}; known: {sorted(COUNTRY_BOXES)}"
        )
    if merged["n_species"] > len(SPECIES_CATALOGUE):
        problems.append(
            f"demo.n_species: {merged['n_species']} is more than the "
            f"{len(SPECIES_CATALOGUE)} species of the catalogue"
        )
    if merged["mp3_fraction"] > 0 and merged["sample_rate"] not in MP3_RATES:
        problems.append(
            f"demo.sample_rate: MP3 cannot store {merged['sample_rate']} Hz "
            f"(one of {list(MP3_RATES)}, or set demo.mp3_fraction: 0)"
        )
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


def hash_ints(*parts: object, n: int = 2) -> tuple[int, ...]:
    """Stable 32-bit integers from a hash of ``parts`` (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return tuple(int.from_bytes(digest[4 * i : 4 * i + 4], "little") for i in range(n))


def hex_id(*parts: object, n: int = 10) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


def child_rng(seed: int, *key: object) -> np.random.Generator:
    """A random stream keyed by ``(seed, *key)``: the same key always gives the same stream."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=hash_ints(*key)))
