"""Both embedded datastores of Leoflow Lite, owned by one process per home.

``Datastores(home)`` takes the home's single-instance lock (``$LEOFLOW_HOME/lite/lite.lock``),
starts the embedded Postgres and Redis, and stops exactly what it started: on ``stop()``, on
leaving its ``with`` block (so on Ctrl-C), on SIGTERM/SIGHUP when nobody else handles them, and
at interpreter exit. If the owner is killed outright, the kernel stops the servers (Linux parent
death signal), and whatever still survives is found and stopped by the next start.

    with Datastores(settings.home) as ds:
        pool = await asyncpg.create_pool(ds.database_url)
        redis = Redis.from_url(ds.redis_url)
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from leoflow.lite import procs
from leoflow.lite.lock import LiteAlreadyRunning, OwnerLock
from leoflow.lite.postgres import EmbeddedPostgres
from leoflow.lite.procs import DatastoreError
from leoflow.lite.redis import EmbeddedRedis

__all__ = [
    "DatastoreError",
    "Datastores",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "LiteAlreadyRunning",
    "StartupTimes",
    "lite_root",
]

log = logging.getLogger(__name__)
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def lite_root(home: Path) -> Path:
    """Where Lite keeps its datastores: ``$LEOFLOW_HOME/lite``."""
    return Path(home).expanduser().absolute() / "lite"


@dataclass
class StartupTimes:
    """Seconds spent starting each part (for the start-up panel and benchmarks)."""

    postgres: float = 0.0
    redis: float = 0.0
    postgres_initialised: bool = False


class Datastores:
    """The Lite home's lock plus its embedded Postgres and Redis.

    ``url``: where this Lite can be reached, shown to a second start on the same home (update
    it later with :meth:`publish_url`). ``redis_backend``, ``postgres_bin``, ``postgres_port``,
    ``redis_port``, ``postgres_template`` and ``die_with_owner`` are passed to the servers.
    ``handle_signals``: turn SIGTERM/SIGHUP into a clean stop when they have no handler yet.
    """

    def __init__(
        self,
        home: Path,
        *,
        url: str | None = None,
        redis_backend: str | None = None,
        postgres_bin: str | Path | None = None,
        postgres_port: int | None = None,
        redis_port: int | None = None,
        postgres_template: Path | None = None,
        die_with_owner: bool = True,
        handle_signals: bool = True,
    ) -> None:
        self.root = lite_root(home)
        self.url = url
        self.lock = OwnerLock(self.root / "lite.lock", "Leoflow Lite")
        self.postgres = EmbeddedPostgres(
            self.root,
            port=postgres_port,
            bin_dir=postgres_bin,
            template=postgres_template,
            die_with_owner=die_with_owner,
        )
        self.redis = EmbeddedRedis(
            self.root, port=redis_port, backend=redis_backend, die_with_owner=die_with_owner
        )
        self.times = StartupTimes()
        self._handle_signals = handle_signals
        self._previous_handlers: dict[int, Any] = {}
        self._owner_pid: int | None = None

    @property
    def database_url(self) -> str:
        """The asyncpg DSN of the embedded Postgres."""
        return self.postgres.dsn

    @property
    def redis_url(self) -> str:
        """The redis-py URL of the embedded Redis."""
        return self.redis.url

    def start(self) -> Datastores:
        """Lock the home, then start Postgres and Redis; on any failure stop what started."""
        procs.ensure_dir(self.root.parent, procs.RunAs("", os.geteuid(), os.getegid()), None)
        procs.ensure_dir(self.root, procs.run_as())
        self.lock.acquire(self.url)
        self._owner_pid = os.getpid()
        atexit.register(self.stop)
        self._install_signal_handlers()
        try:
            began = time.perf_counter()
            self.times.postgres_initialised = not (self.postgres.data_dir / "PG_VERSION").exists()
            self.postgres.start()
            self.times.postgres = time.perf_counter() - began
            began = time.perf_counter()
            self.redis.start()
            self.times.redis = time.perf_counter() - began
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded datastores up: postgres %.2fs%s, %s %.2fs",
            self.times.postgres,
            " (initdb)" if self.times.postgres_initialised else "",
            self.redis.backend,
            self.times.redis,
        )
        return self

    def publish_url(self, url: str) -> None:
        """Record where this Lite serves, for the message a second start prints."""
        self.url = url
        self.lock.update(url)

    def is_running(self) -> bool:
        """True while both servers are up."""
        return self.postgres.is_running() and self.redis.is_running()

    def stop(self) -> None:
        """Stop both servers and release the home (idempotent; only in the owning process)."""
        if self._owner_pid != os.getpid():
            return  # a forked child inherited this object; the servers are not its to stop
        errors: list[BaseException] = []
        for server in (self.redis, self.postgres):
            try:
                server.stop()
            except Exception as exc:  # stop the other one regardless
                log.exception("could not stop %s", type(server).__name__)
                errors.append(exc)
        self._restore_signal_handlers()
        self.lock.release()
        self._owner_pid = None
        atexit.unregister(self.stop)
        if errors:
            raise errors[0]

    def __enter__(self) -> Datastores:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Unwind like Ctrl-C does, so ``with`` blocks and finally clauses run and stop() is
        # called from normal code rather than from inside a signal handler.
        log.info("received %s; stopping the embedded datastores", signal.Signals(signum).name)
        raise SystemExit(128 + signum)
