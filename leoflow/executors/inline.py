"""Inline HTTP tasks: Airflow's HttpOperator run inside the control plane, no worker at all.

An HTTP call needs no user code and no interpreter of its own, so starting a process or a pod for
it would only add latency. The call runs as an asyncio task in the control plane, bounded by a
concurrency cap (extra tasks wait for a slot) and a time cap (no call outlives it, whatever the
task asks). The URL comes from the task's ``http_conn_id`` (Airflow's HTTP connection: schema,
host, port, login/password as basic auth, extra as headers) joined with ``endpoint``, or from
``endpoint`` alone when it is an absolute URL. A status in ``success_status_codes`` succeeds;
the response body becomes the return value (JSON when it parses, text otherwise), as Airflow's
HttpOperator pushes ``response.text``.

``RoutingExecutor`` sends http tasks here and everything else to the worker executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import httpx

from leoflow.executors.base import EventCallback, Executor, TaskEvent, TaskJob, TaskKey
from leoflow.logs import log_path
from leoflow.spec import TaskType


class HttpConnection(Protocol):
    """What an Airflow HTTP connection provides (``leoflow.store.api.Connection`` fits)."""

    conn_type: str
    host: str | None
    schema: str | None
    login: str | None
    password: str | None
    port: int | None
    extra: str | None


ConnectionLookup = Callable[[str, str], Awaitable[HttpConnection | None]]
"""(tenant, conn_id) -> the connection, or None when it does not exist."""


def _now() -> datetime:
    return datetime.now(UTC)


def base_url(conn: HttpConnection) -> str:
    """Airflow's HttpHook base URL: ``schema://host[:port]`` (schema defaults to http)."""
    host = conn.host or ""
    if "://" in host:
        url = host
    else:
        scheme = conn.schema or ("https" if conn.conn_type == "https" else "http")
        url = f"{scheme}://{host}"
    if conn.port:
        url = f"{url.rstrip('/')}:{conn.port}"
    return url


def connection_headers(conn: HttpConnection) -> dict[str, str]:
    """Headers from the connection's extra (a JSON object), as Airflow's HttpHook uses them."""
    if not conn.extra:
        return {}
    try:
        extra = json.loads(conn.extra)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {}


