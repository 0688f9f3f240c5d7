"""The control plane's HTTP app: ``create_app(settings) -> Starlette``.

Composition by constructor, as Starlette does it: each ``leoflow/server/api/*.py`` exports a
``routes`` list mounted under ``/api/v2``; login, metrics and docs sit at the root; the UI
bundle's routes (another package) come last so that its SPA fallback never shadows the API.
Resources (the Postgres store, the Redis store) are opened in the lifespan from ``Settings``
unless the caller passes them in, migrations are applied there and the bootstrap admin is
ensured. Handlers read them from ``request.state``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leoflow.errors import Conflict, Unavailable
from leoflow.server.api import (
    audit,
    connections,
    dag_runs,
    dags,
    login,
    meta,
    pools,
    task_instances,
    task_logs,
    users,
    variables,
    xcom,
)
from leoflow.server.auth import Auth, LoginLimiter, TokenIssuer
from leoflow.server.errors import error_response, exception_handlers
from leoflow.server.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from leoflow.server.openapi import docs_endpoint, openapi_endpoint
from leoflow.settings import Settings

log = logging.getLogger("leoflow.server")

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (a dag.json with its embedded source fits comfortably)."""

API_PREFIX = "/api/v2"


def api_routes() -> list[BaseRoute]:
    """Every route mounted under /api/v2 (order matters: specific paths first)."""
    from leoflow.server.ui.v2_extra import routes as ui_v2_routes  # calls only the UI makes

    return [
        *meta.routes,
        *login.routes,
        *dags.routes,
        *dag_runs.routes,
        *task_logs.routes,
        *xcom.routes,
        *task_instances.routes,
        *variables.routes,
        *connections.routes,
        *pools.routes,
        *audit.routes,
        *users.routes,
        *ui_v2_routes,  # last: a core route for the same path wins
    ]


def _ui_routes(settings: Settings) -> list[BaseRoute]:
    try:
        from leoflow.server.ui.static import ui_routes
    except ImportError:
        return []
    return list(ui_routes(settings))


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than {self.max_bytes} bytes"
        await error_response(413, detail)(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _open_store(settings: Settings) -> Any:
    if not settings.database_url:
        raise Unavailable(
            "no database configured",
            field="LEOFLOW_DATABASE_URL",
            hint="set LEOFLOW_DATABASE_URL=postgresql://user:pass@host:5432/leoflow",
        )
    from leoflow.store import Store

    return await Store.connect(settings.database_url, settings=settings, migrate=True)


async def _open_redis(settings: Settings) -> Any:
    if not settings.redis_url:
        return None
    from leoflow.store import RedisStore

    return await RedisStore.connect(settings.redis_url, settings=settings)


async def _bootstrap(store: Any, settings: Settings) -> None:
    try:
        user, password = await store.bootstrap_admin(settings)
    except Conflict:  # another worker created it a moment ago
        user, password = await store.bootstrap_admin(settings)
    if password:
        log.warning("bootstrap admin %r created with password %s", user.username, password)


def _lifespan(settings: Settings, store: Any, redis: Any) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        own_store = store is None
        own_redis = redis is None and settings.redis_url is not None
        the_store = store if store is not None else await _open_store(settings)
        the_redis = redis if redis is not None else await _open_redis(settings)
        try:
            await _bootstrap(the_store, settings)
            yield {"store": the_store, "redis": the_redis, "settings": settings}
        finally:
            if own_redis and the_redis is not None:
                await the_redis.close()
            if own_store:
                await the_store.close()

    return lifespan


def create_app(
    settings: Settings,
    *,
    store: Any = None,
    redis: Any = None,
    metrics: Metrics | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The control plane's ASGI app.

    ``settings`` configures everything (``LEOFLOW_*``); the JWT secret is required. ``store``
    and ``redis`` (a ``leoflow.store`` Store and RedisStore) are opened from
    ``settings.database_url``/``redis_url`` in the lifespan when not given; given ones are
    used as they are and left open. ``metrics`` carries the Prometheus registry (a fresh one by
    default) that ``/metrics`` serves and the scheduler and executors record into.
    """
    auth = Auth(
        issuer=TokenIssuer(settings.jwt_secret or "", settings.token_ttl_seconds),
        limiter=LoginLimiter(settings.login_rate_limit_per_minute),
    )
    metrics = metrics or Metrics()
    routes: list[BaseRoute] = [
        *login.root_routes,
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/docs", docs_endpoint, methods=["GET"]),
        Mount(API_PREFIX, routes=api_routes()),
        *_ui_routes(settings),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes),
        ],
        exception_handlers=exception_handlers(),
        lifespan=_lifespan(settings, store, redis),
    )
    app.state.auth = auth
    app.state.metrics = metrics
    app.state.settings = settings
    return app


def app_from_env() -> Starlette:
    """An app from ``LEOFLOW_*`` variables (uvicorn's factory entry for several workers)."""
    return create_app(Settings.from_env())
