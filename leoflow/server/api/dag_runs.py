"""DAG runs: list (``~`` for every DAG), get, trigger, patch, delete, clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from leoflow.server import query
from leoflow.server.api._common import (
    Versions,
    audit,
    no_content,
    now,
    ok,
    principal_of,
    store_of,
    tenant_of,
)
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import collection, dag_run_response, task_instance_response
from leoflow.spec import DagSpec
from leoflow.store.api import UNSET, DagRun, DagRunState, DagRunType

_RUN_ORDER = {
    "id",
    "run_id",
    "dag_run_id",
    "state",
    "logical_date",
    "run_after",
    "start_date",
    "end_date",
    "queued_at",
    "updated_at",
    "dag_id",
    "run_type",
}


class TriggerDAGRunPostBody(BaseModel):
    """Airflow's TriggerDAGRunPostBody (``logical_date`` is a required key that may be null)."""

    model_config = ConfigDict(extra="forbid")
    logical_date: datetime | None
    dag_run_id: str | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_after: datetime | None = None
    conf: dict[str, Any] | None = None
    note: str | None = None
    partition_key: str | None = None


class DAGRunPatchBody(BaseModel):
    """Airflow's DAGRunPatchBody."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["queued", "success", "failed"] | None = None
    note: str | None = None


class DAGRunClearBody(BaseModel):
    """Airflow's DAGRunClearBody."""

    model_config = ConfigDict(extra="forbid")
    dry_run: bool = True
    only_failed: bool = False
    only_new: bool = False
    """Airflow 3.2.2 client only (not in 3.2.1's spec): true is refused, see ``clear_run``."""
    run_on_latest_version: bool = False


async def run_body(
    request: Request, run: DagRun, versions: Versions | None = None
) -> dict[str, Any]:
    """DAGRunResponse of a run, with its pinned version."""
    versions = versions or Versions(request)
    return dag_run_response(run, await versions.get(run.dag_id, run.dag_version_id), now())


def _enum_list(request: Request, name: str, enum: type) -> list[Any] | None:
    values = query.list_param(request, name)
    if values is None:
        return None
    try:
        return [enum(v) for v in values]
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise BadRequest(
            f"{name}: unknown value in {values}; use one of {allowed}", field=name
        ) from None


async def list_runs(request: Request) -> Response:
    """GET /dags/{dag_id}/dagRuns (``~`` lists every DAG's runs)."""
    page = query.page(request)
    dag_id = request.path_params["dag_id"]
    store, tenant = store_of(request), tenant_of(request)
    if dag_id != query.WILDCARD:
        await store.get_dag(tenant, dag_id)
    ranges = {
        f"{p}_{side}": value
        for p in ("logical_date", "start_date", "end_date", "run_after", "updated_at")
        for side, value in zip(("gte", "lte"), query.date_range(request, p), strict=True)
    }
    order = query.order_by(request, _RUN_ORDER, "id").replace("dag_run_id", "run_id")
    result = await store.list_runs(
        tenant,
        dag_id,
        run_id_pattern=request.query_params.get("run_id_pattern") or None,
        states=_enum_list(request, "state", DagRunState),
        run_types=_enum_list(request, "run_type", DagRunType),
        limit=page.limit,
        offset=page.offset,
        order_by=order,
        **ranges,
    )
    versions = Versions(request)
    runs = [await run_body(request, r, versions) for r in result.items]
    return ok(collection("dag_runs", runs, result.total))


async def get_run(request: Request) -> Response:
    """GET /dags/{dag_id}/dagRuns/{dag_run_id}."""
    p = request.path_params
    run = await store_of(request).get_run(tenant_of(request), p["dag_id"], p["dag_run_id"])
    return ok(await run_body(request, run))


def validate_conf(spec: DagSpec, conf: dict[str, Any]) -> None:
    """Check trigger-time conf against the DAG's params (their JSON Schemas); 400 naming the key."""
    for name, param in spec.params.items():
        if name not in conf:
            if not param.has_default:
                raise BadRequest(
                    f"conf.{name}: the DAG param {name!r} has no default and must be given",
                    field=f"conf.{name}",
                )
            continue
        if not param.schema_:
            continue
        try:
            jsonschema.validate(conf[name], param.schema_)
        except jsonschema.ValidationError as exc:
            raise BadRequest(
                f"conf.{name}: {exc.message} (the DAG param {name!r} requires {param.schema_})",
                field=f"conf.{name}",
            ) from None
        except jsonschema.SchemaError as exc:
            raise BadRequest(f"conf.{name}: the param's schema is invalid: {exc.message}") from None


