"""Synthetic embedding datasets: a cheap stand-in for the demo in the divergence sweep.

Regenerating the demo audio and running BirdNET for every species-turnover setting would take
minutes per setting, so the stratified-generalisation sweep draws embeddings directly from the
demo generator's community model (:mod:`activepam.demo`), without synthesising audio:

* sites, recording schedule, device deployments and recordings: ``build_sites``, ``schedule``,
  ``build_deployments``, ``build_recordings`` (same seed -> same layout as the demo);
* the community (Zipf abundance, latitude optima, ``demo.turnover``, diel / seasonal / habitat
  activity) and the call plan of every recording: ``build_species`` and ``plan_calls`` with the
  generator's own random streams, so the calls (species, onset, distance) are those the demo
  would synthesise for these parameters;
* call durations are those of each species' nominal template (the demo jitters them a little)
  and levels follow the demo's distance attenuation; the ground truth per 3 s segment comes
  from the generator's :func:`activepam.demo.truth.segment_truth`.

Embeddings replace BirdNET: each species has a random prototype vector; a segment's embedding
is the sum of its present species' prototypes, each weighted by how audible its loudest call is
(a logistic function of the call level: distant calls fade out), plus a habitat background, a
site x date (weather) vector and recording and segment noise. Absolute scores therefore differ
from the demo; the sweep is about how generalisation changes with divergence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.demo.catalogue import Species
from activepam.demo.layout import (
    build_deployments,
    build_recordings,
    build_sites,
    build_species,
    gradient_span,
    schedule,
)
from activepam.demo.params import child_rng, demo_params
from activepam.demo.recording import Context, plan_calls
from activepam.demo.synth import synth_call
from activepam.demo.truth import SEGMENT_S, segment_starts, segment_truth
from activepam.simulation.dataset import SimDataset


@dataclass(frozen=True)
class EmbeddingSpec:
    """Knobs of the synthetic embedding model (the community comes from the demo params)."""

    dim: int = 64
    #: level (dBFS) at which a call contributes half its prototype
    level_ref_db: float = -45.0
    #: width (dB) of the audibility logistic
    level_width_db: float = 5.0
    #: scale of the habitat background and site x date vectors relative to a prototype
    background: float = 0.6
    #: per-segment noise (std) relative to a prototype
    noise: float = 0.8
    #: seed of the prototypes and the noise (the community uses ``demo.seed``)
    seed: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> EmbeddingSpec:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (params or {}).items() if k in names})


def nominal_calls(species: list[Species], sr: int) -> dict[str, tuple[float, float]]:
    """(duration_s, centre frequency in kHz) of each species' unjittered call template."""
    out = {}
    rng = np.random.default_rng(0)
    for s in species:
        x, low, high = synth_call(s.spec.call_type, s.shape, rng, sr, jitter=False)
        out[s.label] = (len(x) / sr, math.sqrt(max(low, 1.0) * max(high, 1.0)) / 1000.0)
    return out


