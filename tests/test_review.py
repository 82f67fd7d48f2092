"""Review page (``activepam review``): journal, durability, path refusal, tokens, concurrency.

No browser here (see test_review_browser.py): the server is driven with raw HTTP.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from activepam.core import labels as core_labels
from activepam.plots import spectrogram as spg
from activepam.review import journal as jr
from activepam.rounds.export import ExportOptions, export_annotation_set, read_manifest

REPO = Path(__file__).resolve().parents[1]
LABELS = [
    "Turdus merula_Common Blackbird",
    "Erithacus rubecula_European Robin",
    "Parus major_Great Tit",
    "Fringilla coelebs_Common Chaffinch",
    "Sylvia atricapilla_Eurasian Blackcap",
]
#: species -> (start Hz, end Hz) of its synthetic call
CALLS = {
    LABELS[0]: (2000, 2600),
    LABELS[1]: (5000, 7000),
    LABELS[2]: (4200, 3800),
    LABELS[3]: (3000, 5000),
    LABELS[4]: (2500, 3500),
}


# --------------------------------------------------------------------------- a tiny round


def _call(sr: int, dur: float, f0: float, f1: float) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) / (2 * dur) * t**2)
    return np.sin(phase) * np.hanning(len(t))


def build_round(root: Path, n_units: int = 6, annotators: tuple[str, ...] = ()) -> Path:
    """Export a round of ``n_units`` 3 s segments of generated audio (bird-like sweeps) into
    ``root/results/rounds/round_00/annotation`` with a label set ``root/labels.csv``.

    Returns the round folder ``root/results/rounds/round_00``."""
    sr = 16000
    rng = np.random.default_rng(0)
    n_rec = max(1, (n_units + 2) // 3)
    samples, preds = [], []
    for r in range(n_rec):
        audio = rng.normal(0, 0.004, 30 * sr)
        wav = root / "data" / f"site{r}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        for k in range(3):
            i = r * 3 + k
            if i >= n_units:
                break
            start = 3.0 + 9.0 * k
            sp = LABELS[i % len(LABELS)]
            for onset in (0.4, 1.6):
                a = int((start + onset) * sr)
                c = 0.3 * _call(sr, 0.5, *CALLS[sp])
                audio[a : a + len(c)] += c
            uid = f"site{r}@{start:.1f}"
            samples.append(
                {
                    "unit_id": uid,
                    "recording_id": f"site{r}",
                    "unit_type": "segment",
                    "path": f"data/site{r}.wav",
                    "start_s": start,
                    "end_s": start + 3,
                    "rank": i + 1,
                    "site": f"S{r}",
                    "stratum": f"S{r}",
                    "segment_time": pd.Timestamp("2025-05-01T04:00:00Z")
                    + pd.Timedelta(seconds=start),
                }
            )
            other = LABELS[(i + 2) % len(LABELS)]
            for rank, (s, c) in enumerate(
                [(sp, 0.83 - 0.05 * k), (other, 0.41), ("Corvus corax_Common Raven", 0.2)], start=1
            ):
                preds.append(
                    {
                        "segment_id": uid,
                        "recording_id": f"site{r}",
                        "start_s": start,
                        "end_s": start + 3,
                        "rank": rank,
                        "species": s,
                        "confidence": c,
                    }
                )
        sf.write(wav, audio.astype(np.float32), sr)
    labels = root / "labels.csv"
    pd.DataFrame({"species": LABELS}).to_csv(labels, index=False)
    out = root / "results" / "rounds" / "round_00" / "annotation"
    export_annotation_set(
        pd.DataFrame(samples),
        out,
        pd.DataFrame(preds),
        round_id=0,
        options=ExportOptions(annotators=annotators),
        label_set=LABELS,
        root=root,
    )
    return out.parent


# --------------------------------------------------------------------------- a live server


class Server:
    """``activepam review`` in a subprocess (parses the printed URL)."""

    def __init__(self, round_dir: Path, labels: Path, *extra: str, port: int = 0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "activepam",
            "review",
            str(round_dir),
            "--port",
            str(port),
            "--label-set",
            str(labels),
            "--params",
            "none.yaml",
            *extra,
        ]
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, text=True, cwd=round_dir.parents[2], start_new_session=True
        )
        self.lines: list[str] = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("server exited:\n" + "".join(self.lines))
            self.lines.append(line)
            m = re.search(r"open (http://[^/\s]+)/", line)
            if m:
                self.base = m.group(1)
                self.port = int(self.base.rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.append(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, bytes]:
    """One raw HTTP request; ``path`` is sent exactly as given (no normalisation)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    hdrs = {"X-ActivePAM": "1", "Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    hdrs.setdefault("Host", f"127.0.0.1:{port}")
    for k, v in hdrs.items():
        conn.putheader(k, v)
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def post(
    port: int, annotator: str, unit_id: str, species: str, present: str, notes: str = "", **kw: Any
) -> tuple[int, dict[str, Any]]:
    status, data = request(
        port,
        "POST",
        "/api/answer",
        {
            "annotator": annotator,
            "unit_id": unit_id,
            "species": species,
            "present": present,
            "notes": notes,
        },
        **kw,
    )
    return status, json.loads(data or b"{}")


@pytest.fixture()
def rnd(tmp_path: Path) -> Path:
    return build_round(tmp_path, n_units=6, annotators=("ann", "bob"))


@pytest.fixture()
def server(rnd: Path) -> Iterator[Server]:
    s = Server(rnd, rnd.parents[2] / "labels.csv")
    yield s
    s.stop()


def units_of(round_dir: Path) -> list[str]:
    return list(read_manifest(round_dir / "annotation" / "manifest.csv")["unit_id"])


# --------------------------------------------------------------------------- journal


def test_journal_append_resume_and_torn_tail(tmp_path: Path) -> None:
    j = jr.Journal(tmp_path / "journal", "ann")
    j.append(
        [
            {"unit_id": "u1", "species": "A", "present": "1"},
            {"unit_id": "u1", "species": "B", "present": "unsure", "notes": "faint\nfar"},
        ]
    )
    j.append(
        [
            {"unit_id": "u1", "species": "B", "present": "0"},
            {"unit_id": "u2", "species": "", "present": "0"},
            {"unit_id": "u1", "species": "A", "present": "clear"},
        ]
    )
    text = j.path.read_text()
    assert text.splitlines()[0] == ",".join(jr.JOURNAL_COLUMNS)
    rows = j.read()
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[1]["notes"] == "faint far"  # one line per row
    assert all(r["annotator"] == "ann" and r["answered_at"].endswith("+00:00") for r in rows)
    st = j.state()
    assert st.answers == {"u1": {"B": "0"}, "u2": {"": "0"}}  # last event wins, clear removes
    assert st.last_unit == "u1" and st.last_seq == 5
    with open(j.path, "a") as f:  # a write torn by a power cut: no final newline
        f.write("u3,A,1,ann,,,2026-01-01T00")
    assert len(j.read()) == 5  # the torn row is ignored when reading ...
    j.append([{"unit_id": "u3", "species": "A", "present": "1"}])
    rows = j.read()  # ... and cut off before the next append
    assert [r["seq"] for r in rows][-1] == "6" and rows[-1]["unit_id"] == "u3"
    assert j.path.read_text().count("2026-01-01T00") == 0
    with pytest.raises(jr.JournalError, match="annotator"):
        jr.Journal(tmp_path, "../evil")
    with pytest.raises(jr.JournalError, match="present"):
        j.append([{"unit_id": "u1", "species": "A", "present": "maybe"}])


def _append_many(journal_dir: str, name: str, tag: str, n: int, threads: int) -> None:
    """``threads`` threads appending ``n`` rows each to one journal (also run in a subprocess)."""

    def work(t: int) -> None:
        j = jr.Journal(journal_dir, name)
        for i in range(n):
            j.append([{"unit_id": f"{tag}-{t}-{i}", "species": "A", "present": "1"}])

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_journal_concurrent_threads_and_processes(tmp_path: Path) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    n, threads = 40, 4
    procs = [
        ctx.Process(target=_append_many, args=(str(tmp_path), name, f"p{k}", n, threads))
        for k, name in enumerate(["ann", "ann", "bob"])
    ]
    for p in procs:
        p.start()
    _append_many(str(tmp_path), "ann", "main", n, threads)  # and threads in this process
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    for name, tags in (("ann", ["p0", "p1", "main"]), ("bob", ["p2"])):
        rows = jr.read_events(tmp_path / f"{name}.journal.csv")
        want = {f"{tag}-{t}-{i}" for tag in tags for t in range(threads) for i in range(n)}
        assert len(rows) == len(want) and {r["unit_id"] for r in rows} == want  # none lost
        assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))


