"""The leader's own database connection, shared by its coroutines one call at a time.

Every call through an asyncpg pool costs two round trips: the query, then the reset query the
pool runs when the connection is released. The leader already holds one connection for the
whole of its leadership (the advisory lock and LISTEN live on it), so it runs its own reads and
writes there too: one round trip per call, no pool contention. An asyncpg connection runs one
operation at a time, so calls (and transactions, for their whole duration) take turns through
an ``asyncio.Lock``; a caller inside ``transaction()`` must use the yielded object only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from leoflow.store.store import Store


class SerialConnectionStore:
    """Store methods bound to one connection, serialised; everything else from the store."""

    def __init__(self, store: Store, conn: Any) -> None:
        self._store = store
        # Store.bind(conn) is requested in .coord/store-requests.md; _bind is its body.
        self._repo = store._bind(conn)
        self._conn = conn
        self._lock = asyncio.Lock()

    async def ping(self, timeout: float = 5.0) -> None:
        """A round trip on the connection (raises when the session is gone)."""
        async with self._lock:
            await self._conn.fetchval("SELECT 1", timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._repo, name, None)
        if attr is None or not asyncio.iscoroutinefunction(attr):
            return getattr(self._store, name)
        return self._serialised(attr)

    def _serialised(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            async with self._lock:
                return await method(*args, **kwargs)

        return call

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction on the connection; other callers wait until it ends."""
        async with self._lock, self._repo.transaction() as tx:
            yield tx
