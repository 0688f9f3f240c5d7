"""Leoflow's user management (admin only), scoped to the admin's tenant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._common import audit, no_content, ok, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import collection, iso
from leoflow.store.api import UNSET, Role, User


class UserBody(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=250)
    password: str = Field(min_length=8)
    role: Role = Role.VIEWER
    email: str | None = None


class UserPatchBody(BaseModel):
    """Changes to a user; absent fields stay."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=8)
    email: str | None = None


def user_response(user: User) -> dict[str, Any]:
    """A user without secrets."""
    return {
        "username": user.username,
        "tenant": user.tenant,
        "role": user.role.value,
        "is_active": user.is_active,
        "email": user.email,
        "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at),
    }


async def list_users(request: Request) -> Response:
    """GET /leoflow/users."""
    page = query.page(request)
    result = await store_of(request).list_users(
        tenant_of(request), limit=page.limit, offset=page.offset
    )
    return ok(collection("users", [user_response(u) for u in result.items], result.total))


async def create_user(request: Request) -> Response:
    """POST /leoflow/users (409 when the username exists)."""
    body = await read_body(request, UserBody)
    user = await store_of(request).create_user(
        tenant_of(request), body.username, body.password, body.role, email=body.email
    )
    await audit(request, "user.create", extra={"username": body.username, "role": body.role.value})
    return ok(user_response(user), 201)


async def patch_user(request: Request) -> Response:
    """PATCH /leoflow/users/{username}."""
    body = await read_body(request, UserPatchBody)
    store, tenant, name = store_of(request), tenant_of(request), request.path_params["username"]
    if body.password is not None:
        await store.set_password(tenant, name, body.password)
    user = await store.update_user(
        tenant, name, role=body.role, is_active=body.is_active,
        email=body.email if "email" in body.model_fields_set else UNSET,
    )  # fmt: skip
    await audit(request, "user.edit", extra={"username": name})
    return ok(user_response(user))


async def delete_user(request: Request) -> Response:
    """DELETE /leoflow/users/{username}."""
    name = request.path_params["username"]
    await store_of(request).delete_user(tenant_of(request), name)
    await audit(request, "user.delete", extra={"username": name})
    return no_content()


_A = Permission.ADMIN
routes = [
    ApiRoute("/leoflow/users", list_users, methods=["GET"], permission=_A, summary="List users", tag="Leoflow"),
    ApiRoute("/leoflow/users", create_user, methods=["POST"], permission=_A, summary="Create a user", tag="Leoflow", body=UserBody, status=201),
    ApiRoute("/leoflow/users/{username}", patch_user, methods=["PATCH"], permission=_A, summary="Change a user's role, state or password", tag="Leoflow", body=UserPatchBody),
    ApiRoute("/leoflow/users/{username}", delete_user, methods=["DELETE"], permission=_A, summary="Delete a user", tag="Leoflow", status=204),
]  # fmt: skip
