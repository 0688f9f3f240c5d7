"""The official apache-airflow-client 3.2.2 on the routes added last: connection test,
favorites, marks across runs, and only_new (the client's model has it; 3.2.1's spec has not)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import airflow_client.client as af
import httpx
import pytest
from airflow_client.client.models.connection_body import ConnectionBody
from airflow_client.client.models.dag_run_clear_body import DAGRunClearBody
from airflow_client.client.models.patch_task_instance_body import PatchTaskInstanceBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

from leoflow.spec import dumps
from tests.integration.server.conftest import PASSWORD, make_spec


@pytest.fixture(scope="module")
def af_client(server: tuple[str, Any]) -> Iterator[af.ApiClient]:
    """The official client with the bootstrap admin's token."""
    host, _ = server
    token = httpx.post(
        f"{host}/auth/token", json={"username": "admin", "password": PASSWORD}
    ).json()["access_token"]
    with af.ApiClient(af.Configuration(host=host, access_token=token)) as api_client:
        yield api_client


def _push(server: tuple[str, Any], client: af.ApiClient, dag_id: str) -> None:
    response = httpx.post(
        f"{server[0]}/api/v2/leoflow/dags/{dag_id}/versions",
        content=dumps(make_spec(dag_id)),
        headers={
            "Authorization": f"Bearer {client.configuration.access_token}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 201, response.text


def test_client_tests_connections(server: tuple[str, Any], af_client: af.ApiClient) -> None:
    host, port = server[0].removeprefix("http://").split(":")
    connections = af.ConnectionApi(af_client)
    http_ok = connections.test_connection(
        ConnectionBody(
            connection_id="self_http",
            conn_type="http",
            host=host,
            port=int(port),
            var_schema="api/v2/version",
        )
    )
    assert http_ok.status is True and "200" in http_ok.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = connections.test_connection(
        ConnectionBody(connection_id="pg", conn_type="postgres", host="127.0.0.1", port=closed)
    )
    assert refused.status is False and f"127.0.0.1:{closed}" in refused.message


def test_client_favorites(server: tuple[str, Any], af_client: af.ApiClient) -> None:
    dag_id = f"fav_{uuid.uuid4().hex[:8]}"
    _push(server, af_client, dag_id)
    dags = af.DAGApi(af_client)
    dags.favorite_dag(dag_id)
    assert dag_id in [d.dag_id for d in dags.get_dags(is_favorite=True, limit=1000).dags]
    assert dags.get_dag_details(dag_id).is_favorite is True
    dags.unfavorite_dag(dag_id)
    assert dag_id not in [d.dag_id for d in dags.get_dags(is_favorite=True, limit=1000).dags]
    with pytest.raises(af.ApiException) as err:
        dags.unfavorite_dag(dag_id)
    assert err.value.status == 409


def test_client_marks_past_runs_and_refuses_only_new(
    server: tuple[str, Any], af_client: af.ApiClient
) -> None:
    dag_id = f"past_{uuid.uuid4().hex[:8]}"
    _push(server, af_client, dag_id)
    runs = af.DagRunApi(af_client)
    for day in (1, 2, 3):
        runs.trigger_dag_run(
            dag_id,
            TriggerDAGRunPostBody(dag_run_id=f"r{day}", logical_date=f"2026-02-0{day}T00:00:00Z"),
        )
    tis = af.TaskInstanceApi(af_client)
    marked = tis.patch_task_instance(
        dag_id, "r2", "extract", PatchTaskInstanceBody(new_state="success", include_past=True)
    )
    assert sorted(t.dag_run_id for t in marked.task_instances) == ["r1", "r2"]
    assert tis.get_task_instance(dag_id, "r1", "extract").state == "success"
    assert tis.get_task_instance(dag_id, "r3", "extract").state is None
    with pytest.raises(af.ApiException) as err:
        runs.clear_dag_run(dag_id, "r2", DAGRunClearBody(dry_run=False, only_new=True))
    assert err.value.status == 400 and "only_new" in err.value.body
