"""argparse ``type=`` functions that validate command-line values up front.

Each returns a converter that raises :class:`argparse.ArgumentTypeError` with a message
naming the accepted range, so ``activepam detect --batch-size 0`` fails at once with
``argument --batch-size: must be an integer >= 1, got '0'`` instead of failing later.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_range(
    lo: int | None = None, hi: int | None = None, also: tuple[int, ...] = ()
) -> Callable[[str], int]:
    """Integer in ``[lo, hi]`` (either bound may be open); values in ``also`` are accepted."""
    what = _describe("an integer", lo, hi, also)

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value in also:
            return value
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    convert.__name__ = "int"  # argparse's "invalid int value" wording for the generic case
    return convert


def float_range(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """Finite float in ``[lo, hi]`` (either bound may be open); NaN and inf are refused."""
    what = _describe("a finite number", lo, hi)

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    convert.__name__ = "float"
    return convert


def _describe(kind: str, lo: float | None, hi: float | None, also: tuple[int, ...] = ()) -> str:
    if lo is not None and hi is not None:
        text = f"{kind} in [{lo:g}, {hi:g}]"
    elif lo is not None:
        text = f"{kind} >= {lo:g}"
    elif hi is not None:
        text = f"{kind} <= {hi:g}"
    else:
        text = kind
    if also:
        text += " or " + " or ".join(str(a) for a in also)
    return text


positive_int = int_range(1)
non_negative_float = float_range(0.0)
