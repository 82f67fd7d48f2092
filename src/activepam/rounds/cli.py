"""``activepam labels import|import-birdnet-review|history|restore`` and ``activepam export``.

Argument parsing only: each handler resolves its defaults (params.yaml ``rounds.*``) and ends
in one call of :mod:`activepam.rounds.history` (import, history, restore),
:mod:`activepam.rounds.birdnet_review` or :mod:`activepam.rounds.export`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from activepam.core.config import params_or_empty
from activepam.core.labels import LabelImportError, label_set_path, round_name
from activepam.rounds.birdnet_review import run_import_birdnet
from activepam.rounds.export import ExportError, ExportOptions, run_export
from activepam.rounds.history import (
    format_history,
    history_dir,
    read_history,
    restore_labels,
    run_import,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam labels import|import-birdnet-review|history|restore`` and
    ``activepam export``."""
    p = subparsers.add_parser("labels", help="import completed annotations as a round's labels")
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION")

    def common(sp: argparse.ArgumentParser, manifest: bool = True) -> None:
        sp.add_argument(
            "--round",
            required=True,
            dest="round_id",
            help="round number (0, 1, ...) or 'test' for the held-out test set",
        )
        if manifest:
            sp.add_argument(
                "--manifest",
                help="the round's manifest.csv (default: "
                "results/rounds/<round>/annotation/manifest.csv)",
            )
            sp.add_argument(
                "--label-set", help="species label set (default: params rounds.label_set)"
            )
            sp.add_argument("--annotator", help="annotator name for rows that give none")
            sp.add_argument(
                "--force",
                action="store_true",
                help="replace the answers of (unit, annotator) pairs answered "
                "differently before (only those pairs; the history keeps them)",
            )
        sp.add_argument("--out", help="round label file (default: <rounds.labels_dir>/<round>.csv)")
        sp.add_argument(
            "--params", default="params.yaml", help="parameter file (default: %(default)s)"
        )

    imp = sub.add_parser(
        "import",
        help="validate Raven tables / CSVs / review journals -> "
        "merge into data/labels/round_RR.csv",
    )
    imp.add_argument(
        "sources",
        nargs="+",
        metavar="FILES_OR_DIR",
        help="completed Raven selection tables (*.txt), label CSVs and/or review "
        "journals (*.journal.csv), or folders",
    )
    common(imp)
    imp.add_argument(
        "--skip-unanswered",
        action="store_true",
        help="leave out units with unanswered rows (blank/'?' Present) instead of "
        "failing; each is reported as file:line",
    )
    imp.set_defaults(func=_cli_import)

    bn = sub.add_parser(
        "import-birdnet-review",
        help="import BirdNET-Analyzer review output (clips in Positive/ and Negative/ folders)",
    )
    bn.add_argument(
        "folder",
        help="folder holding Positive/ and Negative/ (or one folder per species holding them)",
    )
    common(bn)
    which = bn.add_mutually_exclusive_group(required=True)
    which.add_argument("--species", help="the species every clip was reviewed for")
    which.add_argument(
        "--species-from-folder",
        action="store_true",
        help="the species is the name of the folder holding Positive/Negative",
    )
    bn.add_argument(
        "--closed-world",
        action="store_true",
        help="the reviewer vouches no other label-set species is audible (default: "
        "other species of a reviewed clip are recorded as unsure)",
    )
    bn.set_defaults(func=_cli_birdnet)

    hist = sub.add_parser("history", help="list the imports of a round (its history)")
    common(hist, manifest=False)
    hist.set_defaults(func=_cli_history)

    res = sub.add_parser("restore", help="rebuild a round's label file as of history entry N")
    common(res, manifest=False)
    res.add_argument("--to", required=True, type=int, metavar="N", help="history entry")
    res.set_defaults(func=_cli_restore)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    ex = subparsers.add_parser(
        "export",
        help="export an annotation set (clips, spectrograms, "
        "Raven tables, manifest) from a sample table",
    )
    ex.add_argument(
        "sample", help="sample table (Parquet/CSV) from activepam.sampling.engine.sample"
    )
    ex.add_argument("--round", required=True, dest="round_id", help="round number")
    ex.add_argument("--predictions", required=True, help="top-k predictions.parquet of the model")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--context-s", type=float, default=4.0, help="context each side (s)")
    ex.add_argument("--annotators", default="", help="comma-separated annotator names")
    ex.add_argument("--batch-by", default="round_robin", choices=["round_robin", "stratum"])
    ex.add_argument(
        "--label-set",
        help="pre-fill only these species (CSV 'species' column or "
        "one label per line); default: every predicted species",
    )
    ex.add_argument("--no-spectrograms", action="store_true")
    ex.set_defaults(func=_cli_export)


