"""Fixtures for the UI integration tests: the real pinned bundle, fetched once from PyPI, its
OpenAPI documents, and the real app in-process on a database of this test run.

The wheel is kept in /tmp/leoflow-test-cache/ so repeated runs need no network; a fresh machine
downloads it once with pip, exactly as ``leoflow setup`` does.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from ui_live import WHEEL_CACHE
from uiapi_seed import UiApi

from leoflow.server.app import create_app
from leoflow.server.auth import Principal, TokenIssuer
from leoflow.server.ui.bundle import (
    DEFAULT_UI_VERSION,
    UiBundle,
    ensure_ui_bundle,
    wheel_filename,
)
from leoflow.settings import Settings
from leoflow.store import RedisStore, Store, migrate_sync
from leoflow.store.api import Role
from leoflow.store.testing import ADMIN_DSN, REDIS_URL
from tests.integration.server.conftest import LifespanApp


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> UiBundle:
    """The apache-airflow-core 3.2.2 UI bundle, verified against the pinned sha256."""
    home = tmp_path_factory.mktemp("leoflow-home")
    return ensure_ui_bundle(home, wheel_dir=WHEEL_CACHE)


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make pip see no index at all: config ignored, index on a closed port, empty find-links.

    Returns the find-links folder, so a test can offer pip exactly the wheels it wants.
    """
    with socket.socket() as sock:  # a port that was free a moment ago refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    links = tmp_path / "find-links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    return links


# -- the private /ui API against real Postgres and Redis (test_uiapi_*.py) -----------------------


JWT_SECRET = "uiapi-test-secret-0123456789abcdef0123"


@pytest.fixture(scope="session")
def uiapi_database_url() -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped at the end."""
    name = f"leoflow_uiapi_test_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    migrate_sync(dsn)
    yield dsn
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def uiapi_settings(database_url: str, home: Path, **overrides: Any) -> Settings:
    """Settings for an in-process test app."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "jwt_secret": JWT_SECRET,
        "secret_key": "uiapi-secret-key-for-connections-0123456789",
        "bootstrap_password": "uiapi-bootstrap-password",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def uiapi(uiapi_database_url: str, tmp_path: Path) -> AsyncIterator[UiApi]:
    """The real app in-process on its own tenant, with a token per role."""
    settings = uiapi_settings(uiapi_database_url, tmp_path)
    store = await Store.connect(uiapi_database_url, settings=settings)
    redis = await RedisStore.connect(
        REDIS_URL, settings=settings, prefix=f"lfuiapi-{uuid.uuid4().hex[:8]}"
    )
    app = create_app(settings, store=store, redis=redis)
    try:
        async with LifespanApp(app) as running:
            transport = httpx.ASGITransport(app=running)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                tenant = f"t{uuid.uuid4().hex[:10]}"
                await store.create_tenant(tenant)
                issuer = TokenIssuer(JWT_SECRET, settings.token_ttl_seconds)
                tokens = {
                    role: issuer.mint(Principal(username=role.value, tenant=tenant, role=role))
                    for role in Role
                }
                yield UiApi(
                    http=http, app=app, store=store, redis=redis, tenant=tenant, tokens=tokens
                )
    finally:
        await redis.close()
        await store.close()


@pytest.fixture(scope="session")
def airflow_openapi(real_bundle: UiBundle) -> dict[str, dict[str, Any]]:
    """The pinned wheel's own OpenAPI documents: ``{"ui": _private_ui, "v2": v2-rest-api}``.

    Read from the same verified wheel the bundle came from, so shapes and bundle never drift.
    """
    wheel = WHEEL_CACHE / wheel_filename(DEFAULT_UI_VERSION)
    base = "airflow/api_fastapi/core_api/openapi/"
    with zipfile.ZipFile(wheel) as zf:
        return {
            "ui": yaml.safe_load(zf.read(base + "_private_ui.yaml")),
            "v2": yaml.safe_load(zf.read(base + "v2-rest-api-generated.yaml")),
        }
