"""Read-only projections the UI's private API needs and ``StoreAPI`` has no method for.

The UI asks for aggregates (the latest runs of fifty DAGs at once, state counts, the grid's
cells) that would cost one store call per DAG or per run through ``StoreAPI``. These are single
SQL statements over the store's own pool and tables (migrations/001_initial.sql), reusing the
store's row mapper for runs. They only read; every write goes through the store. Each function
takes the ``Store`` (it exposes ``pool``) and the tenant's name.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from leoflow.store.api import DagRun
from leoflow.store.runs import run_from_row

_TENANT = "(SELECT id FROM tenants WHERE name = $1)"

_LATEST_RUNS = f"""
SELECT r.*, $1::text AS tenant, v.version_number
FROM dags d
CROSS JOIN LATERAL (
    SELECT * FROM dag_runs x WHERE x.dag_pk = d.id ORDER BY x.run_after DESC, x.id DESC LIMIT $3
) r
JOIN dag_versions v ON v.id = r.dag_version_id
WHERE d.tenant_id = {_TENANT} AND d.dag_id = ANY($2::text[])
ORDER BY r.dag_id, r.run_after DESC, r.id DESC
"""

_DAG_STATS = f"""
WITH latest AS (
    SELECT DISTINCT ON (r.dag_pk) r.dag_pk, r.state
    FROM dag_runs r WHERE r.tenant_id = {_TENANT}
    ORDER BY r.dag_pk, r.run_after DESC, r.id DESC
)
SELECT count(*) FILTER (WHERE NOT d.is_paused) AS active,
       count(*) FILTER (WHERE l.state = 'failed') AS failed,
       count(*) FILTER (WHERE l.state = 'running') AS running,
       count(*) FILTER (WHERE l.state = 'queued') AS queued
FROM dags d LEFT JOIN latest l ON l.dag_pk = d.id
WHERE d.tenant_id = {_TENANT} AND NOT d.is_stale
"""

_RUN_STATE_COUNTS = f"""
SELECT r.state, count(*) AS n FROM dag_runs r
WHERE r.tenant_id = {_TENANT} AND r.run_after >= $2 AND r.run_after <= $3
GROUP BY r.state
"""

_TI_STATE_COUNTS = f"""
SELECT ti.state, count(*) AS n FROM task_instances ti
JOIN dag_runs r ON r.id = ti.dag_run_pk
WHERE r.tenant_id = {_TENANT} AND r.run_after >= $2 AND r.run_after <= $3
GROUP BY ti.state
"""

_RUN_VERSIONS = f"""
SELECT DISTINCT r.dag_version_id FROM dag_runs r
WHERE r.dag_pk = (SELECT id FROM dags WHERE tenant_id = {_TENANT} AND dag_id = $2)
  AND r.run_id = ANY($3::text[])
"""

# The grid's cells, built entirely in Postgres: one JSON array of LightGridTaskInstanceSummary
# per run, one entry per task (mapped TIs folded) and per task group (from the membership
# arrays $4-$6: version id, task id, group id). Building ~5,000 dicts, datetimes and JSON in
# Python costs ten times the query. $7 is Airflow's state priority, '' standing for "no status".
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_GRID_SUMMARIES = f"""
WITH ti AS (
    SELECT r.id AS run_pk, r.dag_version_id, v.version_number, t.task_id, t.map_index,
           coalesce(t.state, '') AS state, t.start_date, t.end_date
    FROM dag_runs r
    JOIN dag_versions v ON v.id = r.dag_version_id
    JOIN task_instances t ON t.dag_run_pk = r.id
    WHERE r.dag_pk = (SELECT id FROM dags WHERE tenant_id = {_TENANT} AND dag_id = $2)
      AND r.run_id = ANY($3::text[])
), folded AS (
    -- Mapped tasks and task groups: several TIs make one entry.
    SELECT run_pk, version_number, node_id, label, array_agg(state) AS states,
           min(start_date) AS s, max(end_date) AS e
    FROM (
        SELECT run_pk, version_number, task_id COLLATE "C" AS node_id, task_id AS label, state,
               start_date, end_date
        FROM ti WHERE map_index >= 0
        UNION ALL
        SELECT ti.run_pk, ti.version_number, m.group_id COLLATE "C",
               regexp_replace(m.group_id, '^.*[.]', ''), ti.state, ti.start_date, ti.end_date
        FROM ti JOIN unnest($4::uuid[], $5::text[], $6::text[]) AS m(version_id, task_id, group_id)
          ON m.version_id = ti.dag_version_id AND m.task_id = ti.task_id
    ) AS members
    GROUP BY run_pk, version_number, node_id, label
), entries AS (
    SELECT run_pk, false AS folded, task_id COLLATE "C" AS node_id, task_id AS label,
           nullif(state, '') AS state, NULL::json AS child_states, start_date AS s,
           end_date AS e, version_number
    FROM ti WHERE map_index < 0
    UNION ALL
    SELECT run_pk, true, node_id, label,
           nullif((SELECT p FROM unnest($7::text[]) WITH ORDINALITY AS x(p, i)
                   WHERE p = ANY(states) ORDER BY i LIMIT 1), ''),
           (SELECT json_object_agg(CASE WHEN st = '' THEN 'no_status' ELSE st END, c)
            FROM (SELECT st, count(*) AS c FROM unnest(states) AS st GROUP BY st) AS z),
           s, e, version_number
    FROM folded
)
SELECT (SELECT run_id FROM dag_runs WHERE id = run_pk) AS run_id,
       json_agg(json_build_object(
           'task_id', node_id, 'task_display_name', label, 'state', state,
           'child_states', child_states,
           'min_start_date', {_ISO.format("s")}, 'max_end_date', {_ISO.format("e")},
           'dag_version_number', version_number
       ) ORDER BY folded, node_id)::text AS cells
