"""DAG runs: creation (pinned to a version), listing, marking and guarded transitions."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from leoflow.errors import Conflict, NotFound
from leoflow.store.api import (
    ALL,
    UNSET,
    DagRun,
    DagRunState,
    DagRunType,
    InvalidArgument,
    Page,
    TaskInstance,
    run_sources,
)
from leoflow.store.db import Query, Repo, order_clause, require, utcnow

RUN_SELECT = """
SELECT r.*, t.name AS tenant, v.version_number
FROM dag_runs r
JOIN tenants t ON t.id = r.tenant_id
JOIN dag_versions v ON v.id = r.dag_version_id
"""

_RUN_ORDER = {
    "id": "id",
    "run_id": "run_id",
    "dag_run_id": "run_id",
    "dag_id": "dag_id",
    "state": "state",
    "run_type": "run_type",
    "logical_date": "logical_date",
    "run_after": "run_after",
    "start_date": "start_date",
    "end_date": "end_date",
    "queued_at": "queued_at",
    "updated_at": "updated_at",
    "data_interval_start": "data_interval_start",
    "data_interval_end": "data_interval_end",
    "last_scheduling_decision": "last_scheduling_decision",
    "duration": "(end_date - start_date)",
    "conf": "conf::text",
}


def run_from_row(row: asyncpg.Record) -> DagRun:
    """A DagRun from a row of RUN_SELECT."""
    return DagRun(
        id=row["id"],
        tenant=row["tenant"],
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        dag_version_id=row["dag_version_id"],
        version_number=row["version_number"],
        state=DagRunState(row["state"]),
        run_type=DagRunType(row["run_type"]),
        logical_date=row["logical_date"],
        data_interval_start=row["data_interval_start"],
        data_interval_end=row["data_interval_end"],
        run_after=row["run_after"],
        conf=row["conf"] or {},
        note=row["note"],
        triggered_by=row["triggered_by"],
        triggering_user_name=row["triggering_user_name"],
        queued_at=row["queued_at"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        last_scheduling_decision=row["last_scheduling_decision"],
        clear_number=row["clear_number"],
        updated_at=row["updated_at"],
    )


def _run_stamps(to_state: DagRunState, q: Query, now: datetime) -> list[str]:
    """SET fragments stamping times for a run entering ``to_state``."""
    at = q.arg(now)
    sets = [f"state = {q.arg(to_state.value)}", f"updated_at = {at}"]
    if to_state is DagRunState.RUNNING:
        sets += [f"start_date = COALESCE(start_date, {at})", "end_date = NULL"]
    elif to_state is DagRunState.QUEUED:
        sets += [f"queued_at = {at}", "start_date = NULL", "end_date = NULL"]
    else:
        sets += [f"end_date = {at}", f"start_date = COALESCE(start_date, {at})"]
    return sets


class RunsRepo(Repo):
    """DAG runs."""

    async def create_run(
        self,
        tenant: str,
        dag_id: str,
        *,
        run_id: str | None = None,
        logical_date: datetime | None = UNSET,
        data_interval_start: datetime | None = None,
        data_interval_end: datetime | None = None,
        run_after: datetime | None = None,
        conf: Mapping[str, Any] | None = None,
        note: str | None = None,
        run_type: DagRunType = DagRunType.MANUAL,
        triggered_by: str | None = None,
        triggering_user_name: str | None = None,
        state: DagRunState = DagRunState.QUEUED,
        dag_version_id: UUID | None = None,
        now: datetime | None = None,
    ) -> DagRun:
        """Create a run pinned to the current (or given) version, and its task instances."""
        tid = await self._tenant_id(tenant)
        now = now or utcnow()
        if logical_date is UNSET:
            logical_date = now
        run_after = run_after or logical_date or now
        if logical_date is not None and data_interval_start is None:
            data_interval_start = data_interval_end = logical_date
        if conf is not None and not isinstance(conf, Mapping):
            raise InvalidArgument("conf must be a JSON object", field="conf")
        run_type = DagRunType(run_type)
        run_id = run_id or f"{run_type.value}__{(logical_date or run_after).isoformat()}"
        async with self._atomic() as tx:
            dag = await tx._fetchrow(
                "SELECT id, current_version_id FROM dags WHERE tenant_id = $1 AND dag_id = $2",
                tid,
                dag_id,
            )
            dag = require(dag, "DAG", dag_id=dag_id)
            version_id = dag_version_id or dag["current_version_id"]
            if version_id is None:
                raise Conflict(f"DAG {dag_id!r} has no registered version to run")
            if dag_version_id is not None:
                owner = await tx._fetchval(
                    "SELECT dag_pk FROM dag_versions WHERE id = $1", dag_version_id
                )
                if owner != dag["id"]:
                    raise NotFound(f"version {dag_version_id} is not a version of {dag_id!r}")
            run_pk = await tx._fetchval(
                """INSERT INTO dag_runs (tenant_id, dag_pk, dag_id, run_id, dag_version_id, state,
                     run_type, logical_date, data_interval_start, data_interval_end, run_after,
                     conf, note, triggered_by, triggering_user_name, queued_at, start_date,
                     created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16, $17, $16, $16)
                   RETURNING id""",
                tid,
                dag["id"],
                dag_id,
                run_id,
                version_id,
                DagRunState(state).value,
                run_type.value,
                logical_date,
                data_interval_start,
                data_interval_end,
                run_after,
                dict(conf or {}),
                note,
                triggered_by,
                triggering_user_name,
                now,
                now if state is DagRunState.RUNNING else None,
            )
            await tx.create_task_instances(run_pk)
            return await tx.get_run_by_id(run_pk)

    async def get_run(self, tenant: str, dag_id: str, run_id: str) -> DagRun:
        """The run (NotFound)."""
        tid = await self._tenant_id(tenant)
        row = await self._fetchrow(
            f"{RUN_SELECT} WHERE r.tenant_id = $1 AND r.dag_id = $2 AND r.run_id = $3",
            tid,
            dag_id,
            run_id,
        )
        return run_from_row(require(row, "DAG run", dag_id=dag_id, run_id=run_id))

    async def get_run_by_id(self, run_pk: int) -> DagRun:
        """The run by DagRun.id (NotFound)."""
        row = await self._fetchrow(f"{RUN_SELECT} WHERE r.id = $1", run_pk)
        return run_from_row(require(row, "DAG run", id=run_pk))

    async def list_runs(
        self,
        tenant: str,
        dag_id: str = ALL,
        *,
        run_id_pattern: str | None = None,
        states: Collection[DagRunState] | None = None,
        run_types: Collection[DagRunType] | None = None,
        dag_ids: Collection[str] | None = None,
        logical_date_gte: datetime | None = None,
        logical_date_lte: datetime | None = None,
        start_date_gte: datetime | None = None,
        start_date_lte: datetime | None = None,
        end_date_gte: datetime | None = None,
        end_date_lte: datetime | None = None,
        run_after_gte: datetime | None = None,
        run_after_lte: datetime | None = None,
        updated_at_gte: datetime | None = None,
        updated_at_lte: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[DagRun]:
        """Runs of one DAG or all ("~")."""
        order = order_clause(order_by, _RUN_ORDER, "id ASC")
        q = Query(await self._tenant_id(tenant))
        q.where("r.tenant_id = $1")
        if dag_id != ALL:
            await self._require_dag(q.args[0], dag_id)
            q.where("r.dag_id = {}", dag_id)
        if dag_ids is not None:
            q.where("r.dag_id = ANY({}::text[])", list(dag_ids))
        q.like("r.run_id", run_id_pattern)
        if states:
            q.where("r.state = ANY({}::text[])", [DagRunState(s).value for s in states])
        if run_types:
            q.where("r.run_type = ANY({}::text[])", [DagRunType(s).value for s in run_types])
        for column, gte, lte in (
            ("logical_date", logical_date_gte, logical_date_lte),
            ("start_date", start_date_gte, start_date_lte),
            ("end_date", end_date_gte, end_date_lte),
            ("run_after", run_after_gte, run_after_lte),
            ("updated_at", updated_at_gte, updated_at_lte),
        ):
            q.where_if(gte, f"r.{column} >= {{}}")
            q.where_if(lte, f"r.{column} <= {{}}")
        rows, total = await self._paged(f"{RUN_SELECT} WHERE {q.sql}", q, order, limit, offset)
        return Page([run_from_row(r) for r in rows], total)

    async def _require_dag(self, tid: int, dag_id: str) -> int:
        pk = await self._fetchval(
            "SELECT id FROM dags WHERE tenant_id = $1 AND dag_id = $2", tid, dag_id
        )
        if pk is None:
            raise NotFound(f"DAG {dag_id!r} not found")
        return pk

    async def patch_run(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        *,
        state: DagRunState | None = None,
        note: str | None = UNSET,
        now: datetime | None = None,
    ) -> DagRun:
        """Mark a run (queued/success/failed) and/or set its note."""
        run = await self.get_run(tenant, dag_id, run_id)
        now = now or utcnow()
        async with self._atomic() as tx:
            if note is not UNSET:
                await tx._execute(
                    "UPDATE dag_runs SET note = $2, updated_at = $3 WHERE id = $1",
                    run.id,
                    note,
                    now,
                )
            if state is not None and DagRunState(state) is not run.state:
                state = DagRunState(state)
                if state is DagRunState.RUNNING:
                    raise InvalidArgument(
                        "a run can be marked queued, success or failed", field="state"
                    )
                q = Query(run.id, run.state.value)
                sets = _run_stamps(state, q, now)
                changed = await tx._fetchval(
                    f"UPDATE dag_runs SET {', '.join(sets)} WHERE id = $1 AND state = $2 RETURNING id",
                    *q.args,
                )
                if changed is None:
                    raise Conflict(f"run {run_id!r} changed state meanwhile; reload and retry")
                if state in (DagRunState.SUCCESS, DagRunState.FAILED):
                    await tx._finish_unfinished_tis(run.id, state, now)
            return await tx.get_run_by_id(run.id)

    async def _finish_unfinished_tis(self, run_pk: int, state: DagRunState, now: datetime) -> None:
        """Airflow's mark-run semantics for the run's unfinished task instances."""
        ids = await self._fetch(
            "SELECT id, state FROM task_instances WHERE dag_run_pk = $1 AND (state IS NULL OR "
            "state NOT IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed')) "
            "FOR UPDATE",
            run_pk,
        )
        for row in ids:
            if state is DagRunState.SUCCESS:
                target = "success"
            elif row["state"] in ("running", "restarting", "deferred"):
                target = "failed"
            else:
                target = "skipped"
            await self._force_ti_state(row["id"], target, now)

    async def delete_run(self, tenant: str, dag_id: str, run_id: str) -> None:
        """Delete a run with its task instances, history and XCom index (NotFound)."""
        tid = await self._tenant_id(tenant)
        status = await self._execute(
            "DELETE FROM dag_runs WHERE tenant_id = $1 AND dag_id = $2 AND run_id = $3",
            tid,
            dag_id,
            run_id,
        )
        if status.endswith(" 0"):
            raise NotFound(f"DAG run {run_id!r} of {dag_id!r} not found")

    async def clear_run(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        *,
        only_failed: bool = False,
        dry_run: bool = False,
        run_on_latest_version: bool = False,
        now: datetime | None = None,
    ) -> list[TaskInstance]:
        """Clear a run's task instances (all, or failed ones) and re-queue it; see clear_tis."""
        await self.get_run(tenant, dag_id, run_id)
        return await self.clear_tis(
            tenant,
            dag_id,
            run_id=run_id,
            only_failed=only_failed,
            reset_dag_runs=True,
            run_on_latest_version=run_on_latest_version,
            dry_run=dry_run,
            now=now,
        )

    async def list_active_runs(
        self, *, limit: int = 1000, states: Collection[DagRunState] | None = None
    ) -> list[DagRun]:
        """Queued and running runs of every tenant, oldest queued_at first (scheduler)."""
        wanted = [
            DagRunState(s).value for s in (states or (DagRunState.QUEUED, DagRunState.RUNNING))
        ]
        rows = await self._fetch(
            f"{RUN_SELECT} WHERE r.state IN ('queued', 'running') AND r.state = ANY($1::text[]) "
            "ORDER BY r.queued_at, r.id LIMIT $2",
            wanted,
            limit,
        )
        return [run_from_row(r) for r in rows]

    async def count_active_runs(self, dag_pks: Collection[int]) -> dict[int, int]:
        """Dag.id -> number of running runs (for max_active_runs)."""
        rows = await self._fetch(
            "SELECT dag_pk, count(*) AS n FROM dag_runs WHERE state = 'running' "
            "AND dag_pk = ANY($1::bigint[]) GROUP BY dag_pk",
            list(dag_pks),
        )
        counts = dict.fromkeys(dag_pks, 0)
        counts.update({r["dag_pk"]: r["n"] for r in rows})
        return counts

    async def transition_run(
        self,
        run_pk: int,
        to_state: DagRunState,
        *,
        expected: Collection[DagRunState] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Guarded run state change; False when the run was not in an expected state."""
        to_state = DagRunState(to_state)
        allowed = run_sources(to_state)
        sources = allowed if expected is None else frozenset(DagRunState(s) for s in expected)
        if not sources <= allowed:
            bad = sorted(s.value for s in sources - allowed)
            raise InvalidArgument(
                f"runs cannot move from {bad} to {to_state.value}", field="expected"
            )
        q = Query(run_pk, [s.value for s in sources])
        sets = _run_stamps(to_state, q, now or utcnow())
        changed = await self._fetchval(
            f"UPDATE dag_runs SET {', '.join(sets)} WHERE id = $1 AND state = ANY($2::text[]) "
            "RETURNING id",
            *q.args,
        )
        return changed is not None

    async def touch_run(self, run_pk: int, now: datetime | None = None) -> None:
        """Record the scheduler's last_scheduling_decision for a run."""
        await self._execute(
            "UPDATE dag_runs SET last_scheduling_decision = $2 WHERE id = $1",
            run_pk,
            now or utcnow(),
        )
