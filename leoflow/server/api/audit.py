"""Event logs (Airflow's audit log) and DAG import errors."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._common import ok, path_int, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.routing import ApiRoute
from leoflow.server.serializers import collection, iso
from leoflow.store.api import AuditEvent, DagImportError


def event_log_response(event: AuditEvent) -> dict[str, Any]:
    """EventLogResponse."""
    return {
        "event_log_id": event.id,
        "when": iso(event.when),
        "dag_id": event.dag_id,
        "task_id": event.task_id,
        "run_id": event.run_id,
        "map_index": event.map_index,
        "try_number": event.try_number,
        "event": event.event,
        "logical_date": iso(event.logical_date),
        "owner": event.owner,
        "extra": event.extra,
        "dag_display_name": event.dag_id,
        "task_display_name": event.task_id,
    }


def import_error_response(error: DagImportError) -> dict[str, Any]:
    """ImportErrorResponse."""
    return {
        "import_error_id": error.id,
        "timestamp": iso(error.timestamp),
        "filename": error.filename,
        "bundle_name": error.bundle_name,
        "stack_trace": error.stack_trace,
    }


async def list_event_logs(request: Request) -> Response:
    """GET /eventLogs."""
    page = query.page(request)
    qp = request.query_params
    order = query.order_by(
        request,
        {
            "id",
            "event_log_id",
            "when",
            "dttm",
            "event",
            "dag_id",
            "task_id",
            "run_id",
            "owner",
            "try_number",
            "map_index",
        },
        "id",
    )
    order = order.replace("event_log_id", "id").replace("dttm", "when")
    result = await store_of(request).list_audit(
        tenant_of(request),
        dag_id=qp.get("dag_id") or None,
        task_id=qp.get("task_id") or None,
        run_id=qp.get("run_id") or None,
        map_index=query.int_param(request, "map_index", -1, minimum=-1)
        if qp.get("map_index")
        else None,
        try_number=query.int_param(request, "try_number", 0) if qp.get("try_number") else None,
        owner=qp.get("owner") or None,
        event=qp.get("event") or None,
        included_events=query.list_param(request, "included_events"),
        excluded_events=query.list_param(request, "excluded_events"),
        before=query.date_param(request, "before"),
        after=query.date_param(request, "after"),
        limit=page.limit,
        offset=page.offset,
        order_by=order,
    )
    items = [event_log_response(e) for e in result.items]
    return ok(collection("event_logs", items, result.total))


async def get_event_log(request: Request) -> Response:
    """GET /eventLogs/{event_log_id}."""
    event = await store_of(request).get_audit(tenant_of(request), path_int(request, "event_log_id"))
    return ok(event_log_response(event))


async def list_import_errors(request: Request) -> Response:
    """GET /importErrors."""
    page = query.page(request)
    order = query.order_by(
        request, {"id", "import_error_id", "timestamp", "filename", "bundle_name"}, "id"
    ).replace("import_error_id", "id")
    result = await store_of(request).list_import_errors(
        tenant_of(request),
        filename_pattern=request.query_params.get("filename_pattern") or None,
        limit=page.limit,
        offset=page.offset,
        order_by=order,
    )
    items = [import_error_response(e) for e in result.items]
    return ok(collection("import_errors", items, result.total))


async def get_import_error(request: Request) -> Response:
    """GET /importErrors/{import_error_id}."""
    error = await store_of(request).get_import_error(
        tenant_of(request), path_int(request, "import_error_id")
    )
    return ok(import_error_response(error))


_R = Permission.READ
routes = [
    ApiRoute("/eventLogs", list_event_logs, methods=["GET"], permission=_R, summary="List event logs", tag="Event Log", response="EventLogCollectionResponse"),
    ApiRoute("/eventLogs/{event_log_id:int}", get_event_log, methods=["GET"], permission=_R, summary="Get an event log entry", tag="Event Log", response="EventLogResponse"),
    ApiRoute("/importErrors", list_import_errors, methods=["GET"], permission=_R, summary="List import errors", tag="Import Error", response="ImportErrorCollectionResponse"),
    ApiRoute("/importErrors/{import_error_id:int}", get_import_error, methods=["GET"], permission=_R, summary="Get an import error", tag="Import Error", response="ImportErrorResponse"),
]  # fmt: skip
