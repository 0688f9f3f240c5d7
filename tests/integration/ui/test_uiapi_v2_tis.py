"""Bulk task-instance writes, task-instance deletes, external log URLs and backfill answers
(leoflow/server/ui/v2_tis.py, v2_extra.py) through the real app on Postgres and Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from test_uiapi_schema import assert_valid, schema_validator
from uiapi_seed import T0, UiApi, chain_spec, run_dag

from leoflow.errors import NotFound
from leoflow.store.api import Role

_RUN = "/api/v2/dags/{}/dagRuns/{}"
_TIS = _RUN + "/taskInstances"


async def _seed(uiapi: UiApi) -> None:
    """a: t000 >> t001 >> t002, runs ok (success) and ok2 (an hour later, success);
    b: t000 >> t001, run bad (t000 failed, t001 upstream_failed); c: run live (t000 running)."""
    store, tenant = uiapi.store, uiapi.tenant
    for dag_id, n in (("a", 3), ("b", 2), ("c", 2)):
        await store.register_version(tenant, chain_spec(dag_id, n))
    await run_dag(store, tenant, "a", "ok")
    await run_dag(store, tenant, "a", "ok2", after=T0 + timedelta(hours=1))
    await run_dag(store, tenant, "b", "bad", fail={"t000"})
    await run_dag(store, tenant, "c", "live", finish=False)


async def _bulk(uiapi: UiApi, dag_id: str, run_id: str, *actions: Any, role: Role = Role.USER):
    return await uiapi.request(
        "PATCH", _TIS.format(dag_id, run_id), role=role, json={"actions": list(actions)}
    )


async def _states(uiapi: UiApi, dag_id: str, run_id: str) -> dict[str, str | None]:
    body = (await uiapi.get(_TIS.format(dag_id, run_id))).json()
    return {t["task_id"]: t["state"] for t in body["task_instances"]}


def _v2(spec: dict[str, Any], name: str) -> Any:
    return schema_validator(spec["v2"], {"$ref": f"#/components/schemas/{name}"})


async def test_bulk_mark_success_clears_failed_downstream_and_requeues_the_run(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    await _seed(uiapi)
    update = {"action": "update", "entities": [{"task_id": "t000", "new_state": "SUCCESS"}]}
    response = await _bulk(uiapi, "b", "bad", update)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "create": None,
        "update": {"success": ["b.bad.t000[-1]"], "errors": []},
        "delete": None,
    }
    assert_valid(_v2(airflow_openapi, "BulkResponse"), body, "bulk TI response")
    # As Airflow's set_task_instance_state: the failed downstream is cleared, the run resumes.
    assert await _states(uiapi, "b", "bad") == {"t000": "success", "t001": None}
    assert (await uiapi.get(_RUN.format("b", "bad"))).json()["state"] == "queued"
    again = await _bulk(uiapi, "b", "bad", update)
    assert again.json()["update"] == {
        "success": [],
        "errors": [{"error": "Task id t000 is already in success state", "status_code": 409}],
    }


async def test_bulk_marks_reach_relatives_and_other_runs(uiapi: UiApi) -> None:
    await _seed(uiapi)
    entity = {"task_id": "t001", "new_state": "failed", "include_downstream": True}
    done = await _bulk(uiapi, "a", "ok", {"action": "update", "entities": [entity]})
    assert done.json()["update"]["success"] == ["a.ok.t001[-1]"]
    assert await _states(uiapi, "a", "ok") == {
        "t000": "success",
        "t001": "failed",
        "t002": "failed",
    }
    assert await _states(uiapi, "a", "ok2") == {t: "success" for t in ("t000", "t001", "t002")}
    future = {"task_id": "t000", "map_index": -1, "new_state": "skipped", "include_future": True}
    await _bulk(uiapi, "a", "ok", {"action": "update", "entities": [future]})
    assert (await _states(uiapi, "a", "ok"))["t000"] == "skipped"
    assert (await _states(uiapi, "a", "ok2"))["t000"] == "skipped"
    past = {
        "task_id": "t002",
        "new_state": "skipped",
        "include_past": True,
        "include_upstream": True,
    }
    await _bulk(uiapi, "a", "ok2", {"action": "update", "entities": [past]})
    assert set((await _states(uiapi, "a", "ok")).values()) == {"skipped"}
    assert set((await _states(uiapi, "a", "ok2")).values()) == {"skipped"}


async def test_bulk_notes_masks_and_per_action_errors(uiapi: UiApi) -> None:
    await _seed(uiapi)
    note = {"action": "update", "entities": [{"task_id": "t000", "note": "checked by hand"}]}
    masked = {
        "action": "update",
        "update_mask": ["note"],
        "entities": [{"task_id": "t001", "note": "only the note", "new_state": "failed"}],
    }
    response = await _bulk(uiapi, "a", "ok", note, masked)
    assert response.json()["update"]["success"] == ["a.ok.t000[-1]", "a.ok.t001[-1]"]
    ti = (await uiapi.get(_TIS.format("a", "ok") + "/t000")).json()
    assert ti["note"] == "checked by hand" and ti["state"] == "success"
    ti1 = (await uiapi.get(_TIS.format("a", "ok") + "/t001")).json()
    assert ti1["note"] == "only the note" and ti1["state"] == "success"  # new_state masked out

    missing = {"task_id": "t000", "map_index": 3, "new_state": "failed"}
    failed = await _bulk(uiapi, "a", "ok", {"action": "update", "entities": [missing]})
    error = failed.json()["update"]["errors"][0]
    assert error["status_code"] == 404 and "'map_index': 3" in error["error"]
    skipped = await _bulk(
        uiapi,
        "a",
        "ok",
        {"action": "update", "entities": [missing], "action_on_non_existence": "skip"},
    )
    assert skipped.json()["update"] == {"success": [], "errors": []}
    wild = await _bulk(uiapi, "~", "~", {"action": "delete", "entities": ["t000"]})
    assert wild.json()["delete"]["errors"] == [
        {
            "error": "When using wildcard in path, dag_id and dag_run_id must be specified in "
            "BulkTaskInstanceBody object, not as string for task_id: t000",
            "status_code": 400,
        }
    ]
    keyed = {"task_id": "t002", "dag_id": "a", "dag_run_id": "ok", "note": "via ~"}
    across = await _bulk(uiapi, "~", "~", {"action": "update", "entities": [keyed]})
    assert across.json()["update"] == {"success": ["a.ok.t002[-1]"], "errors": []}
    assert (await uiapi.get(_TIS.format("a", "ok") + "/t002")).json()["note"] == "via ~"
    create = await _bulk(uiapi, "a", "ok", {"action": "create", "entities": [{"task_id": "x"}]})
    assert create.json()["create"]["errors"] == [
        {"error": "Task instances bulk create is not supported", "status_code": 405}
    ]
    assert await _states(uiapi, "a", "ok") == {t: "success" for t in ("t000", "t001", "t002")}


async def test_bulk_rejects_bad_bodies_and_viewers(uiapi: UiApi) -> None:
    await _seed(uiapi)
    path = _TIS.format("a", "ok")
    for entity, field in (
        ({"task_id": "t000", "new_state": "running"}, "new_state"),
        ({"task_id": "t000", "new_state": None}, "new_state"),
        ({"new_state": "failed"}, "task_id"),
        ({"task_id": "t000", "note": "x" * 1001}, "note"),
        ({"task_id": "t000", "bogus": 1}, "bogus"),
    ):
        response = await uiapi.request(
            "PATCH",
            path,
            role=Role.USER,
            json={"actions": [{"action": "update", "entities": [entity]}]},
        )
        assert response.status_code == 422, (entity, response.text)
        assert any(field in err["loc"] for err in response.json()["detail"]), response.text
    assert (
        await uiapi.request("PATCH", path, json={"actions": [{"action": "x"}]})
    ).status_code == 422
    viewer = await _bulk(
        uiapi, "a", "ok", {"action": "update", "entities": [{"task_id": "t000", "new_state": "failed"}]},
        role=Role.VIEWER,
    )  # fmt: skip
    assert viewer.status_code == 403
    assert await _states(uiapi, "a", "ok") == {t: "success" for t in ("t000", "t001", "t002")}


async def test_delete_task_instance_removes_row_tries_and_xcoms(uiapi: UiApi) -> None:
    await _seed(uiapi)
    store, redis, tenant = uiapi.store, uiapi.redis, uiapi.tenant
    ti = await store.get_ti(tenant, "a", "ok", "t001")
    size = await redis.set_xcom(tenant, "a", "ok", "t001", "return_value", {"rows": 2})
    await store.upsert_xcom(ti.id, "return_value", size)
    path = _TIS.format("a", "ok") + "/t001"
    assert (await uiapi.request("DELETE", path, role=Role.VIEWER)).status_code == 403
    deleted = await uiapi.request("DELETE", path, role=Role.USER)
    assert deleted.status_code == 200 and deleted.json() is None
    gone = await uiapi.get(path)
    assert gone.status_code == 404
    assert (await uiapi.get(path + "/tries")).status_code == 404
    assert sorted(await _states(uiapi, "a", "ok")) == ["t000", "t002"]
    assert (await store.list_xcoms(tenant, "a", "ok", "t001")).total == 0
    with pytest.raises(NotFound):
        await redis.get_xcom(tenant, "a", "ok", "t001", "return_value")
    again = await uiapi.request("DELETE", path, role=Role.USER)
    assert again.status_code == 404
    assert again.json()["detail"] == (
        "The Task Instance with dag_id: `a`, run_id: `ok`, task_id: `t001` and map_index: `-1` "
        "was not found"
    )
    audit = await uiapi.get("/api/v2/eventLogs?event=delete_task_instance", role=Role.ADMIN)
    assert audit.json()["total_entries"] == 1


async def test_delete_is_refused_while_the_run_is_active(uiapi: UiApi) -> None:
    await _seed(uiapi)
    path = _TIS.format("c", "live") + "/t001"
    refused = await uiapi.request("DELETE", path, role=Role.USER)
    assert refused.status_code == 409 and "clear the task instance instead" in refused.text
    assert (await uiapi.get(path)).status_code == 200
    bulk = await _bulk(uiapi, "c", "live", {"action": "delete", "entities": ["t000", "t001"]})
    assert bulk.json()["delete"]["success"] == []
    assert bulk.json()["delete"]["errors"][0]["status_code"] == 409
    assert sorted(await _states(uiapi, "c", "live")) == ["t000", "t001"]
    finished = await _bulk(
        uiapi, "b", "bad", {"action": "delete", "entities": [{"task_id": "t001", "map_index": -1}]}
    )
    assert finished.json()["delete"] == {"success": ["b.bad.t001[-1]"], "errors": []}
    assert await _states(uiapi, "b", "bad") == {"t000": "failed"}


async def test_delete_xcom_entry(uiapi: UiApi) -> None:
    await _seed(uiapi)
    store, redis, tenant = uiapi.store, uiapi.redis, uiapi.tenant
    ti = await store.get_ti(tenant, "a", "ok", "t000")
    for key in ("k", "keep"):
        size = await redis.set_xcom(tenant, "a", "ok", "t000", key, [1])
        await store.upsert_xcom(ti.id, key, size)
    path = _TIS.format("a", "ok") + "/t000/xcomEntries"
    assert (await uiapi.request("DELETE", path + "/k", role=Role.VIEWER)).status_code == 403
    deleted = await uiapi.request("DELETE", path + "/k", role=Role.USER)
    assert deleted.status_code == 204, deleted.text
    listed = (await uiapi.get(path)).json()
    assert [x["key"] for x in listed["xcom_entries"]] == ["keep"]
    assert await redis.get_xcom(tenant, "a", "ok", "t000", "keep") == [1]
    with pytest.raises(NotFound):
        await redis.get_xcom(tenant, "a", "ok", "t000", "k")
    again = await uiapi.request("DELETE", path + "/k", role=Role.USER)
    assert again.status_code == 404
    assert again.json()["detail"] == (
        "The XCom with key: `k` with mentioned task instance doesn't exist."
    )
    assert (await uiapi.request("DELETE", path + "/keep?map_index=x")).status_code == 422


async def test_external_log_url_is_airflows_400(uiapi: UiApi) -> None:
    await _seed(uiapi)
    path = _TIS.format("a", "ok") + "/t000/externalLogUrl/1"
    response = await uiapi.get(path, role=Role.VIEWER)
    assert response.status_code == 400
    assert response.json() == {"detail": "Task log handler does not support external logs."}
    assert (await uiapi.get(path[:-1] + "0")).status_code == 422
    assert (await uiapi.get(path + "?map_index=x")).status_code == 422
    assert (await uiapi.get(path, role=None)).status_code == 401


async def test_backfills_are_refused_as_airflow_refuses_a_dag_without_them(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    await _seed(uiapi)
    body = {"dag_id": "a", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-03T00:00:00Z"}
    dry = await uiapi.post("/api/v2/backfills/dry_run", role=Role.USER, json=body)
    assert dry.status_code == 200 and dry.json() == {"backfills": [], "total_entries": 0}
    assert_valid(_v2(airflow_openapi, "DryRunBackfillCollectionResponse"), dry.json(), "dry run")
    created = await uiapi.post("/api/v2/backfills", role=Role.USER, json=body)
    assert created.status_code == 400
    assert "Dag with dag_id: 'a' does not allow backfill runs" in created.json()["detail"]
    dag = (await uiapi.get("/api/v2/dags/a")).json()
    assert "backfill" not in dag["allowed_run_types"]  # what the refusal rests on
    unknown = await uiapi.post("/api/v2/backfills", json={**body, "dag_id": "zz"})
    assert unknown.status_code == 404 and "Could not find dag zz" in unknown.json()["detail"]
    bad = await uiapi.post("/api/v2/backfills/dry_run", json={"dag_id": "a", "to_date": "x"})
    assert bad.status_code == 422
    assert {"from_date", "to_date"} <= {e["loc"][-1] for e in bad.json()["detail"]}
    assert (await uiapi.post("/api/v2/backfills", role=Role.VIEWER, json=body)).status_code == 403
    missing = await uiapi.get("/api/v2/backfills/3")
    assert missing.status_code == 404 and missing.json()["detail"] == "Backfill not found"
    pause = await uiapi.request("PUT", "/api/v2/backfills/3/pause")
    assert pause.json()["detail"] == "Could not find backfill with id 3"