def _round_paths(args: argparse.Namespace) -> tuple[dict[str, Any], str, Path, Path]:
    """``(params, round name, labels_dir, round file)`` of a ``labels`` command."""
    params = params_or_empty(args.params)
    name = round_name(args.round_id)
    rounds = params.get("rounds") or {}
    out = (
        Path(args.out)
        if args.out
        else Path(rounds.get("labels_dir", "data/labels")) / f"{name}.csv"
    )
    labels_dir = Path(rounds.get("labels_dir", "data/labels")) if not args.out else out.parent
    return params, name, labels_dir, out


def _round_inputs(args: argparse.Namespace) -> tuple[str | Path, str | Path, Path, Path]:
    """``(manifest, label set, labels_dir, round file)`` of ``labels import[-birdnet-review]``:
    ``--manifest`` else ``results/rounds/<round>/annotation/manifest.csv``, ``--label-set``
    else params ``rounds.label_set``."""
    params, name, labels_dir, out = _round_paths(args)
    manifest = args.manifest or f"results/rounds/{name}/annotation/manifest.csv"
    label_set = args.label_set or label_set_path(params)
    return manifest, label_set, labels_dir, out


_CLI_ERRORS = (LabelImportError, FileExistsError, FileNotFoundError, ValueError, OSError)


def _cli_message(exc: BaseException) -> str:
    """An error for the terminal: a :class:`LabelImportError` with every problem listed."""
    return exc.full() if isinstance(exc, LabelImportError) else str(exc)


def _cli_import(args: argparse.Namespace) -> int:
    try:
        manifest, label_set, labels_dir, out = _round_inputs(args)
        run_import(
            args.sources,
            args.round_id,
            manifest,
            label_set,
            out,
            labels_dir,
            force=args.force,
            annotator=args.annotator,
            skip_unanswered=args.skip_unanswered,
        )
    except _CLI_ERRORS as exc:
        print(f"activepam labels import: {_cli_message(exc)}", file=sys.stderr)
        return 1
    print(
        "activepam labels: next: `dvc repro round@RR` (or snakemake) to retrain; commit with "
        "git + `dvc push`",
        file=sys.stderr,
    )
    return 0


def _cli_birdnet(args: argparse.Namespace) -> int:
    try:
        manifest, label_set, labels_dir, out = _round_inputs(args)
        run_import_birdnet(
            args.folder,
            args.round_id,
            manifest,
            label_set,
            out,
            labels_dir,
            species=args.species,
            species_from_folder=args.species_from_folder,
            annotator=args.annotator,
            closed_world=args.closed_world,
            force=args.force,
        )
    except _CLI_ERRORS as exc:
        print(f"activepam labels import-birdnet-review: {_cli_message(exc)}", file=sys.stderr)
        return 1
    return 0


def _cli_history(args: argparse.Namespace) -> int:
    try:
        _, _, _, out = _round_paths(args)
        entries = read_history(out)
    except _CLI_ERRORS as exc:
        print(f"activepam labels history: {exc}", file=sys.stderr)
        return 1
    if not entries:
        print(f"activepam labels history: {history_dir(out)}: no history yet", file=sys.stderr)
        return 0
    print(format_history(entries))
    return 0


def _cli_restore(args: argparse.Namespace) -> int:
    try:
        _, _, _, out = _round_paths(args)
        labels = restore_labels(out, args.to)
    except _CLI_ERRORS as exc:
        print(f"activepam labels restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"activepam labels restore: {out} rebuilt as of history entry {args.to}: "
        f"{len(labels)} label rows for {labels['unit_id'].nunique()} units",
        file=sys.stderr,
    )
    return 0


def _cli_export(args: argparse.Namespace) -> int:
    try:
        opts = ExportOptions(
            context_s=args.context_s,
            annotators=tuple(a for a in args.annotators.split(",") if a),
            batch_by=args.batch_by,
            spectrograms=not args.no_spectrograms,
        )
        m = run_export(
            args.sample,
            args.predictions,
            args.out,
            round_id=args.round_id,
            options=opts,
            label_set=args.label_set,
        )
    except (ExportError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"activepam export: {exc}", file=sys.stderr)
        return 1
    print(f"activepam export: {len(m)} units -> {args.out}", file=sys.stderr)
    return 0
