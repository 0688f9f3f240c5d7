"""`leoflow server` as the Pro control plane, end to end on one host.

Real Postgres (127.0.0.1:5432, a database of our own) and Redis (127.0.0.1:6379, a db index of
our own); the "agent" executor runs each try through the exact pod entrypoint (`leoflow agent`)
as a local process talking gRPC to this replica, since no Kubernetes cluster can run here.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from leoflow.compiler import compile_project
from leoflow.errors import LeoflowError
from leoflow.server.pro import ControlPlane
from leoflow.settings import Settings
from leoflow.spec import dumps
from leoflow.store.testing import create_test_database, drop_test_database

REDIS_DB_URL = "redis://127.0.0.1:6379/11"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    dsn = asyncio.run(create_test_database())
    yield dsn
    asyncio.run(drop_test_database(dsn))


@pytest.fixture
async def clean_redis() -> AsyncIterator[str]:
    client = aioredis.from_url(REDIS_DB_URL)
    await client.flushdb()
    yield REDIS_DB_URL
    await client.flushdb()
    await client.aclose()


def _settings(tmp_path: Path, dsn: str, redis_url: str, name: str) -> Settings:
    return Settings(
        home=tmp_path / name,
        database_url=dsn,
        redis_url=redis_url,
        jwt_secret="pro-test-secret-" + "x" * 32,
        secret_key="s" * 32,
        bootstrap_password="pro-admin-pw",
        host="127.0.0.1",
        port=0,
        grpc_port=0,
        metrics_port=0,
    )


async def _start(plane: ControlPlane) -> asyncio.Task[None]:
    task = asyncio.create_task(plane.run())
    deadline = asyncio.get_running_loop().time() + 60
    while plane.http_port is None:
        if task.done():
            task.result()
        assert asyncio.get_running_loop().time() < deadline, "control plane did not start"
        await asyncio.sleep(0.05)
    return task


async def test_pro_replica_runs_a_pushed_dag_through_agents(
    tmp_path: Path, pg_dsn: str, clean_redis: str
) -> None:
    project = tmp_path / "etl"
    shutil.copytree(EXAMPLES / "ml_hparam_search", project)
    spec = compile_project(project).spec
    plane = ControlPlane(
        _settings(tmp_path, pg_dsn, clean_redis, "a"), executor_name="agent", handle_signals=False
    )
    task = await _start(plane)
    try:
        base = f"http://127.0.0.1:{plane.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/api/v2/dags")).status_code == 401
            login = await client.post(
                "/auth/token", json={"username": "admin", "password": "pro-admin-pw"}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            pushed = await client.post(
                f"/api/v2/leoflow/dags/{spec.dag_id}/versions",
                content=dumps(spec),
                headers={**headers, "Content-Type": "application/json"},
            )
            assert pushed.status_code == 201, pushed.text
            run = await client.post(
                f"/api/v2/dags/{spec.dag_id}/dagRuns",
                json={"logical_date": None, "dag_run_id": "pro1"},
                headers=headers,
            )
            assert run.status_code == 200, run.text
            deadline = asyncio.get_running_loop().time() + 120
            while True:
                state = (
                    await client.get(f"/api/v2/dags/{spec.dag_id}/dagRuns/pro1", headers=headers)
                ).json()["state"]
                if state in ("success", "failed"):
                    break
                assert asyncio.get_running_loop().time() < deadline, f"run still {state}"
                await asyncio.sleep(0.1)
            assert state == "success"
            tis = (
                await client.get(
                    f"/api/v2/dags/{spec.dag_id}/dagRuns/pro1/taskInstances", headers=headers
                )
            ).json()["task_instances"]
            assert {ti["state"] for ti in tis} == {"success"}
            assert all(ti["executor"] == "agent" for ti in tis)
            metrics = await client.get(f"{base}/metrics")
            assert "leoflow_http_requests_total" in metrics.text
    finally:
        plane.stop()
        await asyncio.wait_for(task, 60)


async def test_two_replicas_elect_one_leader(tmp_path: Path, pg_dsn: str, clean_redis: str) -> None:
    planes = [
        ControlPlane(
            _settings(tmp_path, pg_dsn, clean_redis, name),
            executor_name="process",
            handle_signals=False,
        )
        for name in ("one", "two")
    ]
    tasks = [await _start(plane) for plane in planes]
    try:
        schedulers = [plane_scheduler(p, t) for p, t in zip(planes, tasks, strict=True)]
        deadline = asyncio.get_running_loop().time() + 30
        while sum(s.is_leader for s in schedulers) != 1:
            assert asyncio.get_running_loop().time() < deadline, "no single leader"
            await asyncio.sleep(0.05)
        assert sum(s.is_leader for s in schedulers) == 1
        # Only the leader runs an executor (a follower must not watch pods or start workers).
        assert [s.executor_started for s in schedulers] == [s.is_leader for s in schedulers]
    finally:
        for plane in planes:
            plane.stop()
        for task in tasks:
            await asyncio.wait_for(task, 60)


def plane_scheduler(plane: ControlPlane, task: asyncio.Task[None]):  # type: ignore[no-untyped-def]
    assert not task.done()
    return plane.scheduler


def test_missing_external_datastores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LeoflowError) as info:
        ControlPlane(Settings(home=tmp_path, jwt_secret="x"), executor_name="process")
    assert info.value.field == "LEOFLOW_DATABASE_URL" and "leoflow lite" in (info.value.hint or "")
    with pytest.raises(LeoflowError, match="unknown executor"):
        ControlPlane(
            Settings(database_url="postgresql://x", redis_url="redis://x", jwt_secret="x"),
            executor_name="celery",
        )


HTTP_DAG = """
from airflow.sdk import DAG, task
from airflow.providers.http.operators.http import HttpOperator


