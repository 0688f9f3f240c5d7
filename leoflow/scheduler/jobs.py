"""Turning a queued task instance into a ``TaskJob``, cheaply.

Everything here sits on the critical path between a task's end and its downstream's start, so
it avoids round trips: the upstream XCom values of a try come in ONE Redis MGET, and variables,
connections and pools are read at most once per ``ttl`` seconds per tenant (a changed variable
reaches the tasks started after that delay; Airflow reads them at task run time, which has the
same kind of window).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from leoflow.executors.base import TaskJob, TaskKey
from leoflow.spec import DagSpec, TaskSpec
from leoflow.store import redis_keys
from leoflow.store.api import Connection, DagRun, TaskInstance
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store

WorkerResolver = Callable[[str, DagSpec], Awaitable[tuple[Path, str]]]
"""(tenant, spec) -> (dag file to import, interpreter to run it with)."""

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values loaded on demand and kept ``ttl`` seconds (monotonic clock)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, (re)loaded when missing or older than ``ttl``."""
        hit = self._items.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = await load()
        self._items[key] = (now, value)
        return value

    def invalidate(self, key: K | None = None) -> None:
        """Forget one key (or everything)."""
        if key is None:
            self._items.clear()
        else:
            self._items.pop(key, None)


@dataclass
class Dispatch:
    """A task instance the scheduler just queued, with what building its job needs."""

    tenant: str
    ti: TaskInstance
    run: DagRun
    spec: DagSpec
    task: TaskSpec


class JobBuilder:
    """Builds ``TaskJob``s: worker location, upstream XComs, context, secrets env."""

    def __init__(
        self, store: Store, redis: RedisStore, resolve_worker: WorkerResolver, *, ttl: float
    ) -> None:
        self.store: Any = store  # the scheduler swaps in its leader connection
        self.redis = redis
        self._resolve_worker = resolve_worker
        self.secrets: TtlCache[str, dict[str, str]] = TtlCache(ttl)

    async def build(self, item: Dispatch) -> TaskJob:
        """The job for one queued try."""
        dag_file, python = await self._resolve_worker(item.tenant, item.spec)
        xcom = await self.pull_inputs(item)
        run, spec = item.run, item.spec
        params = {name: p.default for name, p in spec.params.items()}
        params.update(run.conf or {})
        context = {
            "logical_date": iso(run.logical_date),
            "data_interval_start": iso(run.data_interval_start),
            "data_interval_end": iso(run.data_interval_end),
            "run_after": iso(run.run_after),
            "params": params,
            "conf": run.conf or {},
            "owner": spec.owner,
        }
        if spec.runtime.image:
            # The Kubernetes executor runs the pinned version's own image.
            context["image"] = spec.runtime.image
        key = TaskKey(
            run.dag_id, run.run_id, item.ti.task_id, item.ti.map_index, item.ti.try_number
        )
        return TaskJob(
            key=key,
            task=item.task,
            dag_file=dag_file,
            python=python,
            xcom=xcom,
            context=context,
            env=await self.secrets_env(item.tenant),
            timeout_seconds=item.task.execution_timeout_seconds,
            tenant=item.tenant,
        )

    async def pull_inputs(self, item: Dispatch) -> dict[str, dict[str, Any]]:
        """The upstream values the task declared (absent ones left out), in one MGET."""
        refs = {(ref.task_id, ref.key) for ref in item.task.xcom_inputs.values()}
        for fan_in in item.task.fan_ins.values():
            refs.update((s.ref.task_id, s.ref.key) for s in fan_in.slots if s.ref is not None)
        if not refs:
            return {}
        ordered = sorted(refs)
        names = [
            redis_keys.xcom_value(
                self.redis.prefix, item.tenant, item.run.dag_id, item.run.run_id, task_id, -1, key
            )
            for task_id, key in ordered
        ]
        blobs = await self.redis.client.mget(names)
        xcom: dict[str, dict[str, Any]] = {}
        for (task_id, key), blob in zip(ordered, blobs, strict=True):
            if blob is not None:
                xcom.setdefault(task_id, {})[key] = json.loads(blob)
        return xcom

    async def secrets_env(self, tenant: str) -> dict[str, str]:
        """``AIRFLOW_VAR_*`` and ``AIRFLOW_CONN_*`` of the tenant (cached ``ttl`` seconds)."""

        async def load() -> dict[str, str]:
            env: dict[str, str] = {}
            variables = await self.store.list_variables(tenant, limit=10_000)
            for var in variables.items:
                env[f"AIRFLOW_VAR_{var.key.upper()}"] = var.value
            connections = await self.store.list_connections(tenant, limit=10_000)
            for conn in connections.items:
                env[f"AIRFLOW_CONN_{conn.conn_id.upper()}"] = connection_uri(conn)
            return env

        return await self.secrets.get(tenant, load)


def connection_uri(conn: Connection) -> str:
    """Airflow's URI form of a connection (``AIRFLOW_CONN_*``), extras as ``__extra__``."""
    from urllib.parse import quote, urlencode

    auth = ""
    if conn.login or conn.password:
        auth = quote(conn.login or "", safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        auth += "@"
    host = conn.host or ""
    if conn.port:
        host += f":{conn.port}"
    uri = f"{conn.conn_type.replace('_', '-')}://{auth}{host}"
    if conn.schema:
        uri += "/" + quote(conn.schema, safe="")
    if conn.extra:
        uri += "?" + urlencode({"__extra__": conn.extra})
    return uri


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a datetime, None stays None."""
    return value.isoformat() if value is not None else None
