"""Active-learning rounds: plan, sampling with exclusions, the simulated annotator, evaluation.

One round ``RR`` (``rounds.plan`` in params.yaml; Snakemake rules in workflow/rules/rounds.smk,
DVC stages ``export@RR`` and ``round@RR``)::

    sample   the plan's score table (round 00: BirdNET's results/detect/segments.parquet, later:
             round RR-1's segments_scored.parquet), excluding every unit labelled so far and
             the test set                                  -> round_RR/sample.parquet
    export   clips + spectrograms + pre-filled Raven tables -> round_RR/annotation/
    label    experts correct the tables; `activepam labels import` -> data/labels/round_RR.csv
             (demo: :func:`simulate_annotation` fills the tables from the generator's ground
             truth and the SAME import code writes the label file)
    train    probe on the labels of rounds 00..RR, re-score all segments
                                                            -> round_RR/model.joblib, ...
    evaluate on the held-out test set                       -> round_RR/metrics.json

The simulated annotator (:class:`Oracle`) answers like an expert in Raven: the model's
pre-filled species that are truly present get ``Present`` = 1, the wrong ones 0, and every
missed species gets a new selection box (the true call's time and frequency range, clipped to
the target). Presence follows the generator's rule (>= 0.5 s of a call, or half of a call
shorter than 1 s, inside the segment), so the oracle agrees with ``ground_truth.parquet``.
Every row it writes has an explicit ``Present`` value; with ``rounds.simulated_unsure`` = p
(default 0) it answers ``unsure`` for each (unit, species) it would answer with probability p
(seeded per unit), to exercise the unsure path end to end.

Unsure answers (``present = -1``) are not labels: training masks them, evaluation counts them
(:func:`label_report`: per species and per stratum, in ``metrics.json`` under ``labels``). With
the strategy option ``reoffer_unsure: true`` a unit whose answers so far are all unsure
(:func:`unsure_units`) stays in the sampling pool and, when it is sampled again, goes to an
annotator other than the ones who were unsure (``unsure_by`` column of the sample, honoured by
:func:`activepam.rounds.export.assign_batches`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activepam.core.io import write_csv, write_json, write_parquet
from activepam.core.labels import UNSURE, read_labels, round_name
from activepam.core.presence import call_present
from activepam.rounds.export import (
    ExportOptions,
    export_annotation_set,
    read_manifest,
    read_predictions,
)
from activepam.rounds.history import run_import
from activepam.rounds.importing import ImportResult
from activepam.rounds.tables import RAVEN_COLUMNS, write_raven_table

log = logging.getLogger(__name__)

#: ``Present`` cell the simulated annotator writes for an unsure answer
UNSURE_CELL = "unsure"

RESULTS = "results"
ROUNDS_DIR = f"{RESULTS}/rounds"
DETECT_SEGMENTS = f"{RESULTS}/detect/segments.parquet"
DETECT_PREDICTIONS = f"{RESULTS}/detect/predictions.parquet"
_ID_RE = re.compile(r"^\d{2}$")


class RoundsError(ValueError):
    """``rounds`` parameters or round inputs are inconsistent; the message names the key."""


# --------------------------------------------------------------------------- plan


def scores_path(round_id: str) -> str:
    """Score table round ``round_id`` samples from: BirdNET's for 00, else the previous
    round's re-scored segments."""
    r = int(round_id)
    return DETECT_SEGMENTS if r == 0 else f"{ROUNDS_DIR}/round_{r - 1:02d}/segments_scored.parquet"


def predictions_path(round_id: str) -> str:
    """Top-k predictions that pre-fill round ``round_id``'s Raven tables."""
    r = int(round_id)
    return DETECT_PREDICTIONS if r == 0 else f"{ROUNDS_DIR}/round_{r - 1:02d}/predictions.parquet"


