"""Call-table extraction from bundle JS, and missing_routes against Starlette route lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from leoflow.server.ui.bundle import UiBundle
from leoflow.server.ui.calltable import UiCall, extract_calls, missing_routes
from leoflow.server.ui.static import ui_routes
from leoflow.settings import Settings

_JS_MAIN = (
    "static getDags(e){return dL(oL,{method:`GET`,url:`/api/v2/dags`,query:{limit:e.limit}})}"
    "static patchDag(e){return dL(oL,{method:`PATCH`,url:`/api/v2/dags/{dag_id}`,path:{dag_id:e}})}"
    "static grid(e){return dL(oL,{method:`GET`,url:`/ui/grid/ti_summaries/{dag_id}`})}"
    "o=await fetch(`${oL.BASE}/ui/grid/ti_summaries/${e}?${a}`,{signal:n.signal});"
    "x=()=>wM.get(`${oL.BASE}/hitl-review/sessions/find`,{params:{dag_id:i}});"
    "y=()=>wM.post(`${oL.BASE}/custom/${a}/do/${b}`);"
)
_JS_CHUNK = "static getDags(e){return dL(oL,{method:`GET`,url:`/api/v2/dags`})}"


async def _ok(request: Request) -> Response:
    return Response("ok")


def test_extracts_client_literals_and_hand_written_calls(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "index-A.js").write_text(_JS_MAIN)
    (assets / "chunk-B.js").write_text(_JS_CHUNK)
    (assets / "ignored.css").write_text("method:`GET`,url:`/api/v2/css`")

    calls = extract_calls(tmp_path)

    # sorted by path; the hand-written ti_summaries fetch merges with its generated twin
    assert calls == [
        UiCall("GET", "/api/v2/dags"),
        UiCall("PATCH", "/api/v2/dags/{dag_id}"),
        UiCall("POST", "/custom/{param1}/do/{param2}"),
        UiCall("GET", "/hitl-review/sessions/find"),
        UiCall("GET", "/ui/grid/ti_summaries/{dag_id}"),
    ]
    assert [c.path for c in calls if c.requires_plugin] == [
        "/custom/{param1}/do/{param2}",
        "/hitl-review/sessions/find",
    ]


def test_not_a_dist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an Airflow UI dist"):
        extract_calls(tmp_path)


_CALLS = [
    ("GET", "/api/v2/dags"),
    ("PATCH", "/api/v2/dags/{dag_id}"),
    ("GET", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"),
    ("GET", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}"),
    ("GET", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries"),
    ("GET", "/ui/grid/runs/{dag_id}"),
    ("POST", "/api/v2/dags/{dag_id}/clearTaskInstances"),
    ("GET", "/static/x"),
]


def test_missing_routes_matches_templates_like_starlette() -> None:
    v2 = Router(
        routes=[
            Route("/dags", _ok, methods=["GET"]),
            Route("/dags/{dag_id}", _ok, methods=["GET", "PATCH"]),
            Route("/dags/{dag_id}/dagRuns/{dag_run_id}", _ok, methods=["GET"]),
            Route(
                "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index:int}",
                _ok,
                methods=["GET"],
            ),
            # wrong method: clearTaskInstances exists only as GET here, so POST is missing
            Route("/dags/{dag_id}/clearTaskInstances", _ok, methods=["GET"]),
        ]
    )
    ui_app = Starlette(routes=[Route("/grid/runs/{dag_id}", _ok)])
    routes = [
        Mount("/api/v2", app=v2),
        Mount("/ui", app=ui_app),
        Mount("/static", app=StaticFiles(directory=Path(__file__).parent, check_dir=False)),
    ]

    missing = missing_routes(_CALLS, routes)

    # "tries" is not an int, so the {map_index:int} route does not serve the tries call
    assert missing == [
        UiCall("GET", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries"),
        UiCall("POST", "/api/v2/dags/{dag_id}/clearTaskInstances"),
    ]


def test_literal_route_does_not_serve_a_param_call() -> None:
    routes = [Route("/api/v2/dags/~/dagRuns", _ok)]
    assert missing_routes([("GET", "/api/v2/dags/{dag_id}/dagRuns")], routes) == [
        UiCall("GET", "/api/v2/dags/{dag_id}/dagRuns")
    ]
    assert missing_routes([("GET", "/api/v2/dags/~/dagRuns")], routes) == []


def test_path_convertor_spans_segments() -> None:
    routes = [Route("/ui/{rest:path}", _ok, methods=["GET"])]
    assert missing_routes([("get", "/ui/a/{x}/b/{y}")], routes) == []
    assert missing_routes([("POST", "/ui/a/{x}")], routes) == [UiCall("POST", "/ui/a/{x}")]
    # a {run:path} param swallows deeper calls, exactly as Starlette would route them
    runs = [Route("/dags/{dag_id}/dagRuns/{run:path}", _ok)]
    assert missing_routes([("GET", "/dags/{dag_id}/dagRuns/{dag_run_id}/tries")], runs) == []


def test_spa_and_404_fallbacks_do_not_count(fake_bundle: UiBundle, tmp_path: Path) -> None:
    routes = ui_routes(Settings(home=tmp_path), fake_bundle)
    calls = [
        ("GET", "/api/v2/dags"),
        ("GET", "/ui/no_such_route"),
        ("GET", "/dags"),
        ("GET", "/static/x.js"),
        ("GET", "/ui/config"),  # the private /ui API is part of ui_routes
    ]
    assert missing_routes(calls, routes) == [
        UiCall("GET", "/api/v2/dags"),
        UiCall("GET", "/ui/no_such_route"),
        UiCall("GET", "/dags"),
    ]
