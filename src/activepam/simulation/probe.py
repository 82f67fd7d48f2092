"""The simulation's probes: :class:`Probe` (multi-label L2 logistic regression fitted with one
L-BFGS run, warm-started) and :class:`BaseALProbe` (BaseAL's MLP head), and the probe
features (:func:`features`: optional seeded PCA, optional whitening).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from activepam.simulation.config import SimConfig
from activepam.simulation.dataset import SimulationError


class Probe:
    """Multi-label L2 logistic regression, all species fitted jointly with L-BFGS.

    Per species the objective is scikit-learn's ``LogisticRegression(C=C)``:
    ``sum_i logloss(y_i, w.x_i + b) + ||w||^2 / (2 C)`` (intercept not penalised). Species
    with a single class among the training labels get the constant probability
    ``(positives + 0.5) / (n + 1)``. ``fit`` warm-starts from the previous solution.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 200, tol: float = 1e-4) -> None:
        if C <= 0:
            raise SimulationError(f"probe C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.W: np.ndarray | None = None  # [dim, n_species]
        self.b: np.ndarray | None = None  # [n_species]
        self.n_iter_ = 0

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Probe:
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        n, d = X.shape
        s = Y.shape[1]
        if self.W is None or self.W.shape != (d, s):
            self.W, self.b = np.zeros((d, s)), np.zeros(s)
        assert self.b is not None
        pos = Y.sum(axis=0)
        active = (pos > 0) & (pos < n)
        const = np.clip((pos + 0.5) / (n + 1.0), 1e-6, 1 - 1e-6)
        self.W[:, ~active] = 0.0
        self.b[~active] = np.log(const[~active] / (1 - const[~active]))
        k = int(active.sum())
        if k == 0 or n == 0:
            return self
        Ya = Y[:, active]
        inv_c = 1.0 / self.C

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: d * k].reshape(d, k)
            b = theta[d * k :]
            Z = X @ W + b
            loss = (
                -(Ya * log_expit(Z) + (1.0 - Ya) * log_expit(-Z)).sum()
                + 0.5 * inv_c * (W * W).sum()
            )
            G = expit(Z) - Ya
            return float(loss), np.concatenate([(X.T @ G + inv_c * W).ravel(), G.sum(axis=0)])

        theta0 = np.concatenate([self.W[:, active].ravel(), self.b[active]])
        res = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol * n},
        )
        self.W[:, active] = res.x[: d * k].reshape(d, k)
        self.b[active] = res.x[d * k :]
        self.n_iter_ = int(res.nit)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        if self.W is None or self.b is None:
            raise SimulationError("probe used before fit")
        return np.asarray(X, dtype=np.float64) @ self.W + self.b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of presence [n, n_species]."""
        return expit(self.decision_function(X))


class BaseALProbe:
    """BaseAL's head (``core/utils/model.py`` of BenMcEwen1/BaseAL): Linear(d, h) - ReLU -
    Linear(h, species) with sigmoid outputs, trained with Adam on the binary cross-entropy,
    ``epochs`` epochs per cycle in mini-batches of ``batch``; every ``fit`` continues from the
    previous weights (BaseAL keeps one model over the cycles). scikit-learn's
    ``MLPClassifier(hidden_layer_sizes=(h,), activation="relu", solver="adam",
    learning_rate_init=lr, batch_size=batch, max_iter=epochs, warm_start=True, alpha=0)``;
    ``hidden = 0`` uses the input dimension (BaseAL's ``hidden_dim=None``). A constant all-zero
    label column is appended so that one species still trains as multi-label.
    """

    def __init__(
        self, hidden: int = 0, epochs: int = 10, batch: int = 32, lr: float = 1e-3, seed: int = 0
    ) -> None:
        self.hidden, self.epochs, self.batch, self.lr, self.seed = (
            int(hidden),
            int(epochs),
            int(batch),
            float(lr),
            int(seed),
        )
        self.model: Any = None
        self.n_species = 0

    def fit(self, X: np.ndarray, Y: np.ndarray) -> BaseALProbe:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.int64)
        self.n_species = Y.shape[1]
        if self.model is None:
            self.model = MLPClassifier(
                hidden_layer_sizes=(self.hidden or X.shape[1],),
                activation="relu",
                solver="adam",
                learning_rate_init=self.lr,
                batch_size=self.batch,
                max_iter=self.epochs,
                n_iter_no_change=self.epochs,
                alpha=0.0,
                warm_start=True,
                shuffle=True,
                random_state=self.seed,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Got `batch_size`", category=UserWarning)
            self.model.fit(X, np.hstack([Y, np.zeros((len(Y), 1), dtype=np.int64)]))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of presence [n, n_species]."""
        if self.model is None:
            raise SimulationError("probe used before fit")
        return np.asarray(self.model.predict_proba(np.asarray(X, dtype=np.float64)))[
            :, : self.n_species
        ]


def make_probe(cfg: SimConfig, seed: int = 0, max_iter: int | None = None) -> Any:
    """The probe of ``cfg.probe``: :class:`Probe` (logistic, ours) or :class:`BaseALProbe`."""
    if cfg.probe == "baseal_mlp":
        return BaseALProbe(cfg.probe_hidden, cfg.probe_epochs, cfg.probe_batch, cfg.probe_lr, seed)
    return Probe(cfg.probe_C, max_iter or cfg.probe_max_iter)


def features(X: np.ndarray, pca_dims: int = 0, seed: int = 0, whiten: bool = False) -> np.ndarray:
    """Probe features: the embeddings, optionally PCA-projected (randomized, seeded) to
    ``pca_dims`` components, optionally whitened (every dimension z-scored).

    The default keeps the embedding geometry (PCA is a rotation + truncation, centred): on real
    BirdNET embeddings whitening blew up low-variance components and hurt the probe (issue 10:
    AULC 0.69 whitened vs 0.86 raw on a peer's real set; macro AP at 50 labels 0.38 vs 0.77
    with PCA alone), so ``simulation.whiten`` is off by default. Fitted on all units
    (unsupervised, transductive - the pool and the test set are known in a pool-based
    simulation); identical for every strategy and seed.
    """
    X = np.asarray(X, dtype=np.float64)
    if pca_dims and 0 < pca_dims < min(X.shape):
        from sklearn.decomposition import PCA

        X = PCA(
            n_components=int(pca_dims), svd_solver="randomized", random_state=seed
        ).fit_transform(X)
    if not whiten:
        return X
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def config_features(X: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """:func:`features` with the settings of ``cfg`` (``pca_dims``, ``whiten``)."""
    return features(X, cfg.pca_dims, whiten=cfg.whiten)
