"""DAGs, their tasks, versions and sources; plus Leoflow's route to register a compiled DAG."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from leoflow.errors import NotFound, SpecError
from leoflow.server import query
from leoflow.server.api._common import (
    Versions,
    audit,
    ok,
    path_int,
    principal_of,
    store_of,
    tenant_of,
)
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import (
    collection,
    dag_details_response,
    dag_response,
    dag_version_response,
    task_response,
)
from leoflow.spec import DagSpec, loads
from leoflow.store.api import Dag

_DAG_ORDER = {
    "dag_id",
    "dag_display_name",
    "next_dagrun",
    "last_parsed_time",
    "owner",
    "is_paused",
    "created_at",
    "updated_at",
}


class DAGPatchBody(BaseModel):
    """Airflow's DAGPatchBody."""

    model_config = ConfigDict(extra="forbid")
    is_paused: bool


def _update_mask(request: Request) -> None:
    mask = query.list_param(request, "update_mask")
    if mask and set(mask) - {"is_paused"}:
        raise BadRequest(
            f"update_mask: only is_paused can be updated, got {sorted(set(mask) - {'is_paused'})}",
            field="update_mask",
        )


async def list_dags(request: Request) -> Response:
    """GET /dags (``is_favorite`` filters on the caller's favorites)."""
    page = query.page(request)
    result = await store_of(request).list_dags(
        tenant_of(request),
        dag_id_pattern=request.query_params.get("dag_id_pattern") or None,
        tags=query.list_param(request, "tags"),
        tags_match_mode="all" if request.query_params.get("tags_match_mode") == "all" else "any",
        owners=query.list_param(request, "owners"),
        paused=query.bool_param(request, "paused"),
        exclude_stale=query.bool_param(request, "exclude_stale") is not False,
        limit=page.limit,
        offset=page.offset,
        order_by=query.order_by(request, _DAG_ORDER, "dag_id"),
        favorite_of=principal_of(request).username,
        is_favorite=query.bool_param(request, "is_favorite"),
    )
    return ok(collection("dags", [dag_response(d) for d in result.items], result.total))


async def patch_dags(request: Request) -> Response:
    """PATCH /dags: pause or unpause every matching DAG."""
    _update_mask(request)
    body = await read_body(request, DAGPatchBody)
    dags = await store_of(request).patch_dags(
        tenant_of(request),
        is_paused=body.is_paused,
        dag_id_pattern=request.query_params.get("dag_id_pattern") or None,
        tags=query.list_param(request, "tags"),
        owners=query.list_param(request, "owners"),
    )
    return ok(collection("dags", [dag_response(d) for d in dags], len(dags)))


async def get_dag(request: Request) -> Response:
    """GET /dags/{dag_id}."""
    dag = await store_of(request).get_dag(tenant_of(request), request.path_params["dag_id"])
    return ok(dag_response(dag))


async def patch_dag(request: Request) -> Response:
    """PATCH /dags/{dag_id}: pause or unpause."""
    _update_mask(request)
    body = await read_body(request, DAGPatchBody)
    dag_id = request.path_params["dag_id"]
    dag = await store_of(request).patch_dag(tenant_of(request), dag_id, is_paused=body.is_paused)
    await audit(request, "paused" if body.is_paused else "unpaused", dag_id=dag_id)
    return ok(dag_response(dag))


async def delete_dag(request: Request) -> Response:
    """DELETE /dags/{dag_id}: the DAG with its versions, runs and task instances."""
    dag_id = request.path_params["dag_id"]
    await store_of(request).delete_dag(tenant_of(request), dag_id)
    await audit(request, "delete_dag", dag_id=dag_id)
    return ok(None)


async def _current_spec(request: Request, dag: Dag) -> DagSpec:
    if dag.current_version_id is None:
        raise NotFound(f"DAG {dag.dag_id!r} has no registered version", field="dag_id")
    return await store_of(request).get_spec(dag.current_version_id)


