"""Spectrogram PNGs with axes: time (s, from the clip start) and frequency (kHz).

One renderer for both the exported ``<batch>/<stem>.png`` files
(:func:`activepam.rounds.export.write_spectrogram` calls :func:`write_spectrogram_png`) and the
review page (:func:`render_png`), so what an expert sees in the browser and in the exported
folder is the same picture: a Hann STFT (50 % overlap) in dB over 0-``max_hz``, low frequencies
at the bottom, the target window drawn as two cyan lines with a band labelled "target" above the
plot, and the context outside the target slightly dimmed.

The axes occupy the fixed figure fraction :data:`AXES_RECT`, so the page can draw its playhead
over the PNG without measuring it. matplotlib's object API is used (no pyplot state); one figure
is reused for every clip (building axes and ticks would cost more than the drawing), so
rendering is serialised by a lock (matplotlib is not thread-safe either). The PNG is an 8-bit
palette image (about a quarter of matplotlib's RGBA size).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from activepam.core.io import atomic_path

#: axes rectangle (left, bottom, width, height) as fractions of the figure
AXES_RECT: tuple[float, float, float, float] = (0.065, 0.15, 0.925, 0.74)
#: figure size in inches and resolution: 1000 x 330 px
FIGSIZE: tuple[float, float] = (10.0, 3.3)
DPI = 100
#: largest dynamic range shown (dB below the 99.5th percentile; the floor is at least the 30th
#: percentile, so steady background noise stays dark and calls stand out)
DYNAMIC_RANGE_DB = 70.0
#: at most this many STFT columns (long clips get a larger hop)
MAX_COLUMNS = 3000
#: colour of the target markers
TARGET_COLOUR = "#00e5ff"

_RENDER_LOCK = threading.Lock()


def stft_db(path: str | Path, max_hz: float = 12000.0) -> tuple[np.ndarray, float, float, float]:
    """dB power spectrogram of a clip (mono mix): ``(db[freq, time], duration_s, top_hz, sr)``.

    Hann window of 512 samples (256 below 16 kHz sampling rate), hop of half a window (more for
    clips that would exceed :data:`MAX_COLUMNS` columns), frequencies up to
    ``min(max_hz, Nyquist)``.
    """
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    duration = len(mono) / float(sr) if sr else 0.0
    nper = 512 if sr >= 16000 else 256
    if len(mono) < nper:
        mono = np.pad(mono, (0, nper - len(mono)))
    hop = max(nper // 2, int(np.ceil((len(mono) - nper) / MAX_COLUMNS)))
    n_frames = 1 + (len(mono) - nper) // hop
    idx = np.arange(nper)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(mono[idx] * np.hanning(nper), axis=1)) ** 2
    freqs = np.fft.rfftfreq(nper, 1.0 / sr)
    top_hz = float(min(max_hz, sr / 2.0))
    db = 10.0 * np.log10(spec[:, freqs <= top_hz].T + 1e-12)
    return db, duration, top_hz, float(sr)


def _template() -> dict[str, Any]:
    """The figure reused by every render (building axes and ticks dominates the cost)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=FIGSIZE, dpi=DPI, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes(AXES_RECT)
        image = ax.imshow(
            np.zeros((2, 2)), origin="lower", aspect="auto", cmap="magma", interpolation="nearest"
        )
        ax.set_xlabel("Time (s)", fontsize=9, labelpad=1)
        ax.set_ylabel("Frequency (kHz)", fontsize=9)
        ax.tick_params(labelsize=8)
        title = fig.text(AXES_RECT[0], 0.985, "", fontsize=8, va="top", ha="left", color="#333")
        _TEMPLATE = {
            "fig": fig,
            "canvas": canvas,
            "ax": ax,
            "image": image,
            "title": title,
            "marks": [],
        }
    return _TEMPLATE


_TEMPLATE: dict[str, Any] | None = None


def render_png(
    path: str | Path, target: tuple[float, float], max_hz: float = 12000.0, title: str = ""
) -> bytes:
    """PNG bytes of the spectrogram of clip ``path`` with axes and the ``target`` window
    (seconds from the clip start) marked."""
    from PIL import Image

    db, duration, top_hz, _ = stft_db(path, max_hz)
    db = pool_columns(db, int(FIGSIZE[0] * DPI * AXES_RECT[2]))
    vmax = float(np.percentile(db, 99.5))
    vmin = max(vmax - DYNAMIC_RANGE_DB, float(np.percentile(db, 30.0)))  # background dark
    duration = max(duration, 1e-3)
    top = top_hz / 1000.0
    begin, end = (max(0.0, float(target[0])), min(duration, float(target[1])))
    with _RENDER_LOCK:
        t = _template()
        ax = t["ax"]
        for artist in t["marks"]:
            artist.remove()
        t["image"].set_data(db)
        t["image"].set_extent((0.0, duration, 0.0, top))
        t["image"].set_clim(vmin, vmax)
        marks = [
            ax.axvspan(lo, hi, color="black", alpha=0.28, lw=0)
            for lo, hi in ((0.0, begin), (end, duration))
            if hi > lo
        ]
        marks += [ax.axvline(x, color=TARGET_COLOUR, lw=1.6, ls="--") for x in (begin, end)]
        marks.append(
            ax.axvspan(begin, end, ymin=1.0, ymax=1.06, color=TARGET_COLOUR, clip_on=False, lw=0)
        )
        marks.append(
            ax.text(
                (begin + end) / 2.0,
                top * 1.03,
                f"target {end - begin:.1f} s",
                ha="center",
                va="center",
                fontsize=8,
                color="black",
                clip_on=False,
            )
        )
        t["marks"] = marks
        ax.set_xlim(0.0, duration)
        ax.set_ylim(0.0, top)
        t["title"].set_text(title)
        t["canvas"].draw()
        rgb = np.asarray(t["canvas"].buffer_rgba())[..., :3].copy()
    # an 8-bit palette PNG: a quarter of the size of matplotlib's RGBA one, same look
    img = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pool_columns(db: np.ndarray, width: int) -> np.ndarray:
    """Max-pool the time axis of ``db`` down to at most about ``width`` columns (a short call
    stays visible when a long clip is drawn in fewer pixels than it has STFT frames)."""
    k = int(np.ceil(db.shape[1] / max(1, width)))
    if k <= 1:
        return db
    n = db.shape[1] // k * k
    pooled = db[:, :n].reshape(db.shape[0], -1, k).max(axis=2)
    if n < db.shape[1]:
        pooled = np.concatenate([pooled, db[:, n:].max(axis=1, keepdims=True)], axis=1)
    return pooled


def write_spectrogram_png(
    clip: str | Path,
    out: str | Path,
    target: tuple[float, float],
    max_hz: float = 12000.0,
    title: str = "",
) -> Path:
    """Write :func:`render_png` of ``clip`` to ``out`` atomically."""
    data = render_png(clip, target, max_hz, title)
    with atomic_path(out, "export") as tmp:
        tmp.write_bytes(data)
    return Path(out)
