"""Embeddings shared by every stage: an Arrow list column as a matrix, and embedding sources.

* :func:`embedding_matrix` is the one conversion of an ``embedding`` column (fixed-size list, or
  list of equal length, of floats) into a ``[rows, dim]`` float32 matrix; the training,
  search, sampling, store and simulation code all read embeddings through it.
* :class:`EmbeddingSource` is the interface of embeddings looked up by ``segment_id`` or
  ``recording_id`` (a recording's embedding is the mean of its segments', :func:`group_mean`);
  the in-memory and Parquet sources are in :mod:`activepam.sampling.sources`, the device/month
  store in :mod:`activepam.core.store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class EmbeddingError(ValueError):
    """An embedding column or file cannot be read as a matrix (the message names the source)."""


def embedding_matrix(
    column: pa.Array | pa.ChunkedArray,
    source: str | Path = "embeddings",
    error: type[Exception] = EmbeddingError,
) -> np.ndarray:
    """``[n, d]`` float32 matrix of a (fixed-size) list<float> column.

    An empty column gives ``(0, list_size)`` for a fixed-size list, else ``(0, 0)``. Rows of
    different lengths, missing rows or a non-list column raise ``error`` naming ``source``.
    """
    if isinstance(column, pa.ChunkedArray):  # one chunk: no copy
        arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    else:
        arr = column
    n = len(arr)
    fixed = pa.types.is_fixed_size_list(arr.type)
    if not (fixed or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise error(f"{source}: column 'embedding' is not a list of floats ({arr.type})")
    if n == 0:
        return np.zeros((0, arr.type.list_size if fixed else 0), dtype=np.float32)
    if arr.null_count:
        raise error(f"{source}: {arr.null_count} missing embeddings")
    if fixed:
        dim = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr)
        lo, hi = pc.min_max(lengths).values()
        if lo.as_py() != hi.as_py():
            raise error(
                f"{source}: embeddings have different lengths ({lo.as_py()} to {hi.as_py()} values)"
            )
        dim = int(lo.as_py())
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, dim)


def group_mean(keys: np.ndarray, matrix: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    """Mean row of ``matrix`` per key, aligned with ``wanted`` (NaN rows for absent keys)."""
    codes, uniq = pd.factorize(pd.Series(keys, dtype=object))
    sums = np.zeros((len(uniq), matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, matrix)
    counts = np.bincount(codes, minlength=len(uniq))
    means = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    pos = pd.Index(uniq).get_indexer(pd.Index(list(wanted), dtype=object))
    out = np.full((len(wanted), matrix.shape[1]), np.nan, dtype=np.float32)
    out[pos >= 0] = means[pos[pos >= 0]]
    return out


class EmbeddingSource:
    """Embeddings by ``segment_id`` or ``recording_id`` (mean over a recording's segments)."""

    def available(self, ids: pd.Series, key: str) -> np.ndarray:  # pragma: no cover - abstract
        """Mask of ``ids`` (values of ``key``) that have an embedding."""
        raise NotImplementedError

    def fetch(self, ids: Sequence[str], key: str) -> np.ndarray:  # pragma: no cover - abstract
        """float32 matrix, one row per id (NaN row when the id has no embedding)."""
        raise NotImplementedError
