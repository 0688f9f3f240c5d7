"""Leoflow's store: Postgres (metadata, via asyncpg) and Redis (XCom values, live logs).

Public entry points: ``Store`` (``await Store.connect(dsn)``), ``RedisStore``, ``migrate``,
and the domain types in ``leoflow.store.api``.
"""

from __future__ import annotations

from leoflow.store.api import *  # noqa: F403 - the contract's names are the package's names
from leoflow.store.api import __all__ as _api_all
from leoflow.store.migrate import migrate, migrate_sync
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import EventListener, Repository, Store

__all__ = [
    *_api_all,
    "EventListener",
    "RedisStore",
    "Repository",
    "Store",
    "migrate",
    "migrate_sync",
]
