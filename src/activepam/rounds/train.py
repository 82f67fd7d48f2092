"""Retraining per round: a logistic-regression probe on BirdNET embeddings, then re-scoring.

Targets (:func:`segment_targets`): every labelled unit labels its segments (a segment unit its
own 3 s segment, a recording unit all segments of the recording). An annotator who labelled a
unit says a species is present in a segment when one of their in-target ``present = 1`` rows
names it (for recording units: a selection overlapping that segment), absent otherwise - the
annotation is complete over the label set (closed world), so an empty Raven table is a negative
for every species. An in-target ``present = -1`` (:data:`UNSURE`) row is neither: that
annotator casts no vote for the species on the unit (for a timed selection of a recording
unit: on the segments it overlaps), and a ``conflict = 1`` row (one annotator giving two
different answers for a unit x species, flagged by the import) withdraws that annotator's vote
for the species on the whole unit. Several annotators (or units) on one segment vote; a tie or
no vote at all is unknown (NaN, masked out of training). Untimed positives of a recording unit
(CSV labels) say "somewhere in the recording": NaN for that species on the recording's
segments. :func:`label_cells` classifies every (unit, annotator, species) answer as present,
absent, unsure or conflict; the model's sidecar reports their counts per species.

Model (:class:`RoundModel`): each species with >= 1 positive and >= 1 negative label gets its
embeddings standardised on the segments it is trained on (so a masked cell, e.g. an unsure
answer, leaves no trace in that species' probe) and a one-vs-rest
``LogisticRegression(class_weight="balanced")``; with at least ``calibrate_min`` positives AND
negatives it is Platt-calibrated (``CalibratedClassifierCV(method="sigmoid")``), else its logit
is shifted by log(n_pos / n_neg) so that the balanced fit's 50/50 prior is mapped back to the
training prevalence (one probability scale for every species: the uncertainty scores of the
next round compare like with like; without the shift a rare species sits near 0.5 and its
binary entropy saturates). Species
without both classes fall back to BirdNET's own confidence (from ``predictions.parquet``, 0 when
not in a segment's top-k). A per-species decision threshold is tuned for F1 on out-of-fold
predictions of the training labels (``default_threshold`` when a species has < 2 labels of a
class). The model is saved with joblib beside a JSON sidecar holding the training-set hash
(sha256 of the sorted label rows) and per-species counts.

Re-scoring (:func:`rescore`) streams ``embeddings.parquet`` in batches and writes a table with
the SAME columns as ``segments.parquet`` (top-1 species, confidences, margin, binary entropies
recomputed over the label set with :mod:`activepam.core.uncertainty`) plus a top-k long predictions
table, so the next round's sampling and export run unchanged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from activepam.core.embeddings import embedding_matrix
from activepam.core.io import atomic_path, write_json, write_parquet
from activepam.core.labels import UNSURE
from activepam.core.uncertainty import segment_uncertainty, top_k

log = logging.getLogger(__name__)

#: answers of :func:`label_cells`, in the order of :data:`ANSWER_COUNTS`
ANSWERS: tuple[str, ...] = ("present", "absent", "unsure", "conflict")
#: per-species answer counts reported in the model sidecar and metrics
ANSWER_COUNTS: tuple[str, ...] = tuple(f"n_{a}" for a in ANSWERS)

#: a selection must overlap a segment by more than this (s) to label it (recording units)
MIN_OVERLAP_S = 0.1
#: columns hashed for the training-set hash (sorted rows, canonical CSV)
HASH_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_type",
    "recording_id",
    "start_s",
    "end_s",
    "species",
    "present",
    "in_target",
    "sel_begin_s",
    "sel_end_s",
    "annotator",
)
#: segments.parquet columns recomputed by re-scoring
RESCORED_COLUMNS: tuple[str, ...] = (
    "top1_species",
    "top1_confidence",
    "top2_confidence",
    "margin",
    "max_binary_entropy",
    "mean_binary_entropy",
)


class TrainError(ValueError):
    """Labels, embeddings or predictions do not fit together; the message names the file."""


@dataclass(frozen=True)
class TrainOptions:
    """Options of :func:`fit_round_model` (``train.*`` in params.yaml)."""

    C: float = 0.1
    max_iter: int = 500
    calibrate_min: int = 10
    cv_folds: int = 3
    default_threshold: float = 0.5
    seed: int = 0


# --------------------------------------------------------------------------- labels -> targets


def concat_labels(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Label tables of several rounds as one (empty frames allowed)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        from activepam.core.labels import LABEL_COLUMNS

        return pd.DataFrame(columns=list(LABEL_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def training_hash(labels: pd.DataFrame) -> str:
    """sha256 of the label rows (:data:`HASH_COLUMNS`, sorted, canonical CSV)."""
    cols = [c for c in HASH_COLUMNS if c in labels.columns]
    df = labels[cols].copy()
    for c in cols:
        if pd.api.types.is_float_dtype(df[c]):
            df[c] = df[c].round(4)
    df = df.astype(str).sort_values(cols, kind="stable").reset_index(drop=True)
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()


def _conflict_mask(rows: pd.DataFrame) -> pd.Series:
    """Rows flagged ``conflict = 1`` by the import (no such column: none)."""
    if "conflict" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return pd.to_numeric(rows["conflict"], errors="coerce").fillna(0).astype(int) == 1


def _answer_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """In-target rows naming a species that say more than the closed world's "absent": present,
    unsure or conflict-flagged rows."""
    keep = (rows["in_target"] == 1) & (rows["species"] != "")
    return rows[keep & ((rows["present"] != 0) | _conflict_mask(rows))]


def _species_index(rows: pd.DataFrame, label_set: Sequence[str]) -> np.ndarray:
    """Label-set column of each row; raises naming the first species outside the label set."""
    j = pd.Index(list(label_set)).get_indexer(rows["species"])
    if (j < 0).any():
        bad = rows.iloc[int(np.flatnonzero(j < 0)[0])]
        raise TrainError(
            f"labels: species {bad['species']!r} (unit {bad['unit_id']}) is not in the label set"
        )
    return j


def _pair_segments(pairs: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """The segments each (unit, annotator) pair labels: ``pair, segment_id, start_s, end_s``
    sorted by pair (a segment unit its own segment, a recording unit all its segments)."""
    seg = segments[["segment_id", "recording_id", "start_s", "end_s"]].assign(
        segment_id=lambda d: d["segment_id"].astype(str),
        recording_id=lambda d: d["recording_id"].astype(str),
    )
    rec = pairs["unit_type"].to_numpy() == "recording"
    known_recs = set(seg["recording_id"])
    missing = ~pairs.loc[rec, "recording_id"].isin(known_recs)
    if missing.any():
        r = pairs.loc[rec].loc[missing.to_numpy()].iloc[0]
        raise TrainError(
            f"labels: recording {r['recording_id']!r} of unit {r['unit_id']!r} has "
            "no segments in the segments table"
        )
    units = pairs.loc[~rec]
    missing = ~units["unit_id"].isin(set(seg["segment_id"]))
    if missing.any():
        raise TrainError(
            f"labels: unit {units.loc[missing, 'unit_id'].iloc[0]!r} is not a "
            "segment of the segments table"
        )
    own = pd.DataFrame(
        {
            "pair": units["pair"].to_numpy(),
            "segment_id": units["unit_id"].to_numpy(),
            "start_s": units["start_s"].to_numpy(float),
            "end_s": units["end_s"].to_numpy(float),
        }
    )
    whole = pairs.loc[rec, ["pair", "recording_id"]].merge(seg, on="recording_id", sort=False)
    out = pd.concat([own, whole[["pair", "segment_id", "start_s", "end_s"]]], ignore_index=True)
    return out.sort_values("pair", kind="stable").reset_index(drop=True)


def segment_targets(
    labels: pd.DataFrame, segments: pd.DataFrame, label_set: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment 0/1/NaN targets from label rows (see the module docstring).

    Returns ``(segment_ids, Y)``: the labelled segments (sorted) and ``Y [n, n_species]``.
    Vectorised over (unit, annotator) pairs: every pair votes on each segment it labels
    (closed world: 0 unless a row says otherwise), then the votes are counted per segment.
    """
    n_sp = len(label_set)
    if labels.empty:
        return np.zeros(0, dtype=object), np.zeros((0, n_sp))
    lab = labels.reset_index(drop=True)
    uid, ann = lab["unit_id"].astype(str), lab["annotator"].astype(str)
    pair = lab.groupby([uid, ann], sort=True).ngroup().to_numpy()
    pairs = (
        lab.assign(pair=pair, unit_id=uid, recording_id=lab["recording_id"].astype(str))
        .drop_duplicates("pair")
        .sort_values("pair", kind="stable")
    )
    ps = _pair_segments(pairs, segments)
    bounds = np.searchsorted(ps["pair"].to_numpy(), np.arange(len(pairs) + 1))
    is_rec = pairs["unit_type"].to_numpy() == "recording"
    # answer rows, each expanded to the pair-segment rows of its pair
    ans = _answer_rows(lab)
    j = _species_index(ans, label_set)
    a_pair = pair[ans.index.to_numpy()]
    lengths = bounds[a_pair + 1] - bounds[a_pair]
    rep = np.repeat(np.arange(len(ans)), lengths)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    row = bounds[a_pair][rep] + within  # pair-segment row of every expanded entry
    col = j[rep]
    begin = ans["sel_begin_s"].to_numpy(float)[rep]
    end = ans["sel_end_s"].to_numpy(float)[rep]
    rec = is_rec[a_pair][rep]
    timed = np.isfinite(begin) & np.isfinite(end)
    overlap = np.minimum(ps["end_s"].to_numpy(float)[row], end) - np.maximum(
        ps["start_s"].to_numpy(float)[row], begin
    )
    hit = ~rec | ~timed | (overlap > MIN_OVERLAP_S)
    present = ans["present"].to_numpy()[rep]
    conflict = _conflict_mask(ans).to_numpy()[rep]
    V = np.zeros((len(ps), n_sp))
    unsure = (present == UNSURE) & ~conflict & hit
    V[row[unsure], col[unsure]] = np.nan
    sure = (present == 1) & ~conflict
    pos = sure & hit & (~rec | timed)
    V[row[pos], col[pos]] = 1.0
    somewhere = sure & rec & ~timed  # untimed positive: unknown where it does not say 1
    somewhere &= V[row, col] != 1.0
    V[row[somewhere], col[somewhere]] = np.nan
    V[row[conflict], col[conflict]] = np.nan  # not trained on until resolved
    out_ids, inv = np.unique(ps["segment_id"].to_numpy(dtype=object), return_inverse=True)
    known = ~np.isnan(V)
    P = np.zeros((len(out_ids), n_sp))
    C = np.zeros((len(out_ids), n_sp))
    np.add.at(P, inv, np.where(known, V, 0.0))
    np.add.at(C, inv, known.astype(float))
    Y = np.where(C == 0, np.nan, np.where(2 * P > C, 1.0, np.where(2 * P < C, 0.0, np.nan)))
    return out_ids.astype(object), Y