def test_spectrogram_has_axes_and_export_uses_it(rnd: Path) -> None:
    from PIL import Image

    m = read_manifest(rnd / "annotation" / "manifest.csv")
    png = rnd / "annotation" / m["spectrogram_file"].iloc[0]
    img = Image.open(png)
    assert img.size == (int(spg.FIGSIZE[0] * spg.DPI), int(spg.FIGSIZE[1] * spg.DPI))
    rgb = np.asarray(img.convert("RGB")).astype(int)
    # the left margin holds the frequency tick labels (dark text on white), the old
    # axis-less PNG was spectrogram pixels edge to edge
    margin = rgb[:, : int(spg.AXES_RECT[0] * img.size[0]) - 4]
    assert (margin.min(axis=2) > 240).mean() > 0.8 and (margin.max(axis=2) < 80).any()
    # cyan target markers at the target's x position
    w = img.size[0]
    clip_len = float(m["clip_end_s"].iloc[0] - m["clip_start_s"].iloc[0])
    x = int(
        (spg.AXES_RECT[0] + float(m["target_begin_s"].iloc[0]) / clip_len * spg.AXES_RECT[2]) * w
    )
    cols = rgb[int(img.size[1] * 0.3) : int(img.size[1] * 0.7), x - 2 : x + 3]
    cyan = (cols[..., 0] < 80) & (cols[..., 1] > 180) & (cols[..., 2] > 200)
    assert cyan.any()


