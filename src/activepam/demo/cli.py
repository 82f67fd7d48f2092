"""``activepam generate``: argument parsing, then one call of
:func:`activepam.demo.generate.generate_demo` (the generator is imported by the handler)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from activepam.core.config import ConfigError, load_params
    from activepam.demo.generate import generate_demo
    from activepam.demo.params import demo_params

    try:
        if args.params is not None:
            demo = load_params(args.params)["demo"]
        elif Path("params.yaml").is_file():
            demo = load_params("params.yaml")["demo"]
        else:
            demo = {}
        p = demo_params(
            demo,
            n_sites=args.n_sites,
            duration_s=args.duration_s,
            recordings_per_day=args.recordings_per_day,
            n_species=args.n_species,
            turnover=args.turnover,
        )
        summary = generate_demo(
            args.out, p, seed=args.seed, n_jobs=args.threads, progress=not args.quiet
        )
    except (ConfigError, FileExistsError) as exc:
        print(f"activepam generate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam generate``."""
    sp = subparsers.add_parser(
        "generate",
        help="write the seeded demo soundscape dataset",
        description="Write the seeded demo dataset (audio in the TABMON layout, sites.csv, "
        "recordings.csv, species.csv, events.parquet, ground_truth.parquet).",
    )
    sp.add_argument("--out", required=True, type=Path, help="output folder (empty or a demo)")
    sp.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params.yaml to read the demo: section from (default ./params.yaml "
        "when present, else built-in defaults)",
    )
    sp.add_argument("--seed", type=int, default=None, help="random seed (default demo.seed)")
    sp.add_argument("--n-sites", type=int, default=None, help="override demo.n_sites")
    sp.add_argument("--duration-s", type=float, default=None, help="override demo.duration_s")
    sp.add_argument(
        "--recordings-per-day", type=int, default=None, help="override demo.recordings_per_day"
    )
    sp.add_argument("--n-species", type=int, default=None, help="override demo.n_species")
    sp.add_argument("--turnover", type=float, default=None, help="override demo.turnover")
    sp.add_argument(
        "--threads",
        type=int,
        default=max(1, min(2, os.cpu_count() or 1)),
        help="recordings synthesised and encoded in parallel",
    )
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cli)
