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

import logging
import re
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from activepam.core.io import write_csv, write_json, write_parquet
from activepam.demo.catalogue import Recording
from activepam.demo.layout import (
    build_deployments,
    build_recordings,
    build_sites,
    build_species,
    gradient_span,
    schedule,
)
from activepam.demo.params import demo_params
from activepam.demo.recording import STAGE, Context, make_recording
from activepam.demo.truth import EVENT_COLUMNS, frame, segment_truth, sites_table, species_table

logger = logging.getLogger(__name__)

#: marker file proving that a folder was written by this generator (holds the parameters)
MARKER = ".activepam-demo.json"
#: bump when the generator's output changes for the same parameters
GENERATOR_VERSION = 1


# --------------------------------------------------------------------------- folder handling

_AUDIO_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}_\d{2}_\d{2}\.\d{3}Z\.(mp3|flac)$")


def _check_out_dir(out_dir: Path) -> None:
    """Refuse a non-empty folder that this generator did not make."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise FileExistsError(
            f"{out_dir}: folder is not empty and has no {MARKER} marker; refusing to write the "
            "demo dataset into it (choose an empty folder or remove it)"
        )


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


def generate_demo(
    out_dir: Path | str,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    *,
    n_jobs: int = 1,
    progress: bool = True,
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
    write_json(
        {"generator": "activepam.demo.generate", "version": GENERATOR_VERSION, "params": p},
        out_dir / MARKER,
        STAGE,
    )

    sites = build_sites(p, seed)
    slots = schedule(p)
    deployments = build_deployments(sites, [t for _, t in slots], seed)
    recordings = build_recordings(p, sites, deployments, seed)
    species = build_species(p, sites, seed)
    removed = _remove_stale(out_dir, {r.rel_path for r in recordings})
    if removed:
        logger.info("demo: removed %d audio files of an earlier generation", removed)
    ctx = Context(p, seed, tuple(species), gradient_span(sites), out_dir)
    logger.info(
        "demo: %d sites, %d species, %d recordings of %.0f s into %s (seed %d)",
        len(sites),
        len(species),
        len(recordings),
        p["duration_s"],
        out_dir,
        seed,
    )

    results: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
    bar = tqdm(
        total=len(recordings),
        desc="generate demo",
        unit="rec",
        disable=not progress,
        file=sys.stderr,
    )

    def work(rec: Recording) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return make_recording(ctx, rec)

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

    events = frame([e for evs, _ in results for e in evs], EVENT_COLUMNS)
    events = events.sort_values(["rel_path", "onset_s", "species"], ignore_index=True)
    rec_table = pd.DataFrame([row for _, row in results]).sort_values("rel_path", ignore_index=True)
    truth = segment_truth(events, {r.rel_path: r.duration_s for r in recordings})
    write_csv(sites_table(deployments), out_dir / "sites.csv", STAGE)
    write_csv(rec_table, out_dir / "recordings.csv", STAGE)
    write_csv(species_table(species, int(p["sample_rate"])), out_dir / "species.csv", STAGE)
    write_parquet(events, out_dir / "events.parquet", STAGE)
    write_parquet(truth, out_dir / "ground_truth.parquet", STAGE)

    summary = {
        "out_dir": str(out_dir),
        "seed": seed,
        "n_sites": len(sites),
        "n_devices": len({d.device_id for d in deployments}),
        "n_deployments": len(deployments),
        "n_recordings": len(recordings),
        "n_mp3": sum(r.fmt == "mp3" for r in recordings),
        "n_flac": sum(r.fmt == "flac" for r in recordings),
        "audio_s": float(sum(r.duration_s for r in recordings)),
        "n_species": len(species),
        "n_events": len(events),
        "n_truth_rows": len(truth),
        "n_species_present": int(truth["species"].nunique()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    logger.info("demo: %s", summary)
    return summary
