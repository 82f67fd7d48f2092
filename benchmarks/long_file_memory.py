"""Peak memory of the stages on long recordings: bounded, whatever the file's length.

Writes one long mono FLAC per requested length (48 kHz by default; quiet noise with a short
call every 10 s, generated and encoded block by block, so the generator itself never holds
the recording), then runs each stage on it in a fresh subprocess and reads that child's peak
resident memory from ``os.wait4`` (``ru_maxrss``):

* ``inventory``: ``activepam inventory FILE --out DIR`` (header probe, tail check);
* ``detect``: ``activepam detect FILE --out DIR`` (stream, resample, window, BirdNET, parts);
* ``indices``: :func:`activepam.detection.indices.compute_indices` (whole-recording indices, which
the
  stage computes over windows of at most ``MAX_WINDOW_S``).

Prints ONE JSON document: per stage and length the audio hours, wall seconds, speed (x real
time) and peak RSS in MB, plus ``rss_growth`` = peak RSS on the longest file / on the shortest
(about 1.0 when memory is bounded; proportional to the length ratio when a file sits in memory
whole). A 24 h file at 48 kHz (4.1e9 samples, 16.6 GB as float32) would not fit in memory, so
``--hours 1 24`` is the decisive run (on 2 cores detection runs at ~29x and indices at ~20x
real time, so 24 h takes ~50 + ~75 min). Measured 0.5 h vs 2 h on 2 cores (2026-11-22):
peak RSS inventory 200 MB, detect 1126 MB, indices 1255 MB for both lengths (growth 1.0).

    .venv/bin/python benchmarks/long_file_memory.py                  # 0.25 h vs 1 h, ~7 min
    .venv/bin/python benchmarks/long_file_memory.py --hours 1 24     # the full claim
    .venv/bin/python benchmarks/long_file_memory.py --stages inventory indices --hours 1 24
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

STAGES = ("inventory", "detect", "indices")


def write_long_flac(
    path: Path, hours: float, sr: int = 48_000, block_s: float = 60.0, seed: int = 0
) -> float:
    """Write ``hours`` of mono 16-bit FLAC block by block; returns the duration in seconds."""
    rng = np.random.default_rng(seed)
    total = int(round(hours * 3600 * sr))
    block = int(block_s * sr)
    t = np.arange(int(0.5 * sr)) / sr
    call = (0.3 * np.sin(2 * np.pi * (3000 + 1500 * t) * t) * np.hanning(t.size)).astype(np.float32)
    period = 10 * sr  # one 0.5 s chirp every 10 s
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        written = 0
        while written < total:
            n = min(block, total - written)
            x = (0.002 * rng.standard_normal(n)).astype(np.float32)
            for s in range((-written) % period, n, period):
                m = min(call.size, n - s)
                x[s : s + m] += call[:m]
            f.write(x)
            written += n
    return total / sr


def run_measured(cmd: list[str], log_path: Path) -> tuple[float, float, int]:
    """Run ``cmd``; return (wall seconds, the child's peak RSS in MB, exit status)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return wall, rss_mb, proc.returncode


def stage_command(stage: str, audio: Path, out: Path, threads: int) -> list[str]:
    py = sys.executable
    if stage == "inventory":
        return [py, "-m", "activepam", "inventory", str(audio), "--out", str(out)]
    if stage == "detect":
        return [
            py,
            "-m",
            "activepam",
            "detect",
            str(audio),
            "--out",
            str(out),
            "--threads",
            str(threads),
            "--no-progress",
        ]
    if stage == "indices":
        code = (
            "import sys; from activepam.detection.indices import compute_indices; "
            "df = compute_indices(sys.argv[1]); print(len(df), 'rows')"
        )
        return [py, "-c", code, str(audio)]
    raise ValueError(f"unknown stage {stage!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hours",
        type=float,
        nargs="+",
        default=[0.25, 1.0],
        help="recording lengths in hours to compare (default: 0.25 1)",
    )
    parser.add_argument("--sample-rate", type=int, default=48_000)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--threads", type=int, default=2, help="detection threads")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the long files go (default: a temporary folder, removed)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="activepam-longfile-"))
    results = []
    try:
        for hours in sorted(args.hours):
            audio = work / f"long_{hours:g}h.flac"
            t0 = time.perf_counter()
            duration = write_long_flac(audio, hours, args.sample_rate)
            gen_s = time.perf_counter() - t0
            print(
                f"wrote {audio} ({duration / 3600:g} h, {audio.stat().st_size / 1e6:.0f} MB) "
                f"in {gen_s:.0f} s",
                file=sys.stderr,
            )
            for stage in args.stages:
                out = work / f"out_{stage}_{hours:g}h"
                shutil.rmtree(out, ignore_errors=True)
                log_path = work / f"{stage}_{hours:g}h.log"
                wall, rss, rc = run_measured(
                    stage_command(stage, audio, out, args.threads), log_path
                )
                row = {
                    "stage": stage,
                    "audio_hours": round(duration / 3600, 3),
                    "sample_rate": args.sample_rate,
                    "wall_s": round(wall, 1),
                    "x_realtime": round(duration / wall, 1) if wall else None,
                    "peak_rss_mb": round(rss, 1),
                    "exit_code": rc,
                }
                print(json.dumps(row), file=sys.stderr)
                if rc != 0:
                    row["log_tail"] = log_path.read_text()[-1500:]
                results.append(row)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    growth = {}
    for stage in args.stages:
        rows = [r for r in results if r["stage"] == stage and r["exit_code"] == 0]
        if len(rows) >= 2:
            growth[stage] = round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2)
    hours = sorted(args.hours)
    doc = {
        "benchmark": "long_file_memory",
        "hours": hours,
        "length_ratio": round(hours[-1] / hours[0], 2) if len(hours) > 1 else 1.0,
        "rss_growth": growth,
        "runs": results,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
