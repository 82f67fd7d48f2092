"""Lindholm et al. 2025 (Top-K entropy) reproduction kit: file-level active learning of sound
event detection with segment entropies aggregated per file.

The setting (``params/protocols/lindholm2025.yaml``): 10 s files, split 80/20 by file; a
fraction ``event_ratio`` of the files (exactly ``round(event_ratio x n)``) holds 1-3
non-overlapping events whose classes are balanced over all events (counts differ by at most one),
the rest is background only; a frame classifier with a background class (a softmax probe) gives
every segment a Shannon entropy over classes + background; a file's score aggregates its
segment entropies (:data:`STRATEGY_NAMES`: Top-K = mean of the K highest, Mean, Median, Mean
Event Entropy = mean over the frames predicted as an event, Random); the learner labels whole
files, starting from a random seed set of ``seed_fraction`` of the training files, with batches
growing by ``growth`` per round. Every file is ``duration_s`` long, so the fraction of files
labelled is the fraction of the pool's audio an expert listens to.

Metrics on the test files, concatenated (:func:`event_iou`, :func:`macro_ap`): the event IoU per
class = |predicted frames of c AND reference frames of c| / |union| over the whole test
timeline, averaged over classes; macro AP of the class probabilities over frames. The
full-supervision reference is the same probe trained on every training file of the replicate.

A replicate seed varies every random choice: the data (a fresh draw of the generator, or for the
audio variant a resample of the generated corpus), the train/test split and the learner (seed
set, tie-breaks, random scores); strategies of one replicate share them (paired comparisons).

Variant (a), :func:`embedding_frames`: frames are log band powers (like log-mel frames, 16 bands,
175 frames of 10 s) of a background whose spectrum tilt and level drift differ per file, with a
gamma-distributed fluctuation per frame and band; an event of class c adds its spectral template
(a Gaussian bump over bands) scaled so that its total power over its frames is ``10^(SNR/10)``
times the background's power in the same frames (exactly, on the drawn noise). Variant (b) lives
in :mod:`activepam.simulation.lindholm_audio` (generated audio through BirdNET).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax

from activepam.core.io import write_json, write_parquet, write_text
from activepam.core.metrics import average_precision
from activepam.simulation.summaries import aulc, bootstrap_interval

PROTOCOL = "params/protocols/lindholm2025.yaml"
#: file-score strategies (Top-K takes every K of ``ks``; Top-all is Mean and not run twice)
STRATEGY_NAMES = ("topk", "mean", "median", "mean_event", "random")
AGGREGATIONS = ("topk", "mean", "median", "mean_event")
RESULT_COLUMNS = [
    "variant",
    "snr_db",
    "replicate",
    "strategy",
    "k",
    "round",
    "n_labelled",
    "n_train",
    "label_fraction",
    "event_iou",
    "macro_ap",
    "n_event_files",
]


#: protocol keys besides the :class:`ALConfig` fields
DATA_KEYS = frozenset(
    {"n_classes", "duration_s", "event_ratio", "events_per_file", "event_s", "embedding", "audio"}
)


class LindholmError(ValueError):
    """Invalid protocol parameters or data (the message names the key)."""


# --------------------------------------------------------------------------- data


@dataclass
class FrameSet:
    """Files of ``T`` segments: features ``X [n_files, T, d]``, labels ``y [n_files, T]``
    (0 = background, 1..C = class), and the events (file, cls 1..C, onset/offset frames)."""

    X: np.ndarray
    y: np.ndarray
    n_classes: int
    events: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.X.ndim != 3 or self.y.shape != self.X.shape[:2]:
            raise LindholmError(f"FrameSet: X {self.X.shape} and y {self.y.shape} disagree")

    @property
    def n_files(self) -> int:
        return int(self.X.shape[0])

    def subset(self, files: np.ndarray) -> FrameSet:
        files = np.asarray(files, dtype=np.int64)
        remap = {int(f): i for i, f in enumerate(files)}
        ev = self.events[self.events["file"].isin(remap)].copy()
        ev["file"] = ev["file"].map(remap)
        return FrameSet(
            self.X[files], self.y[files], self.n_classes, ev.reset_index(drop=True), dict(self.info)
        )


def plan_events(
    n_files: int,
    n_classes: int,
    rng: np.random.Generator,
    event_ratio: float = 0.2,
    events_per_file: Sequence[int] = (1, 3),
    event_s: Sequence[float] = (0.3, 2.0),
    duration_s: float = 10.0,
    min_gap_s: float = 0.15,
) -> pd.DataFrame:
    """Non-overlapping events of ``n_files`` files: ``DataFrame[file, cls, onset_s, offset_s]``.

    Exactly ``round(event_ratio x n_files)`` files (chosen at random) hold between
    ``events_per_file[0]`` and ``[1]`` events (uniform); the others hold none. Classes (1..C)
    are a shuffled balanced sequence over all events, so their counts differ by at most one.
    Durations are uniform in ``event_s``; gaps (>= ``min_gap_s``) are a random partition of the
    free time, so events never overlap or touch.
    """
    if not 0.0 <= event_ratio <= 1.0:
        raise LindholmError(f"event_ratio must be in [0, 1], got {event_ratio}")
    lo, hi = int(events_per_file[0]), int(events_per_file[1])
    if not 1 <= lo <= hi:
        raise LindholmError(f"events_per_file must be 1 <= low <= high, got {events_per_file}")
    if hi * (float(event_s[1]) + min_gap_s) + min_gap_s > duration_s:
        raise LindholmError(f"{hi} events of up to {event_s[1]} s do not fit in {duration_s} s")
    n_event = int(round(event_ratio * n_files))
    event_files = np.sort(rng.permutation(n_files)[:n_event])
    counts = rng.integers(lo, hi + 1, size=n_event)
    total = int(counts.sum())
    classes = rng.permutation(np.resize(np.arange(1, n_classes + 1), total))
    rows, j = [], 0
    for f, n in zip(event_files, counts):
        dur = rng.uniform(float(event_s[0]), float(event_s[1]), size=n)
        free = duration_s - dur.sum() - (n + 1) * min_gap_s
        gaps = min_gap_s + rng.dirichlet(np.ones(n + 1)) * free
        t = 0.0
        for i in range(n):
            t += gaps[i]
            rows.append(
                {"file": int(f), "cls": int(classes[j]), "onset_s": t, "offset_s": t + dur[i]}
            )
            t += dur[i]
            j += 1
    return pd.DataFrame(rows, columns=["file", "cls", "onset_s", "offset_s"])


def frame_labels(
    events: pd.DataFrame, n_files: int, frames: int, duration_s: float = 10.0
) -> np.ndarray:
    """``y [n_files, frames]``: frame t (covering ``[t, t+1) x hop``) gets the class of the event
    covering its centre, else 0 (background)."""
    y = np.zeros((n_files, frames), dtype=np.int16)
    hop = duration_s / frames
    centres = (np.arange(frames) + 0.5) * hop
    for ev in events.itertuples(index=False):
        y[ev.file, (centres >= ev.onset_s) & (centres < ev.offset_s)] = ev.cls
    return y


def band_templates(n_classes: int, bands: int, width: float) -> np.ndarray:
    """``[n_classes, bands]`` spectral templates: Gaussian bumps (sd ``width`` bands) with
    centres spread evenly over the bands, each summing to 1."""
    centres = np.linspace(1.5, bands - 2.5, n_classes)
    b = np.arange(bands)
    t = np.exp(-0.5 * ((b[None, :] - centres[:, None]) / width) ** 2)
    return t / t.sum(axis=1, keepdims=True)


def embedding_frames(
    n_files: int,
    seed: int,
    snr_db: float = 0.0,
    n_classes: int = 5,
    frames: int = 175,
    bands: int = 16,
    fluctuation: float = 4.0,
    template_width: float = 1.5,
    event_ratio: float = 0.2,
    events_per_file: Sequence[int] = (1, 3),
    event_s: Sequence[float] = (0.3, 2.0),
    duration_s: float = 10.0,
    return_parts: bool = False,
) -> FrameSet:
    """Variant (a): log band-power frames of a seeded synthetic event corpus (see the module).

    With ``return_parts`` the info dict holds the linear ``noise`` and ``signal`` band powers
    ``[n_files, frames, bands]`` (features = per-file median-normalised log10(noise + signal)).
    """
    if fluctuation <= 0:
        raise LindholmError(f"embedding.fluctuation must be > 0, got {fluctuation}")
    rng = np.random.default_rng([seed, 12])
    events = plan_events(
        n_files,
        n_classes,
        rng,
        event_ratio,
        events_per_file,
        event_s,
        duration_s,
        min_gap_s=max(0.15, 2.0 * duration_s / frames),
    )
    y = frame_labels(events, n_files, frames, duration_s)
    b = np.arange(bands)
    tilt = rng.uniform(0.5, 1.5, size=n_files)
    spectrum = (b[None, :] + 1.0) ** -tilt[:, None]
    spectrum /= spectrum.sum(axis=1, keepdims=True)
    # slow level drift per file: AR(1) in dB (phi 0.95, stationary sd 2 dB)
    e = rng.normal(0.0, 2.0 * math.sqrt(1 - 0.95**2), size=(n_files, frames))
    drift = np.empty_like(e)
    drift[:, 0] = rng.normal(0.0, 2.0, size=n_files)
    for t in range(1, frames):
        drift[:, t] = 0.95 * drift[:, t - 1] + e[:, t]
    level = 10 ** (drift / 10.0) * 10 ** (rng.uniform(-5.0, 5.0, size=n_files) / 10.0)[:, None]
    noise = (
        spectrum[:, None, :]
        * level[:, :, None]
        * rng.gamma(fluctuation, 1.0 / fluctuation, size=(n_files, frames, bands))
    )
    templates = band_templates(n_classes, bands, template_width)
    centres = (np.arange(frames) + 0.5) * duration_s / frames
    signal = np.zeros_like(noise)
    ratio = 10 ** (snr_db / 10.0)
    for ev in events.itertuples(index=False):
        idx = np.flatnonzero((centres >= ev.onset_s) & (centres < ev.offset_s))
        if idx.size == 0:
            continue
        s = templates[ev.cls - 1][None, :] * rng.gamma(
            fluctuation, 1.0 / fluctuation, size=(idx.size, bands)
        )
        s *= ratio * noise[ev.file, idx].sum() / s.sum()
        signal[ev.file, idx] = s
    logp = np.log10(noise + signal)
    X = (logp - np.median(logp, axis=1, keepdims=True)).astype(np.float32)
    info: dict[str, Any] = {
        "variant": "embedding",
        "snr_db": float(snr_db),
        "seed": int(seed),
        "frames": frames,
        "bands": bands,
        "duration_s": duration_s,
    }
    if return_parts:
        info.update(noise=noise, signal=signal)
    return FrameSet(X, y, n_classes, events, info)


# --------------------------------------------------------------------------- probe


class SoftmaxProbe:
    """Multinomial L2 logistic regression (classes + background) fitted with L-BFGS on the
    mean cross-entropy: ``mean_i CE(y_i, softmax(W x_i + b)) + l2 / 2 ||W||^2`` (the penalty
    does not grow or shrink with the labelled set); ``fit`` warm-starts from the last fit."""

    def __init__(self, n_out: int, l2: float = 1e-3, max_iter: int = 200) -> None:
        if l2 < 0:
            raise LindholmError(f"probe_l2 must be >= 0, got {l2}")
        self.n_out, self.l2, self.max_iter = int(n_out), float(l2), int(max_iter)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def copy(self) -> SoftmaxProbe:
        p = SoftmaxProbe(self.n_out, self.l2, self.max_iter)
        p.W = None if self.W is None else self.W.copy()
        p.b = None if self.b is None else self.b.copy()
        return p

    def fit(self, X: np.ndarray, y: np.ndarray) -> SoftmaxProbe:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        n, d = X.shape
        k = self.n_out
        if self.W is None or self.W.shape != (d, k):
            self.W, self.b = np.zeros((d, k)), np.zeros(k)
        assert self.b is not None
        if n == 0:
            return self
        Y = np.zeros((n, k))
        Y[np.arange(n), y] = 1.0
        l2 = self.l2

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: d * k].reshape(d, k)
            L = log_softmax(X @ W + theta[d * k :], axis=1)
            loss = -(Y * L).sum() / n + 0.5 * l2 * (W * W).sum()
            G = (np.exp(L) - Y) / n
            return float(loss), np.concatenate([(X.T @ G + l2 * W).ravel(), G.sum(axis=0)])

        res = minimize(
            objective,
            np.concatenate([self.W.ravel(), self.b]),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": 1e-5},
        )
        self.W = res.x[: d * k].reshape(d, k)
        self.b = res.x[d * k :]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, n_out]`` (float32; column 0 = background)."""
        if self.W is None or self.b is None:
            raise LindholmError("probe used before fit")
        Z = np.asarray(X, dtype=np.float32) @ self.W.astype(np.float32) + self.b.astype(np.float32)
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        return Z


