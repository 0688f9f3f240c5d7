"""Connections: CRUD and bulk PATCH; passwords are write-only (answered as ``***``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._bulk import bulk_body_model, bulk_response, to_actions
from leoflow.server.api._common import audit, no_content, ok, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import collection
from leoflow.spec import ID_PATTERN
from leoflow.store.api import Connection

_FIELDS = ("conn_type", "description", "host", "login", "schema", "port", "password", "extra")


class ConnectionBody(BaseModel):
    """Airflow's ConnectionBody."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    connection_id: str = Field(pattern=ID_PATTERN, max_length=200)
    conn_type: str
    description: str | None = None
    host: str | None = None
    login: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    port: int | None = None
    password: str | None = None
    extra: str | None = None
    team_name: str | None = None


ConnectionBulkBody = bulk_body_model(ConnectionBody)


def to_connection(body: ConnectionBody) -> Connection:
    """The store object of a body."""
    return Connection(
        conn_id=body.connection_id,
        conn_type=body.conn_type,
        description=body.description,
        host=body.host,
        login=body.login,
        schema=body.schema_,
        port=body.port,
        password=body.password,
        extra=body.extra,
    )


def connection_response(conn: Connection) -> dict[str, Any]:
    """ConnectionResponse (the password is never returned)."""
    return {
        "connection_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "description": conn.description,
        "host": conn.host,
        "login": conn.login,
        "schema": conn.schema,
        "port": conn.port,
        "password": "***" if conn.password else None,
        "extra": conn.extra,
        "team_name": None,
    }


async def list_connections(request: Request) -> Response:
    """GET /connections."""
    page = query.page(request)
    order = query.order_by(
        request,
        {"connection_id", "conn_id", "conn_type", "description", "host", "port", "id"},
        "id",
    ).replace("connection_id", "conn_id")
    result = await store_of(request).list_connections(
        tenant_of(request),
        conn_id_pattern=request.query_params.get("connection_id_pattern") or None,
        limit=page.limit,
        offset=page.offset,
        order_by=order,
    )
    items = [connection_response(c) for c in result.items]
    return ok(collection("connections", items, result.total))


async def get_connection(request: Request) -> Response:
    """GET /connections/{connection_id}."""
    conn = await store_of(request).get_connection(
        tenant_of(request), request.path_params["connection_id"]
    )
    return ok(connection_response(conn))


async def create_connection(request: Request) -> Response:
    """POST /connections (409 when it exists)."""
    body = await read_body(request, ConnectionBody)
    conn = await store_of(request).create_connection(tenant_of(request), to_connection(body))
    await audit(request, "connection.create", extra={"connection_id": body.connection_id})
    return ok(connection_response(conn), 201)


async def patch_connection(request: Request) -> Response:
    """PATCH /connections/{connection_id} (update_mask limits the fields)."""
    body = await read_body(request, ConnectionBody)
    conn_id = request.path_params["connection_id"]
    if body.connection_id != conn_id:
        raise BadRequest(
            "connection_id: the body's id does not match the URL", field="connection_id"
        )
    store, tenant = store_of(request), tenant_of(request)
    current = await store.get_connection(tenant, conn_id)
    mask = set(query.list_param(request, "update_mask") or body.model_fields_set)
    mask = {"schema" if m == "schema_" else m for m in mask} - {"connection_id", "team_name"}
    if mask - set(_FIELDS):
        raise BadRequest(
            f"update_mask: unknown field(s) {sorted(mask - set(_FIELDS))}", field="update_mask"
        )
    new = to_connection(body)
    values = {f: getattr(new if f in mask else current, f) for f in _FIELDS}
    conn = await store.update_connection(tenant, Connection(conn_id=conn_id, **values))
    await audit(request, "connection.edit", extra={"connection_id": conn_id})
    return ok(connection_response(conn))


async def delete_connection(request: Request) -> Response:
    """DELETE /connections/{connection_id}."""
    conn_id = request.path_params["connection_id"]
    await store_of(request).delete_connection(tenant_of(request), conn_id)
    await audit(request, "connection.delete", extra={"connection_id": conn_id})
    return no_content()


async def bulk_connections(request: Request) -> Response:
    """PATCH /connections: Airflow's bulk create/update/delete."""
    body = await read_body(request, ConnectionBulkBody)
    actions = to_actions(body, to_connection, lambda e: e.connection_id)
    result = await store_of(request).bulk_connections(tenant_of(request), actions)
    await audit(request, "connection.bulk")
    return ok(bulk_response(result))


_R, _M = Permission.READ, Permission.MANAGE
routes = [
    ApiRoute("/connections", list_connections, methods=["GET"], permission=_R, summary="List connections", tag="Connection", response="ConnectionCollectionResponse"),
    ApiRoute("/connections", create_connection, methods=["POST"], permission=_M, summary="Create a connection", tag="Connection", body=ConnectionBody, response="ConnectionResponse", status=201),
    ApiRoute("/connections", bulk_connections, methods=["PATCH"], permission=_M, summary="Bulk create, update, delete connections", tag="Connection", body=ConnectionBulkBody, response="BulkResponse"),
    ApiRoute("/connections/{connection_id}", get_connection, methods=["GET"], permission=_R, summary="Get a connection", tag="Connection", response="ConnectionResponse"),
    ApiRoute("/connections/{connection_id}", patch_connection, methods=["PATCH"], permission=_M, summary="Update a connection", tag="Connection", body=ConnectionBody, response="ConnectionResponse"),
    ApiRoute("/connections/{connection_id}", delete_connection, methods=["DELETE"], permission=_M, summary="Delete a connection", tag="Connection", status=204),
]  # fmt: skip
