"""Command-line entry point: ``activepam <command> ...``.

Each command lives in the module that does the work; that module exposes
``register(subparsers)`` which adds its parser and sets ``func`` (returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command modules, in the order they appear in --help
COMMAND_MODULES: tuple[str, ...] = (
    "activepam.demo.cli",
    "activepam.detection.cli",
    "activepam.sampling.cli",
    "activepam.rounds.cli",
    "activepam.rounds.freeze",
    "activepam.simulation.cli",
    "activepam.core.hashing",
    "activepam.search.cli",
    "activepam.review.cli",
    "activepam.datasets.cli",
    "activepam.simulation.mcewen",
    "activepam.simulation.lindholm",
)


#: commands whose module is imported alone (start-up time: ``activepam detect`` runs once per
#: cluster job; importing every command module costs about a second)
SOLO_COMMANDS: dict[str, str] = {"detect": "activepam.detection.cli"}


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="activepam",
        description="Active sampling of passive acoustic monitoring audio.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    first = (sys.argv[1:] if argv is None else list(argv))[:1]
    solo = SOLO_COMMANDS.get(first[0]) if first else None
    parser = build_parser((solo,) if solo else COMMAND_MODULES)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OSError as exc:  # disk full, permission denied: the message names path and stage
        print(f"activepam {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("activepam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
