"""Fixtures for the scheduler service: real Postgres, Redis, process executor and compiler."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
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


@pytest.fixture
async def scheduler(
    tmp_path: Path, store: Store, redis_store: RedisStore, projects: Projects
) -> AsyncIterator[Scheduler]:
    logs = tmp_path / "logs"
    executor = ProcessExecutor(logs_dir=logs, work_root=tmp_path)
    sched = Scheduler(store, redis_store, executor, projects.resolve, logs_dir=logs)
    task = asyncio.create_task(sched.run_forever())
    yield sched
    sched.stop()
    await asyncio.wait_for(task, 30)
