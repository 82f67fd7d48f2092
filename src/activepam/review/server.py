"""The review page's HTTP server (``activepam review ROUND_DIR``).

Why tornado: it is already in the lock file (pinned 6.6.1, a dependency of jupyter), so nothing
new is installed; it is small, maintained, single-process and needs no WSGI server; its
``StaticFileHandler`` answers HTTP Range requests, which browsers need to seek in ``<audio>``
(stdlib ``http.server`` does not, and would leave routing, cookies and threading to us).

Routes (all under the page's origin; every file is in this package or in the round folder):

* ``GET /``, ``GET /static/<asset>`` - the page (``static/index.html``, ``app.js``, ``app.css``);
* ``GET /files/<path>`` - a file of the round's annotation folder (the WAV clips). Refused with
  403: ``..`` or ``.`` components (also percent-encoded), absolute paths, backslashes, NUL, and
  any path whose real path (symlinks resolved) is outside the folder;
* ``GET /spectrogram/<i>.png`` - the spectrogram of manifest row ``i`` (rendered by
  :mod:`activepam.plots.spectrogram`, cached in memory);
* ``GET /api/state?annotator=NAME`` - units, label set, suggestions and the annotator's answers
  rebuilt from the journal (a reload resumes where the annotator stopped);
* ``POST /api/answer``, ``POST /api/notes`` - one answer (or a changed note), appended to
  ``journal/<annotator>.journal.csv`` and fsynced before the reply.

Safety: bound to 127.0.0.1 unless ``--host`` names another address, which also needs
``--token`` (checked on every request: ``?token=`` once, then an HttpOnly cookie). On loopback
the ``Host`` header must be the loopback address (no DNS rebinding), and POSTs need the header
``X-ActivePAM: 1`` and a JSON body, which a foreign web page cannot send without a CORS
preflight this server never grants.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import os
import re
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from activepam.core.labels import read_label_set
from activepam.plots.spectrogram import AXES_RECT, DPI, FIGSIZE, render_png
from activepam.review import journal as jr
from activepam.rounds.export import MAX_SPECTROGRAM_S, ExportOptions, read_manifest

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "activepam_review_token"
#: spectrogram PNGs kept in memory (about 100 kB each)
CACHE_SIZE = 256
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


# --------------------------------------------------------------------------- the round


def annotation_dir_of(round_dir: str | Path) -> Path:
    """The annotation folder of ``round_dir`` (``round_RR`` or its ``annotation/``)."""
    p = Path(round_dir)
    for cand in (p, p / "annotation"):
        if (cand / "manifest.csv").is_file():
            return cand.resolve()
    raise FileNotFoundError(
        f"{p}: no manifest.csv here or in {p / 'annotation'} (export the "
        "round first: `dvc repro export@RR`)"
    )


def parse_top_predictions(text: Any) -> list[tuple[str, float]]:
    """``[(species, confidence), ...]`` of a manifest ``top_predictions`` cell
    (``"sp1:0.83;sp2:0.41"``)."""
    out = []
    for part in str(text if isinstance(text, str) else "").split(";"):
        if ":" not in part:
            continue
        sp, conf = part.rsplit(":", 1)
        try:
            out.append((sp.strip(), float(conf)))
        except ValueError:
            continue
    return out


def answer_rows(
    suggestions: list[tuple[str, float]],
    label_set: set[str],
    options: ExportOptions = ExportOptions(),  # noqa: B008 - frozen dataclass
) -> list[tuple[str, float]]:
    """Suggestions the page asks about: the best label-set suggestion always, then up to
    ``prefill_top`` with confidence >= ``prefill_min_confidence`` (the export's pre-fill rule)."""
    in_set = [s for s in suggestions if s[0] in label_set][: max(1, options.prefill_top)]
    return [s for i, s in enumerate(in_set) if i == 0 or s[1] >= options.prefill_min_confidence]


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


@dataclass
class Round:
    """An exported annotation set opened for review."""

    annotation_dir: Path
    label_set: list[str]
    units: list[dict[str, Any]]
    name: str
    options: ExportOptions = field(default_factory=ExportOptions)

    @property
    def journal_dir(self) -> Path:
        return self.annotation_dir / "journal"

    @classmethod
    def open(
        cls,
        round_dir: str | Path,
        label_set: str | Path,
        options: ExportOptions = ExportOptions(),  # noqa: B008 - frozen dataclass
    ) -> Round:
        adir = annotation_dir_of(round_dir)
        manifest = read_manifest(adir / "manifest.csv")
        labels = read_label_set(label_set)
        lset = set(labels)
        units = []
        for i, r in enumerate(manifest.to_dict("records")):
            sugg = parse_top_predictions(r.get("top_predictions"))
            rows = answer_rows(sugg, lset, options)
            clip_len = (_num(r.get("clip_end_s")) or 0.0) - (_num(r.get("clip_start_s")) or 0.0)
            tb, te = _num(r.get("target_begin_s")), _num(r.get("target_end_s"))
            if tb is None or te is None:
                tb, te = (
                    float(r["start_s"]) - float(r["clip_start_s"]),
                    float(r["end_s"]) - float(r["clip_start_s"]),
                )
            clip = str(r["clip_file"])
            units.append(
                {
                    "index": i,
                    "unit_id": str(r["unit_id"]),
                    "unit_type": str(r["unit_type"]),
                    "batch": str(r.get("batch") or "all"),
                    "clip": "files/" + quote(clip),
                    "spectrogram": (
                        f"spectrogram/{i}.png" if clip_len <= MAX_SPECTROGRAM_S else None
                    ),
                    "clip_file": clip,
                    "spectrogram_file": str(r.get("spectrogram_file") or ""),
                    "clip_len": round(clip_len, 4),
                    "clip_start_s": _num(r.get("clip_start_s")),
                    "target": [tb, te],
                    "rows": [{"species": s, "confidence": c} for s, c in rows],
                    "suggestions": [
                        {"species": s, "confidence": c, "in_label_set": s in lset} for s, c in sugg
                    ],
                    "meta": {
                        k: ("" if pd.isna(r.get(k)) else str(r.get(k)))
                        for k in (
                            "recording_id",
                            "site",
                            "habitat",
                            "country",
                            "time",
                            "stratum",
                            "reason",
                            "strategy",
                        )
                        if k in r
                    },
                }
            )
        name = (
            str(manifest["round"].iloc[0])
            if "round" in manifest and len(manifest)
            else adir.parent.name
        )
        return cls(adir, labels, units, name, options)

    def unit(self, unit_id: str) -> dict[str, Any]:
        for u in self.units:
            if u["unit_id"] == unit_id:
                return u
        raise KeyError(unit_id)

    @property
    def batches(self) -> list[str]:
        return list(dict.fromkeys(u["batch"] for u in self.units))


# --------------------------------------------------------------------------- paths


def safe_file(root: Path, url_path: str) -> Path:
    """The file ``url_path`` (already percent-decoded) inside ``root``; raises
    :class:`tornado.web.HTTPError` 403 for anything that could leave it."""
    if (
        not url_path
        or "\x00" in url_path
        or "\\" in url_path
        or url_path.startswith("/")
        or re.match(r"^[A-Za-z]:", url_path)
        or url_path.startswith("~")
    ):
        raise tornado.web.HTTPError(403, "path refused")
    parts = url_path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise tornado.web.HTTPError(403, "path refused")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise tornado.web.HTTPError(403, "path outside the round folder")
    return Path(real)


def exported_png(root: Path, rel: str) -> bytes | None:
    """The exported spectrogram ``rel`` when it was drawn by this renderer (its PNG header
    has the renderer's size), else None."""
    if not rel:
        return None
    try:
        data = safe_file(root, rel).read_bytes()
    except (tornado.web.HTTPError, OSError):
        return None
    size = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return data if struct.unpack(">II", data[16:24]) == size else None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- handlers


class ReviewApp(tornado.web.Application):
    def __init__(
        self,
        rnd: Round,
        *,
        default_annotator: str = "",
        token: str = "",
        loopback: bool = True,
        port: int = 0,
    ) -> None:
        self.round = rnd
        self.default_annotator = default_annotator
        self.token = token
        self.loopback = loopback
        self.port = port
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="review")
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        super().__init__(
            [
                (r"/", IndexHandler),
                (r"/static/(.*)", AssetHandler, {"path": str(STATIC_DIR)}),
                (r"/files/(.*)", RoundFileHandler, {"path": str(rnd.annotation_dir)}),
                (r"/spectrogram/([0-9]{1,7})\.png", SpectrogramHandler),
                (r"/api/state", StateHandler),
                (r"/api/answer", AnswerHandler),
                (r"/api/notes", NotesHandler),
                (r"/favicon\.ico", NoContentHandler),
            ],
            default_handler_class=NotFoundHandler,
            compress_response=True,
            static_hash_cache=False,
        )

    def spectrogram(self, index: int) -> bytes:
        with self._cache_lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        u = self.round.units[index]
        png = exported_png(self.round.annotation_dir, u.get("spectrogram_file", ""))
        if png is None:  # not exported, or an old export without axes: render it
            clip = safe_file(self.round.annotation_dir, u["clip_file"])
            png = render_png(clip, tuple(u["target"]), title=Path(u["clip_file"]).stem)
        with self._cache_lock:
            self._cache[index] = png
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return png