def label_cells(labels: pd.DataFrame, label_set: Sequence[str]) -> pd.DataFrame:
    """The answer of every (unit, annotator, species) of the label set (closed world).

    ``conflict`` when a row of the cell is flagged ``conflict = 1``, else ``present`` with an
    in-target present row, else ``unsure`` with an in-target unsure row, else ``absent``.
    Returns ``unit_id, annotator, species, answer`` (one row per cell, sorted by unit and
    annotator, species in label-set order).
    """
    cols = ["unit_id", "annotator", "species", "answer"]
    sp = list(label_set)
    if labels.empty or not sp:
        return pd.DataFrame(columns=cols)
    labels = labels.reset_index(drop=True)
    keys = labels[["unit_id", "annotator"]].astype(str)
    pairs = keys.drop_duplicates().sort_values(["unit_id", "annotator"], kind="stable")
    pair_index = pd.MultiIndex.from_frame(pairs)
    answers = _answer_rows(labels)
    a_keys = keys.loc[answers.index]
    rows = pair_index.get_indexer(pd.MultiIndex.from_frame(a_keys))
    j = _species_index(answers, sp)
    code = np.ones((len(pairs), len(sp)), dtype=np.int8)  # 0 present 1 absent 2 unsure 3 confl.
    present = answers["present"].to_numpy()
    flagged = _conflict_mask(answers).to_numpy()
    for value, mask in ((2, present == UNSURE), (0, present == 1), (3, flagged)):
        code[rows[mask], j[mask]] = value
    return pd.DataFrame(
        {
            "unit_id": np.repeat(pairs["unit_id"].to_numpy(), len(sp)),
            "annotator": np.repeat(pairs["annotator"].to_numpy(), len(sp)),
            "species": np.tile(np.asarray(sp, dtype=object), len(pairs)),
            "answer": np.asarray(ANSWERS, dtype=object)[code.ravel()],
        }
    )


