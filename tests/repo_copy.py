"""Test helper: a working copy of the repository for workflow tests (imported by test modules;
pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def copy_repo(dest: Path, skip: Sequence[str] = ()) -> None:
    """Tracked and untracked-not-ignored files of the repository into ``dest`` (never
    ``.venv``, nor paths starting with one of ``skip``), plus a link to the project's .venv."""
    try:
        listing = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot list the repository's files")
    excluded = (".venv", *skip)
    for rel in filter(None, listing.decode().split("\0")):
        src = REPO / rel
        if src.is_file() and not rel.startswith(excluded):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(REPO / ".venv")
