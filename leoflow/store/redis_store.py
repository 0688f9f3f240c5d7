"""Redis side of the store: XCom values (JSON, capped, with a TTL) and live log fan-out.

Keys come from ``leoflow.store.redis_keys`` only. XCom values are the JSON text of the value;
their index (who pushed what, how big) is in Postgres (``Store.upsert_xcom``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leoflow.errors import NotFound, Unavailable
from leoflow.settings import Settings
from leoflow.spec import XCOM_MAX_BYTES
from leoflow.store import redis_keys
from leoflow.store.api import InvalidArgument, XComTooLarge

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(
        f"Redis is unreachable: {exc}",
        hint="check that Redis is running and LEOFLOW_REDIS_URL points at it",
    )


def encode_xcom(value: Any, *, key: str = "return_value", task_id: str | None = None) -> bytes:
    """The stored form of an XCom value; XComTooLarge over the cap, InvalidArgument if not JSON."""
    try:
        blob = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"XCom value {key!r} is not JSON: {exc}", field=key) from exc
    if len(blob) > XCOM_MAX_BYTES:
        who = f" of task {task_id!r}" if task_id else ""
        raise XComTooLarge(
            f"XCom value {key!r}{who} is {len(blob)} bytes; the cap is {XCOM_MAX_BYTES} bytes "
            f"({XCOM_MAX_BYTES // 1024} KiB)",
            field=key,
            hint="return a reference to the data (a path, URL or table name) instead of the data",
        )
    return blob


class LogStream:
    """Live log lines of one try; iterate with ``async for``, close with ``aclose()``."""

    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self._pubsub = pubsub

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for message in self._pubsub.listen():
                if message.get("type") == "message":
                    data = message["data"]
                    yield data.decode("utf-8") if isinstance(data, bytes) else str(data)
        except _REDIS_DOWN as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        """Unsubscribe and release the connection."""
        try:
            await self._pubsub.unsubscribe()
        finally:
            await self._pubsub.aclose()

    async def __aenter__(self) -> LogStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RedisStore:
    """XCom values and live logs in Redis; create with ``await RedisStore.connect(url)``."""

    def __init__(
        self, client: aioredis.Redis, *, settings: Settings, prefix: str = redis_keys.DEFAULT_PREFIX
    ) -> None:
        self.client = client
        self.settings = settings
        self.prefix = prefix

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        settings: Settings | None = None,
        prefix: str = redis_keys.DEFAULT_PREFIX,
    ) -> RedisStore:
        """Connect and ping (Unavailable when Redis cannot be reached)."""
        client = aioredis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        try:
            await client.ping()
        except _REDIS_DOWN as exc:
            await client.aclose()
            raise _unavailable(exc) from exc
        return cls(client, settings=settings or Settings(), prefix=prefix)

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """True when Redis answers (for health checks); never raises."""
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    # -- XCom ------------------------------------------------------------------------------

    async def set_xcom(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        value: Any,
        *,
        map_index: int = -1,
        ttl_seconds: int | None = None,
    ) -> int:
        """Store a JSON value; returns its size in bytes. Over XCOM_MAX_BYTES -> XComTooLarge."""
        blob = encode_xcom(value, key=key, task_id=task_id)
        name = redis_keys.xcom_value(self.prefix, tenant, dag_id, run_id, task_id, map_index, key)
        ttl = ttl_seconds if ttl_seconds is not None else self.settings.xcom_ttl_seconds
        try:
            await self.client.set(name, blob, ex=ttl)
        except _REDIS_DOWN as exc:
            raise _unavailable(exc) from exc
        return len(blob)

    async def get_xcom(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        """The decoded value (NotFound when absent or expired)."""
        name = redis_keys.xcom_value(self.prefix, tenant, dag_id, run_id, task_id, map_index, key)
        try:
            blob = await self.client.get(name)
        except _REDIS_DOWN as exc:
            raise _unavailable(exc) from exc
        if blob is None:
            raise NotFound(
                f"XCom value {key!r} of task {task_id!r} in run {run_id!r} not found "
                "(never pushed, or expired)"
            )
        return json.loads(blob)

    async def delete_xcoms(self, tenant: str, dag_id: str, run_id: str | None = None) -> int:
        """Delete every value of a run (or of a DAG); returns how many."""
        pattern = redis_keys.xcom_pattern(self.prefix, tenant, dag_id, run_id)
        deleted = 0
        try:
            batch: list[bytes] = []
            async for name in self.client.scan_iter(match=pattern, count=500):
                batch.append(name)
                if len(batch) >= 500:
                    deleted += await self.client.delete(*batch)
                    batch.clear()
            if batch:
                deleted += await self.client.delete(*batch)
        except _REDIS_DOWN as exc:
            raise _unavailable(exc) from exc
        return deleted

    # -- live logs -------------------------------------------------------------------------

    async def publish_log(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        line: str,
        *,
        map_index: int = -1,
    ) -> int:
        """Publish one log line (a JSON-lines record) to live followers; returns receivers."""
        channel = redis_keys.log_channel(
            self.prefix, tenant, dag_id, run_id, task_id, map_index, try_number
        )
        try:
            return await self.client.publish(channel, line)
        except _REDIS_DOWN as exc:
            raise _unavailable(exc) from exc

    async def subscribe_logs(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        *,
        map_index: int = -1,
    ) -> LogStream:
        """Subscribe to a try's live log lines (subscribed when this returns)."""
        channel = redis_keys.log_channel(
            self.prefix, tenant, dag_id, run_id, task_id, map_index, try_number
        )
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(channel)
            # Wait for Redis to confirm, so a line published after we return is delivered.
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {channel}")
                if message.get("type") == "subscribe":
                    break
        except _REDIS_DOWN as exc:
            await pubsub.aclose()
            raise _unavailable(exc) from exc
        return LogStream(pubsub)
