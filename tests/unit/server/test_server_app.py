"""The app without a datastore: public routes, the auth gate, limits, docs and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from leoflow.server.app import create_app
from leoflow.server.auth import AuthConfigError, Permission
from leoflow.server.openapi import build_document, iter_api_routes
from leoflow.settings import Settings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: nothing here may touch the store.
    app = create_app(Settings(jwt_secret="unit-test-secret-unit-test-secret"), max_body_bytes=1024)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_version_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/version")
    assert response.status_code == 200
    assert set(response.json()) == {"version", "git_version"}


@pytest.mark.parametrize("path", ["/api/v2/dags", "/api/v2/variables", "/api/v2/dags/x/dagRuns"])
async def test_everything_else_needs_a_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    forged = await client.get(path, headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and forged.json()["detail"] == "Invalid JWT token"
    client.cookies.set("_token", "nope")
    try:
        assert (await client.get(path)).status_code == 401
    finally:
        client.cookies.clear()


async def test_oversize_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", content=b"x" * 2048)
    assert response.status_code == 413
    assert "larger than 1024" in response.json()["detail"]


async def test_unknown_api_path_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/no/such/thing")
    assert response.status_code == 404 and "detail" in response.json()


async def test_login_redirects_and_rejects_offsite_next(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/auth/login", params={"next": "/dags"})
    assert response.status_code == 307
    assert response.headers["location"] == "/auth/login?next=%2Fdags"
    bad = await client.get("/api/v2/auth/login", params={"next": "https://evil.example/x"})
    assert bad.status_code == 400
    out = await client.get("/api/v2/auth/logout")
    assert out.status_code == 307 and "_token=" in out.headers["set-cookie"]


async def test_docs_and_openapi_list_our_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert "/api/v2/leoflow/dags/{dag_id}/versions" in doc["paths"]
    assert doc["paths"]["/api/v2/version"]["get"]["security"] == []
    assert "post" in doc["paths"]["/api/v2/dags/{dag_id}/dagRuns"]
    page = await client.get("/docs")
    assert (
        page.status_code == 200 and "openapi.json" in page.text and "cdn" not in page.text.lower()
    )


async def test_metrics_count_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v2/dags/some-dag")
    text = (await client.get("/metrics")).text
    assert 'route="/api/v2/dags/{dag_id}"' in text
    assert "leoflow_task_instance_transitions_total" in text


def test_app_refuses_to_start_without_a_jwt_secret() -> None:
    with pytest.raises(AuthConfigError):
        create_app(Settings(jwt_secret=None))


def test_every_route_is_public_only_on_purpose() -> None:
    app = create_app(Settings(jwt_secret="x" * 32))
    # /ui/* routes belong to the UI package and are checked by its own tests.
    ours = [(p, r) for p, r in iter_api_routes(list(app.routes)) if not p.startswith("/ui/")]
    public = {p for p, r in ours if r.permission is None}
    assert public == {
        "/auth/token", "/auth/token/cli", "/api/v2/version", "/api/v2/monitor/health",
        "/api/v2/auth/token", "/api/v2/auth/login", "/api/v2/auth/logout",
    }  # fmt: skip
    # Favorites are a viewer's own preference (Airflow asks only for DAG read there); the batch
    # lists (POST .../dagRuns/list, .../taskInstances/list) are reads sent as POST.
    writes = [
        r
        for p, r in ours
        if r.permission
        and set(r.methods or ()) - {"GET", "HEAD"}
        and "favorite" not in p
        and not p.endswith("/list")
    ]
    assert all(r.permission is not Permission.READ for r in writes)
    assert len(build_document(list(app.routes))["paths"]) > 40
