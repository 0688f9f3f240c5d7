"""Plumbing shared by the repositories: error mapping, query building, ordering, the base class.

Every SQL statement goes through ``Repo._fetch``/``_fetchrow``/``_fetchval``/``_execute``, which
turn asyncpg's exceptions into Leoflow's (connection trouble -> ``Unavailable``, a unique
violation -> ``Conflict``). Values always travel as bind parameters; the only text spliced into
SQL comes from whitelists in this package (column names for ORDER BY, fixed fragments).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from leoflow.errors import Conflict, NotFound, Unavailable
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store.api import InvalidArgument
from leoflow.store.crypto import SecretBox

Executor = asyncpg.Pool | asyncpg.Connection


def connection_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the database cannot be reached right now"."""
    return (
        OSError,
        asyncio.TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.InterfaceError,
        # A backend killed under an idle pooled connection surfaces as a protocol-state error
        # on its next use; the pool replaces that connection on release.
        asyncpg.InternalClientError,
        asyncpg.InvalidCatalogNameError,
    )


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


def unavailable(exc: BaseException, dsn: str | None = None) -> Unavailable:
    """An Unavailable error that says what could not be reached and why."""
    where = f" at {redact_dsn(dsn)}" if dsn else ""
    reason = str(exc) or type(exc).__name__
    return Unavailable(
        f"the database{where} is unreachable: {reason}",
        hint="check that Postgres is running and LEOFLOW_DATABASE_URL points at it",
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: JSON codecs and UTC session time zone."""
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=_json_dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )
    await conn.execute("SET TIME ZONE 'UTC'")


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Query building
# --------------------------------------------------------------------------------------------


class Query:
    """Collects WHERE conditions and their bind parameters; ``{}`` marks a parameter."""

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.conds: list[str] = []

    def arg(self, value: Any) -> str:
        """Bind one value and return its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, cond: str, *values: Any) -> None:
        """Add a condition; each ``{}`` in ``cond`` becomes a bound value."""
        self.conds.append(cond.format(*(self.arg(v) for v in values)))

    def where_if(self, value: Any, cond: str) -> None:
        """Add ``cond`` bound to ``value`` unless value is None."""
        if value is not None:
            self.where(cond, value)

    def like(self, column: str, pattern: str | None) -> None:
        """Airflow's search params: case-insensitive LIKE with ``%`` around the pattern."""
        if pattern:
            self.where(column + " ILIKE '%' || {} || '%'", pattern)

    @property
    def sql(self) -> str:
        """The conditions joined by AND (``TRUE`` when none)."""
        return " AND ".join(self.conds) if self.conds else "TRUE"

    def page(self, limit: int, offset: int) -> str:
        """``LIMIT $n OFFSET $m`` with validated values."""
        if limit < 0 or offset < 0:
            raise InvalidArgument("limit and offset must be >= 0", field="limit")
        return f"LIMIT {self.arg(limit)} OFFSET {self.arg(offset)}"


def order_clause(order_by: str | None, allowed: Mapping[str, str], tiebreak: str) -> str:
    """``ORDER BY`` from Airflow's ``order_by`` (``-field`` descending, comma-separated).

    Only names in ``allowed`` (API name -> SQL expression) are accepted; ``tiebreak`` keeps
    pagination stable.
    """
    parts: list[str] = []
    for raw in (order_by or "").split(","):
        name = raw.strip()
        if not name:
            continue
        desc = name.startswith("-")
        name = name.lstrip("-")
        if name not in allowed:
            raise InvalidArgument(
                f"cannot order by {name!r}",
                field="order_by",
                hint="allowed: " + ", ".join(sorted(allowed)),
            )
        nulls = " NULLS LAST" if not desc else " NULLS FIRST"
        parts.append(f"{allowed[name]} {'DESC' if desc else 'ASC'}{nulls}")
    parts.append(tiebreak)
    return "ORDER BY " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# The base repository
# --------------------------------------------------------------------------------------------


