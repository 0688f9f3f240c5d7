"""Auth, roles, tenants, hostile input, and the database going away and coming back."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from leoflow.server.app import create_app
from leoflow.server.auth import Permission, Principal, TokenIssuer, role_has
from leoflow.server.openapi import iter_api_routes
from leoflow.settings import Settings
from leoflow.store.api import Role
from tests.integration.server.conftest import (
    JWT_SECRET,
    PASSWORD,
    Api,
    make_settings,
    make_spec,
    serve,
)


def _write_routes() -> list[tuple[str, str, Permission]]:
    app = create_app(Settings(jwt_secret=JWT_SECRET))
    found = []
    for path, route in iter_api_routes(list(app.routes)):
        for method in sorted((route.methods or set()) - {"GET", "HEAD"}):
            if route.permission is not None and not path.startswith("/ui/"):
                found.append((method, path, route.permission))
    return found


WRITE_ROUTES = _write_routes()


def _concrete(path: str) -> str:
    return re.sub(r"{[^}:]+:(s?int)}", "1", re.sub(r"{[^}:]+}", "x", path))


@pytest.mark.parametrize(
    ("method", "path", "permission"), WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES]
)
async def test_roles_matrix(api: Api, method: str, path: str, permission: Permission) -> None:
    """Each role x each write route: 403 without the right, anything but 401/403 with it."""
    for role in Role:
        response = await api.http.request(
            method, _concrete(path), headers=api.headers(role), json={}
        )
        if role_has(role, permission):
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code)
            assert "Forbidden" in response.json()["detail"]


def test_matrix_covers_the_writes_that_matter() -> None:
    keys = {(m, p) for m, p, _ in WRITE_ROUTES}
    assert ("POST", "/api/v2/dags/{dag_id}/dagRuns") in keys
    assert ("PATCH", "/api/v2/variables") in keys
    assert ("POST", "/api/v2/leoflow/users") in keys
    assert len(WRITE_ROUTES) >= 29


async def test_viewer_reads_but_cannot_trigger(api: Api) -> None:
    await api.push(make_spec("v"))
    assert (await api.get("/api/v2/dags/v", Role.VIEWER)).status_code == 200
    denied = await api.post("/api/v2/dags/v/dagRuns", Role.VIEWER, json={"logical_date": None})
    assert denied.status_code == 403
    assert (
        await api.post("/api/v2/dags/v/dagRuns", Role.USER, json={"logical_date": None})
    ).status_code == 200
    assert (
        await api.post("/api/v2/variables", Role.USER, json={"key": "a", "value": "b"})
    ).status_code == 403
    assert (
        await api.post("/api/v2/variables", Role.OP, json={"key": "a", "value": "b"})
    ).status_code == 201


async def test_tenants_see_only_their_objects(api: Api) -> None:
    await api.push(make_spec("secret-dag"))
    await api.post("/api/v2/variables", json={"key": "only-mine", "value": "1"})
    other = f"{api.tenant}-other"
    await api.store.create_tenant(other)
    token = TokenIssuer(JWT_SECRET, 600).mint(Principal("admin", other, Role.ADMIN))
    h = {"Authorization": f"Bearer {token}"}
    assert (await api.http.get("/api/v2/dags", headers=h)).json()["total_entries"] == 0
    assert (await api.http.get("/api/v2/dags/secret-dag", headers=h)).status_code == 404
    assert (
        await api.http.post(
            "/api/v2/dags/secret-dag/dagRuns", headers=h, json={"logical_date": None}
        )
    ).status_code == 404
    assert (await api.http.get("/api/v2/variables/only-mine", headers=h)).status_code == 404
    assert (await api.http.get("/api/v2/dags/~/dagRuns", headers=h)).json()["total_entries"] == 0


async def test_expired_and_forged_tokens_are_401(api: Api) -> None:
    expired = TokenIssuer(JWT_SECRET, 60).mint(Principal("admin", api.tenant, Role.ADMIN), now=0)
    response = await api.http.get("/api/v2/dags", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and response.json()["detail"] == "Token has expired"
    forged = TokenIssuer("some-other-secret-of-enough-length!!", 60).mint(
        Principal("admin", api.tenant, Role.ADMIN)
    )
    response = await api.http.get("/api/v2/dags", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.json()["detail"] == "Invalid JWT token"
    api.http.cookies.set("_token", api.tokens[Role.VIEWER])
    try:
        assert (await api.http.get("/api/v2/dags")).status_code == 200
    finally:
        api.http.cookies.clear()


@pytest.mark.parametrize(
    "ident",
    [
        "x'; DROP TABLE dag; --",
        "1 OR 1=1",
        "..",
        "%2e%2e%2fetc%2fpasswd",
        "a\\..\\..\\b",
        "\u0000null",
    ],
)
async def test_hostile_ids_are_harmless(api: Api, ident: str) -> None:
    from urllib.parse import quote

    await api.push(make_spec("survivor"))
    q = quote(ident, safe="")
    for path in (f"/api/v2/dags/{q}", f"/api/v2/dags/{q}/dagRuns/{q}", f"/api/v2/variables/{q}",
                 f"/api/v2/dags/survivor/dagRuns/{q}/taskInstances/{q}/logs/1"):  # fmt: skip
        response = await api.get(path)
        assert response.status_code in (400, 404, 422), (path, response.status_code)
    stored = await api.post(
        "/api/v2/variables", json={"key": ident.replace("\u0000", ""), "value": "v"}
    )
    assert stored.status_code in (201, 400, 422)
    assert (await api.get("/api/v2/dags")).json()["dags"][0]["dag_id"] == "survivor"


async def test_malformed_bodies_name_the_field(api: Api) -> None:
    await api.push(make_spec("m"))
    broken = await api.http.post(
        "/api/v2/dags/m/dagRuns", content=b"{not json", headers=api.headers()
    )
    assert broken.status_code == 400 and "JSON" in broken.json()["detail"]
    wrong_type = await api.patch("/api/v2/dags/m", json={"is_paused": "maybe"})
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["loc"] == [
        "body",
        "is_paused",
    ]
    not_object = await api.post("/api/v2/dags/m/dagRuns", json=[1, 2])
    assert not_object.status_code == 422


async def test_oversize_body_is_413(database_url: str, tmp_path: Path) -> None:
    async with serve(make_settings(database_url, tmp_path), max_body_bytes=10_000) as (http, _, _):
        response = await http.post("/api/v2/variables", content=b"[" + b"1," * 20_000 + b"1]")
        assert response.status_code == 413


async def test_login_json_form_failures_and_rate_limit(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, login_rate_limit_per_minute=2)
    async with serve(settings) as (http, _, _):
        ok = await http.post("/auth/token", json={"username": "admin", "password": PASSWORD})
        assert ok.status_code == 201 and set(ok.json()) == {"access_token"}
        me = await http.get(
            "/api/v2/dags", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
        )
        assert me.status_code == 200
        form = await http.post("/auth/token", data={"username": "admin", "password": PASSWORD})
        assert form.status_code == 201
        missing = await http.post("/auth/token", json={"username": "admin"})
        assert missing.status_code == 400 and "password" in missing.json()["detail"]
        for _ in range(2):
            bad = await http.post("/auth/token", json={"username": "admin", "password": "wrong"})
            assert bad.status_code == 401 and bad.json() == {"detail": "Invalid credentials"}
        limited = await http.post("/auth/token", json={"username": "admin", "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


class _Proxy:
    """A TCP forwarder to Postgres that the test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