def _check_access(handler: tornado.web.RequestHandler) -> None:
    """Host header (loopback) and token checks shared by every handler."""
    app: ReviewApp = handler.application  # type: ignore[assignment]
    if app.loopback:
        host = handler.request.host.lower()
        allowed = {f"{h}:{app.port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        if host not in allowed:
            raise tornado.web.HTTPError(403, "Host header refused")
    if app.token:
        given = (
            handler.get_query_argument("token", None)
            or handler.request.headers.get("X-Review-Token")
            or handler.get_cookie(TOKEN_COOKIE)
            or ""
        )
        if not hmac.compare_digest(given.encode(), app.token.encode()):
            raise tornado.web.HTTPError(403, "token required")
        if handler.get_query_argument("token", None):
            handler.set_cookie(TOKEN_COOKIE, app.token, httponly=True, samesite="Strict")


def _security_headers(handler: tornado.web.RequestHandler) -> None:
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self'; media-src 'self'; "
        "style-src 'self'; script-src 'self'; connect-src 'self'",
    )


class BaseHandler(tornado.web.RequestHandler):
    @property
    def app(self) -> ReviewApp:
        return self.application  # type: ignore[return-value]

    def set_default_headers(self) -> None:
        _security_headers(self)
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        _check_access(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info")
        if exc and isinstance(exc[1], tornado.web.HTTPError) and exc[1].log_message:
            reason = exc[1].log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": False, "status": status_code, "error": reason}))

    def json_body(self) -> dict[str, Any]:
        if self.request.headers.get("X-ActivePAM") != "1" or not self.request.headers.get(
            "Content-Type", ""
        ).startswith("application/json"):
            raise tornado.web.HTTPError(403, "POST needs X-ActivePAM: 1 and a JSON body")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "body must be a JSON object")
        return body

    def journal(self, name: Any) -> jr.Journal:
        try:
            return jr.Journal(self.app.round.journal_dir, str(name or ""))
        except jr.JournalError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.app.executor, fn, *args)


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "not found")


