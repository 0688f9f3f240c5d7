"""Wake the leader scheduler from any process (an API replica, the CLI) through Postgres.

The leader LISTENs on ``NOTIFY_CHANNEL`` on its leadership connection. The store's triggers
(migration 002) already notify when a run is queued or a task instance finishes; call
``notify_scheduler`` after any other change that gives the scheduler work (a clear, a mark, a
pool resize, an unpause). Notifications are delivered at commit, so inside a transaction pass
its connection and the wake-up arrives only if the change is committed.
"""

from __future__ import annotations

from typing import Any, Protocol

from leoflow.store.api import NOTIFY_CHANNEL

WAKE_PAYLOAD = "wake"


class _Executes(Protocol):
    async def execute(self, query: str, *args: Any) -> Any: ...


async def notify_scheduler(conn_or_pool: _Executes, payload: str = WAKE_PAYLOAD) -> None:
    """Send one wake-up to the leader scheduler (an asyncpg connection, pool or Store.pool)."""
    await conn_or_pool.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
