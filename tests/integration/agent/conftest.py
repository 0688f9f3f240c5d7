"""Fixtures for the agent protocol: real Postgres, Redis, the gRPC service on loopback, the
real scheduler with the agent executor (every try is a local `leoflow agent` process)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from leoflow.compiler import compile_project
from leoflow.executors.agent import AgentExecutor
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.rpc.server import bind_agent_server
from leoflow.rpc.servicer import AgentServiceConfig, AgentServicer
from leoflow.rpc.tokens import AgentTokenIssuer
from leoflow.scheduler.model import DecideConfig
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

JWT_SECRET = "agent-test-secret-" + "x" * 32


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn = asyncio.run(create_test_database())
    yield dsn
    asyncio.run(drop_test_database(dsn))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", jwt_secret=JWT_SECRET, secret_key="k" * 32)


@pytest.fixture
async def store(pg_dsn: str, settings: Settings) -> AsyncIterator[Store]:
    await reset_database(pg_dsn)
    st = await Store.connect(pg_dsn, settings=settings, max_size=8)
    yield st
    await st.close()


@pytest.fixture
async def redis_store(settings: Settings) -> AsyncIterator[RedisStore]:
    prefix = redis_test_prefix()
    rs = await RedisStore.connect(REDIS_URL, settings=settings, prefix=prefix)
    yield rs
    await flush_redis_prefix(rs.client, prefix)
    await rs.close()


class Projects:
    """Writes DAG projects into a temp dir, compiles and registers them."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.store = store
        self.dirs: dict[str, Path] = {}

    async def register(self, dag_id: str, dag_py: str, yaml_extra: str = "") -> DagSpec:
        project = self.root / dag_id
        project.mkdir(parents=True, exist_ok=True)
        (project / "dag.py").write_text(dag_py)
        (project / "leoflow.yaml").write_text(f"dag_id: {dag_id}\n{yaml_extra}")
        spec = compile_project(project).spec
        await self.store.register_version("default", spec, created_by="test")
        self.dirs[spec.content_hash] = project
        return spec

    async def resolve(self, tenant: str, spec: DagSpec) -> tuple[Path, str]:
        return self.dirs[spec.content_hash] / spec.source_file, sys.executable

    async def dag_file(self, tenant: str, spec: DagSpec) -> str:
        return str(self.dirs[spec.content_hash] / spec.source_file)


@pytest.fixture
def projects(tmp_path: Path, store: Store) -> Projects:
    return Projects(tmp_path / "projects", store)


@dataclass
class AgentService:
    """The agent gRPC service on loopback, and what tests need to talk to it."""

    address: str
    servicer: AgentServicer
    issuer: AgentTokenIssuer
    logs_dir: Path
    wake: list[Callable[[], None]]

    def stub(self) -> tuple[grpc.aio.Channel, pb_grpc.AgentStub]:
        channel = grpc.aio.insecure_channel(self.address)
        return channel, pb_grpc.AgentStub(channel)


@pytest.fixture
async def agent_service(
    store: Store, redis_store: RedisStore, settings: Settings, projects: Projects
) -> AsyncIterator[AgentService]:
    wake: list[Callable[[], None]] = []
    config = AgentServiceConfig(
        logs_dir=settings.logs_dir,
        heartbeat_interval_seconds=0.5,
        allow_insecure_secrets=True,
        resolve_dag_file=projects.dag_file,
        on_change=lambda: [w() for w in wake] and None,
    )
    server, port, servicer = await bind_agent_server(
        store, redis_store, settings, host="127.0.0.1", port=0, config=config
    )
    yield AgentService(
        f"127.0.0.1:{port}", servicer, AgentTokenIssuer(JWT_SECRET), settings.logs_dir, wake
    )
    await server.stop(grace=1)


SchedulerFactory = Callable[..., Awaitable[tuple[Scheduler, AgentExecutor]]]


@pytest.fixture
async def agent_scheduler(
    tmp_path: Path,
    store: Store,
    redis_store: RedisStore,
    projects: Projects,
    agent_service: AgentService,
) -> AsyncIterator[SchedulerFactory]:
    """Starts the real scheduler with an agent executor; knobs for the fault tests."""
    running: list[tuple[Scheduler, asyncio.Task[None]]] = []

    async def start(
        *, heartbeat_timeout: float = 300, report_lost_workers: bool = True
    ) -> tuple[Scheduler, AgentExecutor]:
        executor = AgentExecutor(
            address=agent_service.address,
            issuer=agent_service.issuer,
            work_root=tmp_path,
            report_lost_workers=report_lost_workers,
        )
        sched = Scheduler(
            store,
            redis_store,
            executor,
            projects.resolve,
            logs_dir=agent_service.logs_dir,
            config=DecideConfig(heartbeat_timeout=timedelta(seconds=heartbeat_timeout)),
            sweep_seconds=0.25,
        )
        agent_service.wake.append(sched.wake)
        running.append((sched, asyncio.create_task(sched.run_forever())))
        return sched, executor

    yield start
    for sched, task in running:
        sched.stop()
        await asyncio.wait_for(task, 30)


async def _poll(
    check: Callable[[], Awaitable[object]], *, timeout: float = 60, what: str = "condition"
) -> object:
    """Await ``check()`` until it returns something truthy, bounded by a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def poll() -> Callable[..., Awaitable[object]]:
    """``await poll(check, timeout=..., what=...)``: wait for a condition with a deadline."""
    return _poll
