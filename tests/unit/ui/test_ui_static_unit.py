"""ui_routes on a synthetic bundle, driven through a real Starlette app with TestClient."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from ui_fixtures import DIST_FILES, LOGIN_FILES, MAIN_INDEX

from leoflow.server.ui.bundle import UiBundle
from leoflow.server.ui.static import (
    API_V1_REMOVED,
    cache_control_for,
    content_type_for,
    ui_routes,
)
from leoflow.settings import Settings


async def _token(request: Request) -> JSONResponse:
    return JSONResponse({"access_token": "t"}, status_code=201)


async def _ui_config(request: Request) -> JSONResponse:
    return JSONResponse({"instance_name": "Leoflow Lite"})


def _app(bundle: UiBundle | None, home: Path) -> Starlette:
    # The app factory's shape: API routes first, UI routes last.
    api = [
        Route("/auth/token", _token, methods=["POST"]),
        Route("/ui/config", _ui_config, methods=["GET"]),
    ]
    return Starlette(routes=[*api, *ui_routes(Settings(home=home), bundle)])


@pytest.fixture
def client(fake_bundle: UiBundle, tmp_path: Path) -> TestClient:
    return TestClient(_app(fake_bundle, tmp_path))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("assets/index-x.js", "text/javascript; charset=utf-8"),
        ("assets/x.wasm", "application/wasm"),
        ("i18n/locales/en/common.json", "application/json"),
        ("pin_32.png", "image/png"),
        ("assets/codicon.ttf", "font/ttf"),
        ("assets/s.css", "text/css; charset=utf-8"),
        ("assets/f.woff2", "font/woff2"),
        ("index.html", "text/html; charset=utf-8"),
        ("LICENSE.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type_for(name) == expected


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("assets/index-AbC.js", "public, max-age=31536000, immutable"),
        ("index.html", "no-cache"),
        ("i18n/locales/en/common.json", "public, max-age=3600"),
        ("pin_32.png", "public, max-age=3600"),
    ],
)
def test_cache_policy(rel: str, expected: str) -> None:
    assert cache_control_for(rel) == expected


def test_static_js_is_gzipped_immutable_javascript(client: TestClient) -> None:
    resp = client.get("/static/assets/index-AbC123.js", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert resp.headers["vary"] == "Accept-Encoding"
    assert resp.content == DIST_FILES["assets/index-AbC123.js"]  # httpx decodes gzip
    assert int(resp.headers["content-length"]) < len(DIST_FILES["assets/index-AbC123.js"]) / 10


def test_static_without_gzip_is_byte_identical(client: TestClient) -> None:
    resp = client.get("/static/assets/index-AbC123.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in resp.headers
    assert resp.content == DIST_FILES["assets/index-AbC123.js"]


def test_gzip_refused_with_q_zero(client: TestClient) -> None:
    resp = client.get("/static/assets/index-AbC123.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in resp.headers


def test_raw_gzip_body_decompresses_to_the_file(fake_bundle: UiBundle, tmp_path: Path) -> None:
    with (
        TestClient(_app(fake_bundle, tmp_path)) as c,
        c.stream(
            "GET", "/static/assets/codiconStyles-Q.css", headers={"Accept-Encoding": "gzip"}
        ) as resp,
    ):
        raw = b"".join(resp.iter_raw())
    assert resp.headers["content-type"] == "text/css; charset=utf-8"
    assert gzip.decompress(raw) == DIST_FILES["assets/codiconStyles-Q.css"]


@pytest.mark.parametrize(
    ("path", "ctype", "gzipped", "cache"),
    [
        (
            "assets/sqlparser-XyZ.wasm",
            "application/wasm",
            True,
            "public, max-age=31536000, immutable",
        ),
        ("assets/codicon-Q.ttf", "font/ttf", True, "public, max-age=31536000, immutable"),
        ("i18n/locales/en/common.json", "application/json", True, "public, max-age=3600"),
        ("pin_32.png", "image/png", False, "public, max-age=3600"),
        (
            "assets/tiny-0001.js",
            "text/javascript; charset=utf-8",
            False,
            "public, max-age=31536000, immutable",
        ),
    ],
)
def test_static_types_compression_and_cache(
    client: TestClient, path: str, ctype: str, gzipped: bool, cache: str
) -> None:
    resp = client.get(f"/static/{path}", headers={"Accept-Encoding": "gzip, deflate"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == ctype
    assert (resp.headers.get("content-encoding") == "gzip") is gzipped
    assert resp.headers["cache-control"] == cache
    assert resp.content == DIST_FILES[path]


def test_etag_revalidation_gives_304(client: TestClient) -> None:
    first = client.get("/static/i18n/locales/en/common.json", headers={"Accept-Encoding": "gzip"})
    again = client.get(
        "/static/i18n/locales/en/common.json",
        headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""
    plain = client.get(
        "/static/i18n/locales/en/common.json",
        headers={"Accept-Encoding": "identity", "If-None-Match": first.headers["etag"]},
    )
    assert plain.status_code == 200  # the gzip variant's tag does not validate the identity body


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/assets/", "/static/%2e%2e/conftest.py", "/static/dags"],
)
def test_static_miss_is_404_without_spa_fallback(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404
    assert b"<base" not in resp.content


def test_index_base_href_filled_and_otherwise_identical(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.content == MAIN_INDEX.replace(b"{{ backend_server_base_url }}", b"/")


def test_index_base_href_follows_root_path(fake_bundle: UiBundle, tmp_path: Path) -> None:
    c = TestClient(_app(fake_bundle, tmp_path), root_path="/airflow")
    resp = c.get("/dags")
    assert b'<base href="/airflow/" />' in resp.content


@pytest.mark.parametrize(
    "path",
    [
        "/dags",
        "/dags/example/runs/manual__2026-05-23T04:48:14.310347+00:00/tasks/t1",
        "/assets",
        "/variables",
        "/plugin/hitl-review",
        "/apiary",
        "/uiux",
        "/staticky",
    ],
)
def test_deep_links_get_the_spa_shell(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.content == MAIN_INDEX.replace(b"{{ backend_server_base_url }}", b"/")


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("GET", "/api/v1/dags", API_V1_REMOVED),
        ("GET", "/api/v2/nope", "API route not found"),
        ("POST", "/api/v2/nope", "API route not found"),
        ("GET", "/api/", "API route not found"),
        ("GET", "/ui/nope", "Not Found"),
        ("DELETE", "/ui/nope/x", "Not Found"),
    ],
)
def test_api_paths_get_json_404(client: TestClient, method: str, path: str, detail: str) -> None:
    resp = client.request(method, path)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"detail": detail}


def test_health_moved_like_airflow(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 404 and "/api/v2/monitor/health" in resp.json()["detail"]


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json", "/auth/token"])
def test_reserved_paths_do_not_fall_back(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code in (404, 405)
    assert b"<base" not in resp.content


def test_earlier_api_routes_win(client: TestClient) -> None:
    assert client.get("/ui/config").json() == {"instance_name": "Leoflow Lite"}
    assert client.post("/auth/token").status_code == 201


@pytest.mark.parametrize(
    "path", ["/auth/login", "/auth/login?next=http%3A%2F%2Ftestserver%2Fdags", "/auth/logout-done"]
)
def test_login_spa(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.content == LOGIN_FILES["index.html"].replace(b"{{ backend_server_base_url }}", b"/")


def test_login_static_assets(client: TestClient) -> None:
    resp = client.get("/auth/static/assets/index-Login1.js", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.content == LOGIN_FILES["assets/index-Login1.js"]
    assert client.get("/auth/static/assets/missing.js").status_code == 404


def test_head_on_static(client: TestClient) -> None:
    resp = client.head("/static/pin_32.png")
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["content-type"] == "image/png"


def test_missing_bundle_says_run_setup_and_api_404s_still_work(tmp_path: Path) -> None:
    c = TestClient(_app(None, tmp_path / "empty-home"))
    page = c.get("/dags")
    assert page.status_code == 503 and b"leoflow setup" in page.content
    assert c.get("/api/v2/nope").json() == {"detail": "API route not found"}
    assert c.get("/static/assets/x.js").status_code == 404


def test_bundle_found_under_settings_home(fake_bundle: UiBundle) -> None:
    (fake_bundle.root / ".leoflow-bundle.json").write_text(
        json.dumps(
            {
                "version": "3.2.2",
                "wheel_sha256": "877be429d59193b5e9aab1ae69f44066134bf483c633e9f7c59a9220ebfcc013",
            }
        )
    )
    home = fake_bundle.root.parent.parent
    c = TestClient(_app(None, home))
    assert c.get("/dags").content == MAIN_INDEX.replace(b"{{ backend_server_base_url }}", b"/")
