"""``activepam review ROUND_DIR [--annotator NAME] [--port P] [--host H --token T]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activepam.core.labels import label_set_path
from activepam.rounds.export import ExportOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam review``."""
    p = subparsers.add_parser(
        "review",
        help="label an exported round in the browser (local page, answers saved "
        "to an append-only journal per annotator)",
        description="Serve a local listen-and-label page over ROUND_DIR "
        "(results/rounds/round_RR or its annotation/ folder). Answers are appended to "
        "annotation/journal/<annotator>.journal.csv at once; import them with "
        "`activepam labels import <round>/annotation/journal --round RR`.",
    )
    p.add_argument("round_dir", metavar="ROUND_DIR")
    p.add_argument(
        "--annotator", default="", help="your name (names the journal; default: asked by the page)"
    )
    p.add_argument(
        "--port", type=int, default=8765, help="port (0 = any free port; default: %(default)s)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: "
        "%(default)s, this computer only); any other address needs --token",
    )
    p.add_argument(
        "--token",
        default="",
        help="secret every request must carry (required "
        "with a non-loopback --host; open the printed URL once, it sets a cookie)",
    )
    p.add_argument("--label-set", help="species label set (default: params rounds.label_set)")
    p.add_argument("--params", default="params.yaml", help="parameter file (default: %(default)s)")
    p.set_defaults(func=_cli_review)


def _cli_review(args: argparse.Namespace) -> int:
    from activepam.core.config import params_or_empty
    from activepam.review.journal import JournalError
    from activepam.review.server import Round, serve

    try:
        params = params_or_empty(args.params)
        rounds = params.get("rounds") or {}
        options = ExportOptions(
            prefill_top=int(rounds.get("prefill_top", ExportOptions.prefill_top)),
            prefill_min_confidence=float(
                rounds.get("prefill_min_confidence", ExportOptions.prefill_min_confidence)
            ),
        )
        label_set = Path(args.label_set) if args.label_set else label_set_path(params)
        rnd = Round.open(args.round_dir, label_set, options)
        return serve(
            rnd, host=args.host, port=args.port, annotator=args.annotator, token=args.token
        )
    except (FileNotFoundError, ValueError, JournalError) as exc:
        print(f"activepam review: {exc}", file=sys.stderr)
        return 2
