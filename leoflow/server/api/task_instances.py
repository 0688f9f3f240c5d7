"""Task instances: list (``~`` for runs and DAGs), get, tries, mark state, clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._common import Versions, audit, now, ok, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import (
    collection,
    task_instance_history_response,
    task_instance_response,
)
from leoflow.spec import DagSpec
from leoflow.store.api import ALL, UNSET, TaskInstance, TIState

_TI_ORDER = {
    "id",
    "task_id",
    "map_index",
    "state",
    "start_date",
    "end_date",
    "duration",
    "try_number",
    "pool",
    "priority_weight",
    "queued_dttm",
    "logical_date",
    "run_after",
    "dag_id",
    "run_id",
    "dag_run_id",
}


class PatchTaskInstanceBody(BaseModel):
    """Airflow's PatchTaskInstanceBody (manual marks are success, failed or skipped)."""

    model_config = ConfigDict(extra="forbid")
    new_state: Literal["success", "failed", "skipped"] | None = None
    note: str | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    include_future: bool = False
    include_past: bool = False


class ClearTaskInstancesBody(BaseModel):
    """Airflow's ClearTaskInstancesBody; task_ids items are ids or [task_id, map_index] pairs."""

    model_config = ConfigDict(extra="forbid")
    dry_run: bool = True
    start_date: datetime | None = None
    end_date: datetime | None = None
    only_failed: bool = True
    only_running: bool = False
    reset_dag_runs: bool = True
    task_ids: list[str | tuple[str, int]] | None = None
    dag_run_id: str | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    include_future: bool = False
    include_past: bool = False
    run_on_latest_version: bool = False
    prevent_running_task: bool = False


async def _bodies(request: Request, tis: list[TaskInstance]) -> list[dict[str, Any]]:
    versions, at = Versions(request), now()
    return [
        task_instance_response(ti, await versions.get(ti.dag_id, ti.dag_version_id), at)
        for ti in tis
    ]


def _states(request: Request) -> list[TIState | None] | None:
    values = query.list_param(request, "state")
    if values is None:
        return None
    states: list[TIState | None] = []
    for value in values:
        if value in ("none", "no_status", "null"):
            states.append(None)
            continue
        try:
            states.append(TIState(value))
        except ValueError:
            allowed = ", ".join(s.value for s in TIState)
            raise BadRequest(
                f"state: unknown value {value!r}; use one of {allowed} or none", field="state"
            ) from None
    return states


def _map_index(request: Request) -> int:
    if "map_index" in request.path_params:
        return int(request.path_params["map_index"])
    return query.int_param(request, "map_index", -1, minimum=-1)


async def list_tis(request: Request) -> Response:
    """GET /dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances (``~`` wildcards)."""
    page = query.page(request)
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    if p["dag_id"] != query.WILDCARD and p["dag_run_id"] != query.WILDCARD:
        await store.get_run(tenant, p["dag_id"], p["dag_run_id"])
    elif p["dag_id"] != query.WILDCARD:
        await store.get_dag(tenant, p["dag_id"])
    ranges = {
        f"{name}_{side}": value
        for name in ("logical_date", "start_date", "end_date")
        for side, value in zip(("gte", "lte"), query.date_range(request, name), strict=True)
    }
    map_index = request.query_params.get("map_index")
    result = await store.list_tis(
        tenant,
        p["dag_id"],
        p["dag_run_id"],
        task_ids=query.list_param(request, "task_id"),
        task_id_pattern=request.query_params.get("task_display_name_pattern") or None,
        map_index=query.int_param(request, "map_index", -1, minimum=-1) if map_index else None,
        states=_states(request),
        pools=query.list_param(request, "pool"),
        limit=page.limit,
        offset=page.offset,
        order_by=query.order_by(request, _TI_ORDER, "map_index").replace("dag_run_id", "run_id"),
        **ranges,
    )
    return ok(collection("task_instances", await _bodies(request, result.items), result.total))


async def get_ti(request: Request) -> Response:
    """GET .../taskInstances/{task_id}[/{map_index}]."""
    p = request.path_params
    ti = await store_of(request).get_ti(
        tenant_of(request), p["dag_id"], p["dag_run_id"], p["task_id"], _map_index(request)
    )
    return ok((await _bodies(request, [ti]))[0])


async def list_tries(request: Request) -> Response:
    """GET .../taskInstances/{task_id}[/{map_index}]/tries."""
    p = request.path_params
    tries = await store_of(request).list_ti_tries(
        tenant_of(request), p["dag_id"], p["dag_run_id"], p["task_id"], _map_index(request)
    )
    versions, at = Versions(request), now()
    items = [
        task_instance_history_response(t, await versions.get(t.dag_id, t.dag_version_id), at)
        for t in tries
    ]
    return ok(collection("task_instances", items, len(items)))