def round_plan(params: Mapping[str, Any]) -> list[str]:
    """Round ids of ``rounds.plan``, validated: ``00``, ``01``, ... in order, each mapped to
    :func:`scores_path` (DVC chains the stages through these paths)."""
    plan = (params.get("rounds") or {}).get("plan") or {}
    if not isinstance(plan, Mapping) or not plan:
        raise RoundsError(
            f'params.yaml: rounds.plan: give at least one round, e.g. "00": {DETECT_SEGMENTS}'
        )
    ids = [str(k) for k in plan]
    for i, rid in enumerate(ids):
        if not _ID_RE.match(rid) or int(rid) != i:
            raise RoundsError(
                f'params.yaml: rounds.plan: round ids must be "00", "01", ... '
                f"in order; entry {i} is {rid!r}"
            )
        want = scores_path(rid)
        if str(plan[rid]) != want:
            raise RoundsError(
                f"params.yaml: rounds.plan.{rid}: must be {want} (the scores "
                f"round {rid} samples from), got {plan[rid]!r}"
            )
    return ids


def label_files(labels_dir: str, last: str, inclusive: bool = True) -> list[str]:
    """Label files of rounds 00..``last`` (or 00..``last``-1 when not ``inclusive``)."""
    stop = int(last) + (1 if inclusive else 0)
    return [f"{labels_dir}/round_{i:02d}.csv" for i in range(stop)]


def round_files(last: str, name: str) -> list[str]:
    """``round_RR/<name>`` of rounds 00..``last``."""
    return [f"{ROUNDS_DIR}/round_{i:02d}/{name}" for i in range(int(last) + 1)]


def metrics_files(last: str) -> list[str]:
    """metrics.json of rounds 00..``last`` (the learning curve's inputs)."""
    return [f"{ROUNDS_DIR}/round_{i:02d}/metrics.json" for i in range(int(last) + 1)]


#: figures written per round by rule round_plots
ROUND_FIGURES: tuple[str, ...] = (
    "learning_curve",
    "strata_heatmap",
    "confusion_pairs",
    "species_ap",
)


def final_targets(params: Mapping[str, Any]) -> list[str]:
    """Metrics and figures of every planned round (``make run`` targets; every round's files
    are outputs of its DVC stage ``round@RR``)."""
    from activepam.rounds.answers import ANSWER_OUTPUTS

    out = []
    for rid in round_plan(params):
        d = f"{ROUNDS_DIR}/round_{rid}"
        out += [
            f"{d}/metrics.json",
            *(f"{d}/{fig}.png" for fig in ROUND_FIGURES),
            *(f"{d}/{name}" for name in ANSWER_OUTPUTS),
        ]
    return out


def waiting_targets(params: Mapping[str, Any], labelled: Mapping[str, bool]) -> list[str]:
    """``make run`` targets when experts label (``labelled``: "test", "00", ... -> its label
    file exists): the test set's annotation set until it is labelled; every labelled round's
    model (and, once the test set is labelled, its metrics, figures and answers); then the
    annotation set of the first round without labels - and no later round."""
    from activepam.rounds.answers import ANSWER_OUTPUTS

    test_done = bool(labelled.get("test"))
    out = [] if test_done else [f"{ROUNDS_DIR}/test/annotation"]
    for rid in round_plan(params):
        d = f"{ROUNDS_DIR}/round_{rid}"
        if not labelled.get(rid):
            out.append(f"{d}/annotation")
            break
        out += [f"{d}/model.json", f"{d}/segments_scored.parquet"]
        if test_done:
            out += [
                f"{d}/metrics.json",
                *(f"{d}/{fig}.png" for fig in ROUND_FIGURES),
                *(f"{d}/{name}" for name in ANSWER_OUTPUTS),
            ]
    return out


def strategy_for(params: Mapping[str, Any], round_id: str) -> str:
    """``rounds.strategy`` (one name for every round, or a list with one name per round)."""
    strat = (params.get("rounds") or {}).get("strategy", "max_entropy")
    if isinstance(strat, (list, tuple)):
        r = int(round_id)
        if r >= len(strat):
            raise RoundsError(
                f"params.yaml: rounds.strategy: list has {len(strat)} entries, "
                f"round {round_id} needs one"
            )
        return str(strat[r])
    return str(strat)


