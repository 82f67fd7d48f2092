"""The active-learning loop with an oracle (:func:`run_simulation`) and the full-supervision
reference (:func:`full_supervision`); the tidy results table (:data:`RESULT_COLUMNS`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.metrics import evaluate
from activepam.core.stopping import prediction_agreement
from activepam.simulation.config import SimConfig, batch_schedule, n_units
from activepam.simulation.dataset import SimDataset, SimulationError
from activepam.simulation.probe import config_features, make_probe
from activepam.simulation.replicates import replicate_rows, strata_values
from activepam.simulation.strategies import Selector, StrategySpec, sampling_selector

log = logging.getLogger(__name__)


#: columns identifying one budget point of one run in the tidy results table
RUN_KEYS = ["strategy", "unit", "seed", "round"]
#: what a replicate seed varies besides the active learner: its test split and its data
REPLICATE_COLS = ["split_seed", "data_seed"]
#: the budget spent so far, in units, segments, recordings and seconds of audio an expert
#: listens to (``audio_seconds``: context included; whole recordings cost their duration)
BUDGET_COLS = [
    "n_units",
    "n_segments",
    "n_recordings",
    "audio_seconds",
    "unit_fraction",
    "segment_fraction",
    "recording_fraction",
    "audio_fraction",
]
#: per-round extras: ``n_positives`` = positive (unit, species) labels among the labelled units
#: (BaseAL's annotation cost), ``sampling_s`` = wall time of the selection that produced this
#: round's labelled set (round 0: the cold-start pick; 0 for a random seed set; NaN unless
#: ``simulation.timing``)
ROUND_COLS = ["n_positives", "sampling_s"]
#: columns of the tidy results table
RESULT_COLUMNS = [
    *RUN_KEYS,
    *REPLICATE_COLS,
    *BUDGET_COLS,
    *ROUND_COLS,
    "stratum",
    "stratum_value",
    "metric",
    "value",
]


def _segment_cost(units: pd.DataFrame, context_s: float) -> np.ndarray:
    """Listening seconds of each segment's exported clip: the rounds' clip window
    (:func:`activepam.core.labels.clip_window`: the segment +- ``context_s``, clipped to the
    recording)."""
    from activepam.core.labels import clip_window

    spans = [
        clip_window(a, b, d, context_s)
        for a, b, d in zip(
            units["start_s"].to_numpy(dtype=np.float64),
            units["end_s"].to_numpy(dtype=np.float64),
            units["recording_duration_s"].to_numpy(dtype=np.float64),
        )
    ]
    return np.asarray([hi - lo for lo, hi in spans], dtype=np.float64)


def _pool_segments(
    ds: SimDataset, rows: np.ndarray, P: np.ndarray, labelled_pos: np.ndarray | None = None
) -> pd.DataFrame:
    """Segments table (the detect contract) of pool rows with the probe's uncertainty.

    With ``labelled_pos`` (positions of the labelled rows, for ``allocation: divergence``) it
    also carries the probe's per-species probabilities (``prob:<species>``) and the oracle's
    labels of the labelled rows only (``label:<species>``, NaN elsewhere): what a learner knows.
    """
    from activepam.core.strata import LABEL_PREFIX, PROB_PREFIX
    from activepam.core.uncertainty import segment_uncertainty

    seg = ds.units.iloc[rows].reset_index(drop=True).rename(columns={"unit_id": "segment_id"})
    if labelled_pos is not None:
        lab = np.full(P.shape, np.nan)
        lab[labelled_pos] = ds.Y[rows[labelled_pos]]
        extra = {f"{PROB_PREFIX}{sp}": P[:, j] for j, sp in enumerate(ds.species)}
        extra.update({f"{LABEL_PREFIX}{sp}": lab[:, j] for j, sp in enumerate(ds.species)})
        seg = pd.concat([seg, pd.DataFrame(extra)], axis=1)
    unc = segment_uncertainty(P)
    species = np.asarray(ds.species, dtype=object)
    seg["top1_species"] = species[unc["top1_index"]]
    for col in (
        "top1_confidence",
        "top2_confidence",
        "margin",
        "ratio",
        "max_binary_entropy",
        "mean_binary_entropy",
    ):
        seg[col] = unc[col]
    return seg


def _pool_embeddings(seg: pd.DataFrame, Z: np.ndarray) -> pd.DataFrame:
    """The embeddings table the sampling engine reads, for the pool segments ``seg``."""
    return pd.DataFrame(
        {
            "segment_id": seg["segment_id"],
            "recording_id": seg["recording_id"],
            "embedding": list(np.asarray(Z, dtype=np.float32)),
        }
    )


def _union_cost(units: pd.DataFrame, context_s: float) -> float:
    """Listening seconds of labelled segments as the union of their clips per recording
    (:func:`activepam.datasets.union_seconds`): overlapping windows and shared context once."""
    from activepam.datasets import union_seconds

    return union_seconds(
        units["recording_id"].to_numpy(),
        units["start_s"].to_numpy(dtype=np.float64),
        units["end_s"].to_numpy(dtype=np.float64),
        context_s,
        units["recording_duration_s"].to_numpy(dtype=np.float64),
    )


def unit_costs(
    pool_units: pd.DataFrame, unit: str, context_s: float
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The pool's labelling units, their segment rows and their listening cost in seconds.

    A recording costs its duration (``recording_duration_s``); a segment costs its exported clip:
    the segment +- ``context_s`` clipped to the recording (:func:`_segment_cost`). Returns
    ``(unit_ids, members, cost)`` with ``members[u]`` the positions of unit ``u``'s segments in
    ``pool_units`` and ``cost`` aligned with ``unit_ids``.
    """
    rec_of = pool_units["recording_id"].astype(str).to_numpy()
    if unit == "recording":
        unit_ids = np.asarray(sorted(set(rec_of)), dtype=object)
        members = pd.Series(np.arange(len(rec_of))).groupby(rec_of).apply(np.asarray).to_dict()
        dur = pool_units.groupby(rec_of)["recording_duration_s"].first()
        cost = dur.loc[unit_ids].to_numpy(dtype=np.float64)
    else:
        unit_ids = pool_units["unit_id"].astype(str).to_numpy()
        members = {u: np.array([i]) for i, u in enumerate(unit_ids)}
        cost = _segment_cost(pool_units, context_s)
    return unit_ids, members, cost


