"""The stock Airflow 3.2.2 UI driven by a real browser against the whole, seeded control plane.

Issue 7, item 4 (contract doc section 11): log in through the stock login page, open every
route the contract lists, fail on any /api or /ui answer >= 400 and on any console error (the
allowlist below says why each entry is there), check what is shown (DAG ids, grid cells, graph
nodes, the source, a log line, an XCom key), then trigger, clear and pause through the UI and
check each effect through the API. Screenshots go to test-artifacts/ui-walk/ (git-ignored).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Response, expect
from ui_stack import ADMIN, PASSWORD, UiStack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui-walk"
# (pattern, reason). Anything else logged as a console error fails the test.
CONSOLE_ALLOWLIST: list[tuple[str, str]] = [
    (
        r"status of 401 \(Unauthorized\)",
        "before login the SPA's /ui/config answers 401 by design: that starts the login flow",
    ),
]
# (method, url pattern, status, reason): API answers >= 400 that are the expected behaviour.
RESPONSE_ALLOWLIST: list[tuple[str, str, int, str]] = [
    ("GET", r"/ui/config$", 401, "unauthenticated shell load, before login (section 4)"),
]


@dataclass
class Recorder:
    """Every /api and /ui response and every console error of one page, per view."""

    view: str = "login"
    responses: list[tuple[str, str, str, int]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append((self.view, f"pageerror: {exc}")))

    def _response(self, response: Response) -> None:
        path = re.sub(r"^https?://[^/]+", "", response.url)
        if path.startswith(("/api/", "/ui/", "/auth/token")):
            self.responses.append((self.view, response.request.method, path, response.status))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append((self.view, f"{message.text} @ {where}"))

    def failures(self) -> list[str]:
        """API answers >= 400 and console errors outside the allowlists."""
        bad = [
            f"[{view}] {method} {path} -> {status}"
            for view, method, path, status in self.responses
            if status >= 400 and not _allowed(method, path, status)
        ]
        bad += [
            f"[{view}] console: {text}"
            for view, text in self.errors
            if not any(re.search(pattern, text) for pattern, _ in CONSOLE_ALLOWLIST)
        ]
        return bad


def _allowed(method: str, path: str, status: int) -> bool:
    clean = path.split("?")[0]
    return any(
        m == method and re.search(p, clean) and s == status for m, p, s, _ in RESPONSE_ALLOWLIST
    )


@dataclass
class Session:
    """The logged-in browser page shared by the walk's tests."""

    context: BrowserContext
    page: Page
    recorder: Recorder
    base: str
    api: httpx.Client

    def open(self, path: str, name: str | None = None) -> Page:
        """Navigate, wait until the UI stops fetching, and save a screenshot."""
        self.recorder.view = path
        self.page.goto(self.base + path, wait_until="networkidle")
        self.shot(name or path)
        return self.page

    def shot(self, name: str) -> None:
        """A full-page screenshot under test-artifacts/ui-walk/."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/")) or "home"
        self.page.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=True)


@pytest.fixture(scope="module")
def session(ui_stack: UiStack, browser: Browser) -> Iterator[Session]:
    """Log in through the stock login page (the first test asserts how that went)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    recorder = Recorder()
    recorder.attach(page)
    base = ui_stack.base_url
    page.goto(base + "/dags", wait_until="commit")
    page.wait_for_url(re.compile(r".*/auth/login\?next=.*"), timeout=60_000)
    page.locator("input[name=username], input#username").first.fill(ADMIN)
    page.locator("input[type=password]").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(base + "/dags", timeout=60_000)
    page.wait_for_load_state("networkidle")
    token = httpx.post(base + "/auth/token", json={"username": ADMIN, "password": PASSWORD})
    api = httpx.Client(
        base_url=base + "/api/v2",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )
    yield Session(context, page, recorder, base, api)
    api.close()
    context.close()


