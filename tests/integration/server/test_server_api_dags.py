"""DAG routes: registration, listing with filters, details, tasks, versions, sources."""

from __future__ import annotations

import json

from airflow_client.client.models.dag_collection_response import DAGCollectionResponse
from airflow_client.client.models.dag_details_response import DAGDetailsResponse
from airflow_client.client.models.dag_response import DAGResponse
from airflow_client.client.models.dag_source_response import DAGSourceResponse
from airflow_client.client.models.dag_version_collection_response import (
    DAGVersionCollectionResponse,
)
from airflow_client.client.models.task_collection_response import TaskCollectionResponse
from airflow_client.client.models.task_response import TaskResponse

from leoflow.spec import dumps
from leoflow.store.api import Role
from tests.integration.server.conftest import Api, make_spec


async def test_register_is_201_then_200_when_identical(api: Api) -> None:
    first = await api.push(make_spec("reg"))
    assert first.status_code == 201
    assert first.json()["created"] is True and first.json()["version_number"] == 1
    again = await api.push(make_spec("reg"))
    assert again.status_code == 200 and again.json()["created"] is False
    changed = await api.push(make_spec("reg", description="v2"))
    assert changed.status_code == 201 and changed.json()["version_number"] == 2
    upstream_path = await api.http.post(
        "/api/v2/dags/reg/versions", content=dumps(make_spec("reg")), headers=api.headers()
    )
    assert upstream_path.status_code == 200


async def test_register_refuses_a_bad_spec_naming_the_field(api: Api) -> None:
    body = json.loads(dumps(make_spec("bad")))
    body["tasks"][0]["retries"] = -1
    body["content_hash"] = ""
    response = await api.http.post(
        "/api/v2/leoflow/dags/bad/versions", content=json.dumps(body), headers=api.headers()
    )
    assert response.status_code == 400
    assert "tasks.0.retries" in response.json()["detail"]
    mismatch = await api.http.post(
        "/api/v2/leoflow/dags/other/versions",
        content=dumps(make_spec("bad")),
        headers=api.headers(),
    )
    assert mismatch.status_code == 400 and "dag_id" in mismatch.json()["detail"]
    broken = await api.http.post(
        "/api/v2/leoflow/dags/bad/versions", content=b"{nope", headers=api.headers()
    )
    assert broken.status_code == 400 and "JSON" in broken.json()["detail"]


async def test_list_filters_paginates_and_orders(api: Api) -> None:
    for name, tags in [("alpha", ["a"]), ("beta", ["b"]), ("gamma", ["a", "c"])]:
        assert (await api.push(make_spec(name, tags=tags))).status_code == 201
    await api.patch("/api/v2/dags/beta", json={"is_paused": True})
    body = (await api.get("/api/v2/dags", params={"order_by": "-dag_id", "limit": 2})).json()
    DAGCollectionResponse.from_dict(body)
    assert body["total_entries"] == 3 and [d["dag_id"] for d in body["dags"]] == ["gamma", "beta"]
    page2 = (
        await api.get("/api/v2/dags", params={"order_by": "-dag_id", "limit": 2, "offset": 2})
    ).json()
    assert [d["dag_id"] for d in page2["dags"]] == ["alpha"]
    tagged = (await api.get("/api/v2/dags", params=[("tags", "a")])).json()
    assert sorted(d["dag_id"] for d in tagged["dags"]) == ["alpha", "gamma"]
    paused = (await api.get("/api/v2/dags", params={"paused": "true"})).json()
    assert [d["dag_id"] for d in paused["dags"]] == ["beta"]
    pattern = (await api.get("/api/v2/dags", params={"dag_id_pattern": "%mm%"})).json()
    assert [d["dag_id"] for d in pattern["dags"]] == ["gamma"]
    bad_order = await api.get("/api/v2/dags", params={"order_by": "password"})
    assert bad_order.status_code == 400 and "password" in bad_order.json()["detail"]
    bad_limit = await api.get("/api/v2/dags", params={"limit": "many"})
    assert bad_limit.status_code == 422 and bad_limit.json()["detail"][0]["loc"] == [
        "query",
        "limit",
    ]


