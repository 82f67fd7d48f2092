"""``activepam sample``: argument parsing, then one call of
:func:`activepam.sampling.files.run_sampling`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from activepam.core.argtypes import positive_int
from activepam.core.embeddings import EmbeddingError
from activepam.sampling.files import run_sampling
from activepam.sampling.strategies import StrategyError, list_strategies


def _load_yaml(path: str | Path) -> Any:
    import yaml

    p = Path(path)
    if not p.exists():
        raise EmbeddingError(f"{p}: config file not found")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EmbeddingError(f"{p}: not valid YAML: {exc}") from exc


def _cli_strategy(args: argparse.Namespace) -> tuple[str | dict, dict | None]:
    """(strategy, params) from --strategy / --config."""
    if args.config is None:
        return args.strategy, None
    data = _load_yaml(args.config)
    if not isinstance(data, dict):
        raise EmbeddingError(f"{args.config}: top level must be a mapping")
    if "sampling" in data or "strategies" in data:  # a strategy library (e.g. params.yaml)
        if not args.strategy:
            raise EmbeddingError(
                f"{args.config} holds several strategies: name one with --strategy"
            )
        return args.strategy, data
    if args.strategy:
        data.setdefault("name", args.strategy)
    return data, None


def _cmd(args: argparse.Namespace) -> int:
    if args.list:
        params = _load_yaml(args.config) if args.config else None
        items = list_strategies(params if isinstance(params, dict) else None)
        width = max(len(k) for k in items)
        for name, desc in items.items():
            print(f"{name:<{width}}  {desc}")
        return 0
    if not args.strategy and not args.config:
        print(
            "activepam sample: one of --strategy or --config is required (or --list)",
            file=sys.stderr,
        )
        return 2
    for opt in ("segments", "out"):
        if getattr(args, opt) is None:
            print(f"activepam sample: --{opt} is required", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.out_of_core:
        return _cmd_out_of_core(args)
    try:
        strategy, params = _cli_strategy(args)
        result = run_sampling(
            args.segments,
            strategy,
            n=args.n,
            seed=args.seed,
            embeddings=args.embeddings,
            indices=args.indices,
            labelled=args.labelled,
            out=args.out,
            params=params,
            predictions=args.predictions,
        )
    except (StrategyError, EmbeddingError) as exc:
        print(f"activepam sample: {exc}", file=sys.stderr)
        return 1
    if result.empty:
        print(
            f"activepam sample: no unit could be chosen (empty pool); wrote an empty {args.out}",
            file=sys.stderr,
        )
        return 1
    print(f"activepam sample: wrote {len(result)} units to {args.out}", file=sys.stderr)
    return 0


def _cmd_out_of_core(args: argparse.Namespace) -> int:
    """``--out-of-core``: :func:`activepam.sampling.outofcore.sample_to_csv`."""
    from activepam.sampling.outofcore import sample_to_csv

    try:
        strategy, params = _cli_strategy(args)
        n_units = sample_to_csv(
            args.segments,
            strategy,
            args.out,
            params=params,
            n=args.n,
            seed=args.seed,
            embeddings=args.embeddings,
            labelled=args.labelled,
            memory_limit=args.memory_limit,
        )
    except (StrategyError, EmbeddingError, OSError) as exc:
        print(f"activepam sample: {exc}", file=sys.stderr)
        return 1
    print(f"activepam sample: wrote {n_units} units to {args.out} (out of core)", file=sys.stderr)
    return 0 if n_units else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``activepam sample``."""
    p = subparsers.add_parser(
        "sample",
        help="choose segments/recordings to annotate next",
        description="Choose a batch of segments or whole recordings for annotation with a "
        "sampling strategy (pool -> score -> strata -> diversification).",
    )
    p.add_argument("--segments", type=Path, help="segments.parquet from the detect stage")
    p.add_argument(
        "--embeddings", type=Path, help="embeddings.parquet (kmeans/ward/farthest_first)"
    )
    p.add_argument("--indices", type=Path, help="indices.parquet (index scores)")
    p.add_argument(
        "--predictions",
        type=Path,
        help="predictions.parquet (per-species scores; design verification)",
    )
    p.add_argument("--strategy", help="preset or user strategy name (see --list)")
    p.add_argument(
        "--config",
        type=Path,
        help="YAML strategy file, or params.yaml/strategy library used with --strategy",
    )
    p.add_argument("--n", type=positive_int, help="batch size (default: the strategy's n)")
    p.add_argument("--seed", type=int, help="random seed (default: the strategy's seed)")
    p.add_argument(
        "--labelled", type=Path, help="CSV of already-labelled unit ids (unit_id column)"
    )
    p.add_argument("--out", type=Path, help="output CSV, one row per chosen unit")
    p.add_argument(
        "--out-of-core",
        action="store_true",
        help="bounded-memory sampler for segment tables of any size (DuckDB over all rows; "
        "embeddings read only for the candidates, from a device/month store folder given as "
        "--embeddings)",
    )
    p.add_argument(
        "--memory-limit", default="2GB", help="DuckDB memory limit with --out-of-core (2GB)"
    )
    p.add_argument("--list", action="store_true", help="print every strategy and exit")
    p.set_defaults(func=_cmd)
