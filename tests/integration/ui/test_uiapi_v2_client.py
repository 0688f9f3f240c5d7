"""The official apache-airflow-client 3.2.2 against a real uvicorn server for the task-instance
writes and backfill answers of leoflow/server/ui/v2_tis.py and v2_extra.py.

Its pydantic models reject a body that misses a required field, so a call that returns proves
the route answers Airflow's shape; refusals surface as ``ApiException`` with Airflow's status.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import airflow_client.client as af
import pytest
import uvicorn
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models.backfill_post_body import BackfillPostBody
from airflow_client.client.models.bulk_body_bulk_task_instance_body import (
    BulkBodyBulkTaskInstanceBody,
)
from uiapi_seed import chain_spec, run_dag

from leoflow.server.app import create_app
from leoflow.server.auth import Principal, TokenIssuer
from leoflow.store import Store
from leoflow.store.api import Role
from tests.integration.ui.conftest import JWT_SECRET, uiapi_settings


@pytest.fixture(scope="module")
def client(uiapi_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(admin client, viewer client, tenant) on uvicorn in a thread, DAGs a and b seeded."""
    settings = uiapi_settings(uiapi_database_url, tmp_path_factory.mktemp("client-home"))
    tenant = f"c{uuid.uuid4().hex[:10]}"

    async def seed() -> None:
        store = await Store.connect(uiapi_database_url, settings=settings)
        try:
            await store.create_tenant(tenant)
            for dag_id in ("a", "b"):
                await store.register_version(tenant, chain_spec(dag_id, 2))
            await run_dag(store, tenant, "a", "ok")
            await run_dag(store, tenant, "b", "bad", fail={"t000"})
        finally:
            await store.close()

    asyncio.run(seed())
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)  # another thread's startup flag; there is no event to await
    host = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    issuer = TokenIssuer(JWT_SECRET, settings.token_ttl_seconds)

    def api(role: Role) -> af.ApiClient:
        token = issuer.mint(Principal(username=role.value, tenant=tenant, role=role))
        return af.ApiClient(af.Configuration(host=host, access_token=token))

    with api(Role.USER) as user, api(Role.VIEWER) as viewer:
        yield user, viewer
    server.should_exit = True
    thread.join(timeout=30)


def test_client_bulk_marks_and_deletes(client: Any) -> None:
    user, viewer = client
    tis = af.TaskInstanceApi(user)
    body = BulkBodyBulkTaskInstanceBody.from_dict(
        {
            "actions": [
                {"action": "delete", "entities": [{"task_id": "t001", "map_index": -1}]},
                {
                    "action": "update",
                    "entities": [{"task_id": "t000", "new_state": "success", "note": "fixed"}],
                },
            ]
        }
    )
    result = tis.bulk_task_instances("b", "bad", body)
    assert result.update.success == ["b.bad.t000[-1]"] and result.update.errors == []
    assert result.delete.success == ["b.bad.t001[-1]"] and result.create is None
    ti = tis.get_task_instance("b", "bad", "t000")
    assert ti.state.value == "success" and ti.note == "fixed"
    with pytest.raises(ApiException) as gone:
        tis.get_task_instance("b", "bad", "t001")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as forbidden:
        af.TaskInstanceApi(viewer).bulk_task_instances("b", "bad", body)
    assert forbidden.value.status == 403


def test_client_delete_task_instance_and_external_log_url(client: Any) -> None:
    user, _ = client
    tis = af.TaskInstanceApi(user)
    assert tis.delete_task_instance("a", "ok", "t001", map_index=-1) is None
    assert [t.task_id for t in tis.get_task_instances("a", "ok").task_instances] == ["t000"]
    with pytest.raises(ApiException) as missing:
        tis.delete_task_instance("a", "ok", "t001")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as external:
        tis.get_external_log_url("a", "ok", "t000", 1)
    assert external.value.status == 400
    assert "does not support external logs" in external.value.body


def test_client_backfills(client: Any) -> None:
    user, _ = client
    backfills = af.BackfillApi(user)
    body = BackfillPostBody(
        dag_id="a",
        from_date=datetime(2026, 1, 1, tzinfo=UTC),
        to_date=datetime(2026, 1, 3, tzinfo=UTC),
    )
    dry = backfills.create_backfill_dry_run(body)
    assert dry.total_entries == 0 and dry.backfills == []
    with pytest.raises(ApiException) as refused:
        backfills.create_backfill(body)
    assert refused.value.status == 400 and "does not allow backfill runs" in refused.value.body
    assert backfills.list_backfills("a").total_entries == 0
