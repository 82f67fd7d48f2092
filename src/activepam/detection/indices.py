"""Acoustic indices with scikit-maad, per recording or per fixed window.

Each window is mono-mixed, its DC offset removed (mean subtracted; the Jura recorders have
one), and turned into a power spectrogram (``maad.sound.spectrogram``, Hann, ``nperseg``
samples, 50 % overlap). The indices are the specific ``maad.features`` functions (not the slow
``all_*_alpha_indices`` wrappers):

=================  ========================================================================
column             meaning (maad function, settings)
=================  ========================================================================
``ACI``            acoustic complexity index, sum over bins (``acoustic_complexity_index``)
``ADI``            acoustic diversity index, Shannon over 1 kHz bands of ``bio_band``,
                   -50 dB threshold (``acoustic_diversity_index``); in [0, log(n_bands)]
``AEI``            acoustic evenness index, Gini over the same bands (``acoustic_eveness_index``)
``BI``             bioacoustic index over ``bio_band`` (``bioacoustics_index``, soundecology)
``NDSI``           normalised difference soundscape index, bio vs anthro band, in [-1, 1]
``rBA``            bio / anthro energy ratio (``soundscape_index``)
``Ht``, ``Hf``     temporal entropy of the envelope, spectral entropy of the mean spectrum
``H``              acoustic entropy ``Ht * Hf`` (Sueur et al. 2008), in [0, 1]
``TFSD``           time-frequency second derivative over ``bio_band`` (``tfsd``, third octaves)
``NP``             number of peaks of the mean spectrum (``number_of_peaks``)
``ROI_count``      regions of interest (``region_of_interest_index``: ``maad.rois`` masks)
``nROI``           ROIs per minute; ``aROI`` = % of the spectrogram covered by ROIs
``BGNt``, ``SNRt`` background level and SNR of the envelope (dB, ``maad.sound.temporal_snr``)
``ACTtFraction``   fraction of envelope frames 3 dB above background (``temporal_activity``)
``rms_dBFS``       RMS level of the (DC-free) window, dB re full scale
=================  ========================================================================

Bands above the Nyquist frequency are clipped to it. Digital silence has undefined ratios:
those indices are NaN (``rms_dBFS`` = -inf). ``window_s = 0`` treats a recording as one window,
but files longer than ``max_window_s`` are cut into windows of that length so memory stays
bounded. With windows, a trailing piece shorter than half a window gets no row (indices such
as ACI grow with duration, so short pieces are not comparable); ``window_start_s`` and
``window_end_s`` of every row are exact. A file that cannot be analysed becomes a quarantine row
(stage ``indices``) and never stops the run.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import soundfile as sf
from tqdm import tqdm

from activepam.core.io import audio_info, iter_audio_blocks, write_csv, write_parquet

log = logging.getLogger(__name__)

STAGE = "indices"

INDEX_COLUMNS: tuple[str, ...] = (
    "ACI",
    "ADI",
    "AEI",
    "BI",
    "NDSI",
    "rBA",
    "Ht",
    "Hf",
    "H",
    "TFSD",
    "NP",
    "ROI_count",
    "nROI",
    "aROI",
    "BGNt",
    "SNRt",
    "ACTtFraction",
    "rms_dBFS",
)
WINDOW_COLUMNS: tuple[str, ...] = ("path", "window_start_s", "window_end_s", "sample_rate")
META_COLUMNS: tuple[str, ...] = ("recording_id", "site", "window_time")
QUARANTINE_COLUMNS: tuple[str, ...] = ("path", "stage", "reason")
INDICES_SCHEMA = pa.schema(
    [
        ("recording_id", pa.string()),
        ("site", pa.string()),
        ("window_time", pa.timestamp("us", tz="UTC")),
        ("path", pa.string()),
        ("window_start_s", pa.float64()),
        ("window_end_s", pa.float64()),
        ("sample_rate", pa.int64()),
    ]
    + [(c, pa.float64()) for c in INDEX_COLUMNS]
)

# longest stretch analysed at once when window_s = 0 (seconds)
MAX_WINDOW_S = 300.0
# a window needs this many spectrogram frames for the indices to be defined
MIN_FRAMES = 8


@dataclass(frozen=True)
class IndexSettings:
    """Analysis settings shared by all windows (bands in Hz)."""

    anthro_band: tuple[float, float] = (0.0, 1000.0)
    bio_band: tuple[float, float] = (1000.0, 10000.0)
    nperseg: int = 1024
    band_step: float = 1000.0
    adi_db_threshold: float = -50.0


def _band(band: Sequence[float], nyquist: float) -> tuple[float, float]:
    lo, hi = float(band[0]), min(float(band[1]), nyquist)
    if hi <= lo:
        raise ValueError(
            f"indices: band {list(band)} Hz lies above the Nyquist frequency {nyquist:g} Hz"
        )
    return lo, hi


def indices_of_samples(
    x: np.ndarray, sr: int, settings: IndexSettings = IndexSettings()
) -> dict[str, float]:
    """All index columns of one mono window ``x`` sampled at ``sr`` Hz."""
    import maad.features as mf
    import maad.sound as ms

    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()  # DC offset
    if len(x) < settings.nperseg * (MIN_FRAMES + 1) // 2:
        raise ValueError(
            f"window of {len(x)} samples is too short for the indices "
            f"(need {settings.nperseg * (MIN_FRAMES + 1) // 2})"
        )
    out: dict[str, float] = dict.fromkeys(INDEX_COLUMNS, np.nan)
    rms = float(np.sqrt(np.mean(x * x)))
    out["rms_dBFS"] = 20 * math.log10(rms) if rms > 0 else -np.inf
    if rms == 0.0:
        return out  # digital silence: ratios undefined
    nyq = sr / 2
    bio = _band(settings.bio_band, nyq)
    anthro = _band(settings.anthro_band, nyq)
    Sxx, tn, fn, _ = ms.spectrogram(x, sr, nperseg=settings.nperseg, mode="psd")
    Sxx_amp = np.sqrt(Sxx)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)  # scikit-image via maad.rois
        out["ACI"] = float(mf.acoustic_complexity_index(Sxx_amp)[2])
        adi_max = math.floor((bio[1] - bio[0]) / settings.band_step) * settings.band_step + bio[0]
        out["ADI"] = float(
            mf.acoustic_diversity_index(
                Sxx_amp,
                fn,
                fmin=bio[0],
                fmax=adi_max,
                bin_step=settings.band_step,
                dB_threshold=settings.adi_db_threshold,
                index="shannon",
            )
        )
        out["AEI"] = float(
            mf.acoustic_eveness_index(
                Sxx_amp,
                fn,
                fmin=bio[0],
                fmax=adi_max,
                bin_step=settings.band_step,
                dB_threshold=settings.adi_db_threshold,
            )
        )
        out["BI"] = float(mf.bioacoustics_index(Sxx_amp, fn, flim=bio))
        ndsi, rba, _, _ = mf.soundscape_index(Sxx, fn, flim_bioPh=bio, flim_antroPh=anthro)
        out["NDSI"], out["rBA"] = float(ndsi), float(rba)
        out["Ht"] = float(mf.temporal_entropy(x))
        out["Hf"] = float(mf.frequency_entropy(Sxx)[0])
        out["H"] = out["Ht"] * out["Hf"]
        tiny = np.finfo(np.float64).tiny
        out["TFSD"] = float(mf.tfsd(np.maximum(Sxx_amp, tiny), fn, tn, flim=bio))
        out["NP"] = float(mf.number_of_peaks(Sxx_amp, fn))
        out["ROI_count"], out["nROI"], out["aROI"] = roi_index(Sxx, tn, fn)
        _, bgn, snr = ms.temporal_snr(x)
        out["BGNt"], out["SNRt"] = float(bgn), float(snr)
        out["ACTtFraction"] = float(mf.temporal_activity(x, dB_threshold=3)[0])
    return out


def hysteresis_mask(im: np.ndarray, high: float, low: float) -> np.ndarray:
    """Pixels ``> low`` whose 8-connected component holds a pixel ``> high``.

    Same mask as ``maad.rois.create_mask(im, mode_bin="absolute", bin_h=high, bin_l=low)``,
    without its per-region ``regionprops`` loop (which dominated the run time).
    """
    from scipy import ndimage

    labels, _ = ndimage.label(im > low, structure=np.ones((3, 3), dtype=bool))
    seeds = np.unique(labels[(im > high) & (labels > 0)])
    return np.isin(labels, seeds)


def roi_index(
    Sxx: np.ndarray,
    tn: np.ndarray,
    fn: np.ndarray,
    seed_level: float = 16.0,
    low_level: float = 6.0,
    fusion_rois: tuple[float, float] = (0.05, 100.0),
    remove_rois_flim_min: float = 50.0,
    min_event_duration: float = 0.1,
    min_freq_bw: float = 50.0,
    max_ratio_xy: float = 10.0,
) -> tuple[float, float, float]:
    """``(count, per minute, % cover)`` of regions of interest in a power spectrogram.

    Follows ``maad.features.region_of_interest_index`` (scikit-maad 1.5, its defaults: rain and
    stationary noise removed along both axes, double threshold 16/6 dB, ROIs fused by a
    50 ms x 100 Hz closing, then selected with ``maad.rois.select_rois`` and filtered on
    duration, bandwidth, lowest frequency and shape) with a fast double threshold; the tests
    check that it returns maad's values.
    """
    from maad.rois import select_rois
    from maad.sound import remove_background_along_axis
    from maad.util import power2dB
    from skimage.morphology import closing

    dt, df = tn[1] - tn[0], fn[1] - fn[0]
    sxx_db = power2dB(Sxx, db_range=96) + 96
    sxx_db = remove_background_along_axis(sxx_db.T, mode="mean", N=1, display=False)[0].T
    clean, _ = remove_background_along_axis(sxx_db, mode="median", N=1, display=False)
    clean[clean <= 0] = 0
    mask = hysteresis_mask(clean, seed_level, low_level).astype(int)
    footprint = np.ones([round(fusion_rois[1] / df), round(fusion_rois[0] / dt)])
    mask = closing(mask, footprint=footprint)
    im_rois, rois = select_rois(mask, min_roi=min_event_duration * min_freq_bw, max_roi=None)
    rois = rois[(rois.max_x - rois.min_x) * dt >= min_event_duration]
    rois = rois[(rois.max_y - rois.min_y) * df >= min_freq_bw]
    dropped: list[int] = []
    if len(rois):
        low_pix = max(1, round(remove_rois_flim_min / df))
        low = rois["min_y"] <= low_pix
        dropped = rois.loc[low, "labelID"].astype(int).tolist()
        rois = rois[~low]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (rois.max_y - rois.min_y) / (rois.max_x - rois.min_x)
        rois = rois[ratio < max_ratio_xy]
    # maad's cover keeps the pixels of ROIs dropped on duration/bandwidth/shape (only the
    # low-frequency ones are erased from the label image); reproduced for comparability
    covered = (im_rois > 0) & ~np.isin(im_rois, dropped)
    count = len(rois)
    return float(count), float(count / (tn[-1] / 60)), float(covered.mean() * 100)


def window_samples(
    path: str | os.PathLike[str],
    window_s: float = 0.0,
    max_window_s: float = MAX_WINDOW_S,
    target_sr: int | None = None,
) -> tuple[int, int]:
    """``(sample_rate, samples per window)`` used for ``path`` (see the module notes)."""
    info = audio_info(path)
    sr = int(target_sr or info.sample_rate)
    if window_s > 0:
        length = window_s
    else:
        length = min(max(info.duration_s, 1.0 / sr), max_window_s)
        if info.duration_s > max_window_s:
            log.warning(
                "indices: %s is %.0f s long; analysed in %g s windows",
                path,
                info.duration_s,
                max_window_s,
            )
    return sr, max(1, int(round(length * sr)))


def iter_windows(
    path: str | os.PathLike[str], n: int, target_sr: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``path`` as mono windows of ``n`` samples: ``(start_sample, samples)``.

    A trailing window shorter than ``n / 2`` is skipped unless it is the only one.
    """
    buf = np.zeros(0, dtype=np.float32)
    start = 0
    block_s = max(n / (target_sr or audio_info(path).sample_rate), 1.0)
    for block in iter_audio_blocks(path, target_sr, block_s=block_s):
        buf = np.concatenate([buf, block]) if len(buf) else block
        while len(buf) >= n:
            yield start, buf[:n]
            buf, start = buf[n:], start + n
    if len(buf) and (start == 0 or len(buf) >= n / 2):
        yield start, buf


