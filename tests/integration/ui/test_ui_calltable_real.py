"""The call table of the pinned 3.2.2 bundle, and the missing-route check against it."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from leoflow.server.ui.bundle import UiBundle
from leoflow.server.ui.calltable import UiCall, extract_calls, missing_routes
from leoflow.server.ui.static import ui_routes
from leoflow.settings import Settings

# 128 generated-client method+URL pairs (contract doc section 9) plus the HITL review plugin's
# hand-written call; the hand-written ti_summaries fetch is also in the generated client.
EXPECTED_CALLS = 129


async def _ok(request: Request) -> Response:
    return Response("ok")


def test_call_table_of_the_pinned_bundle(real_bundle: UiBundle) -> None:
    calls = extract_calls(real_bundle.dist_dir)

    assert len(calls) == EXPECTED_CALLS
    assert len(set(calls)) == len(calls)
    core = [c for c in calls if not c.requires_plugin]
    assert len(core) == 128
    assert [c for c in calls if c.requires_plugin] == [UiCall("GET", "/hitl-review/sessions/find")]
    assert len([c for c in core if c.path.startswith("/ui/")]) == 21
    for known in [
        UiCall("GET", "/ui/grid/runs/{dag_id}"),
        UiCall("GET", "/ui/grid/ti_summaries/{dag_id}"),
        UiCall("POST", "/api/v2/dags/{dag_id}/clearTaskInstances"),
        UiCall("PATCH", "/api/v2/dags/{dag_id}"),
        UiCall(
            "GET", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}"
        ),
        UiCall("GET", "/ui/config"),
        UiCall("POST", "/ui/auth/token"),
        UiCall("PATCH", "/api/v2/variables"),
    ]:
        assert known in calls, known


def test_missing_routes_against_ui_routes_and_a_partial_api(
    real_bundle: UiBundle, tmp_path: Path
) -> None:
    calls = [c for c in extract_calls(real_bundle.dist_dir) if not c.requires_plugin]
    ui_only = ui_routes(Settings(home=tmp_path), real_bundle)
    # ui_routes serves the private /ui API; static serving and the SPA/404 fallbacks serve none
    # of the /api/v2 calls
    v2 = [c for c in calls if c.path.startswith("/api/v2/")]
    assert missing_routes(calls, ui_only) == v2
    assert len(v2) == 128 - 21

    # a Mount claims its whole prefix: a route listed after it under that prefix never runs
    api = Mount(
        "/api/v2", routes=[Route(v2[0].path.removeprefix("/api/v2"), _ok, methods=[v2[0].method])]
    )
    late = Route(v2[1].path, _ok, methods=[v2[1].method])
    missing = missing_routes(v2, [api, late])
    assert v2[0] not in missing and v2[1] in missing
    assert missing_routes(v2[1:2], [late]) == []