def budget_plan(cfg: SimConfig, n_pool_units: int, pool_audio_s: float) -> list[float]:
    """Cumulative budget after the seed set and after every round.

    ``budget_unit: units``: counts of units (``seed_size`` / ``batch_size``: a fraction < 1 of
    the pool's units or a count). ``seconds``: listening seconds (a fraction < 1 of the pool's
    audio duration or seconds), the same for every unit mode.
    """
    batches: Sequence[float]
    if cfg.budget_unit == "units":
        first = float(n_units(cfg.seed_size, n_pool_units))
        batches = batch_schedule(cfg.batch_size, cfg.batch_growth, cfg.rounds, n_pool_units)
    else:
        first = cfg.seed_size * pool_audio_s if cfg.seed_size < 1 else float(cfg.seed_size)
        step = cfg.batch_size * pool_audio_s if cfg.batch_size < 1 else float(cfg.batch_size)
        batches = [step * cfg.batch_growth**r for r in range(cfg.rounds)]
    return list(np.cumsum([first, *batches]))


def _units_for(
    target: float, spent: float, n_done: int, mean_cost: float, cfg: SimConfig, left: int
) -> int:
    """Units to add so the cumulative budget reaches ``target`` (at least 1, at most ``left``)."""
    if cfg.budget_unit == "units":
        n = round(target) - n_done
    else:
        n = round((target - spent) / mean_cost) if mean_cost > 0 else 1
    return max(1, min(n, left))