async def get_dag_details(request: Request) -> Response:
    """GET /dags/{dag_id}/details."""
    store, tenant = store_of(request), tenant_of(request)
    dag = await store.get_dag(tenant, request.path_params["dag_id"])
    spec = await _current_spec(request, dag) if dag.current_version_id else None
    latest = await Versions(request).get(dag.dag_id, dag.current_version_id)
    favorite = await store.is_dag_favorite(tenant, principal_of(request).username, dag.dag_id)
    return ok(dag_details_response(dag, spec, latest, is_favorite=favorite))


async def list_tasks(request: Request) -> Response:
    """GET /dags/{dag_id}/tasks (topological order unless order_by says otherwise)."""
    dag = await store_of(request).get_dag(tenant_of(request), request.path_params["dag_id"])
    spec = await _current_spec(request, dag)
    order = query.order_by(request, {"task_id", "topological"}, "topological")
    ids = spec.topological_order() if order == "topological" else sorted(spec_ids(spec))
    if order == "-task_id":
        ids.reverse()
    tasks = [task_response(spec, spec.task(i)) for i in ids]
    return ok(collection("tasks", tasks, len(tasks)))


def spec_ids(spec: DagSpec) -> list[str]:
    """Task ids of a spec."""
    return [t.task_id for t in spec.tasks]


async def get_task(request: Request) -> Response:
    """GET /dags/{dag_id}/tasks/{task_id}."""
    dag = await store_of(request).get_dag(tenant_of(request), request.path_params["dag_id"])
    spec = await _current_spec(request, dag)
    task_id = request.path_params["task_id"]
    try:
        task = spec.task(task_id)
    except KeyError:
        raise NotFound(
            f"Task {task_id!r} not found in DAG {dag.dag_id!r}", field="task_id"
        ) from None
    return ok(task_response(spec, task))


async def list_dag_versions(request: Request) -> Response:
    """GET /dags/{dag_id}/dagVersions (``~`` for every DAG)."""
    page = query.page(request)
    dag_id = request.path_params["dag_id"]
    store, tenant = store_of(request), tenant_of(request)
    if dag_id != query.WILDCARD:
        await store.get_dag(tenant, dag_id)
    result = await store.list_dag_versions(
        tenant,
        dag_id,
        limit=page.limit,
        offset=page.offset,
        order_by=_version_order(request),
    )
    body = [dag_version_response(v) for v in result.items]
    return ok(collection("dag_versions", body, result.total))


def _version_order(request: Request) -> str:
    allowed = {"version_number", "created_at", "dag_id", "id", "bundle_version"}
    value = query.order_by(request, allowed, "version_number")
    # Airflow's version "id" is a UUID; ordering by it means nothing, so use registration order.
    desc, name = value.startswith("-"), value.lstrip("-")
    name = "version_number" if name in ("id", "bundle_version") else name
    return f"-{name}" if desc else name


async def get_dag_version(request: Request) -> Response:
    """GET /dags/{dag_id}/dagVersions/{version_number}."""
    version = await store_of(request).get_dag_version(
        tenant_of(request), request.path_params["dag_id"], path_int(request, "version_number")
    )
    return ok(dag_version_response(version))


async def get_dag_source(request: Request) -> Response:
    """GET /dagSources/{dag_id}."""
    number = query.int_param(request, "version_number", 0, minimum=0) or None
    source = await store_of(request).get_dag_source(
        tenant_of(request), request.path_params["dag_id"], number
    )
    if "text/plain" in request.headers.get("accept", ""):
        return Response(source.content, media_type="text/plain")
    return ok(
        {
            "content": source.content,
            "dag_id": source.dag_id,
            "version_number": source.version_number,
            "dag_display_name": source.dag_id,
        }
    )


async def list_dag_tags(request: Request) -> Response:
    """GET /dagTags."""
    page = query.page(request)
    result = await store_of(request).list_dag_tags(
        tenant_of(request),
        pattern=request.query_params.get("tag_name_pattern") or None,
        limit=page.limit,
        offset=page.offset,
    )
    return ok(collection("tags", list(result.items), result.total))


