"""Helpers of the Lite supervisor tests: a Lite run in a thread of its own, polling, processes.

Lite homes live under ``tempfile.mkdtemp()`` folders, not pytest's tmp_path: when the tests
run as root the embedded servers run as the ``leoflow`` system user, which must traverse the
home's parents, and every pytest run resets /tmp/pytest-of-root to 0700.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from leoflow.lite.procs import free_port
from leoflow.lite.supervisor import LiteOptions, LiteSupervisor
from leoflow.settings import Settings

PASSWORD = "lite-test-password"


@dataclass
class LiteRun:
    """A Lite supervisor running in a background thread."""

    supervisor: LiteSupervisor
    thread: threading.Thread
    output: io.StringIO
    home: Path
    workspace: Path
    errors: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.supervisor.url

    def client(self) -> httpx.Client:
        """An API client logged in as the admin."""
        token = httpx.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": PASSWORD}
        )
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        return httpx.Client(base_url=f"{self.url}/api/v2", headers=headers, timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        self.supervisor.stop_threadsafe()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "Lite did not stop"


def start_lite(
    home: Path,
    workspace: Path,
    template: Path,
    *,
    port: int | None = None,
    projects: list[Path] | None = None,
) -> LiteRun:
    """Start Lite in a thread and wait until it serves with its workspace registered."""
    settings = Settings.from_env(
        env={},
        home=home,
        workspace=workspace,
        bootstrap_password=PASSWORD,
    )
    options = LiteOptions(
        port=port or free_port(),
        projects=projects or [],
        postgres_template=template,
        handle_signals=False,
    )
    output = io.StringIO()
    console = Console(file=output, width=200, color_system=None)
    supervisor = LiteSupervisor(settings, options, console)
    run = LiteRun(supervisor, threading.Thread(), output, home, workspace)

    def target() -> None:
        try:
            asyncio.run(supervisor.run())
        except BaseException as exc:  # handed to the test
            run.errors.append(exc)

    run.thread = threading.Thread(target=target, name="lite", daemon=True)
    run.thread.start()
    while not supervisor.up.wait(0.05):
        if supervisor.down.is_set():
            run.thread.join(10)
            raise run.errors[0] if run.errors else AssertionError("Lite stopped during start")
    return run


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (the value), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def descendants() -> set[int]:
    """Pids of every live descendant of this test process."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    }