def answer_counts(
    cells: pd.DataFrame, by: str = "species", index: Sequence[str] | None = None
) -> pd.DataFrame:
    """Counts :data:`ANSWER_COUNTS` of :func:`label_cells` per ``by`` value (rows ``index``,
    zeros where a value has no cells)."""
    tab = pd.crosstab(cells[by], cells["answer"]) if len(cells) else pd.DataFrame()
    tab = tab.reindex(columns=list(ANSWERS), fill_value=0)
    if index is not None:
        tab = tab.reindex(list(index), fill_value=0)
    tab.columns = list(ANSWER_COUNTS)
    return tab.astype(int)


# --------------------------------------------------------------------------- features


def read_embeddings(path: str | Path, segment_ids: Iterable[str]) -> np.ndarray:
    """Embeddings of ``segment_ids`` in that order; raises naming the first missing id."""
    ids = [str(s) for s in segment_ids]
    if not ids:
        return np.zeros((0, 0), dtype=np.float32)
    table = pq.read_table(
        path, columns=["segment_id", "embedding"], filters=[("segment_id", "in", sorted(set(ids)))]
    )
    got = {s: i for i, s in enumerate(table.column("segment_id").to_pylist())}
    missing = [s for s in ids if s not in got]
    if missing:
        raise TrainError(
            f"{path}: no embedding for segment {missing[0]!r} ({len(missing)} missing)"
        )
    emb = embedding_matrix(table.column("embedding"), path, TrainError)
    return emb[[got[s] for s in ids]]


