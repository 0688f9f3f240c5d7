"""Pools: CRUD and bulk PATCH, with live slot occupancy from the store."""

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
from leoflow.store.api import Pool


class PoolBody(BaseModel):
    """Airflow's PoolBody."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ID_PATTERN, max_length=256)
    slots: int = Field(ge=-1)
    description: str | None = None
    include_deferred: bool = False
    team_name: str | None = None


class PoolPatchBody(BaseModel):
    """Airflow's PoolPatchBody."""

    model_config = ConfigDict(extra="forbid")
    pool: str | None = None
    slots: int | None = Field(default=None, ge=-1)
    description: str | None = None
    include_deferred: bool | None = None
    team_name: str | None = None


PoolBulkBody = bulk_body_model(PoolBody)


def to_pool(body: PoolBody) -> Pool:
    """The store object of a body."""
    return Pool(
        name=body.name,
        slots=body.slots,
        description=body.description,
        include_deferred=body.include_deferred,
    )


def pool_response(pool: Pool) -> dict[str, Any]:
    """PoolResponse (open_slots of an unlimited pool is reported as -1)."""
    open_slots = pool.open_slots
    return {
        "name": pool.name,
        "slots": pool.slots,
        "description": pool.description,
        "include_deferred": pool.include_deferred,
        "occupied_slots": pool.occupied_slots,
        "running_slots": pool.running_slots,
        "queued_slots": pool.queued_slots,
        "scheduled_slots": pool.scheduled_slots,
        "open_slots": -1 if open_slots == float("inf") else int(open_slots),
        "deferred_slots": pool.deferred_slots,
        "team_name": None,
    }


async def list_pools(request: Request) -> Response:
    """GET /pools."""
    page = query.page(request)
    result = await store_of(request).list_pools(
        tenant_of(request),
        name_pattern=request.query_params.get("pool_name_pattern") or None,
        limit=page.limit,
        offset=page.offset,
        order_by=query.order_by(request, {"id", "name", "pool", "slots"}, "id").replace(
            "pool", "name"
        ),
    )
    return ok(collection("pools", [pool_response(p) for p in result.items], result.total))


async def get_pool(request: Request) -> Response:
    """GET /pools/{pool_name}."""
    return ok(
        pool_response(
            await store_of(request).get_pool(tenant_of(request), request.path_params["pool_name"])
        )
    )


async def create_pool(request: Request) -> Response:
    """POST /pools (409 when it exists)."""
    body = await read_body(request, PoolBody)
    pool = await store_of(request).create_pool(tenant_of(request), to_pool(body))
    await audit(request, "pool.create", extra={"pool": body.name})
    return ok(pool_response(pool), 201)


async def patch_pool(request: Request) -> Response:
    """PATCH /pools/{pool_name} (update_mask limits the fields)."""
    body = await read_body(request, PoolPatchBody)
    name = request.path_params["pool_name"]
    if body.pool is not None and body.pool != name:
        raise BadRequest("pool: renaming a pool is not supported", field="pool")
    store, tenant = store_of(request), tenant_of(request)
    current = await store.get_pool(tenant, name)
    mask = set(query.list_param(request, "update_mask") or body.model_fields_set) - {
        "pool",
        "name",
        "team_name",
    }
    if mask - {"slots", "description", "include_deferred"}:
        raise BadRequest(f"update_mask: unknown field(s) {sorted(mask)}", field="update_mask")
    updated = Pool(
        name=name,
        slots=body.slots if "slots" in mask and body.slots is not None else current.slots,
        description=body.description if "description" in mask else current.description,
        include_deferred=(
            body.include_deferred
            if "include_deferred" in mask and body.include_deferred is not None
            else current.include_deferred
        ),
    )
    pool = await store.update_pool(tenant, updated)
    await audit(request, "pool.edit", extra={"pool": name})
    return ok(pool_response(pool))


async def delete_pool(request: Request) -> Response:
    """DELETE /pools/{pool_name} (default_pool cannot be deleted: 400)."""
    name = request.path_params["pool_name"]
    await store_of(request).delete_pool(tenant_of(request), name)
    await audit(request, "pool.delete", extra={"pool": name})
    return no_content()


async def bulk_pools(request: Request) -> Response:
    """PATCH /pools: Airflow's bulk create/update/delete."""
    body = await read_body(request, PoolBulkBody)
    result = await store_of(request).bulk_pools(
        tenant_of(request), to_actions(body, to_pool, lambda e: e.name)
    )
    await audit(request, "pool.bulk")
    return ok(bulk_response(result))


_R, _M = Permission.READ, Permission.MANAGE
routes = [
    ApiRoute("/pools", list_pools, methods=["GET"], permission=_R, summary="List pools", tag="Pool", response="PoolCollectionResponse"),
    ApiRoute("/pools", create_pool, methods=["POST"], permission=_M, summary="Create a pool", tag="Pool", body=PoolBody, response="PoolResponse", status=201),
    ApiRoute("/pools", bulk_pools, methods=["PATCH"], permission=_M, summary="Bulk create, update, delete pools", tag="Pool", body=PoolBulkBody, response="BulkResponse"),
    ApiRoute("/pools/{pool_name}", get_pool, methods=["GET"], permission=_R, summary="Get a pool", tag="Pool", response="PoolResponse"),
    ApiRoute("/pools/{pool_name}", patch_pool, methods=["PATCH"], permission=_M, summary="Update a pool", tag="Pool", body=PoolPatchBody, response="PoolResponse"),
    ApiRoute("/pools/{pool_name}", delete_pool, methods=["DELETE"], permission=_M, summary="Delete a pool", tag="Pool", status=204),
]  # fmt: skip
