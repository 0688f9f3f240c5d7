"""Helpers for tests that need a real Postgres and Redis (used by several conftest.py files).

Typical conftest::

    @pytest.fixture(scope="session")
    def pg_dsn():
        dsn = asyncio.run(create_test_database())
        yield dsn
        asyncio.run(drop_test_database(dsn))

    @pytest.fixture
    async def store(pg_dsn):
        await reset_database(pg_dsn)
        store = await Store.connect(pg_dsn, settings=Settings(secret_key="test-key"))
        yield store
        await store.close()
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from leoflow.store.migrate import migrate

ADMIN_DSN = os.environ.get("LEOFLOW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LEOFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Business tables, children first; schema_migrations is kept.
_TABLES = (
    "xcom_index, task_instance_history, task_instances, dag_runs, dag_versions, dags, users, "
    "variables, connections, pools, audit_log, import_errors, tenants"
)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def create_test_database(
    admin_dsn: str = ADMIN_DSN, *, prefix: str = "leoflow_test", apply_migrations: bool = True
) -> str:
    """Create ``<prefix>_<random>`` (migrated unless told otherwise) and return its DSN."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = _with_database(admin_dsn, name)
    if apply_migrations:
        await migrate(dsn)
    return dsn


async def drop_test_database(dsn: str, admin_dsn: str = ADMIN_DSN) -> None:
    """Drop a database made by create_test_database (kicking out leftover connections)."""
    name = urlsplit(dsn).path.lstrip("/")
    if not name.startswith("leoflow_test") and "test" not in name:
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def reset_database(dsn: str) -> None:
    """Empty every business table and restore the seed rows (tenant default, default_pool)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
            await conn.execute("INSERT INTO tenants (name) VALUES ('default')")
            await conn.execute(
                "INSERT INTO pools (tenant_id, name, slots, description) "
                "SELECT id, 'default_pool', 128, 'Default pool' FROM tenants"
            )
    finally:
        await conn.close()


def redis_test_prefix() -> str:
    """A fresh key prefix so tests sharing one Redis never see each other's keys."""
    return f"leoflow_test_{secrets.token_hex(4)}"


async def flush_redis_prefix(client: object, prefix: str) -> int:
    """Delete every key under ``prefix`` (client: a redis.asyncio.Redis); returns how many."""
    deleted = 0
    async for name in client.scan_iter(match=f"{prefix}:*", count=500):  # type: ignore[attr-defined]
        deleted += await client.delete(name)  # type: ignore[attr-defined]
    return deleted
