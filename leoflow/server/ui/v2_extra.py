"""The /api/v2 calls the UI bundle can make that the core API modules do not serve.

``routes`` (paths relative to ``/api/v2``) is mounted by ``create_app`` inside the ``/api/v2``
Mount, after the core routes, so a core route for the same path always wins. Real answers where
Leoflow has the concept (batch run and task-instance lists, mapped-TI lists, XCom writes, waiting
for a run; bulk task-instance writes, deletes and external log URLs are in ``v2_tis``); Airflow's
own answers for features switched off (configuration, connection tests) or refused (a backfill of
a DAG whose allowed_run_types exclude it); schema-valid empty answers or 404s for concepts
Leoflow lacks (assets, backfills, HITL); 501 with a ``detail`` the UI shows in a toast for the
few operations Leoflow does not offer yet (creating asset events).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from leoflow.errors import Forbidden, NotFound, Unavailable
from leoflow.server import query
from leoflow.server.api._common import (
    Versions,
    audit,
    no_content,
    now,
    ok,
    redis_of,
    store_of,
    tenant_of,
)
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import collection, dag_run_response, iso, task_instance_response
from leoflow.server.ui import v2_tis
from leoflow.store.api import TERMINAL_RUN_STATES, DagRunState, TIState

_R, _X, _M = Permission.READ, Permission.EXECUTE, Permission.MANAGE
_RUN = "/dags/{dag_id}/dagRuns/{dag_run_id}"
_TI = _RUN + "/taskInstances/{task_id}"
_TI_MAPPED = _TI + "/{map_index:sint}"
_ALL = 10_000
CONFIG_HIDDEN = (
    "Your Airflow administrator chose not to expose the configuration, most likely for security "
    "reasons."
)
TEST_DISABLED = (
    "Testing connections is disabled in Leoflow: the control plane never runs provider hooks."
)


def _not_implemented(what: str, hint: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return ok({"detail": f"{what} is not supported by Leoflow yet; {hint}"}, status=501)

    endpoint.__name__ = "not_implemented_" + "_".join(what.lower().split())
    return endpoint


def _not_found(kind: str, param: str) -> Any:
    async def endpoint(request: Request) -> Response:
        raise NotFound(
            f"The {kind} with {param}: `{request.path_params.get(param)}` was not found",
            field=param,
        )

    endpoint.__name__ = "not_found_" + kind.replace(" ", "_").lower()
    return endpoint


def _empty_for_run(field: str) -> Any:
    async def endpoint(request: Request) -> Response:
        p = request.path_params
        await store_of(request).get_run(tenant_of(request), p["dag_id"], p["dag_run_id"])
        return ok({field: [], "total_entries": 0})

    endpoint.__name__ = f"empty_{field}"
    return endpoint


def _forbidden(detail: str) -> Any:
    async def endpoint(request: Request) -> Response:
        raise Forbidden(detail)

    endpoint.__name__ = "forbidden"
    return endpoint


# -- batch lists -------------------------------------------------------------------------------


class _Ranges(BaseModel):
    """The ``<field>_gt/_gte/_lt/_lte`` filters of Airflow's batch bodies."""

    model_config = ConfigDict(extra="forbid")
    run_after_gt: datetime | None = None
    run_after_gte: datetime | None = None
    run_after_lt: datetime | None = None
    run_after_lte: datetime | None = None
    logical_date_gt: datetime | None = None
    logical_date_gte: datetime | None = None
    logical_date_lt: datetime | None = None
    logical_date_lte: datetime | None = None
    start_date_gt: datetime | None = None
    start_date_gte: datetime | None = None
    start_date_lt: datetime | None = None
    start_date_lte: datetime | None = None
    end_date_gt: datetime | None = None
    end_date_gte: datetime | None = None
    end_date_lt: datetime | None = None
    end_date_lte: datetime | None = None
    duration_gt: float | None = None
    duration_gte: float | None = None
    duration_lt: float | None = None
    duration_lte: float | None = None

    def bounds(self, *names: str) -> dict[str, Any]:
        """``<name>_gte``/``_lte`` store arguments (strict bounds are taken as inclusive)."""
        out: dict[str, Any] = {}
        for name in names:
            for side, strict in (("gte", "gt"), ("lte", "lt")):
                value = getattr(self, f"{name}_{side}")
                out[f"{name}_{side}"] = (
                    value if value is not None else getattr(self, f"{name}_{strict}")
                )
        return out

    def refuse(self, *names: str) -> None:
        """400 when a filter the store cannot apply here is set."""
        for name in names:
            for side in ("gt", "gte", "lt", "lte"):
                if getattr(self, f"{name}_{side}") is not None:
                    raise BadRequest(
                        f"{name}_{side}: filtering on {name} is not supported here",
                        field=f"{name}_{side}",
                    )