async def test_database_outage_is_503_then_recovers(database_url: str, tmp_path: Path) -> None:
    proxy = _Proxy(5432)
    await proxy.start()
    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    async with serve(make_settings(proxied, tmp_path)) as (http, _, _):
        token = TokenIssuer(JWT_SECRET, 600).mint(Principal("admin", "default", Role.ADMIN))
        h = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/v2/dags", headers=h)).status_code == 200
        await proxy.stop()
        down = await http.get("/api/v2/dags", headers=h)
        assert down.status_code == 503, down.text
        assert (
            "database" in down.json()["detail"].lower()
            or "unreachable" in down.json()["detail"].lower()
        )
        health = await http.get("/api/v2/monitor/health")
        assert health.json()["metadatabase"]["status"] == "unhealthy"
        await proxy.start()
        statuses = [(await http.get("/api/v2/dags", headers=h)).status_code for _ in range(3)]
        assert statuses[-1] == 200, statuses
    await proxy.stop()


async def test_user_management_is_admin_only(api: Api) -> None:
    created = await api.post(
        "/api/v2/leoflow/users",
        json={"username": "new", "password": "long-enough-pw", "role": "op"},
    )
    assert created.status_code == 201 and created.json()["role"] == "op"
    login = await api.http.post(
        "/auth/token", json={"username": "new", "password": "long-enough-pw", "tenant": api.tenant}
    )
    assert login.status_code == 201
    assert (await api.get("/api/v2/leoflow/users", Role.OP)).status_code == 403
    demoted = await api.patch("/api/v2/leoflow/users/new", json={"role": "viewer"})
    assert demoted.json()["role"] == "viewer"
    assert (await api.delete("/api/v2/leoflow/users/new")).status_code == 204
