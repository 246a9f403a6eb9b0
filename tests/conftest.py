"""Shared fixtures. Real data lives beside the repository in ../shared/data (never committed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_root() -> Path:
    """The real face crops (DAF:re layout), from $ANIMESION_REAL_DATA or ../shared/data/holo14."""
    return Path(os.environ.get("ANIMESION_REAL_DATA", REPO.parent / "shared" / "data" / "holo14"))


@pytest.fixture(scope="session")
def holo14() -> Path:
    root = real_data_root()
    if not (root / "labels" / "train.csv").is_file():
        pytest.skip(f"real face crops not found at {root} (set ANIMESION_REAL_DATA to use them)")
    return root

pytest_plugins = ["browser_fixtures"]  # headless Chromium: the browser_page fixture and the browser marker
