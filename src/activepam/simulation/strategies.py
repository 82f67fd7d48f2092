"""Simulation strategies: named sampling-engine strategies (:class:`StrategySpec`) and the
selector calling :func:`activepam.sampling.engine.sample` with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from activepam.simulation.dataset import SimulationError


@dataclass(frozen=True)
class StrategySpec:
    """A named simulation strategy: a resolved sampling-engine strategy (see
    :mod:`activepam.sampling.strategies`); its ``unit`` says whether segments or recordings are
    labelled and its ``aggregation`` how segment uncertainty becomes a recording score."""

    name: str
    strategy: dict[str, Any]

    @property
    def unit(self) -> str:
        return str(self.strategy.get("unit", "segment"))

    @property
    def aggregation(self) -> dict[str, Any]:
        return dict(self.strategy.get("aggregation") or {})

    @property
    def column(self) -> str:
        """Segment column aggregated into the recording score (the score's uncertainty)."""
        from activepam.sampling.scores import SCORE_COLUMNS

        cols = SCORE_COLUMNS.get(str(self.strategy.get("score", {}).get("method")), ())
        return cols[0] if len(cols) == 1 else "max_binary_entropy"


def resolve_strategy(
    name: str, presets: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
) -> StrategySpec:
    """Strategy ``name``: an entry of ``presets`` (params ``simulation.presets``), a user
    strategy of ``params`` (``sampling.strategies``) or a built-in preset of the sampling engine.

    Presets are strategy mappings and may start from another strategy with ``base``.
    """
    from activepam.sampling.strategies import StrategyError, user_strategies
    from activepam.sampling.strategies import resolve_strategy as resolve

    users = {**user_strategies(params), **dict(presets or {})}
    try:
        spec = resolve(name, {"sampling": {"strategies": users}})
    except StrategyError as exc:
        raise SimulationError(f"simulation.strategies: {exc}") from exc
    return StrategySpec(name, spec)


#: selector(pool_segments, n, seed, embeddings, labelled_ids) -> selected unit ids in order
#: (segment ids or recording ids, as the strategy's unit says)
Selector = Callable[[pd.DataFrame, int, int, pd.DataFrame | None, Sequence[str]], list[str]]


def sampling_selector(spec: StrategySpec) -> Selector:
    """Selector calling the sampling engine with the strategy of ``spec``."""
    from activepam.sampling import engine as sampling

    def select(
        units: pd.DataFrame,
        n: int,
        seed: int,
        embeddings: pd.DataFrame | None,
        labelled: Sequence[str],
    ) -> list[str]:
        out = sampling.sample(
            units, spec.strategy, n=n, seed=seed, embeddings=embeddings, labelled=labelled
        )
        return out["unit_id"].astype(str).tolist()

    return select
