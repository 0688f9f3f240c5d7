"""Fixtures for the UI integration tests: the real pinned bundle, fetched once from PyPI.

The wheel is kept in /tmp/leoflow-test-cache/ so repeated runs need no network; a fresh machine
downloads it once with pip, exactly as ``leoflow setup`` does.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from ui_live import WHEEL_CACHE

from leoflow.server.ui.bundle import UiBundle, ensure_ui_bundle


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> UiBundle:
    """The apache-airflow-core 3.2.2 UI bundle, verified against the pinned sha256."""
    home = tmp_path_factory.mktemp("leoflow-home")
    return ensure_ui_bundle(home, wheel_dir=WHEEL_CACHE)


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make pip see no index at all: config ignored, index on a closed port, empty find-links.

    Returns the find-links folder, so a test can offer pip exactly the wheels it wants.
    """
    with socket.socket() as sock:  # a port that was free a moment ago refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    links = tmp_path / "find-links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    return links
