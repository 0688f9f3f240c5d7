"""XCom entries: the index lives in Postgres, the values in Redis."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from leoflow.errors import NotFound, Unavailable
from leoflow.server import query
from leoflow.server.api._common import now, ok, redis_of, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.routing import ApiRoute
from leoflow.server.serializers import collection, iso
from leoflow.store.api import ALL, XComEntry


def _entry(entry: XComEntry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "timestamp": iso(entry.created_at),
        "logical_date": iso(entry.logical_date),
        "map_index": entry.map_index,
        "task_id": entry.task_id,
        "dag_id": entry.dag_id,
        "run_id": entry.run_id,
        "dag_display_name": entry.dag_id,
        "task_display_name": entry.task_id,
        "run_after": iso(entry.run_after or entry.logical_date or entry.created_at or now()),
    }


async def _require_named(request: Request) -> None:
    """404 for a DAG, run or task named (not ``~``) in the path that does not exist."""
    p, store, tenant = request.path_params, store_of(request), tenant_of(request)
    dag_id, run_id, task_id = p["dag_id"], p["dag_run_id"], p["task_id"]
    if dag_id == ALL:
        return
    await store.get_dag(tenant, dag_id)
    if run_id != ALL:
        await store.get_run(tenant, dag_id, run_id)
    if task_id != ALL:
        tis = await store.list_tis(tenant, dag_id, run_id, task_ids=[task_id], limit=1)
        if not tis.total:
            raise NotFound(f"task {task_id!r} has no task instance here", field="task_id")


async def list_xcoms(request: Request) -> Response:
    """GET .../taskInstances/{task_id}/xcomEntries (``~`` for DAG, run and task)."""
    page = query.page(request)
    p = request.path_params
    await _require_named(request)
    map_index = request.query_params.get("map_index")
    result = await store_of(request).list_xcoms(
        tenant_of(request),
        p["dag_id"],
        p["dag_run_id"],
        p["task_id"],
        map_index=query.int_param(request, "map_index", -1, minimum=-1) if map_index else None,
        key=request.query_params.get("xcom_key") or None,
        limit=page.limit,
        offset=page.offset,
    )
    return ok(collection("xcom_entries", [_entry(e) for e in result.items], result.total))


async def get_xcom(request: Request) -> Response:
    """GET .../xcomEntries/{xcom_key}: the entry with its value."""
    p = request.path_params
    tenant = tenant_of(request)
    map_index = query.int_param(request, "map_index", -1, minimum=-1)
    args = (tenant, p["dag_id"], p["dag_run_id"], p["task_id"], p["xcom_key"], map_index)
    entry = await store_of(request).get_xcom_entry(*args)
    redis = redis_of(request)
    if redis is None:
        raise Unavailable(
            "XCom values live in Redis and no Redis is configured", field="LEOFLOW_REDIS_URL"
        )
    value = await redis.get_xcom(*args)
    if query.bool_param(request, "stringify"):
        value = json.dumps(value)
    return ok({**_entry(entry), "value": value})


_XCOM = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries"
routes = [
    ApiRoute(_XCOM, list_xcoms, methods=["GET"], permission=Permission.READ, summary="List XCom entries (~ wildcards)", tag="XCom", response="XComCollectionResponse"),
    ApiRoute(_XCOM + "/{xcom_key}", get_xcom, methods=["GET"], permission=Permission.READ, summary="Get an XCom entry with its value", tag="XCom", response="XComResponseNative"),
]  # fmt: skip
