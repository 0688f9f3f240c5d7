"""Lite's start-up faults and account chores: port taken, home unusable, one per home, reset."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from liteapp_helpers import PASSWORD, descendants, start_lite
from rich.console import Console

from leoflow.lite.admin import reset_admin_password
from leoflow.lite.lock import LiteAlreadyRunning
from leoflow.lite.supervisor import LiteError, LiteOptions, LiteSupervisor
from leoflow.settings import Settings


def _run_once(home: Path, workspace: Path, port: int) -> None:
    settings = Settings.from_env(env={}, home=home, workspace=workspace)
    options = LiteOptions(port=port, handle_signals=False)
    supervisor = LiteSupervisor(settings, options, Console(file=open(os.devnull, "w")))  # noqa: SIM115
    asyncio.run(supervisor.run())


def test_liteapp_port_in_use_names_the_holder(new_home: Callable[[], tuple[Path, Path]]) -> None:
    home, workspace = new_home()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(LiteError) as caught:
            _run_once(home, workspace, port)
    message = str(caught.value)
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert f"pid {os.getpid()}" in message  # psutil named this very process
    assert f"--port {port + 1}" in message
    assert not (home / "lite" / "postgres").exists()  # nothing was started


def test_liteapp_home_not_writable(new_home: Callable[[], tuple[Path, Path]]) -> None:
    home, workspace = new_home()
    home.parent.mkdir(parents=True, exist_ok=True)
    blocker = home.parent / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LiteError) as caught:
        _run_once(blocker / "home", workspace, 0)
    assert "the Leoflow home cannot be created or written to" in str(caught.value)
    assert caught.value.field == "LEOFLOW_HOME"


def test_liteapp_unknown_executor(new_home: Callable[[], tuple[Path, Path]]) -> None:
    home, workspace = new_home()
    settings = Settings.from_env(env={}, home=home, workspace=workspace)
    with pytest.raises(LiteError, match="unknown executor 'kubernetes'"):
        LiteSupervisor(settings, LiteOptions(executor="kubernetes"))


def test_liteapp_single_instance_and_reset_password(
    new_home: Callable[[], tuple[Path, Path]], pg_template: Path
) -> None:
    before = descendants()
    home, workspace = new_home()
    lite = start_lite(home, workspace, pg_template)
    try:
        with pytest.raises(LiteAlreadyRunning) as caught:
            _run_once(home, workspace, 0)
        assert caught.value.pid == os.getpid()
        assert caught.value.url == lite.url
        settings = Settings.from_env(env={}, home=home, workspace=workspace)
        with pytest.raises(LiteAlreadyRunning):
            reset_admin_password(settings)  # refused while Lite runs
        # Secrets were generated once and kept private.
        secret = home / "credentials" / "jwt_secret"
        assert secret.stat().st_mode & 0o777 == 0o600
        jwt_secret = secret.read_text()
    finally:
        lite.stop()
    user, password = reset_admin_password(Settings.from_env(env={}, home=home, workspace=workspace))
    assert user == "admin" and password != PASSWORD
    again = start_lite(home, workspace, pg_template)
    try:
        login = {"username": "admin", "password": password}
        assert httpx.post(f"{again.url}/auth/token", json=login).status_code == 201
        old = {"username": "admin", "password": PASSWORD}
        assert httpx.post(f"{again.url}/auth/token", json=old).status_code == 401
        assert (home / "credentials" / "jwt_secret").read_text() == jwt_secret
    finally:
        again.stop()
    assert descendants() <= before
