"""``activepam datasets import wabad|anuraset|baseal PATH --out DIR``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="import published labelled datasets (WABAD, AnuraSet, BaseAL) as custom "
        "simulation tables",
    )
    sub = p.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    imp = sub.add_parser(
        "import",
        help="convert an external dataset layout into embeddings/labels/metadata Parquet files",
    )
    kinds = imp.add_subparsers(dest="kind", metavar="DATASET")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("path", metavar="PATH", help="the dataset's folder as downloaded")
        q.add_argument("--out", required=True, metavar="DIR", help="output folder")
        q.set_defaults(func=_cli)

    w = kinds.add_parser("wabad", help="WABAD data_files (pickles, restricted loader)")
    common(w)
    w.add_argument(
        "--species",
        choices=("preprint", "derived"),
        default="preprint",
        help="preprint = the preprint's 106 species (default); derived = species "
        "present in train and test, Curruca cantillans removed",
    )
    w.add_argument(
        "--file-duration-s",
        type=float,
        default=60.0,
        help="duration of a file when samples_df rows are whole files (default 60)",
    )
    w.add_argument(
        "--window-s",
        type=float,
        default=3.0,
        help="window length when a file has several rows without Start/End columns (default 3)",
    )
    w.add_argument(
        "--hop-s",
        type=float,
        default=None,
        help="window hop in that case (default: the window length)",
    )
    w.add_argument(
        "--utc-offset-h",
        type=float,
        default=0.0,
        help="the file names' clock is UTC + this many hours (default 0)",
    )
    a = kinds.add_parser(
        "anuraset", help="AnuraSet train/test folders (torch files read without torch)"
    )
    common(a)
    a.add_argument("--window-s", type=float, default=3.0, help="window length (default 3)")
    a.add_argument(
        "--hop-s",
        type=float,
        default=1.0,
        help="window hop when data.csv has no min_t/max_t (default 1)",
    )
    a.add_argument(
        "--recording-duration-s",
        type=float,
        default=None,
        help="recording duration (default: the end of its last window)",
    )
    a.add_argument(
        "--species-file",
        default=None,
        help="species names, one per line, in the labels' column order",
    )
    a.add_argument(
        "--utc-offset-h",
        type=float,
        default=0.0,
        help="the file names' clock is UTC + this many hours (default 0)",
    )
    b = kinds.add_parser("baseal", help="BaseAL / BioDCASE 2026 task 4 folder")
    common(b)
    b.add_argument(
        "--model", default=None, help="embeddings/<model> subfolder (default: the only one)"
    )
    b.add_argument(
        "--segment-s",
        type=float,
        default=3.0,
        help="segment length when metadata.csv has no span (default 3)",
    )
    for q in (p, imp):
        q.set_defaults(func=lambda args, q=q: _help(q))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _cli(args: argparse.Namespace) -> int:
    from activepam.datasets import DatasetError
    from activepam.datasets.safe_pickle import UnsafePickleError
    from activepam.datasets.torch_files import TorchFileError

    try:
        if args.kind == "wabad":
            from activepam.datasets.wabad import import_wabad

            res = import_wabad(
                args.path,
                args.out,
                species=args.species,
                file_duration_s=args.file_duration_s,
                utc_offset_h=args.utc_offset_h,
                window_s=args.window_s,
                hop_s=args.hop_s,
            )
        elif args.kind == "anuraset":
            from activepam.datasets.anuraset import import_anuraset

            res = import_anuraset(
                args.path,
                args.out,
                window_s=args.window_s,
                hop_s=args.hop_s,
                recording_duration_s=args.recording_duration_s,
                species_file=args.species_file,
                utc_offset_h=args.utc_offset_h,
            )
        else:
            from activepam.datasets.baseal import import_baseal

            res = import_baseal(args.path, args.out, model=args.model, segment_s=args.segment_s)
    except (DatasetError, UnsafePickleError, TorchFileError) as exc:
        print(f"activepam datasets import {args.kind}: {exc}", file=sys.stderr)
        return 2
    print(res.summary())
    print("simulation:\n  dataset: custom")
    for key in ("embeddings", "labels", "metadata"):
        print(f"  {key}: {res.files[key]}")
    return 0