def compute_indices(
    path: str | os.PathLike[str],
    window_s: float = 0.0,
    *,
    anthro_band: Sequence[float] = (0.0, 1000.0),
    bio_band: Sequence[float] = (1000.0, 10000.0),
    nperseg: int = 1024,
    target_sr: int | None = None,
    max_window_s: float = MAX_WINDOW_S,
) -> pd.DataFrame:
    """Indices of one file: one row per window (``window_s`` seconds; 0 = whole recording).

    Columns: path, window_start_s, window_end_s, sample_rate, then :data:`INDEX_COLUMNS`.
    The file is streamed window by window, so memory is bounded by the window length.
    Raises ``soundfile.LibsndfileError``/``ValueError`` for unusable audio.
    """
    settings = IndexSettings(tuple(anthro_band), tuple(bio_band), nperseg)  # type: ignore[arg-type]
    sr, n = window_samples(path, window_s, max_window_s, target_sr)
    rows = []
    for start, x in iter_windows(path, n, target_sr):
        row = {
            "path": str(path),
            "window_start_s": start / sr,
            "window_end_s": (start + len(x)) / sr,
            "sample_rate": sr,
        }
        row.update(indices_of_samples(x, sr, settings))
        rows.append(row)
    if not rows:
        raise ValueError(f"indices: {path}: no audio window long enough")
    return pd.DataFrame(rows, columns=[*WINDOW_COLUMNS, *INDEX_COLUMNS])


