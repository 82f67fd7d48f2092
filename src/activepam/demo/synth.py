"""Sound synthesis of the demo: parametric call templates (:func:`synth_call`) and the
background noise by habitat and weather (wind, rain, insects, pink noise)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from scipy.signal import butter, lfilter, sosfilt

from activepam.demo.catalogue import DEFAULT_NOISE, HABITAT_NOISE, NoiseProfile, Site
from activepam.demo.layout import bump, sigmoid, solar_state
from activepam.demo.params import child_rng


def _fade(n: int, k: int) -> np.ndarray:
    """Envelope of ``n`` samples with raised-cosine ramps of ``k`` samples at both ends."""
    env = np.ones(n, dtype=np.float64)
    k = min(k, n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        env[:k] = ramp
        env[n - k :] = ramp[::-1]
    return env


def _tone(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Sine following an instantaneous-frequency track (Hz per sample)."""
    return np.sin(phase0 + 2.0 * np.pi * np.cumsum(freq) / sr)


def _sweep(f0: float, f1: float, dur: float, sr: int, curve: float = 1.0) -> np.ndarray:
    n = max(2, int(dur * sr))
    u = np.linspace(0.0, 1.0, n) ** curve
    return _tone(f0 * (f1 / f0) ** u, sr)


def synth_call(
    call_type: str,
    shape: Mapping[str, float],
    rng: np.random.Generator,
    sr: int,
    jitter: bool = True,
) -> tuple[np.ndarray, float, float]:
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
        fc_track = s["fc"] * fs * (1.0 + s["drift"] * t / total)
        freq = fc_track * (1.0 + s["bw"] / 2 - s["bw"] * np.minimum(tau / note, 1.0))
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
        f0_track = s["f0"] * fs * (1.0 + s["arch"] * np.sin(np.pi * u))
        phase = 2.0 * np.pi * np.cumsum(f0_track) / sr
        k = np.arange(1, n_h + 1)[:, None]
        amp = (k ** -s["tilt"]) * (k * f0_track.max() < nyq)
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
        x = np.concatenate(
            [one if i == 0 else np.concatenate([pause, one]) for i in range(n_chirps)]
        )
        low, high = fl, fh
    elif call_type == "whistle":
        note, gap = s["note"] * ts, s["gap"] * ts
        nn = max(2, int(note * sr))
        t = np.arange(nn) / sr
        vib = 1.0 + s["vib_depth"] * np.sin(2 * np.pi * s["vib_rate"] * t)
        f1, f2 = min(s["f1"] * fs, nyq), min(s["f2"] * fs, nyq)
        fade = _fade(nn, int(0.15 * nn))
        x = np.concatenate(
            [_tone(f1 * vib, sr) * fade, np.zeros(int(gap * sr)), _tone(f2 * vib, sr) * fade]
        )
        low = min(f1, f2) * (1 - s["vib_depth"])
        high = max(f1, f2) * (1 + s["vib_depth"])
    else:
        raise ValueError(f"unknown call type {call_type!r}")
    peak = float(np.max(np.abs(x))) or 1.0
    return (x / peak).astype(np.float32), float(low), float(high)


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


def wind_noise(
    rng: np.random.Generator,
    n: int,
    sr: int,
    cutoff_hz: float,
    level_db: float,
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


def rain_noise(
    rng: np.random.Generator,
    n: int,
    sr: int,
    drops_per_s: float,
    level_db: float,
) -> np.ndarray:
    """Broadband impulsive drops: a sparse impulse train through a decaying high-pass."""
    n_drops = rng.poisson(drops_per_s * n / sr)
    imp = np.zeros(n, dtype=np.float32)
    pos = rng.integers(0, n, n_drops)
    np.add.at(
        imp,
        pos,
        rng.lognormal(0.0, 0.8, n_drops).astype(np.float32)
        * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n_drops),
    )
    x = lfilter(
        np.array([1.0, -1.0], dtype=np.float32), np.array([1.0, -0.85], dtype=np.float32), imp
    )
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


def background(
    rng: np.random.Generator, n: int, sr: int, site: Site, t: dt.datetime, weather: Weather
) -> tuple[np.ndarray, dict[str, Any]]:
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
    activity = bump(t.timetuple().tm_yday, 200.0, 40.0) * (0.25 + 0.75 * sigmoid(-elev / 3.0))
    insects_db = prof.insects_db + 20.0 * math.log10(max(activity, 1e-6)) + rng.normal(0.0, 2.0)
    if insects_db > -70.0:
        x += insect_noise(rng, n, sr, insects_db)
    info = {
        "rain": bool(rain),
        "wind_db": round(wind_db, 2),
        "insects_db": round(insects_db, 2) if insects_db > -70.0 else float("nan"),
    }
    return x, info


def band_share(noise: np.ndarray, sr: int, nfft: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(bin frequencies, cumulative share of noise power) from every 8th frame of ``noise``."""
    n_frames = len(noise) // nfft
    if n_frames == 0:
        noise = np.pad(noise, (0, nfft - len(noise)))
        n_frames = 1
    frames = noise[: n_frames * nfft].reshape(n_frames, nfft)[::8]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=1)) ** 2, axis=0)
    return np.fft.rfftfreq(nfft, 1.0 / sr), np.cumsum(power) / max(power.sum(), 1e-30)