def entropy_bits(P: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of the class distribution ``P`` (0 log 0 = 0)."""
    P = np.asarray(P, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(P > 0, P * np.log2(np.where(P > 0, P, 1.0)), 0.0).sum(axis=-1)


# --------------------------------------------------------------------------- file scores


def file_scores(
    H: np.ndarray, event: np.ndarray | None, method: str, k: int | None = None
) -> np.ndarray:
    """File score from segment entropies ``H [n_files, T]`` (one row per file).

    ``topk``: mean of the ``k`` highest (``k`` None or >= T = all = mean); ``mean``; ``median``;
    ``mean_event``: mean over the segments flagged in ``event`` (predicted as an event class),
    NaN for a file without any (ranked last). Same values as
    :func:`activepam.core.uncertainty.aggregate` per file.
    """
    H = np.asarray(H, dtype=np.float64)
    if method == "topk":
        T = H.shape[1]
        kk = T if k is None else int(k)
        if kk < 1:
            raise LindholmError(f"Top-K needs k >= 1, got {k}")
        return np.sort(H, axis=1)[:, -min(kk, T) :].mean(axis=1)
    if method == "mean":
        return H.mean(axis=1)
    if method == "median":
        return np.median(H, axis=1)
    if method == "mean_event":
        if event is None:
            raise LindholmError("mean_event needs the event flags of the segments")
        ev = np.asarray(event, dtype=bool)
        n = ev.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, (H * ev).sum(axis=1) / np.maximum(n, 1), np.nan)
    raise LindholmError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")


def select_top(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``n`` highest scores (NaN last, ties broken at random)."""
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    order = np.lexsort((rng.random(len(s)), -s))
    return order[:n]


# --------------------------------------------------------------------------- metrics


def event_iou(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Event IoU over the concatenated frames: per class c (1..C) |pred=c AND true=c| /
    |pred=c OR true=c|, averaged over the classes with a non-empty union (NaN if none)."""
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    vals = []
    for c in range(1, n_classes + 1):
        union = np.count_nonzero((t == c) | (p == c))
        if union:
            vals.append(np.count_nonzero((t == c) & (p == c)) / union)
    return float(np.mean(vals)) if vals else float("nan")


def macro_ap(y_true: np.ndarray, P: np.ndarray, n_classes: int) -> float:
    """Macro average precision over classes 1..C of the frame probabilities ``P [n, C+1]``
    (classes without reference frames are skipped)."""
    t = np.asarray(y_true).ravel()
    vals = [average_precision(t == c, P[:, c]) for c in range(1, n_classes + 1)]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class ALConfig:
    """Active-learning settings of the protocol (see ``params/protocols/lindholm2025.yaml``)."""

    test_fraction: float = 0.2
    seed_fraction: float = 0.005
    growth: float = math.sqrt(2.0)
    max_fraction: float = 0.16
    ks: tuple[int | None, ...] = (1, 3, 5, 10, 20, None)
    strategies: tuple[str, ...] = STRATEGY_NAMES
    probe_l2: float = 1e-3
    probe_max_iter: int = 200
    claim_fraction: float = 0.08
    full_tolerance: float = 0.95
    claim_k: int = 10

    @classmethod
    def from_params(cls, p: Mapping[str, Any], **overrides: Any) -> ALConfig:
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in p.items() if k in names}
        if "ks" in kw:
            kw["ks"] = tuple(None if str(k) == "all" else int(k) for k in kw["ks"])
        if "strategies" in kw:
            kw["strategies"] = tuple(kw["strategies"])
        kw.update(overrides)
        cfg = cls(**kw)
        bad = sorted(set(cfg.strategies) - set(STRATEGY_NAMES))
        if bad:
            raise LindholmError(f"lindholm.strategies: unknown {bad}; known: {STRATEGY_NAMES}")
        if not 0 < cfg.seed_fraction < cfg.max_fraction <= 1 or cfg.growth <= 1:
            raise LindholmError("lindholm: need 0 < seed_fraction < max_fraction <= 1, growth > 1")
        return cfg

    def fractions(self) -> list[float]:
        """Scheduled label fractions: seed_fraction x growth^i up to max_fraction."""
        out, f = [], self.seed_fraction
        while f <= self.max_fraction * (1 + 1e-9):
            out.append(f)
            f *= self.growth
        return out

    def runs(self) -> list[tuple[str, int | None]]:
        """(strategy, k) pairs; Top-all is Mean and is run as ``mean`` only."""
        out: list[tuple[str, int | None]] = []
        for s in self.strategies:
            if s == "topk":
                out += [("topk", k) for k in self.ks if k is not None]
            else:
                out.append((s, None))
        return out


def schedule(cfg: ALConfig, n_train: int) -> list[tuple[float, int]]:
    """(scheduled fraction, files labelled) per round, strictly increasing counts (>= 1)."""
    out: list[tuple[float, int]] = []
    for f in cfg.fractions():
        n = max(1, int(round(f * n_train)))
        if not out or n > out[-1][1]:
            out.append((f, n))
    return out


def strategy_label(strategy: str, k: int | None) -> str:
    return (
        f"Top-{k}"
        if strategy == "topk"
        else {
            "mean": "Mean (= Top-all)",
            "median": "Median",
            "mean_event": "Mean Event Entropy",
            "random": "Random",
        }[strategy]
    )


def split_files(
    n_files: int, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Train / test file indices (a random split by file)."""
    perm = rng.permutation(n_files)
    n_test = max(1, int(round(test_fraction * n_files)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def standardise(X: np.ndarray) -> np.ndarray:
    """Z-score every feature over all frames (unsupervised, same for every strategy)."""
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    sd = flat.std(axis=0)
    sd[sd == 0] = 1.0
    return ((X - flat.mean(axis=0)) / sd).astype(np.float32)


def run_replicate(
    data: FrameSet, cfg: ALConfig, replicate: int, variant: str = "embedding", snr_db: float = 0.0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every strategy of one replicate on ``data`` (rows per round) and the full-supervision
    row. Seeds derive from ``replicate`` (split, seed set, tie-breaks, random scores).

    BLAS runs single-threaded here: the matrices are small (16-32 features) and on a shared
    2-core machine threaded BLAS was 7x slower (measured: 14.4 s vs 2.2 s per replicate).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_replicate(data, cfg, replicate, variant, snr_db)


def _run_replicate(
    data: FrameSet, cfg: ALConfig, replicate: int, variant: str, snr_db: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    C = data.n_classes
    rng = np.random.default_rng([replicate, 7])
    train, test = split_files(data.n_files, cfg.test_fraction, rng)
    X = standardise(data.X)
    d = X.shape[-1]
    T = X.shape[1]
    Xte, yte = X[test].reshape(-1, d), data.y[test].ravel()
    event_file = np.asarray((data.y > 0).any(axis=1), dtype=bool)
    plan = schedule(cfg, len(train))
    seed_set = train[rng.permutation(len(train))[: plan[0][1]]]
    base = {
        "variant": variant,
        "snr_db": float(snr_db),
        "replicate": int(replicate),
        "n_train": len(train),
    }

    def fit(probe: SoftmaxProbe, files: np.ndarray) -> SoftmaxProbe:
        return probe.fit(X[files].reshape(-1, d), data.y[files].ravel())

    def evaluate(probe: SoftmaxProbe) -> dict[str, float]:
        P = probe.predict_proba(Xte)
        return {"event_iou": event_iou(yte, P.argmax(axis=1), C), "macro_ap": macro_ap(yte, P, C)}

    first = fit(SoftmaxProbe(C + 1, cfg.probe_l2, cfg.probe_max_iter), seed_set)
    first_scores = evaluate(first)
    rows: list[dict[str, Any]] = []
    for strategy, k in cfg.runs():
        srng = np.random.default_rng([replicate, 11, STRATEGY_NAMES.index(strategy), k or 0])
        labelled = list(seed_set)
        probe = first.copy()
        for r, (_, n_lab) in enumerate(plan):
            if r:
                pool = np.setdiff1d(train, labelled)
                need = n_lab - len(labelled)
                if strategy == "random":
                    score = srng.random(len(pool))
                else:
                    P = probe.predict_proba(X[pool].reshape(-1, d)).reshape(len(pool), T, C + 1)
                    H = entropy_bits(P)
                    score = file_scores(H, P.argmax(axis=2) > 0, strategy, k)
                labelled += list(pool[select_top(score, need, srng)])
                fit(probe, np.asarray(labelled))
                scores = evaluate(probe)
            else:
                scores = first_scores
            rows.append(
                {
                    **base,
                    "strategy": strategy,
                    "k": k if k is not None else -1,
                    "round": r,
                    "n_labelled": len(labelled),
                    "label_fraction": len(labelled) / len(train),
                    "n_event_files": int(event_file[np.asarray(labelled)].sum()),
                    **scores,
                }
            )
    full = fit(SoftmaxProbe(C + 1, cfg.probe_l2, cfg.probe_max_iter * 2), train)
    full_row = {
        **base,
        "strategy": "full",
        "k": -1,
        "round": -1,
        "n_labelled": len(train),
        "label_fraction": 1.0,
        "n_event_files": int(event_file[train].sum()),
        **evaluate(full),
    }
    return rows, full_row


# --------------------------------------------------------------------------- summaries


def _interval(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    m, lo, hi, _ = bootstrap_interval(values)
    return m, lo, hi


def _fmt(t: Sequence[float], spec: str = ".3f") -> str:
    m, lo, hi = t
    if not np.isfinite(m):
        return "n/a"
    return f"{m:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def run_aulc(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """AULC (trapezoid over the label fraction / window) per (snr, replicate, strategy, k)."""
    keys = ["snr_db", "replicate", "strategy", "k"]
    out = [
        {**dict(zip(keys, key)), "aulc": aulc(g["label_fraction"], g[metric])}
        for key, g in results.groupby(keys, sort=True)
    ]
    return pd.DataFrame(out, columns=[*keys, "aulc"])


def _paired(a: pd.DataFrame, b: pd.DataFrame, col: str) -> tuple[float, float, float]:
    m = a.merge(b, on=["snr_db", "replicate"], suffixes=("_a", "_b"))
    return _interval(m[f"{col}_a"] - m[f"{col}_b"])


def claims(
    results: pd.DataFrame,
    full: pd.DataFrame,
    cfg: ALConfig,
    snr_db: float,
    metric: str = "event_iou",
    claim_k: int | None = None,
) -> dict[str, Any]:
    """The paper's three claims on one SNR, with the numbers that decide them.

    1. Top-``claim_k`` (the paper's Top-10) reaches full supervision with ``claim_fraction`` of
       the files labelled: holds when the mean per-replicate ratio (metric at that round /
       the replicate's full supervision) is >= ``full_tolerance``.
    2. Top-K > Mean > Median ~ Random on the AULC: ">" holds when the paired difference's
       bootstrap interval lies above 0, "~" when it contains 0.
    3. Mean Event Entropy is the worst: holds when its mean AULC is the lowest of all runs.
    """
    k = cfg.claim_k if claim_k is None else claim_k
    res = results[results["snr_db"] == snr_db]
    ful = full[full["snr_db"] == snr_db][["snr_db", "replicate", metric]]
    fracs = [f for f, _ in schedule(cfg, int(res["n_train"].iloc[0]))]
    target = int(np.argmin([abs(f - cfg.claim_fraction) for f in fracs]))
    topk = res[(res["strategy"] == "topk") & (res["k"] == k) & (res["round"] == target)]
    m = topk.merge(ful, on=["snr_db", "replicate"], suffixes=("", "_full"))
    ratio = _interval(m[metric] / m[f"{metric}_full"])
    frac = float(topk["label_fraction"].mean())
    c1 = {
        "claim": f"Top-{k} reaches full supervision with {cfg.claim_fraction:.0%} of the files",
        "label_fraction": frac,
        "top_k": _interval(topk[metric]),
        "full": _interval(ful[metric]),
        "ratio": ratio,
        "holds": bool(ratio[0] >= cfg.full_tolerance),
        "rule": f"mean ratio >= {cfg.full_tolerance}",
    }
    au = run_aulc(res, metric)

    def sel(s: str, kk: int = -1) -> pd.DataFrame:
        return au[(au["strategy"] == s) & (au["k"] == kk)]

    d_top_mean = _paired(sel("topk", k), sel("mean"), "aulc")
    d_mean_med = _paired(sel("mean"), sel("median"), "aulc")
    d_med_rand = _paired(sel("median"), sel("random"), "aulc")
    c2: dict[str, Any] = {
        "claim": f"Top-{k} > Mean > Median ~ Random (AULC)",
        "top_minus_mean": d_top_mean,
        "mean_minus_median": d_mean_med,
        "median_minus_random": d_med_rand,
        "parts": {
            "top>mean": bool(d_top_mean[1] > 0),
            "mean>median": bool(d_mean_med[1] > 0),
            "median~random": bool(d_med_rand[1] <= 0 <= d_med_rand[2]),
        },
    }
    c2["holds"] = all(c2["parts"].values())
    means = au.groupby(["strategy", "k"])["aulc"].mean()
    worst = means.idxmin()
    d_me_rand = _paired(sel("mean_event"), sel("random"), "aulc")
    c3 = {
        "claim": "Mean Event Entropy is the worst",
        "worst": strategy_label(worst[0], None if worst[1] < 0 else int(worst[1])),
        "mean_event_aulc": _interval(sel("mean_event")["aulc"]),
        "mean_event_minus_random": d_me_rand,
        "holds": bool(worst == ("mean_event", -1)),
    }
    return {"snr_db": snr_db, "metric": metric, "claims": [c1, c2, c3]}


def comparison_table(
    results: pd.DataFrame,
    full: pd.DataFrame,
    cfg: ALConfig,
    snr_db: float,
    metric: str,
    max_cols: int = 6,
) -> str:
    """Markdown table: strategy rows x label-fraction columns (mean [95% bootstrap interval]
    over replicates), the AULC, and the full-supervision reference."""
    res = results[results["snr_db"] == snr_db]
    n_train = int(res["n_train"].iloc[0])
    plan = schedule(cfg, n_train)
    rounds = list(range(len(plan)))
    if len(rounds) > max_cols:  # every other round, always the claim's and the last
        target = int(np.argmin([abs(f - cfg.claim_fraction) for f, _ in plan]))
        keep = set(rounds[::2]) | {target, rounds[-1]}
        rounds = sorted(keep)[-max_cols:] if len(keep) > max_cols else sorted(keep)
    head = " | ".join(f"{plan[r][1] / n_train:.1%}" for r in rounds)
    lines = [f"| strategy | {head} | AULC |", "|---" * (len(rounds) + 2) + "|"]
    au = run_aulc(res, metric)
    for strategy, k in cfg.runs():
        kk = k if k is not None else -1
        g = res[(res["strategy"] == strategy) & (res["k"] == kk)]
        cells = [_fmt(_interval(g[g["round"] == r][metric])) for r in rounds]
        a = au[(au["strategy"] == strategy) & (au["k"] == kk)]["aulc"]
        lines.append(
            f"| {strategy_label(strategy, k)} | {' | '.join(cells)} | {_fmt(_interval(a))} |"
        )
    ful = full[full["snr_db"] == snr_db][metric]
    lines.append(f"| full supervision (100%) | {_fmt(_interval(ful))} |" + " |" * len(rounds))
    return "\n".join(lines)


def verdict_lines(c: Mapping[str, Any]) -> list[str]:
    c1, c2, c3 = c["claims"]
    yes = {True: "HOLDS", False: "DOES NOT HOLD"}
    p = c2["parts"]
    return [
        f"1. {c1['claim']}: {yes[c1['holds']]} - at {c1['label_fraction']:.1%} labelled "
        f"{_fmt(c1['top_k'])} vs full {_fmt(c1['full'])}, ratio {_fmt(c1['ratio'])} "
        f"({c1['rule']})",
        f"2. {c2['claim']}: {yes[c2['holds']]} - Top-K minus Mean {_fmt(c2['top_minus_mean'])} "
        f"({'>' if p['top>mean'] else 'not >'}), Mean minus Median "
        f"{_fmt(c2['mean_minus_median'])} ({'>' if p['mean>median'] else 'not >'}), Median "
        f"minus Random {_fmt(c2['median_minus_random'])} "
        f"({'~' if p['median~random'] else 'not ~'})",
        f"3. {c3['claim']}: {yes[c3['holds']]} - lowest mean AULC: {c3['worst']}; Mean Event "
        f"AULC {_fmt(c3['mean_event_aulc'])}, minus Random {_fmt(c3['mean_event_minus_random'])}",
    ]


def event_share_line(res: pd.DataFrame, ful: pd.DataFrame, cfg: ALConfig) -> str:
    """Share of event files among the labelled files at the claim's round, per strategy, and
    in the whole training pool (the full-supervision rows)."""
    plan = schedule(cfg, int(res["n_train"].iloc[0]))
    target = int(np.argmin([abs(f - cfg.claim_fraction) for f, _ in plan]))
    at = res[res["round"] == target]
    parts = []
    for strategy, k in cfg.runs():
        g = at[(at["strategy"] == strategy) & (at["k"] == (k if k is not None else -1))]
        share = float((g["n_event_files"] / g["n_labelled"]).mean())
        parts.append(f"{strategy_label(strategy, k)} {share:.2f}")
    pool = float((ful["n_event_files"] / ful["n_labelled"]).mean())
    return (
        f"Event files among the labelled files at {at['label_fraction'].mean():.1%} (mean "
        f"over replicates; pool {pool:.2f}): " + ", ".join(parts)
    )


def report(
    results: pd.DataFrame,
    full: pd.DataFrame,
    cfg: ALConfig,
    title: str,
    duration_s: float = 10.0,
    claim_k: int | None = None,
) -> tuple[str, list[dict]]:
    """The printed comparison (IoU and macro AP tables per SNR) and the claims per SNR."""
    out = [f"## {title}", ""]
    all_claims = []
    for snr in sorted(results["snr_db"].unique()):
        res = results[results["snr_db"] == snr]
        n_train = int(res["n_train"].iloc[0])
        n_rep = res["replicate"].nunique()
        out += [
            f"### SNR {snr:+g} dB ({n_rep} replicates, {n_train} training files of "
            f"{duration_s:g} s: label fraction = listening fraction, 1% = "
            f"{0.01 * n_train * duration_s:.0f} s of audio)",
            "",
        ]
        for metric, name in (("event_iou", "event IoU"), ("macro_ap", "macro AP")):
            out += [
                f"{name} (mean [95% bootstrap interval over replicates]):",
                "",
                comparison_table(results, full, cfg, snr, metric),
                "",
            ]
        c = claims(results, full, cfg, snr, "event_iou", claim_k)
        all_claims.append(c)
        out += [
            "Claims (event IoU):",
            "",
            *verdict_lines(c),
            "",
            event_share_line(res, full[full["snr_db"] == snr], cfg),
            "",
        ]
    return "\n".join(out), all_claims


# --------------------------------------------------------------------------- runners


def read_protocol(path: str | Path = PROTOCOL) -> dict[str, Any]:
    """The ``lindholm:`` section of the protocol YAML."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise LindholmError(f"{p}: protocol file not found")
    doc = yaml.safe_load(p.read_text()) or {}
    if "lindholm" not in doc:
        raise LindholmError(f"{p}: no 'lindholm:' section")
    out = dict(doc["lindholm"])
    known = set(ALConfig.__dataclass_fields__) | DATA_KEYS
    unknown = sorted(set(out) - known)
    if unknown:
        raise LindholmError(
            f"{p}: unknown key(s) lindholm.{', lindholm.'.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    return out


def run_embedding(
    protocol: Mapping[str, Any],
    size: str = "ci",
    seeds: int | None = None,
    snrs: Sequence[float] | None = None,
    n_files: int | None = None,
    log: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Variant (a): ``seeds`` replicates x SNRs; returns (results, full) tables."""
    emb = dict(protocol.get("embedding") or {})
    if size not in emb:
        raise LindholmError(
            f"lindholm.embedding.{size}: no such size (have "
            f"{', '.join(k for k in emb if isinstance(emb[k], dict))})"
        )
    sz = emb[size]
    cfg = ALConfig.from_params(protocol)
    nf = int(n_files or sz["n_files"])
    rows, fulls = [], []
    for snr in snrs if snrs is not None else sz.get("snr_db", [0]):
        for rep in range(int(seeds or sz.get("seeds", 5))):
            t0 = time.perf_counter()
            data = embedding_frames(
                nf,
                seed=rep,
                snr_db=float(snr),
                n_classes=int(protocol.get("n_classes", 5)),
                frames=int(emb.get("frames", 175)),
                bands=int(emb.get("bands", 16)),
                fluctuation=float(emb.get("fluctuation", 4.0)),
                template_width=float(emb.get("template_width", 1.5)),
                event_ratio=float(protocol.get("event_ratio", 0.2)),
                events_per_file=protocol.get("events_per_file", (1, 3)),
                event_s=protocol.get("event_s", (0.3, 2.0)),
                duration_s=float(protocol.get("duration_s", 10.0)),
            )
            r, f = run_replicate(data, cfg, rep, "embedding", float(snr))
            rows += r
            fulls.append(f)
            if log:
                log(f"embedding snr {snr:+g} dB replicate {rep}: {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.DataFrame(fulls, columns=RESULT_COLUMNS)


def write_outputs(
    out: str | Path,
    results: pd.DataFrame,
    full: pd.DataFrame,
    text: str,
    all_claims: list[dict],
    meta: Mapping[str, Any],
) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(results, out / "results.parquet", "lindholm")
    write_parquet(full, out / "full.parquet", "lindholm")
    write_text(text + "\n", out / "table.md", "lindholm")
    write_json({"meta": dict(meta), "claims": all_claims}, out / "claims.json", "lindholm")


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam lindholm embedding|audio``: the Lindholm et al. 2025 reproduction kit."""
    p = subparsers.add_parser(
        "lindholm",
        help="Lindholm et al. 2025 Top-K entropy kit (embedding or audio variant)",
        description="Run the Lindholm et al. 2025 protocol (params/protocols/lindholm2025.yaml): "
        "file-level active learning with segment entropies aggregated per file (Top-K, Mean, "
        "Median, Mean Event Entropy, Random); print label fraction vs event IoU / macro AP per "
        "strategy with intervals over replicates and a verdict per claim.",
    )
    p.add_argument(
        "variant",
        choices=("embedding", "audio", "report"),
        help="embedding: synthetic log band-power frames; audio: generated audio "
        "through BirdNET; report: re-print the tables and claims of the run in --out "
        "(its results.parquet and full.parquet) without running anything",
    )
    p.add_argument("--protocol", default=PROTOCOL, help="protocol YAML (lindholm: section)")
    p.add_argument("--size", default="ci", help="embedding variant: paper or ci")
    p.add_argument("--seeds", type=int, help="replicates (default: the size's seeds)")
    p.add_argument("--snr", type=float, action="append", help="SNR in dB (repeatable)")
    p.add_argument("--files", type=int, help="number of files (default: the size's n_files)")
    p.add_argument("--threads", type=int, default=2, help="audio variant: BirdNET threads")
    p.add_argument("--out", required=True, help="output folder (results, table.md, claims.json)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    import sys

    def log(msg: str) -> None:
        print(f"[lindholm] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        protocol = read_protocol(args.protocol)
        cfg = ALConfig.from_params(protocol)
        if args.variant == "report":
            results, full, title, claim_k = _saved_run(Path(args.out), protocol)
        elif args.variant == "embedding":
            results, full = run_embedding(
                protocol, args.size, args.seeds, args.snr, args.files, log
            )
            title = f"Lindholm et al. 2025, variant (a) embedding space, size {args.size}"
            claim_k = None
        else:
            from activepam.simulation.lindholm_audio import run_audio

            results, full = run_audio(
                protocol, Path(args.out), args.seeds, args.snr, args.files, args.threads, log
            )
            title = "Lindholm et al. 2025, variant (b) generated audio through BirdNET"
            claim_k = int((protocol.get("audio") or {}).get("claim_k", 1))
    except LindholmError as exc:
        print(f"activepam lindholm: {exc}", file=sys.stderr)
        return 2
    text, all_claims = report(
        results, full, cfg, title, float(protocol.get("duration_s", 10.0)), claim_k
    )
    wall = time.perf_counter() - t0
    text += f"\nwall time {wall:.0f} s\n"
    print(text)
    if args.variant == "report":
        return 0
    write_outputs(
        args.out,
        results,
        full,
        text,
        all_claims,
        {
            "variant": args.variant,
            "size": args.size,
            "wall_s": wall,
            "protocol": str(args.protocol),
        },
    )
    return 0


def _saved_run(
    out: Path, protocol: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str, int | None]:
    """(results, full, title, claim K) of a finished run folder."""
    paths = [out / "results.parquet", out / "full.parquet"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise LindholmError(f"report: {', '.join(missing)} not found (run the variant first)")
    results, full = (pd.read_parquet(p) for p in paths)
    variant = str(results["variant"].iloc[0])
    if variant == "audio":
        return (
            results,
            full,
            f"Lindholm et al. 2025, variant (b) generated audio through BirdNET (saved run {out})",
            int((protocol.get("audio") or {}).get("claim_k", 1)),
        )
    return (
        results,
        full,
        f"Lindholm et al. 2025, variant (a) embedding space (saved run {out})",
        None,
    )