def run_simulation(
    ds: SimDataset,
    spec: StrategySpec,
    seed: int,
    cfg: SimConfig,
    selector: Selector | None = None,
    Z: np.ndarray | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One simulated AL run (strategy x replicate seed): the tidy result rows of every round."""
    selector = selector or sampling_selector(spec)
    Z = config_features(ds.X, cfg) if Z is None else Z
    rep = replicate_rows(ds, cfg, seed)
    split = rep.split
    strata_all = strata_values(ds.units, cfg.strata, cfg.strata_options)
    test_strata = {k: v[split.test] for k, v in strata_all.items()}
    pool_units = ds.units.iloc[split.pool].reset_index(drop=True)
    rec_of = pool_units["recording_id"].astype(str).to_numpy()
    rec_dur = pool_units.groupby("recording_id")["recording_duration_s"].first()
    unit_ids, members, cost = unit_costs(pool_units, spec.unit, cfg.context_s)
    cost_of = dict(zip(unit_ids, cost))
    mean_cost = float(cost.mean()) if len(cost) else 0.0
    totals = {
        "units": len(unit_ids),
        "segments": len(pool_units),
        "recordings": len(rec_dur),
        "audio": float(rec_dur.sum()),  # the pool's audio, the same for every unit mode
    }
    plan = budget_plan(cfg, len(unit_ids), totals["audio"])
    rng = np.random.default_rng(seed)
    n0 = _units_for(plan[0], 0.0, 0, mean_cost, cfg, len(unit_ids))
    emb = None
    sampling_s = 0.0
    if cfg.cold_start:  # the strategy picks the seed set from an untrained model
        P0 = np.full((len(split.pool), len(ds.species)), 0.5)  # uniform: every score tied
        seg0 = _pool_segments(
            ds,
            split.pool,
            P0,
            np.zeros(0, dtype=np.int64)
            if spec.strategy.get("allocation") == "divergence"
            else None,
        )
        emb = _pool_embeddings(seg0, Z[split.pool])
        t0 = time.perf_counter()
        labelled: list[str] = list(selector(seg0, n0, seed * 1000 + 999, emb, []))
        sampling_s = time.perf_counter() - t0
        if not labelled:
            raise SimulationError(f"strategy {spec.name!r} chose no unit for the cold start")
    else:
        labelled = list(rng.permutation(unit_ids)[:n0])
    probe = make_probe(cfg, seed)
    Y_test = ds.Y[split.test]
    # stopping rule (activepam.core.stopping): decisions on a fixed stop set of pool segments
    stop_rows = split.pool[
        np.sort(np.random.default_rng(seed + 7).permutation(len(split.pool))[:STOP_SET])
    ]
    last_decisions: np.ndarray | None = None
    rows: list[dict[str, Any]] = []
    rounds = range(cfg.rounds + 1)
    if progress:
        from tqdm import tqdm

        rounds = tqdm(rounds, desc=f"{spec.name} seed {seed}", unit="round", leave=False)
    for r in rounds:
        lab_pos = np.concatenate([members[u] for u in labelled])
        probe.fit(Z[split.pool[lab_pos]], ds.Y[split.pool[lab_pos]])
        P_test = probe.predict_proba(Z[split.test])
        lab_recs = set(rec_of[lab_pos])
        if cfg.segment_cost == "union" and spec.unit == "segment":
            audio = _union_cost(pool_units.iloc[lab_pos], cfg.context_s)
        else:
            audio = float(sum(cost_of[u] for u in labelled))
        budget = {
            "strategy": spec.name,
            "unit": spec.unit,
            "seed": int(seed),
            "round": r,
            "split_seed": rep.split_seed,
            "data_seed": rep.data_seed,
            "n_units": len(labelled),
            "n_segments": len(lab_pos),
            "n_recordings": len(lab_recs),
            "audio_seconds": audio,
            "unit_fraction": len(labelled) / totals["units"],
            "segment_fraction": len(lab_pos) / totals["segments"],
            "recording_fraction": len(lab_recs) / totals["recordings"],
            "audio_fraction": audio / totals["audio"] if totals["audio"] else float("nan"),
            "n_positives": int(ds.Y[split.pool[lab_pos]].sum()),
            "sampling_s": float(sampling_s) if cfg.timing else float("nan"),
        }
        decisions = probe.predict_proba(Z[stop_rows]) >= cfg.threshold
        if last_decisions is not None:
            kappa = prediction_agreement(last_decisions, decisions)
            rows.append(
                {
                    **budget,
                    "stratum": "all",
                    "stratum_value": "all",
                    "metric": "stop_kappa",
                    "value": float(kappa),
                }
            )
        last_decisions = decisions
        for stratum, value, metric, v in evaluate(
            Y_test, P_test, test_strata, cfg.threshold, stratum_metrics=cfg.stratum_metrics
        ):
            rows.append(
                {
                    **budget,
                    "stratum": stratum,
                    "stratum_value": value,
                    "metric": metric,
                    "value": float(v),
                }
            )
        if r == cfg.rounds or len(labelled) >= len(unit_ids):
            break
        P_pool = probe.predict_proba(Z[split.pool])
        divergence = spec.strategy.get("allocation") == "divergence"
        seg = _pool_segments(ds, split.pool, P_pool, lab_pos if divergence else None)
        if emb is None:
            emb = _pool_embeddings(seg, Z[split.pool])
        n = _units_for(
            plan[r + 1], audio, len(labelled), mean_cost, cfg, len(unit_ids) - len(labelled)
        )
        t0 = time.perf_counter()
        chosen = selector(seg, n, seed * 1000 + r, emb, list(labelled))
        sampling_s = time.perf_counter() - t0
        fresh = [u for u in chosen if u not in set(labelled)]
        if len(fresh) != len(chosen):
            raise SimulationError(
                f"strategy {spec.name!r} re-sampled {len(chosen) - len(fresh)} labelled unit(s)"
            )
        if not fresh:
            log.warning("strategy %s chose no unit in round %d; stopping", spec.name, r)
            break
        labelled += fresh
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


#: pool segments every round's probe predicts for the stopping rule's agreement (stop_kappa)
STOP_SET = 500


#: columns of the full-supervision table (one reference per replicate seed)
FULL_COLUMNS = ["seed", "split_seed", "data_seed", "stratum", "stratum_value", "metric", "value"]


def full_supervision(
    ds: SimDataset,
    cfg: SimConfig,
    Z: np.ndarray | None = None,
    seeds: Sequence[int] = (0,),
) -> pd.DataFrame:
    """The full-supervision reference of every replicate seed: the probe trained on the
    replicate's whole pool, evaluated on its test set (the same rows as that replicate's runs).

    One reference per replicate, so "x % of full supervision" is a per-replicate ratio and the
    reference itself gets an interval over replicates. It is one L2-regularised fit at the
    configured ``probe_C``, not an upper bound: a run can exceed it. With ``probe:
    baseal_mlp`` the head is fitted ``rounds + 1`` times (the epochs of a run's final model).
    """
    Z = config_features(ds.X, cfg) if Z is None else Z
    strata_all = strata_values(ds.units, cfg.strata, cfg.strata_options)
    frames = []
    for seed in seeds:
        rep = replicate_rows(ds, cfg, int(seed))
        split = rep.split
        probe = make_probe(cfg, int(seed), max(cfg.probe_max_iter, 500))
        # BaseAL's head trains for a fixed number of epochs per fit: as many fits as a run's
        # cycles, so the reference has the training of a run's final model
        for _ in range(cfg.rounds + 1 if cfg.probe == "baseal_mlp" else 1):
            probe.fit(Z[split.pool], ds.Y[split.pool])
        P = probe.predict_proba(Z[split.test])
        rows = evaluate(
            ds.Y[split.test],
            P,
            {k: v[split.test] for k, v in strata_all.items()},
            cfg.threshold,
            stratum_metrics=cfg.stratum_metrics,
        )
        df = pd.DataFrame(rows, columns=["stratum", "stratum_value", "metric", "value"])
        df.insert(0, "data_seed", rep.data_seed)
        df.insert(0, "split_seed", rep.split_seed)
        df.insert(0, "seed", int(seed))
        frames.append(df)
    return pd.DataFrame(pd.concat(frames, ignore_index=True), columns=FULL_COLUMNS)
