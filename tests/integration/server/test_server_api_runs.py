"""Runs, task instances, tries, clears, logs and XCom through the API."""

from __future__ import annotations

import asyncio
import json

from airflow_client.client.models.dag_run_collection_response import DAGRunCollectionResponse
from airflow_client.client.models.dag_run_response import DAGRunResponse
from airflow_client.client.models.task_instance_collection_response import (
    TaskInstanceCollectionResponse,
)
from airflow_client.client.models.task_instance_history_collection_response import (
    TaskInstanceHistoryCollectionResponse,
)
from airflow_client.client.models.task_instance_response import TaskInstanceResponse
from airflow_client.client.models.x_com_collection_response import XComCollectionResponse

from leoflow.logs import log_path
from leoflow.store.api import TIState
from tests.integration.server.conftest import Api, make_spec


async def _setup(api: Api, dag_id: str = "etl") -> dict:
    assert (await api.push(make_spec(dag_id))).status_code == 201
    return await api.trigger(dag_id, dag_run_id="r1", conf={"rows": 5}, note="hi")


async def test_trigger_validates_body_and_conf(api: Api) -> None:
    run = await _setup(api)
    DAGRunResponse.from_dict(run)
    assert run["dag_run_id"] == "r1" and run["conf"] == {"rows": 5} and run["note"] == "hi"
    assert run["state"] == "queued" and run["logical_date"] is None
    no_key = await api.post("/api/v2/dags/etl/dagRuns", json={"conf": {}})
    assert no_key.status_code == 422 and no_key.json()["detail"][0]["loc"] == [
        "body",
        "logical_date",
    ]
    bad_conf = await api.post(
        "/api/v2/dags/etl/dagRuns", json={"logical_date": None, "conf": {"rows": 0}}
    )
    assert bad_conf.status_code == 400 and "conf.rows" in bad_conf.json()["detail"]
    dup = await api.post(
        "/api/v2/dags/etl/dagRuns", json={"logical_date": None, "dag_run_id": "r1"}
    )
    assert dup.status_code == 409
    extra = await api.post("/api/v2/dags/etl/dagRuns", json={"logical_date": None, "bogus": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "bogus"]
    dated = await api.trigger("etl", logical_date="2026-01-01T00:00:00Z")
    assert dated["logical_date"] == "2026-01-01T00:00:00Z"
    assert (
        await api.post("/api/v2/dags/nope/dagRuns", json={"logical_date": None})
    ).status_code == 404


async def test_list_runs_per_dag_and_wildcard(api: Api) -> None:
    await _setup(api, "a")
    await _setup(api, "b")
    await api.patch("/api/v2/dags/b/dagRuns/r1", json={"state": "failed"})
    mine = (await api.get("/api/v2/dags/a/dagRuns")).json()
    DAGRunCollectionResponse.from_dict(mine)
    assert [r["dag_id"] for r in mine["dag_runs"]] == ["a"]
    every = (await api.get("/api/v2/dags/~/dagRuns", params={"order_by": "dag_id"})).json()
    assert [r["dag_id"] for r in every["dag_runs"]] == ["a", "b"]
    failed = (
        await api.get("/api/v2/dags/~/dagRuns", params=[("state", "failed"), ("state", "running")])
    ).json()
    assert [r["dag_id"] for r in failed["dag_runs"]] == ["b"]
    bad = await api.get("/api/v2/dags/~/dagRuns", params={"state": "exploded"})
    assert bad.status_code == 400 and "state" in bad.json()["detail"]
    dates = await api.get("/api/v2/dags/~/dagRuns", params={"run_after_gte": "not-a-date"})
    assert dates.status_code == 422 and dates.json()["detail"][0]["loc"] == [
        "query",
        "run_after_gte",
    ]


async def test_get_patch_clear_delete_run(api: Api) -> None:
    await _setup(api)
    assert (await api.get("/api/v2/dags/etl/dagRuns/r1")).json()["dag_run_id"] == "r1"
    assert (await api.get("/api/v2/dags/etl/dagRuns/nope")).status_code == 404
    marked = await api.patch(
        "/api/v2/dags/etl/dagRuns/r1", json={"state": "success", "note": "done"}
    )
    assert (
        marked.status_code == 200
        and marked.json()["state"] == "success"
        and marked.json()["note"] == "done"
    )
    bad = await api.patch("/api/v2/dags/etl/dagRuns/r1", json={"state": "running"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "state"]
    preview = await api.post("/api/v2/dags/etl/dagRuns/r1/clear", json={"dry_run": True})
    TaskInstanceCollectionResponse.from_dict(preview.json())
    assert preview.json()["total_entries"] == 3
    cleared = await api.post("/api/v2/dags/etl/dagRuns/r1/clear", json={"dry_run": False})
    assert cleared.status_code == 200 and cleared.json()["state"] == "queued"
    assert (await api.delete("/api/v2/dags/etl/dagRuns/r1")).status_code == 204
    assert (await api.get("/api/v2/dags/etl/dagRuns/r1")).status_code == 404


async def _run_one_try(api: Api, task_id: str, final: TIState) -> None:
    ti = await api.store.get_ti(api.tenant, "etl", "r1", task_id)
    for state in (TIState.SCHEDULED, TIState.QUEUED, TIState.RUNNING, final):
        assert await api.store.transition_ti(ti.id, state), state


async def test_task_instances_tries_and_marks(api: Api) -> None:
    await _setup(api)
    await _run_one_try(api, "extract", TIState.FAILED)
    base = "/api/v2/dags/etl/dagRuns/r1/taskInstances"
    listed = (await api.get(base, params={"order_by": "task_id"})).json()
    TaskInstanceCollectionResponse.from_dict(listed)
    assert [t["task_id"] for t in listed["task_instances"]] == ["extract", "load", "transform"]
    everywhere = (await api.get("/api/v2/dags/~/dagRuns/~/taskInstances")).json()
    assert everywhere["total_entries"] == 3
    none_state = (await api.get(base, params={"state": "none"})).json()
    assert none_state["total_entries"] == 2
    one = TaskInstanceResponse.from_dict((await api.get(base + "/extract")).json())
    assert one.map_index == -1
    assert (await api.get(base + "/extract/-1")).json()["task_id"] == "extract"
    assert (await api.get(base + "/extract/3")).status_code == 404
    dry = await api.patch(base + "/extract/dry_run", json={"new_state": "success"})
    assert dry.status_code == 200 and dry.json()["task_instances"][0]["state"] == "failed"
    marked = await api.patch(base + "/extract", json={"new_state": "success"})
    assert marked.status_code == 200 and marked.json()["task_instances"][0]["state"] == "success"
    note = await api.patch(base + "/extract/-1", json={"note": "looked at it"})
    assert note.json()["task_instances"][0]["note"] == "looked at it"
    bad = await api.patch(base + "/extract", json={"new_state": "running"})
    assert bad.status_code == 422
    tries = (await api.get(base + "/extract/tries")).json()
    TaskInstanceHistoryCollectionResponse.from_dict(tries)
    assert tries["total_entries"] >= 1
    number = tries["task_instances"][-1]["try_number"]
    one_try = await api.get(base + f"/extract/tries/{number}")
    assert one_try.status_code == 200 and one_try.json()["try_number"] == number
    assert (await api.get(base + "/extract/-1/tries")).json()["total_entries"] == tries[
        "total_entries"
    ]
    assert (await api.get(base + "/extract/tries/99")).status_code == 404
    links = (await api.get(base + "/extract/links")).json()
    assert links == {"extra_links": {}, "total_entries": 0}


async def test_clear_task_instances_with_airflow_body(api: Api) -> None:
    await _setup(api)
    base = "/api/v2/dags/etl/dagRuns/r1/taskInstances"
    await api.patch(base + "/extract", json={"new_state": "failed"})
    body = {
        "dag_run_id": "r1",
        "task_ids": [["extract", -1]],
        "only_failed": True,
        "include_downstream": True,
        "dry_run": True,
    }
    preview = await api.post("/api/v2/dags/etl/clearTaskInstances", json=body)
    assert preview.status_code == 200, preview.text
    assert [t["task_id"] for t in preview.json()["task_instances"]] == ["extract"]
    real = await api.post(
        "/api/v2/dags/etl/clearTaskInstances",
        json={**body, "dry_run": False, "task_ids": ["extract"]},
    )
    assert real.status_code == 200 and real.json()["total_entries"] == 1
    after = (await api.get(base + "/extract")).json()
    assert after["state"] is None
    bad = await api.post(
        "/api/v2/dags/etl/clearTaskInstances", json={"task_ids": [["extract", "x"]]}
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "task_ids"]
    missing_run = await api.post("/api/v2/dags/etl/clearTaskInstances", json={"dag_run_id": "nope"})
    assert missing_run.status_code == 404


async def test_logs_as_json_and_ndjson(api: Api) -> None:
    await _setup(api)
    path = log_path(
        api.settings.logs_dir,
        tenant=api.tenant,
        dag_id="etl",
        run_id="r1",
        task_id="extract",
        map_index=-1,
        try_number=1,
    )
    path.parent.mkdir(parents=True)
    lines = [
        {
            "timestamp": "2026-01-01T00:00:00Z",
            "level": "info",
            "event": f"line {i}",
            "logger": "task.stdout",
        }
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    url = "/api/v2/dags/etl/dagRuns/r1/taskInstances/extract/logs/1"
    as_json = (await api.get(url, headers={"Accept": "application/json"})).json()
    assert [e["event"] for e in as_json["content"]] == ["line 0", "line 1", "line 2"]
    token = as_json["continuation_token"]
    with path.open("a") as fh:
        fh.write(
            json.dumps({"timestamp": "2026-01-01T00:00:01Z", "level": "error", "event": "late"})
            + "\n"
        )
    more = (
        await api.get(url, params={"token": token}, headers={"Accept": "application/json"})
    ).json()
    assert [e["event"] for e in more["content"]] == ["late"]
    nd = await api.get(url, headers={"Accept": "application/x-ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(x) for x in nd.text.splitlines()]
    assert events[0]["event"].startswith("::group::") and events[2]["event"] == "line 0"
    assert events[-1] == {
        "timestamp": "2026-01-01T00:00:01Z",
        "event": "late",
        "level": "error",
        "logger": "task",
    }
    absent = (await api.get(url.replace("/1", "/2"), headers={"Accept": "application/json"})).json()
    assert absent["content"][0]["event"] == "No logs available for this attempt."
    assert (await api.get(url.replace("extract", "nope"))).status_code == 404


async def test_xcom_entries_and_values(api: Api) -> None:
    await _setup(api)
    ti = await api.store.get_ti(api.tenant, "etl", "r1", "extract")
    size = await api.redis.set_xcom(
        api.tenant, "etl", "r1", "extract", "return_value", {"rows": [1, 2]}
    )
    await api.store.upsert_xcom(ti.id, "return_value", size)
    base = "/api/v2/dags/etl/dagRuns/r1/taskInstances/extract/xcomEntries"
    listed = (await api.get(base)).json()
    XComCollectionResponse.from_dict(listed)
    assert [e["key"] for e in listed["xcom_entries"]] == ["return_value"]
    wildcard = (await api.get("/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries")).json()
    assert wildcard["total_entries"] == 1
    value = (await api.get(base + "/return_value")).json()
    assert value["value"] == {"rows": [1, 2]} and value["task_id"] == "extract"
    assert (await api.get(base + "/missing")).status_code == 404
    assert ti.state is None or ti.state != TIState.RUNNING


async def test_ndjson_follows_a_running_try_until_it_ends(api: Api) -> None:
    await _setup(api)
    ti = await api.store.get_ti(api.tenant, "etl", "r1", "extract")
    for state in (TIState.SCHEDULED, TIState.QUEUED, TIState.RUNNING):
        assert await api.store.transition_ti(ti.id, state)
    url = "/api/v2/dags/etl/dagRuns/r1/taskInstances/extract/logs/1"
    request = asyncio.create_task(
        api.get(url, params={"follow": "true"}, headers={"Accept": "application/x-ndjson"})
    )
    line = json.dumps({"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": "live!"})
    # Publish until the route's subscription is there (the receiver count says so).
    while await api.redis.publish_log(api.tenant, "etl", "r1", "extract", 1, line) < 1:
        assert not request.done(), request.result().text
        await asyncio.sleep(0.01)
    assert await api.store.transition_ti(ti.id, TIState.SUCCESS)
    response = await asyncio.wait_for(request, 30)
    events = [json.loads(x)["event"] for x in response.text.splitlines()]
    assert "live!" in events


async def test_marking_with_downstream_marks_the_relatives(api: Api) -> None:
    await _setup(api)
    base = "/api/v2/dags/etl/dagRuns/r1/taskInstances"
    body = {"new_state": "failed", "include_downstream": True}
    preview = await api.patch(base + "/transform/dry_run", json=body)
    assert [t["task_id"] for t in preview.json()["task_instances"]] == ["transform", "load"]
    marked = await api.patch(base + "/transform", json=body)
    assert [(t["task_id"], t["state"]) for t in marked.json()["task_instances"]] == [
        ("transform", "failed"),
        ("load", "failed"),
    ]
    assert (await api.get(base + "/extract")).json()["state"] is None
