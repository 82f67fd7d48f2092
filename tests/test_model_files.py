"""Round model files: models saved before the package layout still load; a crafted model file
cannot run code (restricted unpickler)."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pytest

from activepam.rounds import train as tr

SP = ["A_a", "B_b", "C_c"]


def toy_model() -> tuple[tr.RoundModel, np.ndarray]:
    rng = np.random.default_rng(0)
    n, d = 120, 8
    Y = (rng.random((n, 3)) < [0.4, 0.2, 0.0]).astype(float)
    X = (Y @ rng.normal(0, 2, (3, d)) + rng.normal(0, 0.5, (n, d))).astype(np.float32)
    return tr.fit_round_model(X, Y, SP, tr.TrainOptions(calibrate_min=20), "h"), X


def test_model_pickled_under_the_old_module_path_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model written by a version before the layout names ``activepam.train.RoundModel``."""
    model, X = toy_model()
    legacy = types.ModuleType("activepam.train")
    legacy.RoundModel = tr.RoundModel  # type: ignore[attr-defined]
    legacy.SpeciesModel = tr.SpeciesModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "activepam.train", legacy)
    monkeypatch.setattr(tr.RoundModel, "__module__", "activepam.train")
    monkeypatch.setattr(tr.SpeciesModel, "__module__", "activepam.train")
    path = tmp_path / "old.joblib"
    joblib.dump(model, path)
    monkeypatch.undo()  # the old module is gone again, as in a new checkout
    assert "activepam.train" not in sys.modules
    assert b"activepam.train" in path.read_bytes() and b"activepam.rounds" not in path.read_bytes()
    back = tr.load_model(path)
    assert isinstance(back, tr.RoundModel)
    B = np.zeros((len(X), 3))
    np.testing.assert_allclose(back.predict(X, B), model.predict(X, B))


class _Boom:
    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))

    def __init__(self, marker: Path) -> None:
        self.marker = marker


def test_crafted_model_file_is_refused_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.joblib"
    path.write_bytes(pickle.dumps({"model": _Boom(marker)}))
    with pytest.raises(tr.TrainError, match="refusing to load pathlib"):
        tr.load_model(path)
    assert not marker.exists()


def test_not_a_model_and_corrupt_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "list.joblib"
    joblib.dump([1, 2, 3], path)
    with pytest.raises(tr.TrainError, match="not an activepam round model"):
        tr.load_model(path)
    bad = tmp_path / "cut.joblib"
    model, _ = toy_model()
    joblib.dump(model, bad)
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(tr.TrainError, match=str(bad)):
        tr.load_model(bad)