async def get_try(request: Request) -> Response:
    """GET .../taskInstances/{task_id}[/{map_index}]/tries/{task_try_number}."""
    p = request.path_params
    ti_try = await store_of(request).get_ti_try(
        tenant_of(request),
        p["dag_id"],
        p["dag_run_id"],
        p["task_id"],
        int(p["task_try_number"]),
        _map_index(request),
    )
    version = await Versions(request).get(ti_try.dag_id, ti_try.dag_version_id)
    return ok(task_instance_history_response(ti_try, version, now()))


def _relatives(spec: DagSpec, task_id: str, *, upstream: bool, downstream: bool) -> list[str]:
    """task_id plus its transitive upstream and/or downstream tasks, in topological order."""
    edges: dict[str, list[str]] = {}
    if upstream:
        for t in spec.tasks:
            edges.setdefault(t.task_id, []).extend(t.upstream)
    if downstream:
        for up, downs in spec.downstream().items():
            edges.setdefault(up, []).extend(downs)
    seen, todo = {task_id}, [task_id]
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return [t for t in spec.topological_order() if t in seen]


async def _targets(
    request: Request, body: PatchTaskInstanceBody, map_index: int
) -> list[TaskInstance]:
    """The TIs a mark touches: the task, its relatives, in this run and earlier/later ones.

    As Airflow's ``set_state``: include_upstream/downstream add the task's relatives (in the
    current run's spec); include_past/future add the same tasks in the DAG's runs whose
    logical_date is not after/before this run's (none when this run has no logical_date). The
    task itself keeps its map_index in every run; relatives count with all their map indexes.
    """
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    ti = await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    relatives = body.include_upstream or body.include_downstream
    across = (body.include_past or body.include_future) and ti.logical_date is not None
    if not (relatives or across):
        return [ti]
    ids = [ti.task_id]
    if relatives:
        spec = await store.get_spec(ti.dag_version_id)
        ids = _relatives(
            spec, ti.task_id, upstream=body.include_upstream, downstream=body.include_downstream
        )
    page = await store.list_tis(
        tenant,
        p["dag_id"],
        ALL if across else p["dag_run_id"],
        task_ids=ids,
        logical_date_gte=None if body.include_past or not across else ti.logical_date,
        logical_date_lte=None if body.include_future or not across else ti.logical_date,
        limit=10_000,
    )
    items = [
        t
        for t in page.items
        if (t.task_id != ti.task_id or t.map_index == ti.map_index)
        and (t.dag_run_id == ti.dag_run_id or t.logical_date is not None)
    ]
    order = {task_id: i for i, task_id in enumerate(ids)}
    this_run_first = sorted(items, key=lambda t: t.dag_run_id != ti.dag_run_id)
    return sorted(this_run_first, key=lambda t: (order.get(t.task_id, 0), t.map_index))


def _is_self(request: Request, ti: TaskInstance, map_index: int) -> bool:
    p = request.path_params
    return (ti.run_id, ti.task_id, ti.map_index) == (p["dag_run_id"], p["task_id"], map_index)


async def patch_ti(request: Request) -> Response:
    """PATCH .../taskInstances/{task_id}[/{map_index}][/dry_run]: mark state and/or set note.

    include_upstream/include_downstream extend a state mark to the task's relatives and
    include_past/include_future to earlier/later runs, as Airflow does; TIs already in the
    new state are left out (the requested TI itself is always answered).
    """
    body = await read_body(request, PatchTaskInstanceBody)
    mask = query.list_param(request, "update_mask")
    fields = (set(mask) if mask else body.model_fields_set) & {"new_state", "note"}
    if not fields:
        raise BadRequest("give new_state and/or note", field="new_state")
    if "new_state" in fields and body.new_state is None:
        raise BadRequest("new_state: use success, failed or skipped", field="new_state")
    store, tenant, map_index = store_of(request), tenant_of(request), _map_index(request)
    targets = await _targets(request, body, map_index)
    if "new_state" in fields:
        targets = [
            t for t in targets if _is_self(request, t, map_index) or str(t.state) != body.new_state
        ]
    else:
        targets = [t for t in targets if _is_self(request, t, map_index)]
    if request.url.path.endswith("/dry_run"):
        items = await _bodies(request, targets)
        return ok(collection("task_instances", items, len(items)))
    changed = []
    for target in targets:
        changed.append(
            await store.patch_ti(
                tenant,
                target.dag_id,
                target.run_id,
                target.task_id,
                target.map_index,
                state=TIState(body.new_state)
                if "new_state" in fields and body.new_state
                else UNSET,
                note=body.note
                if "note" in fields and _is_self(request, target, map_index)
                else UNSET,
            )
        )
        event = (
            f"mark_task_instance_{body.new_state}"
            if "new_state" in fields
            else "task_instance_note"
        )
        await audit(
            request,
            event,
            dag_id=target.dag_id,
            run_id=target.run_id,
            task_id=target.task_id,
            map_index=target.map_index,
        )
    if "new_state" in fields:
        await _resume_downstream(request, map_index)
    items = await _bodies(request, changed)
    return ok(collection("task_instances", items, len(items)))