async def register_dag_version(request: Request) -> Response:
    """POST /leoflow/dags/{dag_id}/versions: body is a compiled dag.json; 201 new, 200 identical."""
    raw = await request.body()
    spec = loads(raw, source="request body")
    dag_id = request.path_params["dag_id"]
    if spec.dag_id != dag_id:
        raise SpecError(
            f"dag_id {spec.dag_id!r} in the body does not match {dag_id!r} in the URL",
            field="dag_id",
            hint=f"POST it to /api/v2/leoflow/dags/{spec.dag_id}/versions",
        )
    principal = principal_of(request)
    version, created = await store_of(request).register_version(
        principal.tenant, spec, created_by=principal.username
    )
    if created:
        await audit(
            request, "dag_version_registered", dag_id=dag_id, extra={"version": version.label}
        )
    body = {
        **dag_version_response(version),
        "version": version.label,
        "content_hash": version.content_hash,
        "created": created,
    }
    return ok(body, 201 if created else 200)


_VERSIONS_PATH = "/dags/{dag_id}/versions"
routes = [
    ApiRoute("/dags", list_dags, methods=["GET"], permission=Permission.READ, summary="List DAGs", tag="DAG", response="DAGCollectionResponse"),
    ApiRoute("/dags", patch_dags, methods=["PATCH"], permission=Permission.EXECUTE, summary="Pause or unpause DAGs", tag="DAG", body=DAGPatchBody, response="DAGCollectionResponse"),
    ApiRoute("/dags/{dag_id}", get_dag, methods=["GET"], permission=Permission.READ, summary="Get a DAG", tag="DAG", response="DAGResponse"),
    ApiRoute("/dags/{dag_id}", patch_dag, methods=["PATCH"], permission=Permission.EXECUTE, summary="Pause or unpause a DAG", tag="DAG", body=DAGPatchBody, response="DAGResponse"),
    ApiRoute("/dags/{dag_id}", delete_dag, methods=["DELETE"], permission=Permission.MANAGE, summary="Delete a DAG", tag="DAG"),
    ApiRoute("/dags/{dag_id}/details", get_dag_details, methods=["GET"], permission=Permission.READ, summary="Get DAG details", tag="DAG", response="DAGDetailsResponse"),
    ApiRoute("/dags/{dag_id}/tasks", list_tasks, methods=["GET"], permission=Permission.READ, summary="List tasks", tag="Task", response="TaskCollectionResponse"),
    ApiRoute("/dags/{dag_id}/tasks/{task_id}", get_task, methods=["GET"], permission=Permission.READ, summary="Get a task", tag="Task", response="TaskResponse"),
    ApiRoute("/dags/{dag_id}/dagVersions", list_dag_versions, methods=["GET"], permission=Permission.READ, summary="List DAG versions", tag="DagVersion", response="DAGVersionCollectionResponse"),
    ApiRoute("/dags/{dag_id}/dagVersions/{version_number:int}", get_dag_version, methods=["GET"], permission=Permission.READ, summary="Get a DAG version", tag="DagVersion", response="DagVersionResponse"),
    ApiRoute("/dagSources/{dag_id}", get_dag_source, methods=["GET"], permission=Permission.READ, summary="Get a DAG's source", tag="DagSource", response="DAGSourceResponse"),
    ApiRoute("/dagTags", list_dag_tags, methods=["GET"], permission=Permission.READ, summary="List DAG tags", tag="DAG", response="DAGTagCollectionResponse"),
    ApiRoute("/leoflow" + _VERSIONS_PATH, register_dag_version, methods=["POST"], permission=Permission.MANAGE, summary="Register a compiled DAG version (body: dag.json)", tag="Leoflow", status=201, name="register_dag_version"),
    ApiRoute(_VERSIONS_PATH, register_dag_version, methods=["POST"], permission=Permission.MANAGE, summary="Register a compiled DAG version (upstream path)", tag="Leoflow", status=201, name="register_dag_version_upstream"),
]  # fmt: skip
