"""EVERY Redis key and channel Leoflow uses, built in one place.

Layout: ``<prefix>:<kind>:<segment>:...``. The prefix (default ``leoflow``) lets several
installations or test runs share one Redis. Each segment is percent-encoded (only letters,
digits and ``_.-~`` stay as they are), so a run_id such as ``manual__2024-01-01T00:00:00+00:00``
cannot collide with another key or act as a glob in ``SCAN MATCH``.

| kind       | type    | holds                                                  | lifetime   |
|------------|---------|--------------------------------------------------------|------------|
| xcom       | string  | one XCom value (JSON)                                  | xcom TTL   |
| log        | channel | live log lines of one try (JSON lines)                 | pub/sub    |
| sched      | channel | "something changed" wake-ups for the scheduler         | pub/sub    |
| ratelimit  | string  | a login rate-limit counter                             | its window |
"""

from __future__ import annotations

from urllib.parse import quote

DEFAULT_PREFIX = "leoflow"

XCOM = "xcom"
LOG = "log"
SCHEDULER = "sched"
RATE_LIMIT = "ratelimit"


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _key(prefix: str, kind: str, *segments: object) -> str:
    return ":".join([prefix, kind, *(_seg(s) for s in segments)])


def xcom_value(
    prefix: str, tenant: str, dag_id: str, run_id: str, task_id: str, map_index: int, key: str
) -> str:
    """The string key holding one XCom value."""
    return _key(prefix, XCOM, tenant, dag_id, run_id, task_id, map_index, key)


def xcom_pattern(prefix: str, tenant: str, dag_id: str, run_id: str | None = None) -> str:
    """A SCAN MATCH pattern over every XCom value of a run (or of a DAG when run_id is None)."""
    parts = [tenant, dag_id] + ([run_id] if run_id is not None else [])
    return _key(prefix, XCOM, *parts) + ":*"


def log_channel(
    prefix: str,
    tenant: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
) -> str:
    """The pub/sub channel carrying live log lines of one try."""
    return _key(prefix, LOG, tenant, dag_id, run_id, task_id, map_index, try_number)


def scheduler_wakeup(prefix: str) -> str:
    """The pub/sub channel that wakes the scheduler (a task finished, a run was triggered)."""
    return _key(prefix, SCHEDULER, "wakeup")


def login_rate_limit(prefix: str, tenant: str, subject: str) -> str:
    """The counter limiting login attempts of one subject (username or client address)."""
    return _key(prefix, RATE_LIMIT, "login", tenant, subject)
