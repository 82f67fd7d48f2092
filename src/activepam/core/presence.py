"""The presence rule of the demo's ground truth: when a call makes its species present.

One implementation, used by the demo generator's ground truth
(:func:`activepam.demo.truth.segment_truth`), the simulated annotator
(:class:`activepam.rounds.rounds.Oracle`) and the simulation's window labels
(:mod:`activepam.simulation`): a call ``[onset, offset]`` makes its species present in a window
``[start, end]`` when they overlap by at least ``min(MIN_OVERLAP_S, MIN_CALL_FRACTION x call
duration)`` (0.5 s, or half of a call shorter than 1 s). A trailing window shorter than
``MIN_SEGMENT_S`` is not analysed (BirdNET drops chunks < 1.5 s).
"""

from __future__ import annotations

import numpy as np

#: a trailing segment shorter than this is not analysed (BirdNET drops chunks < 1.5 s)
MIN_SEGMENT_S = 1.5
#: a species is present in a segment with this much of one call inside ...
MIN_OVERLAP_S = 0.5
#: ... or this fraction of a call shorter than MIN_OVERLAP_S / MIN_CALL_FRACTION
MIN_CALL_FRACTION = 0.5
#: tolerance of the overlap and length comparisons (float seconds)
EPS = 1e-9


def call_overlap(
    onset: np.ndarray, offset: np.ndarray, start: np.ndarray | float, end: np.ndarray | float
) -> np.ndarray:
    """Seconds of each call ``[onset, offset]`` inside its window ``[start, end]`` (<0: none)."""
    return np.minimum(offset, end) - np.maximum(onset, start)


def call_present(
    onset: np.ndarray,
    offset: np.ndarray,
    start: np.ndarray | float,
    end: np.ndarray | float,
    min_overlap_s: float = MIN_OVERLAP_S,
    min_fraction: float = MIN_CALL_FRACTION,
) -> np.ndarray:
    """Mask of calls that make their species present in their window (the rule above)."""
    overlap = call_overlap(onset, offset, start, end)
    return overlap >= required_overlap(onset, offset, min_overlap_s, min_fraction) - EPS


def required_overlap(
    onset: np.ndarray,
    offset: np.ndarray,
    min_overlap_s: float = MIN_OVERLAP_S,
    min_fraction: float = MIN_CALL_FRACTION,
) -> np.ndarray:
    """Overlap each call needs: ``min(min_overlap_s, min_fraction x call duration)``."""
    return np.minimum(min_overlap_s, min_fraction * (offset - onset))


def too_short(
    rest_s: np.ndarray | float, duration_s: np.ndarray | float, min_segment_s: float = MIN_SEGMENT_S
) -> np.ndarray:
    """Mask of windows not analysed: ``rest_s`` (recording left from the window's start) is
    shorter than ``min(min_segment_s, duration_s)``."""
    return np.asarray(rest_s) < np.minimum(min_segment_s, duration_s) - EPS
