"""Inline HTTP tasks against a real HTTP server on loopback (no mocks of httpx)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from leoflow.executors.base import Executor, TaskEvent, TaskJob, TaskKey
from leoflow.executors.inline import InlineHttpExecutor, RoutingExecutor, base_url
from leoflow.spec import TaskSpec


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client gave up (the time-cap test): nothing to answer

    def do_GET(self) -> None:
        if self.path.startswith("/text"):
            self._reply(200, b"plain words", "text/plain")
        elif self.path.startswith("/fail"):
            self._reply(503, b"down for maintenance", "text/plain")
        elif self.path.startswith("/slow"):
            with self.server.lock:
                self.server.active += 1
                self.server.peak = max(self.server.peak, self.server.active)
            self.server.release.wait(10)
            with self.server.lock:
                self.server.active -= 1
            self._reply(200, b'"slow done"')
        else:
            echo = {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "x": self.headers.get("X-Team"),
            }
            self._reply(200, json.dumps(echo).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(201, json.dumps({"got": json.loads(body)}).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@dataclass
class _Conn:
    conn_type: str = "http"
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None


class Collector:
    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self.done: dict[TaskKey, asyncio.Event] = {}

    async def __call__(self, event: TaskEvent) -> None:
        self.events.append(event)
        if event.state != "running":
            self.done.setdefault(event.key, asyncio.Event()).set()

    async def wait(self, key: TaskKey) -> TaskEvent:
        await asyncio.wait_for(self.done.setdefault(key, asyncio.Event()).wait(), 30)
        return [e for e in self.events if e.key == key and e.state != "running"][-1]


def _job(task_id: str, http: dict[str, Any], **kw: Any) -> TaskJob:
    spec = TaskSpec.model_validate(
        {"task_id": task_id, "type": "http", "operator": "HttpOperator", "http": http}
    )
    return TaskJob(
        key=TaskKey("d", "r", task_id), task=spec, dag_file=Path("dag.py"), python="python", **kw
    )


async def _executor(tmp_path: Path, conns: dict[str, _Conn], **kw: Any):  # type: ignore[no-untyped-def]
    async def lookup(tenant: str, conn_id: str) -> _Conn | None:
        return conns.get(conn_id)

    collector = Collector()
    ex = InlineHttpExecutor(logs_dir=tmp_path / "logs", get_connection=lookup, **kw)
    await ex.start(collector)
    return ex, collector


async def test_get_through_a_connection_with_auth_and_headers(server, tmp_path) -> None:
    port = server.server_address[1]
    conns = {
        "api": _Conn(
            host="127.0.0.1", port=port, login="u", password="p", extra='{"X-Team": "data"}'
        )
    }
    ex, col = await _executor(tmp_path, conns)
    try:
        job = _job("get", {"http_conn_id": "api", "endpoint": "v1/items"})
        await ex.submit(job)
        event = await col.wait(job.key)
    finally:
        await ex.stop()
    assert event.state == "success"
    assert event.return_value == {
        "path": "/v1/items",
        "auth": "Basic " + base64.b64encode(b"u:p").decode(),
        "x": "data",
    }
    log = (tmp_path / "logs").rglob("attempt=1.log")
    lines = [json.loads(line)["event"] for path in log for line in path.read_text().splitlines()]
    assert any(line.startswith("GET http://127.0.0.1") and "-> 200" in line for line in lines)


async def test_post_json_text_body_and_failure_status(server, tmp_path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ex, col = await _executor(tmp_path, {})
    try:
        post = _job("post", {"method": "POST", "endpoint": f"{url}/create", "data": {"a": 1}})
        text = _job("text", {"endpoint": f"{url}/text"})
        bad = _job("bad", {"endpoint": f"{url}/fail"})
        for job in (post, text, bad):
            await ex.submit(job)
        results = [await col.wait(j.key) for j in (post, text, bad)]
    finally:
        await ex.stop()
    assert results[0].state == "success" and results[0].return_value == {"got": {"a": 1}}
    assert results[1].return_value == "plain words"
    assert results[2].state == "failed" and "answered 503: down for maintenance" in (
        results[2].error or ""
    )


async def test_unknown_connection_fails_clearly(tmp_path) -> None:
    ex, col = await _executor(tmp_path, {})
    try:
        job = _job("x", {"http_conn_id": "nope", "endpoint": "/a"})
        await ex.submit(job)
        event = await col.wait(job.key)
    finally:
        await ex.stop()
    assert event.state == "failed" and "'nope' does not exist" in (event.error or "")
    assert not event.retryable


async def test_time_cap_bounds_every_call(server, tmp_path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/slow"
    ex, col = await _executor(tmp_path, {}, max_seconds=0.5)
    try:
        job = _job("s", {"endpoint": url, "timeout_seconds": 60})
        await ex.submit(job)
        event = await col.wait(job.key)
    finally:
        server.release.set()
        await ex.stop()
    assert event.state == "failed" and "longer than 0.5 s" in (event.error or "")


async def test_concurrency_cap_holds_extra_calls_back(server, tmp_path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/slow"
    ex, col = await _executor(tmp_path, {}, concurrency=2)
    try:
        jobs = [_job(f"s{i}", {"endpoint": url}) for i in range(4)]
        for job in jobs:
            await ex.submit(job)
        deadline = asyncio.get_running_loop().time() + 10
        while server.active < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        # Two calls hold the two slots; the other two have not even started.
        assert sum(e.state == "running" for e in col.events) == 2
        server.release.set()
        events = [await col.wait(j.key) for j in jobs]
    finally:
        server.release.set()
        await ex.stop()
    assert [e.state for e in events] == ["success"] * 4
    assert server.peak == 2


async def test_cancel_reports_the_reason(server, tmp_path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/slow"
    ex, col = await _executor(tmp_path, {})
    try:
        job = _job("c", {"endpoint": url})
        await ex.submit(job)
        await ex.cancel(job.key, "marked failed")
        event = await col.wait(job.key)
    finally:
        server.release.set()
        await ex.stop()
    assert event.state == "failed" and event.error == "marked failed"


class _Recorder(Executor):
    name = "recorder"

    def __init__(self) -> None:
        self.jobs: list[TaskJob] = []

    async def start(self, on_event) -> None:  # type: ignore[no-untyped-def]
        self.on_event = on_event

    async def submit(self, job: TaskJob) -> None:
        self.jobs.append(job)

    async def cancel(self, key: TaskKey, reason: str) -> None:
        return

    def running(self) -> set[TaskKey]:
        return {j.key for j in self.jobs}

    async def stop(self) -> None:
        return


async def test_routing_sends_http_inline_and_the_rest_to_workers(server, tmp_path) -> None:
    from leoflow.spec import TaskType

    url = f"http://127.0.0.1:{server.server_address[1]}/text"
    workers = _Recorder()
    inline = InlineHttpExecutor(logs_dir=tmp_path)
    router = RoutingExecutor(workers, {TaskType.HTTP: inline})
    col = Collector()
    await router.start(col)
    try:
        bash = TaskJob(
            key=TaskKey("d", "r", "b"),
            task=TaskSpec.model_validate(
                {"task_id": "b", "type": "bash", "operator": "BashOperator", "bash_command": "true"}
            ),
            dag_file=Path("dag.py"),
            python="python",
        )
        http = _job("h", {"endpoint": url})
        await router.submit(bash)
        await router.submit(http)
        event = await col.wait(http.key)
    finally:
        await router.stop()
    assert [j.key.task_id for j in workers.jobs] == ["b"]
    assert event.state == "success" and router.name == "recorder"


def test_base_url_follows_airflow_http_hook() -> None:
    assert base_url(_Conn(host="api.example.com")) == "http://api.example.com"
    assert base_url(_Conn(host="api.example.com", schema="https", port=8443)) == (
        "https://api.example.com:8443"
    )
    assert base_url(_Conn(host="https://x.io/base")) == "https://x.io/base"
