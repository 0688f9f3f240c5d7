"""Migrations: ordered, recorded, idempotent, safe with concurrent callers; CLI; unreachable DB."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from typer.testing import CliRunner

from leoflow.errors import LeoflowError, Unavailable
from leoflow.store import Store, migrate
from leoflow.store.migrate import applied_migrations, load_migrations
from leoflow.store.testing import create_test_database, drop_test_database


@pytest.fixture
async def empty_dsn() -> str:
    dsn = await create_test_database(apply_migrations=False)
    yield dsn
    await drop_test_database(dsn)


async def test_migrations_apply_in_order_and_are_idempotent(empty_dsn: str) -> None:
    labels = [m.label for m in load_migrations()]
    assert labels[0] == "001_initial"
    assert await migrate(empty_dsn) == labels
    assert await migrate(empty_dsn) == []
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await applied_migrations(conn) == labels
        assert await conn.fetchval("SELECT name FROM tenants") == "default"
        assert await conn.fetchval("SELECT slots FROM pools WHERE name = 'default_pool'") == 128
    finally:
        await conn.close()


async def test_concurrent_callers_apply_once(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(empty_dsn) for _ in range(3)))
    assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
        assert await conn.fetchval("SELECT count(*) FROM tenants") == 1
    finally:
        await conn.close()


async def test_edited_migration_is_refused(empty_dsn: str) -> None:
    await migrate(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(LeoflowError, match="changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_unreachable_database_is_unavailable() -> None:
    dsn = "postgresql://postgres:hunter2@127.0.0.1:1/leoflow"
    with pytest.raises(Unavailable) as err:
        await migrate(dsn, timeout=2)
    assert "unreachable" in str(err.value)
    assert "hunter2" not in str(err.value)
    with pytest.raises(Unavailable, match="LEOFLOW_DATABASE_URL"):
        await Store.connect(dsn, timeout=2)


async def test_store_reports_unavailable_when_database_goes_away(empty_dsn: str) -> None:
    await migrate(empty_dsn)
    store = await Store.connect(empty_dsn, min_size=1, max_size=2)
    try:
        assert await store.ping()
        await drop_test_database(empty_dsn)
        with pytest.raises(Unavailable, match="unreachable"):
            await store.list_dags("default")
        assert not await store.ping()
    finally:
        await store.close()


def test_cli_db_migrate(empty_dsn: str) -> None:
    from leoflow.cli.main import app

    runner = CliRunner()
    first = runner.invoke(app, ["db", "migrate", "--database-url", empty_dsn])
    assert first.exit_code == 0, first.output
    assert "applied 001_initial" in first.output
    again = runner.invoke(app, ["db", "migrate"], env={"LEOFLOW_DATABASE_URL": empty_dsn})
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output


def test_cli_db_migrate_unreachable() -> None:
    from leoflow.cli.main import app

    result = CliRunner().invoke(
        app, ["db", "migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/x"]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, Unavailable)
    assert "unreachable" in str(result.exception)


async def test_store_recovers_after_connections_are_killed(empty_dsn: str) -> None:
    await migrate(empty_dsn)
    store = await Store.connect(empty_dsn, min_size=2, max_size=2)
    try:
        assert (await store.list_dags("default")).total == 0
        admin = await asyncpg.connect(empty_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append((await store.list_dags("default")).total)
            except Unavailable as exc:
                assert "unreachable" in str(exc)
                outcomes.append("unavailable")
        # Broken connections surface at most once each, then the pool reconnects by itself.
        assert outcomes[-1] == 0
    finally:
        await store.close()