def birdnet_matrix(
    predictions: str | Path | pd.DataFrame, segment_ids: Iterable[str], label_set: Sequence[str]
) -> np.ndarray:
    """BirdNET confidence ``[n, n_species]`` of the label set (0 when not in the top-k)."""
    ids = pd.Index([str(s) for s in segment_ids])
    if isinstance(predictions, pd.DataFrame):
        pred = predictions[predictions["species"].isin(list(label_set))]
    else:
        pred = pq.read_table(
            predictions,
            columns=["segment_id", "species", "confidence"],
            filters=[("species", "in", list(label_set))],
        ).to_pandas()
    out = np.zeros((len(ids), len(label_set)), dtype=np.float64)
    if pred.empty or not len(ids):
        return out
    rows = ids.get_indexer(pred["segment_id"].astype(str))
    cols = pd.Index(list(label_set)).get_indexer(pred["species"])
    ok = (rows >= 0) & (cols >= 0)
    np.maximum.at(out, (rows[ok], cols[ok]), pred["confidence"].to_numpy(np.float64)[ok])
    return out


# --------------------------------------------------------------------------- model


@dataclass
class SpeciesModel:
    """How one species is scored: ``probe``, ``calibrated`` (Platt) or ``birdnet`` fallback."""

    kind: str
    n_pos: int
    n_neg: int
    threshold: float
    estimator: Any = None
    #: standardisation fitted on this species' training segments (None: the model's shared one,
    #: fitted on every labelled segment - the same when no cell of the species is masked)
    scaler: Any = None
    #: labelled segments left out of this species' fit (unsure, conflict, tied votes)
    n_masked: int = 0
    #: log-odds added to an uncalibrated balanced probe's logit: log(n_pos / n_neg), which maps
    #: its 50/50-prior probability back to the training prevalence (0 for other kinds)
    prior_logit: float = 0.0

    def proba(self, Xs: np.ndarray) -> np.ndarray:
        """P(present) of the (standardised) rows ``Xs``: calibrated, or prior-corrected."""
        p = self.estimator.predict_proba(Xs)[:, 1]
        shift = float(getattr(self, "prior_logit", 0.0))  # models pickled before have none
        if shift:
            with np.errstate(divide="ignore"):
                z = np.log(p) - np.log1p(-p) + shift
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
        return p


