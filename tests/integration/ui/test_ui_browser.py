"""Headless Debian Chromium (through Playwright) loading the stock pages from our routes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from ui_live import serve

from leoflow.server.ui.bundle import UiBundle
from leoflow.server.ui.static import ui_routes
from leoflow.settings import Settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


async def _unauthenticated(request: Request) -> Response:
    return JSONResponse({"detail": "Not authenticated"}, status_code=401)


async def _version(request: Request) -> Response:
    return JSONResponse({"version": "3.2.2", "git_version": None})


async def _auth_login(request: Request) -> Response:
    # Airflow's /api/v2/auth/login: 307 to the auth manager's login URL, keeping `next`.
    return RedirectResponse(f"/auth/login?next={quote(request.query_params['next'])}", 307)


def _app(bundle: UiBundle) -> Starlette:
    stand_ins = [  # the real auth routes belong to another module; just enough to redirect
        Route("/ui/{path:path}", _unauthenticated),
        Route("/api/v2/plugins", _unauthenticated),
        Route("/api/v2/version", _version),
        Route("/api/v2/auth/login", _auth_login),
    ]
    return Starlette(routes=[*stand_ins, *ui_routes(Settings(home=bundle.root), bundle)])


def _watch(page: Page) -> tuple[list[str], list[tuple[int, str]]]:
    errors: list[str] = []
    responses: list[tuple[int, str]] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"{msg.text} @ {msg.location.get('url')}")

    page.on("console", on_console)
    page.on("response", lambda r: responses.append((r.status, r.url)))
    return errors, responses


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_login_page_renders_the_stock_form(browser, real_bundle: UiBundle) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(_app(real_bundle)) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors, responses = _watch(page)
        page.goto(f"{base}/auth/login?next={quote(base + '/dags')}", wait_until="networkidle")
        username = page.locator("input[name=username], input#username").first
        username.wait_for(state="visible", timeout=30_000)
        password = page.locator("input[type=password]")
        assert password.is_visible()
        assert page.locator("button[type=submit]").is_visible()
        page.screenshot(path=str(ARTIFACTS / "ui-login.png"), full_page=True)
        page.close()

    assert errors == []
    assert [r for r in responses if r[0] >= 400] == []
    assert any(url.endswith(".js") and "/auth/static/assets/" in url for _, url in responses)
    assert (ARTIFACTS / "ui-login.png").stat().st_size > 10_000


def test_spa_redirects_an_anonymous_user_to_the_login_page(browser, real_bundle: UiBundle) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(_app(real_bundle)) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors, responses = _watch(page)
        page.goto(f"{base}/dags", wait_until="commit")
        page.wait_for_url(f"{base}/auth/login?next=**", timeout=60_000)
        page.locator("input[type=password]").wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "ui-login-redirect.png"), full_page=True)
        page.close()

    statuses = {url.removeprefix(base).split("?")[0]: status for status, url in responses}
    assert statuses["/dags"] == 200
    assert statuses["/static/assets/index-C6RXW4nO.js"] == 200
    assert statuses["/ui/config"] == 401
    assert statuses["/api/v2/auth/login"] == 307
    assert statuses["/auth/login"] == 200
    # Allowed: Chromium logs the expected 401s of the shell's calls that start the login flow.
    unexpected = [e for e in errors if "status of 401" not in e]
    assert unexpected == []
    assert [r for r in responses if r[0] >= 400 and r[0] != 401] == []
