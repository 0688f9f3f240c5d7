"""DAGs and their immutable versions (deduplicated by content_hash)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

import asyncpg

from leoflow.errors import Conflict, NotFound, SpecError
from leoflow.spec import DagSpec, compute_hash, finalize
from leoflow.store.api import ALL, Dag, DagRunState, DagSource, DagVersion, Page
from leoflow.store.db import Query, Repo, order_clause, require

_DAG_SELECT = """
SELECT d.*, t.name AS tenant, v.version_number AS current_version_number,
       v.label AS current_version_label, v.content_hash AS content_hash,
       EXISTS (SELECT 1 FROM import_errors ie
               WHERE ie.tenant_id = d.tenant_id AND ie.filename = d.fileloc) AS has_import_errors,
       lr.state AS last_run_state, lr.start_date AS last_run_start_date
FROM dags d
JOIN tenants t ON t.id = d.tenant_id
LEFT JOIN dag_versions v ON v.id = d.current_version_id
LEFT JOIN LATERAL (SELECT r.state, r.start_date FROM dag_runs r WHERE r.dag_pk = d.id
                   ORDER BY r.run_after DESC, r.id DESC LIMIT 1) lr ON TRUE
"""

_DAG_ORDER = {
    "dag_id": "dag_id",
    "dag_display_name": "dag_id",
    "next_dagrun": "next_dagrun_logical_date",
    "next_dagrun_logical_date": "next_dagrun_logical_date",
    "next_dagrun_run_after": "next_dagrun_run_after",
    "last_parsed_time": "last_parsed_time",
    "owner": "owner",
    "owners": "owner",
    "is_paused": "is_paused",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_run_state": "last_run_state",
    "last_run_start_date": "last_run_start_date",
}

_VERSION_COLS = (
    "v.id, t.name AS tenant, d.dag_id, v.version_number, v.label, v.content_hash, v.image, "
    "v.created_at, v.created_by"
)
_VERSION_ORDER = {
    "version_number": "version_number",
    "created_at": "created_at",
    "dag_id": "dag_id",
    "id": "id",
}


def timetable_summary(spec: DagSpec) -> str | None:
    """What Airflow shows as the schedule: the cron text, a preset, or a timedelta."""
    sched = spec.schedule
    if sched is None:
        return None
    if sched.type == "cron":
        return sched.expression
    if sched.type == "delta":
        return str(timedelta(seconds=sched.seconds))
    return f"@{sched.type}"


def dag_from_row(row: asyncpg.Record) -> Dag:
    """A Dag from a row of _DAG_SELECT."""
    return Dag(
        id=row["id"],
        tenant=row["tenant"],
        dag_id=row["dag_id"],
        is_paused=row["is_paused"],
        is_stale=row["is_stale"],
        description=row["description"],
        owner=row["owner"],
        tags=list(row["tags"]),
        schedule=row["schedule"],
        timetable_summary=row["timetable_summary"],
        timezone=row["timezone"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        catchup=row["catchup"],
        max_active_runs=row["max_active_runs"],
        max_active_tasks=row["max_active_tasks"],
        fileloc=row["fileloc"],
        current_version_id=row["current_version_id"],
        current_version_number=row["current_version_number"],
        current_version_label=row["current_version_label"],
        content_hash=row["content_hash"],
        last_parsed_time=row["last_parsed_time"],
        next_dagrun_logical_date=row["next_dagrun_logical_date"],
        next_dagrun_data_interval_start=row["next_dagrun_data_interval_start"],
        next_dagrun_data_interval_end=row["next_dagrun_data_interval_end"],
        next_dagrun_run_after=row["next_dagrun_run_after"],
        has_import_errors=row["has_import_errors"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _version(row: asyncpg.Record) -> DagVersion:
    return DagVersion(
        id=row["id"],
        tenant=row["tenant"],
        dag_id=row["dag_id"],
        version_number=row["version_number"],
        label=row["label"],
        content_hash=row["content_hash"],
        image=row["image"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def _checked(spec: DagSpec) -> DagSpec:
    digest = compute_hash(spec)
    if not spec.content_hash:
        return finalize(spec, spec.version or None)
    if spec.content_hash != digest:
        raise SpecError(
            "content_hash does not match the document",
            field="content_hash",
            hint="recompile with `leoflow compile` instead of editing dag.json",
        )
    return spec


class DagsRepo(Repo):
    """Registration, listing and lifecycle of DAGs and their versions."""

    async def register_version(
        self, tenant: str, spec: DagSpec, created_by: str | None = None
    ) -> tuple[DagVersion, bool]:
        """Register a compiled spec; (version, True) when new (201), (existing, False) (200)."""
        spec = _checked(spec)
        tid = await self._tenant_id(tenant)
        async with self._atomic() as tx:
            # The upsert locks the dags row, so concurrent pushes of one DAG serialize here.
            dag_pk = await tx._fetchval(
                "INSERT INTO dags (tenant_id, dag_id, is_paused) VALUES ($1, $2, $3) "
                "ON CONFLICT (tenant_id, dag_id) DO UPDATE SET updated_at = now() RETURNING id",
                tid,
                spec.dag_id,
                bool(spec.is_paused_upon_creation),
            )
            existing = await tx._fetchval(
                "SELECT id FROM dag_versions WHERE dag_pk = $1 AND content_hash = $2",
                dag_pk,
                spec.content_hash,
            )
            created = existing is None
            if created:
                existing = await tx._fetchval(
                    "INSERT INTO dag_versions (dag_pk, version_number, label, content_hash, spec, "
                    "image, created_by) SELECT $1, COALESCE(MAX(version_number), 0) + 1, $2, $3, "
                    "$4, $5, $6 FROM dag_versions WHERE dag_pk = $1 RETURNING id",
                    dag_pk,
                    spec.version,
                    spec.content_hash,
                    spec.model_dump(mode="json", by_alias=True),
                    spec.runtime.image,
                    created_by,
                )
            await tx._make_current(dag_pk, existing, spec)
            row = await tx._fetchrow(
                f"SELECT {_VERSION_COLS} FROM dag_versions v JOIN dags d ON d.id = v.dag_pk "
                "JOIN tenants t ON t.id = d.tenant_id WHERE v.id = $1",
                existing,
            )
        return _version(row), created

    async def _make_current(self, dag_pk: int, version_id: UUID, spec: DagSpec) -> None:
        await self._execute(
            """UPDATE dags SET current_version_id = $2, description = $3, owner = $4, tags = $5,
                 schedule = $6, timetable_summary = $7, timezone = $8, start_date = $9,
                 end_date = $10, catchup = $11, max_active_runs = $12, max_active_tasks = $13,
                 fileloc = $14, is_stale = false, last_parsed_time = now(), updated_at = now()
               WHERE id = $1""",
            dag_pk,
            version_id,
            spec.description,
            spec.owner,
            sorted(set(spec.tags)),
            spec.schedule.model_dump(mode="json") if spec.schedule else None,
            timetable_summary(spec),
            spec.timezone,
            spec.start_date,
            spec.end_date,
            spec.catchup,
            spec.max_active_runs,
            spec.max_active_tasks,
            spec.source_file,
        )

    async def get_dag(self, tenant: str, dag_id: str) -> Dag:
        """The DAG (NotFound)."""
        tid = await self._tenant_id(tenant)
        row = await self._fetchrow(
            f"{_DAG_SELECT} WHERE d.tenant_id = $1 AND d.dag_id = $2", tid, dag_id
        )
        return dag_from_row(require(row, "DAG", dag_id=dag_id))

    def _dag_filters(
        self,
        q: Query,
        *,
        dag_id_pattern: str | None = None,
        dag_ids: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        tags_match_mode: Literal["any", "all"] = "any",
        owners: Collection[str] | None = None,
        paused: bool | None = None,
        exclude_stale: bool = True,
    ) -> None:
        q.like("d.dag_id", dag_id_pattern)
        if dag_ids is not None:
            q.where("d.dag_id = ANY({}::text[])", list(dag_ids))
        if tags:
            op = "@>" if tags_match_mode == "all" else "&&"
            q.where("d.tags " + op + " {}::text[]", list(tags))
        if owners:
            q.where("d.owner = ANY({}::text[])", list(owners))
        q.where_if(paused, "d.is_paused = {}")
        if exclude_stale:
            q.where("NOT d.is_stale")

    async def list_dags(
        self,
        tenant: str,
        *,
        dag_id_pattern: str | None = None,
        dag_ids: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        tags_match_mode: Literal["any", "all"] = "any",
        owners: Collection[str] | None = None,
        paused: bool | None = None,
        exclude_stale: bool = True,
        last_run_state: DagRunState | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "dag_id",
        favorite_of: str | None = None,
        is_favorite: bool | None = None,
    ) -> Page[Dag]:
        """DAGs matching the filters; dag_id_pattern is a SQL LIKE pattern as in Airflow.

        ``is_favorite`` keeps the DAGs ``favorite_of`` (a username) marked (True) or did not
        mark (False); it is ignored without ``favorite_of``.
        """
        order = order_clause(order_by, _DAG_ORDER, "dag_id ASC, id ASC")
        q = Query(await self._tenant_id(tenant))
        q.where("d.tenant_id = $1")
        if favorite_of is not None and is_favorite is not None:
            q.where(
                ("" if is_favorite else "NOT ")
                + "EXISTS (SELECT 1 FROM dag_favorites f WHERE f.dag_pk = d.id AND f.username = {})",
                favorite_of,
            )
        self._dag_filters(
            q,
            dag_id_pattern=dag_id_pattern,
            dag_ids=dag_ids,
            tags=tags,
            tags_match_mode=tags_match_mode,
            owners=owners,
            paused=paused,
            exclude_stale=exclude_stale,
        )
        if last_run_state is not None or "last_run" in (order_by or ""):
            if last_run_state is not None:
                q.where("lr.state = {}", DagRunState(last_run_state).value)
            rows, total = await self._paged(f"{_DAG_SELECT} WHERE {q.sql}", q, order, limit, offset)
            return Page([dag_from_row(r) for r in rows], total)
        # One round trip: page the bare ids on the (tenant_id, dag_id) index, decorate only
        # those (the LATERAL last-run lookup and the import-error check then run for at most
        # ``limit`` DAGs), and count the matches in a scalar subquery. The count is needed
        # even for an empty page; a window count over the full rows cost twice as much.
        where = q.sql
        page = q.page(limit, offset)
        rows = await self._fetch(
            f"SELECT (SELECT count(*) FROM dags d WHERE {where}) AS _total, _s.* FROM ("
            f"{_DAG_SELECT} WHERE d.id IN (SELECT _i.id FROM (SELECT d.* FROM dags d "
            f"WHERE {where}) AS _i {order} {page})) AS _s {order}",
            *q.args,
        )
        if not rows:
            if offset == 0:
                return Page([], 0)
            total = await self._fetchval(f"SELECT count(*) FROM dags d WHERE {where}", *q.args[:-2])
            return Page([], total)
        return Page([dag_from_row(r) for r in rows], rows[0]["_total"])

    async def set_dag_favorite(
        self, tenant: str, username: str, dag_id: str, *, favorite: bool
    ) -> None:
        """Mark (idempotent) or unmark a DAG as ``username``'s favorite.

        NotFound for an unknown DAG; Conflict when unmarking a DAG that is not marked
        (Airflow's 409 "Dag is not marked as favorite").
        """
        dag_pk = await self._fetchval(
            "SELECT id FROM dags WHERE tenant_id = $1 AND dag_id = $2",
            await self._tenant_id(tenant),
            dag_id,
        )
        if dag_pk is None:
            raise NotFound(f"DAG {dag_id!r} not found", field="dag_id")
        if favorite:
            await self._execute(
                "INSERT INTO dag_favorites (dag_pk, username) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                dag_pk,
                username,
            )
            return
        status = await self._execute(
            "DELETE FROM dag_favorites WHERE dag_pk = $1 AND username = $2", dag_pk, username
        )
        if status.endswith(" 0"):
            raise Conflict(f"Dag {dag_id!r} is not marked as favorite", field="dag_id")

    async def list_favorite_dag_ids(self, tenant: str, username: str) -> set[str]:
        """The dag_ids ``username`` marked as favorite (empty for an unknown user)."""
        rows = await self._fetch(
            "SELECT d.dag_id FROM dag_favorites f JOIN dags d ON d.id = f.dag_pk "
            "WHERE d.tenant_id = $1 AND f.username = $2",
            await self._tenant_id(tenant),
            username,
        )
        return {r["dag_id"] for r in rows}

    async def is_dag_favorite(self, tenant: str, username: str, dag_id: str) -> bool:
        """Whether ``username`` marked ``dag_id`` as favorite."""
        return bool(
            await self._fetchval(
                "SELECT EXISTS (SELECT 1 FROM dag_favorites f JOIN dags d ON d.id = f.dag_pk "
                "WHERE d.tenant_id = $1 AND d.dag_id = $3 AND f.username = $2)",
                await self._tenant_id(tenant),
                username,
                dag_id,
            )
        )

    async def patch_dag(self, tenant: str, dag_id: str, *, is_paused: bool) -> Dag:
        """Pause or unpause one DAG (NotFound)."""
        tid = await self._tenant_id(tenant)
        status = await self._execute(
            "UPDATE dags SET is_paused = $3, updated_at = now() "
            "WHERE tenant_id = $1 AND dag_id = $2",
            tid,
            dag_id,
            is_paused,
        )
        if status.endswith(" 0"):
            raise NotFound(f"DAG {dag_id!r} not found")
        return await self.get_dag(tenant, dag_id)

    async def patch_dags(
        self,
        tenant: str,
        *,
        is_paused: bool,
        dag_id_pattern: str | None = None,
        tags: Collection[str] | None = None,
        owners: Collection[str] | None = None,
        exclude_stale: bool = True,
    ) -> list[Dag]:
        """Pause or unpause every matching DAG; returns them."""
        tid = await self._tenant_id(tenant)
        q = Query(tid, is_paused)
        q.where("d.tenant_id = $1")
        self._dag_filters(
            q, dag_id_pattern=dag_id_pattern, tags=tags, owners=owners, exclude_stale=exclude_stale
        )
        rows = await self._fetch(
            f"UPDATE dags d SET is_paused = $2, updated_at = now() WHERE {q.sql} RETURNING d.id",
            *q.args,
        )
        if not rows:
            return []
        got = await self._fetch(
            f"{_DAG_SELECT} WHERE d.id = ANY($1::bigint[]) ORDER BY d.dag_id",
            [r["id"] for r in rows],
        )
        return [dag_from_row(r) for r in got]

    async def delete_dag(self, tenant: str, dag_id: str) -> None:
        """Delete a DAG with its versions, runs and TIs (NotFound; Conflict if a TI runs)."""
        tid = await self._tenant_id(tenant)
        async with self._atomic() as tx:
            dag_pk = await tx._fetchval(
                "SELECT id FROM dags WHERE tenant_id = $1 AND dag_id = $2 FOR UPDATE", tid, dag_id
            )
            if dag_pk is None:
                raise NotFound(f"DAG {dag_id!r} not found")
            running = await tx._fetchval(
                "SELECT count(*) FROM task_instances ti JOIN dag_runs r ON r.id = ti.dag_run_pk "
                "WHERE r.dag_pk = $1 AND ti.state = 'running'",
                dag_pk,
            )
            if running:
                raise Conflict(
                    f"DAG {dag_id!r} has {running} running task instance(s)",
                    hint="wait for them to finish or mark them failed, then delete",
                )
            await tx._execute("DELETE FROM dag_runs WHERE dag_pk = $1", dag_pk)
            await tx._execute("UPDATE dags SET current_version_id = NULL WHERE id = $1", dag_pk)
            await tx._execute("DELETE FROM dags WHERE id = $1", dag_pk)

    async def list_dag_tags(
        self, tenant: str, *, pattern: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[str]:
        """Distinct tags of non-stale DAGs, sorted."""
        q = Query(await self._tenant_id(tenant))
        q.like("tag", pattern)
        select = (
            "SELECT DISTINCT unnest(tags) AS tag FROM dags WHERE tenant_id = $1 AND NOT is_stale"
        )
        rows, total = await self._paged(
            f"SELECT tag FROM ({select}) AS x WHERE {q.sql}", q, "ORDER BY tag", limit, offset
        )
        return Page([r["tag"] for r in rows], total)

    async def list_dag_versions(
        self,
        tenant: str,
        dag_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "version_number",
    ) -> Page[DagVersion]:
        """Versions of a DAG ("~" for all DAGs); order_by version_number, created_at, dag_id."""
        order = order_clause(order_by, _VERSION_ORDER, "dag_id, version_number")
        q = Query(await self._tenant_id(tenant))
        q.where("d.tenant_id = $1")
        if dag_id != ALL:
            await self.get_dag(tenant, dag_id)
            q.where("d.dag_id = {}", dag_id)
        select = (
            f"SELECT {_VERSION_COLS} FROM dag_versions v JOIN dags d ON d.id = v.dag_pk "
            f"JOIN tenants t ON t.id = d.tenant_id WHERE {q.sql}"
        )
        rows, total = await self._paged(select, q, order, limit, offset)
        return Page([_version(r) for r in rows], total)

    async def get_dag_version(self, tenant: str, dag_id: str, version_number: int) -> DagVersion:
        """One version by its number (NotFound)."""
        tid = await self._tenant_id(tenant)
        row = await self._fetchrow(
            f"SELECT {_VERSION_COLS} FROM dag_versions v JOIN dags d ON d.id = v.dag_pk "
            "JOIN tenants t ON t.id = d.tenant_id "
            "WHERE d.tenant_id = $1 AND d.dag_id = $2 AND v.version_number = $3",
            tid,
            dag_id,
            version_number,
        )
        return _version(require(row, "DAG version", dag_id=dag_id, version_number=version_number))

    async def get_spec(self, version_id: UUID) -> DagSpec:
        """The spec of a version (cached: versions are immutable)."""
        cache = self._shared.specs
        spec = cache.get(version_id)
        if spec is not None:
            cache.move_to_end(version_id)
            return spec
        raw = await self._fetchval("SELECT spec FROM dag_versions WHERE id = $1", version_id)
        if raw is None:
            raise NotFound(f"DAG version {version_id} not found")
        spec = DagSpec.model_validate(raw)
        cache[version_id] = spec
        while len(cache) > self._shared.spec_cache_size:
            cache.popitem(last=False)
        return spec

    async def get_dag_source(
        self, tenant: str, dag_id: str, version_number: int | None = None
    ) -> DagSource:
        """The DAG file text of a version (the current one by default)."""
        if version_number is None:
            dag = await self.get_dag(tenant, dag_id)
            if dag.current_version_id is None or dag.current_version_number is None:
                raise NotFound(f"DAG {dag_id!r} has no version")
            version_id, number = dag.current_version_id, dag.current_version_number
        else:
            version = await self.get_dag_version(tenant, dag_id, version_number)
            version_id, number = version.id, version.version_number
        spec = await self.get_spec(version_id)
        return DagSource(dag_id, number, spec.source_file, spec.source)

    async def list_schedulable_dags(self) -> list[Dag]:
        """Unpaused, non-stale DAGs with a schedule and a current version, all tenants."""
        rows = await self._fetch(
            f"{_DAG_SELECT} WHERE NOT d.is_paused AND NOT d.is_stale AND d.schedule IS NOT NULL "
            "AND d.current_version_id IS NOT NULL ORDER BY d.next_dagrun_run_after NULLS FIRST, d.id"
        )
        return [dag_from_row(r) for r in rows]

    async def set_next_dagrun(
        self,
        dag_pk: int,
        *,
        logical_date: datetime | None,
        data_interval_start: datetime | None,
        data_interval_end: datetime | None,
        run_after: datetime | None,
    ) -> None:
        """Store the scheduler's next planned run for a DAG (Dag.id)."""
        await self._execute(
            "UPDATE dags SET next_dagrun_logical_date = $2, next_dagrun_data_interval_start = $3, "
            "next_dagrun_data_interval_end = $4, next_dagrun_run_after = $5 WHERE id = $1",
            dag_pk,
            logical_date,
            data_interval_start,
            data_interval_end,
            run_after,
        )

    async def set_dag_stale(self, tenant: str, dag_id: str, is_stale: bool) -> None:
        """Mark a DAG stale (its source vanished) or active again."""
        tid = await self._tenant_id(tenant)
        status = await self._execute(
            "UPDATE dags SET is_stale = $3, updated_at = now() WHERE tenant_id = $1 AND dag_id = $2",
            tid,
            dag_id,
            is_stale,
        )
        if status.endswith(" 0"):
            raise NotFound(f"DAG {dag_id!r} not found")
