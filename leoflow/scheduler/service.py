"""The scheduler's thin async shell around the pure decision core.

One ``tick``: load a snapshot from the store, ``decide`` (pure), apply the actions in ONE
transaction as guarded updates (a lost race is skipped), then, after commit, hand the queued
task instances to the executor and kill the workers the decisions asked to stop. Worker events
come back through ``on_event``: each is one guarded transition (plus its XCom values), after
which the loop is woken at once, so a finished task's downstream is queued in the same
millisecond range rather than on the next sweep. A periodic sweep is only a safety net (and
what creates scheduled runs).

Only the leader ticks: ``run_forever`` holds a Postgres session-level advisory lock on a
dedicated connection; when that connection dies the lock is gone and the process re-campaigns.
Several schedulers may run; exactly one decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from leoflow.errors import Conflict, LeoflowError, NotFound
from leoflow.executors.base import Executor, TaskEvent, TaskJob, TaskKey
from leoflow.scheduler.decide import decide
from leoflow.scheduler.events import record_task_event
from leoflow.scheduler.model import (
    Action,
    CreateRun,
    DagRunSnap,
    DagSnap,
    DecideConfig,
    FinishRun,
    QueueTask,
    RunType,
    Snapshot,
    StartRun,
    TaskInstanceAction,
    TaskInstanceSnap,
)
from leoflow.scheduler.states import DagRunState as SDR
from leoflow.scheduler.states import TaskInstanceState as STI
from leoflow.scheduler.timetable import DataInterval
from leoflow.spec import DagSpec, TaskSpec
from leoflow.store.api import (
    Connection,
    DagRun,
    DagRunState,
    DagRunType,
    TaskInstance,
    TIState,
)
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store

log = logging.getLogger("leoflow.scheduler")

LEADER_LOCK_KEY = 0x4C656F466C6F77
"""The advisory lock that makes one scheduler the leader ("LeoFlow" in ASCII)."""

WorkerResolver = Callable[[str, DagSpec], Awaitable[tuple[Path, str]]]
"""(tenant, spec) -> (dag file to import, interpreter to run it with)."""


def utcnow() -> datetime:
    """The wall clock in UTC (injected so tests can drive time)."""
    return datetime.now(UTC)


def to_store_state(state: STI) -> TIState | None:
    """The decision core's NONE is the store's NULL ("no status")."""
    return None if state is STI.NONE else TIState(state.value)


def from_store_state(state: TIState | None) -> STI:
    """The store's NULL is the decision core's NONE."""
    return STI.NONE if state is None else STI(state.value)


@dataclass
class _Dispatch:
    tenant: str
    ti: TaskInstance
    run: DagRun
    spec: DagSpec
    task: TaskSpec


@dataclass
class _Index:
    """Lookups that turn the core's natural keys back into store rows for one tenant."""

    tenant: str
    runs: dict[tuple[str, str], DagRun] = field(default_factory=dict)
    tis: dict[tuple[str, str, str, int], TaskInstance] = field(default_factory=dict)
    specs: dict[tuple[str, str], DagSpec] = field(default_factory=dict)
    versions: dict[str, UUID] = field(default_factory=dict)


@dataclass
class TickResult:
    """What one tick did (for tests, logs and metrics)."""

    actions: int = 0
    applied: int = 0
    dispatched: int = 0


