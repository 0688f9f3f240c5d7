"""Task logs: the stored JSON-lines file of a try, as NDJSON or JSON, optionally followed live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from leoflow import logs
from leoflow.server import query
from leoflow.server.api._common import ok, redis_of, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute
from leoflow.store.api import TIState

NDJSON = "application/x-ndjson"
_FOLLOW_POLL_SECONDS = 2.0


def _offset(request: Request) -> int:
    token = request.query_params.get("token")
    if not token:
        return 0
    try:
        value = int(token)
    except ValueError:
        raise BadRequest(
            "token: not a continuation token from this server", field="token"
        ) from None
    if value < 0:
        raise BadRequest("token: must not be negative", field="token")
    return value


async def get_log(request: Request) -> Response:
    """GET .../taskInstances/{task_id}/logs/{try_number}."""
    p = request.path_params
    tenant, store = tenant_of(request), store_of(request)
    map_index = query.int_param(request, "map_index", -1, minimum=-1)
    try_number = int(p["try_number"])
    ti = await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    key = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": try_number,
    }
    path = logs.log_path(request.state.settings.logs_dir, tenant=tenant, **key)
    offset = _offset(request)
    events, next_offset = await asyncio.to_thread(logs.read_events, path, offset=offset)
    accept = request.headers.get("accept", "application/json")
    if NDJSON in accept:
        head = logs.header_events(logs.source_label(**key)) if offset == 0 else []
        if not events and offset == 0 and not path.exists():
            events = [logs.no_logs_event()]
        follow = (
            query.bool_param(request, "follow") is True
            and ti.state == TIState.RUNNING
            and ti.try_number == try_number
            and redis_of(request) is not None
        )
        stream = _ndjson(request, head + events, tenant, key, follow)
        return StreamingResponse(stream, media_type=NDJSON)
    if "application/json" in accept or "*/*" in accept:
        if not events and offset == 0 and not path.exists():
            events = [logs.no_logs_event()]
        return ok({"content": events, "continuation_token": str(next_offset)})
    return ok(
        {"detail": f"cannot serve logs as {accept!r}; ask for application/json or {NDJSON}"}, 406
    )


async def _ndjson(
    request: Request, first: list[dict[str, Any]], tenant: str, key: dict[str, Any], follow: bool
) -> AsyncIterator[bytes]:
    for event in first:
        yield (json.dumps(event) + "\n").encode()
    if not follow:
        return
    async for event in _live(request, tenant, key):
        yield (json.dumps(event) + "\n").encode()


async def _live(
    request: Request, tenant: str, key: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Live events of a running try until it ends (checked every few seconds) or the client leaves."""
    sub = await redis_of(request).subscribe_logs(
        tenant,
        key["dag_id"],
        key["run_id"],
        key["task_id"],
        key["try_number"],
        map_index=key["map_index"],
    )
    lines = sub.__aiter__()
    try:
        while True:
            try:
                line = await asyncio.wait_for(lines.__anext__(), _FOLLOW_POLL_SECONDS)
            except TimeoutError:
                ti = await store_of(request).get_ti(
                    tenant, key["dag_id"], key["run_id"], key["task_id"], key["map_index"]
                )
                if ti.state != TIState.RUNNING or ti.try_number != key["try_number"]:
                    return
                continue
            except StopAsyncIteration:
                return
            event = logs.parse_line(line)
            if event is not None:
                yield event
    finally:
        await sub.aclose()


routes = [
    ApiRoute(
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number:int}",
        get_log,
        methods=["GET"],
        permission=Permission.READ,
        summary="Get a task try's log (JSON, or NDJSON with Accept: application/x-ndjson; ?follow=true tails a running try)",
        tag="Task Instance Log",
        response="TaskInstancesLogResponse",
    )
]
