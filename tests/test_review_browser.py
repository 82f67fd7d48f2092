"""The review page in a real browser: Debian's chromium + chromedriver driven by selenium.

Labels five clips with the keyboard only (one unsure, one added species, one note), reloads and
checks the page resumes, kills the server in the middle of a clip and restarts it, then imports
the journal with ``activepam labels import`` and checks the imported rows exactly.

Skipped when /usr/bin/chromium or /usr/bin/chromedriver is missing, unless
``ACTIVEPAM_REQUIRE_BROWSER=1`` (``.ci/browser.sh``), where that is a failure. Screenshots go to
``results/review_screenshots/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from activepam.core import labels as core_labels
from activepam.review import journal as jr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_review import LABELS, Server, build_round, units_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "results" / "review_screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REQUIRED = os.environ.get("ACTIVEPAM_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.slow  # a real browser (about 20 s)
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
)


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        msg = f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if REQUIRED:
            pytest.fail(msg + " and ACTIVEPAM_REQUIRE_BROWSER=1")
        pytest.skip(msg)


@pytest.fixture()
def driver(tmp_path: Path) -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in HEADLESS_FLAGS + (f"--user-data-dir={tmp_path / 'chrome-profile'}",):
        opts.add_argument(flag)
    d = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    """Keyboard-only driving of the review page."""

    def __init__(self, d: Any) -> None:
        self.d = d

    def wait(self, cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(
            lambda _d: cond(), message=f"timed out waiting for {what}"
        )

    def js(self, script: str) -> Any:
        return self.d.execute_script(script)

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        for k in keys:
            ActionChains(self.d).send_keys(k).perform()

    def ready(self) -> None:
        self.wait(lambda: self.js("return document.body.dataset.ready") == "1", "page ready")
        self.saved()

    def saved(self, timeout: float = 30.0) -> None:
        self.wait(
            lambda: self.js(
                "const s = document.getElementById('save-status');"
                "return s.dataset.pending === '0'"
                " && s.className === 'status ok'"
            ),
            "every answer saved",
            timeout,
        )

    def unit(self) -> str:
        return str(self.js("return document.body.dataset.unit"))

    def rows(self) -> list[tuple[str, str]]:
        return [
            tuple(r)
            for r in self.js(
                "return [...document.querySelectorAll('#rows-body tr')]"
                ".map(r => [r.dataset.species, r.dataset.answer])"
            )
        ]

    def status(self) -> str:
        return str(self.js("return document.getElementById('save-status').textContent"))

    def shot(self, name: str, spectrogram: bool = True) -> Path:
        if spectrogram:
            self.wait(
                lambda: self.js(
                    "const i = document.getElementById('spec');"
                    "return i.complete && i.naturalWidth > 0"
                ),
                "the spectrogram",
            )
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.d.save_screenshot(str(path))
        return path


def test_label_five_clips_with_the_keyboard(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    rnd = build_round(tmp_path, n_units=6, annotators=("ann",))
    root = rnd.parents[2]
    uids = units_of(rnd)
    labels = root / "labels.csv"
    port = free_port()
    server = Server(rnd, labels, port=port)
    page = Page(driver)
    try:
        driver.get(f"{server.base}/?annotator=ann")
        page.ready()
        L = LABELS
        assert page.unit() == uids[0]
        assert page.rows() == [(L[0], ""), (L[2], "")]  # the model's suggestions
        page.shot("01_first_clip.png")
        page.keys(" ")  # space plays the target
        page.wait(
            lambda: page.js(
                "const a = document.getElementById('audio');return !a.paused || a.currentTime > 3.0"
            ),
            "playback",
        )
        page.keys(" ")
        # clip 1: present, absent (the selection moves down after each answer)
        page.keys("1", "0")
        assert page.rows() == [(L[0], "1"), (L[2], "0")]
        page.keys("n")
        # clip 2: present, unsure
        assert page.unit() == uids[1]
        page.keys("1", "u", Keys.ARROW_RIGHT)
        # clip 3: both suggestions absent, then add a species by typing part of its name
        assert page.unit() == uids[2]
        page.keys("0", "0", "a", "chaffinch")
        page.wait(
            lambda: (
                "Common Chaffinch"
                in page.js("return document.getElementById('add-hint').textContent")
            ),
            "type-ahead hint",
        )
        page.keys(Keys.ENTER)
        assert page.rows() == [(L[2], "0"), (L[4], "0"), (L[3], "1")]
        page.saved()
        page.shot("02_added_species.png")
        page.keys("n")
        # clip 4: rest absent with x, then a note
        assert page.unit() == uids[3]
        page.keys("x", "/", "wind noise", Keys.ENTER)
        page.keys("n")
        # clip 5: arrows choose the row
        assert page.unit() == uids[4]
        page.keys(Keys.ARROW_DOWN, "1", Keys.ARROW_UP, "0")
        assert page.rows() == [(L[4], "0"), (L[1], "1")]
        page.saved()
        assert "5 of 6 answered" in page.js(
            "return document.getElementById('progress-text').textContent"
        )

        # reload: the page resumes at the first clip not answered yet, answers intact
        driver.refresh()
        page.ready()
        assert page.unit() == uids[5]
        page.shot("03_resumed.png")
        page.keys("p")
        assert page.unit() == uids[4] and page.rows() == [(L[4], "0"), (L[1], "1")]
        page.keys("p")
        assert page.js("return document.getElementById('notes').value") == "wind noise"
        page.keys("f", "n")  # only unanswered: jumps from clip 4 straight to clip 6
        assert page.unit() == uids[5]

        # kill the server in the middle of clip 6: the answer given while it is down is kept
        # by the page and saved once the server is back
        page.keys("1")
        page.saved()
        server.kill()
        page.keys("0")
        page.wait(lambda: "unreachable" in page.status(), "offline notice")
        assert page.rows() == [(L[0], "1"), (L[2], "0")]
        page.shot("04_server_down.png", spectrogram=False)
        server = Server(rnd, labels, port=port)
        page.saved(timeout=60)
        driver.refresh()
        page.ready()
        assert page.unit() == uids[5] and page.rows() == [(L[0], "1"), (L[2], "0")]
        page.shot("05_after_restart.png")
    finally:
        server.stop()

    journal = rnd / "annotation" / "journal" / "ann.journal.csv"
    events = jr.read_events(journal)
    state = jr.state_of(events).answers
    assert state == {
        uids[0]: {L[0]: "1", L[2]: "0"},
        uids[1]: {L[1]: "1", L[3]: "unsure"},
        uids[2]: {L[2]: "0", L[4]: "0", L[3]: "1"},
        uids[3]: {L[3]: "0", L[0]: "0"},
        uids[4]: {L[4]: "0", L[1]: "1"},
        uids[5]: {L[0]: "1", L[2]: "0"},
    }

    # import the journal with the CLI, exactly as an expert would
    if not hasattr(core_labels, "UNSURE"):
        msg = (
            "ROUND-TRIP NOT CHECKED: `activepam labels import` does not read journals yet "
            "(activepam.core.labels.UNSURE missing)"
        )
        pytest.fail(msg) if REQUIRED else pytest.skip(msg)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "activepam",
            "labels",
            "import",
            str(journal.parent),
            "--round",
            "0",
            "--label-set",
            str(labels),
            "--params",
            "none.yaml",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lab = core_labels.read_labels(root / "data" / "labels" / "round_00.csv")
    got = sorted(
        zip(
            lab["unit_id"],
            lab["species"],
            lab["present"].astype(int),
            lab["annotator"],
            lab["notes"],
        )
    )
    u = core_labels.UNSURE
    assert got == sorted(
        [
            (uids[0], L[0], 1, "ann", ""),
            (uids[0], L[2], 0, "ann", ""),
            (uids[1], L[1], 1, "ann", ""),
            (uids[1], L[3], u, "ann", ""),
            (uids[2], L[2], 0, "ann", ""),
            (uids[2], L[4], 0, "ann", ""),
            (uids[2], L[3], 1, "ann", ""),
            (uids[3], L[3], 0, "ann", "wind noise"),
            (uids[3], L[0], 0, "ann", "wind noise"),
            (uids[4], L[4], 0, "ann", ""),
            (uids[4], L[1], 1, "ann", ""),
            (uids[5], L[0], 1, "ann", ""),
            (uids[5], L[2], 0, "ann", ""),
        ]
    )
