"""Task-instance writes the UI bundle (and Airflow clients) make beyond the core API.

``routes`` (paths relative to ``/api/v2``) is mounted with ``v2_extra.routes``, after the core
routes. As Airflow 3.2.2's ``BulkTaskInstanceService``, ``delete_task_instance`` and
``get_external_log_url``:

- ``PATCH .../dagRuns/{dag_run_id}/taskInstances`` takes a ``BulkBody`` of
  ``BulkTaskInstanceBody``: ``update`` marks state (with Airflow's set_state reach:
  upstream/downstream relatives, past/future runs, then the failed downstream of the task are
  cleared so the run resumes) and/or sets notes; ``delete`` deletes rows; ``create`` is refused
  per action. Errors are reported in the ``BulkResponse``; the first error ends its action.
- ``DELETE .../taskInstances/{task_id}`` deletes the row (its tries and XCom index cascade).
  Unlike Airflow, a task instance of a queued or running run is refused with 409: Leoflow's
  scheduler treats a missing row as "no status" and would wait on it forever; clearing the run
  re-creates deleted rows.
- ``DELETE .../xcomEntries/{xcom_key}`` drops the XCom's index row and its value in Redis.
- ``externalLogUrl`` is Airflow's 400 for a log handler without external links: Leoflow serves
  every log itself.

``StoreAPI`` has no delete for task instances or single XComs; ``_delete_rows`` and
``delete_xcom`` hold the drop-in SQL for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from leoflow.errors import Conflict, LeoflowError, NotFound
from leoflow.server import query
from leoflow.server.api._bulk import bulk_body_model
from leoflow.server.api._common import audit, no_content, ok, redis_of, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest, UnprocessableEntity, status_for
from leoflow.server.routing import ApiRoute, read_body
from leoflow.store import redis_keys
from leoflow.store.api import ALL, UNSET, DagRunState, TaskInstance, TIState
from leoflow.store.clear import expand_task_ids

_ALL_TIS = 10_000
_MARKS = ("success", "failed", "skipped")
_ACTIVE_RUNS = (DagRunState.QUEUED.value, DagRunState.RUNNING.value)
NO_EXTERNAL_LOGS = "Task log handler does not support external logs."


class BulkTaskInstanceBody(BaseModel):
    """Airflow's BulkTaskInstanceBody (a PatchTaskInstanceBody plus the instance's key)."""

    model_config = ConfigDict(extra="forbid")
    new_state: Literal["success", "failed", "skipped"] | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    include_future: bool = False
    include_past: bool = False
    task_id: str
    map_index: int | None = None
    dag_id: str | None = None
    dag_run_id: str | None = None

    @field_validator("new_state", mode="before")
    @classmethod
    def _mark(cls, value: Any) -> Any:
        # As Airflow: given explicitly, it must be a manual mark (any case); omit it for notes.
        if value is None:
            raise ValueError("'new_state' should not be empty")
        if isinstance(value, str) and value.lower() in _MARKS:
            return value.lower()
        raise ValueError(f"'{value}' is not one of {list(_MARKS)}")


BulkTaskInstancesBody = bulk_body_model(BulkTaskInstanceBody)


class _ActionFailed(LeoflowError):
    """Ends one bulk action with an error entry (Airflow's HTTPException inside the service)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Results:
    """One BulkActionResponse."""

    success: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, message: str, status: int) -> None:
        self.errors.append({"error": message, "status_code": status})


Key = tuple[str, str, str, int | None]  # dag_id, run_id, task_id, map_index (None: every one)


def _key(request: Request, entity: str | BulkTaskInstanceBody) -> Key:
    p = request.path_params
    if isinstance(entity, str):
        return p["dag_id"], p["dag_run_id"], entity, None
    return (
        entity.dag_id or p["dag_id"],
        entity.dag_run_id or p["dag_run_id"],
        entity.task_id,
        entity.map_index,
    )


