"""``leoflow lite``: the whole control plane on one host, in one asyncio process.

Start order: take the home (single-instance lock, checked before anything else), check the
port, start the embedded Postgres and Redis (``Datastores``), migrate, load or create the
secrets, ensure the admin, serve the HTTP app with uvicorn in-process, run the scheduler with
the process executor, register the workspace's projects, then watch them. ``stop()`` (Ctrl-C,
SIGTERM) undoes it in reverse: watcher, scheduler (which stops its workers), HTTP server,
connections, datastores.

The datastores are started from the loop's own thread on purpose: their servers get a
parent-death signal tied to the starting *thread*, so a pool thread would take them down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from leoflow.errors import LeoflowError
from leoflow.lite.bundles import Bundles
from leoflow.lite.datastores import Datastores, lite_root
from leoflow.lite.lock import OwnerLock
from leoflow.lite.panel import RunReporter, startup_panel
from leoflow.lite.reload import Registrar, Reloader
from leoflow.lite.secrets import ensure_secrets
from leoflow.lite.venvs import VenvPool
from leoflow.lite.workspace import collect_projects, ensure_workspace
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store.api import DEFAULT_TENANT

log = logging.getLogger("leoflow.lite")

LITE_INSTANCE_NAME = "Leoflow Lite"
DEFAULT_PORT = 8088
_STOP_TIMEOUT = 8.0
_REGISTER_CONCURRENCY = 2


class LiteError(LeoflowError):
    """Lite cannot start here (port taken, home not writable, bad option)."""


@dataclass
class LiteOptions:
    """How to run Lite; the defaults are what ``leoflow lite`` uses."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    executor: str = "process"
    projects: list[Path] = field(default_factory=list)
    create_workspace: bool = True
    redis_backend: str | None = None
    postgres_template: Path | None = None
    handle_signals: bool = True


@dataclass
class StartupReport:
    """Seconds to each milestone of the last start (the panel and benchmarks read it)."""

    datastores: float = 0.0
    migrated: float = 0.0
    serving: float = 0.0
    registered: float = 0.0
    first_run: bool = False


