"""Detection parameters: the species filter (which labels are scored) and the parameters
that change detection results (:class:`DetectParams`, whose digest names the parts folder)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activepam.detection import birdnet as bn
from activepam.detection.tables import PARTS_VERSION, DetectError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeciesFilter:
    """Which labels are scored: ``none``, a species ``list`` file (or ``labels``: the project's
    label set), or ``location``.

    ``location`` uses BirdNET's meta-model with a fixed ``lat``/``lon``/``week`` when given,
    otherwise each recording's own lat/lon (metadata) and the week of its start time (-1 = all
    year when the start time is unknown). A recording without a location is scored unfiltered
    (logged as a warning). Cached parts assume a recording's location and date do not change.
    """

    mode: str = "none"
    species_list: str | None = None
    #: list mode from labels (the project's label set) instead of a species_list file
    labels: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    week: int = -1
    threshold: float = 0.03
    _cache: dict[tuple[Any, ...], np.ndarray] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.mode not in ("none", "list", "location"):
            raise DetectError(f"species_filter must be none, list or location, got {self.mode!r}")
        if self.mode == "list" and not self.species_list and not self.labels:
            raise DetectError("species_filter is 'list' but no species_list file was given")
        if (self.lat is None) != (self.lon is None):
            raise DetectError("a fixed location needs both lat and lon")

    def signature(self) -> dict[str, Any]:
        """What identifies the filter's effect (for the params-hash)."""
        if self.mode == "none":
            return {"mode": "none"}
        if self.mode == "list":
            return {"mode": "list", "indices": bn.indices_digest(self.indices())}
        return {
            "mode": "location",
            "threshold": self.threshold,
            "lat": self.lat,
            "lon": self.lon,
            "week": self.week if self.lat is not None else None,
        }

    def indices(
        self, lat: float | None = None, lon: float | None = None, week: int = -1
    ) -> np.ndarray:
        """Kept label indices (cached); location arguments are used in per-recording mode."""
        if self.mode == "none":
            key: tuple[Any, ...] = ("none",)
        elif self.mode == "list":
            key = ("list",)
        elif self.lat is not None:
            key = ("loc", self.lat, self.lon, self.week)
        elif lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
            key = ("none",)
        else:
            key = ("loc", float(lat), float(lon), int(week))
        if key not in self._cache:
            if key[0] == "none":
                self._cache[key] = np.arange(bn.N_SPECIES, dtype=np.int64)
            elif key[0] == "list" and self.labels:
                index = {label: i for i, label in enumerate(bn.load_labels())}
                unknown = [s for s in self.labels if s not in index]
                if unknown:
                    raise DetectError(
                        f"label set: {unknown[0]!r} is not a BirdNET V2.4 label "
                        f"({len(unknown)} of {len(self.labels)} unknown)"
                    )
                self._cache[key] = np.array(sorted({index[s] for s in self.labels}), dtype=np.int64)
            elif key[0] == "list":
                self._cache[key] = bn.species_filter_indices(species_list=self.species_list)
            else:
                self._cache[key] = bn.species_filter_indices(
                    lat=key[1], lon=key[2], week=key[3], threshold=self.threshold
                )
        return self._cache[key]

    def describe(self, lat: float | None = None, lon: float | None = None, week: int = -1) -> str:
        """Which species set scores a recording (segments column ``species_set``)."""
        n = len(self.indices(lat, lon, week))
        if n == bn.N_SPECIES:
            return f"all ({n})"
        if self.mode == "list":
            return f"{'label set' if self.labels else 'species list'} ({n})"
        return f"location week {week if self.lat is None else self.week} ({n})"


#: largest species set whose every score is kept in predictions.parquet (beyond top_k), so
#: that the label set's full probability vector is known for every segment
FULL_VECTOR_MAX = 300


@dataclass(frozen=True)
class DetectParams:
    """Parameters that change detection results (threads/batch size do not)."""

    overlap_s: float = 0.0
    sensitivity: float = 1.0
    top_k: int = 10
    species_filter: SpeciesFilter = field(default_factory=SpeciesFilter)

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_s <= bn.WINDOW_S - 0.1:
            raise DetectError(
                f"overlap_s must be in [0, {bn.WINDOW_S - 0.1:.1f}] (hop >= 0.1 s "
                f"keeps segment ids unique), got {self.overlap_s}"
            )
        try:  # BirdNET's user sensitivity (higher = more detections; see birdnet.sigmoid_slope)
            bn.check_sensitivity(self.sensitivity, "detect.sensitivity")
        except ValueError as exc:
            raise DetectError(str(exc)) from None
        if not 1 <= self.top_k <= bn.N_SPECIES:
            raise DetectError(f"top_k must be in [1, {bn.N_SPECIES}], got {self.top_k}")

    @property
    def hop_samples(self) -> int:
        return int(bn.SAMPLE_RATE * (bn.WINDOW_S - self.overlap_s))

    def digest(self) -> str:
        """Short hash naming the parts folder."""
        spec = {
            "version": PARTS_VERSION,
            "model": bn.MODEL_NAME,
            "overlap_s": self.overlap_s,
            # the sigmoid slope applied (issue 10: the user value is inverted as in
            # BirdNET), so parts are reused exactly when the numbers are the same
            "sensitivity": bn.sigmoid_slope(self.sensitivity),
            "top_k": self.top_k,
            "min_len_s": bn.MIN_LEN_S,
            "filter": self.species_filter.signature(),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def species_filter_from_config(
    cfg: dict[str, Any], label_set: str | os.PathLike[str] | None = None
) -> SpeciesFilter:
    """The species filter described by the ``detect`` section of params.yaml.

    ``location`` uses each recording's lat/lon and start-time week (from the inventory).
    ``label_set`` scores the project's label set (``label_set``: its file, see
    :func:`activepam.core.labels.label_set_path`). ``auto`` (the default): the label set when
    its file exists, else ``location`` - so that uncertainty is never computed over species
    that cannot occur (e.g. out-of-range species near 0.5). Recordings without lat/lon are
    scored over all species (logged).
    """
    mode = str(cfg.get("species_filter", "auto"))
    if mode == "auto":
        mode = "label_set" if label_set and Path(label_set).is_file() else "location"
        log.info(
            "species_filter auto: %s", mode if mode == "location" else f"label set {label_set}"
        )
    if mode == "label_set":
        from activepam.core.labels import read_label_set

        if not label_set or not Path(label_set).is_file():
            raise DetectError(
                f"detect.species_filter: label_set, but the label set file "
                f"{label_set or '(rounds.label_set)'} does not exist"
            )
        return SpeciesFilter("list", labels=tuple(read_label_set(Path(label_set))))
    if mode == "list":
        return SpeciesFilter("list", species_list=str(cfg.get("species_list") or "") or None)
    if mode == "location":
        return SpeciesFilter("location", threshold=float(cfg.get("location_threshold", 0.03)))
    return SpeciesFilter(mode)
