"""Fixtures for the browser walk: the seeded control plane and Debian's Chromium via Playwright.

Never ``playwright install``: the browser is the distribution's (``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from ui_stack import UiStack

from leoflow.server.ui.bundle import ensure_ui_bundle
from leoflow.store.testing import create_test_database, drop_test_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WHEEL_CACHE = Path("/tmp/leoflow-test-cache")  # shared with tests/integration/ui


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The app, scheduler and ProcessExecutor on a fresh database, seeded and serving."""
    home = tmp_path_factory.mktemp("browser-home")
    ensure_ui_bundle(home, wheel_dir=WHEEL_CACHE)
    dsn = asyncio.run(create_test_database(prefix="leoflow_test_browser"))
    stack = UiStack(dsn, home, tmp_path_factory.mktemp("browser-work"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        asyncio.run(drop_test_database(dsn))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()