class InlineHttpExecutor(Executor):
    """Runs http tasks as asyncio tasks of the control plane, capped in number and time."""

    name = "inline"

    def __init__(
        self,
        *,
        logs_dir: Path,
        get_connection: ConnectionLookup | None = None,
        concurrency: int = 64,
        max_seconds: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._logs_dir = logs_dir
        self._get_connection = get_connection
        self._slots = asyncio.Semaphore(concurrency)
        self._max_seconds = max_seconds
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._on_event: EventCallback | None = None
        self._running: dict[TaskKey, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[TaskKey, str] = {}

    async def start(self, on_event: EventCallback) -> None:
        """Open the shared HTTP client."""
        self._on_event = on_event
        self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=True)

    def running(self) -> set[TaskKey]:
        """Calls in flight (or waiting for a slot)."""
        return set(self._running)

    async def submit(self, job: TaskJob) -> None:
        """Start the call in the background (no-op when that try already runs)."""
        if self._on_event is None or self._client is None:
            raise RuntimeError("InlineHttpExecutor.start() must be called before submit()")
        if job.key in self._running:
            return
        self._running[job.key] = asyncio.create_task(self._run(job))

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Abort the call; a failed event with ``reason`` follows."""
        task = self._running.get(key)
        if task is None:
            return
        self._cancel_reasons[key] = reason
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if key in self._cancel_reasons:
            # Cancelled before it ever ran: nobody reported it yet.
            del self._cancel_reasons[key]
            self._running.pop(key, None)
            assert self._on_event is not None
            await self._on_event(TaskEvent(key, "failed", _now(), error=reason))

    async def stop(self) -> None:
        """Abort every call and close the client."""
        for key, task in list(self._running.items()):
            self._cancel_reasons.setdefault(key, "control plane stopping")
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, job: TaskJob) -> None:
        assert self._on_event is not None
        try:
            async with self._slots:
                await self._on_event(
                    TaskEvent(job.key, "running", _now(), hostname="inline", executor=self.name)
                )
                event = await self._call(job)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.pop(job.key, "cancelled")
            event = TaskEvent(job.key, "failed", _now(), error=reason)
        finally:
            self._running.pop(job.key, None)
        self._log(job, "error" if event.state == "failed" else "info", _summary(event))
        await self._on_event(event)

    async def _call(self, job: TaskJob) -> TaskEvent:
        http = job.task.http
        if http is None:
            return TaskEvent(job.key, "failed", _now(), error="not an http task", retryable=False)
        try:
            url, headers, auth = await self._target(job)
        except LookupError as exc:
            return TaskEvent(job.key, "failed", _now(), error=str(exc), retryable=False)
        headers = {**headers, **http.headers}
        limit = min(
            http.timeout_seconds, job.timeout_seconds or self._max_seconds, self._max_seconds
        )
        request: dict[str, Any] = {"headers": headers, "auth": auth}
        if http.data is not None:
            if http.method in ("GET", "HEAD"):
                request["params"] = http.data
            elif isinstance(http.data, (dict, list)):
                request["json"] = http.data
            else:
                request["content"] = str(http.data)
        began = time.monotonic()
        assert self._client is not None
        try:
            response = await asyncio.wait_for(
                self._client.request(http.method, url, **request), timeout=limit
            )
        except TimeoutError:
            return TaskEvent(
                job.key, "failed", _now(), error=f"{http.method} {url} took longer than {limit:g} s"
            )
        except httpx.HTTPError as exc:
            return TaskEvent(job.key, "failed", _now(), error=f"{http.method} {url}: {exc!r}")
        took = time.monotonic() - began
        self._log(job, "info", f"{http.method} {url} -> {response.status_code} in {took:.3f} s")
        if response.status_code not in http.success_status_codes:
            snippet = response.text[:500]
            return TaskEvent(
                job.key,
                "failed",
                _now(),
                error=f"{http.method} {url} answered {response.status_code}: {snippet}",
            )
        body = _body(response)
        return TaskEvent(
            job.key, "success", _now(), return_value=body, has_return_value=body is not None
        )

    async def _target(self, job: TaskJob) -> tuple[str, dict[str, str], httpx.BasicAuth | None]:
        http = job.task.http
        assert http is not None
        if "://" in http.endpoint or not http.http_conn_id:
            return http.endpoint, {}, None
        conn = None
        if self._get_connection is not None:
            conn = await self._get_connection(job.tenant, http.http_conn_id)
        if conn is None:
            raise LookupError(
                f"connection {http.http_conn_id!r} does not exist: create it (Admin > "
                "Connections, or POST /api/v2/connections) or use an absolute URL as endpoint"
            )
        url = urljoin(base_url(conn).rstrip("/") + "/", http.endpoint.lstrip("/"))
        auth = httpx.BasicAuth(conn.login, conn.password or "") if conn.login else None
        return url, connection_headers(conn), auth

    def _log(self, job: TaskJob, level: str, message: str) -> None:
        key = job.key
        path = log_path(
            self._logs_dir,
            dag_id=key.dag_id,
            run_id=key.run_id,
            task_id=key.task_id,
            map_index=key.map_index,
            try_number=key.try_number,
            tenant=job.tenant,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "timestamp": _now().isoformat().replace("+00:00", "Z"),
            "level": level,
            "event": message,
            "logger": "task.http",
        }
        with path.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(line) + "\n")


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _summary(event: TaskEvent) -> str:
    return f"task {event.state}" + (f": {event.error}" if event.error else "")


class RoutingExecutor(Executor):
    """One executor per task type: http tasks inline, everything else to the worker executor."""

    def __init__(self, default: Executor, by_type: dict[TaskType, Executor]) -> None:
        self.default = default
        self.by_type = by_type
        self.name = default.name

    def _all(self) -> list[Executor]:
        return [self.default, *self.by_type.values()]

    def _for(self, job: TaskJob) -> Executor:
        return self.by_type.get(job.task.type, self.default)

    async def start(self, on_event: EventCallback) -> None:
        """Start every backend with the same event callback."""
        for executor in self._all():
            await executor.start(on_event)

    async def submit(self, job: TaskJob) -> None:
        """Hand the job to the backend for its task type."""
        await self._for(job).submit(job)

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Cancel wherever the try runs."""
        for executor in self._all():
            if key in executor.running():
                await executor.cancel(key, reason)

    def running(self) -> set[TaskKey]:
        """Tries running on any backend."""
        out: set[TaskKey] = set()
        for executor in self._all():
            out |= executor.running()
        return out

    async def prewarm(self, dag_file: Path, python: str) -> None:
        """Forward warm-up hints to the worker executor."""
        await self.default.prewarm(dag_file, python)

    async def stop(self) -> None:
        """Stop every backend."""
        for executor in self._all():
            with contextlib.suppress(Exception):
                await executor.stop()
