"""The Pro control plane in one process: API, scheduler, executor, agent service, metrics.

Every replica runs the same thing: the HTTP API (uvicorn), the agent gRPC service (task pods
report to whichever replica the Service routes them to), a Prometheus listener, and a scheduler
that campaigns for leadership through a Postgres advisory lock — exactly one replica decides and
dispatches. Replicas keep no state of their own: Postgres and Redis are external
(``LEOFLOW_DATABASE_URL``, ``LEOFLOW_REDIS_URL``), so any replica may die at any time.

Executors: ``kubernetes`` (one pod per try from the DAG's image, the default in the chart),
``process`` (a fresh process in the DAG's venv on this host) and ``agent`` (the pod's own
entrypoint, ``leoflow agent``, run as a local process against this replica's gRPC service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from leoflow.errors import LeoflowError
from leoflow.executors.base import Executor
from leoflow.settings import Settings
from leoflow.spec import DagSpec

log = logging.getLogger("leoflow.server")

EXECUTORS = ("kubernetes", "process", "agent")
IMAGE_DAG_DIR = Path("/opt/leoflow/dag")
IMAGE_DAG_PYTHON = "/opt/leoflow/dag-venv/bin/python"


class ControlPlaneError(LeoflowError):
    """The control plane cannot start with this configuration."""


@dataclass
class ControlPlane:
    """Runs one Pro replica until ``stop()`` (or SIGTERM/SIGINT when ``handle_signals``)."""

    settings: Settings
    executor_name: str = "kubernetes"
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    handle_signals: bool = True
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.executor_name not in EXECUTORS:
            raise ControlPlaneError(
                f"unknown executor {self.executor_name!r}",
                field="LEOFLOW_EXECUTOR",
                hint=f"use one of {', '.join(EXECUTORS)}",
            )
        for name, value in (
            ("LEOFLOW_DATABASE_URL", self.settings.database_url),
            ("LEOFLOW_REDIS_URL", self.settings.redis_url),
            ("LEOFLOW_AUTH_JWT_SECRET", self.settings.jwt_secret),
        ):
            if not value:
                raise ControlPlaneError(
                    f"{name} is not set",
                    field=name,
                    hint="Leoflow Pro needs external Postgres and Redis and a JWT secret; "
                    "for a one-host setup with embedded datastores use `leoflow lite`",
                )
        self._stop = asyncio.Event()
        self.scheduler = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    def stop(self) -> None:
        """Ask ``run`` to shut everything down."""
        self._stop.set()

    async def run(self) -> None:
        """Open the datastores, start every part, wait for stop, then close in reverse order."""
        import uvicorn

        from leoflow.rpc.server import AgentTLS, bind_agent_server, is_loopback
        from leoflow.scheduler.service import Scheduler
        from leoflow.scheduler.wiring import with_inline_http
        from leoflow.server.app import create_app
        from leoflow.server.metrics import Metrics
        from leoflow.store import RedisStore, Store

        s = self.settings
        store = await Store.connect(s.database_url or "", settings=s, migrate=True, max_size=20)
        redis = await RedisStore.connect(s.redis_url or "", settings=s)
        metrics = Metrics()
        servers: list[uvicorn.Server] = []
        grpc_server = None
        scheduler_task = None
        serving: list[asyncio.Task[None]] = []
        try:
            grpc_server, self.grpc_port, servicer = await bind_agent_server(
                store,
                redis,
                s,
                host=s.host,
                port=s.grpc_port,
                tls=AgentTLS.from_env(self.env) if self.env.get("LEOFLOW_AGENT_TLS_CERT") else None,
            )
            executor = with_inline_http(
                self._executor(servicer.issuer, is_loopback(s.host), redis),
                store,
                logs_dir=s.logs_dir,
            )
            resolve = self._resolver()
            scheduler = Scheduler(store, redis, executor, resolve, logs_dir=s.logs_dir)
            self.scheduler = scheduler
            servicer.config.on_change = scheduler.wake
            if self.executor_name != "kubernetes":

                async def dag_file(tenant: str, spec: DagSpec) -> str:
                    return str((await resolve(tenant, spec))[0])

                servicer.config.resolve_dag_file = dag_file
            app = create_app(s, store=store, redis=redis, metrics=metrics)
            app.state.scheduler = scheduler
            app.state.scheduler_heartbeat = self._scheduler_heartbeat
            api = uvicorn.Server(
                uvicorn.Config(
                    app, host=s.host, port=s.port, log_level=self.log_level, lifespan="on"
                )
            )
            servers.append(api)
            servers.append(self._metrics_server(metrics))
            serving = [asyncio.create_task(srv.serve()) for srv in servers]
            scheduler_task = asyncio.create_task(scheduler.run_forever())
            self._scheduler_task = scheduler_task
            if self.handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, self.stop)
            while not api.started and not any(t.done() for t in serving):
                await asyncio.sleep(0.02)
            self.http_port = _bound_port(api) or s.port
            log.info("control plane up: http %s, grpc %s", self.http_port, self.grpc_port)
            stopper = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stopper, *serving], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            scheduler.stop()
        finally:
            for srv in servers:
                srv.should_exit = True
            if serving:
                await asyncio.wait(serving, timeout=30)
            if scheduler_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(scheduler_task, 30)
            if grpc_server is not None:
                await grpc_server.stop(5)
            await asyncio.sleep(0)
            await redis.close()
            await store.close()

    def _scheduler_heartbeat(self) -> str | None:
        # Every replica's scheduler is alive (leading or campaigning): that is a healthy replica.
        task = getattr(self, "_scheduler_task", None)
        if task is None or task.done():
            return None
        return datetime.now(UTC).isoformat()

    def _executor(self, issuer: object, loopback: bool, redis: object) -> Executor:
        s = self.settings
        if self.executor_name == "kubernetes":
            from leoflow.executors.agent import AgentTokens
            from leoflow.executors.kubernetes import KubernetesExecutor, options_from_env

            return AgentTokens(KubernetesExecutor(**options_from_env(self.env)), issuer)  # type: ignore[arg-type]
        if self.executor_name == "agent":
            from leoflow.executors.agent import AgentExecutor

            host = "127.0.0.1" if loopback or s.host in ("0.0.0.0", "::") else s.host
            return AgentExecutor(address=f"{host}:{self.grpc_port}", issuer=issuer)  # type: ignore[arg-type]
        from leoflow.executors.process import ProcessExecutor
        from leoflow.scheduler.wiring import redis_log_publisher

        return ProcessExecutor(
            logs_dir=s.logs_dir,
            worker_mode="fork",
            on_log=redis_log_publisher(redis),  # type: ignore[arg-type]
        )

    def _resolver(self):  # type: ignore[no-untyped-def]
        if self.executor_name == "kubernetes":

            async def in_image(tenant: str, spec: DagSpec) -> tuple[Path, str]:
                # Paths inside the DAG's image (docker/runtime/Dockerfile); pods resolve them.
                return IMAGE_DAG_DIR / spec.source_file, IMAGE_DAG_PYTHON

            return in_image
        from leoflow.lite.bundles import Bundles
        from leoflow.lite.venvs import VenvPool

        bundles = Bundles(self.settings.home / "bundles")
        venvs = VenvPool(self.settings.home)

        async def on_host(tenant: str, spec: DagSpec) -> tuple[Path, str]:
            bundle = await asyncio.to_thread(bundles.ensure_for_spec, spec, tenant)
            runtime = spec.runtime
            python = await venvs.ensure(spec.dag_id, runtime.python_version, runtime.dependencies)
            return bundle / spec.source_file, python

        return on_host

    def _metrics_server(self, metrics: object):  # type: ignore[no-untyped-def]
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        from leoflow.server.metrics import metrics_endpoint

        app = Starlette(routes=[Route("/metrics", metrics_endpoint)])
        app.state.metrics = metrics
        return uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.settings.host,
                port=self.settings.metrics_port,
                log_level="warning",
                lifespan="off",
            )
        )


def _bound_port(server: object) -> int | None:
    for srv in getattr(server, "servers", []) or []:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    return None