def _keys(request: Request, entities: list[Any], results: _Results) -> list[Key]:
    """Each entity's key; a wildcard left in the key is an error entry, as in Airflow."""
    keys: list[Key] = []
    for entity in entities:
        key = _key(request, entity)
        if query.WILDCARD in key[:2]:
            where = (
                "BulkTaskInstanceBody object, not as string"
                if isinstance(entity, str)
                else "request body"
            )
            results.fail(
                "When using wildcard in path, dag_id and dag_run_id must be specified in "
                f"{where} for task_id: {key[2]}",
                400,
            )
            continue
        if key not in keys:
            keys.append(key)
    return keys


async def _instances(request: Request, keys: list[Key], fail_missing: bool) -> list[TaskInstance]:
    """The task instances the keys name, in key order; 404 (ending the action) when told to."""
    store, tenant = store_of(request), tenant_of(request)
    found: list[TaskInstance] = []
    missing: list[dict[str, Any]] = []
    for dag_id, run_id, task_id, map_index in keys:
        page = await store.list_tis(
            tenant, dag_id, run_id, task_ids=[task_id], map_index=map_index, limit=_ALL_TIS
        )
        found.extend(page.items)
        if not page.items and map_index is None and fail_missing:
            raise _ActionFailed(
                f"No task instances found for dag_id: {dag_id}, run_id: {run_id}, "
                f"task_id: {task_id}",
                404,
            )
        if not page.items and map_index is not None:
            missing.append(
                {"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id, "map_index": map_index}
            )
    if missing and fail_missing:
        raise _ActionFailed(
            f"The task instances with these identifiers: {missing} were not found", 404
        )
    return found


def _ti_key(ti: TaskInstance) -> str:
    return f"{ti.dag_id}.{ti.run_id}.{ti.task_id}[{ti.map_index}]"


# -- marking: Airflow's set_state reach ------------------------------------------------------


async def _mark_targets(
    request: Request, ti: TaskInstance, body: BulkTaskInstanceBody
) -> tuple[list[TaskInstance], set[str]]:
    """The TIs a mark changes (not already in the state) and the task's strict downstream.

    As ``set_state``: relatives (all their map indexes) from the run's pinned spec; with
    include_past/include_future the same tasks in the DAG's runs whose logical_date is not
    after/before this run's (none when the run has no logical_date).
    """
    store, tenant = store_of(request), tenant_of(request)
    spec = await store.get_spec(ti.dag_version_id)
    ids = expand_task_ids(
        spec,
        {ti.task_id},
        upstream=body.include_upstream,
        downstream=body.include_downstream,
    )
    across = (body.include_past or body.include_future) and ti.logical_date is not None
    page = await store.list_tis(
        tenant,
        ti.dag_id,
        ALL if across else ti.run_id,
        task_ids=sorted(ids),
        logical_date_gte=None if body.include_past or not across else ti.logical_date,
        logical_date_lte=None if body.include_future or not across else ti.logical_date,
        limit=_ALL_TIS,
    )
    targets = [
        t
        for t in page.items
        if (t.task_id != ti.task_id or t.map_index == ti.map_index)
        and (t.dag_run_id == ti.dag_run_id or t.logical_date is not None)
        and str(t.state) != body.new_state
    ]
    downstream = expand_task_ids(spec, {ti.task_id}, upstream=False, downstream=True)
    return targets, downstream - {ti.task_id}


async def _update_one(
    request: Request, ti: TaskInstance, body: BulkTaskInstanceBody, mask: list[str] | None
) -> None:
    """Mark and/or annotate one TI in one transaction (Airflow's ``_perform_update``)."""
    store, tenant = store_of(request), tenant_of(request)
    fields = body.model_fields_set & set(mask) if mask else body.model_fields_set
    dag = await store.get_dag(tenant, ti.dag_id)
    if dag.current_version_id is not None:
        latest = await store.get_spec(dag.current_version_id)
        if ti.task_id not in {t.task_id for t in latest.tasks}:
            raise _ActionFailed(f"Task '{ti.task_id}' not found in Dag '{ti.dag_id}'", 404)
    async with store.transaction() as tx:
        if "new_state" in fields and body.new_state is not None:
            targets, downstream = await _mark_targets(request, ti, body)
            if not targets:
                raise _ActionFailed(
                    f"Task id {ti.task_id} is already in {body.new_state} state", 409
                )
            state = TIState(body.new_state)
            for t in targets:
                await tx.patch_ti(tenant, t.dag_id, t.run_id, t.task_id, t.map_index, state=state)
            # As Airflow: the task's failed downstream is cleared so the run resumes; unlike
            # Airflow, not the downstream this very mark set (include_downstream would undo).
            downstream -= {t.task_id for t in targets}
            if downstream:
                await tx.clear_tis(
                    tenant,
                    ti.dag_id,
                    run_id=ti.run_id,
                    task_ids=sorted(downstream),
                    only_failed=True,
                    include_past=body.include_past,
                    include_future=body.include_future,
                )
        if "note" in fields and (mask or body.note is not None):
            await tx.patch_ti(
                tenant, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, state=UNSET, note=body.note
            )
    event = (
        f"mark_task_instance_{body.new_state}" if "new_state" in fields else "task_instance_note"
    )
    await audit(
        request, event, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
        map_index=ti.map_index,
    )  # fmt: skip


async def _bulk_update(request: Request, action: Any, results: _Results) -> None:
    keys = _keys(request, action.entities, results)
    bodies = {_key(request, e): e for e in action.entities}
    fail_missing = action.action_on_non_existence == "fail"
    tis = await _instances(request, keys, fail_missing)
    for ti in tis:
        body = bodies.get((ti.dag_id, ti.run_id, ti.task_id, ti.map_index)) or bodies.get(
            (ti.dag_id, ti.run_id, ti.task_id, None)
        )
        if body is not None:
            await _update_one(request, ti, body, action.update_mask)
            results.success.append(_ti_key(ti))


# -- deleting ----------------------------------------------------------------------------------


async def _delete_rows(request: Request, tis: list[TaskInstance]) -> None:
    """Delete these TI rows in one transaction (409 if a run of theirs is queued or running).

    Locking the runs FOR SHARE keeps a concurrent clear or trigger from re-activating one
    between the check and the delete. XCom values in Redis go after the commit.
    """
    if not tis:
        return
    store, tenant = store_of(request), tenant_of(request)
    xcoms = [
        entry
        for ti in tis
        for entry in (
            await store.list_xcoms(
                tenant, ti.dag_id, ti.run_id, ti.task_id, map_index=ti.map_index, limit=_ALL_TIS
            )
        ).items
    ]
    async with store.pool.acquire() as conn, conn.transaction():  # type: ignore[attr-defined]
        runs = await conn.fetch(
            "SELECT run_id, state FROM dag_runs WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE",
            sorted({ti.dag_run_id for ti in tis}),
        )
        active = [r["run_id"] for r in runs if r["state"] in _ACTIVE_RUNS]
        if active:
            raise Conflict(
                f"the DAG run {active[0]!r} is {DagRunState.RUNNING.value} or queued: the "
                "scheduler still needs its task instances",
                hint="clear the task instance instead, or delete it once the run has finished",
            )
        await conn.execute(
            "DELETE FROM task_instances WHERE id = ANY($1::uuid[])", [ti.id for ti in tis]
        )
    redis = redis_of(request)
    if redis is not None and xcoms:
        await redis.client.delete(
            *[
                redis_keys.xcom_value(
                    redis.prefix, tenant, x.dag_id, x.run_id, x.task_id, x.map_index, x.key
                )
                for x in xcoms
            ]
        )
    for ti in tis:
        await audit(
            request, "delete_task_instance", dag_id=ti.dag_id, run_id=ti.run_id,
            task_id=ti.task_id, map_index=ti.map_index,
        )  # fmt: skip


async def _bulk_delete(request: Request, action: Any, results: _Results) -> None:
    keys = _keys(request, action.entities, results)
    tis = await _instances(request, keys, action.action_on_non_existence == "fail")
    try:
        await _delete_rows(request, tis)
    except Conflict as exc:
        raise _ActionFailed(str(exc), 409) from exc
    results.success.extend(_ti_key(ti) for ti in tis)


async def bulk_tis(request: Request) -> Response:
    """PATCH /dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances: Airflow's bulk TI service."""
    body = await read_body(request, BulkTaskInstancesBody)
    out: dict[str, _Results] = {}
    for action in body.actions:  # type: ignore[attr-defined]
        results = out.setdefault(action.action, _Results())
        if action.action == "create":
            results.fail("Task instances bulk create is not supported", 405)
            continue
        try:
            if action.action == "update":
                await _bulk_update(request, action, results)
            else:
                await _bulk_delete(request, action, results)
        except _ActionFailed as exc:
            results.fail(exc.message, exc.status)
        except (NotFound, Conflict) as exc:
            results.fail(str(exc), status_for(exc))
    return ok(
        {
            name: None if name not in out else {"success": out[name].success, "errors": out[name].errors}
            for name in ("create", "update", "delete")
        }
    )  # fmt: skip


async def delete_ti(request: Request) -> Response:
    """DELETE .../taskInstances/{task_id}?map_index=: delete the row (Airflow 3.2)."""
    p = request.path_params
    map_index = query.int_param(request, "map_index", -1, minimum=-1)
    try:
        ti = await store_of(request).get_ti(
            tenant_of(request), p["dag_id"], p["dag_run_id"], p["task_id"], map_index
        )
    except NotFound:
        raise NotFound(
            f"The Task Instance with dag_id: `{p['dag_id']}`, run_id: `{p['dag_run_id']}`, "
            f"task_id: `{p['task_id']}` and map_index: `{map_index}` was not found"
        ) from None
    await _delete_rows(request, [ti])
    return ok(None)


async def delete_xcom(request: Request) -> Response:
    """DELETE .../xcomEntries/{xcom_key}?map_index=: drop the index row and the Redis value."""
    p = request.path_params
    map_index = query.int_param(request, "map_index", -1, minimum=-1)
    store, tenant, key = store_of(request), tenant_of(request), p["xcom_key"]
    missing = f"The XCom with key: `{key}` with mentioned task instance doesn't exist."
    try:
        ti = await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    except NotFound:
        raise NotFound(missing) from None
    deleted = await store.pool.fetchval(  # type: ignore[attr-defined]
        "DELETE FROM xcom_index WHERE ti_id = $1 AND key = $2 RETURNING key", ti.id, key
    )
    if deleted is None:
        raise NotFound(missing)
    redis = redis_of(request)
    if redis is not None:
        await redis.client.delete(
            redis_keys.xcom_value(
                redis.prefix, tenant, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, key
            )
        )
    await audit(request, "xcom_delete", dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
    return no_content()


async def external_log_url(request: Request) -> Response:
    """GET .../externalLogUrl/{try_number}: 400, Leoflow's logs have no external viewer."""
    if int(request.path_params["try_number"]) <= 0:
        raise UnprocessableEntity("Input should be greater than 0", field="try_number")
    query.int_param(request, "map_index", -1, minimum=-1)
    # Airflow checks the log handler before looking the task instance up.
    raise BadRequest(NO_EXTERNAL_LOGS)


_TI = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"


def _route(
    path: str, endpoint: Any, method: str, perm: Permission, summary: str, **kw: Any
) -> ApiRoute:
    return ApiRoute(path, endpoint, methods=[method], permission=perm, summary=summary, tag="TaskInstance", name=f"ui-v2:{method}:{path}", **kw)  # fmt: skip


routes: list[ApiRoute] = [
    _route(_TI, bulk_tis, "PATCH", Permission.EXECUTE, "Bulk update and delete task instances", body=BulkTaskInstancesBody, response="BulkResponse"),
    _route(_TI + "/{task_id}", delete_ti, "DELETE", Permission.EXECUTE, "Delete a task instance (not while its run is queued or running)"),
    _route(_TI + "/{task_id}/xcomEntries/{xcom_key}", delete_xcom, "DELETE", Permission.EXECUTE, "Delete an XCom entry", status=204),
    _route(_TI + "/{task_id}/externalLogUrl/{try_number:int}", external_log_url, "GET", Permission.READ, "External log URL (400: Leoflow serves its logs itself)"),
]  # fmt: skip