def test_login_goes_through_the_stock_login_page(session: Session) -> None:
    login = [(m, p.split("?")[0], s) for v, m, p, s in session.recorder.responses if v == "login"]
    assert ("GET", "/ui/config", 401) in login
    assert ("GET", "/api/v2/auth/login", 307) in login
    assert ("POST", "/auth/token", 201) in login
    assert ("GET", "/ui/config", 200) in login  # after login, with the cookie only
    cookies = {c["name"]: c for c in session.context.cookies()}
    assert cookies["_token"]["path"] == "/"
    session.shot("dags-after-login")
    for dag_id in ("etl", "flaky", "hello"):
        expect(session.page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible()
    assert session.recorder.failures() == []


def _routes(stack: UiStack) -> list[str]:
    etl, hello = stack.seeded.runs["etl"].run_id, stack.seeded.runs["hello"].run_id
    flaky = stack.seeded.runs["flaky"].run_id
    ti = f"/dags/etl/runs/{etl}/tasks/extract"
    return [
        "/",
        "/dags",
        "/dags/etl",
        *[f"/dags/etl/{tab}" for tab in ("runs", "tasks", "calendar", "code", "details", "events")],
        f"/dags/etl/runs/{etl}",
        ti,
        ti + "/xcom",
        ti + "/details",
        f"/dags/hello/runs/{hello}/tasks/show",
        f"/dags/flaky/runs/{flaky}/tasks/explode",
        *["/variables", "/connections", "/pools", "/assets", "/events", "/xcoms"],
        *["/dag_runs", "/task_instances"],
    ]


def test_every_contract_route_renders_without_errors(session: Session, ui_stack: UiStack) -> None:
    opened = []
    for path in _routes(ui_stack):
        page = session.open(path)
        expect(page.get_by_test_id("main-content")).to_be_visible()
        opened.append(path)
    assert len(opened) == 23
    calls = {p.split("?")[0] for _, _, p, _ in session.recorder.responses}
    assert {"/ui/dags", "/ui/grid/runs/etl", "/ui/grid/ti_summaries/etl", "/ui/auth/me"} <= calls
    assert session.recorder.failures() == []


def test_views_show_the_seeded_data(session: Session, ui_stack: UiStack) -> None:
    etl = ui_stack.seeded.runs["etl"].run_id
    hello = ui_stack.seeded.runs["hello"].run_id
    etl_tasks = [t.task_id for t in ui_stack.seeded.specs["etl"].tasks]

    page = session.open("/dags/etl", "grid")
    cells = page.locator(f'a[data-testid^="grid-{etl}-"]')
    expect(cells).to_have_count(len(etl_tasks))
    for task_id in etl_tasks:
        cell = page.get_by_test_id(f"grid-{etl}-{task_id}")
        expect(cell.get_by_test_id("task-state-badge")).to_be_visible()

    page.get_by_role("button", name="Show Graph (Press g)").click()
    nodes = page.locator(".react-flow__node")
    expect(nodes).to_have_count(len(etl_tasks), timeout=20_000)
    for task_id in etl_tasks:
        expect(nodes.filter(has_text=task_id).first).to_be_visible()
    session.shot("graph")
    page.get_by_role("button", name="Show Grid (Press g)").click()

    page = session.open("/dags/etl/code", "code")
    expect(page.get_by_text("def parse_readings", exact=False).first).to_be_visible(timeout=20_000)

    page = session.open(f"/dags/hello/runs/{hello}/tasks/show", "log")
    expect(page.get_by_text("HELLO, LEOFLOW!").first).to_be_visible(timeout=20_000)

    page = session.open(f"/dags/hello/runs/{hello}/tasks/greet/xcom", "xcom")
    expect(page.get_by_text("return_value").first).to_be_visible(timeout=20_000)
    assert session.recorder.failures() == []


def _eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` through the API until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling the API for a condition, with a deadline


def test_trigger_clear_and_pause_take_effect(session: Session, ui_stack: UiStack) -> None:
    api = session.api
    before = api.get("/dags/hello/dagRuns").json()["total_entries"]
    page = session.open("/dags/hello", "before-trigger")
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Trigger").click()
    runs = _eventually(
        lambda: (
            (r := api.get("/dags/hello/dagRuns?order_by=-run_after").json())["total_entries"]
            > before
            and r
        ),
        "the triggered run",
    )
    assert runs["dag_runs"][0]["run_type"] == "manual"
    session.shot("after-trigger")

    flaky = ui_stack.seeded.runs["flaky"].run_id
    ti_url = f"/dags/flaky/dagRuns/{flaky}/taskInstances/explode"
    assert api.get(ti_url).json()["try_number"] == 1
    page = session.open(f"/dags/flaky/runs/{flaky}/tasks/explode", "before-clear")
    page.get_by_role("button", name="Clear Task Instance").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    _eventually(lambda: api.get(ti_url).json()["try_number"] == 2, "the cleared TI's new try")
    clears = [r for r in session.recorder.responses if r[2].endswith("/clearTaskInstances")]
    assert clears and all(status == 200 for *_, status in clears)
    session.shot("after-clear")

    assert api.get("/dags/hello").json()["is_paused"] is False
    page = session.open("/dags/hello", "before-pause")
    toggle = page.get_by_test_id("toggle-pause").locator("input").first
    toggle.evaluate("input => input.click()")  # a visually hidden checkbox
    _eventually(lambda: api.get("/dags/hello").json()["is_paused"] is True, "the pause")
    session.shot("after-pause")
    assert session.recorder.failures() == []