class NoContentHandler(BaseHandler):
    def get(self) -> None:
        self.set_status(204)


class IndexHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write((STATIC_DIR / "index.html").read_bytes())


class AssetHandler(tornado.web.StaticFileHandler):
    """The page's own files (shipped in the package)."""

    def set_default_headers(self) -> None:
        _security_headers(self)

    def prepare(self) -> None:
        _check_access(self)

    def parse_url_path(self, url_path: str) -> str:
        safe_file(Path(self.root), url_path)
        return url_path


class RoundFileHandler(AssetHandler):
    """Files of the round's annotation folder, never outside it (symlinks resolved)."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        rel = os.path.relpath(absolute_path, root).replace(os.sep, "/")
        real = safe_file(Path(root), rel)
        if not real.is_file():
            raise tornado.web.HTTPError(404, "no such file")
        return str(real)


class SpectrogramHandler(BaseHandler):
    async def get(self, index: str) -> None:
        i = int(index)
        if i >= len(self.app.round.units) or self.app.round.units[i]["spectrogram"] is None:
            raise tornado.web.HTTPError(404, "no spectrogram for this unit")
        png = await self.in_thread(self.app.spectrogram, i)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "private, max-age=3600")
        self.write(png)


def _state_json(state: jr.State) -> dict[str, Any]:
    return {
        "answers": state.answers,
        "notes": state.notes,
        "last_unit": state.last_unit,
        "events": state.events,
    }


class StateHandler(BaseHandler):
    async def get(self) -> None:
        rnd = self.app.round
        name = self.get_query_argument("annotator", "") or self.app.default_annotator
        state: dict[str, Any] = {"answers": {}, "notes": {}, "last_unit": "", "events": 0}
        if name:
            j = self.journal(name)
            state = _state_json(await self.in_thread(j.state))
        batch = next(
            (b for b in rnd.batches if b == name), rnd.batches[0] if rnd.batches else "all"
        )
        self.write(
            {
                "ok": True,
                "round": rnd.name,
                "annotator": name,
                "default_batch": batch,
                "batches": rnd.batches,
                "label_set": rnd.label_set,
                "units": rnd.units,
                "axes": {
                    "left": AXES_RECT[0],
                    "bottom": AXES_RECT[1],
                    "width": AXES_RECT[2],
                    "height": AXES_RECT[3],
                },
                "journal": f"journal/{name}{jr.SUFFIX}" if name else "",
                "token_required": bool(self.app.token),
                **state,
            }
        )


def _unit_events(
    state: jr.State, uid: str, changes: dict[str, str], notes: str
) -> list[dict[str, str]]:
    """Events that apply ``changes`` (species -> present) to unit ``uid`` with ``notes``: the
    changed answers, plus the unit's other current answers again when the note changed (so
    the last event of every answered species carries the current note)."""
    current = dict(state.answers.get(uid, {}))
    rows = [
        {"unit_id": uid, "species": sp, "present": p, "notes": notes} for sp, p in changes.items()
    ]
    if notes != state.notes.get(uid, ""):
        rows += [
            {"unit_id": uid, "species": sp, "present": p, "notes": notes}
            for sp, p in current.items()
            if sp not in changes
        ]
    return rows


class AnswerHandler(BaseHandler):
    async def post(self) -> None:
        body = self.json_body()
        rnd = self.app.round
        j = self.journal(body.get("annotator"))
        uid, species = str(body.get("unit_id", "")), str(body.get("species", ""))
        present, notes = str(body.get("present", "")), jr.clean_text(body.get("notes", ""))
        try:
            rnd.unit(uid)
        except KeyError:
            raise tornado.web.HTTPError(400, f"unit_id {uid!r} is not in this round") from None
        if species and species not in rnd.label_set:
            raise tornado.web.HTTPError(400, f"species {species!r} is not in the label set")
        if present not in jr.PRESENT_VALUES:
            raise tornado.web.HTTPError(
                400, f"present {present!r}: one of {', '.join(jr.PRESENT_VALUES)}"
            )
        if species == "" and present not in ("0", jr.CLEAR):
            raise tornado.web.HTTPError(400, "species '' (no species) takes present 0 or clear")
        conflict: list[str] = []

        def make(state: jr.State) -> list[dict[str, str]]:
            current = state.answers.get(uid, {})
            changes = {species: present}
            if species and present in ("1", "unsure") and "" in current:
                changes[""] = jr.CLEAR  # a species heard: no longer "no species"
            if species == "" and present == "0":
                heard = [s for s, p in current.items() if s and p in ("1", "unsure")]
                if heard:
                    conflict.extend(heard)
                    return []
            return _unit_events(state, uid, changes, notes)

        rows = await self.in_thread(j.transact, make)
        if conflict:
            raise tornado.web.HTTPError(
                409,
                f"'no species' while species are marked present or unsure: {', '.join(conflict)}",
            )
        state = await self.in_thread(j.state)
        self.write(
            {
                "ok": True,
                "saved": rows,
                "answers": state.answers.get(uid, {}),
                "notes": state.notes.get(uid, ""),
                "events": state.events,
            }
        )


class NotesHandler(BaseHandler):
    async def post(self) -> None:
        body = self.json_body()
        j = self.journal(body.get("annotator"))
        uid, notes = str(body.get("unit_id", "")), jr.clean_text(body.get("notes", ""))
        try:
            self.app.round.unit(uid)
        except KeyError:
            raise tornado.web.HTTPError(400, f"unit_id {uid!r} is not in this round") from None
        rows = await self.in_thread(j.transact, lambda st: _unit_events(st, uid, {}, notes))
        state = await self.in_thread(j.state)
        self.write(
            {
                "ok": True,
                "saved": rows,
                "pending": uid not in state.answers,
                "answers": state.answers.get(uid, {}),
                "notes": state.notes.get(uid, ""),
            }
        )


# --------------------------------------------------------------------------- serving


def make_app(
    rnd: Round, *, port: int, default_annotator: str = "", token: str = "", loopback: bool = True
) -> ReviewApp:
    return ReviewApp(
        rnd, default_annotator=default_annotator, token=token, loopback=loopback, port=port
    )


def serve(
    rnd: Round, *, host: str = "127.0.0.1", port: int = 8765, annotator: str = "", token: str = ""
) -> int:
    """Serve ``rnd`` until interrupted. Prints the page's URL (with the port actually bound)."""
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ValueError(f"--host {host}: binding a non-loopback address needs --token")
    if annotator:
        jr.check_annotator(annotator)
    for p in jr.repair(rnd.journal_dir) if rnd.journal_dir.is_dir() else []:
        print(f"activepam review: {p}: cut a torn last row (never acknowledged)", file=sys.stderr)
    sockets = tornado.netutil.bind_sockets(port, address=host)
    bound = sockets[0].getsockname()[1]
    app = make_app(rnd, port=bound, default_annotator=annotator, token=token, loopback=loopback)
    server = tornado.httpserver.HTTPServer(app, max_body_size=256 * 1024)
    server.add_sockets(sockets)
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    query = "&".join(
        q
        for q in (
            f"annotator={quote(annotator)}" if annotator else "",
            f"token={quote(token)}" if token else "",
        )
        if q
    )
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}/"
    url += f"?{query}" if query else ""
    print(
        f"activepam review: {rnd.name}: {len(rnd.units)} clips in {len(rnd.batches)} "
        f"batch(es); journal {rnd.journal_dir}",
        file=sys.stderr,
    )
    print(
        f"activepam review: open {url}  (Ctrl-C stops; answers are saved as you go)",
        file=sys.stderr,
        flush=True,
    )
    try:
        tornado.ioloop.IOLoop.current().start()
    finally:
        server.stop()
        app.executor.shutdown(wait=True)
    return 0
