"""The /api/v2 calls only the UI makes (leoflow/server/ui/v2_extra.py), through the real app."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from test_uiapi_schema import assert_valid, schema_validator
from uiapi_seed import T0, UiApi, chain_spec, run_dag

from leoflow.store.api import Role

_RUNS = "/api/v2/dags/{}/dagRuns"


async def _seed(uiapi: UiApi) -> None:
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("a", 2))
    await store.register_version(tenant, chain_spec("b", 2))
    await run_dag(store, tenant, "a", "ok")
    await run_dag(store, tenant, "b", "bad", fail={"t000"}, after=T0 + timedelta(hours=1))


def _v2(spec: dict[str, Any], name: str) -> Any:
    return schema_validator(spec["v2"], {"$ref": f"#/components/schemas/{name}"})


async def test_batch_run_and_task_instance_lists(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    await _seed(uiapi)
    runs = await uiapi.post(
        "/api/v2/dags/~/dagRuns/list",
        role=Role.VIEWER,
        json={"dag_ids": ["b"], "states": ["failed"]},
    )
    assert runs.status_code == 200, runs.text
    body = runs.json()
    assert body["total_entries"] == 1 and body["dag_runs"][0]["dag_run_id"] == "bad"
    assert_valid(_v2(airflow_openapi, "DAGRunCollectionResponse"), body, "dagRuns/list")
    bad = await uiapi.post("/api/v2/dags/~/dagRuns/list", json={"bogus": 1})
    assert bad.status_code == 422
    later = await uiapi.post(
        "/api/v2/dags/~/dagRuns/list", json={"run_after_gt": "2026-03-01T12:30:00Z"}
    )
    assert [r["dag_run_id"] for r in later.json()["dag_runs"]] == ["bad"]
    refused = await uiapi.post("/api/v2/dags/~/dagRuns/list", json={"duration_gte": 1})
    assert refused.status_code == 400 and "duration_gte" in refused.json()["detail"]

    tis = await uiapi.post(
        "/api/v2/dags/~/dagRuns/~/taskInstances/list",
        role=Role.VIEWER,
        json={"state": ["failed", "upstream_failed"], "order_by": "task_id"},
    )
    assert tis.status_code == 200, tis.text
    body = tis.json()
    assert [(t["dag_id"], t["task_id"], t["state"]) for t in body["task_instances"]] == [
        ("b", "t000", "failed"),
        ("b", "t001", "upstream_failed"),
    ]
    assert_valid(_v2(airflow_openapi, "TaskInstanceCollectionResponse"), body, "TI list")
    none = await uiapi.post(
        "/api/v2/dags/a/dagRuns/ok/taskInstances/list",
        json={"start_date_gte": "2030-01-01T00:00:00Z"},
    )
    assert none.json() == {"task_instances": [], "total_entries": 0}


async def test_xcom_create_update_and_read_back(uiapi: UiApi) -> None:
    await _seed(uiapi)
    base = "/api/v2/dags/a/dagRuns/ok/taskInstances/t000/xcomEntries"
    created = await uiapi.post(base, role=Role.USER, json={"key": "k", "value": {"n": 1}})
    assert created.status_code == 201, created.text
    assert created.json()["value"] == {"n": 1}
    patched = await uiapi.request("PATCH", base + "/k", role=Role.USER, json={"value": [2]})
    assert patched.status_code == 200 and patched.json()["value"] == [2]
    read = await uiapi.get(base + "/k?deserialize=true&stringify=false")
    assert read.json()["value"] == [2]
    assert (await uiapi.post(base, role=Role.VIEWER, json={"key": "x"})).status_code == 403
    missing = await uiapi.request("PATCH", base + "/nope", role=Role.USER, json={"value": 1})
    assert missing.status_code == 404


async def test_wait_streams_the_final_state_of_a_finished_run(uiapi: UiApi) -> None:
    await _seed(uiapi)
    response = await uiapi.get(_RUNS.format("b") + "/bad/wait?interval=0.1")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in response.text.splitlines()] == [{"state": "failed"}]
    await uiapi.redis.set_xcom(uiapi.tenant, "a", "ok", "t001", "return_value", {"rows": 2})
    done = await uiapi.get(_RUNS.format("a") + "/ok/wait?interval=1&result=t001&result=t000")
    assert json.loads(done.text) == {
        "state": "success",
        "results": {"t001": {"rows": 2}, "t000": None},
    }


async def test_answers_for_what_leoflow_lacks_or_hides(uiapi: UiApi) -> None:
    await _seed(uiapi)
    ti = "/api/v2/dags/a/dagRuns/ok/taskInstances/t000"
    assert (await uiapi.get(ti + "/dependencies")).json() == {"dependencies": []}
    assert (await uiapi.get(ti + "/-1/dependencies")).json() == {"dependencies": []}
    assert (await uiapi.get(ti + "/listMapped")).status_code == 404  # t000 is not mapped
    assert (await uiapi.get(ti + "/-1/hitlDetails")).status_code == 404
    upstream = await uiapi.get("/api/v2/dags/a/dagRuns/ok/upstreamAssetEvents")
    assert upstream.json() == {"asset_events": [], "total_entries": 0}
    assert (await uiapi.get("/api/v2/dags/a/assets/7/queuedEvents")).status_code == 404
    assert (await uiapi.get("/api/v2/assets/7")).status_code == 404
    assert (await uiapi.get("/api/v2/backfills/3")).status_code == 404
    option = await uiapi.get("/api/v2/config/section/core/option/dags_folder")
    assert option.status_code == 403 and "expose the configuration" in option.json()["detail"]
    # POST /connections/test is now the core API's own (leoflow/server/api/connections.py).
    backfill = await uiapi.post("/api/v2/backfills", json={})
    assert backfill.status_code == 422  # a real body is refused with 400 (test_uiapi_v2_tis)
    events = await uiapi.post("/api/v2/assets/events", role=Role.USER, json={"asset_id": 1})
    assert events.status_code == 501 and "not supported by Leoflow" in events.text
    reparse = await uiapi.request("PUT", "/api/v2/parseDagFile/a", role=Role.USER)
    assert reparse.status_code == 201
    assert (await uiapi.request("PUT", "/api/v2/parseDagFile/zz")).status_code == 404
    assert (await uiapi.post("/api/v2/connections/defaults")).status_code == 204
