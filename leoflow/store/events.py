"""Audit log (Airflow's event log), import errors and the XCom index."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from leoflow.errors import NotFound
from leoflow.store.api import ALL, AuditEvent, DagImportError, Page, XComEntry
from leoflow.store.db import Query, Repo, order_clause, require, utcnow

_AUDIT_ORDER = {
    "id": "id",
    "event_log_id": "id",
    "when": "dttm",
    "dttm": "dttm",
    "event": "event",
    "dag_id": "dag_id",
    "task_id": "task_id",
    "run_id": "run_id",
    "owner": "owner",
    "map_index": "map_index",
    "try_number": "try_number",
    "logical_date": "logical_date",
}
_IMPORT_ORDER = {
    "id": "id",
    "import_error_id": "id",
    "timestamp": "timestamp",
    "filename": "filename",
    "bundle_name": "bundle_name",
}
_XCOM_SELECT = """
SELECT x.*, r.logical_date, r.run_after
FROM xcom_index x JOIN task_instances ti ON ti.id = x.ti_id JOIN dag_runs r ON r.id = ti.dag_run_pk
"""


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        when=row["dttm"],
        event=row["event"],
        owner=row["owner"],
        dag_id=row["dag_id"],
        task_id=row["task_id"],
        run_id=row["run_id"],
        map_index=row["map_index"],
        try_number=row["try_number"],
        logical_date=row["logical_date"],
        extra=row["extra"],
    )


def _import_error(row: asyncpg.Record) -> DagImportError:
    return DagImportError(
        id=row["id"],
        filename=row["filename"],
        bundle_name=row["bundle_name"],
        stack_trace=row["stack_trace"],
        timestamp=row["timestamp"],
    )


def _xcom(row: asyncpg.Record) -> XComEntry:
    return XComEntry(
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        map_index=row["map_index"],
        key=row["key"],
        size=row["size"],
        created_at=row["created_at"],
        logical_date=row["logical_date"],
        run_after=row["run_after"],
    )


class EventsRepo(Repo):
    """Audit log, import errors and the XCom index."""

    # -- audit -----------------------------------------------------------------------------

    async def add_audit(
        self,
        tenant: str,
        event: str,
        *,
        owner: str | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        try_number: int | None = None,
        logical_date: datetime | None = None,
        extra: str | Mapping[str, Any] | None = None,
        when: datetime | None = None,
    ) -> AuditEvent:
        """Append an event (extra given as a mapping is stored as JSON text)."""
        if extra is not None and not isinstance(extra, str):
            extra = json.dumps(dict(extra), default=str, sort_keys=True)
        row = await self._fetchrow(
            """INSERT INTO audit_log (tenant_id, dttm, event, owner, dag_id, task_id, run_id,
                 map_index, try_number, logical_date, extra)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *""",
            await self._tenant_id(tenant),
            when or utcnow(),
            event,
            owner,
            dag_id,
            task_id,
            run_id,
            map_index,
            try_number,
            logical_date,
            extra,
        )
        return _event(row)

    async def get_audit(self, tenant: str, event_id: int) -> AuditEvent:
        """One event (NotFound)."""
        row = await self._fetchrow(
            "SELECT * FROM audit_log WHERE tenant_id = $1 AND id = $2",
            await self._tenant_id(tenant),
            event_id,
        )
        return _event(require(row, "event log", event_log_id=event_id))

    async def list_audit(
        self,
        tenant: str,
        *,
        dag_id: str | None = None,
        task_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        try_number: int | None = None,
        owner: str | None = None,
        event: str | None = None,
        included_events: Collection[str] | None = None,
        excluded_events: Collection[str] | None = None,
        before: datetime | None = None,
        after: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[AuditEvent]:
        """Events matching the filters; order_by id, when, event, dag_id, owner..."""
        order = order_clause(order_by, _AUDIT_ORDER, "id")
        q = Query(await self._tenant_id(tenant))
        q.where("tenant_id = $1")
        for column, value in (
            ("dag_id", dag_id),
            ("task_id", task_id),
            ("run_id", run_id),
            ("map_index", map_index),
            ("try_number", try_number),
            ("owner", owner),
            ("event", event),
        ):
            q.where_if(value, f"{column} = {{}}")
        if included_events:
            q.where("event = ANY({}::text[])", list(included_events))
        if excluded_events:
            q.where("NOT (event = ANY({}::text[]))", list(excluded_events))
        q.where_if(before, "dttm < {}")
        q.where_if(after, "dttm > {}")
        rows, total = await self._paged(
            f"SELECT * FROM audit_log WHERE {q.sql}", q, order, limit, offset
        )
        return Page([_event(r) for r in rows], total)

    # -- import errors ---------------------------------------------------------------------

    async def upsert_import_error(
        self,
        tenant: str,
        filename: str,
        stack_trace: str,
        *,
        bundle_name: str | None = None,
        when: datetime | None = None,
    ) -> DagImportError:
        """Record (or replace) the error of one file."""
        row = await self._fetchrow(
            """INSERT INTO import_errors (tenant_id, filename, bundle_name, stack_trace, timestamp)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, filename) DO UPDATE SET bundle_name = EXCLUDED.bundle_name,
                 stack_trace = EXCLUDED.stack_trace, timestamp = EXCLUDED.timestamp
               RETURNING *""",
            await self._tenant_id(tenant),
            filename,
            bundle_name,
            stack_trace,
            when or utcnow(),
        )
        return _import_error(row)

    async def delete_import_error(self, tenant: str, filename: str) -> bool:
        """Forget a file's error (it compiled again); False when there was none."""
        status = await self._execute(
            "DELETE FROM import_errors WHERE tenant_id = $1 AND filename = $2",
            await self._tenant_id(tenant),
            filename,
        )
        return not status.endswith(" 0")

    async def get_import_error(self, tenant: str, import_error_id: int) -> DagImportError:
        """One import error (NotFound)."""
        row = await self._fetchrow(
            "SELECT * FROM import_errors WHERE tenant_id = $1 AND id = $2",
            await self._tenant_id(tenant),
            import_error_id,
        )
        return _import_error(require(row, "import error", import_error_id=import_error_id))

    async def list_import_errors(
        self,
        tenant: str,
        *,
        filename_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[DagImportError]:
        """Import errors; order_by id, timestamp, filename, bundle_name."""
        order = order_clause(order_by, _IMPORT_ORDER, "id")
        q = Query(await self._tenant_id(tenant))
        q.where("tenant_id = $1")
        q.like("filename", filename_pattern)
        rows, total = await self._paged(
            f"SELECT * FROM import_errors WHERE {q.sql}", q, order, limit, offset
        )
        return Page([_import_error(r) for r in rows], total)

    # -- XCom index ------------------------------------------------------------------------

    async def upsert_xcom(
        self, ti_id: UUID, key: str, size: int, *, now: datetime | None = None
    ) -> None:
        """Record (or refresh) that the TI pushed an XCom ``key`` of ``size`` bytes."""
        status = await self._execute(
            """INSERT INTO xcom_index (ti_id, key, tenant_id, dag_id, run_id, task_id, map_index,
                 size, created_at)
               SELECT id, $2, tenant_id, dag_id, run_id, task_id, map_index, $3, $4
               FROM task_instances WHERE id = $1
               ON CONFLICT (ti_id, key) DO UPDATE SET size = EXCLUDED.size,
                 created_at = EXCLUDED.created_at""",
            ti_id,
            key,
            size,
            now or utcnow(),
        )
        if status.endswith(" 0"):
            raise NotFound(f"task instance {ti_id} not found")

    async def list_xcoms(
        self,
        tenant: str,
        dag_id: str = ALL,
        run_id: str = ALL,
        task_id: str = ALL,
        *,
        map_index: int | None = None,
        key: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[XComEntry]:
        """XCom index entries ("~" wildcards), by dag_id, run_id, task_id, map_index, key."""
        q = Query(await self._tenant_id(tenant))
        q.where("x.tenant_id = $1")
        for column, value in (("dag_id", dag_id), ("run_id", run_id), ("task_id", task_id)):
            if value != ALL:
                q.where(f"x.{column} = {{}}", value)
        q.where_if(map_index, "x.map_index = {}")
        q.where_if(key, "x.key = {}")
        order = "ORDER BY dag_id, run_after, run_id, task_id, map_index, key"
        rows, total = await self._paged(f"{_XCOM_SELECT} WHERE {q.sql}", q, order, limit, offset)
        return Page([_xcom(r) for r in rows], total)

    async def get_xcom_entry(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> XComEntry:
        """One index entry (NotFound)."""
        row = await self._fetchrow(
            f"{_XCOM_SELECT} WHERE x.tenant_id = $1 AND x.dag_id = $2 AND x.run_id = $3 "
            "AND x.task_id = $4 AND x.key = $5 AND x.map_index = $6",
            await self._tenant_id(tenant),
            dag_id,
            run_id,
            task_id,
            key,
            map_index,
        )
        if row is None:
            raise NotFound(f"XCom entry {key!r} of task {task_id!r} in run {run_id!r} not found")
        return _xcom(row)

    async def delete_xcoms(self, ti_id: UUID) -> int:
        """Drop a TI's index entries (before a new try); returns how many."""
        status = await self._execute("DELETE FROM xcom_index WHERE ti_id = $1", ti_id)
        return int(status.split()[-1])
