"""Reading (and writing) PyTorch ``.pt`` tensor files without torch and without running code.

``torch.save`` (PyTorch >= 1.6) writes a zip archive ``<name>/data.pkl`` + ``<name>/data/<key>``
(one raw little- or big-endian storage per key) + optional ``<name>/byteorder``. ``data.pkl`` is
a pickle whose tensors reduce to ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks[, metadata])`` and whose storages are persistent ids
``('storage', torch.FloatStorage, key, location, numel)``.

:func:`load_pt` unpickles ``data.pkl`` with :class:`~activepam.datasets.safe_pickle.SafeUnpickler`,
mapping exactly those torch globals to numpy stand-ins: a storage becomes a 1-d
:func:`numpy.frombuffer` array of its record and a tensor a copy of
:func:`numpy.lib.stride_tricks.as_strided` over it (bounds checked against the storage). Every
other global (``os.system``, ``torch.load``, ``builtins.eval`` ...) is refused before it is
imported or called. Legacy (pre-1.6, non-zip) and TorchScript files are refused.

:func:`save_pt` writes a numpy array in the same format (used for fixtures; ``torch.load``
reads it).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from activepam.datasets.safe_pickle import UnsafePickleError, loads

__all__ = ["TorchFileError", "load_pt", "load_pt_array", "save_pt"]


class TorchFileError(ValueError):
    """A ``.pt`` file that is not a plain tensor archive (the message names the file)."""


#: torch storage class -> numpy dtype (``bfloat16`` is widened to float32)
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


class _StorageType:
    """Stand-in for a ``torch.<X>Storage`` class named in a pickle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.code = STORAGE_DTYPES[name]


class _Storage:
    """A storage read from the archive: a 1-d numpy array of its elements."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> np.ndarray:
    """numpy copy of a tensor view (``_rebuild_tensor_v2`` / ``_rebuild_tensor`` arguments)."""
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not a storage")
    ints = (int, np.integer)
    if not isinstance(offset, ints) or offset < 0:
        raise UnsafePickleError(f"bad tensor storage offset {offset!r}")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise UnsafePickleError(f"bad tensor size/stride {size!r} / {stride!r}")
    if not all(isinstance(v, ints) and v >= 0 for v in (*size, *stride)):
        raise UnsafePickleError(f"bad tensor size/stride {size!r} / {stride!r}")
    if len(rest) > 3:
        raise UnsafePickleError(f"unexpected tensor arguments {rest!r}")
    base = storage.data
    shape = tuple(int(v) for v in size)
    if 0 in shape:
        return np.zeros(shape, dtype=base.dtype)
    last = int(offset) + sum((n - 1) * int(s) for n, s in zip(shape, stride))
    if last >= base.size:
        raise UnsafePickleError(
            f"tensor of size {shape} stride {stride} offset {offset} reaches element {last} of "
            f"a storage of {base.size}"
        )
    view = np.lib.stride_tricks.as_strided(
        base[int(offset) :],
        shape=shape,
        strides=tuple(int(s) * base.itemsize for s in stride),
        writeable=False,
    )
    return np.array(view, copy=True)


_TORCH_GLOBALS: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    **{f"torch.{name}": _StorageType(name) for name in STORAGE_DTYPES},
}


def _decode(raw: bytes, code: str, big: bool, numel: int, source: str) -> np.ndarray:
    if code == "bf16":
        u16 = np.frombuffer(raw, dtype=">u2" if big else "<u2", count=numel)
        return (u16.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(code)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if big else "<")
    if len(raw) < numel * dtype.itemsize:
        raise TorchFileError(
            f"{source}: storage has {len(raw)} bytes, {numel} x {dtype.itemsize} expected"
        )
    return np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="), copy=False)


def load_pt(path: str | Path) -> Any:
    """Load a ``torch.save`` file as numpy arrays (tensors) inside plain containers."""
    path = Path(path)
    source = str(path)
    if not zipfile.is_zipfile(path):
        raise TorchFileError(
            f"{source}: not a zip-format torch file (legacy pre-1.6 torch files are not "
            "supported: re-save with torch.save in PyTorch >= 1.6)"
        )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            what = (
                "TorchScript archive"
                if any(n.endswith("/constants.pkl") for n in names)
                else ("archive without a single <name>/data.pkl")
            )
            raise TorchFileError(f"{source}: {what}; a torch.save tensor file is expected")
        prefix = pkls[0][: -len("data.pkl")]
        big = False
        if f"{prefix}byteorder" in names:
            order = zf.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise TorchFileError(f"{source}: unknown byteorder {order!r}")
            big = order == "big"
        storages: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> _Storage:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise UnsafePickleError(f"{source}: unexpected persistent id {pid!r}")
            _, stype, key, _location, numel = pid
            if not isinstance(stype, _StorageType):
                raise UnsafePickleError(f"{source}: storage type {stype!r} is not a torch storage")
            if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
                raise UnsafePickleError(f"{source}: bad storage id {pid!r}")
            if key not in storages:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise TorchFileError(f"{source}: storage record {record!r} is missing")
                raw = zf.read(record)
                storages[key] = _Storage(_decode(raw, stype.code, big, numel, f"{source}:{record}"))
            return storages[key]

        data = zf.read(pkls[0])
        return loads(
            data, f"{source}:{pkls[0]}", extra=_TORCH_GLOBALS, persistent_load=persistent_load
        )


def load_pt_array(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The single tensor of a ``.pt`` file as a numpy array (``ndim`` checked when given)."""
    obj = load_pt(path)
    if isinstance(obj, Mapping) and len(obj) == 1:
        obj = next(iter(obj.values()))
    if not isinstance(obj, np.ndarray):
        raise TorchFileError(f"{path}: holds a {type(obj).__name__}, one tensor expected")
    if ndim is not None and obj.ndim != ndim:
        raise TorchFileError(f"{path}: tensor of shape {obj.shape}, {ndim}-d expected")
    return obj