FROM entries GROUP BY run_pk
"""

_CALENDAR = f"""
SELECT date_trunc($3, COALESCE(r.logical_date, r.run_after)) AS day, r.state, count(*) AS n
FROM dag_runs r
WHERE r.tenant_id = {_TENANT} AND r.dag_id = $2
  AND ($4::timestamptz IS NULL OR COALESCE(r.logical_date, r.run_after) >= $4)
  AND ($5::timestamptz IS NULL OR COALESCE(r.logical_date, r.run_after) <= $5)
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def latest_runs(
    store: Any, tenant: str, dag_ids: Sequence[str], per_dag: int
) -> dict[str, list[DagRun]]:
    """The ``per_dag`` most recent runs (by run_after) of each DAG, in one statement."""
    out: dict[str, list[DagRun]] = {dag_id: [] for dag_id in dag_ids}
    if not dag_ids or per_dag <= 0:
        return out
    rows = await store.pool.fetch(_LATEST_RUNS, tenant, list(dag_ids), per_dag)
    for row in rows:
        out[row["dag_id"]].append(run_from_row(row))
    return out


async def dag_stats(store: Any, tenant: str) -> dict[str, int]:
    """DashboardDagStatsResponse: active DAGs, and DAGs whose latest run failed/runs/queues."""
    row = await store.pool.fetchrow(_DAG_STATS, tenant)
    return {
        "active_dag_count": row["active"],
        "failed_dag_count": row["failed"],
        "running_dag_count": row["running"],
        "queued_dag_count": row["queued"],
    }


async def state_counts(
    store: Any, tenant: str, start: datetime, end: datetime
) -> tuple[dict[str, int], dict[str | None, int]]:
    """Run and TI counts by state for runs whose run_after lies in [start, end]."""
    runs = await store.pool.fetch(_RUN_STATE_COUNTS, tenant, start, end)
    tis = await store.pool.fetch(_TI_STATE_COUNTS, tenant, start, end)
    return {r["state"]: r["n"] for r in runs}, {r["state"]: r["n"] for r in tis}


async def run_versions(store: Any, tenant: str, dag_id: str, run_ids: Collection[str]) -> set[UUID]:
    """The versions the given runs of a DAG are pinned to."""
    if not run_ids:
        return set()
    rows = await store.pool.fetch(_RUN_VERSIONS, tenant, dag_id, list(run_ids))
    return {row[0] for row in rows}


async def grid_summaries(
    store: Any,
    tenant: str,
    dag_id: str,
    run_ids: Collection[str],
    groups: Sequence[tuple[UUID, str, str]],
    priority: Sequence[str | None],
) -> dict[str, str]:
    """run_id -> the JSON text of its grid cells (runs without TIs are absent).

    ``groups`` lists (version id, task id, group id) for every task inside a group (nested
    groups: one row per enclosing group); ``priority`` is the state order groups aggregate by.
    """
    if not run_ids:
        return {}
    versions = [version for version, _, _ in groups]
    tasks = [task_id for _, task_id, _ in groups]
    group_ids = [group_id for _, _, group_id in groups]
    rows = await store.pool.fetch(
        _GRID_SUMMARIES,
        tenant,
        dag_id,
        list(run_ids),
        versions,
        tasks,
        group_ids,
        ["" if state is None else state for state in priority],
    )
    return {row["run_id"]: row["cells"] for row in rows}


async def calendar_counts(
    store: Any,
    tenant: str,
    dag_id: str,
    granularity: str,
    low: datetime | None,
    high: datetime | None,
) -> list[tuple[datetime, str, int]]:
    """(hour or day, run state, count) of a DAG's runs by logical date (run_after if none)."""
    unit = "hour" if granularity == "hourly" else "day"
    rows = await store.pool.fetch(_CALENDAR, tenant, dag_id, unit, low, high)
    return [(r["day"], r["state"], r["n"]) for r in rows]


def version_ids(runs: Sequence[DagRun]) -> set[UUID]:
    """The distinct versions these runs are pinned to."""
    return {run.dag_version_id for run in runs}
