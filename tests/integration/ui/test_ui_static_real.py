"""ui_routes serving the real 3.2.2 bundle (every file, its type, compression and caching)."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from leoflow.server.ui.bundle import UiBundle
from leoflow.server.ui.static import ui_routes
from leoflow.settings import Settings


@pytest.fixture
async def client(real_bundle: UiBundle):
    app = Starlette(routes=ui_routes(Settings(home=real_bundle.root.parent.parent), real_bundle))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://leoflow.test") as c:
        yield c


async def test_every_bundle_file_is_served_byte_identical_with_a_real_type(
    client: httpx.AsyncClient, real_bundle: UiBundle
) -> None:
    files = [p for p in sorted(real_bundle.dist_dir.rglob("*")) if p.is_file()]
    assert len(files) == 234
    for path in files:
        rel = path.relative_to(real_bundle.dist_dir).as_posix()
        resp = await client.get(f"/static/{rel}", headers={"Accept-Encoding": "identity"})
        assert resp.status_code == 200, rel
        assert resp.content == path.read_bytes(), rel
        assert resp.headers["content-type"] != "application/octet-stream", rel


async def test_main_entry_is_gzipped_javascript_cached_forever(client: httpx.AsyncClient) -> None:
    index = (await client.get("/")).text
    entry = re.search(r'src="\./static/(assets/index-[^"]+\.js)"', index)
    assert entry is not None and entry.group(1) == "assets/index-C6RXW4nO.js"

    resp = await client.get(f"/static/{entry.group(1)}", headers={"Accept-Encoding": "gzip"})

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert int(resp.headers["content-length"]) < len(resp.content) / 3  # 6.7 MB -> well under


async def test_index_references_resolve(client: httpx.AsyncClient, real_bundle: UiBundle) -> None:
    resp = await client.get("/dags/example/runs/r1/tasks/t1")
    template = (real_bundle.dist_dir / "index.html").read_bytes()
    assert resp.content == template.replace(b"{{ backend_server_base_url }}", b"/")
    assert resp.headers["cache-control"] == "no-cache"
    refs = re.findall(r'(?:src|href)="\./(static/[^"]+)"', resp.text)
    assert len(refs) == 3  # icon, entry script, modulepreload
    for ref in refs:
        asset = await client.get(f"/{ref}")
        assert asset.status_code == 200, ref


@pytest.mark.parametrize(
    ("rel", "ctype", "gzipped", "cache"),
    [
        ("assets/sqlparser_rs_wasm_bg-CLYUWfXF.wasm", "application/wasm", True, "immutable"),
        ("assets/codicon-DCmgc-ay.ttf", "font/ttf", True, "immutable"),
        (
            "assets/codiconStyles-CPf3OnwZ.css",
            "text/css; charset=utf-8",
            False,
            "immutable",
        ),  # 853 B
        ("i18n/locales/en/common.json", "application/json", True, "max-age=3600"),
        ("pin_32.png", "image/png", False, "max-age=3600"),
    ],
)
async def test_asset_types(
    client: httpx.AsyncClient, rel: str, ctype: str, gzipped: bool, cache: str
) -> None:
    resp = await client.get(f"/static/{rel}", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == ctype
    assert (resp.headers.get("content-encoding") == "gzip") is gzipped
    assert cache in resp.headers["cache-control"]


async def test_login_spa_and_its_assets(client: httpx.AsyncClient, real_bundle: UiBundle) -> None:
    resp = await client.get("/auth/login", params={"next": "http://leoflow.test/dags"})
    template = (real_bundle.login_dist_dir / "index.html").read_bytes()
    assert resp.content == template.replace(b"{{ backend_server_base_url }}", b"/")
    script = re.search(r'src="\./(auth/static/assets/[^"]+\.js)"', resp.text)
    assert script is not None
    js = await client.get(f"/{script.group(1)}", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["content-encoding"] == "gzip"
    icon = await client.get("/auth/static/pin_32.png")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"


async def test_misses_and_api_404s(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/assets/index-DHyr8oiy.js")).status_code == 404
    v1 = await client.get("/api/v1/dags")
    assert v1.status_code == 404 and "removed in Airflow 3" in v1.json()["detail"]
    v2 = await client.get("/api/v2/dags")  # no API routes mounted in this app
    assert v2.status_code == 404 and v2.json() == {"detail": "API route not found"}
