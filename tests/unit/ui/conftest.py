"""Fixtures for the UI unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_fixtures import DIST_FILES, LOGIN_FILES, write_tree

from leoflow.server.ui.bundle import UiBundle


@pytest.fixture
def fake_bundle(tmp_path: Path) -> UiBundle:
    """An extracted bundle with a handful of files of every type the real one has."""
    root = tmp_path / "ui" / "3.2.2"
    write_tree(root / "dist", DIST_FILES)
    write_tree(root / "login-dist", LOGIN_FILES)
    return UiBundle(version="3.2.2", root=root, wheel_sha256="0" * 64)
