"""Throughput of ``activepam detect`` against bare BirdNET inference, in one run.

Builds (unless ``--audio`` is given) 10 x 60 s of deterministic 44.1 kHz MP3 (noise + tones),
runs the detection code path (:func:`activepam.detect.detect_files`: probe, decode, resample,
window, model, uncertainty, top-k, part files, gather) and the bare model (same loaded
interpreter, same threads and batch size, random input, same number of windows), the latter
timed before and after the pipeline and averaged.

Prints ONE JSON line. ``rtf_*`` are speeds: seconds of audio per wall-clock second (x real
time); ``ratio = rtf_detect / rtf_model`` (target >= 0.8: the pipeline keeps the model busy).

    .venv/bin/python benchmarks/detect_throughput.py [--audio DIR_OR_FILES...] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from activepam import birdnet as bn
from activepam.detect import detect_files, find_audio, window_starts


def make_audio(folder: Path, n_files: int = 10, seconds: float = 60.0, sr: int = 44_100,
               seed: int = 0) -> list[str]:
    """Deterministic MP3 files: pink-ish noise plus a few chirping tones."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n_files):
        noise = np.cumsum(rng.normal(0, 1, t.size)).astype(np.float32)
        noise = np.diff(noise, prepend=0.0) * 0.02 + 0.002 * noise / (np.abs(noise).max() + 1e-9)
        f0 = 2000 + 400 * i
        tone = 0.1 * np.sin(2 * np.pi * (f0 + 800 * np.sin(2 * np.pi * 0.5 * t)) * t)
        gate = (np.sin(2 * np.pi * 0.25 * t + i) > 0.3).astype(np.float32)
        x = (noise + tone * gate).astype(np.float32)
        path = folder / f"bench_{i:02d}.mp3"
        sf.write(path, x / max(1.0, float(np.abs(x).max())), sr, format="MP3")
        paths.append(str(path))
    return paths


def bare_model(model: bn.BirdNET, n_windows: int, seed: int = 1) -> float:
    """Wall seconds for ``n_windows`` random windows through ``model`` (batched as in detect)."""
    rng = np.random.default_rng(seed)
    batch = rng.normal(0, 0.05, (model.batch_size, bn.WINDOW_SAMPLES)).astype(np.float32)
    model.predict(batch[:model.batch_size])  # warm-up
    t0 = time.perf_counter()
    left = n_windows
    while left > 0:
        n = min(left, model.batch_size)
        model.predict(batch[:n])
        left -= n
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", nargs="+", help="audio files or folders (default: generated MP3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="activepam-bench-") as tmp:
        tmp_path = Path(tmp)
        if args.audio:
            files, missing = find_audio(args.audio)
            if missing or not files:
                print(f"no audio found in {args.audio}", file=sys.stderr)
                return 1
        else:
            gen = tmp_path / "audio"
            gen.mkdir()
            files = make_audio(gen)
        audio_s = float(sum(sf.info(f).duration for f in files))
        model = bn.BirdNET(threads=args.threads, batch_size=args.batch_size)
        model.predict(np.zeros((model.batch_size, bn.WINDOW_SAMPLES), np.float32))  # warm-up

        n_windows = int(sum(window_starts(round(sf.info(f).duration * bn.SAMPLE_RATE),
                                          int(bn.WINDOW_SAMPLES)).size for f in files))
        # bare model before AND after the pipeline (mean), so load drift on a shared machine
        # hits both sides alike
        before = bare_model(model, n_windows)
        t0 = time.perf_counter()
        summary = detect_files(files, tmp_path / "out", threads=args.threads,
                               batch_size=args.batch_size, progress=False, model=model)
        wall_detect = time.perf_counter() - t0
        wall_model = (before + bare_model(model, n_windows)) / 2
        if int(summary["n_segments"]) != n_windows:
            print(f"warning: {summary['n_segments']} segments, expected {n_windows}",
                  file=sys.stderr)

    result = {
        "audio_s": round(audio_s, 1),
        "n_files": len(files),
        "n_windows": n_windows,
        "wall_s": round(wall_detect, 2),
        "wall_model_s": round(wall_model, 2),
        "rtf_detect": round(audio_s / wall_detect, 2),
        "rtf_model": round(audio_s / wall_model, 2),
        "ratio": round(wall_model / wall_detect, 3),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