async def test_get_patch_details_delete(api: Api) -> None:
    await api.push(make_spec("one"))
    DAGResponse.from_dict((await api.get("/api/v2/dags/one")).json())
    patched = await api.patch(
        "/api/v2/dags/one", json={"is_paused": True}, params={"update_mask": "is_paused"}
    )
    assert patched.status_code == 200 and patched.json()["is_paused"] is True
    bad_mask = await api.patch(
        "/api/v2/dags/one", json={"is_paused": True}, params={"update_mask": "owner"}
    )
    assert bad_mask.status_code == 400
    missing = await api.patch("/api/v2/dags/one", json={})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "body",
        "is_paused",
    ]
    details = DAGDetailsResponse.from_dict((await api.get("/api/v2/dags/one/details")).json())
    assert details.latest_dag_version is not None and details.params["rows"]["value"] == 10
    assert (await api.delete("/api/v2/dags/one")).status_code == 200
    assert (await api.get("/api/v2/dags/one")).status_code == 404


async def test_tasks_versions_sources_tags(api: Api) -> None:
    await api.push(make_spec("t"))
    await api.push(make_spec("t", description="second"))
    tasks = TaskCollectionResponse.from_dict((await api.get("/api/v2/dags/t/tasks")).json())
    assert [t.task_id for t in tasks.tasks] == ["extract", "transform", "load"]
    task = TaskResponse.from_dict((await api.get("/api/v2/dags/t/tasks/extract")).json())
    assert task.downstream_task_ids == ["transform"]
    assert (await api.get("/api/v2/dags/t/tasks/nope")).status_code == 404
    versions = (
        await api.get("/api/v2/dags/t/dagVersions", params={"order_by": "-version_number"})
    ).json()
    DAGVersionCollectionResponse.from_dict(versions)
    assert [v["version_number"] for v in versions["dag_versions"]] == [2, 1]
    one = await api.get("/api/v2/dags/t/dagVersions/1")
    assert one.status_code == 200 and one.json()["version_number"] == 1
    assert (await api.get("/api/v2/dags/t/dagVersions/9")).status_code == 404
    source = DAGSourceResponse.from_dict((await api.get("/api/v2/dagSources/t")).json())
    assert source.content == "# dag.py\n"
    tags = (await api.get("/api/v2/dagTags")).json()
    assert tags == {"tags": ["test"], "total_entries": 1}


async def test_bulk_pause_and_source_as_text(api: Api) -> None:
    for name in ("p1", "p2", "q1"):
        await api.push(make_spec(name))
    paused = await api.patch(
        "/api/v2/dags", json={"is_paused": True}, params={"dag_id_pattern": "p%"}
    )
    assert paused.status_code == 200
    assert sorted(d["dag_id"] for d in paused.json()["dags"]) == ["p1", "p2"]
    assert (await api.get("/api/v2/dags/q1")).json()["is_paused"] is False
    text = await api.get("/api/v2/dagSources/p1", headers={"Accept": "text/plain"})
    assert text.headers["content-type"].startswith("text/plain") and text.text == "# dag.py\n"
    assert (await api.get("/api/v2/dagSources/nope")).status_code == 404


async def test_empty_features_answer_schema_valid_collections(api: Api) -> None:
    for path, field in [("/api/v2/plugins", "plugins"), ("/api/v2/dagWarnings", "dag_warnings"),
                        ("/api/v2/assets", "assets"), ("/api/v2/providers", "providers")]:  # fmt: skip
        response = await api.get(path, Role.VIEWER)
        assert response.json() == {field: [], "total_entries": 0}
    assert (await api.http.get("/api/v2/plugins")).status_code == 401


async def test_favorites_config_and_dependencies_answer_like_airflow(api: Api) -> None:
    await api.push(make_spec("fav"))
    assert (await api.post("/api/v2/dags/fav/favorite", Role.VIEWER)).status_code == 204
    assert (await api.post("/api/v2/dags/fav/unfavorite", Role.VIEWER)).status_code == 204
    assert (await api.post("/api/v2/dags/nope/favorite")).status_code == 404
    config = await api.get("/api/v2/config")
    assert config.status_code == 403 and "detail" in config.json()
    await api.trigger("fav", dag_run_id="r")
    deps = await api.get("/api/v2/dags/fav/dagRuns/r/taskInstances/extract/dependencies")
    assert deps.json() == {"dependencies": []}
    unknown = await api.get("/api/v2/dags/fav/dagRuns/r/taskInstances/t/dependencies")
    assert unknown.status_code == 404
