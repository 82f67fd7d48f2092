"""File input/output shared by every stage.

* Atomic writes: every output is written to a temporary file in the destination folder and
  renamed into place, so a killed job never leaves a half-written file behind.
* Errors while writing (disk full, permission denied) are re-raised as :class:`StageIOError`
  naming the path and the stage.
* Audio is read through soundfile (WAV, FLAC, MP3, OGG) and can be streamed block-wise,
  mono-mixed and resampled with soxr, so a 24 h recording never sits in memory whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def _default_mode() -> int:
    """File mode a plain ``open()`` would give (0666 minus the umask); mkstemp uses 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


class StageIOError(OSError):
    """An output could not be written; the message names the stage and the path."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], stage: str = "activepam") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise StageIOError(exc.errno, f"[{stage}] cannot write {path}: {exc.strerror}") from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, StageIOError):
            raise
        raise StageIOError(
            exc.errno, f"[{stage}] cannot write {path}: {exc.strerror or exc}"
        ) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_parquet(
    data: pd.DataFrame | pa.Table, path: str | os.PathLike[str], stage: str = "activepam"
) -> Path:
    """Write a DataFrame or Arrow table to Parquet atomically (zstd compressed)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    with atomic_path(path, stage) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def write_csv(
    df: pd.DataFrame, path: str | os.PathLike[str], stage: str = "activepam", **kwargs: Any
) -> Path:
    """Write a DataFrame to CSV atomically."""
    kwargs.setdefault("index", False)
    with atomic_path(path, stage) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def write_text(text: str, path: str | os.PathLike[str], stage: str = "activepam") -> Path:
    """Write text atomically."""
    with atomic_path(path, stage) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str], stage: str = "activepam") -> Path:
    """Write JSON atomically (sorted keys, indented, NaN-free: :func:`jsonable`)."""
    return write_text(
        json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False, default=_json_default)
        + "\n",
        path,
        stage,
    )


def jsonable(obj: Any) -> Any:
    """``obj`` ready for JSON: NaN / infinite floats -> None, numpy scalars and arrays -> Python
    ones, tuples -> lists, timestamps -> ISO strings, mapping keys -> str (except int keys).

    The one NaN-to-JSON cleaner of the project (:func:`write_json` applies it)."""
    if isinstance(obj, Mapping):
        return {_json_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def _json_key(k: Any) -> Any:
    """A mapping key for JSON: str and int keys stay (``sort_keys`` orders ints numerically),
    numpy integers become int, anything else str."""
    if isinstance(k, (str, int)) and not isinstance(k, bool):
        return k
    if isinstance(k, np.integer):
        return int(k)
    return str(k)


def _json_default(o: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_figure(
    fig: Any, path: str | os.PathLike[str], stage: str = "plots", dpi: int = 120
) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path, stage) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file."""

    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file (raises ``soundfile.LibsndfileError``/``RuntimeError``)."""
    info = sf.info(str(path))
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


def _to_mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def iter_audio_blocks(
    path: str | os.PathLike[str], target_sr: int | None = None, block_s: float = 60.0
) -> Iterator[np.ndarray]:
    """Stream a file as mono float32 blocks, resampled to ``target_sr`` with soxr (HQ).

    Memory stays bounded by ``block_s`` whatever the file's length.
    """
    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        blocksize = max(1, int(block_s * sr))
        resampler = None
        if target_sr is not None and target_sr != sr:
            resampler = soxr.ResampleStream(sr, target_sr, 1, dtype="float32", quality="HQ")
        while True:
            block = f.read(blocksize, dtype="float32", always_2d=True)
            last = len(block) < blocksize
            mono = _to_mono(block)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if len(mono):
                yield mono
            if last:
                break


def read_audio(
    path: str | os.PathLike[str], target_sr: int | None = None
) -> tuple[np.ndarray, int]:
    """Read a whole file as mono float32, optionally resampled; returns ``(samples, rate)``."""
    blocks = list(iter_audio_blocks(path, target_sr))
    if target_sr is None:
        target_sr = audio_info(path).sample_rate
    data = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return data, int(target_sr)


def relative_to(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """Path of ``path`` relative to ``root`` in POSIX form (falls back to the absolute path)."""
    p, r = Path(path).resolve(), Path(root).resolve()
    try:
        return p.relative_to(r).as_posix()
    except ValueError:
        return p.as_posix()
