"""One probability scale for the uncertainty scores (issue 10, defect 4): an uncalibrated
balanced probe is prior-corrected, so a rare species is not pushed towards 0.5."""

from __future__ import annotations

import numpy as np

from activepam.core.uncertainty import binary_entropy
from activepam.rounds.train import TrainOptions, fit_round_model


def _rare(n: int, prevalence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < prevalence).astype(float)
    X = rng.normal(size=(n, 8))
    X[:, 0] += 0.8 * y  # a weak signal: the classes overlap
    return X, y


def test_rare_uncalibrated_probe_keeps_the_training_prevalence() -> None:
    X, y = _rare(240, 0.04, 0)  # ~10 positives: below calibrate_min=20 -> kind "probe"
    model = fit_round_model(X, y[:, None], ["Rare_sp"], TrainOptions(calibrate_min=20))
    assert model.species["Rare_sp"].kind == "probe"
    assert model.species["Rare_sp"].prior_logit < -2
    Xp, yp = _rare(5000, 0.04, 1)
    p = model.predict(Xp, np.zeros((len(Xp), 1)))[:, 0]
    # balanced weights alone put the pool's mean near 0.5; prior-corrected, near the prevalence
    assert p.mean() < 0.12
    assert (binary_entropy(p) > 0.95).mean() < 0.05
    # ranking (and so AP) is unchanged by the shift
    raw = model.species["Rare_sp"].estimator.predict_proba(model.scaler.transform(Xp))[:, 1]
    assert np.array_equal(np.argsort(raw, kind="stable"), np.argsort(p, kind="stable"))


def test_old_models_without_prior_still_predict() -> None:
    X, y = _rare(240, 0.1, 2)
    model = fit_round_model(X, y[:, None], ["A_a"], TrainOptions(calibrate_min=50))
    m = model.species["A_a"]
    del m.__dict__["prior_logit"]  # as unpickled from a model saved before the field existed
    p = model.predict(X, np.zeros((len(X), 1)))[:, 0]
    assert np.isfinite(p).all() and 0.3 < p.mean() < 0.7  # the old (balanced) scale
