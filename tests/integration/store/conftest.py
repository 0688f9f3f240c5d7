"""Fixtures for the store suite: a throw-away database per test run, a clean one per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from store_helpers import SECRET

from leoflow.settings import Settings
from leoflow.store import RedisStore, Store
from leoflow.store.testing import (
    REDIS_URL,
    create_test_database,
    drop_test_database,
    flush_redis_prefix,
    redis_test_prefix,
    reset_database,
)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, migrated database, dropped at the end of the run."""
    dsn = asyncio.run(create_test_database())
    yield dsn
    asyncio.run(drop_test_database(dsn))


@pytest.fixture
def settings() -> Settings:
    return Settings(secret_key=SECRET, xcom_ttl_seconds=3600)


@pytest.fixture
async def store(pg_dsn: str, settings: Settings) -> AsyncIterator[Store]:
    """A Store over an emptied database (seed rows only)."""
    await reset_database(pg_dsn)
    st = await Store.connect(pg_dsn, settings=settings, max_size=5)
    yield st
    await st.close()


@pytest.fixture
async def redis_store(settings: Settings) -> AsyncIterator[RedisStore]:
    """A RedisStore under a random key prefix, whose keys are deleted afterwards."""
    prefix = redis_test_prefix()
    rs = await RedisStore.connect(REDIS_URL, settings=settings, prefix=prefix)
    yield rs
    await flush_redis_prefix(rs.client, prefix)
    await rs.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()
