"""Helpers of the Lite end-to-end tests: `leoflow lite` as a real background process.

The command is the ``leoflow`` console script of this environment (the package is installed
in it, editable); a pipx/uv-tool install from PyPI is what install.sh does for users, and is
not repeated here because it needs the network and minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[3]


def install_with_script(root: Path, home: Path, workspace: Path) -> tuple[Path, str]:
    """Run install.sh as a new user would (uv tool, into ``root``); (leoflow binary, its log).

    uv's download cache is shared with the machine, so a warm machine installs in seconds.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LEOFLOW_INSTALLER": "uv",
        "UV_TOOL_DIR": str(root / "tools"),
        "UV_TOOL_BIN_DIR": str(root / "bin"),
        "LEOFLOW_HOME": str(home),
        "LEOFLOW_WORKSPACE": str(workspace),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        ["sh", str(REPO / "install.sh")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    return root / "bin" / "leoflow", log


def leoflow_command() -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    script = shutil.which("leoflow")
    return [script] if script else [sys.executable, "-m", "leoflow.cli.main"]


class LiteProcess:
    """A `leoflow lite` child: its output collected in the background."""

    def __init__(
        self,
        home: Path,
        workspace: Path,
        port: int,
        args: list[str],
        command: list[str] | None = None,
    ) -> None:
        self.home, self.workspace, self.port = home, workspace, port
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "LEOFLOW_HOME": str(home),
            "LEOFLOW_WORKSPACE": str(workspace),
            "COLUMNS": "200",
        }
        for key in ("LEOFLOW_BOOTSTRAP_PASSWORD", "LEOFLOW_AUTH_JWT_SECRET", "LEOFLOW_SECRET_KEY"):
            env.pop(key, None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*(command or leoflow_command()), "lite", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds from launch to a healthy /api/v2/monitor/health."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"leoflow lite exited {self.proc.returncode}:\n{self.output}")
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2)
                if health.status_code == 200:
                    return time.monotonic() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not healthy in {timeout}s:\n{self.output}")

    def wait_output(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the output:\n{self.output}")

    def tree(self) -> list[psutil.Process]:
        """Every live process Lite started (its descendants), with their start times."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self, timeout: float = 30) -> float:
        """SIGTERM and wait; seconds it took to exit."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self._reader.join(5)
        return time.monotonic() - began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def survivors(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (same pid AND start time: never a reused pid)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def gone_within(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for ``procs`` to exit; the ones still running."""
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    return survivors(alive)


def api(url: str, password: str) -> httpx.Client:
    """An API client logged in as admin through POST /auth/token."""
    token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password})
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.Client(base_url=f"{url}/api/v2", headers=headers, timeout=10)


def trigger_and_wait(client: httpx.Client, dag_id: str, timeout: float = 120) -> dict[str, Any]:
    """Trigger a run through the API and poll it to its end."""
    created = client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s")
