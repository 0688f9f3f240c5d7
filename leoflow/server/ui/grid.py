"""The DAG views of the private API: grid (runs, structure, NDJSON cells), graph, gantt, calendar.

The grid is the UI's hottest path (it refetches every few seconds while runs are active), so
each call is a fixed number of queries whatever the DAG's size: the spec comes from the store's
immutable-version cache, the cells from one statement over the requested runs.
"""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from leoflow.errors import NotFound
from leoflow.server import query
from leoflow.server.api._common import Versions, now, ok, store_of, tenant_of
from leoflow.server.auth import Permission
from leoflow.server.errors import BadRequest
from leoflow.server.routing import ApiRoute
from leoflow.server.serializers import duration, iso
from leoflow.server.ui import graph, queries
from leoflow.spec import DagSpec
from leoflow.store.api import DagRunState, DagRunType, InvalidArgument

NDJSON = "application/x-ndjson"
GRID_RUNS_DEFAULT_LIMIT = 10
_RUN_ORDER = {"run_after", "logical_date", "start_date", "end_date", "id", "run_id", "state"}
_ALL = 10_000


async def current_spec(request: Request, dag_id: str, version_number: int | None = None) -> DagSpec:
    """The spec of a DAG's current version (or of ``version_number``); NotFound if none."""
    store, tenant = store_of(request), tenant_of(request)
    if version_number is not None:
        version = await store.get_dag_version(tenant, dag_id, version_number)
        return await store.get_spec(version.id)
    dag = await store.get_dag(tenant, dag_id)
    if dag.current_version_id is None:
        raise NotFound(f"DAG {dag_id!r} has no registered version", field="dag_id")
    return await store.get_spec(dag.current_version_id)


def _enum_list(request: Request, name: str, kind: Any) -> list[Any] | None:
    values = query.list_param(request, name)
    if values is None:
        return None
    try:
        return [kind(v) for v in values]
    except ValueError:
        allowed = [m.value for m in kind]
        raise InvalidArgument(f"{name}: {values} must be among {allowed}", field=name) from None


async def _runs(request: Request, dag_id: str) -> list[Any]:
    """The runs the grid shows, with the filters and order the UI sends."""
    page = query.page(request)
    low, high = query.date_range(request, "run_after")
    result = await store_of(request).list_runs(
        tenant_of(request),
        dag_id,
        states=_enum_list(request, "state", DagRunState),
        run_types=_enum_list(request, "run_type", DagRunType),
        run_after_gte=low,
        run_after_lte=high,
        limit=min(query.int_param(request, "limit", GRID_RUNS_DEFAULT_LIMIT), query.MAX_LIMIT),
        offset=page.offset,
        order_by=query.order_by(request, _RUN_ORDER, "-run_after"),
    )
    return result.items


async def get_grid_runs(request: Request) -> Response:
    """GET /ui/grid/runs/{dag_id}: GridRunsResponse list."""
    dag_id = request.path_params["dag_id"]
    await store_of(request).get_dag(tenant_of(request), dag_id)
    versions, at = Versions(request), now()
    out = []
    for run in await _runs(request, dag_id):
        version = await versions.get(dag_id, run.dag_version_id)
        out.append(
            {
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "queued_at": iso(run.queued_at),
                "start_date": iso(run.start_date),
                "end_date": iso(run.end_date),
                "run_after": iso(run.run_after),
                "state": str(run.state),
                "run_type": str(run.run_type),
                "dag_versions": [version] if version else [],
                "has_missed_deadline": False,
                "duration": duration(run.start_date, run.end_date, at) or 0.0,
            }
        )
    return ok(out)


async def get_dag_structure(request: Request) -> Response:
    """GET /ui/grid/structure/{dag_id}: the task tree, topologically ordered, groups nested.

    As in Airflow, the tree is the current version's, plus any task that only older versions
    pinned by the runs shown (same filters as the grid's runs) still have, so their cells show.
    """
    dag_id = request.path_params["dag_id"]
    current = await current_spec(request, dag_id)
    nodes = graph.grid_structure(current)
    store = store_of(request)
    older = {run.dag_version_id for run in await _runs(request, dag_id)}
    known = set(graph.node_ids(nodes))
    for version_id in sorted(older, key=str):
        spec = await store.get_spec(version_id)
        if spec.content_hash == current.content_hash:
            continue
        for node in graph.grid_structure(spec):
            if node["id"] not in known:
                nodes.append(node)
                known.update(graph.node_ids([node]))
    return ok(nodes)


async def get_grid_ti_summaries(request: Request) -> Response:
    """GET /ui/grid/ti_summaries/{dag_id}?run_ids=a&run_ids=b: one NDJSON line per run."""
    dag_id = request.path_params["dag_id"]
    # repeated keys only: a run_id may itself contain a comma
    run_ids = [r for r in request.query_params.getlist("run_ids") if r]
    store, tenant = store_of(request), tenant_of(request)
    groups: list[tuple[UUID, str, str]] = []
    for version_id in await queries.run_versions(store, tenant, dag_id, run_ids):
        spec = await store.get_spec(version_id)  # immutable, cached by the store
        for group_id, task_ids in graph.group_members(spec).items():
            groups += [(version_id, task_id, group_id) for task_id in task_ids]
    cells = await queries.grid_summaries(
        store, tenant, dag_id, run_ids, groups, graph.STATE_PRIORITY
    )
    head = json.dumps(dag_id)
    lines = [
        f'{{"run_id":{json.dumps(run_id)},"dag_id":{head},"task_instances":{cells.get(run_id, "[]")}}}\n'
        for run_id in run_ids
    ]
    return Response("".join(lines), media_type=NDJSON)


