"""Helpers every API module uses: the store and caller of a request, clocks, version lookups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from leoflow.server.auth import Principal
from leoflow.server.serializers import dag_version_response
from leoflow.store.api import StoreAPI


def store_of(request: Request) -> StoreAPI:
    """The store opened by the lifespan."""
    return request.state.store


def redis_of(request: Request) -> Any:
    """The Redis store opened by the lifespan (None when no Redis is configured)."""
    return getattr(request.state, "redis", None)


def principal_of(request: Request) -> Principal:
    """The authenticated caller (set by the route guard)."""
    return request.state.principal


def tenant_of(request: Request) -> str:
    """The caller's tenant; every store call is scoped by it."""
    return principal_of(request).tenant


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def path_int(request: Request, name: str) -> int:
    """An integer path parameter (routes use the ``int`` convertor, so this only narrows types)."""
    return int(request.path_params[name])


class FastJSONResponse(JSONResponse):
    """JSONResponse encoded by orjson: a 50-DAG page encodes ~10x faster than with json.dumps.

    Bodies orjson refuses (integers beyond 64 bits in a user's variable or conf) fall back to
    the standard encoder, so the output never depends on which encoder ran.
    """

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return super().render(content)


def ok(body: Any, status: int = 200) -> Response:
    """A JSON response."""
    return FastJSONResponse(body, status_code=status)


def no_content() -> Response:
    """204."""
    return Response(status_code=204)


async def audit(request: Request, event: str, **fields: Any) -> None:
    """Append an event log entry owned by the caller."""
    principal = principal_of(request)
    await store_of(request).add_audit(principal.tenant, event, owner=principal.username, **fields)


class Versions:
    """Per-request cache of DagVersionResponse bodies, loaded one DAG at a time."""

    def __init__(self, request: Request) -> None:
        self._store = store_of(request)
        self._tenant = tenant_of(request)
        self._by_dag: dict[str, dict[UUID, dict[str, Any]]] = {}

    async def get(self, dag_id: str, version_id: UUID | None) -> dict[str, Any] | None:
        """The version body, or None when unknown."""
        if version_id is None:
            return None
        if dag_id not in self._by_dag:
            page = await self._store.list_dag_versions(self._tenant, dag_id, limit=10_000)
            self._by_dag[dag_id] = {v.id: dag_version_response(v) for v in page.items}
        return self._by_dag[dag_id].get(version_id)
