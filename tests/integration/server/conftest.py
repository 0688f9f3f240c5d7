"""Fixtures for the API against real Postgres and Redis.

One database per test run (created on 127.0.0.1:5432, migrated once, dropped at the end) and a
Redis key prefix per test. Each test gets its own tenant with one user per role, so tests never
see each other's objects. ``api`` drives the app in-process (httpx + ASGITransport) with its
lifespan run by hand, as uvicorn runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from leoflow.server.app import create_app
from leoflow.server.auth import Principal, TokenIssuer
from leoflow.settings import Settings
from leoflow.spec import DagSpec, dumps, finalize
from leoflow.store import RedisStore, Store, migrate_sync
from leoflow.store.api import Role

PG_ADMIN_DSN = os.environ.get("LEOFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LEOFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
JWT_SECRET = "integration-test-secret-0123456789abcdef"
PASSWORD = "correct-horse-battery"


def _dsn(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test run."""
    name = f"leoflow_api_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = _dsn(name)
    migrate_sync(dsn)
    yield dsn
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, home: Path, **overrides: Any) -> Settings:
    """Settings for a test server."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "jwt_secret": JWT_SECRET,
        "secret_key": "test-secret-key-for-connections-0123456789",
        "bootstrap_username": "admin",
        "bootstrap_password": PASSWORD,
        "login_rate_limit_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(**values)


class LifespanApp:
    """Runs an ASGI app's lifespan and hands its state to every request, as uvicorn does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LifespanApp:
        scope = {"type": "lifespan", "state": self.state, "asgi": {"version": "3.0"}}
        self._task = asyncio.create_task(self.app(scope, self._queue.get, self._sent.put))
        await self._queue.put({"type": "lifespan.startup"})
        message = await self._sent.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan failed: {message}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._queue.put({"type": "lifespan.shutdown"})
        await self._sent.get()
        assert self._task is not None
        await self._task

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "state": dict(self.state)}
        await self.app(scope, receive, send)


@dataclass
class Api:
    """One test's server, tenant and per-role clients."""

    http: httpx.AsyncClient
    store: Store
    redis: RedisStore
    settings: Settings
    tenant: str
    tokens: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        """Authorization header for the tenant's user of this role."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def get(self, path: str, role: Role = Role.ADMIN, **kw: Any) -> httpx.Response:
        return await self.http.get(
            path, headers={**self.headers(role), **kw.pop("headers", {})}, **kw
        )

    async def post(self, path: str, role: Role = Role.ADMIN, **kw: Any) -> httpx.Response:
        return await self.http.post(path, headers=self.headers(role), **kw)

    async def patch(self, path: str, role: Role = Role.ADMIN, **kw: Any) -> httpx.Response:
        return await self.http.patch(path, headers=self.headers(role), **kw)

    async def delete(self, path: str, role: Role = Role.ADMIN, **kw: Any) -> httpx.Response:
        return await self.http.delete(path, headers=self.headers(role), **kw)

    async def push(self, spec: DagSpec, role: Role = Role.ADMIN) -> httpx.Response:
        """Register a DAG version through the API."""
        return await self.http.post(
            f"/api/v2/leoflow/dags/{spec.dag_id}/versions",
            content=dumps(spec),
            headers={**self.headers(role), "Content-Type": "application/json"},
        )

    async def trigger(self, dag_id: str, **body: Any) -> dict[str, Any]:
        """Trigger a run and return its body."""
        response = await self.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, **body}
        )
        assert response.status_code == 200, response.text
        return response.json()


def make_spec(dag_id: str = "etl", **extra: Any) -> DagSpec:
    """A small valid DAG: extract >> transform >> load."""
    body: dict[str, Any] = {
        "dag_id": dag_id,
        "description": "test dag",
        "tags": ["test"],
        "schedule": None,
        "params": {"rows": {"default": 10, "schema": {"type": "integer", "minimum": 1}}},
        "source": "# dag.py\n",
        "tasks": [
            {
                "task_id": "extract",
                "type": "bash",
                "operator": "BashOperator",
                "bash_command": "echo 1",
            },
            {
                "task_id": "transform",
                "type": "empty",
                "operator": "EmptyOperator",
                "upstream": ["extract"],
            },
            {
                "task_id": "load",
                "type": "empty",
                "operator": "EmptyOperator",
                "upstream": ["transform"],
            },
        ],
        **extra,
    }
    return finalize(DagSpec.model_validate(body))


async def login(http: httpx.AsyncClient, tenant: str, username: str) -> str:
    response = await http.post(
        "/auth/token", json={"username": username, "password": PASSWORD, "tenant": tenant}
    )
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, **app_kw: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Store, RedisStore]]:
    """An in-process app on its own store and Redis prefix."""
    assert settings.database_url is not None
    store = await Store.connect(settings.database_url, settings=settings)
    redis = await RedisStore.connect(
        REDIS_URL, settings=settings, prefix=f"lftest-{uuid.uuid4().hex[:8]}"
    )
    app = LifespanApp(create_app(settings, store=store, redis=redis, **app_kw))
    try:
        async with app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, store, redis
    finally:
        await redis.close()
        await store.close()


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """A server plus a fresh tenant with a viewer, user, op and admin."""
    settings = make_settings(database_url, tmp_path)
    async with serve(settings) as (http, store, redis):
        tenant = f"t{uuid.uuid4().hex[:10]}"
        await store.create_tenant(tenant)
        result = Api(http=http, store=store, redis=redis, settings=settings, tenant=tenant)
        # Tokens are minted directly (login itself is tested on its own): argon2 is slow on purpose.
        issuer = TokenIssuer(JWT_SECRET, settings.token_ttl_seconds)
        for role in Role:
            result.tokens[role] = issuer.mint(
                Principal(username=role.value, tenant=tenant, role=role)
            )
        yield result


@pytest.fixture(scope="session")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any]]:
    """uvicorn on a free loopback port in a thread, with the app opening its own datastores."""
    settings = make_settings(database_url, tmp_path_factory.mktemp("home"))
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)  # waiting for another thread's startup flag; there is no event to await
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", settings
    srv.should_exit = True
    thread.join(timeout=30)
