"""Task instances: one row per (run, task_id, map_index) holding the current try.

Every state write goes through ``_transition``: one ``UPDATE ... WHERE state = ANY($expected)``
(plus ``state IS NULL`` when "no status" is expected), so a writer that lost a race changes
nothing and learns it from the returned ids. A try that ends (success, failed, skipped,
up_for_retry...) is copied into ``task_instance_history`` by the same statement.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from leoflow.errors import Conflict, NotFound
from leoflow.spec import DagSpec
from leoflow.store.api import (
    ALL,
    TI_MANUAL_MARKS,
    UNSET,
    InvalidArgument,
    Page,
    TaskInstance,
    TaskInstanceTry,
    TIState,
    ti_sources,
)
from leoflow.store.db import Query, Repo, order_clause, require, utcnow

TI_SELECT = """
SELECT ti.*, t.name AS tenant, r.logical_date, r.run_after
FROM task_instances ti
JOIN tenants t ON t.id = ti.tenant_id
JOIN dag_runs r ON r.id = ti.dag_run_pk
"""

_TI_ORDER = {
    "id": "id",
    "task_id": "task_id",
    "map_index": "map_index",
    "rendered_map_index": "map_index",
    "state": "state",
    "start_date": "start_date",
    "end_date": "end_date",
    "duration": "duration",
    "try_number": "try_number",
    "max_tries": "max_tries",
    "pool": "pool",
    "queue": "queue",
    "priority_weight": "priority_weight",
    "queued_dttm": "queued_dttm",
    "queued_when": "queued_dttm",
    "scheduled_dttm": "scheduled_dttm",
    "scheduled_when": "scheduled_dttm",
    "logical_date": "logical_date",
    "run_after": "run_after",
    "dag_id": "dag_id",
    "run_id": "run_id",
    "dag_run_id": "run_id",
    "operator": "operator",
    "hostname": "hostname",
    "executor": "executor",
    "pid": "pid",
    "updated_at": "updated_at",
}

_HISTORY_COLS = (
    "ti_id, tenant_id, dag_id, run_id, task_id, map_index, try_number, state, max_tries, "
    "start_date, end_date, duration, queued_dttm, scheduled_dttm, hostname, pid, executor, "
    "external_executor_id, pool, pool_slots, queue, priority_weight, operator, dag_version_id"
)
# Airflow records an unfinished try (cleared while running, or up_for_retry) as failed.
_HISTORY_VALUES = (
    "id, tenant_id, dag_id, run_id, task_id, map_index, try_number, "
    "CASE WHEN state IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed') "
    "THEN state ELSE 'failed' END, max_tries, start_date, COALESCE(end_date, {now}), duration, "
    "queued_dttm, scheduled_dttm, hostname, pid, executor, external_executor_id, pool, "
    "pool_slots, queue, priority_weight, operator, dag_version_id"
)
_HISTORY_UPSERT = (
    "ON CONFLICT (ti_id, try_number) DO UPDATE SET state = EXCLUDED.state, "
    "end_date = EXCLUDED.end_date, duration = EXCLUDED.duration, hostname = EXCLUDED.hostname, "
    "pid = EXCLUDED.pid, start_date = EXCLUDED.start_date, recorded_at = now()"
)
_RECORDED = ("success", "failed", "skipped", "up_for_retry", "upstream_failed")


def ti_from_row(row: asyncpg.Record) -> TaskInstance:
    """A TaskInstance from a row of TI_SELECT."""
    state = row["state"]
    return TaskInstance(
        id=row["id"],
        tenant=row["tenant"],
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        dag_run_id=row["dag_run_pk"],
        dag_version_id=row["dag_version_id"],
        task_id=row["task_id"],
        map_index=row["map_index"],
        state=TIState(state) if state is not None else None,
        try_number=row["try_number"],
        max_tries=row["max_tries"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        duration=row["duration"],
        queued_dttm=row["queued_dttm"],
        scheduled_dttm=row["scheduled_dttm"],
        next_retry_at=row["next_retry_at"],
        hostname=row["hostname"],
        pid=row["pid"],
        executor=row["executor"],
        external_executor_id=row["external_executor_id"],
        pool=row["pool"],
        pool_slots=row["pool_slots"],
        queue=row["queue"],
        priority_weight=row["priority_weight"],
        operator=row["operator"],
        note=row["note"],
        last_heartbeat_at=row["last_heartbeat_at"],
        rendered_fields=row["rendered_fields"] or {},
        logical_date=row["logical_date"],
        run_after=row["run_after"],
        updated_at=row["updated_at"],
    )


def _try_from_row(row: asyncpg.Record, ti_id: UUID) -> TaskInstanceTry:
    state = row["state"]
    return TaskInstanceTry(
        ti_id=ti_id,
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        map_index=row["map_index"],
        try_number=row["try_number"],
        state=TIState(state) if state is not None else None,
        max_tries=row["max_tries"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        duration=row["duration"],
        queued_dttm=row["queued_dttm"],
        scheduled_dttm=row["scheduled_dttm"],
        hostname=row["hostname"],
        pid=row["pid"],
        executor=row["executor"],
        pool=row["pool"],
        pool_slots=row["pool_slots"],
        queue=row["queue"],
        priority_weight=row["priority_weight"],
        operator=row["operator"],
        dag_version_id=row["dag_version_id"],
    )


def priority_weights(spec: DagSpec) -> dict[str, int]:
    """Airflow's default weight rule "downstream": own weight plus every downstream task's."""
    down = spec.downstream()
    own = {t.task_id: t.priority_weight for t in spec.tasks}
    out: dict[str, int] = {}
    for task_id in own:
        seen: set[str] = set()
        stack = [task_id]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(down[node])
        out[task_id] = sum(own[n] for n in seen)
    return out


def _stamps(to_state: TIState | None, q: Query, now: datetime) -> list[str]:
    """SET fragments for a TI entering ``to_state`` (times, try counting)."""
    at = q.arg(now)
    sets = [f"state = {q.arg(to_state.value if to_state else None)}", f"updated_at = {at}"]
    if to_state is TIState.SCHEDULED:
        # A new try is counted unless the TI comes back from queued (the executor refused it)
        # or resumes a deferred/rescheduled try, as in Airflow. SET sees the old row values.
        new_try = "(state IS NULL OR state NOT IN ('queued', 'deferred', 'up_for_reschedule'))"
        sets += [f"try_number = try_number + CASE WHEN {new_try} THEN 1 ELSE 0 END"]
        sets += [f"scheduled_dttm = {at}", "queued_dttm = NULL", "next_retry_at = NULL"]
        # Forget the previous try's runtime facts when a new try starts.
        sets += [
            f"{col} = CASE WHEN {new_try} THEN NULL ELSE {col} END"
            for col in (
                "start_date",
                "end_date",
                "duration",
                "hostname",
                "pid",
                "external_executor_id",
                "last_heartbeat_at",
            )
        ]
    elif to_state is TIState.QUEUED:
        sets.append(f"queued_dttm = {at}")
    elif to_state is TIState.RUNNING:
        sets += [
            f"start_date = {at}",
            "end_date = NULL",
            "duration = NULL",
            f"last_heartbeat_at = {at}",
        ]
    elif to_state is not None and to_state.value in (*_RECORDED, "removed"):
        sets += [
            f"end_date = {at}",
            f"duration = CASE WHEN start_date IS NULL THEN NULL "
            f"ELSE EXTRACT(EPOCH FROM ({at}::timestamptz - start_date))::float8 END",
        ]
    return sets


class TaskInstancesRepo(Repo):
    """Task instances and their tries."""

    async def create_task_instances(self, run_pk: int) -> list[TaskInstance]:
        """Create one TI per task of the run's pinned spec (idempotent); returns the new ones."""
        run = await self._fetchrow(
            "SELECT tenant_id, dag_id, run_id, dag_version_id FROM dag_runs WHERE id = $1", run_pk
        )
        run = require(run, "DAG run", id=run_pk)
        spec = await self.get_spec(run["dag_version_id"])
        weights = priority_weights(spec)
        tasks = spec.tasks
        rows = await self._fetch(
            """INSERT INTO task_instances (tenant_id, dag_run_pk, dag_id, run_id, dag_version_id,
                 task_id, map_index, max_tries, pool, pool_slots, priority_weight, operator)
               SELECT $1, $2, $3, $4, $5, t.task_id, -1, t.retries, t.pool, t.slots, t.weight, t.op
               FROM unnest($6::text[], $7::int[], $8::text[], $9::int[], $10::int[], $11::text[])
                    AS t(task_id, retries, pool, slots, weight, op)
               WHERE NOT EXISTS (SELECT 1 FROM task_instances x
                                 WHERE x.dag_run_pk = $2 AND x.task_id = t.task_id)
               ON CONFLICT (dag_run_pk, task_id, map_index) DO NOTHING
               RETURNING id""",
            run["tenant_id"],
            run_pk,
            run["dag_id"],
            run["run_id"],
            run["dag_version_id"],
            [t.task_id for t in tasks],
            [t.retries for t in tasks],
            [t.pool for t in tasks],
            [t.pool_slots for t in tasks],
            [weights[t.task_id] for t in tasks],
            [t.operator for t in tasks],
        )
        return await self._tis_by_ids([r["id"] for r in rows])

    async def _tis_by_ids(self, ids: Collection[UUID]) -> list[TaskInstance]:
        if not ids:
            return []
        rows = await self._fetch(
            f"{TI_SELECT} WHERE ti.id = ANY($1::uuid[]) ORDER BY ti.task_id, ti.map_index",
            list(ids),
        )
        return [ti_from_row(r) for r in rows]

    async def expand_mapped_ti(self, run_pk: int, task_id: str, length: int) -> list[TaskInstance]:
        """Turn the unmapped TI of a task into map indexes 0..length-1 (idempotent)."""
        if length < 0:
            raise InvalidArgument("length must be >= 0", field="length")
        async with self._atomic() as tx:
            base = await tx._fetchrow(
                "SELECT id FROM task_instances WHERE dag_run_pk = $1 AND task_id = $2 "
                "AND map_index = -1 FOR UPDATE",
                run_pk,
                task_id,
            )
            if base is not None and length == 0:
                # Airflow: mapping over an empty list skips the task.
                await tx._transition([base["id"]], TIState.SKIPPED, None, utcnow())
            elif base is not None:
                await tx._execute(
                    "UPDATE task_instances SET map_index = 0 WHERE id = $1", base["id"]
                )
                await tx._execute(
                    """INSERT INTO task_instances (tenant_id, dag_run_pk, dag_id, run_id,
                         dag_version_id, task_id, map_index, max_tries, pool, pool_slots, queue,
                         priority_weight, operator)
                       SELECT tenant_id, dag_run_pk, dag_id, run_id, dag_version_id, task_id,
                         i, max_tries, pool, pool_slots, queue, priority_weight, operator
                       FROM task_instances, generate_series(1, $2 - 1) AS i
                       WHERE id = $1
                       ON CONFLICT DO NOTHING""",
                    base["id"],
                    length,
                )
            rows = await tx._fetch(
                f"{TI_SELECT} WHERE ti.dag_run_pk = $1 AND ti.task_id = $2 ORDER BY ti.map_index",
                run_pk,
                task_id,
            )
        return [ti_from_row(r) for r in rows]

    async def get_ti(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> TaskInstance:
        """The task instance (NotFound)."""
        tid = await self._tenant_id(tenant)
        row = await self._fetchrow(
            f"{TI_SELECT} WHERE ti.tenant_id = $1 AND ti.dag_id = $2 AND ti.run_id = $3 "
            "AND ti.task_id = $4 AND ti.map_index = $5",
            tid,
            dag_id,
            run_id,
            task_id,
            map_index,
        )
        return ti_from_row(
            require(
                row,
                "task instance",
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
            )
        )

    async def get_ti_by_id(self, ti_id: UUID) -> TaskInstance:
        """The task instance by TaskInstance.id (NotFound)."""
        row = await self._fetchrow(f"{TI_SELECT} WHERE ti.id = $1", ti_id)
        return ti_from_row(require(row, "task instance", id=str(ti_id)))

    async def list_tis(
        self,
        tenant: str,
        dag_id: str = ALL,
        run_id: str = ALL,
        *,
        task_ids: Collection[str] | None = None,
        task_id_pattern: str | None = None,
        map_index: int | None = None,
        states: Collection[TIState | None] | None = None,
        pools: Collection[str] | None = None,
        queues: Collection[str] | None = None,
        executors: Collection[str] | None = None,
        dag_ids: Collection[str] | None = None,
        run_ids: Collection[str] | None = None,
        logical_date_gte: datetime | None = None,
        logical_date_lte: datetime | None = None,
        start_date_gte: datetime | None = None,
        start_date_lte: datetime | None = None,
        end_date_gte: datetime | None = None,
        end_date_lte: datetime | None = None,
        duration_gte: float | None = None,
        duration_lte: float | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "map_index",
    ) -> Page[TaskInstance]:
        """Task instances of one run, one DAG's runs, or everything ("~")."""
        order = order_clause(
            order_by, _TI_ORDER, "run_after ASC, dag_id ASC, run_id ASC, task_id ASC, map_index ASC"
        )
        tid = await self._tenant_id(tenant)
        q = Query(tid)
        q.where("ti.tenant_id = $1")
        if dag_id != ALL:
            q.where("ti.dag_id = {}", dag_id)
        if run_id != ALL:
            q.where("ti.run_id = {}", run_id)
        if dag_id != ALL and run_id != ALL:
            await self._require_run(tid, dag_id, run_id)
        elif dag_id != ALL:
            await self._require_dag(tid, dag_id)
        for column, values in (
            ("task_id", task_ids),
            ("pool", pools),
            ("queue", queues),
            ("executor", executors),
            ("dag_id", dag_ids),
            ("run_id", run_ids),
        ):
            if values is not None:
                q.where(f"ti.{column} = ANY({{}}::text[])", list(values))
        q.like("ti.task_id", task_id_pattern)
        q.where_if(map_index, "ti.map_index = {}")
        if states is not None:
            named = [TIState(s).value for s in states if s is not None]
            q.where(
                "(ti.state = ANY({}::text[]) OR ({} AND ti.state IS NULL))", named, None in states
            )
        for column, gte, lte in (
            ("r.logical_date", logical_date_gte, logical_date_lte),
            ("ti.start_date", start_date_gte, start_date_lte),
            ("ti.end_date", end_date_gte, end_date_lte),
            ("ti.duration", duration_gte, duration_lte),
        ):
            q.where_if(gte, f"{column} >= {{}}")
            q.where_if(lte, f"{column} <= {{}}")
        rows, total = await self._paged(f"{TI_SELECT} WHERE {q.sql}", q, order, limit, offset)
        return Page([ti_from_row(r) for r in rows], total)

    async def _require_run(self, tid: int, dag_id: str, run_id: str) -> int:
        pk = await self._fetchval(
            "SELECT id FROM dag_runs WHERE tenant_id = $1 AND dag_id = $2 AND run_id = $3",
            tid,
            dag_id,
            run_id,
        )
        if pk is None:
            raise NotFound(f"DAG run {run_id!r} of {dag_id!r} not found")
        return pk

    async def list_run_tis(self, run_pks: Collection[int]) -> list[TaskInstance]:
        """Every TI of these runs (scheduler snapshot), by run then task_id then map_index."""
        rows = await self._fetch(
            f"{TI_SELECT} WHERE ti.dag_run_pk = ANY($1::bigint[]) "
            "ORDER BY ti.dag_run_pk, ti.task_id, ti.map_index",
            list(run_pks),
        )
        return [ti_from_row(r) for r in rows]

    async def list_ti_tries(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[TaskInstanceTry]:
        """Every try (finished ones from history, then the current), by try_number."""
        ti = await self.get_ti(tenant, dag_id, run_id, task_id, map_index)
        rows = await self._fetch(
            "SELECT * FROM task_instance_history WHERE ti_id = $1 ORDER BY try_number", ti.id
        )
        tries = {r["try_number"]: _try_from_row(r, ti.id) for r in rows}
        if ti.try_number > 0 and ti.try_number not in tries:
            current = await self._fetchrow("SELECT * FROM task_instances WHERE id = $1", ti.id)
            tries[ti.try_number] = _try_from_row(current, ti.id)
        return [tries[n] for n in sorted(tries)]

    async def get_ti_try(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        map_index: int = -1,
    ) -> TaskInstanceTry:
        """One try (NotFound)."""
        for one in await self.list_ti_tries(tenant, dag_id, run_id, task_id, map_index):
            if one.try_number == try_number:
                return one
        raise NotFound(f"try {try_number} of task {task_id!r} in run {run_id!r} not found")

    async def _transition(
        self,
        ids: Collection[UUID],
        to_state: TIState | None,
        sources: Collection[TIState | None] | None,
        now: datetime,
        *,
        try_number: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> list[UUID]:
        """The one guarded write; ``sources`` None means "from any state"."""
        q = Query(list(ids))
        sets = _stamps(to_state, q, now)
        now_ph = sets[1].split(" = ")[1]
        for column, value in (extra or {}).items():
            if value is not None:
                sets.append(f"{column} = {q.arg(value)}")
        where = "id = ANY($1::uuid[])"
        if sources is not None:
            named = [TIState(s).value for s in sources if s is not None]
            where += (
                f" AND (state = ANY({q.arg(named)}::text[])"
                f" OR ({q.arg(None in sources)} AND state IS NULL))"
            )
        if try_number is not None:
            where += f" AND try_number = {q.arg(try_number)}"
        recorded = "', '".join(_RECORDED)
        rows = await self._fetch(
            f"""WITH upd AS (UPDATE task_instances SET {", ".join(sets)} WHERE {where}
                             RETURNING *),
                     hist AS (INSERT INTO task_instance_history ({_HISTORY_COLS})
                              SELECT {_HISTORY_VALUES.format(now=now_ph)} FROM upd
                              WHERE upd.try_number > 0 AND upd.state IN ('{recorded}')
                              {_HISTORY_UPSERT})
                SELECT id FROM upd""",
            *q.args,
        )
        return [r["id"] for r in rows]

    async def transition_ti(
        self,
        ti_id: UUID,
        to_state: TIState | None,
        *,
        expected: Collection[TIState | None] | None = None,
        try_number: int | None = None,
        now: datetime | None = None,
        next_retry_at: datetime | None = None,
        hostname: str | None = None,
        pid: int | None = None,
        executor: str | None = None,
        external_executor_id: str | None = None,
        rendered_fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Guarded TI state change: one UPDATE ... WHERE state = ANY(expected)."""
        to_state = TIState(to_state) if to_state is not None else None
        sources = _checked_sources(to_state, expected)
        extra = {
            "next_retry_at": next_retry_at,
            "hostname": hostname,
            "pid": pid,
            "executor": executor,
            "external_executor_id": external_executor_id,
            "rendered_fields": dict(rendered_fields) if rendered_fields is not None else None,
        }
        changed = await self._transition(
            [ti_id], to_state, sources, now or utcnow(), try_number=try_number, extra=extra
        )
        return bool(changed)

    async def transition_tis(
        self,
        ti_ids: Collection[UUID],
        to_state: TIState | None,
        *,
        expected: Collection[TIState | None] | None = None,
        now: datetime | None = None,
    ) -> list[UUID]:
        """Bulk guarded change (one statement); returns the ids that actually changed."""
        if not ti_ids:
            return []
        to_state = TIState(to_state) if to_state is not None else None
        sources = _checked_sources(to_state, expected)
        return await self._transition(ti_ids, to_state, sources, now or utcnow())

    async def heartbeat_ti(
        self, ti_id: UUID, try_number: int, *, now: datetime | None = None
    ) -> bool:
        """Record a heartbeat; False when that try is no longer running (the worker must stop)."""
        changed = await self._fetchval(
            "UPDATE task_instances SET last_heartbeat_at = $3 "
            "WHERE id = $1 AND try_number = $2 AND state = 'running' RETURNING id",
            ti_id,
            try_number,
            now or utcnow(),
        )
        return changed is not None

    async def list_stale_running_tis(
        self, older_than: datetime, limit: int = 100
    ) -> list[TaskInstance]:
        """Running TIs whose last heartbeat is older than ``older_than`` (reaper)."""
        rows = await self._fetch(
            f"{TI_SELECT} WHERE ti.state = 'running' AND ti.last_heartbeat_at < $1 "
            "ORDER BY ti.last_heartbeat_at LIMIT $2",
            older_than,
            limit,
        )
        return [ti_from_row(r) for r in rows]

    async def _force_ti_state(self, ti_id: UUID, target: str, now: datetime) -> bool:
        """A manual mark, guarded only against concurrent writers (state unchanged since read)."""
        state = await self._fetchval("SELECT state FROM task_instances WHERE id = $1", ti_id)
        current = TIState(state) if state is not None else None
        changed = await self._transition([ti_id], TIState(target), [current], now)
        return bool(changed)

    async def patch_ti(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        *,
        state: TIState | None = UNSET,
        note: str | None = UNSET,
        now: datetime | None = None,
    ) -> TaskInstance:
        """Mark a TI (success, failed, skipped) and/or set its note; Conflict on a lost race."""
        ti = await self.get_ti(tenant, dag_id, run_id, task_id, map_index)
        now = now or utcnow()
        async with self._atomic() as tx:
            if note is not UNSET:
                await tx._execute(
                    "UPDATE task_instances SET note = $2, updated_at = $3 WHERE id = $1",
                    ti.id,
                    note,
                    now,
                )
            if state is not UNSET and state != ti.state:
                if state is None or TIState(state) not in TI_MANUAL_MARKS:
                    raise InvalidArgument(
                        f"a task instance can be marked {sorted(s.value for s in TI_MANUAL_MARKS)}",
                        field="new_state",
                    )
                changed = await tx._transition([ti.id], TIState(state), [ti.state], now)
                if not changed:
                    raise Conflict(
                        f"task instance {task_id!r} changed state meanwhile; reload and retry"
                    )
            return await tx.get_ti_by_id(ti.id)


def _checked_sources(
    to_state: TIState | None, expected: Collection[TIState | None] | None
) -> frozenset[TIState | None]:
    allowed = ti_sources(to_state)
    if expected is None:
        return allowed
    sources = frozenset(TIState(s) if s is not None else None for s in expected)
    if not sources <= allowed:
        bad = sorted(str(s) for s in sources - allowed)
        target = to_state.value if to_state else "no status"
        raise InvalidArgument(
            f"task instances cannot move from {bad} to {target} (see TI_TRANSITIONS)",
            field="expected",
        )
    return sources