class DAGRunsBatchBody(_Ranges):
    """Airflow's DAGRunsBatchBody."""

    order_by: str | None = None
    page_offset: int = Field(default=0, ge=0)
    page_limit: int = Field(default=100, ge=0)
    dag_ids: list[str] | None = None
    states: list[DagRunState | None] | None = None
    conf_contains: str | None = None


async def list_runs_batch(request: Request) -> Response:
    """POST /dags/{dag_id}/dagRuns/list (dag_id ``~``: the body's dag_ids)."""
    body = await read_body(request, DAGRunsBatchBody)
    body.refuse("duration")
    if body.conf_contains:
        raise BadRequest("conf_contains: filtering on conf is not supported", field="conf_contains")
    result = await store_of(request).list_runs(
        tenant_of(request),
        request.path_params["dag_id"],
        dag_ids=body.dag_ids,
        states=[s for s in body.states or [] if s is not None] or None,
        limit=min(body.page_limit, query.MAX_LIMIT),
        offset=body.page_offset,
        order_by=body.order_by or "id",
        **body.bounds("run_after", "logical_date", "start_date", "end_date"),
    )
    versions, at = Versions(request), now()
    runs = [
        dag_run_response(r, await versions.get(r.dag_id, r.dag_version_id), at)
        for r in result.items
    ]
    return ok(collection("dag_runs", runs, result.total))


class TaskInstancesBatchBody(_Ranges):
    """Airflow's TaskInstancesBatchBody."""

    dag_ids: list[str] | None = None
    dag_run_ids: list[str] | None = None
    task_ids: list[str] | None = None
    state: list[TIState | None] | None = None
    pool: list[str] | None = None
    queue: list[str] | None = None
    executor: list[str] | None = None
    page_offset: int = Field(default=0, ge=0)
    page_limit: int = Field(default=100, ge=0)
    order_by: str | None = None


async def list_tis_batch(request: Request) -> Response:
    """POST /dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list."""
    body = await read_body(request, TaskInstancesBatchBody)
    body.refuse("run_after")
    p = request.path_params
    result = await store_of(request).list_tis(
        tenant_of(request),
        p["dag_id"],
        p["dag_run_id"],
        task_ids=body.task_ids,
        states=body.state,
        pools=body.pool,
        queues=body.queue,
        executors=body.executor,
        dag_ids=body.dag_ids,
        run_ids=body.dag_run_ids,
        limit=min(body.page_limit, query.MAX_LIMIT),
        offset=body.page_offset,
        order_by=body.order_by or "map_index",
        **body.bounds("logical_date", "start_date", "end_date", "duration"),
    )
    return ok(collection("task_instances", await _ti_bodies(request, result.items), result.total))


async def _ti_bodies(request: Request, tis: list[Any]) -> list[dict[str, Any]]:
    versions, at = Versions(request), now()
    return [
        task_instance_response(ti, await versions.get(ti.dag_id, ti.dag_version_id), at)
        for ti in tis
    ]


