"""From labels to answers, per round: thresholds, call density, the stopping rule, figures.

Step functions behind ``rule round_answers`` (scripts/round_answers.py) and the tests:

* :func:`verification_answers` turns the experts' answers into *verification labels*: for every
  reviewed segment unit and every species the detector suggested for it (its top-k rows in
  ``predictions.parquet``), the detector's score and whether the species is really there.
  Several annotators: the (unit, species) is kept only when they agree; unsure and conflicting
  answers are left out (and counted).
* :func:`round_thresholds` -> ``thresholds.csv``: per species (and per site where the labels
  allow) the score reaching precision 0.85 / 0.90 / 0.95 / 0.99 with an interval
  (:func:`activepam.verification.species_thresholds`). The pool is every suggestion of that
  species in ``predictions.parquet`` (top-k per segment: scores below the k-th are not stored,
  which only matters for thresholds near zero).
* :func:`round_density` -> ``density.csv``: call density per species x stratum from the units
  drawn by the ``verification`` design (their ``design_species`` / ``design_bin``); a round
  sampled otherwise is reported as not estimable, since its units are no random draw within
  score bins.
* :func:`round_stopping` -> the ``stopping`` block of ``metrics.json``
  (:mod:`activepam.stopping`): decisions of every round's model on a fixed stop set of
  never-labelled segments, and the learning curve so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.stopping import StoppingOptions, stopping_report
from activepam.verification import ThresholdOptions, call_density, species_thresholds

VERIFICATION_COLUMNS: tuple[str, ...] = ("unit_id", "segment_id", "species", "score", "correct",
                                         "n_annotators")


def consensus_answers(labels: pd.DataFrame, label_set: Sequence[str]) -> pd.DataFrame:
    """One answer per (unit, species) where the annotators agree: ``unit_id, species, present
    (1/0), n_annotators``; unsure, conflicting and disagreeing cells are dropped."""
    from activepam.train import label_cells

    cells = label_cells(labels, label_set)
    if cells.empty:
        return pd.DataFrame(columns=["unit_id", "species", "present", "n_annotators"])
    cells = cells[cells["answer"].isin(["present", "absent"])]
    g = cells.groupby(["unit_id", "species"], sort=True)["answer"]
    agg = g.agg(n_annotators="size", n_present=lambda a: int((a == "present").sum()))
    agg = agg.reset_index()
    agreed = agg[(agg["n_present"] == 0) | (agg["n_present"] == agg["n_annotators"])]
    return agreed.assign(present=(agreed["n_present"] > 0).astype(int))[
        ["unit_id", "species", "present", "n_annotators"]].reset_index(drop=True)


def verification_answers(labels: pd.DataFrame, predictions: pd.DataFrame,
                         label_set: Sequence[str]) -> pd.DataFrame:
    """Verification labels of the detector's suggestions (:data:`VERIFICATION_COLUMNS`).

    ``labels``: label rows (segment units are used; recording units are skipped: their
    suggestions have no single score); ``predictions``: long top-k table (segment_id, species,
    confidence) of the detector whose thresholds are wanted."""
    seg_labels = labels[labels["unit_type"].astype(str) == "segment"]
    agreed = consensus_answers(seg_labels, label_set)
    if agreed.empty:
        return pd.DataFrame(columns=list(VERIFICATION_COLUMNS))
    preds = predictions[predictions["segment_id"].astype(str).isin(set(agreed["unit_id"]))]
    merged = preds.rename(columns={"segment_id": "unit_id", "confidence": "score"}).merge(
        agreed, on=["unit_id", "species"], how="inner")
    return merged.assign(segment_id=merged["unit_id"], correct=merged["present"])[
        list(VERIFICATION_COLUMNS)].reset_index(drop=True)


def round_thresholds(verified: pd.DataFrame, predictions: pd.DataFrame,
                     segments: pd.DataFrame | None = None, by_site: bool = True,
                     options: ThresholdOptions | None = None) -> pd.DataFrame:
    """``thresholds.csv``: overall rows (``group`` "") and, with ``by_site`` and a segments
    table, per-site rows (``group`` "site=..."; groups with too few labels say so in
    ``note``)."""
    pool = predictions.rename(columns={"confidence": "score"})[["segment_id", "species",
                                                                 "score"]]
    ver = verified[["segment_id", "species", "score", "correct"]]
    out = [species_thresholds(ver, pool, (), options)]
    if by_site and segments is not None and "site" in segments.columns:
        site = segments[["segment_id", "site"]].astype({"segment_id": str, "site": str})
        out.append(species_thresholds(ver.merge(site, on="segment_id"),
                                      pool.merge(site, on="segment_id"), ("site",), options))
    return pd.concat(out, ignore_index=True)


def round_density(sample: pd.DataFrame, labels: pd.DataFrame, predictions: pd.DataFrame,
                  segments: pd.DataFrame, label_set: Sequence[str],
                  strata: Sequence[str] = ("site",), seed: int = 0) -> pd.DataFrame:
    """``density.csv`` from a round drawn by the ``verification`` design; otherwise one row
    per species saying why it cannot be estimated."""
    if "design_species" not in sample.columns:
        return pd.DataFrame({"species": list(label_set), "stratum": "",
                             "note": "not estimable: this round's units were not drawn by "
                                     "the verification design (strategy verification)"})
    agreed = consensus_answers(labels, label_set)
    pool = (predictions.rename(columns={"segment_id": "unit_id", "confidence": "score"})
            [["unit_id", "species", "score"]])
    meta = segments[["segment_id", *strata]].rename(columns={"segment_id": "unit_id"})
    out = []
    for sp, drawn in sample.groupby("design_species", sort=True):
        # windows the detector did not list for sp score below every listed one: give them 0
        sp_pool = meta.merge(pool[pool["species"] == sp][["unit_id", "score"]], on="unit_id",
                             how="left").fillna({"score": 0.0}).assign(species=sp)
        ver = agreed[(agreed["species"] == sp)
                     & agreed["unit_id"].isin(set(drawn["unit_id"].astype(str)))]
        out.append(call_density(sp_pool, ver, strata=list(strata), seed=seed).assign(note=""))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def stop_set(segment_ids: Sequence[str], exclude: set[str], n: int, seed: int) -> list[str]:
    """A fixed random set of ``n`` segment ids outside ``exclude`` (e.g. the test set)."""
    pool = np.array(sorted(set(map(str, segment_ids)) - exclude), dtype=object)
    rng = np.random.default_rng(seed)
    take = min(n, pool.size)
    return sorted(pool[rng.choice(pool.size, size=take, replace=False)].tolist())


def stop_decisions(predictions: pd.DataFrame, stop_ids: Sequence[str],
                   thresholds: Mapping[str, float], label_set: Sequence[str]) -> np.ndarray:
    """Binary decisions ``[len(stop_ids), len(label_set)]`` of one round's model: its top-k
    predictions at or above the species' threshold (species outside the top-k: no)."""
    ids = pd.Index(list(stop_ids))
    sp = pd.Index(list(label_set))
    p = predictions[predictions["segment_id"].astype(str).isin(set(ids))]
    out = np.zeros((len(ids), len(sp)), dtype=bool)
    r = ids.get_indexer(p["segment_id"].astype(str))
    c = sp.get_indexer(p["species"])
    thr = np.array([thresholds.get(s, 0.5) for s in sp])
    ok = (r >= 0) & (c >= 0)
    hit = p["confidence"].to_numpy()[ok] >= thr[c[ok]]
    out[r[ok][hit], c[ok][hit]] = True
    return out


def round_stopping(n_labels: Sequence[float], metric: Sequence[float],
                   decisions: Sequence[np.ndarray], options: StoppingOptions | None = None,
                   metric_name: str = "macro_ap") -> dict[str, Any]:
    """The ``stopping`` block of metrics.json."""
    rep = stopping_report(n_labels, metric, decisions, options).to_dict()
    rep["metric"] = metric_name
    rep["n_stop_units"] = int(decisions[-1].shape[0]) if len(decisions) else 0
    return rep
