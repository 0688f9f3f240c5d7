"""Redis: XCom values (cap, TTL, key safety) and live log pub/sub."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from leoflow.errors import NotFound, Unavailable
from leoflow.spec import XCOM_MAX_BYTES
from leoflow.store import InvalidArgument, RedisStore, XComTooLarge, redis_keys

RUN = "manual__2024-01-01T00:00:00+00:00"


async def test_xcom_round_trip_and_ttl(redis_store: RedisStore) -> None:
    value = {"rows": [1, 2, 3], "name": "é"}
    size = await redis_store.set_xcom("default", "etl", RUN, "a", "return_value", value)
    assert size == len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    assert await redis_store.get_xcom("default", "etl", RUN, "a", "return_value") == value
    name = redis_keys.xcom_value(redis_store.prefix, "default", "etl", RUN, "a", -1, "return_value")
    ttl = await redis_store.client.ttl(name)
    assert 3500 < ttl <= 3600  # settings.xcom_ttl_seconds in conftest
    await redis_store.set_xcom("default", "etl", RUN, "a", "short", 1, ttl_seconds=10)
    short = redis_keys.xcom_value(redis_store.prefix, "default", "etl", RUN, "a", -1, "short")
    assert 0 < await redis_store.client.ttl(short) <= 10
    with pytest.raises(NotFound, match="never pushed, or expired"):
        await redis_store.get_xcom("default", "etl", RUN, "b", "return_value")


async def test_xcom_map_index_and_none_are_distinct(redis_store: RedisStore) -> None:
    await redis_store.set_xcom("default", "etl", RUN, "m", "return_value", None, map_index=0)
    await redis_store.set_xcom("default", "etl", RUN, "m", "return_value", 5, map_index=1)
    assert await redis_store.get_xcom("default", "etl", RUN, "m", "return_value", 0) is None
    assert await redis_store.get_xcom("default", "etl", RUN, "m", "return_value", 1) == 5


async def test_xcom_cap_names_size_and_cap(redis_store: RedisStore) -> None:
    at_cap = "x" * (XCOM_MAX_BYTES - 2)  # the JSON quotes make it exactly the cap
    assert await redis_store.set_xcom("default", "etl", RUN, "a", "ok", at_cap) == XCOM_MAX_BYTES
    with pytest.raises(XComTooLarge) as err:
        await redis_store.set_xcom("default", "etl", RUN, "big", "return_value", at_cap + "y")
    message = str(err.value)
    assert str(XCOM_MAX_BYTES + 1) in message and str(XCOM_MAX_BYTES) in message
    assert "'big'" in message and err.value.hint
    with pytest.raises(InvalidArgument, match="not JSON"):
        await redis_store.set_xcom("default", "etl", RUN, "a", "bad", {1, 2})


async def test_keys_are_escaped_and_deletion_is_scoped(redis_store: RedisStore) -> None:
    sqlish = "x'; DEL *; --"
    await redis_store.set_xcom("default", "etl", RUN, "a", "k", 1)
    await redis_store.set_xcom("default", "etl", "*", sqlish, "k:*", 2)
    await redis_store.set_xcom("default", "etl2", RUN, "a", "k", 3)
    assert await redis_store.get_xcom("default", "etl", "*", sqlish, "k:*") == 2
    assert await redis_store.delete_xcoms("default", "etl", "*") == 1
    assert await redis_store.get_xcom("default", "etl", RUN, "a", "k") == 1
    assert await redis_store.delete_xcoms("default", "etl") == 1
    assert await redis_store.get_xcom("default", "etl2", RUN, "a", "k") == 3


async def test_live_logs_are_delivered_to_subscribers(redis_store: RedisStore) -> None:
    stream = await redis_store.subscribe_logs("default", "etl", RUN, "a", 1)
    other = await redis_store.subscribe_logs("default", "etl", RUN, "a", 2)
    lines = [json.dumps({"event": f"line {i}"}) for i in range(3)]
    for line in lines:
        assert await redis_store.publish_log("default", "etl", RUN, "a", 1, line) == 1
    received: list[str] = []

    async def collect() -> None:
        async for line in stream:
            received.append(line)
            if len(received) == len(lines):
                return

    await asyncio.wait_for(collect(), timeout=10)
    assert received == lines
    await stream.aclose()
    await other.aclose()
    assert await redis_store.publish_log("default", "etl", RUN, "a", 1, "late") == 0


async def test_redis_unreachable_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="Redis is unreachable"):
        await RedisStore.connect("redis://127.0.0.1:1/0")


async def test_prefixes_isolate_installations(redis_store: RedisStore) -> None:
    other = RedisStore(
        aioredis.from_url("redis://127.0.0.1:6379/0"),
        settings=redis_store.settings,
        prefix=redis_store.prefix + "_other",
    )
    try:
        await redis_store.set_xcom("default", "etl", RUN, "a", "k", 1)
        with pytest.raises(NotFound):
            await other.get_xcom("default", "etl", RUN, "a", "k")
    finally:
        await other.close()
