"""Pods in one namespace through the official (synchronous) Kubernetes client, used from asyncio.

``PodApi`` runs each call in a small thread pool and retries what a Kubernetes API server
answers when it is busy or restarting (429, 5xx, refused or reset connections) with capped
exponential backoff and jitter. ``PodWatcher`` is one background thread doing list + watch
with ``resourceVersion`` (re-listing on ``410 Gone``) and handing every event to the event loop.

Bodies stay raw JSON dicts (``_preload_content=False``): the client's model classes cost more
than the calls themselves at hundreds of pods per second, and the executor only reads a few
fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines

from leoflow.executors._k8s_pods import POD_SELECTOR, Pod

log = logging.getLogger("leoflow.executors.kubernetes")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
#: (connect, read) seconds for one call: a hung API server must not hold a pool thread forever.
CALL_TIMEOUT = (10.0, 60.0)
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class ApiCallFailed(Exception):
    """A pods call that failed for good (not retryable, or out of attempts)."""

    def __init__(self, what: str, status: int | None, detail: str, attempts: int) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.status = status
        self.detail = detail
        self.attempts = attempts


def _status_detail(exc: k8s.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {exc.status} {exc.reason or ''}".strip() + (f": {message}" if message else "")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, k8s.ApiException):
        return exc.status in RETRYABLE_STATUS or exc.status == 0
    return isinstance(exc, _NETWORK_ERRORS)


def _loads(resp: Any) -> Any:
    return json.loads(resp.data) if resp.data else {}


class PodApi:
    """Create, read, delete and list pods of one namespace, retried with backoff."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        *,
        concurrency: int = 8,
        attempts: int = 6,
        backoff_seconds: float = 0.25,
        backoff_max_seconds: float = 8.0,
        on_retry: Callable[[str, str], None] | None = None,
    ) -> None:
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="leoflow-k8s")
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._on_retry = on_retry
        self._random = random.Random()

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based): doubling, capped, half jitter."""
        ceiling = min(self._backoff_max, self._backoff * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the pool; retry retryable failures; raise ``ApiCallFailed`` at the end."""
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._attempts + 1):
            try:
                return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
            except k8s.ApiException as exc:
                if not _retryable(exc) or attempt == self._attempts:
                    raise ApiCallFailed(what, exc.status, _status_detail(exc), attempt) from exc
                detail = _status_detail(exc)
            except _NETWORK_ERRORS as exc:
                if attempt == self._attempts:
                    raise ApiCallFailed(
                        what, None, f"{type(exc).__name__}: {exc}", attempt
                    ) from exc
                detail = f"{type(exc).__name__}: {exc}"
            if self._on_retry is not None:
                self._on_retry(what, detail)
            log.warning("%s failed (%s); retry %d of %d", what, detail, attempt, self._attempts - 1)
            await asyncio.sleep(self.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def create(self, pod: Pod) -> Pod:
        """Create ``pod``; a 409 surfaces as ``ApiCallFailed`` with status 409."""
        name = pod["metadata"]["name"]
        resp = await self.call(
            f"create pod {name}",
            self.core.create_namespaced_pod,
            self.namespace,
            pod,
            _preload_content=False,
            _request_timeout=CALL_TIMEOUT,
        )
        return _loads(resp)

    async def read(self, name: str) -> Pod | None:
        """The pod named ``name``, or None when it does not exist."""
        try:
            resp = await self.call(
                f"read pod {name}",
                self.core.read_namespaced_pod,
                name,
                self.namespace,
                _preload_content=False,
                _request_timeout=CALL_TIMEOUT,
            )
        except ApiCallFailed as exc:
            if exc.status == 404:
                return None
            raise
        return _loads(resp)

    async def delete(self, name: str, grace_seconds: int) -> bool:
        """Delete a pod; False when it was already gone."""
        try:
            await self.call(
                f"delete pod {name}",
                self.core.delete_namespaced_pod,
                name,
                self.namespace,
                grace_period_seconds=grace_seconds,
                _preload_content=False,
                _request_timeout=CALL_TIMEOUT,
            )
        except ApiCallFailed as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_sync(self) -> tuple[list[Pod], str | None]:
        """Every pod of ours in the namespace, and the list's resourceVersion (blocking)."""
        resp = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=POD_SELECTOR,
            _preload_content=False,
            _request_timeout=CALL_TIMEOUT,
        )
        body = _loads(resp)
        return list(body.get("items") or []), (body.get("metadata") or {}).get("resourceVersion")

    async def list(self) -> tuple[list[Pod], str | None]:
        """``list_sync`` in the pool, retried."""
        return await self.call(f"list pods in {self.namespace}", self.list_sync)

    def close(self) -> None:
        """Release the thread pool (in-flight calls finish on their own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


Deliver = Callable[[str, Any], None]


class PodWatcher:
    """List + watch in a thread; ``deliver(type, obj)`` gets ADDED/MODIFIED/DELETED pods and
    ``("SYNC", [pods])`` after every re-list, from the watcher thread."""

    def __init__(
        self,
        pods: PodApi,
        deliver: Deliver,
        *,
        resource_version: str | None,
        watch_timeout_seconds: int = 300,
        on_relist: Callable[[], None] | None = None,
    ) -> None:
        self._pods = pods
        self._deliver = deliver
        self._rv = resource_version
        self._timeout = watch_timeout_seconds
        self._on_relist = on_relist
        self._stopping = threading.Event()
        self._resp: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="leoflow-k8s-watch", daemon=True)

    def start(self) -> None:
        """Start the watcher thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching: close the open stream so the blocked read returns, then join."""
        self._stopping.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            # A stream that is already closed is fine.
            with contextlib.suppress(Exception):
                resp.shutdown()
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                if self._rv is None:
                    self._relist()
                self._watch_once()
                failures = 0
            except k8s.ApiException as exc:
                if exc.status == 410:
                    self._rv = None
                    continue
                failures += 1
                log.warning("pod watch failed: %s", _status_detail(exc))
            except Exception as exc:  # the watch must outlive any one failure
                if self._stopping.is_set():
                    return
                failures += 1
                log.warning("pod watch interrupted: %s: %s", type(exc).__name__, exc)
            if failures:
                self._stopping.wait(self._pods.delay(min(failures, 6)))

    def _relist(self) -> None:
        items, rv = self._pods.list_sync()
        self._rv = rv
        if self._on_relist is not None:
            self._on_relist()
        self._deliver("SYNC", items)

    def _watch_once(self) -> None:
        resp = self._pods.core.list_namespaced_pod(
            self._pods.namespace,
            label_selector=POD_SELECTOR,
            watch=True,
            resource_version=self._rv,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout,
            _preload_content=False,
            # The server ends the watch after timeout_seconds; the read timeout only catches a
            # connection that died silently.
            _request_timeout=(CALL_TIMEOUT[0], self._timeout + 30),
        )
        with self._lock:
            self._resp = resp
        if self._stopping.is_set():
            resp.shutdown()
        try:
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        self._rv = None  # our resourceVersion is too old: list again
                        return
                    raise k8s.ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self._rv = rv
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._deliver(kind, obj)
        finally:
            with self._lock:
                self._resp = None
            resp.release_conn()
