"""The /ui private API with real data: shell, DAG list, grid, graph, home page, stubs, auth."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from uiapi_seed import T0, UiApi, chain_spec, run_dag

from leoflow.server.ui.hooks import HOOK_META
from leoflow.store.api import Role, TIState

UI_GETS = [
    "/ui/config",
    "/ui/auth/me",
    "/ui/auth/menus",
    "/ui/dags",
    "/ui/dags/d/latest_run",
    "/ui/dashboard/dag_stats",
    "/ui/dashboard/historical_metrics_data?start_date=2020-01-01T00:00:00Z",
    "/ui/connections/hook_meta",
    "/ui/grid/runs/d",
    "/ui/grid/structure/d",
    "/ui/grid/ti_summaries/d?run_ids=r",
    "/ui/structure/structure_data?dag_id=d",
    "/ui/backfills",
    "/ui/teams",
    "/ui/dependencies",
    "/ui/calendar/d",
    "/ui/gantt/d/r",
    "/ui/next_run_assets/d",
    "/ui/partitioned_dag_runs",
]


@pytest.mark.parametrize("path", UI_GETS)
async def test_every_ui_route_needs_a_token(uiapi: UiApi, path: str) -> None:
    response = await uiapi.get(path, role=None)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


async def test_config_names_the_instance_and_lite_overrides_it(uiapi: UiApi) -> None:
    body = (await uiapi.get("/ui/config")).json()
    assert body["instance_name"] == "Leoflow"
    assert body["theme"] is None and body["multi_team"] is False
    uiapi.app.state.instance_name = "Leoflow Lite"
    assert (await uiapi.get("/ui/config")).json()["instance_name"] == "Leoflow Lite"


async def test_me_menus_and_token_refresh(uiapi: UiApi) -> None:
    me = (await uiapi.get("/ui/auth/me", role=Role.OP)).json()
    assert me == {"id": "op", "username": "op"}  # no user row: the token's name stands in
    await uiapi.store.create_user(uiapi.tenant, "viewer", "pw-123456789", Role.VIEWER)
    me = (await uiapi.get("/ui/auth/me")).json()
    assert me["username"] == "viewer" and me["id"].isdigit()
    menus = (await uiapi.get("/ui/auth/menus")).json()
    assert {"Dags", "Variables", "Connections", "Pools", "Audit Log"} <= set(
        menus["authorized_menu_items"]
    )
    assert menus["extra_menu_items"] == []
    token = await uiapi.post("/ui/auth/token", role=Role.USER, json={"token_type": "api"})
    assert token.status_code == 200
    fresh = token.json()
    assert fresh["token_type"] == "api" and fresh["expires_in_seconds"] > 0
    again = await uiapi.http.get(
        "/ui/auth/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert again.json()["username"] == "user"


async def _seed_two_dags(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("alpha", 3, tags=["etl"]))
    await store.register_version(tenant, chain_spec("beta", 2, tags=["ml"]))
    for i in range(4):
        await run_dag(store, tenant, "alpha", f"r{i}", after=T0 + timedelta(hours=i))
    await run_dag(store, tenant, "beta", "bad", fail={"t000"})


async def test_dag_list_carries_latest_runs_and_filters(uiapi: UiApi) -> None:
    await _seed_two_dags(uiapi)
    body = (await uiapi.get("/ui/dags?dag_runs_limit=3&order_by=dag_display_name")).json()
    assert body["total_entries"] == 2
    alpha, beta = body["dags"]
    assert alpha["dag_id"] == "alpha" and beta["dag_id"] == "beta"
    assert [r["run_id"] for r in alpha["latest_dag_runs"]] == ["r3", "r2", "r1"]
    assert all(isinstance(r["id"], int) for r in alpha["latest_dag_runs"])
    assert alpha["latest_dag_runs"][0]["duration"] == 3.0
    assert [r["state"] for r in beta["latest_dag_runs"]] == ["failed"]
    assert alpha["is_favorite"] is False and alpha["pending_actions"] == []

    async def ids(qs: str) -> list[str]:
        return [d["dag_id"] for d in (await uiapi.get(f"/ui/dags?{qs}")).json()["dags"]]

    assert await ids("tags=ml") == ["beta"]
    assert await ids("dag_id_pattern=alp") == ["alpha"]
    assert await ids("dag_display_name_pattern=bet") == ["beta"]
    assert await ids("last_dag_run_state=failed") == ["beta"]
    assert await ids("is_favorite=true") == []
    assert await ids("order_by=-dag_id&limit=1") == ["beta"]
    assert await ids("order_by=-dag_id&limit=1&offset=1") == ["alpha"]
    await uiapi.store.register_version(uiapi.tenant, chain_spec("gamma", 1))  # never ran
    assert await ids("order_by=last_run_state") == ["beta", "alpha", "gamma"]
    assert await ids("order_by=-last_run_state") == ["alpha", "beta", "gamma"]
    # beta's only run started at T0, alpha's latest three hours later
    assert await ids("order_by=-last_run_start_date&limit=2") == ["alpha", "beta"]
    assert await ids("order_by=last_run_start_date&offset=1") == ["alpha", "gamma"]
    assert await ids("has_import_errors=false&order_by=dag_id") == ["alpha", "beta", "gamma"]
    assert await ids("has_import_errors=true") == []
    bad = await uiapi.get("/ui/dags?last_dag_run_state=bogus")
    assert bad.status_code == 400 and "last_dag_run_state" in bad.json()["detail"]


async def test_latest_run_is_null_then_the_newest(uiapi: UiApi) -> None:
    await uiapi.store.register_version(uiapi.tenant, chain_spec("alpha"))
    response = await uiapi.get("/ui/dags/alpha/latest_run")
    assert response.status_code == 200 and response.json() is None
    await run_dag(uiapi.store, uiapi.tenant, "alpha", "old")
    newest = await run_dag(uiapi.store, uiapi.tenant, "alpha", "new", after=T0 + timedelta(days=1))
    body = (await uiapi.get("/ui/dags/alpha/latest_run")).json()
    assert body["run_id"] == "new" and body["id"] == newest.id and body["state"] == "success"
    assert (await uiapi.get("/ui/dags/nope/latest_run")).status_code == 404


async def test_grid_runs_structure_and_ndjson_cells(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("grp", 4, group_every=2))
    await run_dag(store, tenant, "grp", "ok")
    await run_dag(store, tenant, "grp", "bad", fail={"g0.t001"}, after=T0 + timedelta(hours=1))
    await run_dag(store, tenant, "grp", "live", finish=False, after=T0 + timedelta(hours=2))

    runs = (await uiapi.get("/ui/grid/runs/grp?limit=10&order_by=-run_after")).json()
    assert [r["run_id"] for r in runs] == ["live", "bad", "ok"]
    assert [r["state"] for r in runs] == ["running", "failed", "success"]
    assert runs[2]["duration"] == 4.0 and runs[0]["dag_versions"][0]["version_number"] == 1
    assert [r["run_id"] for r in (await uiapi.get("/ui/grid/runs/grp?state=failed")).json()] == [
        "bad"
    ]

    structure = (await uiapi.get("/ui/grid/structure/grp")).json()
    assert [n["id"] for n in structure] == ["g0", "g1"]
    assert [c["id"] for c in structure[0]["children"]] == ["g0.t000", "g0.t001"]
    assert [c["label"] for c in structure[1]["children"]] == ["t002", "t003"]

    response = await uiapi.get("/ui/grid/ti_summaries/grp?run_ids=bad&run_ids=ok&run_ids=ghost")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["run_id"] for line in lines] == ["bad", "ok", "ghost"]
    cells = {ti["task_id"]: ti for ti in lines[0]["task_instances"]}
    assert cells["g0.t000"]["state"] == "success" and cells["g0.t001"]["state"] == "failed"
    assert cells["g1.t002"]["state"] == "upstream_failed"
    assert cells["g0"]["state"] == "failed"
    assert cells["g0"]["child_states"] == {"success": 1, "failed": 1}
    assert cells["g1"]["state"] == "upstream_failed"
    assert cells["g0.t000"]["min_start_date"].endswith("Z")
    assert {ti["state"] for ti in lines[1]["task_instances"]} == {"success"}
    assert lines[2]["task_instances"] == []


async def test_structure_data_nodes_edges_versions_and_root(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("g", 3))
    await store.register_version(tenant, chain_spec("g", 4))
    body = (await uiapi.get("/ui/structure/structure_data?dag_id=g")).json()
    assert [n["id"] for n in body["nodes"]] == ["t000", "t001", "t002", "t003"]
    assert body["nodes"][0]["type"] == "task" and body["nodes"][0]["operator"] == "BashOperator"
    assert [(e["source_id"], e["target_id"]) for e in body["edges"]] == [
        ("t000", "t001"),
        ("t001", "t002"),
        ("t002", "t003"),
    ]
    v1 = (await uiapi.get("/ui/structure/structure_data?dag_id=g&version_number=1")).json()
    assert len(v1["nodes"]) == 3
    sub = await uiapi.get("/ui/structure/structure_data?dag_id=g&root=t001&include_downstream=true")
    assert [n["id"] for n in sub.json()["nodes"]] == ["t001", "t002", "t003"]
    assert (await uiapi.get("/ui/structure/structure_data")).status_code == 400
    missing = await uiapi.get("/ui/structure/structure_data?dag_id=g&version_number=9")
    assert missing.status_code == 404


async def test_dashboard_counts_real_states(uiapi: UiApi) -> None:
    await _seed_two_dags(uiapi)
    stats = (await uiapi.get("/ui/dashboard/dag_stats")).json()
    assert stats == {
        "active_dag_count": 2,
        "failed_dag_count": 1,
        "running_dag_count": 0,
        "queued_dag_count": 0,
    }
    since = (await uiapi.get("/ui/dashboard/historical_metrics_data?start_date=2020-01-01")).json()
    assert since["dag_run_states"] == {"queued": 0, "running": 0, "success": 4, "failed": 1}
    tis = since["task_instance_states"]
    assert tis["success"] == 12 and tis["failed"] == 1 and tis["upstream_failed"] == 1
    assert tis["no_status"] == 0 and len(tis) == 13
    window = "start_date=2026-03-01T13:30:00Z&end_date=2026-03-01T16:00:00Z"
    later = (await uiapi.get(f"/ui/dashboard/historical_metrics_data?{window}")).json()
    assert later["dag_run_states"]["success"] == 2


async def test_gantt_and_calendar(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("c", 2))
    await run_dag(store, tenant, "c", "a")
    await run_dag(store, tenant, "c", "b", fail={"t000"}, after=T0 + timedelta(minutes=5))
    gantt = (await uiapi.get("/ui/gantt/c/a")).json()
    assert gantt["dag_id"] == "c" and [t["task_id"] for t in gantt["task_instances"]] == [
        "t000",
        "t001",
    ]
    assert gantt["task_instances"][0]["try_number"] == 1
    cal = (await uiapi.get("/ui/calendar/c?granularity=daily")).json()
    assert cal == {
        "total_entries": 2,
        "dag_runs": [
            {"date": "2026-03-01T00:00:00Z", "state": "failed", "count": 1},
            {"date": "2026-03-01T00:00:00Z", "state": "success", "count": 1},
        ],
    }
    hourly = (await uiapi.get("/ui/calendar/c?granularity=hourly")).json()
    assert hourly["dag_runs"][0]["date"] == "2026-03-01T12:00:00Z"
    assert (await uiapi.get("/ui/calendar/c?granularity=weekly")).status_code == 400
    assert (await uiapi.get("/ui/gantt/c/nope")).status_code == 404


async def test_hook_meta_and_empty_concepts(uiapi: UiApi) -> None:
    hooks = (await uiapi.get("/ui/connections/hook_meta")).json()
    assert hooks == HOOK_META
    types = {h["connection_type"] for h in hooks}
    assert {"http", "postgres", "aws", "ssh", "generic"} <= types
    http = next(h for h in hooks if h["connection_type"] == "http")
    assert http["standard_fields"]["host"]["placeholder"] == "api.example.com"
    assert (await uiapi.get("/ui/backfills?dag_id=x&active=true")).json() == {
        "backfills": [],
        "total_entries": 0,
    }
    assert (await uiapi.get("/ui/teams")).json() == {"teams": [], "total_entries": 0}
    assert (await uiapi.get("/ui/dependencies")).json() == {"nodes": [], "edges": []}
    assert (await uiapi.get("/ui/next_run_assets/x")).json() == {}
    pending = await uiapi.get("/ui/pending_partitioned_dag_run/x/k")
    assert pending.status_code == 404


async def test_deadlines_of_a_real_run_are_empty(uiapi: UiApi) -> None:
    await uiapi.store.register_version(uiapi.tenant, chain_spec("d"))
    await run_dag(uiapi.store, uiapi.tenant, "d", "r")
    ok = await uiapi.get("/ui/dags/d/dagRuns/r/deadlines")
    assert ok.json() == {"deadlines": [], "total_entries": 0}
    assert (await uiapi.get("/ui/dags/d/dagRuns/zz/deadlines")).status_code == 404


async def test_mapped_task_instances_fold_into_one_cell(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("m", 2))
    run = await store.create_run(tenant, "m", run_id="r", logical_date=T0, now=T0)
    mapped = sorted(await store.expand_mapped_ti(run.id, "t001", 3), key=lambda ti: ti.map_index)
    assert [ti.map_index for ti in mapped] == [0, 1, 2]
    for ti, end in zip(mapped[:2], (TIState.SUCCESS, TIState.FAILED), strict=True):
        for state in (TIState.SCHEDULED, TIState.QUEUED, TIState.RUNNING, end):
            assert await store.transition_ti(ti.id, state, now=T0 + timedelta(seconds=ti.map_index))
    line = json.loads((await uiapi.get("/ui/grid/ti_summaries/m?run_ids=r")).text)
    cells = {ti["task_id"]: ti for ti in line["task_instances"]}
    assert cells["t000"]["state"] is None and cells["t000"]["child_states"] is None
    assert cells["t001"]["state"] == "failed"
    assert cells["t001"]["child_states"] == {"success": 1, "failed": 1, "no_status": 1}
    assert cells["t001"]["min_start_date"] == "2026-03-01T12:00:00.000000Z"
    assert cells["t001"]["max_end_date"] == "2026-03-01T12:00:01.000000Z"


async def test_grid_structure_keeps_tasks_of_older_versions_its_runs_show(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("v", 3))
    await run_dag(store, tenant, "v", "old")
    await store.register_version(tenant, chain_spec("v", 2))  # t002 removed
    await run_dag(store, tenant, "v", "new", after=T0 + timedelta(hours=1))
    ids = [n["id"] for n in (await uiapi.get("/ui/grid/structure/v?limit=10")).json()]
    assert ids == ["t000", "t001", "t002"]
    newest = await uiapi.get("/ui/grid/structure/v?limit=1&order_by=-run_after")
    assert [n["id"] for n in newest.json()] == ["t000", "t001"]