async def list_mapped(request: Request) -> Response:
    """GET .../taskInstances/{task_id}/listMapped: the map indexes of a mapped task."""
    p = request.path_params
    page = await store_of(request).list_tis(
        tenant_of(request), p["dag_id"], p["dag_run_id"], task_ids=[p["task_id"]], limit=_ALL
    )
    mapped = [ti for ti in page.items if ti.map_index >= 0]
    if not mapped:
        raise NotFound(f"Task id {p['task_id']} is not mapped", field="task_id")
    return ok(collection("task_instances", await _ti_bodies(request, mapped), len(mapped)))


async def ti_dependencies(request: Request) -> Response:
    """GET .../{map_index}/dependencies: no unmet dependencies are reported (as the core route)."""
    p = request.path_params
    await store_of(request).get_ti(
        tenant_of(request), p["dag_id"], p["dag_run_id"], p["task_id"], p.get("map_index", -1)
    )
    return ok({"dependencies": []})


# -- XCom writes ---------------------------------------------------------------------------------


class XComCreateBody(BaseModel):
    """Airflow's XComCreateBody."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1)
    value: JsonValue = None
    map_index: int = -1


class XComUpdateBody(BaseModel):
    """Airflow's XComUpdateBody."""

    model_config = ConfigDict(extra="forbid")
    value: JsonValue = None
    map_index: int = -1