@dataclass
class Shared:
    """State shared by a Store and the transaction objects it hands out."""

    settings: Settings
    secrets: SecretBox
    dsn: str | None = None
    tenants: dict[str, int] = field(default_factory=dict)
    specs: OrderedDict[UUID, DagSpec] = field(default_factory=OrderedDict)
    spec_cache_size: int = 512


class Repo:
    """Base of every repository mixin: holds the executor (pool or connection) and helpers."""

    def __init__(self, db: Executor, shared: Shared) -> None:
        self._db = db
        self._shared = shared

    def _bind(self, conn: asyncpg.Connection) -> Repo:
        """A repository of the same kind working on ``conn`` (a transaction's connection)."""
        return type(self)(conn, self._shared)

    # -- error-mapped execution ------------------------------------------------------------

    async def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        try:
            return await getattr(self._db, method)(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(_constraint_message(exc)) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a referenced object does not exist ({exc.constraint_name})") from exc
        except (asyncpg.DataError, asyncpg.exceptions.CheckViolationError) as exc:
            raise InvalidArgument(f"invalid value: {exc}") from exc
        except asyncpg.SerializationError as exc:
            raise Conflict("concurrent update; retry the request") from exc
        except connection_errors() as exc:
            raise unavailable(exc, self._shared.dsn) from exc

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", sql, args)

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", sql, args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, args)

    async def _execute(self, sql: str, *args: Any) -> str:
        return await self._run("execute", sql, args)

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[Repo]:
        """A repository bound to one connection inside a transaction (savepoint if nested)."""
        try:
            if isinstance(self._db, asyncpg.Pool):
                async with self._db.acquire() as conn, conn.transaction():
                    yield self._bind(conn)
            else:
                async with self._db.transaction():
                    yield self
        except connection_errors() as exc:
            raise unavailable(exc, self._shared.dsn) from exc

    # -- tenants ---------------------------------------------------------------------------

    async def _tenant_id(self, tenant: str) -> int:
        """The id of a tenant by name (cached: tenants are never renamed or deleted)."""
        cached = self._shared.tenants.get(tenant)
        if cached is not None:
            return cached
        tid = await self._fetchval("SELECT id FROM tenants WHERE name = $1", tenant)
        if tid is None:
            raise NotFound(f"tenant {tenant!r} does not exist", field="tenant")
        self._shared.tenants[tenant] = tid
        return tid

    async def _paged(
        self, select: str, q: Query, order: str, limit: int, offset: int
    ) -> tuple[list[asyncpg.Record], int]:
        """Run ``select`` (which must end with its FROM/WHERE) for one page plus the total."""
        page = q.page(limit, offset)
        rows = await self._fetch(
            f"SELECT *, count(*) OVER () AS _total FROM ({select}) AS _s {order} {page}", *q.args
        )
        if rows:
            return rows, rows[0]["_total"]
        if offset == 0:
            return [], 0
        total = await self._fetchval(f"SELECT count(*) FROM ({select}) AS _s", *q.args[:-2])
        return [], total


def _constraint_message(exc: asyncpg.UniqueViolationError) -> str:
    detail = getattr(exc, "detail", None) or ""
    match = re.search(r"Key \((.*)\)=\((.*)\) already exists", detail)
    if match:
        cols = [c.strip() for c in match[1].split(",")]
        vals = [v.strip() for v in match[2].split(",")]
        pairs = {c: v for c, v in zip(cols, vals, strict=False) if not c.endswith("_pk")}
        pairs.pop("tenant_id", None)
        if pairs:
            return "already exists: " + ", ".join(f"{c}={v!r}" for c, v in pairs.items())
    return f"already exists ({exc.constraint_name})"


def require(row: asyncpg.Record | None, what: str, **where: Any) -> asyncpg.Record:
    """The row, or NotFound naming what was looked for."""
    if row is None:
        keys = ", ".join(f"{k}={v!r}" for k, v in where.items())
        raise NotFound(f"{what} not found ({keys})" if keys else f"{what} not found")
    return row
