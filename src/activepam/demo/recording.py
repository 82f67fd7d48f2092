"""One demo recording: calls planned from the community's expected activity, mixed into the
background, written as FLAC or MP3 (:func:`make_recording`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from activepam.core.io import atomic_path
from activepam.demo.catalogue import DEFAULT_NOISE, HABITAT_NOISE, Recording, Species
from activepam.demo.layout import expected_calls, iso_utc
from activepam.demo.params import child_rng
from activepam.demo.synth import background, band_share, day_weather, synth_call

STAGE = "generate"


@dataclass(frozen=True)
class Context:
    """Everything a worker needs to synthesise any recording."""

    params: Mapping[str, Any]
    seed: int
    species: tuple[Species, ...]
    span: tuple[float, float]
    out_dir: Path


def plan_calls(
    rng: np.random.Generator,
    ctx: Context,
    rec: Recording,
) -> list[tuple[Species, float, float]]:
    """(species, onset_s, distance_m) of every call in a recording: Poisson bouts of calls."""
    lam = expected_calls(ctx.species, ctx.params, rec.site, rec.start, ctx.span)
    calls: list[tuple[Species, float, float]] = []
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


def synthesise(
    ctx: Context, rec: Recording
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Audio, call events and noise description of one recording (no file written)."""
    sr = int(ctx.params["sample_rate"])
    rng = child_rng(ctx.seed, "recording", rec.site.name, rec.start.isoformat())
    n = int(round(rec.duration_s * sr))
    weather = day_weather(
        ctx.seed, rec.site, rec.date_index, HABITAT_NOISE.get(rec.site.habitat, DEFAULT_NOISE)
    )
    audio, info = background(rng, n, sr, rec.site, rec.start, weather)
    noise_power = float(np.dot(audio, audio)) / max(n, 1)
    freqs, share = band_share(audio, sr)
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
        audio[i0 : i0 + len(x)] += (amp * x).astype(np.float32)
        band = float(np.interp(high, freqs, share) - np.interp(low, freqs, share))
        call_power = amp**2 * float(np.mean(np.square(x, dtype=np.float64)))
        snr = 10.0 * math.log10(call_power / max(noise_power * max(band, 1e-4), 1e-20))
        events.append(
            {
                "rel_path": rec.rel_path,
                "species": s.label,
                "onset_s": i0 / sr,
                "offset_s": (i0 + len(x)) / sr,
                "low_hz": round(low, 1),
                "high_hz": round(high, 1),
                "call_type": s.spec.call_type,
                "level_db": round(level_db, 2),
                "snr_db": round(snr, 2),
                "distance_m": round(distance, 1),
            }
        )
    np.clip(audio, -1.0, 1.0, out=audio)
    info["noise_db"] = round(10.0 * math.log10(max(noise_power, 1e-20)), 2)
    info["n_calls"] = len(events)
    return audio, events, info


def write_audio(audio: np.ndarray, path: Path, sr: int, fmt: str) -> None:
    """Write a recording atomically: FLAC 16 bit, or MP3 (VBR) through libsndfile/LAME."""
    with atomic_path(path, STAGE) as tmp:
        if fmt == "mp3":
            sf.write(tmp, audio, sr, format="MP3", bitrate_mode="VARIABLE", compression_level=0.5)
        else:
            sf.write(tmp, audio, sr, format="FLAC", subtype="PCM_16")


def make_recording(ctx: Context, rec: Recording) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Synthesise and write one recording; returns its events and its recordings.csv row."""
    audio, events, info = synthesise(ctx, rec)
    write_audio(audio, ctx.out_dir / rec.rel_path, int(ctx.params["sample_rate"]), rec.fmt)
    row = {
        "rel_path": rec.rel_path,
        "device_id": rec.device_id,
        "site": rec.site.name,
        "start_time": iso_utc(rec.start),
        "duration_s": rec.duration_s,
        "format": rec.fmt,
        "sample_rate": int(ctx.params["sample_rate"]),
        "country": rec.site.country,
        "habitat": rec.site.habitat,
        **info,
    }
    return events, row
