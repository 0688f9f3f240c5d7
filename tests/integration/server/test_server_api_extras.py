"""Favorites, connection tests, marks across runs (include_past/future) and only_new."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from leoflow.store.api import Role, TIState
from tests.integration.server.conftest import Api, make_spec


async def test_favorites_are_per_user_and_filter_the_dag_list(api: Api) -> None:
    for dag_id in ("fa", "fb", "fc"):
        assert (await api.push(make_spec(dag_id))).status_code == 201
    assert (await api.post("/api/v2/dags/fa/favorite", Role.VIEWER)).status_code == 204
    assert (await api.post("/api/v2/dags/fa/favorite", Role.VIEWER)).status_code == 204  # again
    assert (await api.post("/api/v2/dags/fc/favorite", Role.VIEWER)).status_code == 204
    assert (await api.post("/api/v2/dags/fb/favorite", Role.ADMIN)).status_code == 204

    async def listed(role: Role, flag: str) -> list[str]:
        response = await api.get(f"/api/v2/dags?is_favorite={flag}", role)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total_entries"] == len(body["dags"])
        return [d["dag_id"] for d in body["dags"]]

    assert await listed(Role.VIEWER, "true") == ["fa", "fc"]
    assert await listed(Role.VIEWER, "false") == ["fb"]
    assert await listed(Role.ADMIN, "true") == ["fb"]
    assert await api.store.list_favorite_dag_ids(api.tenant, "viewer") == {"fa", "fc"}
    details = await api.get("/api/v2/dags/fa/details", Role.VIEWER)
    assert details.json()["is_favorite"] is True
    assert (await api.get("/api/v2/dags/fa/details", Role.ADMIN)).json()["is_favorite"] is False

    assert (await api.post("/api/v2/dags/fa/unfavorite", Role.VIEWER)).status_code == 204
    again = await api.post("/api/v2/dags/fa/unfavorite", Role.VIEWER)
    assert again.status_code == 409 and "not marked as favorite" in again.json()["detail"]
    assert (await api.post("/api/v2/dags/nope/favorite")).status_code == 404
    assert (await api.post("/api/v2/dags/nope/unfavorite")).status_code == 404
    bad = await api.get("/api/v2/dags?is_favorite=perhaps")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "is_favorite"]
    # Deleting the DAG drops its marks.
    assert (await api.delete("/api/v2/dags/fc")).status_code == 200
    assert await api.store.list_favorite_dag_ids(api.tenant, "viewer") == set()


@contextlib.asynccontextmanager
async def _http_server(status: int) -> AsyncIterator[int]:
    """A loopback HTTP server answering every request with ``status``; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there afterwards


async def test_connection_test_reaches_http_and_tcp_endpoints(api: Api) -> None:
    def body(**kw: object) -> dict[str, object]:
        return {"connection_id": "probe", **kw}

    async with _http_server(404) as port:
        ok = await api.post(
            "/api/v2/connections/test",
            Role.OP,
            json=body(conn_type="http", host="127.0.0.1", port=port, schema="health"),
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] is True and "404" in ok.json()["message"]
        # A URL in host works for any conn_type, as Airflow's HttpHook reads it.
        by_url = await api.post(
            "/api/v2/connections/test",
            json=body(conn_type="generic", host=f"http://127.0.0.1:{port}/x"),
        )
        assert by_url.json()["status"] is True
        tcp = await api.post(
            "/api/v2/connections/test",
            json=body(conn_type="postgres", host="127.0.0.1", port=port),
        )
        assert tcp.json() == {
            "status": True,
            "message": f"Connection successfully tested: 127.0.0.1:{port} accepts TCP connections",
        }
    async with _http_server(503) as port:
        down = await api.post(
            "/api/v2/connections/test",
            json=body(conn_type="https", host=f"http://127.0.0.1:{port}"),
        )
        assert down.json()["status"] is False and "503" in down.json()["message"]
    closed = _closed_port()
    refused = await api.post(
        "/api/v2/connections/test", json=body(conn_type="mysql", host="127.0.0.1", port=closed)
    )
    assert refused.status_code == 200
    assert refused.json()["status"] is False
    assert f"127.0.0.1:{closed}" in refused.json()["message"]
    no_host = await api.post("/api/v2/connections/test", json=body(conn_type="postgres"))
    assert no_host.json()["status"] is False and "host" in no_host.json()["message"]
    for odd in (
        body(conn_type="http", host="http://[not-a-url", port=80),
        body(conn_type="http", host="127.0.0.1", port=99999),
        body(conn_type="postgres", host="127.0.0.1", port=99999),
        body(conn_type="postgres", host="bad\u0000host", port=5432),
    ):
        answer = await api.post("/api/v2/connections/test", json=odd)
        assert answer.status_code == 200, (odd, answer.text)
        assert answer.json()["status"] is False, odd
    no_port = await api.post(
        "/api/v2/connections/test", json=body(conn_type="exotic", host="127.0.0.1")
    )
    assert no_port.json()["status"] is False and "port" in no_port.json()["message"]