def _subset(spec: DagSpec, root: str | None, upstream: bool, downstream: bool) -> set[str] | None:
    """Task ids matching ``root`` (a regex, as Airflow's partial_subset) and their relatives."""
    if not root:
        return None
    try:
        pattern = re.compile(root)
    except re.error as exc:
        raise BadRequest(f"root: not a valid regular expression: {exc}", field="root") from exc
    keep = {t.task_id for t in spec.tasks if pattern.search(t.task_id)}
    up = {t.task_id: t.upstream for t in spec.tasks}
    down = spec.downstream()
    for edges, wanted in ((up, upstream), (down, downstream)):
        if wanted:
            stack = list(keep)
            while stack:
                for nxt in edges[stack.pop()]:
                    if nxt not in keep:
                        keep.add(nxt)
                        stack.append(nxt)
    return keep


async def structure_data(request: Request) -> Response:
    """GET /ui/structure/structure_data?dag_id=&version_number=: graph nodes and edges."""
    dag_id = request.query_params.get("dag_id")
    if not dag_id:
        raise BadRequest("dag_id: this query parameter is required", field="dag_id")
    number = request.query_params.get("version_number")
    version = query.int_param(request, "version_number", 0, minimum=1) if number else None
    spec = await current_spec(request, dag_id, version)
    keep = _subset(
        spec,
        request.query_params.get("root"),
        bool(query.bool_param(request, "include_upstream")),
        bool(query.bool_param(request, "include_downstream")),
    )
    if keep is not None:
        spec = spec.model_copy(
            update={"tasks": [t for t in spec.tasks if t.task_id in keep]}, deep=False
        )
    edges = [
        e
        for e in graph.structure_edges(spec)
        if keep is None or (e["source_id"] in keep and e["target_id"] in keep)
    ]
    return ok({"nodes": graph.structure_nodes(spec), "edges": edges})


async def get_gantt_data(request: Request) -> Response:
    """GET /ui/gantt/{dag_id}/{run_id}: each task instance's current try, with its times."""
    p = request.path_params
    store, tenant = store_of(request), tenant_of(request)
    await store.get_run(tenant, p["dag_id"], p["run_id"])
    page = await store.list_tis(tenant, p["dag_id"], p["run_id"], limit=_ALL, order_by="task_id")
    items = [
        {
            "task_id": ti.task_id,
            "task_display_name": ti.task_id,
            "try_number": ti.try_number,
            "state": None if ti.state is None else str(ti.state),
            "scheduled_dttm": iso(ti.scheduled_dttm),
            "queued_dttm": iso(ti.queued_dttm),
            "start_date": iso(ti.start_date),
            "end_date": iso(ti.end_date),
            "is_group": False,
            "is_mapped": ti.map_index >= 0,
        }
        for ti in page.items
    ]
    return ok({"dag_id": p["dag_id"], "run_id": p["run_id"], "task_instances": items})


async def get_calendar(request: Request) -> Response:
    """GET /ui/calendar/{dag_id}: run counts per day (or hour) and state."""
    dag_id = request.path_params["dag_id"]
    store, tenant = store_of(request), tenant_of(request)
    await store.get_dag(tenant, dag_id)
    granularity = request.query_params.get("granularity") or "daily"
    if granularity not in ("hourly", "daily"):
        raise BadRequest("granularity: must be 'hourly' or 'daily'", field="granularity")
    low, high = query.date_range(request, "logical_date")
    rows = await queries.calendar_counts(store, tenant, dag_id, granularity, low, high)
    entries = [{"date": iso(day), "state": state, "count": n} for day, state, n in rows]
    return ok({"total_entries": len(entries), "dag_runs": entries})


def _get(path: str, endpoint: Any, summary: str, response: str | None = None) -> ApiRoute:
    return ApiRoute(
        path,
        endpoint,
        methods=["GET"],
        permission=Permission.READ,
        summary=summary,
        tag="UI",
        response=response,
        name=f"ui:{endpoint.__name__}",
    )


routes: list[ApiRoute] = [
    _get("/ui/grid/runs/{dag_id}", get_grid_runs, "Runs of the grid"),
    _get("/ui/grid/structure/{dag_id}", get_dag_structure, "Task tree of the grid"),
    _get("/ui/grid/ti_summaries/{dag_id}", get_grid_ti_summaries, "Grid cells (NDJSON, one line per run)"),
    _get("/ui/structure/structure_data", structure_data, "Graph nodes and edges", "StructureDataResponse"),
    _get("/ui/gantt/{dag_id}/{run_id}", get_gantt_data, "Gantt chart of a run", "GanttResponse"),
    _get("/ui/calendar/{dag_id}", get_calendar, "Run counts per day", "CalendarTimeRangeCollectionResponse"),
]  # fmt: skip
