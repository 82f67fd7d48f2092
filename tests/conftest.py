"""Shared fixtures: the real recordings in ../shared/realdata (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("ACTIVEPAM_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Folder of real recordings; tests using it are skipped when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder not found: {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