async def _write_xcom(request: Request, key: str, value: Any, map_index: int) -> Response:
    p = request.path_params
    store, tenant, redis = store_of(request), tenant_of(request), redis_of(request)
    if redis is None:
        raise Unavailable("XCom values live in Redis and no Redis is configured")
    ti = await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    size = await redis.set_xcom(
        tenant, ti.dag_id, ti.run_id, ti.task_id, key, value, map_index=map_index
    )
    await store.upsert_xcom(ti.id, key, size)
    entry = await store.get_xcom_entry(tenant, ti.dag_id, ti.run_id, ti.task_id, key, map_index)
    await audit(request, "xcom_set", dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
    return ok(
        {
            "key": entry.key,
            "timestamp": iso(entry.created_at),
            "logical_date": iso(entry.logical_date),
            "map_index": entry.map_index,
            "task_id": entry.task_id,
            "dag_id": entry.dag_id,
            "run_id": entry.run_id,
            "dag_display_name": entry.dag_id,
            "task_display_name": entry.task_id,
            "run_after": iso(entry.run_after or entry.created_at),
            "value": value,
        },
        status=201 if request.method == "POST" else 200,
    )


async def create_xcom(request: Request) -> Response:
    """POST .../xcomEntries: add an XCom entry to a task instance."""
    body = await read_body(request, XComCreateBody)
    return await _write_xcom(request, body.key, body.value, body.map_index)


async def update_xcom(request: Request) -> Response:
    """PATCH .../xcomEntries/{xcom_key}: replace an existing entry's value."""
    body = await read_body(request, XComUpdateBody)
    p = request.path_params
    await store_of(request).get_xcom_entry(
        tenant_of(request),
        p["dag_id"],
        p["dag_run_id"],
        p["task_id"],
        p["xcom_key"],
        body.map_index,
    )
    return await _write_xcom(request, p["xcom_key"], body.value, body.map_index)


# -- waiting for a run ---------------------------------------------------------------------------


async def wait_run(request: Request) -> Response:
    """GET .../dagRuns/{dag_run_id}/wait?interval=&result=: NDJSON states until the run ends.

    The last line also carries ``results``: the ``return_value`` XCom of each ``result`` task.
    """
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    raw = request.query_params.get("interval") or "1"
    try:
        interval = max(float(raw), 0.1)
    except ValueError:
        raise BadRequest(
            f"interval: {raw!r} is not a number of seconds", field="interval"
        ) from None
    result_tasks = query.list_param(request, "result") or []
    run = await store.get_run(tenant, p["dag_id"], p["dag_run_id"])

    async def lines() -> AsyncIterator[str]:
        current = run
        while current.state not in TERMINAL_RUN_STATES:
            yield json.dumps({"state": str(current.state)}) + "\n"
            await asyncio.sleep(interval)  # polling: the API has no run-change feed
            current = await store.get_run(tenant, p["dag_id"], p["dag_run_id"])
        final: dict[str, Any] = {"state": str(current.state)}
        if result_tasks:
            final["results"] = await _results(request, current, result_tasks)
        yield json.dumps(final) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _results(request: Request, run: Any, task_ids: list[str]) -> dict[str, Any]:
    redis, out = redis_of(request), {}
    for task_id in task_ids:
        try:
            out[task_id] = await redis.get_xcom(
                run.tenant, run.dag_id, run.run_id, task_id, "return_value"
            )
        except (NotFound, AttributeError):  # no value pushed (or no Redis configured)
            out[task_id] = None
    return out


# -- small real answers ----------------------------------------------------------------------------


async def reparse_dag_file(request: Request) -> Response:
    """PUT /parseDagFile/{file_token}: Leoflow DAGs are compiled ahead, so nothing to re-parse."""
    await store_of(request).get_dag(tenant_of(request), request.path_params["file_token"])
    return ok(None, status=201)


async def test_connection(request: Request) -> Response:
    """POST /connections/test: disabled (``/ui/config`` says so); answered as a failed test."""
    return ok({"status": False, "message": TEST_DISABLED})


async def create_default_connections(request: Request) -> Response:
    """POST /connections/defaults: Leoflow ships no default connections, so none are added."""
    return no_content()


# -- backfills: Leoflow has none ----------------------------------------------------------------


class BackfillPostBody(BaseModel):
    """Airflow's BackfillPostBody."""

    model_config = ConfigDict(extra="forbid")
    dag_id: str
    from_date: datetime
    to_date: datetime
    run_backwards: bool = False
    dag_run_conf: dict[str, JsonValue] = Field(default_factory=dict)
    reprocess_behavior: Literal["failed", "completed", "none"] = "none"
    max_active_runs: int = 10
    run_on_latest_version: bool = True


async def _backfill_dag(request: Request) -> str:
    body = await read_body(request, BackfillPostBody)
    try:
        await store_of(request).get_dag(tenant_of(request), body.dag_id)
    except NotFound:
        raise NotFound(f"Could not find dag {body.dag_id}", field="dag_id") from None
    return body.dag_id


async def create_backfill(request: Request) -> Response:
    """POST /backfills: Airflow's 400 for a DAG whose allowed_run_types exclude backfills.

    Every Leoflow DAG answers ``allowed_run_types`` without ``backfill`` (``manual``, plus
    ``scheduled`` when it has a schedule), so this is what Airflow says for such a DAG.
    """
    dag_id = await _backfill_dag(request)
    raise BadRequest(
        f"Dag with dag_id: '{dag_id}' does not allow backfill runs",
        hint="Leoflow has no backfills; trigger one run per logical_date instead",
    )


async def backfill_dry_run(request: Request) -> Response:
    """POST /backfills/dry_run: no run would be created (the UI then disables "Run Backfill")."""
    await _backfill_dag(request)
    return ok({"backfills": [], "total_entries": 0})


def _no_backfill(message: str) -> Any:
    async def endpoint(request: Request) -> Response:
        raise NotFound(message.format(request.path_params["backfill_id"]))

    endpoint.__name__ = "no_backfill"
    return endpoint


def _route(
    path: str, endpoint: Any, method: str, perm: Permission, summary: str, **kw: Any
) -> ApiRoute:
    tag = kw.pop("tag", "UI compatibility")
    return ApiRoute(path, endpoint, methods=[method], permission=perm, summary=summary, tag=tag, name=f"ui-v2:{method}:{path}", **kw)  # fmt: skip


_NO_ASSETS = "Leoflow has no assets"
routes: list[ApiRoute] = [
    _route("/dags/{dag_id}/dagRuns/list", list_runs_batch, "POST", _R, "List DAG runs (batch)", body=DAGRunsBatchBody, response="DAGRunCollectionResponse"),
    _route(_RUN + "/taskInstances/list", list_tis_batch, "POST", _R, "List task instances (batch)", body=TaskInstancesBatchBody, response="TaskInstanceCollectionResponse"),
    _route(_RUN + "/wait", wait_run, "GET", _R, "Wait for a run to finish (NDJSON)"),
    _route(_RUN + "/upstreamAssetEvents", _empty_for_run("asset_events"), "GET", _R, _NO_ASSETS),
    _route(_TI + "/listMapped", list_mapped, "GET", _R, "List mapped task instances", response="TaskInstanceCollectionResponse"),
    _route(_TI_MAPPED + "/dependencies", ti_dependencies, "GET", _R, "Unmet dependencies of a mapped task instance"),
    _route(_TI + "/xcomEntries", create_xcom, "POST", _X, "Create an XCom entry", body=XComCreateBody, response="XComResponseNative"),
    _route(_TI + "/xcomEntries/{xcom_key}", update_xcom, "PATCH", _X, "Update an XCom entry", body=XComUpdateBody, response="XComResponseNative"),
    _route(_TI_MAPPED + "/hitlDetails", _not_found("HITL detail", "task_id"), "GET", _R, "Leoflow has no HITL"),
    _route(_TI_MAPPED + "/hitlDetails", _not_found("HITL detail", "task_id"), "PATCH", _X, "Leoflow has no HITL"),
    _route(_TI_MAPPED + "/hitlDetails/tries/{try_number:int}", _not_found("HITL detail", "task_id"), "GET", _R, "Leoflow has no HITL"),
    _route("/parseDagFile/{file_token}", reparse_dag_file, "PUT", _X, "Re-parse a DAG file (a no-op: DAGs are compiled)", status=201),
    _route("/config/section/{section}/option/{option}", _forbidden(CONFIG_HIDDEN), "GET", _R, "Configuration (not exposed)"),
    _route("/connections/test", test_connection, "POST", _M, "Test a connection (disabled: a failed test saying so)"),
    _route("/connections/defaults", create_default_connections, "POST", _M, "Create default connections (none in Leoflow)", status=204),
    _route("/dags/{dag_id}/assets/queuedEvents", _not_found("queued event", "dag_id"), "DELETE", _X, _NO_ASSETS),
    _route("/dags/{dag_id}/assets/{asset_id}/queuedEvents", _not_found("asset", "asset_id"), "GET", _R, _NO_ASSETS),
    _route("/dags/{dag_id}/assets/{asset_id}/queuedEvents", _not_found("asset", "asset_id"), "DELETE", _X, _NO_ASSETS),
    _route("/assets/{asset_id}", _not_found("asset", "asset_id"), "GET", _R, _NO_ASSETS),
    _route("/assets/{asset_id}/queuedEvents", _not_found("asset", "asset_id"), "GET", _R, _NO_ASSETS),
    _route("/assets/{asset_id}/queuedEvents", _not_found("asset", "asset_id"), "DELETE", _X, _NO_ASSETS),
    _route("/assets/{asset_id}/materialize", _not_found("asset", "asset_id"), "POST", _X, _NO_ASSETS),
    _route("/assets/aliases/{asset_alias_id}", _not_found("asset alias", "asset_alias_id"), "GET", _R, _NO_ASSETS),
    _route("/assets/events", _not_implemented("Creating asset events", "Leoflow has no assets"), "POST", _X, _NO_ASSETS),
    _route("/backfills", create_backfill, "POST", _X, "Create a backfill (400: no DAG allows backfill runs)", body=BackfillPostBody, tag="Backfill"),
    _route("/backfills/dry_run", backfill_dry_run, "POST", _X, "Preview a backfill (none: Leoflow creates no backfill runs)", body=BackfillPostBody, response="DryRunBackfillCollectionResponse", tag="Backfill"),
    _route("/backfills/{backfill_id}", _no_backfill("Backfill not found"), "GET", _R, "Leoflow has no backfills", tag="Backfill"),
    *[
        _route(f"/backfills/{{backfill_id}}/{verb}", _no_backfill("Could not find backfill with id {}"), "PUT", _X, "Leoflow has no backfills", tag="Backfill")
        for verb in ("cancel", "pause", "unpause")
    ],
    *v2_tis.routes,
]  # fmt: skip
