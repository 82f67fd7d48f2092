"""From labels to answers, per round: thresholds, call density, the stopping rule, figures.

Step functions behind ``rule round_answers`` (scripts/round_answers.py) and the tests:

* :func:`verification_answers` turns the experts' answers into *verification labels*: for every
  reviewed segment unit and every species the detector suggested for it (its top-k rows in
  ``predictions.parquet``), the detector's score and whether the species is really there.
  Several annotators: the (unit, species) is kept only when they agree; unsure and conflicting
  answers are left out (and counted).
* :func:`round_thresholds` -> ``thresholds.csv``: per species (and per site where the labels
  allow) the score reaching precision 0.85 / 0.90 / 0.95 / 0.99 with an interval
  (:func:`activepam.sampling.verification.species_thresholds`). The pool is every suggestion of that
  species in ``predictions.parquet`` (top-k per segment: scores below the k-th are not stored,
  which only matters for thresholds near zero).
* :func:`round_density` -> ``density.csv``: call density per species x stratum from the units
  drawn by the ``verification`` design (their ``design_species`` / ``design_bin``); a round
  sampled otherwise is reported as not estimable, since its units are no random draw within
  score bins.
* :func:`round_stopping` -> the ``stopping`` block of ``metrics.json``
  (:mod:`activepam.core.stopping`): decisions of every round's model on a fixed stop set of
  never-labelled segments, and the learning curve so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.stopping import StoppingOptions, stopping_report
from activepam.sampling.verification import ThresholdOptions, call_density, species_thresholds

VERIFICATION_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "segment_id",
    "species",
    "score",
    "correct",
    "n_annotators",
)


def consensus_answers(labels: pd.DataFrame, label_set: Sequence[str]) -> pd.DataFrame:
    """One answer per (unit, species) where the annotators agree: ``unit_id, species, present
    (1/0), n_annotators``; unsure, conflicting and disagreeing cells are dropped."""
    from activepam.rounds.train import label_cells

    cells = label_cells(labels, label_set)
    if cells.empty:
        return pd.DataFrame(columns=["unit_id", "species", "present", "n_annotators"])
    cells = cells[cells["answer"].isin(["present", "absent"])]
    g = cells.groupby(["unit_id", "species"], sort=True)["answer"]
    agg = g.agg(n_annotators="size", n_present=lambda a: int((a == "present").sum()))
    agg = agg.reset_index()
    agreed = agg[(agg["n_present"] == 0) | (agg["n_present"] == agg["n_annotators"])]
    return agreed.assign(present=(agreed["n_present"] > 0).astype(int))[
        ["unit_id", "species", "present", "n_annotators"]
    ].reset_index(drop=True)


def verification_answers(
    labels: pd.DataFrame, predictions: pd.DataFrame, label_set: Sequence[str]
) -> pd.DataFrame:
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
        agreed, on=["unit_id", "species"], how="inner"
    )
    return merged.assign(segment_id=merged["unit_id"], correct=merged["present"])[
        list(VERIFICATION_COLUMNS)
    ].reset_index(drop=True)


def round_thresholds(
    verified: pd.DataFrame,
    predictions: pd.DataFrame,
    segments: pd.DataFrame | None = None,
    by_site: bool = True,
    options: ThresholdOptions | None = None,
) -> pd.DataFrame:
    """``thresholds.csv``: overall rows (``group`` "") and, with ``by_site`` and a segments
    table, per-site rows (``group`` "site=..."; groups with too few labels say so in
    ``note``)."""
    pool = predictions.rename(columns={"confidence": "score"})[["segment_id", "species", "score"]]
    ver = verified[["segment_id", "species", "score", "correct"]]
    out = [species_thresholds(ver, pool, (), options)]
    if by_site and segments is not None and "site" in segments.columns:
        site = segments[["segment_id", "site"]].astype({"segment_id": str, "site": str})
        out.append(
            species_thresholds(
                ver.merge(site, on="segment_id"),
                pool.merge(site, on="segment_id"),
                ("site",),
                options,
            )
        )
    return pd.concat(out, ignore_index=True)


def round_density(
    sample: pd.DataFrame,
    labels: pd.DataFrame,
    predictions: pd.DataFrame,
    segments: pd.DataFrame,
    label_set: Sequence[str],
    strata: Sequence[str] = ("site",),
    seed: int = 0,
) -> pd.DataFrame:
    """``density.csv`` from a round drawn by the ``verification`` design; otherwise one row
    per species saying why it cannot be estimated."""
    if "design_species" not in sample.columns:
        return pd.DataFrame(
            {
                "species": list(label_set),
                "stratum": "",
                "note": "not estimable: this round's units were not drawn by "
                "the verification design (strategy verification)",
            }
        )
    if "design_strata" in sample.columns:  # estimate per the strata the design drew in
        text = str(sample["design_strata"].iloc[0] or "")
        strata = [c for c in text.split(",") if c]
    agreed = consensus_answers(labels, label_set)
    pool = predictions.rename(columns={"segment_id": "unit_id", "confidence": "score"})[
        ["unit_id", "species", "score"]
    ]
    from activepam.core.strata import stratum_column

    segments = segments.assign(
        **{c: stratum_column(segments, c) for c in strata if c not in segments.columns}
    )
    meta = segments[["segment_id", *strata]].rename(columns={"segment_id": "unit_id"})
    out = []
    for sp, drawn in sample.groupby("design_species", sort=True):
        # windows the detector did not list for sp score below every listed one: give them 0
        sp_pool = (
            meta.merge(pool[pool["species"] == sp][["unit_id", "score"]], on="unit_id", how="left")
            .fillna({"score": 0.0})
            .assign(species=sp)
        )
        ver = agreed[
            (agreed["species"] == sp) & agreed["unit_id"].isin(set(drawn["unit_id"].astype(str)))
        ]
        edges = None
        if "design_bin_edges" in drawn.columns:  # the bins the design drew from
            edges = {
                sp: np.array([float(e) for e in str(drawn["design_bin_edges"].iloc[0]).split(";")])
            }
        out.append(
            call_density(sp_pool, ver, strata=list(strata), seed=seed, edges=edges).assign(note="")
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def stop_set(segment_ids: Sequence[str], exclude: set[str], n: int, seed: int) -> list[str]:
    """A fixed random set of ``n`` segment ids outside ``exclude`` (e.g. the test set)."""
    pool = np.array(sorted(set(map(str, segment_ids)) - exclude), dtype=object)
    rng = np.random.default_rng(seed)
    take = min(n, pool.size)
    return sorted(pool[rng.choice(pool.size, size=take, replace=False)].tolist())


def stop_decisions(
    predictions: pd.DataFrame,
    stop_ids: Sequence[str],
    thresholds: Mapping[str, float],
    label_set: Sequence[str],
) -> np.ndarray:
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


def round_stopping(
    n_labels: Sequence[float],
    metric: Sequence[float],
    decisions: Sequence[np.ndarray],
    options: StoppingOptions | None = None,
    metric_name: str = "macro_ap",
) -> dict[str, Any]:
    """The ``stopping`` block of metrics.json."""
    rep = stopping_report(n_labels, metric, decisions, options).to_dict()
    rep["metric"] = metric_name
    rep["n_stop_units"] = int(decisions[-1].shape[0]) if len(decisions) else 0
    return rep


# --------------------------------------------------------------------------- round step


#: files written per round by rule round_answers (beside metrics.json)
ANSWER_OUTPUTS: tuple[str, ...] = (
    "thresholds.csv",
    "thresholds.png",
    "density.csv",
    "density.png",
    "reliability.png",
    "long_tail.png",
    "diel_activity.png",
    "embedding_map.png",
)


def _read_labels_files(files: Sequence[str]) -> pd.DataFrame:
    from activepam.core.labels import read_labels
    from activepam.rounds.train import concat_labels

    return concat_labels([read_labels(f) for f in files])


def local_solar_hour(segment_time: pd.Series, lon: pd.Series) -> np.ndarray:
    """Hour of local mean solar time (UTC + longitude / 15 h), 0..23."""
    t = pd.to_datetime(segment_time, utc=True)
    hours = t.dt.hour + t.dt.minute / 60.0 + lon.astype(float).fillna(0.0) / 15.0
    return np.floor(np.mod(hours.to_numpy(dtype=float), 24.0)).astype(int)


def diel_scores(
    predictions: pd.DataFrame, segments: pd.DataFrame, exclude: set[str], label_set: Sequence[str]
) -> pd.DataFrame:
    """Wide table of the round model's scores of every unlabelled segment (species outside a
    segment's top-k count 0) with ``site`` and ``solar_hour``."""
    seg = segments[~segments["segment_id"].astype(str).isin(exclude)]
    p = predictions[predictions["segment_id"].isin(set(seg["segment_id"]))]
    wide = (
        p.pivot_table(index="segment_id", columns="species", values="confidence", aggfunc="max")
        .reindex(columns=list(label_set))
        .fillna(0.0)
    )
    meta = seg.set_index("segment_id")[["site", "segment_time", "lon"]].reindex(wide.index)
    wide["site"] = meta["site"].astype(str).to_numpy()
    wide["solar_hour"] = local_solar_hour(meta["segment_time"], meta["lon"])
    return wide.reset_index(drop=True)