@dataclass
class RoundModel:
    """Per-species probes over standardised embeddings, with BirdNET fallback."""

    label_set: list[str]
    species: dict[str, SpeciesModel]
    scaler: Any
    training_hash: str
    options: dict[str, Any] = field(default_factory=dict)
    #: answers per species of the training labels (:data:`ANSWER_COUNTS`)
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([self.species[s].threshold for s in self.label_set])

    def predict(self, X: np.ndarray | None, birdnet: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, n_species]`` from embeddings ``X`` and BirdNET scores."""
        P = np.array(birdnet, dtype=np.float64, copy=True)
        probes = [j for j, s in enumerate(self.label_set) if self.species[s].kind != "birdnet"]
        if probes and X is not None and len(X):
            shared = None
            for j in probes:
                m = self.species[self.label_set[j]]
                if getattr(m, "scaler", None) is not None:
                    Xs = m.scaler.transform(X)
                else:
                    shared = self.scaler.transform(X) if shared is None else shared
                    Xs = shared
                P[:, j] = m.proba(Xs)
        return P

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no estimators): kind, segments fitted on (``n_pos``,
        ``n_neg``) and left out (``n_masked``), threshold, and the training answers
        (:data:`ANSWER_COUNTS`: present, absent, unsure, conflict)."""
        counts = getattr(self, "label_counts", None) or {}
        return {
            s: {
                "kind": m.kind,
                "n_pos": m.n_pos,
                "n_neg": m.n_neg,
                "n_masked": int(getattr(m, "n_masked", 0)),
                "threshold": round(float(m.threshold), 6),
                **{k: int(counts.get(s, {}).get(k, 0)) for k in ANSWER_COUNTS},
            }
            for s, m in self.species.items()
        }


def _lr(opts: TrainOptions) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=opts.C, class_weight="balanced", max_iter=opts.max_iter)


