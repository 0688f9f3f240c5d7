"""Clearing task instances with Airflow's semantics (clearTaskInstances, dagRun clear)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from leoflow.errors import NotFound
from leoflow.spec import DagSpec
from leoflow.store.api import TaskInstance
from leoflow.store.db import Query, Repo, utcnow
from leoflow.store.tis import _HISTORY_COLS, _HISTORY_VALUES


def _closure(start: set[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        for nxt in edges.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def expand_task_ids(
    spec: DagSpec, task_ids: set[str], *, upstream: bool, downstream: bool
) -> set[str]:
    """``task_ids`` plus their transitive upstream and/or downstream tasks in ``spec``."""
    known = {t.task_id for t in spec.tasks}
    base = task_ids & known
    out = set(base)
    if upstream:
        out |= _closure(base, {t.task_id: list(t.upstream) for t in spec.tasks})
    if downstream:
        out |= _closure(base, spec.downstream())
    return out


class ClearRepo(Repo):
    """clear_tis: reset task instances for new tries, keeping the try history."""

    async def clear_tis(
        self,
        tenant: str,
        dag_id: str,
        *,
        run_id: str | None = None,
        task_ids: Sequence[str | tuple[str, int]] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        only_failed: bool = True,
        only_running: bool = False,
        include_upstream: bool = False,
        include_downstream: bool = False,
        include_past: bool = False,
        include_future: bool = False,
        reset_dag_runs: bool = True,
        run_on_latest_version: bool = False,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> list[TaskInstance]:
        """Airflow's clearTaskInstances; returns the TIs cleared (or that would be, on dry_run)."""
        tid = await self._tenant_id(tenant)
        now = now or utcnow()
        async with self._atomic() as tx:
            dag = await tx._fetchrow(
                "SELECT id, current_version_id FROM dags WHERE tenant_id = $1 AND dag_id = $2",
                tid,
                dag_id,
            )
            if dag is None:
                raise NotFound(f"DAG {dag_id!r} not found")
            runs = await tx._target_runs(
                dag["id"], run_id, start_date, end_date, include_past, include_future
            )
            ids = await tx._select_clearable(
                runs, task_ids, include_upstream, include_downstream, only_failed, only_running
            )
            if dry_run or not ids:
                return await tx._tis_by_ids(ids)
            await tx._reset_tis(ids, now)
            run_pks = {r for r, _ in await tx._runs_of(ids)}
            if run_on_latest_version and dag["current_version_id"] is not None:
                await tx._rebind(run_pks, dag["current_version_id"])
            if reset_dag_runs:
                await tx._execute(
                    """UPDATE dag_runs SET state = 'queued', queued_at = $2, start_date = NULL,
                         end_date = NULL, last_scheduling_decision = NULL,
                         clear_number = clear_number + 1, updated_at = $2
                       WHERE id = ANY($1::bigint[])""",
                    list(run_pks),
                    now,
                )
            return await tx._tis_by_ids(ids)

    async def _target_runs(
        self,
        dag_pk: int,
        run_id: str | None,
        start_date: datetime | None,
        end_date: datetime | None,
        include_past: bool,
        include_future: bool,
    ) -> list[tuple[int, UUID]]:
        """(run pk, pinned version id) of every run the clear applies to."""
        q = Query(dag_pk)
        q.where("dag_pk = $1")
        when = "COALESCE(logical_date, run_after)"
        if run_id is not None:
            anchor = await self._fetchval(
                f"SELECT {when} FROM dag_runs WHERE dag_pk = $1 AND run_id = $2", dag_pk, run_id
            )
            if anchor is None:
                raise NotFound(f"DAG run {run_id!r} not found")
            parts = [f"run_id = {q.arg(run_id)}"]
            if include_past:
                parts.append(f"{when} < {q.arg(anchor)}")
            if include_future:
                parts.append(f"{when} > {q.arg(anchor)}")
            q.conds.append("(" + " OR ".join(parts) + ")")
        q.where_if(start_date, when + " >= {}")
        q.where_if(end_date, when + " <= {}")
        rows = await self._fetch(
            f"SELECT id, dag_version_id FROM dag_runs WHERE {q.sql} ORDER BY id FOR UPDATE",
            *q.args,
        )
        return [(r["id"], r["dag_version_id"]) for r in rows]

    async def _select_clearable(
        self,
        runs: list[tuple[int, UUID]],
        task_ids: Sequence[str | tuple[str, int]] | None,
        include_upstream: bool,
        include_downstream: bool,
        only_failed: bool,
        only_running: bool,
    ) -> list[UUID]:
        """Ids of the TIs to clear, locked FOR UPDATE."""
        plain = {t for t in task_ids or () if isinstance(t, str)}
        exact = [(t[0], int(t[1])) for t in task_ids or () if not isinstance(t, str)]
        named = plain | {t for t, _ in exact}
        ids: list[UUID] = []
        for run_pk, version_id in runs:
            q = Query(run_pk)
            q.where("dag_run_pk = $1")
            if task_ids is not None:
                spec = await self.get_spec(version_id)
                grown = expand_task_ids(
                    spec, named, upstream=include_upstream, downstream=include_downstream
                )
                # A (task_id, map_index) pair clears that index; its relatives clear entirely.
                whole = plain | (grown - named)
                pairs = [f"(task_id = {q.arg(t)} AND map_index = {q.arg(m)})" for t, m in exact]
                pairs.append(f"task_id = ANY({q.arg(sorted(whole))}::text[])")
                q.conds.append("(" + " OR ".join(pairs) + ")")
            if only_failed:
                q.where("state IN ('failed', 'upstream_failed')")
            if only_running:
                q.where("state = 'running'")
            rows = await self._fetch(
                f"SELECT id FROM task_instances WHERE {q.sql} ORDER BY task_id, map_index "
                "FOR UPDATE",
                *q.args,
            )
            ids.extend(r["id"] for r in rows)
        return ids

    async def _reset_tis(self, ids: list[UUID], now: datetime) -> None:
        """Record each TI's try, then reset it; running TIs become restarting."""
        await self._execute(
            f"""INSERT INTO task_instance_history ({_HISTORY_COLS})
                SELECT {_HISTORY_VALUES.format(now="$2")} FROM task_instances
                WHERE id = ANY($1::uuid[]) AND try_number > 0 AND state IS NOT NULL
                ON CONFLICT (ti_id, try_number) DO NOTHING""",
            ids,
            now,
        )
        # max_tries grows so the task's retries count again from its next try (Airflow).
        await self._execute(
            """UPDATE task_instances ti SET
                 state = CASE WHEN ti.state = 'running' THEN 'restarting' END,
                 max_tries = GREATEST(ti.max_tries, ti.try_number + retries.n),
                 start_date = CASE WHEN ti.state = 'running' THEN ti.start_date END,
                 end_date = NULL, duration = NULL, queued_dttm = NULL, scheduled_dttm = NULL,
                 next_retry_at = NULL,
                 hostname = CASE WHEN ti.state = 'running' THEN ti.hostname END,
                 pid = CASE WHEN ti.state = 'running' THEN ti.pid END,
                 last_heartbeat_at = CASE WHEN ti.state = 'running' THEN ti.last_heartbeat_at END,
                 external_executor_id =
                   CASE WHEN ti.state = 'running' THEN ti.external_executor_id END,
                 updated_at = $2
               FROM (SELECT x.id, COALESCE((
                       SELECT (t ->> 'retries')::int
                       FROM dag_versions v, jsonb_array_elements(v.spec -> 'tasks') AS t
                       WHERE v.id = x.dag_version_id AND t ->> 'task_id' = x.task_id), 0) AS n
                     FROM task_instances x WHERE x.id = ANY($1::uuid[])) AS retries
               WHERE ti.id = retries.id""",
            ids,
            now,
        )

    async def _runs_of(self, ids: list[UUID]) -> list[tuple[int, UUID]]:
        rows = await self._fetch(
            "SELECT DISTINCT dag_run_pk, dag_version_id FROM task_instances "
            "WHERE id = ANY($1::uuid[])",
            ids,
        )
        return [(r["dag_run_pk"], r["dag_version_id"]) for r in rows]

    async def _rebind(self, run_pks: set[int], version_id: UUID) -> None:
        """Point runs (and their TIs) at another version; add TIs for tasks new in it."""
        await self._execute(
            "UPDATE dag_runs SET dag_version_id = $2 WHERE id = ANY($1::bigint[])",
            list(run_pks),
            version_id,
        )
        await self._execute(
            "UPDATE task_instances SET dag_version_id = $2 WHERE dag_run_pk = ANY($1::bigint[])",
            list(run_pks),
            version_id,
        )
        for run_pk in run_pks:
            await self.create_task_instances(run_pk)
