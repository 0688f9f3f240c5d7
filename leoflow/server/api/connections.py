"""Connections: CRUD and bulk PATCH; passwords are write-only (answered as ``***``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
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


TEST_TIMEOUT_SECONDS = 5.0
DEFAULT_PORTS = {
    "postgres": 5432, "postgresql": 5432, "redshift": 5439, "mysql": 3306, "mssql": 1433,
    "oracle": 1521, "vertica": 5433, "exasol": 8563, "clickhouse": 9000, "trino": 8080,
    "presto": 8080, "hiveserver2": 10000, "hive_cli": 10000, "impala": 21050, "druid": 8082,
    "pinot": 8099, "redis": 6379, "mongo": 27017, "cassandra": 9042, "neo4j": 7687,
    "elasticsearch": 9200, "opensearch": 9200, "kafka": 9092, "amqp": 5672, "rabbitmq": 5672,
    "ssh": 22, "sftp": 22, "ftp": 21, "ftps": 990, "smtp": 25, "email": 25, "imap": 993,
    "ldap": 389, "samba": 445, "grpc": 443, "docker": 2375, "http": 80, "https": 443,
}  # fmt: skip
"""Ports tried when a connection under test has none, by conn_type."""


def _http_url(body: ConnectionBody) -> str | None:
    """The URL to GET for an http(s) connection, or None when the type is not HTTP."""
    host = (body.host or "").strip()
    if body.conn_type not in ("http", "https") and not host.startswith(("http://", "https://")):
        return None
    if "://" not in host:
        host = f"{'https' if body.conn_type == 'https' else 'http'}://{host}"
    url = httpx.URL(host)
    if body.port is not None:
        url = url.copy_with(port=body.port)
    if body.schema_:
        url = url.join(body.schema_)
    return str(url)


async def _test_http(url: str) -> tuple[bool, str]:
    try:
        # httpx's timeout is per phase; the overall bound keeps the answer within 5 s.
        async with (
            asyncio.timeout(TEST_TIMEOUT_SECONDS),
            httpx.AsyncClient(timeout=TEST_TIMEOUT_SECONDS) as client,
        ):
            response = await client.get(url)
    except TimeoutError:
        return False, f"GET {url} timed out after {TEST_TIMEOUT_SECONDS:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return False, f"GET {url} failed: {type(exc).__name__}: {exc}"
    if response.status_code >= 500:
        return False, f"GET {url} answered {response.status_code} {response.reason_phrase}"
    return True, f"Connection successfully tested: GET {url} answered {response.status_code}"


async def _test_tcp(body: ConnectionBody) -> tuple[bool, str]:
    host = (body.host or "").strip()
    if not host:
        return False, f"host is empty: a {body.conn_type!r} connection needs a host to test"
    port = body.port if body.port is not None else DEFAULT_PORTS.get(body.conn_type)
    if port is None:
        return False, (
            f"port is empty and conn_type {body.conn_type!r} has no well-known default port; "
            "set the connection's port"
        )
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), TEST_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return False, f"TCP connect to {host}:{port} timed out after {TEST_TIMEOUT_SECONDS:g} s"
    except (OSError, ValueError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return False, f"TCP connect to {host}:{port} failed: {reason}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, f"Connection successfully tested: {host}:{port} accepts TCP connections"


async def _test(body: ConnectionBody) -> tuple[bool, str]:
    if body.port is not None and not 0 < body.port < 65536:
        return False, f"port {body.port} is out of range: use 1-65535"
    try:
        url = _http_url(body)
    except httpx.InvalidURL as exc:
        return False, f"host and port do not make a valid URL: {exc}"
    return await (_test_http(url) if url else _test_tcp(body))


async def test_connection(request: Request) -> Response:
    """POST /connections/test: can the control plane reach the connection's endpoint?

    HTTP(S) connections pass when a GET answers below 500; others when a TCP connection to
    host:port (or the conn_type's well-known port) opens within 5 s. Credentials are not
    checked: the control plane runs no provider hooks. Op and Admin only, since it makes the
    server open connections to addresses the caller chooses.
    """
    body = await read_body(request, ConnectionBody)
    status, message = await _test(body)
    await audit(request, "connection.test", extra={"connection_id": body.connection_id})
    return ok({"status": status, "message": message})


_R, _M = Permission.READ, Permission.MANAGE
routes = [
    ApiRoute("/connections/test", test_connection, methods=["POST"], permission=_M, summary="Test a connection's reachability from the control plane", tag="Connection", body=ConnectionBody, response="ConnectionTestResponse"),
    ApiRoute("/connections", list_connections, methods=["GET"], permission=_R, summary="List connections", tag="Connection", response="ConnectionCollectionResponse"),
    ApiRoute("/connections", create_connection, methods=["POST"], permission=_M, summary="Create a connection", tag="Connection", body=ConnectionBody, response="ConnectionResponse", status=201),
    ApiRoute("/connections", bulk_connections, methods=["PATCH"], permission=_M, summary="Bulk create, update, delete connections", tag="Connection", body=ConnectionBulkBody, response="BulkResponse"),
    ApiRoute("/connections/{connection_id}", get_connection, methods=["GET"], permission=_R, summary="Get a connection", tag="Connection", response="ConnectionResponse"),
    ApiRoute("/connections/{connection_id}", patch_connection, methods=["PATCH"], permission=_M, summary="Update a connection", tag="Connection", body=ConnectionBody, response="ConnectionResponse"),
    ApiRoute("/connections/{connection_id}", delete_connection, methods=["DELETE"], permission=_M, summary="Delete a connection", tag="Connection", status=204),
]  # fmt: skip