def tune_threshold(y: np.ndarray, p: np.ndarray, default: float = 0.5) -> float:
    """Threshold maximising F1 of ``p >= t`` (midpoints between sorted scores); ``default``
    without both classes."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return default
    s = np.unique(p)
    mids = (s[:-1] + s[1:]) / 2.0 if len(s) > 1 else np.zeros(0)
    cands = np.concatenate([mids, [default]])
    best_t, best_f = default, -1.0
    for t in cands:
        pred = p >= t
        tp = np.sum(pred & y)
        f = 2 * tp / max(1, pred.sum() + y.sum())
        closer = abs(t - default) < abs(best_t - default)  # ties: nearest to the default
        if f > best_f + 1e-12 or (abs(f - best_f) <= 1e-12 and closer):
            best_t, best_f = float(t), f
    return best_t


def _fit_species(X: np.ndarray, y: np.ndarray, opts: TrainOptions) -> SpeciesModel:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    calibrate = n_pos >= opts.calibrate_min and n_neg >= opts.calibrate_min
    folds = min(opts.cv_folds, n_pos, n_neg)
    oof = None
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=opts.seed)
        oof = cross_val_predict(_lr(opts), X, y, cv=cv, method="decision_function")
    if calibrate:
        cv = StratifiedKFold(folds, shuffle=True, random_state=opts.seed)
        est = CalibratedClassifierCV(_lr(opts), method="sigmoid", cv=cv, ensemble=False).fit(X, y)
        calibrator = est.calibrated_classifiers_[0].calibrators[0]
        oof_p = calibrator.predict(oof) if oof is not None else None
        kind = "calibrated"
    else:
        # class_weight="balanced" fits a 50/50 prior: shift the logit back to the training
        # prevalence, so that a rare species' probability is not pushed towards 0.5
        est = _lr(opts).fit(X, y)
        prior = float(np.log(n_pos / n_neg))
        oof_p = 1.0 / (1.0 + np.exp(-(oof + prior))) if oof is not None else None
        kind = "probe"
        thr = (
            tune_threshold(y, oof_p, opts.default_threshold)
            if oof_p is not None
            else opts.default_threshold
        )
        return SpeciesModel(kind, n_pos, n_neg, thr, est, prior_logit=prior)
    thr = (
        tune_threshold(y, oof_p, opts.default_threshold)
        if oof_p is not None
        else opts.default_threshold
    )
    return SpeciesModel(kind, n_pos, n_neg, thr, est)


def fit_round_model(
    X: np.ndarray,
    Y: np.ndarray,
    label_set: Sequence[str],
    opts: TrainOptions = TrainOptions(),
    train_hash: str = "",
    birdnet: np.ndarray | None = None,
    label_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> RoundModel:
    """Fit the per-species probes on labelled segments ``X [n, d]``, ``Y [n, n_species]``.

    A NaN cell of ``Y`` (unsure, conflict, tie) is left out of that species' fit entirely: the
    species is standardised and fitted on its known cells only, so its probe is the one trained
    without those segments. ``label_counts`` (species -> :data:`ANSWER_COUNTS`, see
    :func:`label_cells`) is kept for the summary. ``birdnet`` (BirdNET scores of the same
    segments) tunes the thresholds of fallback species when they have both classes (they never
    do without a probe, so this is a hook for later).
    """
    from sklearn.preprocessing import StandardScaler

    if len(X) != len(Y):
        raise TrainError(f"{len(X)} embeddings but {len(Y)} label rows")
    scaler = StandardScaler().fit(X) if len(X) else None
    Xs = scaler.transform(X) if scaler is not None else X
    species: dict[str, SpeciesModel] = {}
    for j, sp in enumerate(
        tqdm(label_set, desc="train", unit="species", file=sys.stderr, disable=None)
    ):
        mask = ~np.isnan(Y[:, j]) if len(Y) else np.zeros(0, dtype=bool)
        y = Y[mask, j].astype(int) if len(Y) else np.zeros(0, dtype=int)
        n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
        n_masked = int(len(mask) - mask.sum())
        if n_pos >= 1 and n_neg >= 1:
            if n_masked:  # standardise on the species' own training segments
                own = StandardScaler().fit(X[mask])
                species[sp] = _fit_species(own.transform(X[mask]), y, opts)
                species[sp].scaler = own
            else:
                species[sp] = _fit_species(Xs, y, opts)
        else:
            species[sp] = SpeciesModel("birdnet", n_pos, n_neg, opts.default_threshold)
        species[sp].n_masked = n_masked
    counts = {str(k): {c: int(n) for c, n in v.items()} for k, v in (label_counts or {}).items()}
    return RoundModel(list(label_set), species, scaler, train_hash, asdict(opts), counts)


def save_model(
    model: RoundModel, path: str | Path, sidecar: str | Path, extra: Mapping[str, Any] | None = None
) -> None:
    """joblib dump of the model + JSON sidecar (training hash, species summary, ``extra``)."""
    import joblib
    import sklearn

    with atomic_path(path, "train") as tmp:
        joblib.dump(model, tmp)
    kinds = pd.Series([m.kind for m in model.species.values()]).value_counts().to_dict()
    write_json(
        {
            "training_hash": model.training_hash,
            "options": model.options,
            "n_species": len(model.label_set),
            "kinds": kinds,
            "species": model.summary(),
            "sklearn": sklearn.__version__,
            **(extra or {}),
        },
        sidecar,
        stage="train",
    )


#: where the model's classes lived before the package layout (models saved by older versions
#: name them there; they load as the same classes)
LEGACY_MODULES: dict[str, str] = {"activepam.train": "activepam.rounds.train"}

#: globals a round model file may name: its own classes, the scikit-learn estimators it holds
#: (classes only) and numpy's array reconstruction. Anything else is refused before it runs:
#: model files arrive from collaborators through ``dvc pull``.
_MODEL_GLOBALS: frozenset[str] = frozenset(
    {
        "activepam.rounds.train.RoundModel",
        "activepam.rounds.train.SpeciesModel",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "builtins.slice",
        "builtins.complex",
        "builtins.set",
        "builtins.frozenset",
        "copyreg._reconstructor",
        "builtins.object",
    }
)


def _model_global(module: str, name: str) -> bool:
    full = f"{module}.{name}"
    if full in _MODEL_GLOBALS:
        return True
    if module.split(".")[0] == "sklearn" and not name.startswith("__"):
        import importlib

        obj = getattr(importlib.import_module(module), name, None)
        return isinstance(obj, type)  # estimator/splitter classes, never functions
    return False


def load_model(path: str | Path) -> RoundModel:
    """A model saved by :func:`save_model` (also by versions before the package layout).

    Read with a restricted unpickler: only the globals a round model consists of are resolved,
    so a crafted file cannot run code; anything else raises :class:`TrainError` naming it.
    """
    from joblib import numpy_pickle

    class _ModelUnpickler(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            module = LEGACY_MODULES.get(module, module)
            if not _model_global(module, name):
                raise TrainError(
                    f"{path}: refusing to load {module}.{name}: a round model file "
                    "holds only activepam, scikit-learn and numpy objects"
                )
            return super().find_class(module, name)

    with open(path, "rb") as fobj:
        try:
            model = _ModelUnpickler(str(path), fobj, True).load()
        except TrainError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt file: say which
            raise TrainError(f"{path}: not a readable round model ({exc})") from exc
    if not isinstance(model, RoundModel):
        raise TrainError(f"{path}: not an activepam round model")
    return model


# --------------------------------------------------------------------------- re-scoring


def score_segments(
    model: RoundModel,
    segment_ids: Sequence[str],
    embeddings: str | Path,
    predictions: str | Path | pd.DataFrame,
    batch_size: int = 8192,
) -> np.ndarray:
    """Probabilities ``[n, n_species]`` for ``segment_ids`` (in that order), streaming the
    embeddings; segments without an embedding keep BirdNET's scores for every species."""
    ids = pd.Index([str(s) for s in segment_ids])
    P = birdnet_matrix(predictions, ids, model.label_set)
    if all(m.kind == "birdnet" for m in model.species.values()):
        return P
    pf = pq.ParquetFile(embeddings)
    seen = np.zeros(len(ids), dtype=bool)
    total = pf.metadata.num_rows
    with tqdm(total=total, desc="rescore", unit="seg", file=sys.stderr, disable=None) as bar:
        for batch in pf.iter_batches(batch_size=batch_size, columns=["segment_id", "embedding"]):
            rows = ids.get_indexer(batch.column("segment_id").to_pylist())
            ok = rows >= 0
            if ok.any():
                X = embedding_matrix(batch.column("embedding"), error=TrainError)[ok]
                P[rows[ok]] = model.predict(X, P[rows[ok]])
                seen[rows[ok]] = True
            bar.update(batch.num_rows)
    if not seen.all():
        log.warning("%d segment(s) have no embedding: BirdNET scores kept", int((~seen).sum()))
    return P