async def trigger_run(request: Request) -> Response:
    """POST /dags/{dag_id}/dagRuns: trigger a run (200 DAGRunResponse, as Airflow 3)."""
    body = await read_body(request, TriggerDAGRunPostBody)
    dag_id = request.path_params["dag_id"]
    store, principal = store_of(request), principal_of(request)
    dag = await store.get_dag(principal.tenant, dag_id)
    conf = body.conf or {}
    if dag.current_version_id is not None:
        validate_conf(await store.get_spec(dag.current_version_id), conf)
    run = await store.create_run(
        principal.tenant,
        dag_id,
        run_id=body.dag_run_id,
        logical_date=body.logical_date,
        data_interval_start=body.data_interval_start,
        data_interval_end=body.data_interval_end,
        run_after=body.run_after,
        conf=conf,
        note=body.note,
        run_type=DagRunType.MANUAL,
        triggered_by="rest_api",
        triggering_user_name=principal.username,
    )
    await audit(request, "trigger_dag_run", dag_id=dag_id, run_id=run.run_id, extra={"conf": conf})
    return ok(await run_body(request, run))


async def patch_run(request: Request) -> Response:
    """PATCH /dags/{dag_id}/dagRuns/{dag_run_id}: mark the state and/or set the note."""
    body = await read_body(request, DAGRunPatchBody)
    mask = query.list_param(request, "update_mask")
    fields = set(mask) if mask else body.model_fields_set
    unknown = fields - {"state", "note"}
    if unknown:
        raise BadRequest(f"update_mask: unknown field(s) {sorted(unknown)}", field="update_mask")
    p = request.path_params
    run = await store_of(request).patch_run(
        tenant_of(request),
        p["dag_id"],
        p["dag_run_id"],
        state=DagRunState(body.state) if "state" in fields and body.state else None,
        note=body.note if "note" in fields else UNSET,
    )
    event = f"dag_run_mark_{body.state}" if "state" in fields and body.state else "dag_run_note"
    await audit(request, event, dag_id=p["dag_id"], run_id=p["dag_run_id"])
    return ok(await run_body(request, run))


async def delete_run(request: Request) -> Response:
    """DELETE /dags/{dag_id}/dagRuns/{dag_run_id}."""
    p = request.path_params
    await store_of(request).delete_run(tenant_of(request), p["dag_id"], p["dag_run_id"])
    await audit(request, "delete_dag_run", dag_id=p["dag_id"], run_id=p["dag_run_id"])
    return no_content()


async def clear_run(request: Request) -> Response:
    """POST /dags/{dag_id}/dagRuns/{dag_run_id}/clear: preview (dry_run) or clear and re-queue."""
    body = await read_body(request, DAGRunClearBody)
    if body.only_new:
        # Refused rather than ignored: clearing every task would do what the caller asked not to.
        raise BadRequest(
            "only_new: queueing only the tasks a newer DAG version added is not supported by "
            "Leoflow; clear the run with run_on_latest_version=true, or mark the existing "
            "tasks' states instead",
            field="only_new",
        )
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    tis = await store.clear_run(
        tenant,
        p["dag_id"],
        p["dag_run_id"],
        only_failed=body.only_failed,
        dry_run=body.dry_run,
        run_on_latest_version=body.run_on_latest_version,
    )
    versions = Versions(request)
    if body.dry_run:
        items = [
            task_instance_response(ti, await versions.get(ti.dag_id, ti.dag_version_id), now())
            for ti in tis
        ]
        return ok(collection("task_instances", items, len(items)))
    await audit(request, "clear_dag_run", dag_id=p["dag_id"], run_id=p["dag_run_id"])
    run = await store.get_run(tenant, p["dag_id"], p["dag_run_id"])
    return ok(await run_body(request, run, versions))


_RUN = "/dags/{dag_id}/dagRuns/{dag_run_id}"
routes = [
    ApiRoute("/dags/{dag_id}/dagRuns", list_runs, methods=["GET"], permission=Permission.READ, summary="List DAG runs (dag_id ~ for all)", tag="DagRun", response="DAGRunCollectionResponse"),
    ApiRoute("/dags/{dag_id}/dagRuns", trigger_run, methods=["POST"], permission=Permission.EXECUTE, summary="Trigger a DAG run", tag="DagRun", body=TriggerDAGRunPostBody, response="DAGRunResponse"),
    ApiRoute(_RUN, get_run, methods=["GET"], permission=Permission.READ, summary="Get a DAG run", tag="DagRun", response="DAGRunResponse"),
    ApiRoute(_RUN, patch_run, methods=["PATCH"], permission=Permission.EXECUTE, summary="Mark a DAG run's state or set its note", tag="DagRun", body=DAGRunPatchBody, response="DAGRunResponse"),
    ApiRoute(_RUN, delete_run, methods=["DELETE"], permission=Permission.EXECUTE, summary="Delete a DAG run", tag="DagRun", status=204),
    ApiRoute(_RUN + "/clear", clear_run, methods=["POST"], permission=Permission.EXECUTE, summary="Clear a DAG run", tag="DagRun", body=DAGRunClearBody),
]  # fmt: skip
