"""Embedded Postgres and Redis: start, use, stop, restart with the data intact, nothing left."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from leoflow.lite import procs
from leoflow.lite.datastores import Datastores, EmbeddedPostgres, EmbeddedRedis, lite_root


async def _write(dsn: str, redis_url: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO kept VALUES (1, 'survives restarts')")
    finally:
        await conn.close()
    client = aioredis.from_url(redis_url)
    try:
        await client.set("leoflow:test:kept", "survives restarts")
    finally:
        await client.aclose()


async def _read(dsn: str, redis_url: str) -> tuple[str | None, bytes | None]:
    conn = await asyncpg.connect(dsn)
    try:
        note = await conn.fetchval("SELECT note FROM kept WHERE id = 1")
    finally:
        await conn.close()
    client = aioredis.from_url(redis_url)
    try:
        value = await client.get("leoflow:test:kept")
    finally:
        await client.aclose()
    return note, value


def test_data_survives_restart_and_nothing_is_left(
    home: Path, backend: str, pg_template: Path, leftovers: Callable[[Path], list[int]]
):
    ds = Datastores(home, redis_backend=backend, postgres_template=pg_template)
    with ds:
        assert ds.redis.backend == backend
        pids = [ds.postgres.pid, ds.redis.pid]
        assert all(pid and procs.pid_alive(pid) for pid in pids)
        asyncio.run(_write(ds.database_url, ds.redis_url))
    assert not any(procs.pid_alive(pid) for pid in pids if pid)
    assert leftovers(lite_root(home)) == []
    assert not ds.is_running()

    with Datastores(home, redis_backend=backend) as again:
        assert again.postgres.pid not in pids
        assert asyncio.run(_read(again.database_url, again.redis_url)) == (
            "survives restarts",
            b"survives restarts",
        )
    assert leftovers(lite_root(home)) == []


def test_cold_start_runs_initdb_and_creates_the_leoflow_database(tmp_lite: Path):
    pg = EmbeddedPostgres(tmp_lite / "lite")
    dsn = pg.start()
    try:
        assert (tmp_lite / "lite" / "postgres" / "PG_VERSION").exists()

        async def check() -> tuple[str, str]:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval("SELECT current_database()"), await conn.fetchval(
                    "SELECT current_user"
                )
            finally:
                await conn.close()

        assert asyncio.run(check()) == ("leoflow", "leoflow")
    finally:
        pg.stop()
    assert not pg.is_running()
    assert list(tmp_lite.joinpath("lite").glob(".postgres-init-*")) == []


def test_tcp_ports_require_the_generated_password(tmp_lite: Path, backend: str, pg_template: Path):
    pg_port, redis_port = procs.free_port(), procs.free_port()
    pg = EmbeddedPostgres(tmp_lite / "lite", port=pg_port, template=pg_template)
    rd = EmbeddedRedis(tmp_lite / "lite", port=redis_port, backend=backend)
    dsn, url = pg.start(), rd.start()
    try:
        assert f"@127.0.0.1:{pg_port}/leoflow" in dsn
        assert url.startswith("redis://:") and url.endswith(f"@127.0.0.1:{redis_port}/0")

        async def check() -> None:
            conn = await asyncpg.connect(dsn)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
            no_password = f"postgresql://leoflow@127.0.0.1:{pg_port}/leoflow"
            try:
                await asyncpg.connect(no_password)
            except asyncpg.InvalidPasswordError:
                pass
            else:
                raise AssertionError("TCP connection without password was accepted")
            client = aioredis.from_url(url)
            assert await client.ping()
            await client.aclose()
            anonymous = aioredis.from_url(f"redis://127.0.0.1:{redis_port}/0")
            try:
                await anonymous.ping()
            except aioredis.AuthenticationError:
                pass
            else:
                raise AssertionError("Redis accepted a client without the password")
            finally:
                await anonymous.aclose()

        asyncio.run(check())
    finally:
        rd.stop()
        pg.stop()


def test_servers_run_in_their_own_session_as_the_service_user(home: Path, pg_template: Path):
    with Datastores(home, postgres_template=pg_template) as ds:
        owner = procs.run_as()
        for pid in (ds.postgres.pid, ds.redis.pid):
            assert pid is not None
            assert Path(f"/proc/{pid}").stat().st_uid == owner.uid
            assert os.getsid(pid) == pid
        assert owner.uid != 0
