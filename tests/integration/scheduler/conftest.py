"""Fixtures for the scheduler service: real Postgres, Redis, process executor and compiler."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from leoflow.compiler import compile_project
from leoflow.executors.process import ProcessExecutor
from leoflow.scheduler.service import Scheduler
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store import RedisStore, Store
from leoflow.store.testing import (
    REDIS_URL,
    create_test_database,
    drop_test_database,
    flush_redis_prefix,
    redis_test_prefix,
    reset_database,
)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn = asyncio.run(create_test_database())
    yield dsn
    asyncio.run(drop_test_database(dsn))


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[Store]:
    await reset_database(pg_dsn)
    st = await Store.connect(pg_dsn, settings=Settings(secret_key="k" * 32), max_size=5)
    yield st
    await st.close()


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    prefix = redis_test_prefix()
    rs = await RedisStore.connect(REDIS_URL, settings=Settings(), prefix=prefix)
    yield rs
    await flush_redis_prefix(rs.client, prefix)
    await rs.close()


class Projects:
    """Writes DAG projects into a temp dir, compiles and registers them."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.store = store
        self.dirs: dict[str, Path] = {}

    async def register(self, dag_id: str, dag_py: str) -> DagSpec:
        project = self.root / dag_id
        project.mkdir(parents=True, exist_ok=True)
        (project / "dag.py").write_text(dag_py)
        (project / "leoflow.yaml").write_text(f"dag_id: {dag_id}\n")
        spec = compile_project(project).spec
        await self.store.register_version("default", spec, created_by="test")
        self.dirs[spec.content_hash] = project
        return spec

    async def resolve(self, tenant: str, spec: DagSpec) -> tuple[Path, str]:
        return self.dirs[spec.content_hash] / spec.source_file, sys.executable


@pytest.fixture
async def projects(tmp_path: Path, store: Store) -> Projects:
    return Projects(tmp_path / "projects", store)


@pytest.fixture(params=["prestart", "fork"])
async def scheduler(
    tmp_path: Path,
    store: Store,
    redis_store: RedisStore,
    projects: Projects,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Scheduler]:
    logs = tmp_path / "logs"
    executor = ProcessExecutor(logs_dir=logs, work_root=tmp_path, worker_mode=request.param)
    sched = Scheduler(store, redis_store, executor, projects.resolve, logs_dir=logs)
    task = asyncio.create_task(sched.run_forever())
    yield sched
    sched.stop()
    await asyncio.wait_for(task, 30)


CHILD_MAIN = Path(__file__).with_name("sched_child_main.py")


class ChildScheduler:
    """A scheduler running in its own process (so that it can be kill -9'd)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.lines: list[str] = []
        self.leading = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if line == f"leader {self.name}":
                self.leading.set()

    async def wait_leader(self, timeout: float = 30) -> None:
        """Until this process says it took the lead (bounded)."""
        try:
            await asyncio.wait_for(self.leading.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} never led: {self.lines[-20:]}") from None

    async def kill9(self) -> None:
        """SIGKILL the scheduler process (its workers die with it) and reap it."""
        self.proc.kill()
        await self.proc.wait()
        await self._reader

    async def close(self) -> None:
        """Stop it gracefully if it still runs (SIGKILL after 20 s)."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


@pytest.fixture(params=["prestart", "fork"])
async def child_schedulers(
    tmp_path: Path,
    pg_dsn: str,
    redis_store: RedisStore,
    projects: Projects,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[str], Awaitable[ChildScheduler]]]:
    """Factory: start a scheduler process named ``name`` on the test's database and Redis
    (with each worker mode of the process executor)."""
    import json
    import os

    children: list[ChildScheduler] = []
    root = Path(__file__).resolve().parents[3]

    async def start(name: str) -> ChildScheduler:
        dags = tmp_path / f"dags-{name}.json"
        dags.write_text(
            json.dumps({h: str(d / "dag.py") for h, d in projects.dirs.items()}), encoding="utf-8"
        )
        workdir = tmp_path / f"work-{name}"
        workdir.mkdir()
        env = dict(os.environ, PYTHONPATH=str(root))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD_MAIN),
            pg_dsn,
            redis_store.prefix,
            str(workdir),
            str(dags),
            name,
            request.param,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        child = ChildScheduler(name, proc)
        children.append(child)
        return child

    yield start
    for child in children:
        await child.close()