def rescored_segments(
    segments: pd.DataFrame, P: np.ndarray, label_set: Sequence[str]
) -> pd.DataFrame:
    """``segments`` with :data:`RESCORED_COLUMNS` recomputed from ``P`` (same column order and
    dtypes)."""
    if len(P) != len(segments):
        raise TrainError(f"{len(P)} score rows for {len(segments)} segments")
    u = (
        segment_uncertainty(P)
        if len(P)
        else {k: np.zeros(0) for k in ("top1_index", *RESCORED_COLUMNS[1:])}
    )
    out = segments.copy()
    labels = np.asarray(list(label_set), dtype=object)
    new = {
        "top1_species": labels[u["top1_index"].astype(int)] if len(P) else np.zeros(0, object),
        **{c: u[c] for c in RESCORED_COLUMNS[1:]},
    }
    for c, v in new.items():
        if c in out.columns and c != "top1_species":
            out[c] = pd.Series(v, index=out.index).astype(out[c].dtype)
        else:
            out[c] = v
    return out


def predictions_long(
    segments: pd.DataFrame, P: np.ndarray, label_set: Sequence[str], k: int = 10
) -> pd.DataFrame:
    """Top-``k`` long table (columns of ``predictions.parquet``) from a score matrix."""
    idx, val = top_k(P, k)
    n, kk = idx.shape
    rep = np.repeat(np.arange(n), kk)
    base = segments.iloc[rep][["segment_id", "recording_id", "path", "start_s", "end_s"]]
    out = base.reset_index(drop=True)
    out["rank"] = np.tile(np.arange(1, kk + 1), n).astype(np.int16)
    out["species"] = np.asarray(list(label_set), dtype=object)[idx.ravel()]
    out["confidence"] = val.ravel().astype(np.float32)
    return out


