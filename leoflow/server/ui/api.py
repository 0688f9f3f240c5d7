"""The Airflow UI's private API (``/ui/*``): the shell, the DAG list, the home page, stubs.

Shapes follow the pinned wheel's ``_private_ui.yaml`` (``test_uiapi_schema.py`` validates every
body against it). Every route needs an authenticated caller, as Airflow's
``requires_authenticated``/``requires_access_*`` do: a 401 from ``/ui/config`` is what sends the
SPA to the login page. Concepts Leoflow does not have (assets, HITL, backfills, deadlines,
teams, partitioned runs) answer schema-valid empty bodies. The grid and graph views live in
``grid.py``; this module's ``routes`` includes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from leoflow.errors import NotFound
from leoflow.server import query
from leoflow.server.api._common import now, ok, principal_of, store_of, tenant_of
from leoflow.server.auth import Auth, Permission
from leoflow.server.routing import ApiRoute, read_body
from leoflow.server.serializers import dag_response, duration, iso
from leoflow.server.ui import grid, queries
from leoflow.server.ui.hooks import HOOK_META
from leoflow.server.ui.static import DEFAULT_INSTANCE_NAME
from leoflow.store.api import Dag, DagRun, DagRunState, InvalidArgument, TaskInstanceState

DAG_RUNS_LIMIT_MAX = 100
STATE_COUNT_LIMIT = 1000
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
_TI_STATES = [s.value for s in TaskInstanceState]


def instance_name(request: Request) -> str:
    """The instance name the SPA shows: "Leoflow Lite" when Lite marked the app so."""
    return getattr(request.app.state, "instance_name", None) or DEFAULT_INSTANCE_NAME


async def get_configs(request: Request) -> Response:
    """GET /ui/config: what the SPA reads at start (401 without a token starts the login)."""
    return ok(
        {
            "fallback_page_limit": query.DEFAULT_LIMIT,
            "auto_refresh_interval": 3,
            "hide_paused_dags_by_default": False,
            "instance_name": instance_name(request),
            "enable_swagger_ui": True,
            "require_confirmation_dag_change": False,
            "default_wrap": False,
            "test_connection": "Enabled",  # POST /connections/test is real
            "dashboard_alert": [],
            "show_external_log_redirect": False,
            "external_log_name": None,
            "theme": None,
            "multi_team": False,
        }
    )


async def get_current_user_info(request: Request) -> Response:
    """GET /ui/auth/me: the caller's user id and name."""
    principal = principal_of(request)
    try:
        user = await store_of(request).get_user(principal.tenant, principal.username)
        user_id = str(user.id)
    except NotFound:  # a token outliving its user still names someone
        user_id = principal.username
    return ok({"id": user_id, "username": principal.username})


# Every role may read these pages (writes on them are checked per route); Leoflow has no
# config, jobs, plugins, providers or HITL pages to offer.
MENU_ITEMS = ["Dags", "Assets", "Audit Log", "Connections", "Pools", "Variables", "XComs", "Docs"]


async def get_auth_menus(request: Request) -> Response:
    """GET /ui/auth/menus: the Browse/Admin entries the SPA shows."""
    return ok({"authorized_menu_items": MENU_ITEMS, "extra_menu_items": []})


class GenerateTokenBody(BaseModel):
    """Airflow's GenerateTokenBody."""

    model_config = ConfigDict(extra="ignore")
    token_type: Literal["api", "cli"] = "api"


async def generate_token(request: Request) -> Response:
    """POST /ui/auth/token: a fresh token for the already authenticated caller."""
    body = await read_body(request, GenerateTokenBody)
    auth: Auth = request.app.state.auth
    return ok(
        {
            "access_token": auth.issuer.mint(principal_of(request)),
            "token_type": body.token_type,
            "expires_in_seconds": auth.issuer.ttl_seconds,
        }
    )


# -- DAG list ----------------------------------------------------------------------------------


def run_light(run: DagRun) -> dict[str, Any]:
    """DAGRunLightResponse (``id`` is the run's integer primary key)."""
    return {
        "id": run.id,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "logical_date": iso(run.logical_date),
        "run_after": iso(run.run_after),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "state": str(run.state),
        "duration": duration(run.start_date, run.end_date),
    }


def dag_with_runs(dag: Dag, runs: list[DagRun]) -> dict[str, Any]:
    """DAGWithLatestDagRunsResponse."""
    return {
        **dag_response(dag),
        "asset_expression": None,
        "latest_dag_runs": [run_light(r) for r in runs],
        "pending_actions": [],
        "is_favorite": False,
    }


def _nothing_matches(request: Request) -> bool:
    """Filters on concepts Leoflow lacks (favorites, asset schedules, HITL, other bundles)."""
    for flag in ("is_favorite", "has_asset_schedule", "has_pending_actions"):
        if query.bool_param(request, flag):
            return True
    if request.query_params.get("asset_dependency"):
        return True
    bundle = request.query_params.get("bundle_name")
    return bool(bundle) and bundle != "leoflow"


