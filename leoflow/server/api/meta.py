"""Version, health, and schema-valid empty answers for Airflow features Leoflow does not have."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from leoflow import __version__
from leoflow.server import query
from leoflow.server.api._common import ok, principal_of, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.routing import ApiRoute
from leoflow.server.serializers import iso


async def get_version(request: Request) -> Response:
    """GET /version (public)."""
    return ok({"version": __version__, "git_version": None})


async def get_health(request: Request) -> Response:
    """GET /monitor/health (public): the metadatabase really pinged; scheduler by heartbeat.

    The triggerer reports the scheduler's health (its work runs in the scheduler loop) and the
    DAG processor is null (DAGs are compiled ahead), so the UI's Health panel is green.
    """
    db = "healthy" if await store_of(request).ping() else "unhealthy"
    heartbeat = getattr(request.app.state, "scheduler_heartbeat", None)
    beat = heartbeat() if callable(heartbeat) else None
    if isinstance(beat, datetime):
        beat = iso(beat)
    scheduler = "healthy" if beat else "unhealthy"
    return ok(
        {
            "metadatabase": {"status": db},
            "scheduler": {"status": scheduler, "latest_scheduler_heartbeat": beat},
            # No triggerer runs apart: the scheduler loop does its timed wake-ups (retries,
            # reschedules), so it reports the scheduler's health and heartbeat, as each process
            # of Airflow's standalone does. A null status is what the UI's Health panel paints red.
            "triggerer": {"status": scheduler, "latest_triggerer_heartbeat": beat},
            # DAGs are compiled ahead (``leoflow compile``), so no DAG processor runs: null,
            # which HealthInfoResponse allows and the UI answers by leaving the badge out.
            "dag_processor": None,
        }
    )


def _empty(field: str) -> Any:
    async def endpoint(request: Request) -> Response:
        await _require_parents(request)
        return ok({field: [], "total_entries": 0})

    endpoint.__name__ = f"empty_{field}"
    return endpoint


_STUBS = {
    "/plugins": "plugins",
    "/plugins/importErrors": "import_errors",
    "/providers": "providers",
    "/dagWarnings": "dag_warnings",
    "/assets": "assets",
    "/assets/events": "asset_events",
    "/assets/aliases": "asset_aliases",
    "/jobs": "jobs",
    "/backfills": "backfills",
    "/dags/{dag_id}/dagRuns/{dag_run_id}/hitlDetails": "hitl_details",
    "/dags/{dag_id}/assets/queuedEvents": "queued_events",
}


async def get_config(request: Request) -> Response:
    """GET /config: not exposed, as Airflow answers with ``[api] expose_config`` off."""
    return ok({"detail": "Leoflow does not expose its configuration over the API"}, 403)


async def favorite(request: Request) -> Response:
    """POST /dags/{dag_id}/favorite: mark the DAG as the caller's favorite (idempotent)."""
    await _set_favorite(request, True)
    return Response(status_code=204)


async def unfavorite(request: Request) -> Response:
    """POST /dags/{dag_id}/unfavorite: unmark it (409 when it is not marked, as Airflow)."""
    await _set_favorite(request, False)
    return Response(status_code=204)


async def _set_favorite(request: Request, favorite: bool) -> None:
    principal = principal_of(request)
    await store_of(request).set_dag_favorite(
        principal.tenant, principal.username, request.path_params["dag_id"], favorite=favorite
    )


async def _require_parents(request: Request) -> None:
    """404 unless the DAG, run and task instance named in the path exist (``~`` names any)."""
    store, tenant = store_of(request), tenant_of(request)
    # The UI lists across DAGs and runs with ``~`` (e.g. /dags/~/dagRuns/~/hitlDetails).
    p = {k: v for k, v in request.path_params.items() if v != query.WILDCARD}
    if {"dag_id", "dag_run_id", "task_id"} <= p.keys():
        map_index = query.int_param(request, "map_index", -1, minimum=-1)
        await store.get_ti(tenant, p["dag_id"], p["dag_run_id"], p["task_id"], map_index)
    elif {"dag_id", "dag_run_id"} <= p.keys():
        await store.get_run(tenant, p["dag_id"], p["dag_run_id"])
    elif "dag_id" in p:
        await store.get_dag(tenant, p["dag_id"])


async def dependencies(request: Request) -> Response:
    """GET .../taskInstances/{task_id}/dependencies: no blocking dependencies are reported."""
    await _require_parents(request)
    return ok({"dependencies": []})


routes = [
    ApiRoute("/version", get_version, methods=["GET"], permission=None, summary="Version", tag="Version", response="VersionInfo"),
    ApiRoute("/monitor/health", get_health, methods=["GET"], permission=None, summary="Health", tag="Monitor", response="HealthInfoResponse"),
    ApiRoute("/config", get_config, methods=["GET"], permission=Permission.READ, summary="Configuration (not exposed)", tag="Config", status=403),
    ApiRoute("/dags/{dag_id}/favorite", favorite, methods=["POST"], permission=Permission.READ, summary="Mark a DAG as the caller's favorite", tag="DAG", status=204, name="favorite_dag"),
    ApiRoute("/dags/{dag_id}/unfavorite", unfavorite, methods=["POST"], permission=Permission.READ, summary="Unmark a DAG as the caller's favorite", tag="DAG", status=204, name="unfavorite_dag"),
    ApiRoute("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dependencies", dependencies, methods=["GET"], permission=Permission.READ, summary="Task instance dependencies (always none)", tag="TaskInstance"),
    *[
        ApiRoute(path, _empty(field), methods=["GET"], permission=Permission.READ, summary=f"Always empty in Leoflow ({field})", tag="Not in Leoflow", name=f"empty:{path}")
        for path, field in _STUBS.items()
    ],
]  # fmt: skip
