"""Prometheus metrics: one registry per app, passed around, never the global default.

``Metrics`` holds the HTTP metrics the middleware records (per route *template*, so ids do not
explode the label space) and the hooks the scheduler and executors record into:
``task_transition``, ``observe_scheduler_loop`` and ``observe_dispatch``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class Metrics:
    """Every Leoflow metric, registered on ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http_requests = Counter(
            "leoflow_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "leoflow_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.task_transitions = Counter(
            "leoflow_task_instance_transitions_total",
            "Task instance state transitions.",
            ["from_state", "to_state"],
            registry=r,
        )
        self.scheduler_loop = Histogram(
            "leoflow_scheduler_loop_duration_seconds",
            "Duration of one scheduler tick.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "leoflow_dispatch_latency_seconds",
            "Time from a task instance being queued to its worker starting, by executor.",
            ["executor"],
            buckets=(*_LATENCY_BUCKETS, 30, 60, 120),
            registry=r,
        )

    # -- hooks for the scheduler and executors ----------------------------------------------

    def task_transition(self, from_state: str | None, to_state: str | None) -> None:
        """Count one task instance state change (None is Airflow's "no status")."""
        self.task_transitions.labels(from_state or "none", to_state or "none").inc()

    def observe_scheduler_loop(self, seconds: float) -> None:
        """Record the duration of one scheduler tick."""
        self.scheduler_loop.observe(seconds)

    def observe_dispatch(self, executor: str, seconds: float) -> None:
        """Record queued -> started latency for one task try."""
        self.dispatch_latency.labels(executor).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts requests and latencies by route template ("unmatched" when no route matched)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        # Routing rewrites root_path in place; match against the scope as it arrived.
        original = dict(scope)

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = _route_template(original)
            method = scope["method"]
            self.metrics.http_requests.labels(method, route, str(status["code"])).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    app = scope.get("app")
    router = getattr(app, "router", None)
    if router is None:
        return "unmatched"
    return _match(router.routes, scope, "") or "unmatched"


def _match(routes: list, scope: Scope, prefix: str) -> str | None:
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        path = getattr(route, "path", "")
        sub = getattr(route, "routes", None)
        if sub is not None and child:
            child_scope = {**scope, **child}
            found = _match(sub, child_scope, prefix + path)
            if found:
                return found
            continue
        return prefix + path
    return None
