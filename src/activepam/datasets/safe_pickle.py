"""Loading outside pickles without running their code: a restricted :class:`pickle.Unpickler`.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable
(``os.system``, ``builtins.eval`` ...) and ``REDUCE`` calls it. :class:`SafeUnpickler` resolves a
global only if its exact ``module.name`` is in :data:`ALLOWED_GLOBALS`, a table of the objects
that numpy arrays, Python containers and pandas DataFrames / Series / Index need; anything else
stops the load *before* the global is imported or called, with :class:`UnsafePickleError`
naming the file and the refused global.

The table was built by pickling fixtures with the installed numpy / pandas (every protocol
0-5; DataFrames with int, float, bool, object, str, datetime, tz-aware, timedelta, categorical
and nullable-integer columns, RangeIndex / Index / MultiIndex / DatetimeIndex, Series, numpy
arrays and scalars) and listing the globals their ``find_class`` calls asked for; the names of
the same objects in pandas 2.x / numpy 1.x pickles (``pandas.core.frame.DataFrame``,
``numpy.core.multiarray._reconstruct``) map to the installed objects. Names are resolved from
this fixed table only: the unpickler never imports a module named by the file.

Further guards: ``_codecs.encode`` (protocol 0-2 bytes) is allowed for the ``latin1`` codec
only, and Arrow-backed string arrays (pandas >= 3 pickles) are validated after loading, so a
forged offsets buffer cannot make later reads leave their memory.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ALLOWED_GLOBALS", "SafeUnpickler", "UnsafePickleError", "load_pickle", "loads"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowlist (nothing was imported or called)."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it (bytes as latin-1 text), nothing else."""
    try:
        latin1 = codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        latin1 = False
    if not isinstance(obj, str) or not latin1:
        raise UnsafePickleError(
            f"_codecs.encode is allowed for latin1 text only (got {type(obj).__name__}, "
            f"{encoding!r})"
        )
    return codecs.encode(obj, "latin1", errors)


def _resolve(dotted: str) -> Any:
    """Object at ``package.module:attr.attr`` of the installed libraries (fixed names only)."""
    module, _, attr = dotted.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


#: allowed global name (as written in a pickle) -> where the installed object lives
_TABLE: dict[str, str] = {
    # Python containers and scalars
    "builtins.set": "builtins:set",
    "builtins.frozenset": "builtins:frozenset",
    "builtins.slice": "builtins:slice",
    "builtins.bytearray": "builtins:bytearray",
    "builtins.bytes": "builtins:bytes",
    "builtins.complex": "builtins:complex",
    "builtins.range": "builtins:range",
    "builtins.object": "builtins:object",
    "copyreg._reconstructor": "copyreg:_reconstructor",
    "collections.OrderedDict": "collections:OrderedDict",
    "datetime.datetime": "datetime:datetime",
    "datetime.date": "datetime:date",
    "datetime.time": "datetime:time",
    "datetime.timedelta": "datetime:timedelta",
    "datetime.timezone": "datetime:timezone",
    # numpy arrays, dtypes and scalars (numpy 2 names and their numpy 1 spellings)
    "numpy.ndarray": "numpy:ndarray",
    "numpy.dtype": "numpy:dtype",
    "numpy._core.multiarray._reconstruct": "numpy._core.multiarray:_reconstruct",
    "numpy.core.multiarray._reconstruct": "numpy._core.multiarray:_reconstruct",
    "numpy._core.multiarray.scalar": "numpy._core.multiarray:scalar",
    "numpy.core.multiarray.scalar": "numpy._core.multiarray:scalar",
    "numpy._core.numeric._frombuffer": "numpy._core.numeric:_frombuffer",
    "numpy.core.numeric._frombuffer": "numpy._core.numeric:_frombuffer",
    # pandas internals of DataFrame / Series / Index pickles
    "pandas.core.internals.managers.BlockManager": "pandas.core.internals.managers:BlockManager",
    "pandas.core.internals.managers.SingleBlockManager": "pandas.core.internals.managers:SingleBlockManager",
    "pandas._libs.internals._unpickle_block": "pandas._libs.internals:_unpickle_block",
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked": "pandas._libs.arrays:__pyx_unpickle_NDArrayBacked",
    "pandas.core.indexes.base._new_Index": "pandas.core.indexes.base:_new_Index",
    "pandas.core.indexes.datetimes._new_DatetimeIndex": "pandas.core.indexes.datetimes:_new_DatetimeIndex",
    "pandas._libs.tslibs.timestamps._unpickle_timestamp": "pandas._libs.tslibs.timestamps:_unpickle_timestamp",
    "pandas._libs.tslibs.timedeltas._timedelta_unpickle": "pandas._libs.tslibs.timedeltas:_timedelta_unpickle",
    # Arrow-backed strings (pandas >= 3 with pyarrow); validated after loading
    "pyarrow.lib._restore_array": "pyarrow.lib:_restore_array",
    "pyarrow.lib.py_buffer": "pyarrow.lib:py_buffer",
    "pyarrow.lib.type_for_alias": "pyarrow.lib:type_for_alias",
}

