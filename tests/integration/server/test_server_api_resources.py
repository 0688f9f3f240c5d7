"""Variables, connections, pools (CRUD and bulk), event logs, import errors, health, metrics."""

from __future__ import annotations

from airflow_client.client.models.bulk_response import BulkResponse
from airflow_client.client.models.connection_response import ConnectionResponse
from airflow_client.client.models.event_log_collection_response import EventLogCollectionResponse
from airflow_client.client.models.health_info_response import HealthInfoResponse
from airflow_client.client.models.import_error_collection_response import (
    ImportErrorCollectionResponse,
)
from airflow_client.client.models.pool_collection_response import PoolCollectionResponse
from airflow_client.client.models.variable_collection_response import VariableCollectionResponse

from tests.integration.server.conftest import Api, make_spec


async def test_variables_crud_and_bulk(api: Api) -> None:
    created = await api.post(
        "/api/v2/variables", json={"key": "k1", "value": {"a": 1}, "description": "d"}
    )
    assert created.status_code == 201 and created.json()["value"] == '{"a": 1}'
    assert (
        await api.post("/api/v2/variables", json={"key": "k1", "value": "x"})
    ).status_code == 409
    missing = await api.post("/api/v2/variables", json={"value": "x"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "key"]
    secret = await api.post("/api/v2/variables", json={"key": "db_password", "value": "hunter2"})
    assert secret.json()["value"] == "***"
    patched = await api.patch(
        "/api/v2/variables/k1", json={"key": "k1", "value": "new"}, params={"update_mask": "value"}
    )
    assert patched.json()["value"] == "new" and patched.json()["description"] == "d"
    listed = (await api.get("/api/v2/variables", params={"order_by": "key"})).json()
    VariableCollectionResponse.from_dict(listed)
    assert [v["key"] for v in listed["variables"]] == ["db_password", "k1"]
    bulk = await api.patch(
        "/api/v2/variables",
        json={"actions": [
            {"action": "create", "entities": [{"key": "k2", "value": "2"}, {"key": "k1", "value": "dup"}]},
            {"action": "delete", "entities": ["db_password", "ghost"], "action_on_non_existence": "skip"},
        ]},
    )  # fmt: skip
    assert bulk.status_code == 200, bulk.text
    result = BulkResponse.from_dict(bulk.json())
    assert result.create.success == ["k2"] and len(result.create.errors) == 1
    assert result.delete.success == ["db_password"]
    assert (await api.delete("/api/v2/variables/k2")).status_code == 204
    assert (await api.get("/api/v2/variables/k2")).status_code == 404


async def test_connections_never_return_passwords(api: Api) -> None:
    body = {
        "connection_id": "pg",
        "conn_type": "postgres",
        "host": "db",
        "port": 5432,
        "password": "s3cret",
        "schema": "public",
    }
    created = await api.post("/api/v2/connections", json=body)
    assert created.status_code == 201, created.text
    conn = ConnectionResponse.from_dict(created.json())
    assert conn.password == "***" and conn.var_schema == "public"
    got = (await api.get("/api/v2/connections/pg")).json()
    assert "s3cret" not in str(got)
    patched = await api.patch(
        "/api/v2/connections/pg",
        json={"connection_id": "pg", "conn_type": "postgres", "host": "db2"},
        params={"update_mask": "host"},
    )
    assert patched.json()["host"] == "db2" and patched.json()["port"] == 5432
    assert (await api.store.get_connection(api.tenant, "pg")).password == "s3cret"
    bad = await api.post("/api/v2/connections", json={"connection_id": "x y", "conn_type": "http"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "connection_id"]
    bulk = await api.patch(
        "/api/v2/connections", json={"actions": [{"action": "delete", "entities": ["pg"]}]}
    )
    assert bulk.json()["delete"]["success"] == ["pg"]
    assert (await api.get("/api/v2/connections")).json()["total_entries"] == 0


async def test_pools_crud_and_bulk(api: Api) -> None:
    created = await api.post(
        "/api/v2/pools", json={"name": "gpu", "slots": 2, "description": "cards"}
    )
    assert created.status_code == 201 and created.json()["open_slots"] == 2
    patched = await api.patch("/api/v2/pools/gpu", json={"slots": 4})
    assert patched.json()["slots"] == 4 and patched.json()["description"] == "cards"
    listed = (await api.get("/api/v2/pools", params={"order_by": "name"})).json()
    PoolCollectionResponse.from_dict(listed)
    assert [p["name"] for p in listed["pools"]] == ["default_pool", "gpu"]
    negative = await api.post("/api/v2/pools", json={"name": "p", "slots": -5})
    assert negative.status_code == 422 and negative.json()["detail"][0]["loc"] == ["body", "slots"]
    assert (await api.delete("/api/v2/pools/default_pool")).status_code == 400
    bulk = await api.patch(
        "/api/v2/pools",
        json={"actions": [{"action": "update", "entities": [{"name": "gpu", "slots": 1}]}]},
    )
    assert bulk.json()["update"]["success"] == ["gpu"]
    assert (await api.delete("/api/v2/pools/gpu")).status_code == 204


async def test_event_logs_record_writes_and_import_errors_list(api: Api) -> None:
    await api.push(make_spec("audited"))
    await api.patch("/api/v2/dags/audited", json={"is_paused": True})
    logs = (
        await api.get("/api/v2/eventLogs", params={"dag_id": "audited", "order_by": "-when"})
    ).json()
    EventLogCollectionResponse.from_dict(logs)
    assert [e["event"] for e in logs["event_logs"]][:2] == ["paused", "dag_version_registered"]
    assert logs["event_logs"][0]["owner"] == "admin"
    one = await api.get(f"/api/v2/eventLogs/{logs['event_logs'][0]['event_log_id']}")
    assert one.status_code == 200 and one.json()["event"] == "paused"
    await api.store.upsert_import_error(api.tenant, "broken/dag.py", "SyntaxError: boom")
    errors = (await api.get("/api/v2/importErrors")).json()
    ImportErrorCollectionResponse.from_dict(errors)
    assert errors["import_errors"][0]["filename"] == "broken/dag.py"
    error_id = errors["import_errors"][0]["import_error_id"]
    assert (await api.get(f"/api/v2/importErrors/{error_id}")).json()[
        "stack_trace"
    ] == "SyntaxError: boom"


async def test_health_is_public_and_pings_the_database(api: Api) -> None:
    response = await api.http.get("/api/v2/monitor/health")
    assert response.status_code == 200
    assert HealthInfoResponse.from_dict(response.json()).metadatabase.status == "healthy"


async def test_metrics_record_requests(api: Api) -> None:
    await api.get("/api/v2/dags")
    text = (await api.http.get("/metrics")).text
    assert 'leoflow_http_requests_total{method="GET",route="/api/v2/dags",status="200"}' in text
