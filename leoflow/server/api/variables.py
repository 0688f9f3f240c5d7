"""Variables: CRUD and Airflow's bulk PATCH."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._bulk import bulk_body_model, bulk_response, to_actions
from leoflow.server.api._common import audit, no_content, ok, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import collection
from leoflow.store.api import Variable

_SENSITIVE = ("access_token", "api_key", "apikey", "authorization", "passphrase", "passwd",
              "password", "private_key", "secret", "token")  # fmt: skip


class VariableBody(BaseModel):
    """Airflow's VariableBody (value is any JSON; non-strings are stored as JSON text)."""

    model_config = ConfigDict(extra="forbid")
    key: str
    value: Any
    description: str | None = None
    team_name: str | None = None


VariableBulkBody = bulk_body_model(VariableBody)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def to_variable(body: VariableBody) -> Variable:
    """The store object of a body."""
    if not body.key or len(body.key) > 250:
        raise BadRequest("key: must be 1 to 250 characters", field="key")
    return Variable(key=body.key, value=_text(body.value), description=body.description)


def variable_response(variable: Variable) -> dict[str, Any]:
    """VariableResponse, masking values of sensitive-looking keys as Airflow does."""
    sensitive = any(word in variable.key.lower() for word in _SENSITIVE)
    return {
        "key": variable.key,
        "value": "***" if sensitive else variable.value,
        "description": variable.description,
        "is_encrypted": False,
        "team_name": None,
    }


async def list_variables(request: Request) -> Response:
    """GET /variables."""
    page = query.page(request)
    order = query.order_by(request, {"key", "id", "description", "_val", "is_encrypted"}, "id")
    if order.lstrip("-") in ("_val", "is_encrypted"):
        order = order.replace("_val", "key").replace("is_encrypted", "key")
    result = await store_of(request).list_variables(
        tenant_of(request),
        key_pattern=request.query_params.get("variable_key_pattern") or None,
        limit=page.limit,
        offset=page.offset,
        order_by=order,
    )
    items = [variable_response(v) for v in result.items]
    return ok(collection("variables", items, result.total))


async def get_variable(request: Request) -> Response:
    """GET /variables/{variable_key}."""
    variable = await store_of(request).get_variable(
        tenant_of(request), request.path_params["variable_key"]
    )
    return ok(variable_response(variable))


async def create_variable(request: Request) -> Response:
    """POST /variables (409 when the key exists)."""
    body = await read_body(request, VariableBody)
    variable = await store_of(request).create_variable(tenant_of(request), to_variable(body))
    await audit(request, "variable.create", extra={"key": body.key})
    return ok(variable_response(variable), 201)


async def patch_variable(request: Request) -> Response:
    """PATCH /variables/{variable_key} (update_mask: value, description)."""
    body = await read_body(request, VariableBody)
    key = request.path_params["variable_key"]
    if body.key != key:
        raise BadRequest("key: the body's key does not match the URL", field="key")
    store, tenant = store_of(request), tenant_of(request)
    current = await store.get_variable(tenant, key)
    mask = set(query.list_param(request, "update_mask") or ["value", "description"])
    if mask - {"value", "description", "key"}:
        raise BadRequest(
            f"update_mask: unknown field(s) {sorted(mask - {'value', 'description', 'key'})}",
            field="update_mask",
        )
    updated = Variable(
        key=key,
        value=_text(body.value) if "value" in mask else current.value,
        description=body.description if "description" in mask else current.description,
    )
    variable = await store.update_variable(tenant, updated)
    await audit(request, "variable.edit", extra={"key": key})
    return ok(variable_response(variable))


async def delete_variable(request: Request) -> Response:
    """DELETE /variables/{variable_key}."""
    key = request.path_params["variable_key"]
    await store_of(request).delete_variable(tenant_of(request), key)
    await audit(request, "variable.delete", extra={"key": key})
    return no_content()


async def bulk_variables(request: Request) -> Response:
    """PATCH /variables: Airflow's bulk create/update/delete."""
    body = await read_body(request, VariableBulkBody)
    actions = to_actions(body, to_variable, lambda e: e.key)
    result = await store_of(request).bulk_variables(tenant_of(request), actions)
    await audit(request, "variable.bulk")
    return ok(bulk_response(result))


_R, _M = Permission.READ, Permission.MANAGE
routes = [
    ApiRoute("/variables", list_variables, methods=["GET"], permission=_R, summary="List variables", tag="Variable", response="VariableCollectionResponse"),
    ApiRoute("/variables", create_variable, methods=["POST"], permission=_M, summary="Create a variable", tag="Variable", body=VariableBody, response="VariableResponse", status=201),
    ApiRoute("/variables", bulk_variables, methods=["PATCH"], permission=_M, summary="Bulk create, update, delete variables", tag="Variable", body=VariableBulkBody, response="BulkResponse"),
    ApiRoute("/variables/{variable_key}", get_variable, methods=["GET"], permission=_R, summary="Get a variable", tag="Variable", response="VariableResponse"),
    ApiRoute("/variables/{variable_key}", patch_variable, methods=["PATCH"], permission=_M, summary="Update a variable", tag="Variable", body=VariableBody, response="VariableResponse"),
    ApiRoute("/variables/{variable_key}", delete_variable, methods=["DELETE"], permission=_M, summary="Delete a variable", tag="Variable", status=204),
]  # fmt: skip
