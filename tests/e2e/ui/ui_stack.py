"""The whole control plane for the browser test: app + scheduler + ProcessExecutor, seeded.

Everything runs in one background thread with its own event loop, as a server process would:
uvicorn serving ``create_app`` on a free loopback port, the Scheduler with the ProcessExecutor
(tasks run as real subprocesses of this interpreter, which has leoflow installed), on a fresh
database on 127.0.0.1:5432 and a Redis key prefix of its own on 127.0.0.1:6379. Seeding
compiles and registers the example projects (plus a small DAG that fails), runs them to their
end, and adds a variable, a pool and a connection.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from leoflow.compiler import compile_project
from leoflow.executors.process import ProcessExecutor
from leoflow.scheduler.service import Scheduler
from leoflow.server.app import create_app
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store import RedisStore, Store
from leoflow.store.api import (
    DEFAULT_TENANT,
    TERMINAL_RUN_STATES,
    Connection,
    DagRun,
    Pool,
    Variable,
)
from leoflow.store.testing import REDIS_URL, flush_redis_prefix

REPO = Path(__file__).resolve().parents[3]
ADMIN = "admin"
PASSWORD = "browser-test-password-1"
FLAKY_DAG = '''"""flaky: prepares, then fails on purpose (the browser test clears it)."""

from datetime import UTC, datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="flaky", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC), tags=["qa"]):
    prepare = BashOperator(task_id="prepare", bash_command="echo preparing the flaky run")
    explode = BashOperator(task_id="explode", bash_command="echo about to fail; exit 3")
    prepare >> explode
'''


@dataclass
class Seeded:
    """What the stack created, for the test to navigate to and assert on."""

    runs: dict[str, DagRun] = field(default_factory=dict)  # dag_id -> its finished manual run
    specs: dict[str, DagSpec] = field(default_factory=dict)


class UiStack:
    """Start with ``start()``, stop with ``stop()``; ``call`` runs a coroutine in its loop."""

    def __init__(self, database_url: str, home: Path, work: Path) -> None:
        self.settings = Settings(
            home=home,
            database_url=database_url,
            redis_url=REDIS_URL,
            jwt_secret="browser-test-jwt-secret-0123456789abcdef",
            secret_key="browser-test-secret-key-0123456789abcdef",
            bootstrap_username=ADMIN,
            bootstrap_password=PASSWORD,
        )
        self.work = work
        self.base_url = ""
        self.seeded = Seeded()
        self.store: Store | None = None
        self._prefix = f"lfbrowser-{uuid.uuid4().hex[:8]}"
        self._projects: dict[str, Path] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ui-stack", daemon=True)

    def start(self, timeout: float = 180) -> None:
        """Start serving and seeding; returns once the data is in place (raises what failed)."""
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the UI stack did not come up: {self._error!r}")

    def stop(self) -> None:
        """Stop the scheduler, the executor's workers and the server; close the datastores."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def call(self, make: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
        """Run ``make()`` in the stack's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_wrap(make), self._loop).result(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), which raises it in the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = self.store = await Store.connect(
            self.settings.database_url or "", settings=self.settings
        )
        redis = await RedisStore.connect(REDIS_URL, settings=self.settings, prefix=self._prefix)
        logs = self.settings.logs_dir
        executor = ProcessExecutor(logs_dir=logs, work_root=self.work, warm_workers=0)
        scheduler = Scheduler(store, redis, executor, self._resolve, logs_dir=logs)
        app = create_app(self.settings, store=store, redis=redis)
        app.state.scheduler_heartbeat = lambda: (
            "2026-01-01T00:00:00Z" if scheduler.is_leader else None
        )
        server, sock = _server(app)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        scheduling = asyncio.create_task(scheduler.run_forever())
        try:
            while not server.started:  # uvicorn exposes no start-up event to await
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            await self._seed(store)
            self._ready.set()
            await self._stop.wait()
        finally:
            scheduler.stop()
            await asyncio.wait_for(scheduling, 30)
            server.should_exit = True
            await asyncio.wait_for(serving, 30)
            sock.close()
            await flush_redis_prefix(redis.client, self._prefix)
            await redis.close()
            await store.close()

    async def _resolve(self, tenant: str, spec: DagSpec) -> tuple[Path, str]:
        return self._projects[spec.dag_id] / spec.source_file, sys.executable

    async def _register(self, store: Store, project: Path) -> DagSpec:
        spec = compile_project(project).spec
        await store.register_version(DEFAULT_TENANT, spec, created_by=ADMIN)
        self._projects[spec.dag_id] = project
        self.seeded.specs[spec.dag_id] = spec
        return spec

    async def _seed(self, store: Store) -> None:
        flaky = self.work / "flaky"
        flaky.mkdir(parents=True, exist_ok=True)
        (flaky / "dag.py").write_text(FLAKY_DAG)
        (flaky / "leoflow.yaml").write_text("dag_id: flaky\npython_version: '3.11'\n")
        for project in (REPO / "examples" / "hello", REPO / "examples" / "etl", flaky):
            await self._register(store, project)
        runs = [
            await store.create_run(DEFAULT_TENANT, dag_id, run_id=f"manual__seed_{dag_id}",
                                   triggered_by="test", triggering_user_name=ADMIN)
            for dag_id in ("hello", "etl", "flaky")
        ]  # fmt: skip
        for run in runs:
            self.seeded.runs[run.dag_id] = await wait_for_run(store, run)
        await store.create_variable(DEFAULT_TENANT, Variable("report_unit", "F", "unit of reports"))
        await store.create_pool(DEFAULT_TENANT, Pool("etl_pool", 4, "ETL workers"))
        await store.create_connection(
            DEFAULT_TENANT,
            Connection(
                "warehouse", "postgres", "the warehouse", "db.example.com", "etl", port=5432
            ),
        )


async def wait_for_run(store: Store, run: DagRun, timeout: float = 120) -> DagRun:
    """Poll the run until it is finished (the scheduler makes progress meanwhile)."""
    async with asyncio.timeout(timeout):
        while True:
            current = await store.get_run(run.tenant, run.dag_id, run.run_id)
            if current.state in TERMINAL_RUN_STATES:
                return current
            await asyncio.sleep(0.1)  # polling a condition with a deadline, not a fixed wait


async def _wrap(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


def _server(app: Any) -> tuple[uvicorn.Server, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config), sock