def _last_run_state(request: Request) -> DagRunState | None:
    raw = request.query_params.get("last_dag_run_state")
    if not raw:
        return None
    try:
        return DagRunState(raw)
    except ValueError:
        raise InvalidArgument(
            f"last_dag_run_state: {raw!r} is not one of {[s.value for s in DagRunState]}",
            field="last_dag_run_state",
        ) from None


_LAST_RUN_ORDER = {"last_run_state", "last_run_start_date"}


def _dag_filters(request: Request) -> dict[str, Any]:
    pattern = request.query_params.get("dag_id_pattern") or request.query_params.get(
        "dag_display_name_pattern"
    )
    return {
        "dag_id_pattern": pattern or None,
        "dag_ids": query.list_param(request, "dag_ids"),
        "tags": query.list_param(request, "tags"),
        "tags_match_mode": "all" if request.query_params.get("tags_match_mode") == "all" else "any",
        "owners": query.list_param(request, "owners"),
        "paused": query.bool_param(request, "paused"),
        "exclude_stale": query.bool_param(request, "exclude_stale") is not False,
        "last_run_state": _last_run_state(request),
    }


async def _every_dag(store: Any, tenant: str, filters: dict[str, Any]) -> list[Dag]:
    """Every DAG matching the store-side filters, a thousand at a time."""
    dags: list[Dag] = []
    while True:
        page = await store.list_dags(tenant, **filters, limit=1000, offset=len(dags))
        dags += page.items
        if not page.items or len(dags) >= page.total:
            return dags


def _last_run_key(order: str, runs: dict[str, list[DagRun]]) -> Any:
    """Sort key for DAGs that have runs: their latest run's state or start date."""
    field = order.lstrip("-")

    def key(dag: Dag) -> tuple[bool, str]:
        latest = runs[dag.dag_id][:1]
        value = None
        if latest:
            value = (
                latest[0].state.value if field == "last_run_state" else iso(latest[0].start_date)
            )
        return value is None, value or ""

    return key


async def get_dags_ui(request: Request) -> Response:
    """GET /ui/dags: the DAG list, each DAG with its latest runs (one query for all runs).

    Ordering by the latest run and the has_import_errors filter are applied here, over the
    whole filtered list (the store sorts and filters only by DAG columns).
    """
    if _nothing_matches(request):
        return ok({"dags": [], "total_entries": 0})
    page = query.page(request)
    runs_limit = min(query.int_param(request, "dag_runs_limit", 10), DAG_RUNS_LIMIT_MAX)
    order = query.order_by(request, _DAG_ORDER | _LAST_RUN_ORDER, "dag_id")
    import_errors = query.bool_param(request, "has_import_errors")
    store, tenant = store_of(request), tenant_of(request)
    filters = _dag_filters(request)
    if import_errors is None and order.lstrip("-") not in _LAST_RUN_ORDER:
        result = await store.list_dags(
            tenant, **filters, limit=page.limit, offset=page.offset, order_by=order
        )
        runs = await queries.latest_runs(
            store, tenant, [d.dag_id for d in result.items], runs_limit
        )
        body = [dag_with_runs(d, runs[d.dag_id]) for d in result.items]
        return ok({"dags": body, "total_entries": result.total})
    dags = await _every_dag(store, tenant, filters)
    if import_errors is not None:
        dags = [d for d in dags if d.has_import_errors == import_errors]
    if order.lstrip("-") in _LAST_RUN_ORDER:
        latest = await queries.latest_runs(store, tenant, [d.dag_id for d in dags], 1)
        with_runs = [d for d in dags if latest[d.dag_id]]
        with_runs.sort(key=_last_run_key(order, latest), reverse=order.startswith("-"))
        dags = with_runs + [d for d in dags if not latest[d.dag_id]]  # no run: always last
    shown = dags[page.offset : page.offset + page.limit]
    runs = await queries.latest_runs(store, tenant, [d.dag_id for d in shown], runs_limit)
    return ok(
        {"dags": [dag_with_runs(d, runs[d.dag_id]) for d in shown], "total_entries": len(dags)}
    )


async def get_latest_run_info(request: Request) -> Response:
    """GET /ui/dags/{dag_id}/latest_run: the latest run, or 200 null when there is none."""
    store, tenant = store_of(request), tenant_of(request)
    dag_id = request.path_params["dag_id"]
    await store.get_dag(tenant, dag_id)
    runs = await queries.latest_runs(store, tenant, [dag_id], 1)
    latest = runs[dag_id]
    return ok(run_light(latest[0]) if latest else None)


# -- home page ---------------------------------------------------------------------------------


