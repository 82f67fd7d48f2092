"""``activepam inventory`` and ``activepam detect``: argument parsing only; each handler ends in
one call of the stage's typed entry point (:func:`activepam.detection.inventory.run_inventory`,
:func:`activepam.detection.detect.detect_files`).

Start-up stays lean (``activepam detect`` runs once per cluster job): only argparse and the
BirdNET constants are imported here; the stage modules are imported by the handlers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from activepam.core.argtypes import float_range, int_range, non_negative_float, positive_int
from activepam.detection import birdnet as bn

#: file name endings scanned by default (activepam.core.io.AUDIO_EXTENSIONS)
DEFAULT_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam inventory`` and ``activepam detect``."""
    register_inventory(subparsers)
    register_detect(subparsers)


# --------------------------------------------------------------------------- inventory


def register_inventory(subparsers: argparse._SubParsersAction) -> None:
    """``activepam inventory PATH... --sites SITES.csv --out DIR``."""
    p = subparsers.add_parser(
        "inventory",
        help="list recordings, probe headers, quarantine bad files",
        description="Recording inventory: one row per audio file, with its deployment metadata.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders (recursive) or audio files")
    p.add_argument(
        "--sites",
        metavar="SITES.csv",
        default=None,
        help="device deployments (device_id,site,...,deployment_start,deployment_end)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="writes DIR/inventory.parquet and DIR/quarantine.csv",
    )
    p.add_argument(
        "--extensions",
        nargs="+",
        default=list(DEFAULT_EXTENSIONS),
        help="file name endings scanned (default: %(default)s)",
    )
    p.add_argument(
        "--min-duration",
        type=non_negative_float,
        default=1.0,
        help="quarantine recordings shorter than this, seconds (default: %(default)s)",
    )
    p.add_argument("--shard-size", type=positive_int, default=64, help="recordings per shard")
    p.add_argument(
        "--timezone",
        default="UTC",
        help="time zone of prefix_YYYYMMDD_HHMMSS names (default: %(default)s)",
    )
    p.add_argument("--threads", type=positive_int, default=4, help="header-reading threads")
    p.set_defaults(func=_inventory)


def _inventory(args: argparse.Namespace) -> int:
    from activepam.detection.inventory import run_inventory
    from activepam.detection.sites import SitesError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out = Path(args.out)
    try:
        result = run_inventory(
            args.paths,
            args.sites,
            out / "inventory.parquet",
            out / "quarantine.csv",
            extensions=args.extensions,
            min_duration_s=args.min_duration,
            shard_size=args.shard_size,
            threads=args.threads,
            tz=args.timezone,
        )
    except (SitesError, FileNotFoundError, ValueError) as exc:
        print(f"activepam inventory: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(result.inventory)} recordings -> {out / 'inventory.parquet'}; "
        f"{len(result.quarantine)} quarantined -> {out / 'quarantine.csv'}"
    )
    return 0


# --------------------------------------------------------------------------- detect


def register_detect(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam detect``."""
    p = subparsers.add_parser(
        "detect",
        help="run BirdNET V2.4 on audio files (segments, top-k, embeddings)",
        description="Run BirdNET V2.4 on audio files or folders (scanned recursively for "
        ".wav .flac .mp3 .ogg). Writes segments.parquet, predictions.parquet, "
        "embeddings.parquet and quarantine.csv into --out; finished recordings "
        "are cached in --out/parts and skipped when the command is re-run.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--threads", type=positive_int, default=2, help="interpreter threads (default 2)"
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="windows per model call")
    p.add_argument(
        "--overlap",
        type=float_range(0.0, bn.WINDOW_S - 0.1),
        default=0.0,
        metavar="S",
        help="overlap of consecutive 3 s windows in seconds (default 0)",
    )
    p.add_argument(
        "--sensitivity",
        type=float_range(0.5, 1.5),
        default=1.0,
        help="BirdNET sensitivity 0.5-1.5 (higher = more detections)",
    )
    p.add_argument(
        "--top-k",
        type=int_range(1, bn.N_SPECIES),
        default=10,
        help="species kept per segment (default 10)",
    )
    p.add_argument("--species-list", metavar="FILE", help="only score these BirdNET labels")
    p.add_argument(
        "--lat", type=float_range(-90.0, 90.0), help="latitude for the location species filter"
    )
    p.add_argument(
        "--lon", type=float_range(-180.0, 180.0), help="longitude for the location species filter"
    )
    p.add_argument(
        "--week",
        type=int_range(1, 48, also=(-1,)),
        default=-1,
        help="week 1-48 for the location filter (-1 = all year, default)",
    )
    p.add_argument(
        "--location-threshold",
        type=float_range(0.0, 1.0),
        default=0.03,
        help="meta-model occurrence threshold (default 0.03)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_detect)


def _detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from activepam.detection.detect import detect_files
    from activepam.detection.inputs import find_audio
    from activepam.detection.params import SpeciesFilter
    from activepam.detection.tables import DetectError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def say(path: str, reason: str) -> None:
        tqdm.write(f"quarantined: {path}: {reason}", file=sys.stderr)

    try:
        if args.species_list and (args.lat is not None or args.lon is not None):
            raise DetectError("use --species-list or --lat/--lon, not both")
        if args.species_list:
            sfilter = SpeciesFilter("list", species_list=args.species_list)
            sfilter.indices()  # validate the file before any work
        elif args.lat is not None or args.lon is not None:
            sfilter = SpeciesFilter(
                "location",
                lat=args.lat,
                lon=args.lon,
                week=args.week,
                threshold=args.location_threshold,
            )
            sfilter.indices()
        else:
            sfilter = SpeciesFilter()
        files, missing = find_audio(args.paths)
        for q in missing:
            say(q["path"], q["reason"])
        if not files:
            print("activepam detect: no audio files (.wav .flac .mp3 .ogg) found", file=sys.stderr)
            return 1
        summary = detect_files(
            files,
            args.out,
            threads=args.threads,
            batch_size=args.batch_size,
            overlap_s=args.overlap,
            sensitivity=args.sensitivity,
            top_k=args.top_k,
            species_filter=sfilter,
            progress=not args.no_progress,
            quarantine=missing,
            on_quarantine=say,
        )
    except (DetectError, bn.BirdNETError, ValueError) as exc:
        print(f"activepam detect: {exc}", file=sys.stderr)
        return 2
    print(
        f"activepam detect: {summary['n_finished']} recordings, {summary['n_segments']} "
        f"segments, {summary['n_quarantined']} quarantined -> {args.out}",
        file=sys.stderr,
    )
    return 0 if summary["n_finished"] > 0 else 1