def write_round_answers(
    out_dir: str,
    label_files: Sequence[str],
    detector_predictions: str,
    sample_predictions: str,
    round_predictions: str,
    segments: str,
    sample: str,
    model: str,
    sidecar: str,
    per_species: str,
    test_set: str,
    test_labels: str,
    embeddings: str,
    label_set: Sequence[str],
    threshold_options: ThresholdOptions | None = None,
    density_strata: Sequence[str] = ("site",),
    map_pool: int = 3000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything of :data:`ANSWER_OUTPUTS` for one round; returns a short summary."""
    import json
    from pathlib import Path

    from activepam.core.io import write_csv
    from activepam.plots import evaluation as E
    from activepam.rounds.rounds import evaluation_matrices
    from activepam.sampling.sources import ParquetEmbeddings
    from activepam.sampling.verification import plot_density, plot_thresholds

    out = Path(out_dir)
    labels = _read_labels_files(label_files)
    seg = pd.read_parquet(segments).astype({"segment_id": str})
    detector = pd.read_parquet(
        detector_predictions, columns=["segment_id", "species", "confidence"]
    )
    # thresholds of the detector (BirdNET) from every verification answer so far
    ver = verification_answers(labels, detector, label_set)
    thr = round_thresholds(ver, detector, seg, options=threshold_options)
    write_csv(thr, out / "thresholds.csv", stage="answers")
    plot_thresholds(ver, thr, out / "thresholds.png")
    # call density: only from a round drawn by the verification design
    drawn = pd.read_parquet(sample)
    round_labels = _read_labels_files(label_files[-1:])
    design_preds = pd.read_parquet(
        sample_predictions, columns=["segment_id", "species", "confidence"]
    )
    dens = round_density(drawn, round_labels, design_preds, seg, label_set, density_strata, seed)
    write_csv(dens, out / "density.csv", stage="answers")
    plot_density(dens, out / "density.png")
    # reliability on the test set
    t = evaluation_matrices(
        model, test_set, test_labels, embeddings, detector_predictions, label_set
    )
    E.reliability_diagram(
        t.Y, t.P, label_set, out / "reliability.png", title=f"{out.name}: test set"
    )
    # long tail: per-species AP against training positives, coloured by strata covered
    per = pd.read_csv(per_species)
    summary = json.loads(Path(sidecar).read_text()).get("species", {})
    per["n_train_positive"] = per["species"].map(lambda s: summary.get(s, {}).get("n_pos", 0))
    pos = labels[(labels["present"] == 1) & (labels["species"] != "")]
    site = seg.set_index("segment_id")["site"]
    pos_site = pos.assign(site=pos["unit_id"].map(site))
    covered = pos_site.groupby("species")["site"].nunique()
    per["strata_covered"] = per["species"].map(covered).fillna(0).astype(int)
    metric = "ap" if "ap" in per.columns else next(c for c in per.columns if c.endswith("ap"))
    E.long_tail(per, out / "long_tail.png", metric=metric, title=f"{out.name}: long tail")
    # predicted diel activity of the round model over all unlabelled audio
    labelled = set(labels["unit_id"].astype(str))
    rp = pd.read_parquet(round_predictions, columns=["segment_id", "species", "confidence"])
    wide = diel_scores(rp, seg, labelled, label_set)
    act = E.diel_activity(wide, label_set, hour_column="solar_hour")
    E.diel_heatmaps(
        act,
        out / "diel_activity.png",
        hour_column="solar_hour",
        title=f"{out.name}: predicted activity by local solar hour",
    )
    # embedding map of pool, labelled and this round's sample
    rng = np.random.default_rng(seed)
    new = set(drawn["unit_id"].astype(str)) & set(seg["segment_id"])
    before = (labelled - set(round_labels["unit_id"].astype(str))) & set(seg["segment_id"])
    rest = np.array(sorted(set(seg["segment_id"]) - new - before), dtype=object)
    pool = rest[rng.choice(rest.size, size=min(map_pool, rest.size), replace=False)]
    ids = [*pool.tolist(), *sorted(before), *sorted(new)]
    X = ParquetEmbeddings(embeddings).fetch(ids, "segment_id")
    role = ["pool"] * len(pool) + ["labelled"] * len(before) + ["sampled"] * len(new)
    E.embedding_map(
        X,
        role,
        out / "embedding_map.png",
        seed=seed,
        title=f"{out.name}: pool, labelled before, sampled now",
    )
    reachable = thr[(thr["group"] == "") & thr["reachable"]]
    return {
        "n_verified": int(len(ver)),
        "species_with_threshold": int(reachable["species"].nunique()),
        "density_rows": int(dens["density"].notna().sum()) if "density" in dens else 0,
    }


def stopping_block(
    round_predictions: Sequence[str],
    sidecars: Sequence[str],
    previous_metrics: Sequence[str],
    current: Mapping[str, Any],
    segments: str,
    test_set: str,
    label_set: Sequence[str],
    n_stop: int,
    seed: int,
    options: StoppingOptions | None = None,
) -> dict[str, Any]:
    """The ``stopping`` block of round RR's metrics.json from rounds 00..RR (``current``: this
    round's metrics, not yet written)."""
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    seg_ids = pq.read_table(segments, columns=["segment_id"])["segment_id"].to_pylist()
    test = set(pd.read_csv(test_set, dtype={"unit_id": str})["unit_id"])
    stop = stop_set(seg_ids, test, n_stop, seed)
    decisions = []
    for pred, side in zip(round_predictions, sidecars):
        thr = {
            s: v["threshold"]
            for s, v in json.loads(Path(side).read_text()).get("species", {}).items()
        }
        p = pq.read_table(
            pred,
            columns=["segment_id", "species", "confidence"],
            filters=[("segment_id", "in", stop)],
        ).to_pandas()
        decisions.append(stop_decisions(p, stop, thr, label_set))
    hist = [json.loads(Path(m).read_text()) for m in previous_metrics] + [dict(current)]
    n = [h.get("n_labelled_units", 0) for h in hist]
    y = [(h.get("overall") or {}).get("macro_ap", np.nan) for h in hist]
    y = [np.nan if v is None else v for v in y]
    return round_stopping(n, y, decisions, options)