async def dag_stats(request: Request) -> Response:
    """GET /ui/dashboard/dag_stats."""
    return ok(await queries.dag_stats(store_of(request), tenant_of(request)))


async def historical_metrics(request: Request) -> Response:
    """GET /ui/dashboard/historical_metrics_data: run and TI counts by state in a time range."""
    start = query.date_param(request, "start_date") or datetime(1970, 1, 1, tzinfo=UTC)
    end = query.date_param(request, "end_date") or now()
    runs, tis = await queries.state_counts(store_of(request), tenant_of(request), start, end)
    ti_counts = {"no_status": tis.get(None, 0)}
    ti_counts.update({state: tis.get(state, 0) for state in _TI_STATES})
    return ok(
        {
            "dag_run_states": {s.value: runs.get(s.value, 0) for s in DagRunState},
            "task_instance_states": ti_counts,
            "state_count_limit": STATE_COUNT_LIMIT,
        }
    )


async def hook_meta_data(request: Request) -> Response:
    """GET /ui/connections/hook_meta: the connection types the connection form offers."""
    return ok(HOOK_META)


# -- concepts Leoflow does not have: schema-valid empty answers ---------------------------------


def _constant(body: Any, name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return ok(body)

    endpoint.__name__ = name
    return endpoint


async def get_pending_partitioned_dag_run(request: Request) -> Response:
    """GET /ui/pending_partitioned_dag_run/{dag_id}/{partition_key}: Leoflow has none."""
    p = request.path_params
    raise NotFound(
        f"No pending partitioned Dag run for Dag {p['dag_id']!r} and key {p['partition_key']!r}",
        field="partition_key",
    )


async def get_dag_run_deadlines(request: Request) -> Response:
    """GET /ui/dags/{dag_id}/dagRuns/{dag_run_id}/deadlines: the run exists; no deadlines."""
    p = request.path_params
    await store_of(request).get_run(tenant_of(request), p["dag_id"], p["dag_run_id"])
    return ok({"deadlines": [], "total_entries": 0})


_R = Permission.READ


def _get(path: str, endpoint: Any, summary: str, response: str | None = None) -> ApiRoute:
    return ApiRoute(
        path,
        endpoint,
        methods=["GET"],
        permission=_R,
        summary=summary,
        tag="UI",
        response=response,
        name=f"ui:{endpoint.__name__}",
    )


_EMPTY = {
    "/ui/backfills": ({"backfills": [], "total_entries": 0}, "BackfillCollectionResponse"),
    "/ui/teams": ({"teams": [], "total_entries": 0}, "TeamCollectionResponse"),
    "/ui/dependencies": ({"nodes": [], "edges": []}, "BaseGraphResponse"),
    "/ui/next_run_assets/{dag_id}": ({}, None),
    "/ui/partitioned_dag_runs": (
        {"partitioned_dag_runs": [], "total": 0, "asset_expressions": None},
        "PartitionedDagRunCollectionResponse",
    ),
}

routes: list[ApiRoute] = [
    _get("/ui/config", get_configs, "UI configuration", "ConfigResponse"),
    _get("/ui/auth/me", get_current_user_info, "The current user", "AuthenticatedMeResponse"),
    _get("/ui/auth/menus", get_auth_menus, "Menu items for the caller", "MenuItemCollectionResponse"),
    ApiRoute("/ui/auth/token", generate_token, methods=["POST"], permission=_R, summary="Re-mint a token for the caller", tag="UI", body=GenerateTokenBody, response="GenerateTokenResponse", name="ui:generate_token"),
    _get("/ui/dags", get_dags_ui, "DAGs with their latest runs", "DAGWithLatestDagRunsCollectionResponse"),
    _get("/ui/dags/{dag_id}/latest_run", get_latest_run_info, "The latest run of a DAG (or null)", "DAGRunLightResponse"),
    _get("/ui/dags/{dag_id}/dagRuns/{dag_run_id}/deadlines", get_dag_run_deadlines, "Deadlines of a run (none in Leoflow)", "DeadlineCollectionResponse"),
    _get("/ui/dashboard/dag_stats", dag_stats, "DAG counts for the home page", "DashboardDagStatsResponse"),
    _get("/ui/dashboard/historical_metrics_data", historical_metrics, "Run and TI state counts", "HistoricalMetricDataResponse"),
    _get("/ui/connections/hook_meta", hook_meta_data, "Connection types for the connection form"),
    _get("/ui/pending_partitioned_dag_run/{dag_id}/{partition_key}", get_pending_partitioned_dag_run, "Pending partitioned run (none in Leoflow)"),
    *[
        _get(path, _constant(body, "empty_" + path.strip("/").split("/")[1]), "Always empty in Leoflow", response)
        for path, (body, response) in _EMPTY.items()
    ],
    *grid.routes,
]  # fmt: skip