class LiteSupervisor:
    """Owns everything ``leoflow lite`` starts; ``await run()`` until ``stop()``."""

    def __init__(
        self, settings: Settings, options: LiteOptions, console: Console | None = None
    ) -> None:
        if options.executor != "process":
            raise LiteError(
                f"unknown executor {options.executor!r} for Lite",
                field="--executor",
                hint="Lite runs tasks with the process executor: use --executor process",
            )
        self.options = options
        self.settings = dataclasses.replace(
            settings, host=options.host, port=options.port, executor=options.executor
        )
        self.console = console or Console()
        self.home = Path(self.settings.home).expanduser().absolute()
        self.url = f"http://{_url_host(options.host)}:{options.port}"
        # Thread-safe milestones (tests and embedders run Lite in a thread of their own):
        # ``up`` once the workspace is registered and the panel printed, ``down`` at the end.
        self.up = threading.Event()
        self.down = threading.Event()
        self.admin_username = self.settings.bootstrap_username
        self.admin_password: str | None = None
        self.report = StartupReport()
        self.datastores: Datastores | None = None
        self.store: Any = None
        self.redis: Any = None
        self.scheduler: Any = None
        self.registrar: Registrar | None = None
        self.reloader: Reloader | None = None
        self.app: Any = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: Any = None

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to stop everything and return (from the loop's thread or a signal)."""
        self._stop.set()

    def stop_threadsafe(self) -> None:
        """``stop()`` from another thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop.set)
        else:  # not running yet: run() will stop at once
            self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until ``stop()``, then stop everything started."""
        began = time.perf_counter()
        self._loop = asyncio.get_running_loop()
        self._install_signals()
        try:
            await self._start_unless_stopped(began)
            await self._stop.wait()
        finally:
            try:
                await self._shutdown()
            finally:
                self.down.set()

    async def _start_unless_stopped(self, began: float) -> None:
        # A stop during start-up (Ctrl-C while the workspace compiles) must not wait for it.
        starting = asyncio.ensure_future(self._start(began))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()  # raises what made the start fail

    async def _start(self, began: float) -> None:
        check_home_writable(self.home)
        check_not_running(self.home)
        sock = bind_port(self.options.host, self.options.port)
        try:
            self._start_datastores()
        except BaseException:
            sock.close()
            raise
        self.report.datastores = time.perf_counter() - began
        await self._open_store()
        self.report.migrated = time.perf_counter() - began
        await self._serve(sock)
        self.report.serving = time.perf_counter() - began
        self.datastores.publish_url(self.url)  # type: ignore[union-attr]
        self._start_scheduler()
        await self._register_workspace()
        self.report.registered = time.perf_counter() - began
        self._print_panel(self.report.registered)
        self._spawn(self.reloader.run(self._stop), "reloader")  # type: ignore[union-attr]
        self.up.set()

    def _start_datastores(self) -> None:
        self.datastores = Datastores(
            self.home,
            url=self.url,
            redis_backend=self.options.redis_backend,
            postgres_template=self.options.postgres_template,
            handle_signals=False,
        )
        self.report.first_run = not (self.datastores.postgres.data_dir / "PG_VERSION").exists()
        with self.console.status("starting the embedded Postgres and Redis"):
            self.datastores.start()

    async def _open_store(self) -> None:
        from leoflow.store import RedisStore, Store

        ds = self.datastores
        assert ds is not None
        secrets = ensure_secrets(
            self.home, jwt_secret=self.settings.jwt_secret, secret_key=self.settings.secret_key
        )
        self.settings = dataclasses.replace(
            self.settings,
            database_url=ds.database_url,
            redis_url=ds.redis_url,
            jwt_secret=secrets.jwt_secret,
            secret_key=secrets.secret_key,
        )
        self.store = await Store.connect(ds.database_url, settings=self.settings, migrate=True)
        self.redis = await RedisStore.connect(ds.redis_url, settings=self.settings)
        user, password = await self.store.bootstrap_admin(self.settings)
        self.admin_username = user.username
        self.admin_password = password

    async def _serve(self, sock: socket.socket) -> None:
        import uvicorn

        from leoflow.server.app import create_app

        app = create_app(self.settings, store=self.store, redis=self.redis)
        app.state.instance_name = LITE_INSTANCE_NAME
        app.state.edition = "lite"
        app.state.scheduler_heartbeat = self._scheduler_heartbeat
        self.app = app
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
            server_header=False,
        )
        server = _quiet_server(config)
        self._server = server
        task = self._spawn(server.serve(sockets=[sock]), "http")
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise LiteError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    def _start_scheduler(self) -> None:
        from leoflow.executors.process import ProcessExecutor
        from leoflow.scheduler.service import Scheduler
        from leoflow.scheduler.wiring import redis_log_publisher, with_inline_http

        logs_dir = self.settings.logs_dir
        work_root = self.home / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        workers = ProcessExecutor(
            logs_dir=logs_dir,
            work_root=work_root,
            worker_mode="fork",
            on_log=redis_log_publisher(self.redis),
        )
        executor = with_inline_http(workers, self.store, logs_dir=logs_dir)
        self.bundles = Bundles(self.home / "bundles")
        self.bundles.prune_staging()
        self.venvs = VenvPool(self.home, self.console)
        self.scheduler = Scheduler(
            self.store,
            self.redis,
            executor,
            self.resolve_worker,
            logs_dir=logs_dir,
        )
        self._scheduler_task = self._spawn(self.scheduler.run_forever(), "scheduler")
        reporter = RunReporter(self.store, self.console)
        self._spawn(reporter.run(self._stop), "run reporter")

    async def resolve_worker(self, tenant: str, spec: DagSpec) -> tuple[Path, str]:
        """(tenant, spec) -> (the dag file in the version's bundle, the DAG's venv python)."""
        bundle = await asyncio.to_thread(self.bundles.ensure_for_spec, spec, tenant)
        runtime = spec.runtime
        python = await self.venvs.ensure(spec.dag_id, runtime.python_version, runtime.dependencies)
        return bundle / spec.source_file, python

    async def _register_workspace(self) -> None:
        workspace = Path(self.settings.workspace).expanduser().absolute()
        if self.options.create_workspace:
            copied = ensure_workspace(workspace)
            if copied:
                self.console.print(
                    f"created the workspace {workspace} with {len(copied)} example projects"
                )
        projects = collect_projects(workspace, self.options.projects)
        self.registrar = Registrar(
            self.store, self.bundles, self.venvs, self.console, tenant=DEFAULT_TENANT
        )
        self.reloader = Reloader(self.registrar, workspace, self.options.projects)
        limit = asyncio.Semaphore(_REGISTER_CONCURRENCY)

        async def one(root: Path) -> None:
            async with limit:
                await self.registrar.register(root, quiet=True)  # type: ignore[union-attr]

        await asyncio.gather(*(one(p) for p in projects))

    def _print_panel(self, seconds: float) -> None:
        from leoflow.server.ui.bundle import load_ui_bundle

        assert self.registrar is not None
        self.console.print(
            startup_panel(
                url=self.url,
                username=self.admin_username,
                password=self.admin_password,
                projects=self.registrar.projects.values(),
                executor=self.settings.executor,
                home=self.home,
                workspace=Path(self.settings.workspace).expanduser(),
                seconds=seconds,
                password_from_env=bool(self.settings.bootstrap_password),
                ui_installed=load_ui_bundle(self.home) is not None,
            )
        )

    def _scheduler_heartbeat(self) -> str | None:
        task = getattr(self, "_scheduler_task", None)
        if task is None or task.done() or not getattr(self.scheduler, "is_leader", False):
            return None
        return datetime.now(UTC).isoformat()

    async def _shutdown(self) -> None:
        self._stop.set()
        if self.reloader is not None:
            await _quietly(self.reloader.drain(), 2.0)
        if self.scheduler is not None:
            self.scheduler.stop()
            await _quietly(asyncio.shield(self._scheduler_task), _STOP_TIMEOUT)
        if self._server is not None:
            self._server.should_exit = True
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for closing in (self.redis, self.store):
            if closing is not None:
                await _quietly(closing.close(), 3.0)
        if hasattr(self, "venvs"):
            self.venvs.close()
        if self.datastores is not None:
            self.datastores.stop()
        self._restore_signals()

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"lite:{name}")
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s crashed; stopping Lite", task.get_name(), exc_info=exc)
            self.console.print(f"[bold red]{task.get_name()} crashed:[/] {exc}")
            self.stop()

    def _install_signals(self) -> None:
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            return
        self.console.print(f"\n[dim]{sig.name}: stopping Leoflow Lite...[/]")
        self.stop()

    def _restore_signals(self) -> None:
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def _quiet_server(config: Any) -> Any:
    """uvicorn's Server without its own signal handling (the supervisor owns the signals)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


async def _quietly(awaitable: Awaitable[Any], timeout: float) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(awaitable, timeout)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "localhost"
    return f"[{host}]" if ":" in host else host


# -- pre-flight checks -----------------------------------------------------------------------


def check_home_writable(home: Path) -> None:
    """Create ``home`` if needed and make sure this user can write in it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise LiteError(
            f"the Leoflow home cannot be created or written to: {exc.strerror}",
            path=str(home),
            field="LEOFLOW_HOME",
            hint="fix its permissions, or point LEOFLOW_HOME at a folder you own "
            "(e.g. LEOFLOW_HOME=~/.leoflow)",
        ) from exc


def check_not_running(home: Path) -> None:
    """Raise LiteAlreadyRunning (naming pid and URL) when another Lite owns this home."""
    root = lite_root(home)
    if not (root / "lite.lock").exists():
        return
    lock = OwnerLock(root / "lite.lock", "Leoflow Lite")
    lock.acquire()  # raises LiteAlreadyRunning when held
    lock.release()


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a LiteError naming who holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            holder = port_holder(port)
            who = f" by {holder}" if holder else ""
            raise LiteError(
                f"port {port} on {host} is already in use{who}",
                field="--port",
                hint=f"stop that process, or run on another port: leoflow lite --port {port + 1}",
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise LiteError(
                f"cannot listen on {host}: no such address on this machine",
                field="--host",
                hint="use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
            ) from None
        raise LiteError(f"cannot listen on {host}:{port}: {exc.strerror}", field="--port") from exc
    sock.setblocking(False)
    return sock


def port_holder(port: int) -> str | None:
    """``name (pid N)`` of the process listening on ``port``, when the OS tells us."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "another process (its owner is hidden from this user)"
            try:
                proc = psutil.Process(conn.pid)
                return f"{proc.name()} (pid {conn.pid}: {' '.join(proc.cmdline()[:4])})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None
