"""The route table: every API route declares its permission, body model and doc in one place.

``ApiRoute`` is a Starlette ``Route`` that also carries what the OpenAPI document and the auth
gate need. A route is public only when it says ``permission=None``; otherwise the wrapper
authenticates the request (401) and checks the caller's role (403) before the endpoint runs,
and the endpoint finds the caller on ``request.state.principal``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leoflow.server.auth import Permission, authenticate, authorize
from leoflow.server.errors import BadRequest, UnprocessableEntity


class SignedIntConvertor(Convertor[int]):
    """``{name:sint}``: an integer that may be negative (Airflow's map_index -1)."""

    regex = "-?[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("sint", SignedIntConvertor())

Endpoint = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


class ApiRoute(Route):
    """A Route with a required permission, an optional body model and OpenAPI facts."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: list[str],
        permission: Permission | None,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        response: str | None = None,
        status: int = 200,
        name: str | None = None,
    ) -> None:
        self.permission = permission
        self.summary = summary
        self.tag = tag
        self.body_model = body
        self.response_schema = response
        self.status = status
        self.operation_id = name or endpoint.__name__
        super().__init__(
            path, _guard(endpoint, permission), methods=methods, name=name or endpoint.__name__
        )


def _guard(endpoint: Endpoint, permission: Permission | None) -> Endpoint:
    if permission is None:
        return endpoint

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        principal = authenticate(request)
        authorize(principal, permission)
        request.state.principal = principal
        return await endpoint(request)

    return guarded


async def read_body(request: Request, model: type[M]) -> M:
    """Parse the JSON body into ``model``; 400 for broken JSON, 422 naming the bad field."""
    raw = await request.body()
    try:
        data: Any = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if data is None:
        raise UnprocessableEntity("request body is required", field="body")
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` against ``model`` with errors naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnprocessableEntity.from_validation(exc) from exc