@task
def count(payload: dict) -> int:
    return len(payload["items"])


with DAG("http_inline", schedule=None):
    call = HttpOperator(task_id="call", http_conn_id="catalog", endpoint="v1/items",
                        method="GET")
    count(call.output)
"""


async def test_http_tasks_run_inline_with_their_connection(
    tmp_path: Path, pg_dsn: str, clean_redis: str
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Catalog(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps({"items": [1, 2, 3], "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http_server = ThreadingHTTPServer(("127.0.0.1", 0), Catalog)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    project = tmp_path / "http_inline"
    project.mkdir()
    (project / "dag.py").write_text(HTTP_DAG)
    spec = compile_project(project).spec
    plane = ControlPlane(
        _settings(tmp_path, pg_dsn, clean_redis, "h"),
        executor_name="process",
        handle_signals=False,
    )
    task = await _start(plane)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{plane.http_port}", timeout=30
        ) as client:
            login = await client.post(
                "/auth/token", json={"username": "admin", "password": "pro-admin-pw"}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            conn = await client.post(
                "/api/v2/connections",
                json={
                    "connection_id": "catalog",
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": http_server.server_address[1],
                },
                headers=headers,
            )
            assert conn.status_code == 201, conn.text
            pushed = await client.post(
                "/api/v2/leoflow/dags/http_inline/versions",
                content=dumps(spec),
                headers={**headers, "Content-Type": "application/json"},
            )
            assert pushed.status_code == 201, pushed.text
            await client.post(
                "/api/v2/dags/http_inline/dagRuns",
                json={"logical_date": None, "dag_run_id": "h1"},
                headers=headers,
            )
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                run = await client.get("/api/v2/dags/http_inline/dagRuns/h1", headers=headers)
                if run.json()["state"] in ("success", "failed"):
                    break
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert run.json()["state"] == "success"
            base = "/api/v2/dags/http_inline/dagRuns/h1/taskInstances"
            call = (await client.get(f"{base}/call", headers=headers)).json()
            assert call["executor"] == "inline"
            value = (
                await client.get(f"{base}/count/xcomEntries/return_value", headers=headers)
            ).json()["value"]
            assert value == 3
            body = (
                await client.get(f"{base}/call/xcomEntries/return_value", headers=headers)
            ).json()["value"]
            assert body["path"] == "/v1/items"
    finally:
        plane.stop()
        await asyncio.wait_for(task, 60)
        http_server.shutdown()
        http_server.server_close()
