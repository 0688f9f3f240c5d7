"""The whole control plane (API + scheduler + process executor) on a test database, driven by HTTP.

One ``ControlPlane(executor_name="process")`` per test module runs in a thread of its own (its
own event loop), on a fresh Postgres database and Redis db index 14, so the tests themselves are
plain synchronous functions speaking HTTP to it: push a compiled spec, trigger, poll, read back.
Every wait polls an observable condition under a deadline.
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from leoflow.compiler import compile_project
from leoflow.lite.bundles import Bundles
from leoflow.server.pro import ControlPlane
from leoflow.settings import Settings
from leoflow.spec import DagSpec, dumps
from leoflow.store.testing import create_test_database, drop_test_database

REDIS_URL = "redis://127.0.0.1:6379/14"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PASSWORD = "e2e-sched-admin-pw"
FINISHED_RUN = ("success", "failed")


class RunningPlane:
    """A ControlPlane running on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.plane = ControlPlane(settings, executor_name="process", handle_signals=False)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="e2e-control-plane", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.plane.run()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by start() or the teardown
            self.error = exc

    def start(self, timeout: float = 60) -> str:
        """Start the thread and return the API's base URL once it listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while self.plane.http_port is None:
            if not self._thread.is_alive():
                raise AssertionError(f"control plane exited while starting: {self.error!r}")
            assert time.monotonic() < deadline, "control plane did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.plane.http_port}"

    def stop(self, timeout: float = 60) -> None:
        """Ask the plane to stop (from this thread) and wait for it to close everything."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.plane.stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "control plane did not stop"
        if self.error is not None:
            raise self.error


class Api:
    """The Airflow REST API of the plane, logged in as the bootstrap admin."""

    def __init__(self, client: httpx.Client, projects: Path, home: Path) -> None:
        self.client = client
        self.projects = projects
        self.home = home

    # -- DAGs --------------------------------------------------------------------------------

    def push_project(self, source: Path) -> DagSpec:
        """Compile a copy of a project and register the spec through the API."""
        project = self.projects / source.name
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(source, project)
        return self._push(compile_project(project).spec)

    def push_project_with_bundle(self, source: Path) -> DagSpec:
        """Like push_project, but first keep the whole project as the version's bundle.

        A pushed dag.json carries one source file; a process executor rebuilds the bundle from
        it alone. Lite snapshots the whole project folder instead (``Bundles.compile``), which a
        project with more than one file (yaml_pipeline's steps.py) needs.
        """
        project = self.projects / source.name
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(source, project)
        return self._push(Bundles(self.home / "bundles").compile(project).spec)

    def push_dag(self, dag_id: str, dag_py: str, leoflow_yaml: str = "") -> DagSpec:
        """Write a one-file project (dag.py + leoflow.yaml), compile and register it."""
        project = self.projects / dag_id
        project.mkdir(parents=True, exist_ok=True)
        (project / "dag.py").write_text(textwrap.dedent(dag_py), encoding="utf-8")
        yaml = f'dag_id: {dag_id}\npython_version: "3.11"\n' + textwrap.dedent(leoflow_yaml)
        (project / "leoflow.yaml").write_text(yaml, encoding="utf-8")
        return self._push(compile_project(project).spec)

    def _push(self, spec: DagSpec) -> DagSpec:
        pushed = self.client.post(
            f"/api/v2/leoflow/dags/{spec.dag_id}/versions",
            content=dumps(spec),
            headers={"Content-Type": "application/json"},
        )
        assert pushed.status_code in (200, 201), pushed.text
        return spec

    # -- runs --------------------------------------------------------------------------------

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> None:
        """POST .../dagRuns (a manual run)."""
        body = {"logical_date": None, "dag_run_id": run_id, "conf": conf or {}}
        made = self.client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        assert made.status_code == 200, made.text

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """GET one DAG run."""
        got = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        assert got.status_code == 200, got.text
        return got.json()

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll the run until it is success or failed (bounded); return it."""
        return self.wait_for(
            lambda: self.run(dag_id, run_id),
            lambda run: run["state"] in FINISHED_RUN,
            timeout,
            f"run {dag_id}/{run_id} to finish",
        )

    def wait_for(
        self,
        read: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float,
        what: str,
    ) -> Any:
        """Call ``read`` until ``done(value)`` holds; fail with the last value at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
            time.sleep(0.05)

    # -- task instances ----------------------------------------------------------------------

    def tis(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        """Every task instance of the run by (task_id, map_index)."""
        got = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["total_entries"] == len(body["task_instances"])
        return {(t["task_id"], t["map_index"]): t for t in body["task_instances"]}

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id -> state for an unmapped run."""
        return {task_id: ti["state"] for (task_id, _), ti in self.tis(dag_id, run_id).items()}

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """GET one task instance."""
        got = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        assert got.status_code == 200, got.text
        return got.json()

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """GET .../tries, ordered by try_number."""
        got = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        )
        assert got.status_code == 200, got.text
        return sorted(got.json()["task_instances"], key=lambda t: t["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The value of one XCom entry (GET .../xcomEntries/{key})."""
        got = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        assert got.status_code == 200, f"xcom {task_id}.{key}: {got.text}"
        return got.json()["value"]

    def xcom_keys(self, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """The keys listed for a task (GET .../xcomEntries)."""
        got = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        )
        assert got.status_code == 200, got.text
        return [e["key"] for e in got.json()["xcom_entries"]]

    def log_lines(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """The ``event`` texts of a try's log (GET .../logs/{try_number}, JSON)."""
        got = self.client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        assert got.status_code == 200, got.text
        return [str(e.get("event", "")) for e in got.json()["content"]]

    def patch_ti(self, dag_id: str, run_id: str, task_id: str, **body: Any) -> httpx.Response:
        """PATCH a task instance (mark state / note)."""
        return self.client.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json=body
        )

    def clear(self, dag_id: str, **body: Any) -> httpx.Response:
        """POST /dags/{dag_id}/clearTaskInstances."""
        return self.client.post(f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One control plane for the module (fresh database, clean Redis db), logged in."""
    root = tmp_path_factory.mktemp("e2e-sched")
    dsn = asyncio.run(create_test_database())
    flusher = redis.Redis.from_url(REDIS_URL)
    flusher.flushdb()
    settings = Settings(
        home=root / "home",
        database_url=dsn,
        redis_url=REDIS_URL,
        jwt_secret="e2e-sched-secret-" + "x" * 32,
        secret_key="s" * 32,
        bootstrap_password=PASSWORD,
        host="127.0.0.1",
        port=0,
        grpc_port=0,
        metrics_port=0,
    )
    plane = RunningPlane(settings)
    try:
        base = plane.start()
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
            assert login.status_code in (200, 201), login.text
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            projects = root / "projects"
            projects.mkdir()
            yield Api(client, projects, settings.home)
    finally:
        try:
            plane.stop()
        finally:
            flusher.flushdb()
            flusher.close()
            asyncio.run(drop_test_database(dsn))