def export_options(rounds: Mapping[str, Any]) -> ExportOptions:
    """:class:`ExportOptions` from the ``rounds`` section."""
    return ExportOptions(
        context_s=float(rounds.get("context_s", 4.0)),
        annotators=tuple(str(a) for a in rounds.get("annotators") or ()),
        batch_by=str(rounds.get("batch_by", "round_robin")),
        prefill_top=int(rounds.get("prefill_top", 3)),
        prefill_min_confidence=float(rounds.get("prefill_min_confidence", 0.1)),
        spectrograms=bool(rounds.get("spectrograms", True)),
    )


# --------------------------------------------------------------------------- sampling


def _answers(label_files: Sequence[str | Path]) -> pd.DataFrame:
    """``unit_id, annotator, present`` of every row of the label files (ids as strings)."""
    frames = [read_labels(f)[["unit_id", "annotator", "present"]] for f in label_files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(
            {
                "unit_id": pd.Series([], dtype=str),
                "annotator": pd.Series([], dtype=str),
                "present": pd.Series([], dtype="int64"),
            }
        )
    return pd.concat(frames, ignore_index=True).astype({"unit_id": str, "annotator": str})


def _only_unsure(answers: pd.DataFrame) -> dict[str, set[str]]:
    sure = (answers["present"] != UNSURE).groupby(answers["unit_id"], sort=True).any()
    pending = answers[answers["unit_id"].isin(sure.index[~sure.to_numpy(bool)])]
    return {str(u): set(g) for u, g in pending.groupby("unit_id", sort=True)["annotator"]}


def unsure_units(label_files: Sequence[str | Path]) -> dict[str, set[str]]:
    """Units whose every answer so far is unsure -> the annotators who were unsure.

    A unit qualifies when all its rows in ``label_files`` have ``present`` = -1 (unsure): it is
    not labelled yet, so it may be offered again (strategy option ``reoffer_unsure``; the label
    import accepts it again, see :func:`activepam.rounds.history.previous_label_units`).
    """
    return _only_unsure(_answers(label_files))


def excluded_units(
    label_files: Sequence[str | Path], test_set: str | Path | None, reoffer_unsure: bool = False
) -> list[str]:
    """Unit ids never to sample again: everything labelled so far and the test set; with
    ``reoffer_unsure`` the units answered only with unsure (:func:`unsure_units`) stay in the
    pool (test-set units never do)."""
    answers = _answers(label_files)
    ids = set(answers["unit_id"])
    if reoffer_unsure:
        ids -= set(_only_unsure(answers))
    if test_set is not None:
        test = pd.read_csv(test_set, dtype={"unit_id": str, "recording_id": str})
        ids |= set(test["unit_id"])  # and whole test recordings (issue 10: no shared audio)
        ids |= set(test["recording_id"].dropna()) if "recording_id" in test else set()
    return sorted(ids)


def reoffer_unsure(params: Mapping[str, Any] | None, strategy: str) -> bool:
    """The ``reoffer_unsure`` option of a (preset or ``sampling.strategies``) strategy."""
    from activepam.sampling.strategies import resolve_strategy

    return bool(resolve_strategy(strategy, params).get("reoffer_unsure", False))


def sample_round(
    scores: str | Path,
    strategy: str | Mapping[str, Any],
    n: int,
    seed: int,
    embeddings: str | Path | None,
    exclude: Sequence[str],
    out: str | Path,
    params: Mapping[str, Any] | None = None,
    reoffer: Mapping[str, set[str]] | None = None,
    predictions: str | Path | None = None,
) -> pd.DataFrame:
    """Run :func:`activepam.sampling.files.run_sampling` on a score table and write the sample.

    ``reoffer`` (unit id -> annotators who were unsure, :func:`unsure_units`) adds a column
    ``unsure_by`` (``;``-joined names, "" for other units) that the export uses to route such a
    unit to another annotator, and notes the re-offer in ``reason``.
    """
    from activepam.sampling.files import run_sampling

    result = run_sampling(
        scores,
        strategy,
        n=n,
        seed=seed,
        embeddings=embeddings,
        labelled=list(exclude),
        params=params,
        progress=True,
        predictions=predictions,
    )
    clash = set(result["unit_id"].astype(str)) & set(exclude)
    if clash:  # the sampler's contract; checked because a clash would corrupt the labels
        raise RoundsError(f"sampling returned already labelled/test unit {sorted(clash)[0]!r}")
    if reoffer is not None:
        by = result["unit_id"].astype(str).map(lambda u: ";".join(sorted(reoffer.get(u, ()))))
        result["unsure_by"] = by
        again = by != ""
        if again.any():
            note = "re-offered: unsure by " + by[again]
            base = (
                result.loc[again, "reason"].fillna("").astype(str)
                if "reason" in result
                else pd.Series("", index=note.index)
            )
            result.loc[again, "reason"] = base.where(base == "", base + "; ") + note
            log.info("%d re-offered unit(s) answered only unsure before", int(again.sum()))
    for col in result.columns:  # mixed object columns break Parquet
        if result[col].dtype == object:
            result[col] = result[col].where(result[col].isna(), result[col].astype(str))
    write_parquet(result, out, stage="rounds")
    name = strategy.get("name", "custom") if isinstance(strategy, Mapping) else strategy
    log.info(
        "sampled %d units with %s from %s (%d excluded)", len(result), name, scores, len(exclude)
    )
    return result


def export_round(
    sample: pd.DataFrame,
    predictions: str | Path,
    out_dir: str | Path,
    round_id: str,
    options: ExportOptions,
    strategy: str = "",
    label_set: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Export a sampled batch (or the test set) for annotation (:mod:`activepam.rounds.export`)."""
    out_dir = Path(out_dir)
    if out_dir.exists():  # a stale export must not mix with this one
        shutil.rmtree(out_dir)
    preds = read_predictions(
        predictions, segment_ids=sample["unit_id"], recording_ids=sample["recording_id"]
    )
    return export_annotation_set(
        sample,
        out_dir,
        preds,
        round_id=round_id,
        strategy=strategy,
        options=options,
        label_set=label_set,
    )


# --------------------------------------------------------------------------- oracle


class Oracle:
    """Ground truth of the demo generator: which species call in a span of a recording."""

    def __init__(self, events: pd.DataFrame, rel_paths: Mapping[str, str]) -> None:
        ev = events.copy()
        ev["rel_path"] = ev["rel_path"].astype(str).str.replace("\\", "/", regex=False)
        self.events = {k: g.reset_index(drop=True) for k, g in ev.groupby("rel_path", sort=False)}
        self.rel_paths = dict(rel_paths)

    @classmethod
    def from_files(cls, raw_dir: str | Path, inventory: str | Path) -> Oracle:
        """From ``events.parquet`` in the demo folder and the inventory (recording -> rel_path)."""
        events = Path(raw_dir) / "events.parquet"
        if not events.exists():
            raise RoundsError(
                f"{events}: not found - the simulated annotator needs the demo "
                "generator's events (set rounds.simulated_annotator: false for "
                "real annotators)"
            )
        inv = pd.read_parquet(inventory, columns=["recording_id", "rel_path"])
        return cls(pd.read_parquet(events), dict(zip(inv["recording_id"], inv["rel_path"])))

    def calls(self, recording_id: str, start_s: float, end_s: float) -> pd.DataFrame:
        """Calls counted present in ``[start_s, end_s]`` (generator's rule), clipped to it."""
        rel = self.rel_paths.get(str(recording_id))
        if rel is None:
            raise RoundsError(f"oracle: recording {recording_id!r} is not in the inventory")
        ev = self.events.get(str(rel).replace("\\", "/"))
        if ev is None or ev.empty:
            return pd.DataFrame(columns=["species", "onset_s", "offset_s", "low_hz", "high_hz"])
        on, off = ev["onset_s"].to_numpy(float), ev["offset_s"].to_numpy(float)
        hit = ev[call_present(on, off, start_s, end_s)].copy()
        hit["onset_s"] = hit["onset_s"].clip(lower=start_s)
        hit["offset_s"] = hit["offset_s"].clip(upper=end_s)
        return hit[["species", "onset_s", "offset_s", "low_hz", "high_hz"]]

    def species(self, recording_id: str, start_s: float, end_s: float) -> set[str]:
        """Species present in a span."""
        return set(self.calls(recording_id, start_s, end_s)["species"])


def _unit_rng(seed: int, unit_id: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the unit id (independent of the unit order)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(unit_id).encode())])


def completed_table(
    unit: Mapping[str, Any],
    prefilled: pd.DataFrame,
    oracle: Oracle,
    annotator: str,
    unsure_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """What an expert returns for one unit: pre-filled rows marked 1/0, missed species added.

    Recording units are labelled per 3 s segment of the truth, so every box sits where the
    species calls; the model's pre-filled boxes of present species are moved onto a true call.
    Every row has an explicit ``Present``: 1, 0, or - with probability ``unsure_rate`` per
    species answered (drawn from ``rng``) - ``unsure`` on all of that species' rows.
    """
    if not 0.0 <= unsure_rate <= 1.0:
        raise RoundsError(f"rounds.simulated_unsure: must be in [0, 1], got {unsure_rate!r}")
    clip0 = float(unit["clip_start_s"])
    if unit["unit_type"] == "recording":
        spans = [
            (float(s), min(float(s) + 3.0, float(unit["clip_end_s"])))
            for s in np.arange(clip0, float(unit["clip_end_s"]) - 1.5 + 1e-9, 3.0)
        ]
    else:
        spans = [(float(unit["start_s"]), float(unit["end_s"]))]
    boxes = []
    for a, b in spans:
        calls = oracle.calls(unit["recording_id"], a, b)
        for sp, grp in calls.groupby("species", sort=True):
            boxes.append(
                {
                    "species": sp,
                    "begin": grp["onset_s"].min() - clip0,
                    "end": grp["offset_s"].max() - clip0,
                    "low": grp["low_hz"].min(),
                    "high": grp["high_hz"].max(),
                }
            )
    present = {b["species"] for b in boxes}
    rows = []
    for r in prefilled.to_dict("records"):
        if r["Species"] in present or not str(r["Species"]).strip():
            continue  # replaced by the true box(es) below / placeholder deleted
        rows.append({**r, "Present": 0, "Annotator": annotator, "Notes": "wrong suggestion"})
    for box in boxes:
        rows.append(
            {
                "View": "Spectrogram 1",
                "Channel": 1,
                "Begin Time (s)": round(box["begin"], 4),
                "End Time (s)": round(box["end"], 4),
                "Low Freq (Hz)": round(box["low"], 1),
                "High Freq (Hz)": round(box["high"], 1),
                "Species": box["species"],
                "Present": 1,
                "Confidence": "",
                "Annotator": annotator,
                "Notes": "",
            }
        )
    if unsure_rate > 0 and rows:
        rng = rng if rng is not None else _unit_rng(0, str(unit.get("unit_id", "")))
        answered = sorted({str(r["Species"]) for r in rows})
        unsure = {sp for sp, u in zip(answered, rng.random(len(answered))) if u < unsure_rate}
        for r in rows:
            if r["Species"] in unsure:
                r["Present"], r["Notes"] = UNSURE_CELL, "simulated unsure"
    out = pd.DataFrame(rows, columns=list(RAVEN_COLUMNS))
    out["Selection"] = np.arange(1, len(out) + 1)
    return out


def simulate_annotation(
    annotation_dir: str | Path,
    out_dir: str | Path,
    oracle: Oracle,
    annotator: str = "oracle",
    unsure_rate: float = 0.0,
    seed: int = 0,
) -> list[Path]:
    """Fill every pre-filled Raven table of an export like an expert; write the completed
    tables (same file names) to ``out_dir``. ``unsure_rate``: see :func:`completed_table`
    (seeded by ``seed`` and the unit id)."""
    annotation_dir, out_dir = Path(annotation_dir), Path(out_dir)
    manifest = read_manifest(annotation_dir / "manifest.csv")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    written = []
    for unit in manifest.to_dict("records"):
        src = annotation_dir / str(unit["table_file"])
        pre = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
        who = str(unit.get("annotator") or "") or annotator
        done = completed_table(
            unit, pre, oracle, who, unsure_rate, _unit_rng(seed, str(unit["unit_id"]))
        )
        dst = out_dir / str(unit["table_file"])
        write_raven_table(done.to_dict("records"), dst)
        written.append(dst)
    log.info("simulated annotator filled %d tables -> %s", len(written), out_dir)
    return written


def simulate_and_import(
    annotation_dir: str | Path,
    completed_dir: str | Path,
    labels_out: str | Path,
    round_id: str,
    oracle: Oracle,
    label_set: str | Path,
    labels_dir: str | Path,
    unsure_rate: float = 0.0,
    seed: int = 0,
) -> ImportResult:
    """Demo: simulated annotator -> the same import as ``activepam labels import``."""
    simulate_annotation(annotation_dir, completed_dir, oracle, unsure_rate=unsure_rate, seed=seed)
    return run_import(
        [completed_dir],
        round_id,
        Path(annotation_dir) / "manifest.csv",
        label_set,
        labels_out,
        labels_dir,
        force=False,
    )


# --------------------------------------------------------------------------- evaluation


def test_units(test_set: str | Path) -> pd.DataFrame:
    """``test_set.csv`` with a ``segment_id`` column for the training helpers."""
    t = pd.read_csv(
        test_set, dtype={"unit_id": str, "recording_id": str, "site": str, "habitat": str}
    )
    return t.assign(segment_id=t["unit_id"])


def labelled_units(labels: pd.DataFrame, segments: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Metadata (site, country, habitat, lat, lon, times, ...) of every labelled unit, from the
    segments table: a segment unit's own row, a recording unit's first segment. Returns one
    row per unit id (``unit_id`` column; NaN metadata for units not in the table)."""
    ids = (
        labels[["unit_id", "unit_type", "recording_id"]]
        .astype(str)
        .drop_duplicates("unit_id")
        .reset_index(drop=True)
    )
    recs = sorted(set(ids["recording_id"]))
    if isinstance(segments, pd.DataFrame):
        seg = segments[segments["recording_id"].astype(str).isin(recs)]
    elif recs:
        import pyarrow.parquet as pq

        seg = pq.read_table(segments, filters=[("recording_id", "in", recs)]).to_pandas()
    else:
        seg = pd.DataFrame(columns=["segment_id", "recording_id", "start_s"])
    seg = seg.assign(
        segment_id=seg["segment_id"].astype(str), recording_id=seg["recording_id"].astype(str)
    )
    seg = seg.sort_values(["recording_id", "start_s"], kind="stable")
    meta = [c for c in seg.columns if c not in ("segment_id", "recording_id", "unit_id")]
    out = (
        seg.drop_duplicates("segment_id")
        .set_index("segment_id")[meta]
        .reindex(ids["unit_id"])
        .reset_index(drop=True)
    )
    first = (
        seg.drop_duplicates("recording_id")
        .set_index("recording_id")[meta]
        .reindex(ids["recording_id"])
        .reset_index(drop=True)
    )
    rec = (ids["unit_type"] == "recording").to_numpy()
    if rec.any():
        out.loc[rec] = first.loc[rec]
    return pd.concat([ids[["unit_id", "recording_id"]], out], axis=1)


def label_report(
    labels: pd.DataFrame, units: pd.DataFrame, label_set: Sequence[str], keys: Sequence[str]
) -> dict[str, Any]:
    """Answer counts of a label table: present / absent / unsure / conflict answers
    (:func:`activepam.rounds.train.label_cells`, one per unit x annotator x label-set species) in
    total, per species, and per level of every stratum key (``units``: ``unit_id`` + the
    metadata the keys need, e.g. :func:`labelled_units` or the test set). ``n_units_unsure``
    counts units with at least one unsure answer."""
    from activepam.core.evaluate import stratum_labels
    from activepam.rounds.train import ANSWER_COUNTS, answer_counts, label_cells

    cells = label_cells(labels, label_set)
    per_sp = answer_counts(cells, index=label_set)
    unit_ids = sorted(set(labels["unit_id"].astype(str)))
    per_unit = answer_counts(cells, by="unit_id", index=unit_ids)

    def block(counts: pd.DataFrame) -> dict[str, int]:
        return {
            "n_units": int(len(counts)),
            **{k: int(counts[k].sum()) for k in ANSWER_COUNTS},
            "n_units_unsure": int((counts["n_unsure"] > 0).sum()),
        }

    out: dict[str, Any] = {
        **block(per_unit),
        "n_annotators": int(labels["annotator"].nunique()),
        "species": {sp: {k: int(v) for k, v in row.items()} for sp, row in per_sp.iterrows()},
        "strata": {},
    }
    if keys and unit_ids:
        u = units.assign(unit_id=units["unit_id"].astype(str)).drop_duplicates("unit_id")
        u = u.set_index("unit_id").reindex(unit_ids).reset_index()
        levels = stratum_labels(u, keys)
        for key in keys:
            lev = levels[key].to_numpy()
            out["strata"][key] = {str(v): block(per_unit[lev == v]) for v in sorted(set(lev))}
    return out


def evaluate_model(
    model_path: str | Path | None,
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: Sequence[str],
    keys: Sequence[str],
    bins: int = 10,
    default_threshold: float = 0.5,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Metrics of a round model (or BirdNET when ``model_path`` is None) on the test set.

    Returns ``(metrics, per_species, confusion_pairs)``.
    """
    from activepam.core.evaluate import confusion_pairs, evaluate_scores

    t = evaluation_matrices(
        model_path, test_set, test_labels, embeddings, predictions, label_set, default_threshold
    )
    metrics, species = evaluate_scores(
        t.Y, t.P, t.thresholds, t.units, label_set, keys, bins, t.counts
    )
    metrics["labels"] = {"test": label_report(t.labels, t.all_units, label_set, keys)}
    return metrics, species, confusion_pairs(t.Y, t.P, t.thresholds, label_set)


@dataclass
class EvalMatrices:
    """Truth ``Y`` and scores ``P`` (test units x label set) of a model on the test set."""

    ids: list[str]
    Y: np.ndarray
    P: np.ndarray
    thresholds: np.ndarray
    units: pd.DataFrame
    all_units: pd.DataFrame
    labels: pd.DataFrame
    counts: dict[str, Any] | None


def evaluation_matrices(
    model_path: str | Path | None,
    test_set: str | Path,
    test_labels: str | Path,
    embeddings: str | Path,
    predictions: str | Path,
    label_set: Sequence[str],
    default_threshold: float = 0.5,
) -> EvalMatrices:
    """The test labels as a truth matrix and the scores of a round model (or BirdNET when
    ``model_path`` is None) for the same units, in the same order."""
    from activepam.rounds.train import birdnet_matrix, load_model, read_embeddings, segment_targets

    all_units = test_units(test_set)
    labels = read_labels(test_labels)
    ids, Y = segment_targets(labels, all_units, label_set)
    if not len(ids):
        raise RoundsError(f"{test_labels}: no test labels")
    units = all_units.set_index("segment_id").loc[list(ids)].reset_index()
    B = birdnet_matrix(predictions, ids, label_set)
    if model_path is None:
        P, thr, counts = B, np.full(len(label_set), default_threshold), None
    else:
        model = load_model(model_path)
        if list(model.label_set) != list(label_set):
            raise RoundsError(f"{model_path}: model label set differs from the current one")
        P = model.predict(read_embeddings(embeddings, ids), B)
        thr, counts = model.thresholds, model.summary()
    return EvalMatrices(
        list(ids), Y, P, np.asarray(thr, dtype=float), units, all_units, labels, counts
    )


def round_metrics(
    round_id: str,
    model_path: str | Path,
    model_json: str | Path,
    baseline: str | Path,
    round_labels: str | Path | None = None,
    segments: str | Path | pd.DataFrame | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """:func:`evaluate_model` plus round facts (labels so far, training hash) and the BirdNET
    baseline with the improvement over it. With ``round_labels`` (this round's label file) and
    ``segments`` (the table giving its units' strata), ``labels.round`` counts this round's
    answers (:func:`label_report`: unsure per species and stratum) beside ``labels.test`` (the
    test labels) and ``labels.train`` (answer totals of the labels the model was trained on,
    rounds 00..RR)."""
    metrics, species, confusion = evaluate_model(model_path, **kwargs)
    if round_labels is not None:
        if segments is None:
            raise RoundsError("round_metrics: round_labels needs the segments table")
        lab = read_labels(round_labels)
        report = label_report(
            lab, labelled_units(lab, segments), kwargs["label_set"], kwargs.get("keys", ())
        )
        metrics["labels"] = {"round": report, **metrics.get("labels", {})}
    side = json.loads(Path(model_json).read_text())
    base = json.loads(Path(baseline).read_text())["overall"]
    over = metrics["overall"]
    out = {
        "round": round_name(round_id),
        "n_labelled_units": side.get("n_units", 0),
        "n_labelled_segments": side.get("n_segments", 0),
        "n_label_rows": side.get("n_label_rows", 0),
        "training_hash": side["training_hash"],
        "model_kinds": side.get("kinds", {}),
        **metrics,
        "baseline": base,
        "labels": {**metrics.get("labels", {}), "train": side.get("answers", {})},
        "improvement": {
            k: (over[k] - base[k]) if np.isfinite(over[k]) and np.isfinite(base[k]) else None
            for k in ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece")
        },
    }
    return out, species, confusion


def write_round_metrics(
    metrics: Mapping[str, Any],
    species: pd.DataFrame,
    confusion: pd.DataFrame,
    metrics_out: str | Path,
    species_out: str | Path,
    confusion_out: str | Path,
    strata_out: str | Path,
) -> None:
    """metrics.json (headline metrics and the spread across strata: what ``dvc metrics show``
    lists), strata_metrics.json (every metric per stratum level), per-species and confusion
    CSVs. NaN is written as null."""
    strata = metrics.get("strata") or {}
    compact = {**metrics, "strata": {k: {"cv": v.get("cv", {})} for k, v in strata.items()}}
    write_json(compact, metrics_out, stage="evaluate")  # NaN -> null: core.io.jsonable
    write_json({"round": metrics.get("round"), "strata": strata}, strata_out, stage="evaluate")
    write_csv(species, species_out, stage="evaluate")
    write_csv(confusion, confusion_out, stage="evaluate")


def history(metrics_files: Sequence[str | Path]) -> pd.DataFrame:
    """One row per round (in order): labels so far and the headline metrics, model and
    BirdNET baseline (``baseline_*``)."""
    rows = []
    for f in metrics_files:
        m = json.loads(Path(f).read_text())
        row = {
            "round": m["round"],
            "n_labelled_units": m["n_labelled_units"],
            "n_labelled_segments": m["n_labelled_segments"],
            "n_unsure": ((m.get("labels") or {}).get("round") or {}).get("n_unsure"),
        }
        stop = m.get("stopping") or {}
        kappas = stop.get("kappa_history") or []
        row["stop_kappa"] = kappas[-1] if kappas else None
        row["stop_expected_gain"] = stop.get("expected_gain")
        row["stop_recommendation"] = stop.get("recommendation")
        for k in ("macro_ap", "micro_ap", "macro_auroc", "macro_f1", "ece"):
            row[k] = m["overall"].get(k)
            row[f"baseline_{k}"] = m["baseline"].get(k)
        rows.append(row)
    return pd.DataFrame(rows)
