"""Settings of a simulated run (:class:`SimConfig`, the ``simulation`` section of params.yaml)
and the budget sizes they give (:func:`n_units`, :func:`batch_schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from activepam.core.config import schema_defaults
from activepam.core.metrics import STRATUM_METRIC_CHOICES
from activepam.simulation.dataset import SimulationError

#: what ``seed_size`` / ``batch_size`` count: listening seconds (default) or units
BUDGET_UNITS = ("seconds", "units")
#: segment cost modes (:class:`SimConfig` ``segment_cost``)
SEGMENT_COSTS = ("clip", "union")
#: probes (:class:`SimConfig` ``probe``)
PROBES = ("logistic", "baseal_mlp")
#: the schema's defaults of the simulation section (the dataclass defaults below)
_DEFAULTS = schema_defaults("simulation")
_ROUNDS_DEFAULTS = schema_defaults("rounds")


@dataclass(frozen=True)
class SimConfig:
    """Settings of a simulated run (the ``simulation`` section of params.yaml).

    Every default is the ``default:`` of the key in workflow/schemas/params.schema.yaml (the
    single source; :func:`activepam.core.config.schema_defaults`); ``context_s`` defaults to
    ``rounds.context_s``'s. ``strata_options`` is not a params key (code only).
    """

    seed_size: float = _DEFAULTS["seed_size"]
    batch_size: float = _DEFAULTS["batch_size"]
    batch_growth: float = _DEFAULTS["batch_growth"]
    rounds: int = _DEFAULTS["rounds"]
    test_fraction: float = _DEFAULTS["test_fraction"]
    split_seed: int = _DEFAULTS["split_seed"]
    context_s: float = _ROUNDS_DEFAULTS["context_s"]  # null in simulation = rounds'
    budget_unit: str = _DEFAULTS["budget_unit"]
    vary_split: bool = _DEFAULTS["vary_split"]
    data_fraction: float = _DEFAULTS["data_fraction"]
    pca_dims: int = _DEFAULTS["pca_dims"]
    whiten: bool = _DEFAULTS["whiten"]
    probe_C: float = _DEFAULTS["probe_C"]
    probe_max_iter: int = _DEFAULTS["probe_max_iter"]
    threshold: float = _DEFAULTS["threshold"]
    strata: tuple[str, ...] = tuple(_DEFAULTS["strata"])
    strata_options: Mapping[str, Any] = field(default_factory=dict)
    #: metadata column of a predefined split (train = pool, test = test set, validation
    #: unused), honoured when the dataset has it; "" = always split randomly
    split_column: str = _DEFAULTS["split_column"]
    #: listening cost of labelled segments: clip = sum of every segment's clip (today's);
    #: union = the union of the listened spans per recording (overlapping windows once)
    segment_cost: str = _DEFAULTS["segment_cost"]
    #: the strategy picks the seed set from an untrained model (uniform scores); false = random
    cold_start: bool = _DEFAULTS["cold_start"]
    #: probe: logistic (ours) | baseal_mlp (BaseAL's Linear-ReLU-Linear head, Adam)
    probe: str = _DEFAULTS["probe"]
    #: baseal_mlp: hidden width (0 = the input dimension, BaseAL's default hidden_dim=None)
    probe_hidden: int = _DEFAULTS["probe_hidden"]
    #: baseal_mlp: epochs per cycle (warm-started), mini-batch size, Adam learning rate
    probe_epochs: int = _DEFAULTS["probe_epochs"]
    probe_batch: int = _DEFAULTS["probe_batch"]
    probe_lr: float = _DEFAULTS["probe_lr"]
    #: record the sampling wall time per round (``sampling_s``); off: NaN, so that the results
    #: stay byte-for-byte reproducible (wall times never are)
    timing: bool = _DEFAULTS["timing"]
    #: metrics per stratum value (activepam.core.metrics.STRATUM_METRIC_CHOICES): weighted_ap
    #: is McEwen et al. 2025's support-weighted "mAP"
    stratum_metrics: tuple[str, ...] = tuple(_DEFAULTS["stratum_metrics"])

    def __post_init__(self) -> None:
        bad = [m for m in self.stratum_metrics if m not in STRATUM_METRIC_CHOICES]
        if bad or not self.stratum_metrics:
            raise SimulationError(
                f"simulation.stratum_metrics: {bad or '[]'} not one of {STRATUM_METRIC_CHOICES}"
            )
        if self.segment_cost not in SEGMENT_COSTS:
            raise SimulationError(
                f"simulation.segment_cost: {self.segment_cost!r} is not one of {SEGMENT_COSTS}"
            )
        if self.probe not in PROBES:
            raise SimulationError(f"simulation.probe: {self.probe!r} is not one of {PROBES}")
        if self.probe_hidden < 0 or self.probe_epochs < 1 or self.probe_batch < 1:
            raise SimulationError(
                "simulation.probe_hidden must be >= 0, probe_epochs and probe_batch >= 1"
            )
        if self.seed_size <= 0 or self.batch_size <= 0:
            raise SimulationError("simulation.seed_size and simulation.batch_size must be > 0")
        if not 0 < self.test_fraction < 1:
            raise SimulationError("simulation.test_fraction must be in (0, 1)")
        if self.rounds < 0 or self.batch_growth < 1:
            raise SimulationError("simulation.rounds must be >= 0 and simulation.batch_growth >= 1")
        if self.budget_unit not in BUDGET_UNITS:
            raise SimulationError(
                f"simulation.budget_unit: {self.budget_unit!r} is not one of {BUDGET_UNITS}"
            )
        if not 0 < self.data_fraction <= 1:
            raise SimulationError("simulation.data_fraction must be in (0, 1]")
        if self.context_s < 0:
            raise SimulationError("simulation.context_s must be >= 0")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> SimConfig:
        """Config from the ``simulation`` section (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in params.items() if k in names and v is not None}
        kw.update(overrides)
        for key in ("strata", "stratum_metrics"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def n_units(size: float, pool: int) -> int:
    """A size given as a fraction (< 1) of ``pool`` or a count (>= 1), at least 1."""
    n = math.ceil(size * pool - 1e-9) if size < 1 else int(round(size))
    return max(1, min(int(n), pool))


def batch_schedule(batch_size: float, growth: float, rounds: int, pool: int) -> list[int]:
    """Batch size of every round: ``batch_size`` (fraction of ``pool`` or count) x growth^r."""
    first = n_units(batch_size, pool)
    return [max(1, int(round(first * growth**r))) for r in range(rounds)]