def call_events(
    demo: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> tuple[pd.DataFrame, pd.DataFrame, list[Species], dict[str, Any]]:
    """Recordings and call events of the demo community, without audio.

    Returns ``(recordings, events, species, params)``; recordings have rel_path, recording_id,
    site, country, habitat, lat, lon, device_id, start_time, duration_s; events have rel_path,
    species, onset_s, offset_s, level_db.
    """
    p = demo_params(demo, **overrides)
    seed = int(p["seed"])
    sites = build_sites(p, seed)
    slots = schedule(p)
    deployments = build_deployments(sites, [t for _, t in slots], seed)
    recordings = build_recordings(p, sites, deployments, seed)
    species = build_species(p, sites, seed)
    ctx = Context(p, seed, tuple(species), gradient_span(sites), Path("."))
    sr = int(p["sample_rate"])
    nominal = nominal_calls(species, sr)
    rec_rows, ev_rows = [], []
    for rec in recordings:
        rec_rows.append(
            {
                "rel_path": rec.rel_path,
                "recording_id": f"{rec.device_id}_{rec.start:%Y%m%dT%H%M%SZ}",
                "device_id": rec.device_id,
                "site": rec.site.name,
                "country": rec.site.country,
                "habitat": rec.site.habitat,
                "lat": rec.site.lat,
                "lon": rec.site.lon,
                "start_time": rec.start,
                "duration_s": rec.duration_s,
            }
        )
        rng = child_rng(seed, "calls", rec.site.name, rec.start.isoformat())
        for s, onset, distance in plan_calls(rng, ctx, rec):
            dur, centre_khz = nominal[s.label]
            if onset < 0 or onset + dur > rec.duration_s:  # the demo keeps whole calls only
                continue
            level = s.source_db - 20.0 * math.log10(distance / 5.0) - 0.004 * centre_khz * distance
            ev_rows.append(
                {
                    "rel_path": rec.rel_path,
                    "species": s.label,
                    "onset_s": onset,
                    "offset_s": onset + dur,
                    "level_db": level,
                }
            )
    events = pd.DataFrame(
        ev_rows, columns=["rel_path", "species", "onset_s", "offset_s", "level_db"]
    )
    return pd.DataFrame(rec_rows), events, species, p


def synthetic_dataset(
    demo: Mapping[str, Any] | None = None,
    embedding: EmbeddingSpec | None = None,
    name: str | None = None,
    **overrides: Any,
) -> SimDataset:
    """A fully labelled embedding dataset from the demo community (seeded, deterministic).

    ``demo`` is the ``demo:`` section of params.yaml; ``overrides`` replace its keys (e.g.
    ``turnover=1.0``).
    """
    emb = embedding or EmbeddingSpec()
    recs, events, species, p = call_events(demo, **overrides)
    durations = dict(zip(recs["rel_path"], recs["duration_s"]))
    truth = segment_truth(events, durations)
    rng = np.random.default_rng(emb.seed)
    labels = [s.label for s in species]
    sp_index = {s: i for i, s in enumerate(labels)}
    scale = 3.0 / math.sqrt(emb.dim)
    protos = rng.normal(0, 1, (len(labels), emb.dim)) * scale
    habitats = sorted(recs["habitat"].unique())
    hab_vec = {h: rng.normal(0, 1, emb.dim) * scale * emb.background for h in habitats}
    meta, blocks_x, blocks_y = [], [], []
    truth_by_rec = {k: g for k, g in truth.groupby("rel_path", sort=False)}
    for rec in recs.itertuples(index=False):
        starts = segment_starts(rec.duration_s)
        n_seg = len(starts)
        Y = np.zeros((n_seg, len(labels)), dtype=np.uint8)
        W = np.zeros((n_seg, len(labels)))
        g = truth_by_rec.get(rec.rel_path)
        if g is not None:
            seg_i = np.searchsorted(starts, g["start_s"].to_numpy() - 1e-6)
            sp_i = g["species"].map(sp_index).to_numpy()
            Y[seg_i, sp_i] = 1
            audible = 1.0 / (
                1.0 + np.exp(-(g["level_db"].to_numpy() - emb.level_ref_db) / emb.level_width_db)
            )
            W[seg_i, sp_i] = audible
        weather = child_rng(emb.seed, "weather", rec.site, rec.start_time.date().isoformat())
        site_day = weather.normal(0, 1, emb.dim) * scale * emb.background
        X = (
            W @ protos
            + hab_vec[rec.habitat]
            + site_day
            + rng.normal(0, 0.3, emb.dim) * scale
            + rng.normal(0, emb.noise, (n_seg, emb.dim)) * scale
        )
        blocks_x.append(X.astype(np.float32))
        blocks_y.append(Y)
        start = pd.Timestamp(rec.start_time)
        for s0 in starts:
            meta.append(
                {
                    "unit_id": f"{rec.recording_id}@{s0:.1f}",
                    "recording_id": rec.recording_id,
                    "path": rec.rel_path,
                    "start_s": float(s0),
                    "end_s": float(min(s0 + SEGMENT_S, rec.duration_s)),
                    "recording_duration_s": float(rec.duration_s),
                    "device_id": rec.device_id,
                    "site": rec.site,
                    "country": rec.country,
                    "habitat": rec.habitat,
                    "lat": rec.lat,
                    "lon": rec.lon,
                    "start_time": start,
                    "segment_time": start + pd.Timedelta(seconds=float(s0)),
                }
            )
    units = pd.DataFrame(meta)
    for col in ("start_time", "segment_time"):
        units[col] = pd.to_datetime(units[col], utc=True).astype("datetime64[us, UTC]")
    info = {
        "source": "synthetic (activepam.demo.generate community, no audio)",
        "turnover": float(p["turnover"]),
        "n_recordings": len(recs),
        "n_events": len(events),
    }
    return SimDataset(
        units,
        np.vstack(blocks_x),
        np.vstack(blocks_y),
        labels,
        name or f"synthetic_turnover{p['turnover']:g}",
        info,
    )