async def test_connection_test_is_for_op_and_admin_and_validates(api: Api) -> None:
    payload = {"connection_id": "c", "conn_type": "postgres", "host": "127.0.0.1", "port": 1}
    for role in (Role.VIEWER, Role.USER):
        assert (await api.post("/api/v2/connections/test", role, json=payload)).status_code == 403
    missing = await api.post("/api/v2/connections/test", json={"connection_id": "c"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "conn_type"]
    bad_port = await api.post("/api/v2/connections/test", json={**payload, "port": "five"})
    assert bad_port.status_code == 422 and bad_port.json()["detail"][0]["loc"] == ["body", "port"]
    events = (await api.get("/api/v2/eventLogs?event=connection.test")).json()
    assert events["total_entries"] == 0  # refused requests leave no trace


async def _three_runs(api: Api) -> None:
    await api.push(make_spec("past"))
    for day in (1, 2, 3):
        await api.trigger("past", dag_run_id=f"r{day}", logical_date=f"2026-01-0{day}T00:00:00Z")
    await api.trigger("past", dag_run_id="manual", logical_date=None)


async def _states(api: Api, task_id: str) -> dict[str, str | None]:
    page = await api.store.list_tis(api.tenant, "past", task_ids=[task_id], limit=100)
    return {ti.run_id: (ti.state.value if ti.state else None) for ti in page.items}


async def test_mark_with_include_past_and_future(api: Api) -> None:
    await _three_runs(api)
    base = "/api/v2/dags/past/dagRuns/r2/taskInstances/extract"
    dry = await api.patch(base + "/dry_run", json={"new_state": "failed", "include_past": True})
    assert sorted(t["dag_run_id"] for t in dry.json()["task_instances"]) == ["r1", "r2"]
    assert (await _states(api, "extract"))["r1"] is None  # a dry run changes nothing

    past = await api.patch(base, json={"new_state": "failed", "include_past": True})
    assert past.status_code == 200, past.text
    assert [t["dag_run_id"] for t in past.json()["task_instances"]] == ["r2", "r1"]
    assert await _states(api, "extract") == {
        "r1": "failed",
        "r2": "failed",
        "r3": None,
        "manual": None,
    }

    future = await api.patch(
        base, json={"new_state": "success", "include_future": True, "include_downstream": True}
    )
    marked = {(t["dag_run_id"], t["task_id"]) for t in future.json()["task_instances"]}
    assert marked == {(r, t) for r in ("r2", "r3") for t in ("extract", "transform", "load")}
    assert await _states(api, "load") == {
        "r1": None,
        "r2": "success",
        "r3": "success",
        "manual": None,
    }
    assert (await _states(api, "extract"))["r1"] == "failed"

    # Already in the state elsewhere: only the requested TI is answered.
    both = await api.patch(
        base, json={"new_state": "success", "include_past": True, "include_future": True}
    )
    assert [t["dag_run_id"] for t in both.json()["task_instances"]] == ["r2", "r1"]
    assert await _states(api, "extract") == {
        "r1": "success", "r2": "success", "r3": "success", "manual": None,
    }  # fmt: skip


async def test_run_without_logical_date_marks_only_itself(api: Api) -> None:
    await _three_runs(api)
    url = "/api/v2/dags/past/dagRuns/manual/taskInstances/extract"
    response = await api.patch(
        url, json={"new_state": "skipped", "include_past": True, "include_future": True}
    )
    assert [t["dag_run_id"] for t in response.json()["task_instances"]] == ["manual"]
    assert await _states(api, "extract") == {
        "r1": None,
        "r2": None,
        "r3": None,
        "manual": "skipped",
    }
    ti = await api.store.get_ti(api.tenant, "past", "manual", "extract")
    assert ti.state == TIState.SKIPPED


async def test_note_with_include_past_touches_only_the_requested_ti(api: Api) -> None:
    await _three_runs(api)
    url = "/api/v2/dags/past/dagRuns/r3/taskInstances/extract"
    response = await api.patch(url, json={"note": "checked", "include_past": True})
    assert [t["dag_run_id"] for t in response.json()["task_instances"]] == ["r3"]
    assert response.json()["task_instances"][0]["note"] == "checked"
    assert (await api.store.get_ti(api.tenant, "past", "r1", "extract")).note is None


async def test_clear_only_new_is_refused_naming_the_field(api: Api) -> None:
    await api.push(make_spec("onlynew"))
    await api.trigger("onlynew", dag_run_id="r1")
    await api.patch(
        "/api/v2/dags/onlynew/dagRuns/r1/taskInstances/extract", json={"new_state": "success"}
    )
    url = "/api/v2/dags/onlynew/dagRuns/r1/clear"
    refused = await api.post(url, json={"dry_run": False, "only_new": True})
    assert refused.status_code == 400 and "only_new" in refused.json()["detail"]
    ti = await api.store.get_ti(api.tenant, "onlynew", "r1", "extract")
    assert ti.state == TIState.SUCCESS  # nothing was cleared
    allowed = await api.post(url, json={"dry_run": True, "only_new": False})
    assert allowed.status_code == 200
