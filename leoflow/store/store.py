"""``Store``: the Postgres side of Leoflow's state, over an asyncpg pool.

``Repository`` combines the repository mixins; ``Store`` owns the pool and hands out
``Repository`` objects bound to one connection for explicit transactions::

    store = await Store.connect(settings.database_url, settings=settings)
    async with store.transaction() as tx:
        run = await tx.create_run("default", "etl")
        await tx.add_audit("default", "trigger", dag_id="etl", run_id=run.run_id)
    await store.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from leoflow.settings import Settings
from leoflow.store.api import NOTIFY_CHANNEL
from leoflow.store.clear import ClearRepo
from leoflow.store.crypto import SecretBox
from leoflow.store.dags import DagsRepo
from leoflow.store.db import Repo, Shared, connection_errors, init_connection, unavailable
from leoflow.store.events import EventsRepo
from leoflow.store.migrate import migrate as _migrate
from leoflow.store.objects import ObjectsRepo
from leoflow.store.runs import RunsRepo
from leoflow.store.tis import TaskInstancesRepo
from leoflow.store.users import UsersRepo


class Repository(
    UsersRepo, DagsRepo, RunsRepo, TaskInstancesRepo, ClearRepo, ObjectsRepo, EventsRepo
):
    """Every store method, working on a pool or on one connection."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        """A transaction: every call on the yielded object commits or rolls back together.

        Nested calls make savepoints. Keep transactions short: they hold a pool connection.
        """
        async with self._atomic() as tx:
            yield tx  # type: ignore[misc]


class EventListener:
    """Scheduler wake-ups from Postgres NOTIFY; ``await get()`` or ``async for``, then close."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def get(self) -> str:
        """The next payload ('run:<id>' or 'ti:<run id>'), waiting for one."""
        return await self._queue.get()

    def drain(self) -> list[str]:
        """Every payload already received, without waiting."""
        out: list[str] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            yield await self.get()

    async def close(self) -> None:
        """Stop listening and close the dedicated connection."""
        if not self._conn.is_closed():
            await self._conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._conn.close()


class Store(Repository):
    """The store over an asyncpg pool; create with ``await Store.connect(dsn)``."""

    def __init__(self, pool: asyncpg.Pool, shared: Shared) -> None:
        super().__init__(pool, shared)
        self.pool = pool

    def _bind(self, conn: asyncpg.Connection) -> Repo:
        return Repository(conn, self._shared)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        settings: Settings | None = None,
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = False,
        timeout: float = 10.0,
    ) -> Store:
        """Open a pool on ``dsn`` (Unavailable when unreachable); optionally migrate first."""
        settings = settings or Settings()
        if migrate:
            await _migrate(dsn, timeout=timeout)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init_connection,
                timeout=timeout,
                command_timeout=60,
            )
        except connection_errors() as exc:
            raise unavailable(exc, dsn) from exc
        shared = Shared(settings=settings, secrets=SecretBox(settings.secret_key), dsn=dsn)
        return cls(pool, shared)

    @property
    def settings(self) -> Settings:
        """The settings the store was created with."""
        return self._shared.settings

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        await self.pool.close()

    async def ping(self) -> bool:
        """True when the database answers (for health checks); never raises."""
        try:
            return await self.pool.fetchval("SELECT 1", timeout=2) == 1
        except Exception:
            return False

    async def listen(self) -> EventListener:
        """A dedicated connection LISTENing on NOTIFY_CHANNEL (see migration 002)."""
        try:
            conn = await asyncpg.connect(self._shared.dsn, timeout=10)
        except connection_errors() as exc:
            raise unavailable(exc, self._shared.dsn) from exc
        listener = EventListener(conn)
        await conn.add_listener(NOTIFY_CHANNEL, listener._on_notify)
        return listener

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