# --------------------------------------------------------------------------- server


@pytest.mark.slow
def test_state_and_answers_resume(server: Server, rnd: Path) -> None:
    uids = units_of(rnd)
    status, data = request(server.port, "GET", "/api/state?annotator=ann")
    state = json.loads(data)
    assert status == 200 and state["round"] == "round_00" and state["batches"] == ["ann", "bob"]
    assert state["default_batch"] == "ann" and state["label_set"] == LABELS
    u0 = state["units"][0]
    assert u0["rows"][0] == {"species": LABELS[0], "confidence": pytest.approx(0.83)}
    assert [s["in_label_set"] for s in u0["suggestions"]] == [True, True, False]
    assert post(server.port, "ann", uids[0], LABELS[0], "1")[0] == 200
    assert post(server.port, "ann", uids[0], LABELS[2], "unsure", notes="far away")[0] == 200
    st, body = post(server.port, "ann", uids[1], "", "0")
    assert st == 200 and body["answers"] == {"": "0"}
    st, body = post(server.port, "ann", uids[1], LABELS[3], "1")  # heard after all
    assert body["answers"] == {LABELS[3]: "1"}  # "no species" withdrawn in the same append
    st, body = post(server.port, "ann", uids[1], "", "0")
    assert st == 409
    status, data = request(server.port, "GET", "/api/state?annotator=ann")
    state = json.loads(data)
    assert state["answers"] == {
        uids[0]: {LABELS[0]: "1", LABELS[2]: "unsure"},
        uids[1]: {LABELS[3]: "1"},
    }
    assert state["notes"] == {uids[0]: "far away"} and state["last_unit"] == uids[1]
    # a changed note re-states the unit's answers, so every answer row carries it
    st, data = request(
        server.port,
        "POST",
        "/api/notes",
        {"annotator": "ann", "unit_id": uids[0], "notes": "two birds"},
    )
    rows = jr.read_events(rnd / "annotation" / "journal" / "ann.journal.csv")
    assert [(r["species"], r["present"], r["notes"]) for r in rows[-2:]] == [
        (LABELS[0], "1", "two birds"),
        (LABELS[2], "unsure", "two birds"),
    ]
    # bad requests are refused and never written
    n = len(rows)
    assert post(server.port, "ann", "nope@1.0", LABELS[0], "1")[0] == 400
    assert post(server.port, "ann", uids[0], "Pica pica_Magpie", "1")[0] == 400
    assert post(server.port, "ann", uids[0], LABELS[0], "yes")[0] == 400
    assert post(server.port, "../x", uids[0], LABELS[0], "1")[0] == 400
    assert (
        request(
            server.port, "POST", "/api/answer", {"annotator": "ann"}, headers={"X-ActivePAM": "0"}
        )[0]
        == 403
    )  # no CSRF header
    assert (
        request(server.port, "GET", "/api/state", headers={"Host": "evil.example:80"})[0] == 403
    )  # DNS rebinding
    assert len(jr.read_events(rnd / "annotation" / "journal" / "ann.journal.csv")) == n
    # page, assets, clip (with Range for seeking) and spectrogram
    assert request(server.port, "GET", "/")[0] == 200
    assert request(server.port, "GET", "/static/app.js")[0] == 200
    clip = u0["clip"]
    st, data = request(server.port, "GET", "/" + clip, headers={"Range": "bytes=0-99"})
    assert st == 206 and data[:4] == b"RIFF" and len(data) == 100
    st, data = request(server.port, "GET", "/" + u0["spectrogram"])
    assert st == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def escape_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server over a round with a secret beside it and symlinks pointing out of it."""
    root = tmp_path_factory.mktemp("escape")
    rnd = build_round(root, n_units=2, annotators=("ann",))
    (root / "secret.txt").write_text("SECRET-CONTENT")
    (rnd / "annotation" / "escape.txt").symlink_to(root / "secret.txt")
    (rnd / "annotation" / "escape_dir").symlink_to(root, target_is_directory=True)
    s = Server(rnd, root / "labels.csv")
    yield s
    s.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/files/../manifest.csv",
        "/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/files/..%2f..%2f..%2f..%2fsecret.txt",
        "/files/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/files/ann/..%2f..%2f..%2f..%2f..%2fsecret.txt",
        "/files/%2f%2fetc%2fpasswd",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/..\\..\\secret.txt",
        "/files/ann/%5c..%5c..%5csecret.txt",
        "/files/./manifest.csv",
        "/files/escape.txt",
        "/files/escape_dir/secret.txt",
        "/static/../../../../secret.txt",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/../../secret.txt",
        "/files/%00manifest.csv",
        "/files/C:/secret.txt",
        "/files/~/secret.txt",
        "/spectrogram/../../secret.txt",
        "/files/ann%2f..%2f..%2f..%2f..%2f..%2fsecret.txt",
    ],
)
def test_paths_outside_the_round_are_refused(escape_server: Server, path: str) -> None:
    status, data = request(escape_server.port, "GET", path)
    # refused by the server's own check (403), or by routing when no route matches (404)
    expected = (403,) if path.startswith(("/files/", "/static/")) else (403, 404)
    assert status in expected, (path, status)
    assert b"SECRET" not in data and b"root:" not in data


@pytest.mark.slow
def test_paths_inside_the_round_are_served(escape_server: Server) -> None:
    status, data = request(escape_server.port, "GET", "/files/manifest.csv")
    assert status == 200 and data.startswith(b"unit_id,")
    status, data = request(escape_server.port, "GET", "/files/ann/site0_3.0.wav")
    assert status == 200 and data[:4] == b"RIFF"


@pytest.mark.slow
def test_token_required_off_loopback(rnd: Path) -> None:
    root = rnd.parents[2]
    cmd = [
        sys.executable,
        "-m",
        "activepam",
        "review",
        str(rnd),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--label-set",
        str(root / "labels.csv"),
        "--params",
        "none.yaml",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=root)
    assert res.returncode == 2 and "needs --token" in res.stderr
    s = Server(rnd, root / "labels.csv", "--host", "0.0.0.0", "--token", "s3cret")
    try:
        assert "token=s3cret" in "".join(s.lines)
        for path in (
            "/",
            "/api/state?annotator=ann",
            "/static/app.js",
            "/files/manifest.csv",
            "/api/state?annotator=ann&token=wrong",
        ):
            assert request(s.port, "GET", path)[0] == 403, path
        uid = units_of(rnd)[0]
        assert post(s.port, "ann", uid, LABELS[0], "1")[0] == 403
        assert not (rnd / "annotation" / "journal" / "ann.journal.csv").exists()
        assert request(s.port, "GET", "/?token=s3cret")[0] == 200
        assert request(s.port, "GET", "/api/state", headers={"X-Review-Token": "s3cret"})[0] == 200
        st, _ = post(
            s.port, "ann", uid, LABELS[0], "1", headers={"Cookie": "activepam_review_token=s3cret"}
        )
        assert st == 200
    finally:
        s.stop()


@pytest.mark.slow
def test_kill_mid_answer_keeps_every_acknowledged_answer(rnd: Path) -> None:
    root = rnd.parents[2]
    uids = units_of(rnd)
    s = Server(rnd, root / "labels.csv")
    acked: list[tuple[str, str, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            uid, sp, p = uids[i % len(uids)], LABELS[i % len(LABELS)], ("1", "0", "unsure")[i % 3]
            try:
                st, _ = post(s.port, "ann", uid, sp, p)
            except OSError:
                return  # the server died mid-request: this answer was never acknowledged
            if st == 200:
                acked.append((uid, sp, p))
            i += 1

    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(1.5)
    s.kill()  # SIGKILL while answers are being written
    stop.set()
    t.join(30)
    assert len(acked) > 5
    s2 = Server(rnd, root / "labels.csv", port=s.port)  # same port: the page reconnects
    try:
        st, data = request(s2.port, "GET", "/api/state?annotator=ann")
        state = json.loads(data)
        # every acknowledged answer is there, in order; at most the one in flight at the kill
        # (written, not yet acknowledged) is extra
        assert state["events"] in (len(acked), len(acked) + 1)
        rows = jr.read_events(rnd / "annotation" / "journal" / "ann.journal.csv")
        assert [(r["unit_id"], r["species"], r["present"]) for r in rows[: len(acked)]] == acked
        expected: dict[str, dict[str, str]] = {}
        for uid, sp, p in acked:
            expected.setdefault(uid, {})[sp] = p
        if state["events"] == len(acked):
            assert state["answers"] == expected
        assert post(s2.port, "ann", uids[0], LABELS[0], "1")[0] == 200
        rows = jr.read_events(rnd / "annotation" / "journal" / "ann.journal.csv")
        assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))
    finally:
        s2.stop()


@pytest.mark.slow
def test_concurrent_annotators_lose_no_rows(rnd: Path) -> None:
    root = rnd.parents[2]
    uids = units_of(rnd)
    s1 = Server(rnd, root / "labels.csv")
    s2 = Server(rnd, root / "labels.csv")  # a second server process on the same round
    n_each = 15
    errors: list[str] = []

    def worker(port: int, name: str, k: int) -> None:
        for i in range(n_each):
            st, body = post(
                port,
                name,
                uids[(i + k) % len(uids)],
                LABELS[i % len(LABELS)],
                "1",
                notes=f"{name}-{k}-{i}",
            )
            if st != 200:
                errors.append(f"{name} {st} {body}")

    plan = [
        (s1.port, "ann", 0),
        (s1.port, "ann", 1),
        (s2.port, "ann", 2),  # one journal
        (s1.port, "bob", 0),
        (s2.port, "bob", 1),
    ]  # ... and another, at the same time
    try:
        threads = [threading.Thread(target=worker, args=p) for p in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        s1.stop()
        s2.stop()
    assert not errors
    jdir = rnd / "annotation" / "journal"
    for name, writers in (("ann", 3), ("bob", 2)):
        rows = jr.read_events(jdir / f"{name}.journal.csv")
        # a note change re-states the unit's other answers, so there are at least n rows
        firsts = [r for r in rows if r["notes"].startswith(f"{name}-")]
        tags = {(r["notes"], r["species"]) for r in firsts}
        assert len(tags) >= writers * n_each
        sent = {
            (f"{name}-{k}-{i}", LABELS[i % len(LABELS)])
            for (_, nm, k) in plan
            if nm == name
            for i in range(n_each)
        }
        assert sent <= tags  # every posted answer is in the journal
        assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))


def journal_import_available() -> bool:
    """True once ``activepam labels import`` reads journals (the import helper's change)."""
    return hasattr(core_labels, "UNSURE")


@pytest.mark.slow
def test_journal_round_trip_into_labels_import(
    server: Server, rnd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = rnd.parents[2]
    uids = units_of(rnd)
    assert post(server.port, "ann", uids[0], LABELS[0], "1", notes="clear song")[0] == 200
    assert post(server.port, "ann", uids[0], LABELS[2], "unsure", notes="clear song")[0] == 200
    assert post(server.port, "ann", uids[2], LABELS[2], "1")[0] == 200
    assert post(server.port, "ann", uids[2], LABELS[2], "0")[0] == 200  # changed its mind
    assert post(server.port, "ann", uids[4], "", "0")[0] == 200
    assert post(server.port, "bob", uids[0], LABELS[0], "0")[0] == 200  # disagrees with ann
    jdir = rnd / "annotation" / "journal"
    rows = jr.read_events(jdir / "ann.journal.csv")
    assert [(r["unit_id"], r["species"], r["present"]) for r in rows] == [
        (uids[0], LABELS[0], "1"),
        (uids[0], LABELS[2], "unsure"),
        (uids[2], LABELS[2], "1"),
        (uids[2], LABELS[2], "0"),
        (uids[4], "", "0"),
    ]
    if not journal_import_available():
        pytest.skip(
            "ROUND-TRIP NOT CHECKED: `activepam labels import` does not read journals "
            "yet (activepam.core.labels.UNSURE missing); re-run once it does"
        )
    from activepam.cli import main as cli_main

    monkeypatch.chdir(root)
    out = root / "data" / "labels" / "round_00.csv"
    assert (
        cli_main(
            [
                "labels",
                "import",
                str(jdir),
                "--round",
                "0",
                "--label-set",
                str(root / "labels.csv"),
                "--params",
                "none.yaml",
            ]
        )
        == 0
    )
    lab = core_labels.read_labels(out)
    got = sorted(
        zip(lab["unit_id"], lab["annotator"], lab["species"], lab["present"], lab["notes"])
    )
    assert got == sorted(
        [
            (uids[0], "ann", LABELS[0], 1, "clear song"),
            (uids[0], "ann", LABELS[2], core_labels.UNSURE, "clear song"),
            (uids[2], "ann", LABELS[2], 0, ""),
            (uids[4], "ann", "", 0, ""),
            (uids[0], "bob", LABELS[0], 0, ""),
        ]
    )
    conflicts = out.with_name("round_00.conflicts.csv")
    assert conflicts.exists()  # ann: present, bob: absent -> the usual conflict report
    c = pd.read_csv(conflicts)
    assert list(zip(c["unit_id"], c["species"])) == [(uids[0], LABELS[0])]
