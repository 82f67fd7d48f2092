"""Audio discovery and probing: the ONE file discovery of inventory and detect
(:func:`discover_audio`) and a truthful readability check of every file (:func:`probe_audio`)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from activepam.core.io import AUDIO_EXTENSIONS, AudioInfo, audio_info
from activepam.detection.filenames import one_line, os_reason

STAGE = "inventory"

# frames of slack when reading the last block of an MP3 back (decoder delay / padding frames)
MP3_TAIL_TOLERANCE = 4 * 1152


@dataclass(frozen=True)
class Probe:
    """Outcome of probing one file: header facts, or the reason it is quarantined."""

    path: str
    info: AudioInfo | None = None
    reason: str | None = None


#: extensions of audio formats that are not scanned (unless listed in ``extensions``): such
#: files are reported (quarantine reason "unsupported audio format"), never silently skipped
OTHER_AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".opus",
    ".m4a",
    ".aac",
    ".wma",
    ".aif",
    ".aiff",
    ".aifc",
    ".amr",
    ".caf",
    ".wv",
    ".ape",
    ".alac",
    ".3gp",
    ".webm",
    ".mka",
    ".oga",
    ".spx",
    ".au",
    ".snd",
    ".w64",
    ".rf64",
    ".mp2",
    ".mp4",
    ".m4b",
    ".wave",
    ".flc",
)


@dataclass(frozen=True)
class FoundFile:
    """One audio file found by :func:`discover_audio`."""

    path: str  # as reached from the root given (root prefix kept)
    rel_path: str  # relative to that root (a file given directly: its name)
    real_path: str  # symlinks resolved: the identity of the file on disk


@dataclass
class Discovery:
    """Audio files to use and the reported rest (``path, stage, reason`` rows)."""

    files: list[FoundFile]
    skipped: list[dict[str, str]]


def discover_audio(
    roots: Iterable[str | os.PathLike[str]],
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    stage: str = STAGE,
    missing: str = "raise",
) -> Discovery:
    """The ONE file discovery of inventory and detect: audio files under ``roots``.

    * folders are scanned recursively, entries in name order; a file given directly is used
      when its extension is scanned, else reported;
    * extensions are matched case-insensitively; a file with another *audio* extension
      (:data:`OTHER_AUDIO_EXTENSIONS`, e.g. ``.opus``) is reported as unsupported, other files
      (``.txt``, ``.csv``) are ignored;
    * symlinks are followed, but every file and folder is identified by its real path: the
      real tree is walked first, linked files/folders afterwards, so a file reached twice
      (a link to it, a linked folder, overlapping roots) is listed once, under its first
      non-link path, and the other path is reported; a link back into a folder being walked
      (``ln -s .. d/sub/up``) is reported as a symlink loop and never followed;
    * a dangling symlink and an unreadable folder are reported;
    * a missing root raises ``FileNotFoundError`` (``missing="raise"``) or is reported
      (``missing="report"``).

    ``files`` are sorted by path; ``skipped`` rows are in discovery order.
    """
    exts = tuple(e.lower() for e in extensions)
    found: dict[str, FoundFile] = {}
    skipped: list[dict[str, str]] = []
    seen_dirs: dict[str, str] = {}

    def report(path: object, reason: str) -> None:
        skipped.append({"path": str(path), "stage": stage, "reason": reason})

    def consider(path: Path, rel: str, explicit: bool = False) -> None:
        suffix = path.suffix.lower()
        if not path.name.lower().endswith(exts):
            if suffix in OTHER_AUDIO_EXTENSIONS or explicit:
                report(path, f"unsupported audio format {suffix!r} (scanned: {' '.join(exts)})")
            return
        if path.is_symlink() and not path.exists():
            report(path, f"dangling symlink -> {os.readlink(path)}")
            return
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            report(path, "not a regular file")
        elif real in found:
            report(path, f"same file as {found[real].path} (reached again through a symlink)")
        else:
            found[real] = FoundFile(str(path), rel, real)

    def walk(top: Path, top_rel: str, links: list[tuple[Path, str]]) -> None:
        stack = [(top, top_rel)]
        while stack:
            folder, rel = stack.pop()
            real = os.path.realpath(folder)
            if real in seen_dirs:
                target = os.readlink(folder) if folder.is_symlink() else real
                parent_real = os.path.realpath(folder.parent)
                if Path(parent_real).is_relative_to(real):
                    report(
                        folder,
                        f"symlink loop: -> {target} leads back to {seen_dirs[real]} (not followed)",
                    )
                else:
                    report(folder, f"folder already scanned as {seen_dirs[real]} (not followed)")
                continue
            seen_dirs[real] = str(folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                report(folder, os_reason(exc, folder))
                continue
            subdirs = []
            for entry in entries:
                path = folder / entry.name
                sub_rel = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    links.append((path, sub_rel))  # after the real tree
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append((path, sub_rel))
                else:
                    consider(path, sub_rel)
            stack.extend(reversed(subdirs))

    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            if missing == "raise":
                raise FileNotFoundError(f"{stage}: {root}: no such file or folder")
            report(root, "file not found")
            continue
        if not root.is_dir():
            consider(root, root.name, explicit=True)
            continue
        links: list[tuple[Path, str]] = []
        walk(root, "", links)
        while links:
            path, rel = links.pop(0)
            if path.is_dir():
                walk(path, rel, links)
            else:
                consider(path, rel)
    return Discovery(sorted(found.values(), key=lambda f: f.path), skipped)


def list_audio_files(
    roots: Iterable[str | os.PathLike[str]], extensions: Sequence[str] = AUDIO_EXTENSIONS
) -> list[tuple[str, str]]:
    """``(path, rel_path)`` of every audio file under ``roots`` (see :func:`discover_audio`)."""
    return [(f.path, f.rel_path) for f in discover_audio(roots, extensions).files]


def probe_audio(path: str | os.PathLike[str], min_duration_s: float = 0.0) -> Probe:
    """Header facts of ``path`` or the reason it cannot be used (never raises for bad audio)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:  # libsndfile says only "System error." for these
            f.read(1)
    except OSError as exc:
        return Probe(str(path), reason=os_reason(exc, path))
    if size == 0:
        return Probe(str(path), reason="zero-length file")
    try:
        info = audio_info(p)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if isinstance(exc, OSError):
            return Probe(str(path), reason=os_reason(exc, path))
        return Probe(str(path), reason=f"unreadable: {one_line(exc)}")
    declared = wav_declared_frames(p)
    if info.frames <= 0:
        extra = f" (header declares {declared} frames)" if declared else ""
        return Probe(str(path), info, f"empty: header only, no audio frames{extra}")
    if declared is not None and declared > info.frames:
        return Probe(
            str(path),
            info,
            f"truncated: header declares {declared} frames, file holds {info.frames}",
        )
    tail = _check_tail(p, info)
    if tail:
        return Probe(str(path), info, tail)
    if info.duration_s < min_duration_s:
        return Probe(
            str(path),
            info,
            f"too short: {info.duration_s:.3g} s < min_duration_s {min_duration_s:g} s",
        )
    return Probe(str(path), info)


def _check_tail(path: Path, info: AudioInfo) -> str | None:
    """Read the last second back; ``None`` when it is all there, else a quarantine reason."""
    n = min(info.frames, max(1, info.sample_rate))
    tolerance = MP3_TAIL_TOLERANCE if info.format.upper() == "MP3" else 0
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(info.frames - n)
            got = len(f.read(n, dtype="float32", always_2d=True))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        return f"truncated: cannot read the last block ({one_line(exc)})"
    if got < n - tolerance:
        return (
            f"truncated: header declares {info.frames} frames, data ends about "
            f"{n - got} frames early"
        )
    return None


def wav_declared_frames(path: str | os.PathLike[str]) -> int | None:
    """Frames the RIFF/WAVE ``data`` chunk declares, or ``None`` (not a WAV, size unknown).

    libsndfile clamps a cut WAV to the data present, so this is how a truncated WAV is told
    apart from a short one. Streaming sizes (0 or 0xFFFFFFFF) and RF64 count as unknown.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) >= 14:
                        block_align = struct.unpack("<H", fmt[12:14])[0]
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if size in (0, 0xFFFFFFFF) or not block_align:
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