# --------------------------------------------------------------------------- writer


class _Global:
    """A global written by name (``torch`` need not be importable)."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __call__(self, *args: Any) -> None:  # pickle requires reduce functions to be callable
        raise TypeError("placeholder")


class _StorageStub:
    def __init__(self, key: str, type_name: str, numel: int) -> None:
        self.key = key
        self.type_name = type_name
        self.numel = numel


class _TensorStub:
    def __init__(self, storage: _StorageStub, shape: tuple[int, ...]) -> None:
        self.storage = storage
        self.shape = shape

    def __reduce__(self) -> tuple[Any, ...]:
        strides, acc = [], 1
        for n in reversed(self.shape):
            strides.append(acc)
            acc *= max(n, 1)
        return (
            _Global("torch._utils", "_rebuild_tensor_v2"),
            (
                self.storage,
                0,
                self.shape,
                tuple(reversed(strides)),
                False,
                collections.OrderedDict(),
            ),
        )


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler, to write named globals
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageStub):
            return ("storage", _Global("torch", obj.type_name), obj.key, "cpu", obj.numel)
        return None

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Global):
            self.write(  # type: ignore[attr-defined]
                pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii")
            )
            return
        super().save(obj, save_persistent_id)  # type: ignore[misc]


_NUMPY_STORAGE = {
    np.dtype("f8"): "DoubleStorage",
    np.dtype("f4"): "FloatStorage",
    np.dtype("f2"): "HalfStorage",
    np.dtype("i8"): "LongStorage",
    np.dtype("i4"): "IntStorage",
    np.dtype("i2"): "ShortStorage",
    np.dtype("i1"): "CharStorage",
    np.dtype("u1"): "ByteStorage",
    np.dtype("?"): "BoolStorage",
}


def save_pt(path: str | Path, array: np.ndarray, archive: str | None = None) -> Path:
    """Write ``array`` as a ``torch.save`` zip file (one tensor, little-endian, protocol 2)."""
    from activepam.core.io import atomic_path

    arr = np.ascontiguousarray(array)
    if arr.dtype not in _NUMPY_STORAGE:
        raise TorchFileError(f"{path}: dtype {arr.dtype} has no torch storage")
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    name = archive or Path(path).stem
    tensor = _TensorStub(
        _StorageStub("0", _NUMPY_STORAGE[arr.dtype], int(arr.size)),
        tuple(int(n) for n in arr.shape),
    )
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(tensor)
    with atomic_path(path, "datasets") as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(f"{name}/data.pkl", buf.getvalue())
        zf.writestr(f"{name}/byteorder", "little")
        zf.writestr(f"{name}/data/0", arr.tobytes())
        zf.writestr(f"{name}/version", "3\n")
    return Path(path)
