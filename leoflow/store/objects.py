"""Variables, connections (secrets encrypted at rest) and pools, with Airflow's bulk actions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from leoflow.errors import Conflict, LeoflowError, NotFound
from leoflow.store.api import (
    DEFAULT_POOL,
    BulkAction,
    BulkActionResult,
    BulkResult,
    Connection,
    InvalidArgument,
    Page,
    Pool,
    Variable,
)
from leoflow.store.db import Query, Repo, order_clause, require

_VAR_ORDER = {"key": "key", "id": "id", "description": "description", "value": "value"}
_CONN_ORDER = {
    "conn_id": "conn_id",
    "connection_id": "conn_id",
    "conn_type": "conn_type",
    "description": "description",
    "host": "host",
    "port": "port",
    "id": "id",
}
_POOL_ORDER = {"id": "id", "name": "name", "pool": "name", "slots": "slots"}
_POOL_SELECT = """
SELECT p.id, p.tenant_id, p.name, p.slots, p.description, p.include_deferred,
       COALESCE(c.running, 0) AS running, COALESCE(c.queued, 0) AS queued,
       COALESCE(c.scheduled, 0) AS scheduled, COALESCE(c.deferred, 0) AS deferred
FROM pools p
LEFT JOIN LATERAL (
    SELECT sum(pool_slots) FILTER (WHERE state = 'running') AS running,
           sum(pool_slots) FILTER (WHERE state = 'queued') AS queued,
           sum(pool_slots) FILTER (WHERE state = 'scheduled') AS scheduled,
           sum(pool_slots) FILTER (WHERE state = 'deferred') AS deferred
    FROM task_instances ti
    WHERE ti.tenant_id = p.tenant_id AND ti.pool = p.name
      AND ti.state IN ('running', 'queued', 'scheduled', 'deferred')
) c ON TRUE
"""


def _variable(row: asyncpg.Record) -> Variable:
    return Variable(key=row["key"], value=row["value"], description=row["description"])


def _pool(row: asyncpg.Record) -> Pool:
    return Pool(
        name=row["name"],
        slots=row["slots"],
        description=row["description"],
        include_deferred=row["include_deferred"],
        running_slots=row["running"],
        queued_slots=row["queued"],
        scheduled_slots=row["scheduled"],
        deferred_slots=row["deferred"],
    )


class ObjectsRepo(Repo):
    """Variables, connections and pools."""

    # -- bulk ------------------------------------------------------------------------------

    async def _bulk(self, tenant: str, actions: Sequence[BulkAction[Any]], kind: str) -> BulkResult:
        """Airflow bulk semantics over ``create_<kind>``/``put_``/``update_``/``delete_``."""
        results: dict[str, BulkActionResult] = {}
        for action in actions:
            res = results.setdefault(action.action, BulkActionResult())
            for entity in action.entities:
                key = entity if isinstance(entity, str) else _KEY_OF[kind](entity)
                try:
                    # A savepoint per entity: one failure must not abort the others.
                    async with self._atomic() as tx:
                        await _apply_one(tx, tenant, action, entity, key, kind)
                    res.success.append(key)
                except _Skipped:
                    continue
                except (Conflict, NotFound, InvalidArgument) as exc:
                    code = {Conflict: 409, NotFound: 404}.get(type(exc), 400)
                    res.errors.append({"error": f"{key}: {exc.message}", "status_code": code})
        return BulkResult(**results)

    # -- variables -------------------------------------------------------------------------

    async def get_variable(self, tenant: str, key: str) -> Variable:
        """The variable (NotFound)."""
        row = await self._fetchrow(
            "SELECT key, value, description FROM variables WHERE tenant_id = $1 AND key = $2",
            await self._tenant_id(tenant),
            key,
        )
        return _variable(require(row, "variable", key=key))

    async def list_variables(
        self,
        tenant: str,
        *,
        key_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "key",
    ) -> Page[Variable]:
        """Variables, key_pattern a LIKE pattern; order_by key, id, description."""
        order = order_clause(order_by, _VAR_ORDER, "id")
        q = Query(await self._tenant_id(tenant))
        q.where("tenant_id = $1")
        q.like("key", key_pattern)
        select = f"SELECT id, key, value, description FROM variables WHERE {q.sql}"
        rows, total = await self._paged(select, q, order, limit, offset)
        return Page([_variable(r) for r in rows], total)

    async def _write_variable(self, tenant: str, var: Variable, mode: str) -> Variable:
        tid = await self._tenant_id(tenant)
        if mode == "update":
            sql = (
                "UPDATE variables SET value = $3, description = $4, updated_at = now() "
                "WHERE tenant_id = $1 AND key = $2 RETURNING key, value, description"
            )
        else:
            sql = (
                "INSERT INTO variables (tenant_id, key, value, description) VALUES ($1, $2, $3, $4) "
                + (
                    "ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value, "
                    "description = EXCLUDED.description, updated_at = now() "
                    if mode == "put"
                    else ""
                )
                + "RETURNING key, value, description"
            )
        row = await self._fetchrow(sql, tid, var.key, var.value, var.description)
        return _variable(require(row, "variable", key=var.key))

    async def create_variable(self, tenant: str, variable: Variable) -> Variable:
        """Create a variable (Conflict when the key exists)."""
        return await self._write_variable(tenant, variable, "create")

    async def put_variable(self, tenant: str, variable: Variable) -> Variable:
        """Create or overwrite a variable."""
        return await self._write_variable(tenant, variable, "put")

    async def update_variable(self, tenant: str, variable: Variable) -> Variable:
        """Overwrite an existing variable (NotFound)."""
        return await self._write_variable(tenant, variable, "update")

    async def delete_variable(self, tenant: str, key: str) -> None:
        """Delete a variable (NotFound)."""
        status = await self._execute(
            "DELETE FROM variables WHERE tenant_id = $1 AND key = $2",
            await self._tenant_id(tenant),
            key,
        )
        if status.endswith(" 0"):
            raise NotFound(f"variable {key!r} not found")

    async def bulk_variables(
        self, tenant: str, actions: Sequence[BulkAction[Variable]]
    ) -> BulkResult:
        """Apply Airflow bulk actions; per-entity errors are reported, not raised."""
        return await self._bulk(tenant, actions, "variable")

    # -- connections -----------------------------------------------------------------------

    def _decrypt(self, row: asyncpg.Record) -> Connection:
        ctx = f"{row['tenant_id']}/{row['conn_id']}"
        box = self._shared.secrets
        return Connection(
            conn_id=row["conn_id"],
            conn_type=row["conn_type"],
            description=row["description"],
            host=row["host"],
            login=row["login"],
            schema=row["schema"],
            port=row["port"],
            password=box.decrypt(row["password_enc"], f"connection {ctx} password"),
            extra=box.decrypt(row["extra_enc"], f"connection {ctx} extra"),
        )

    async def get_connection(self, tenant: str, conn_id: str) -> Connection:
        """The connection, decrypted (NotFound; Unavailable when the key cannot decrypt)."""
        row = await self._fetchrow(
            "SELECT * FROM connections WHERE tenant_id = $1 AND conn_id = $2",
            await self._tenant_id(tenant),
            conn_id,
        )
        return self._decrypt(require(row, "connection", conn_id=conn_id))

    async def list_connections(
        self,
        tenant: str,
        *,
        conn_id_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "conn_id",
    ) -> Page[Connection]:
        """Connections, decrypted; order_by conn_id, conn_type, description, host, port, id."""
        order = order_clause(order_by, _CONN_ORDER, "id")
        q = Query(await self._tenant_id(tenant))
        q.where("tenant_id = $1")
        q.like("conn_id", conn_id_pattern)
        rows, total = await self._paged(
            f"SELECT * FROM connections WHERE {q.sql}", q, order, limit, offset
        )
        return Page([self._decrypt(r) for r in rows], total)

    async def _write_connection(self, tenant: str, conn: Connection, mode: str) -> Connection:
        tid = await self._tenant_id(tenant)
        ctx = f"{tid}/{conn.conn_id}"
        box = self._shared.secrets
        # Refuse every write without a key, even one without secrets: a server that cannot
        # protect secrets should say so before a user starts relying on it.
        password = box.encrypt(conn.password or "", f"connection {ctx} password")
        password = password if conn.password is not None else None
        extra = box.encrypt(conn.extra, f"connection {ctx} extra")
        cols = "conn_type, description, host, login, schema, port, password_enc, extra_enc"
        values = (
            conn.conn_type,
            conn.description,
            conn.host,
            conn.login,
            conn.schema,
            conn.port,
            password,
            extra,
        )
        if mode == "update":
            sql = (
                "UPDATE connections SET (" + cols + ", updated_at) = "
                "($3, $4, $5, $6, $7, $8, $9, $10, now()) "
                "WHERE tenant_id = $1 AND conn_id = $2 RETURNING *"
            )
        else:
            conflict = (
                "ON CONFLICT (tenant_id, conn_id) DO UPDATE SET (" + cols + ", updated_at) = "
                "(EXCLUDED.conn_type, EXCLUDED.description, EXCLUDED.host, EXCLUDED.login, "
                "EXCLUDED.schema, EXCLUDED.port, EXCLUDED.password_enc, EXCLUDED.extra_enc, now()) "
                if mode == "put"
                else ""
            )
            sql = (
                f"INSERT INTO connections (tenant_id, conn_id, {cols}) "
                f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) {conflict}RETURNING *"
            )
        row = await self._fetchrow(sql, tid, conn.conn_id, *values)
        return self._decrypt(require(row, "connection", conn_id=conn.conn_id))

    async def create_connection(self, tenant: str, conn: Connection) -> Connection:
        """Create (Conflict when it exists; Unavailable without LEOFLOW_SECRET_KEY)."""
        return await self._write_connection(tenant, conn, "create")

    async def put_connection(self, tenant: str, conn: Connection) -> Connection:
        """Create or overwrite (Unavailable without LEOFLOW_SECRET_KEY)."""
        return await self._write_connection(tenant, conn, "put")

    async def update_connection(self, tenant: str, conn: Connection) -> Connection:
        """Overwrite an existing connection (NotFound; Unavailable without a key)."""
        return await self._write_connection(tenant, conn, "update")

    async def delete_connection(self, tenant: str, conn_id: str) -> None:
        """Delete a connection (NotFound)."""
        status = await self._execute(
            "DELETE FROM connections WHERE tenant_id = $1 AND conn_id = $2",
            await self._tenant_id(tenant),
            conn_id,
        )
        if status.endswith(" 0"):
            raise NotFound(f"connection {conn_id!r} not found")

    async def bulk_connections(
        self, tenant: str, actions: Sequence[BulkAction[Connection]]
    ) -> BulkResult:
        """Apply Airflow bulk actions to connections."""
        return await self._bulk(tenant, actions, "connection")

    # -- pools -----------------------------------------------------------------------------

    async def get_pool(self, tenant: str, name: str) -> Pool:
        """The pool with its occupancy (NotFound)."""
        row = await self._fetchrow(
            f"{_POOL_SELECT} WHERE p.tenant_id = $1 AND p.name = $2",
            await self._tenant_id(tenant),
            name,
        )
        return _pool(require(row, "pool", name=name))

    async def list_pools(
        self,
        tenant: str,
        *,
        name_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[Pool]:
        """Pools with occupancy; order_by id, name, slots."""
        order = order_clause(order_by, _POOL_ORDER, "id")
        q = Query(await self._tenant_id(tenant))
        q.where("p.tenant_id = $1")
        q.like("p.name", name_pattern)
        rows, total = await self._paged(f"{_POOL_SELECT} WHERE {q.sql}", q, order, limit, offset)
        return Page([_pool(r) for r in rows], total)

    async def _write_pool(self, tenant: str, pool: Pool, mode: str) -> Pool:
        tid = await self._tenant_id(tenant)
        if pool.slots < -1:
            raise InvalidArgument("slots must be -1 (unlimited) or more", field="slots")
        if mode == "update":
            sql = (
                "UPDATE pools SET slots = $3, description = $4, include_deferred = $5 "
                "WHERE tenant_id = $1 AND name = $2 RETURNING id"
            )
        else:
            conflict = (
                "ON CONFLICT (tenant_id, name) DO UPDATE SET slots = EXCLUDED.slots, "
                "description = EXCLUDED.description, include_deferred = EXCLUDED.include_deferred "
                if mode == "put"
                else ""
            )
            sql = (
                "INSERT INTO pools (tenant_id, name, slots, description, include_deferred) "
                f"VALUES ($1, $2, $3, $4, $5) {conflict}RETURNING id"
            )
        got = await self._fetchval(
            sql, tid, pool.name, pool.slots, pool.description, pool.include_deferred
        )
        if got is None:
            raise NotFound(f"pool {pool.name!r} not found")
        return await self.get_pool(tenant, pool.name)

    async def create_pool(self, tenant: str, pool: Pool) -> Pool:
        """Create a pool (Conflict when it exists)."""
        return await self._write_pool(tenant, pool, "create")

    async def put_pool(self, tenant: str, pool: Pool) -> Pool:
        """Create or overwrite a pool."""
        return await self._write_pool(tenant, pool, "put")

    async def update_pool(self, tenant: str, pool: Pool) -> Pool:
        """Overwrite slots/description/include_deferred (NotFound)."""
        return await self._write_pool(tenant, pool, "update")

    async def delete_pool(self, tenant: str, name: str) -> None:
        """Delete a pool (NotFound; InvalidArgument for default_pool)."""
        if name == DEFAULT_POOL:
            raise InvalidArgument("Default Pool can't be deleted", field="pool_name")
        status = await self._execute(
            "DELETE FROM pools WHERE tenant_id = $1 AND name = $2",
            await self._tenant_id(tenant),
            name,
        )
        if status.endswith(" 0"):
            raise NotFound(f"pool {name!r} not found")

    async def bulk_pools(self, tenant: str, actions: Sequence[BulkAction[Pool]]) -> BulkResult:
        """Apply Airflow bulk actions to pools."""
        return await self._bulk(tenant, actions, "pool")


async def _apply_one(
    tx: Repo, tenant: str, action: BulkAction[Any], entity: Any, key: str, kind: str
) -> None:
    """One entity of a bulk action on ``tx``; raises _Skipped when the action says skip."""
    try:
        if action.action == "create":
            verb = "put" if action.action_on_existence == "overwrite" else "create"
            await getattr(tx, f"{verb}_{kind}")(tenant, entity)
        elif action.action == "update":
            await getattr(tx, f"update_{kind}")(tenant, entity)
        elif action.action == "delete":
            await getattr(tx, f"delete_{kind}")(tenant, key)
        else:
            raise InvalidArgument(f"unknown bulk action {action.action!r}", field="action")
    except Conflict:
        if action.action == "create" and action.action_on_existence == "skip":
            raise _Skipped() from None
        raise
    except NotFound:
        if action.action != "create" and action.action_on_non_existence == "skip":
            raise _Skipped() from None
        raise


class _Skipped(LeoflowError):
    def __init__(self) -> None:
        super().__init__("skipped")


_KEY_OF: dict[str, Callable[[Any], str]] = {
    "variable": lambda v: v.key,
    "connection": lambda c: c.conn_id,
    "pool": lambda p: p.name,
}