class Scheduler:
    """Feeds the pure core, applies its actions, dispatches, and reacts to worker events."""

    def __init__(
        self,
        store: Store,
        redis: RedisStore,
        executor: Executor,
        resolve_worker: WorkerResolver,
        *,
        logs_dir: Path,
        clock: Callable[[], datetime] = utcnow,
        config: DecideConfig | None = None,
        sweep_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.redis = redis
        self.executor = executor
        self._resolve_worker = resolve_worker
        self._logs_dir = logs_dir
        self._clock = clock
        self._config = config or DecideConfig()
        self._sweep_seconds = sweep_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._inflight: dict[TaskKey, tuple[str, UUID, TaskSpec]] = {}
        self._last_interval: dict[tuple[str, str], DataInterval | None] = {}
        self._tick_lock = asyncio.Lock()
        self.is_leader = False

    # -- the loop ------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a tick as soon as possible (a task finished, a run was triggered)."""
        self._wake.set()

    def stop(self) -> None:
        """Make ``run_forever`` return after the current tick."""
        self._stop.set()
        self._wake.set()

    async def run_forever(self) -> None:
        """Campaign for leadership, then tick on every wake-up and every sweep interval."""
        await self.executor.start(self.on_event)
        try:
            while not self._stop.is_set():
                async with self._leadership() as leading:
                    if not leading:
                        await self._wait(self._sweep_seconds * 5)
                        continue
                    await self._lead()
        finally:
            await self.executor.stop()

    async def _lead(self) -> None:
        while not self._stop.is_set() and self.is_leader:
            try:
                await self.tick()
            except LeoflowError as exc:  # the database went away: keep going, say so
                log.warning("scheduler tick failed: %s", exc)
            except Exception:
                log.exception("scheduler tick crashed; continuing")
            await self._wait(self._sweep_seconds)
            if not await self._still_leader():
                break

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    @contextlib.asynccontextmanager
    async def _leadership(self):  # type: ignore[no-untyped-def]
        self._leader_conn = None
        try:
            conn = await self.store.pool.acquire()
        except Exception as exc:
            log.warning("cannot reach the database to campaign for leadership: %s", exc)
            yield False
            return
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY)
            self.is_leader = bool(got)
            self._leader_conn = conn
            if got:
                log.info("this scheduler is the leader")
            yield bool(got)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(Exception):
                await self.store.pool.release(conn)

    async def _still_leader(self) -> bool:
        conn = self._leader_conn
        if conn is None:
            return False
        try:
            # The lock lives as long as this session: a live session means we still lead.
            await conn.fetchval("SELECT 1", timeout=5)
        except Exception:
            self.is_leader = False
            return False
        return True

    # -- one tick ------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> TickResult:
        """Load, decide, apply in one transaction, dispatch after commit."""
        async with self._tick_lock:
            now = now or self._clock()
            result = TickResult()
            for snapshot, index in await self._load(now):
                actions = decide(snapshot)
                result.actions += len(actions)
                if not actions:
                    continue
                dispatch, kills, applied = await self._apply(actions, index, now)
                result.applied += applied
                for key, reason in kills:
                    await self.executor.cancel(key, reason)
                result.dispatched += await self._dispatch(dispatch)
            return result

    async def _load(self, now: datetime) -> list[tuple[Snapshot, _Index]]:
        active = await self.store.list_active_runs(limit=10_000)
        schedulable = await self.store.list_schedulable_dags()
        tenants = {r.tenant for r in active} | {d.tenant for d in schedulable}
        tis_by_run: dict[int, list[TaskInstance]] = {}
        if active:
            for ti in await self.store.list_run_tis([r.id for r in active]):
                tis_by_run.setdefault(ti.dag_run_id, []).append(ti)
        out = []
        for tenant in sorted(tenants):
            index = _Index(tenant)
            dags: dict[str, tuple[DagSpec, bool]] = {}
            for dag in (d for d in schedulable if d.tenant == tenant):
                if dag.current_version_id is not None:
                    dags[dag.dag_id] = (await self.store.get_spec(dag.current_version_id), False)
                    index.versions[dag.dag_id] = dag.current_version_id
            runs_by_dag: dict[str, list[DagRunSnap]] = {}
            for run in (r for r in active if r.tenant == tenant):
                spec = await self.store.get_spec(run.dag_version_id)
                index.runs[(run.dag_id, run.run_id)] = run
                index.specs[(run.dag_id, run.run_id)] = spec
                if run.dag_id not in dags:
                    dag = await self.store.get_dag(tenant, run.dag_id)
                    current = dag.current_version_id or run.dag_version_id
                    dags[run.dag_id] = (await self.store.get_spec(current), dag.is_paused)
                    index.versions[run.dag_id] = current
                tis = tis_by_run.get(run.id, [])
                for ti in tis:
                    index.tis[(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)] = ti
                runs_by_dag.setdefault(run.dag_id, []).append(_run_snap(run, spec, tis))
            snaps = []
            for dag_id, (spec, paused) in sorted(dags.items()):
                last = await self._last_automated_interval(tenant, dag_id)
                snaps.append(
                    DagSnap(
                        spec=spec,
                        tenant=tenant,
                        is_paused=paused,
                        last_automated_data_interval=last,
                        runs=tuple(runs_by_dag.get(dag_id, ())),
                    )
                )
            pools = {
                p.name: p.slots for p in (await self.store.list_pools(tenant, limit=1000)).items
            }
            out.append(
                (Snapshot(now=now, dags=tuple(snaps), pools=pools, config=self._config), index)
            )
        return out

    async def _last_automated_interval(self, tenant: str, dag_id: str) -> DataInterval | None:
        key = (tenant, dag_id)
        if key not in self._last_interval:
            page = await self.store.list_runs(
                tenant, dag_id, run_types=[DagRunType.SCHEDULED], limit=1, order_by="-run_after"
            )
            run = page.items[0] if page.items else None
            self._last_interval[key] = (
                DataInterval(run.data_interval_start, run.data_interval_end)
                if run and run.data_interval_start and run.data_interval_end
                else None
            )
        return self._last_interval[key]

    async def _apply(
        self, actions: Sequence[Action], index: _Index, now: datetime
    ) -> tuple[list[_Dispatch], list[tuple[TaskKey, str]], int]:
        dispatch: list[_Dispatch] = []
        kills: list[tuple[TaskKey, str]] = []
        applied = 0
        async with self.store.transaction() as tx:
            for action in actions:
                if isinstance(action, TaskInstanceAction):
                    ok = await self._apply_ti(tx, action, index, now, dispatch, kills)
                else:
                    ok = await self._apply_run(tx, action, index, now)
                applied += int(ok)
        return dispatch, kills, applied

    async def _apply_run(self, tx: Any, action: Action, index: _Index, now: datetime) -> bool:
        if isinstance(action, CreateRun):
            try:
                async with tx.transaction() as sp:
                    run = await sp.create_run(
                        index.tenant,
                        action.dag_id,
                        run_id=action.run_id,
                        logical_date=action.logical_date,
                        data_interval_start=action.data_interval_start,
                        data_interval_end=action.data_interval_end,
                        run_after=action.run_after,
                        run_type=DagRunType(action.run_type.value),
                        triggered_by="scheduler",
                        dag_version_id=index.versions.get(action.dag_id),
                        now=now,
                    )
            except Conflict:
                return False
            self._last_interval[(index.tenant, action.dag_id)] = DataInterval(
                action.data_interval_start, action.data_interval_end
            )
            log.info("created run %s of %s", run.run_id, run.dag_id)
            return True
        run = index.runs.get((action.dag_id, action.run_id))  # type: ignore[union-attr]
        if run is None:
            return False
        if isinstance(action, StartRun):
            ok = await tx.transition_run(
                run.id, DagRunState.RUNNING, expected=[DagRunState.QUEUED], now=now
            )
            if ok:
                for ti in await tx.create_task_instances(run.id):
                    index.tis[(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)] = ti
            return ok
        if isinstance(action, FinishRun):
            ok = await tx.transition_run(
                run.id,
                DagRunState(action.new_state.value),
                expected=[DagRunState(action.expected_state.value)],
                now=now,
            )
            if ok:
                log.info("run %s of %s: %s", run.run_id, run.dag_id, action.new_state.value)
            return ok
        return False

    async def _apply_ti(
        self,
        tx: Any,
        action: TaskInstanceAction,
        index: _Index,
        now: datetime,
        dispatch: list[_Dispatch],
        kills: list[tuple[TaskKey, str]],
    ) -> bool:
        ti = index.tis.get((action.dag_id, action.run_id, action.task_id, action.map_index))
        if ti is None:
            return False
        expected = to_store_state(action.expected_state)
        target = to_store_state(action.new_state)
        try_number = action.expected_try_number
        if isinstance(action, QueueTask) and expected is not TIState.SCHEDULED:
            # The store takes a new try number on entering "scheduled": go through it.
            if not await tx.transition_ti(
                ti.id, TIState.SCHEDULED, expected=[expected], try_number=try_number, now=now
            ):
                return False
            expected, try_number = TIState.SCHEDULED, action.try_number
        ok = await tx.transition_ti(
            ti.id,
            target,
            expected=[expected],
            try_number=try_number,
            now=now,
            next_retry_at=getattr(action, "next_retry_at", None),
        )
        if not ok:
            return False
        if action.kill:
            key = TaskKey(
                action.dag_id,
                action.run_id,
                action.task_id,
                action.map_index,
                action.expected_try_number,
            )
            kills.append((key, getattr(action, "reason", type(action).__name__)))
        if isinstance(action, QueueTask):
            run = index.runs[(action.dag_id, action.run_id)]
            spec = index.specs[(action.dag_id, action.run_id)]
            fresh = await tx.get_ti_by_id(ti.id)
            dispatch.append(_Dispatch(index.tenant, fresh, run, spec, spec.task(action.task_id)))
        return True

    # -- dispatch ------------------------------------------------------------------------

    async def _dispatch(self, items: list[_Dispatch]) -> int:
        if not items:
            return 0
        jobs = await asyncio.gather(*(self._job(item) for item in items))
        for item, job in zip(items, jobs, strict=True):
            self._inflight[job.key] = (item.tenant, item.ti.id, item.task)
            await self.executor.submit(job)
        return len(jobs)

    async def _job(self, item: _Dispatch) -> TaskJob:
        dag_file, python = await self._resolve_worker(item.tenant, item.spec)
        xcom = await self._pull_inputs(item)
        run, spec = item.run, item.spec
        params = {name: p.default for name, p in spec.params.items()}
        params.update(run.conf or {})
        context = {
            "logical_date": _iso(run.logical_date),
            "data_interval_start": _iso(run.data_interval_start),
            "data_interval_end": _iso(run.data_interval_end),
            "run_after": _iso(run.run_after),
            "params": params,
            "conf": run.conf or {},
            "owner": spec.owner,
        }
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
            env=await self._secrets_env(item.tenant),
            timeout_seconds=item.task.execution_timeout_seconds,
            tenant=item.tenant,
        )

    async def _pull_inputs(self, item: _Dispatch) -> dict[str, dict[str, Any]]:
        refs = {(ref.task_id, ref.key) for ref in item.task.xcom_inputs.values()}
        for fan_in in item.task.fan_ins.values():
            refs.update((s.ref.task_id, s.ref.key) for s in fan_in.slots if s.ref is not None)

        async def one(task_id: str, key: str) -> tuple[str, str, Any, bool]:
            try:
                value = await self.redis.get_xcom(
                    item.tenant, item.run.dag_id, item.run.run_id, task_id, key
                )
            except NotFound:
                return task_id, key, None, False
            return task_id, key, value, True

        xcom: dict[str, dict[str, Any]] = {}
        for task_id, key, value, found in await asyncio.gather(*(one(*r) for r in sorted(refs))):
            if found:
                xcom.setdefault(task_id, {})[key] = value
        return xcom

    async def _secrets_env(self, tenant: str) -> dict[str, str]:
        env: dict[str, str] = {}
        variables = await self.store.list_variables(tenant, limit=10_000)
        for var in variables.items:
            env[f"AIRFLOW_VAR_{var.key.upper()}"] = var.value
        connections = await self.store.list_connections(tenant, limit=10_000)
        for conn in connections.items:
            env[f"AIRFLOW_CONN_{conn.conn_id.upper()}"] = connection_uri(conn)
        return env

    # -- worker events -------------------------------------------------------------------

    async def on_event(self, event: TaskEvent) -> None:
        """Record what a worker reported, then wake the loop."""
        inflight = self._inflight.get(event.key)
        if inflight is None:
            log.warning("event for unknown task try %s ignored", event.key)
            return
        tenant, ti_id, task = inflight
        try:
            await record_task_event(
                self.store,
                self.redis,
                event,
                tenant=tenant,
                ti_id=ti_id,
                task=task,
                logs_dir=self._logs_dir,
                executor_name=self.executor.name,
            )
        except LeoflowError as exc:
            log.warning("could not record %s of %s: %s", event.state, event.key, exc)
        finally:
            if event.state != "running":
                self._inflight.pop(event.key, None)
                self.wake()


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _run_snap(run: DagRun, spec: DagSpec, tis: list[TaskInstance]) -> DagRunSnap:
    return DagRunSnap(
        run_id=run.run_id,
        state=SDR(run.state.value),
        run_after=run.run_after,
        run_type=RunType(run.run_type.value),
        logical_date=run.logical_date,
        start_date=run.start_date,
        spec=spec,
        task_instances={
            ti.task_id: TaskInstanceSnap(
                task_id=ti.task_id,
                state=from_store_state(ti.state),
                try_number=ti.try_number,
                max_tries=ti.max_tries,
                map_index=ti.map_index,
                next_retry_at=ti.next_retry_at,
                queued_at=ti.queued_dttm,
                start_date=ti.start_date,
                last_heartbeat_at=ti.last_heartbeat_at,
                pool=ti.pool,
            )
            for ti in tis
            if ti.map_index == -1
        },
    )