def _job(args: tuple[str, float, dict]) -> tuple[str, pd.DataFrame | None, str | None]:
    path, window_s, kwargs = args
    try:
        return path, compute_indices(path, window_s, **kwargs), None
    except (sf.LibsndfileError, OSError) as exc:
        return path, None, f"unreadable: {' '.join(str(exc).split())}"
    except Exception as exc:  # noqa: BLE001 - any failure of one file is quarantined, not fatal
        return path, None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def empty_indices() -> pd.DataFrame:
    """An indices table with no rows and the full column set."""
    return INDICES_SCHEMA.empty_table().to_pandas()


def indices_for_inventory(
    inventory: pd.DataFrame,
    threads: int = 1,
    window_s: float = 0.0,
    progress: bool = True,
    **kwargs: object,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Indices of every recording of an inventory table, in a process pool of ``threads``.

    Returns ``(indices, quarantine)``: indices has recording_id, site, window_time (UTC start
    of the window, null when the recording's start time is unknown) and the columns of
    :func:`compute_indices`; files that fail become quarantine rows (path, stage, reason).
    """
    jobs = [(str(p), float(window_s), dict(kwargs)) for p in inventory["path"]]
    if threads > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            results = list(
                tqdm(
                    pool.map(_job, jobs, chunksize=1),
                    total=len(jobs),
                    desc="indices",
                    unit="file",
                    disable=not progress,
                )
            )
    else:
        results = [_job(j) for j in tqdm(jobs, desc="indices", unit="file", disable=not progress)]
    frames, quarantined = [], []
    for rec, (path, df, error) in zip(inventory.itertuples(index=False), results):
        if df is None:
            log.warning("indices: %s quarantined: %s", path, error)
            quarantined.append({"path": path, "stage": STAGE, "reason": error})
            continue
        df.insert(0, "recording_id", rec.recording_id)
        df.insert(1, "site", getattr(rec, "site", None))
        start = getattr(rec, "start_time", pd.NaT)
        df.insert(
            2,
            "window_time",
            pd.to_datetime(start, utc=True) + pd.to_timedelta(df["window_start_s"], unit="s"),
        )
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else empty_indices()
    out = indices_table(out).to_pandas()
    return out, pd.DataFrame(quarantined, columns=list(QUARANTINE_COLUMNS))


def indices_table(df: pd.DataFrame) -> pa.Table:
    """The indices as an Arrow table with :data:`INDICES_SCHEMA` (fixed types, even if empty)."""
    df = df.copy()
    df["window_time"] = pd.to_datetime(df["window_time"], utc=True)
    return pa.Table.from_pandas(
        df[list(INDICES_SCHEMA.names)], schema=INDICES_SCHEMA, preserve_index=False
    )


def run_indices_shard(
    inventory_path: str | os.PathLike[str],
    shard: str,
    out_path: str | os.PathLike[str],
    quarantine_path: str | os.PathLike[str],
    threads: int = 1,
    window_s: float = 0.0,
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Indices of the recordings of one inventory shard, written atomically."""
    inventory = pd.read_parquet(inventory_path)
    part = inventory[inventory["shard"] == shard].reset_index(drop=True)
    log.info("indices: shard %s: %d recordings (window_s=%g)", shard, len(part), window_s)
    indices, quarantine = indices_for_inventory(part, threads=threads, window_s=window_s, **kwargs)
    write_parquet(indices_table(indices), out_path, stage=STAGE)
    write_csv(quarantine, quarantine_path, stage=STAGE)
    log.info("indices: shard %s: %d windows, %d quarantined", shard, len(indices), len(quarantine))
    return indices, quarantine


def gather_indices(
    shard_paths: Sequence[str | os.PathLike[str]],
    quarantine_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    quarantine_out: str | os.PathLike[str],
) -> int:
    """Concatenate shard tables with DuckDB (sorted by recording and window); returns rows."""
    import duckdb

    files = [str(p) for p in shard_paths]
    if files:
        con = duckdb.connect()
        rel = con.read_parquet(files, union_by_name=True).order("recording_id, window_start_s")
        table = rel.to_arrow_table()
        table = table.select(INDICES_SCHEMA.names).cast(INDICES_SCHEMA)
    else:
        table = INDICES_SCHEMA.empty_table()
    write_parquet(table, out_path, stage=STAGE)
    parts = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in quarantine_paths]
    quarantine = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )
    write_csv(quarantine.reindex(columns=list(QUARANTINE_COLUMNS)), quarantine_out, stage=STAGE)
    return table.num_rows