#: pandas classes: public name (pandas >= 3 pickles) and the module of pandas 1.x / 2.x pickles
_PANDAS_CLASSES: dict[str, str] = {
    "DataFrame": "pandas.core.frame",
    "Series": "pandas.core.series",
    "Index": "pandas.core.indexes.base",
    "RangeIndex": "pandas.core.indexes.range",
    "MultiIndex": "pandas.core.indexes.multi",
    "DatetimeIndex": "pandas.core.indexes.datetimes",
    "CategoricalIndex": "pandas.core.indexes.category",
    "Categorical": "pandas.core.arrays.categorical",
    "CategoricalDtype": "pandas.core.dtypes.dtypes",
    "DatetimeTZDtype": "pandas.core.dtypes.dtypes",
    "StringDtype": "pandas.core.arrays.string_",
    "BooleanDtype": "pandas.core.arrays.boolean",
    "Float32Dtype": "pandas.core.arrays.floating",
    "Float64Dtype": "pandas.core.arrays.floating",
    **{
        f"{k}Dtype": "pandas.core.arrays.integer"
        for k in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    },
}
_PANDAS_ARRAYS: dict[str, str] = {
    "DatetimeArray": "pandas.core.arrays.datetimes",
    "TimedeltaArray": "pandas.core.arrays.timedeltas",
    "IntegerArray": "pandas.core.arrays.integer",
    "FloatingArray": "pandas.core.arrays.floating",
    "BooleanArray": "pandas.core.arrays.boolean",
    "StringArray": "pandas.core.arrays.string_",
    "ArrowStringArray": "pandas.core.arrays.string_arrow",
}
for _name, _legacy in _PANDAS_CLASSES.items():
    _TABLE[f"pandas.{_name}"] = f"pandas:{_name}"
    _TABLE[f"{_legacy}.{_name}"] = f"pandas:{_name}"
for _name, _legacy in _PANDAS_ARRAYS.items():
    _TABLE[f"pandas.arrays.{_name}"] = f"pandas.arrays:{_name}"
    _TABLE[f"{_legacy}.{_name}"] = f"pandas.arrays:{_name}"

#: the allowlist: exact global names a pickle may ask for
ALLOWED_GLOBALS: frozenset[str] = frozenset(_TABLE) | {"_codecs.encode"}

#: protocol 0-2 pickles name Python 2 modules
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_cache: dict[str, Any] = {}


def _allowed(name: str) -> Any:
    if name == "_codecs.encode":
        return _latin1_encode
    if name not in _cache:
        _cache[name] = _resolve(_TABLE[name])
    return _cache[name]


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of :data:`ALLOWED_GLOBALS`.

    ``source`` names the file in errors; ``extra`` adds exact globals for one caller (the
    torch reader maps its few torch names to numpy stand-ins this way) and ``persistent_load``
    resolves persistent ids (refused without it).
    """

    def __init__(
        self,
        file: io.BufferedIOBase | io.BytesIO,
        source: str = "pickle",
        extra: dict[str, Any] | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file)
        self.source = source
        self.extra = dict(extra or {})
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        full = f"{module}.{name}"
        if full in self.extra:
            return self.extra[full]
        if full in ALLOWED_GLOBALS:
            return _allowed(full)
        raise UnsafePickleError(
            f"{self.source}: refused global {full!r}: not a numpy / pandas / container type "
            "(the file may run code when loaded; nothing was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError(f"{self.source}: unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _validate_arrow(obj: Any, source: str, depth: int = 0) -> None:
    """Full validation of Arrow arrays inside loaded pandas objects (offsets within buffers)."""
    import pandas as pd

    if depth > 50:
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _validate_arrow(v, source, depth + 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            _validate_arrow(v, source, depth + 1)
    elif isinstance(obj, pd.DataFrame):
        _validate_arrow(obj.index, source, depth + 1)
        _validate_arrow(obj.columns, source, depth + 1)
        for i in range(obj.shape[1]):
            _validate_arrow(obj.iloc[:, i].array, source, depth + 1)
    elif isinstance(obj, pd.Series):
        _validate_arrow(obj.index, source, depth + 1)
        _validate_arrow(obj.array, source, depth + 1)
    elif isinstance(obj, pd.MultiIndex):
        for level in obj.levels:
            _validate_arrow(level, source, depth + 1)
    elif isinstance(obj, pd.CategoricalIndex):
        _validate_arrow(obj.categories, source, depth + 1)
    elif isinstance(obj, pd.Index):
        _validate_arrow(obj.array, source, depth + 1)
    elif isinstance(obj, pd.Categorical):
        _validate_arrow(obj.categories, source, depth + 1)
    else:
        arrow = getattr(obj, "_pa_array", None)
        if arrow is not None:
            import pyarrow as pa

            try:
                arrow.validate(full=True)
            except pa.ArrowException as exc:
                raise UnsafePickleError(f"{source}: corrupt Arrow string array: {exc}") from None


def loads(
    data: bytes,
    source: str = "pickle",
    extra: dict[str, Any] | None = None,
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler` (errors name ``source``; ``extra`` and
    ``persistent_load`` as in :class:`SafeUnpickler`)."""
    try:
        obj = SafeUnpickler(io.BytesIO(data), source, extra, persistent_load).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(source):
            raise
        raise UnsafePickleError(f"{source}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (an allowed constructor rejected its arguments)
        raise UnsafePickleError(f"{source}: not a readable pickle: {exc}") from None
    _validate_arrow(obj, source)
    return obj


def load_pickle(path: str | Path) -> Any:
    """Load an outside pickle file, refusing every global outside :data:`ALLOWED_GLOBALS`."""
    path = Path(path)
    return loads(path.read_bytes(), str(path))


def pickle_globals(obj: Any, protocols: Any = range(pickle.HIGHEST_PROTOCOL + 1)) -> set[str]:
    """The globals pickles of ``obj`` ask for (all protocols): how the allowlist was built."""
    seen: set[str] = set()

    class _Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            seen.add(f"{_PY2_MODULES.get(module, module)}.{name}")
            return super().find_class(module, name)

    for proto in protocols:
        _Recorder(io.BytesIO(pickle.dumps(obj, protocol=proto))).load()
    return seen