# --------------------------------------------------------------------------- one round


def train_round(
    label_files: Sequence[str | Path],
    segments: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: Sequence[str],
    model_out: str | Path,
    sidecar_out: str | Path,
    scored_out: str | Path,
    predictions_out: str | Path,
    opts: TrainOptions = TrainOptions(),
    top_k_out: int = 10,
    round_label: str = "",
) -> RoundModel:
    """Train on the labels of rounds 0..R, save the model, re-score every segment."""
    from activepam.core.labels import read_labels

    labels = concat_labels([read_labels(f) for f in label_files])
    seg = pd.read_parquet(segments)
    ids, Y = segment_targets(labels, seg, label_set)
    X = read_embeddings(embeddings, ids)
    counts = answer_counts(label_cells(labels, label_set), index=label_set)
    model = fit_round_model(
        X, Y, label_set, opts, training_hash(labels), label_counts=counts.to_dict("index")
    )
    extra = {
        "round": round_label,
        "label_files": [Path(f).as_posix() for f in label_files],
        "n_label_rows": int(len(labels)),
        "n_units": int(labels["unit_id"].nunique()),
        "n_segments": int(len(ids)),
        "n_positive_cells": int(np.nansum(Y)) if len(Y) else 0,
        "n_masked_cells": int(np.isnan(Y).sum()) if len(Y) else 0,
        "answers": {k: int(counts[k].sum()) for k in ANSWER_COUNTS},
    }
    save_model(model, model_out, sidecar_out, extra)
    log.info("model %s: %s", round_label, extra)
    P = score_segments(model, seg["segment_id"], embeddings, predictions)
    write_parquet(rescored_segments(seg, P, label_set), scored_out, stage="train")
    write_parquet(predictions_long(seg, P, label_set, top_k_out), predictions_out, stage="train")
    return model