async def _resume_downstream(request: Request, map_index: int) -> None:
    """As Airflow's set_task_instance_state: clear the failed/upstream_failed downstream."""
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    ti = await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    spec = await store.get_spec(ti.dag_version_id)
    below = _relatives(spec, ti.task_id, upstream=False, downstream=True)
    below = [t for t in below if t != ti.task_id]
    if below:
        await store.clear_tis(tenant, ti.dag_id, run_id=ti.run_id, task_ids=below, only_failed=True)


async def clear_tis(request: Request) -> Response:
    """POST /dags/{dag_id}/clearTaskInstances (Airflow's body; dry_run previews)."""
    body = await read_body(request, ClearTaskInstancesBody)
    dag_id = request.path_params["dag_id"]
    store, tenant = store_of(request), tenant_of(request)
    await store.get_dag(tenant, dag_id)
    if body.dag_run_id is not None:
        await store.get_run(tenant, dag_id, body.dag_run_id)
    task_ids = (
        None
        if body.task_ids is None
        else [t if isinstance(t, str) else (t[0], t[1]) for t in body.task_ids]
    )
    tis = await store.clear_tis(
        tenant,
        dag_id,
        run_id=body.dag_run_id,
        task_ids=task_ids,
        start_date=body.start_date,
        end_date=body.end_date,
        only_failed=body.only_failed,
        only_running=body.only_running,
        include_upstream=body.include_upstream,
        include_downstream=body.include_downstream,
        include_past=body.include_past,
        include_future=body.include_future,
        reset_dag_runs=body.reset_dag_runs,
        run_on_latest_version=body.run_on_latest_version,
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        await audit(
            request,
            "clear_task_instances",
            dag_id=dag_id,
            run_id=body.dag_run_id,
            extra={"task_ids": [t.task_id for t in tis]},
        )
    return ok(collection("task_instances", await _bodies(request, tis), len(tis)))


async def get_links(request: Request) -> Response:
    """GET .../taskInstances/{task_id}/links: Leoflow tasks have no extra links."""
    p = request.path_params
    await store_of(request).get_ti(
        tenant_of(request), p["dag_id"], p["dag_run_id"], p["task_id"], _map_index(request)
    )
    return ok({"extra_links": {}, "total_entries": 0})


_TI = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"
_ONE = _TI + "/{task_id}"
_MAPPED = _ONE + "/{map_index:sint}"
_R, _X = Permission.READ, Permission.EXECUTE


def _route(
    path: str, endpoint: Any, method: str, perm: Permission, summary: str, **kw: Any
) -> ApiRoute:
    return ApiRoute(
        path,
        endpoint,
        methods=[method],
        permission=perm,
        summary=summary,
        tag="TaskInstance",
        name=f"{endpoint.__name__}:{path}",
        **kw,
    )


routes = [
    _route(_TI, list_tis, "GET", _R, "List task instances (dag_id/dag_run_id ~ for all)", response="TaskInstanceCollectionResponse"),
    _route(_ONE + "/links", get_links, "GET", _R, "Extra links of a task instance"),
    _route(_ONE + "/tries", list_tries, "GET", _R, "List a task instance's tries", response="TaskInstanceHistoryCollectionResponse"),
    _route(_ONE + "/tries/{task_try_number:int}", get_try, "GET", _R, "Get one try", response="TaskInstanceHistoryResponse"),
    _route(_ONE + "/dry_run", patch_ti, "PATCH", _X, "Preview marking a task instance", body=PatchTaskInstanceBody, response="TaskInstanceCollectionResponse"),
    _route(_MAPPED + "/tries", list_tries, "GET", _R, "List a mapped task instance's tries", response="TaskInstanceHistoryCollectionResponse"),
    _route(_MAPPED + "/tries/{task_try_number:int}", get_try, "GET", _R, "Get one try of a mapped task instance", response="TaskInstanceHistoryResponse"),
    _route(_MAPPED + "/dry_run", patch_ti, "PATCH", _X, "Preview marking a mapped task instance", body=PatchTaskInstanceBody, response="TaskInstanceCollectionResponse"),
    _route(_MAPPED, get_ti, "GET", _R, "Get a mapped task instance", response="TaskInstanceResponse"),
    _route(_MAPPED, patch_ti, "PATCH", _X, "Mark a mapped task instance", body=PatchTaskInstanceBody, response="TaskInstanceCollectionResponse"),
    _route(_ONE, get_ti, "GET", _R, "Get a task instance", response="TaskInstanceResponse"),
    _route(_ONE, patch_ti, "PATCH", _X, "Mark a task instance's state or set its note", body=PatchTaskInstanceBody, response="TaskInstanceCollectionResponse"),
    _route("/dags/{dag_id}/clearTaskInstances", clear_tis, "POST", _X, "Clear task instances", body=ClearTaskInstancesBody, response="TaskInstanceCollectionResponse"),
]  # fmt: skip
