"""Assembling the executors a control plane runs: workers for code, inline for HTTP calls.

Lite and Pro both route http tasks to the inline executor (no worker needed) and everything else
to their worker executor, and both publish worker log lines to Redis for live tails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leoflow.errors import NotFound
from leoflow.executors.base import Executor, TaskKey
from leoflow.executors.inline import ConnectionLookup, InlineHttpExecutor, RoutingExecutor
from leoflow.executors.process import LogCallback
from leoflow.spec import TaskType
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store

DEFAULT_TENANT = "default"


def connection_lookup(store: Store) -> ConnectionLookup:
    """(tenant, conn_id) -> the stored connection (decrypted), or None."""

    async def lookup(tenant: str, conn_id: str) -> Any:
        try:
            return await store.get_connection(tenant, conn_id)
        except NotFound:
            return None

    return lookup


def redis_log_publisher(redis: RedisStore, tenant: str = DEFAULT_TENANT) -> LogCallback:
    """A ProcessExecutor ``on_log`` that publishes each line to the try's live-log channel."""

    async def publish(key: TaskKey, event: dict[str, Any]) -> None:
        await redis.publish_log(
            tenant,
            key.dag_id,
            key.run_id,
            key.task_id,
            key.try_number,
            json.dumps(event),
            map_index=key.map_index,
        )

    return publish


def with_inline_http(
    workers: Executor,
    store: Store,
    *,
    logs_dir: Path,
    concurrency: int = 64,
    max_seconds: float = 300.0,
) -> RoutingExecutor:
    """``workers`` for code, an inline executor (capped in number and time) for http tasks."""
    inline = InlineHttpExecutor(
        logs_dir=logs_dir,
        get_connection=connection_lookup(store),
        concurrency=concurrency,
        max_seconds=max_seconds,
    )
    return RoutingExecutor(workers, {TaskType.HTTP: inline})
