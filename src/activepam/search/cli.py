"""``activepam search``: argument parsing only; the work is
:func:`activepam.search.engine.search_command`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="find the segments nearest to examples (query by example, cosine on embeddings)",
    )
    p.add_argument(
        "--example",
        nargs="+",
        default=[],
        metavar="CLIP.wav|SEGMENT_ID",
        help="audio files or segment ids of the store",
    )
    p.add_argument(
        "--store",
        default="results/detect",
        help="detection folder or embeddings.parquet (default: results/detect)",
    )
    p.add_argument("--k", type=int, default=50, help="number of hits (default 50)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="COLUMN=VALUE[,VALUE]",
        help="keep segments whose segments.parquet column matches (repeatable)",
    )
    p.add_argument(
        "--exact", action="store_true", help="streamed exact scan, even when indexes exist"
    )
    p.add_argument(
        "--build-index",
        action="store_true",
        help="build / update the usearch index of every embeddings file first",
    )
    p.add_argument("--out", help="write the hits to this CSV (default: print them)")
    p.add_argument(
        "--figure",
        help="PNG of the examples' and the first hits' spectrograms "
        "(needs segments.parquet beside the embeddings)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from activepam.search.engine import search_command

    return search_command(
        args.store,
        args.example,
        k=args.k,
        filters=args.filter,
        exact=args.exact,
        build_index=args.build_index,
        out=args.out,
        figure=args.figure,
    )
