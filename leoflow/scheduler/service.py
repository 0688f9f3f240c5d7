"""The scheduler's thin async shell around the pure decision core.

One ``tick``: load a snapshot from the store, ``decide`` (pure), apply the actions in ONE
transaction as guarded updates (a lost race is skipped), then, after commit, hand the queued
task instances to the executor and kill the workers the decisions asked to stop. Worker events
come back through ``on_event``: each is one guarded transition (plus its XCom values), after
which the loop is woken at once, so a finished task's downstream is queued within milliseconds.

Wake-ups, not polling: the leader LISTENs on ``NOTIFY_CHANNEL`` on its leadership connection
(the store's triggers notify when a run is queued or a task instance finishes, and any process
can call ``leoflow.scheduler.notify.notify_scheduler``). Wake-ups that arrive during a tick
coalesce into one more tick. Between wake-ups the loop sleeps until the earliest of: the next
DAG due by its timetable (computed once per DAG version and cursor, ``next_due_at``), a retry
becoming due, or the safety-net sweep (``sweep_seconds`` while runs are active,
``idle_sweep_seconds`` otherwise). Only due DAGs and DAGs with active runs enter a snapshot.

Liveness: while it leads, the scheduler refreshes ``last_heartbeat_at`` of the tries its
executor runs every ``heartbeat_seconds``; a try whose row left "running" has its worker killed.
On taking the lead, and then with every heartbeat round, tries recorded on this host whose
process is gone are failed or retried at once; elsewhere the core reaps tries silent for
``DecideConfig.heartbeat_timeout``.

Only the leader ticks: ``run_forever`` holds a Postgres session-level advisory lock on a
dedicated connection; when that connection dies the lock is gone and the process re-campaigns.
Several schedulers may run; exactly one decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from leoflow.errors import Conflict, LeoflowError
from leoflow.executors.base import Executor, TaskEvent, TaskJob, TaskKey
from leoflow.scheduler.dbconn import SerialConnectionStore
from leoflow.scheduler.decide import decide
from leoflow.scheduler.events import append_log_line, record_task_event
from leoflow.scheduler.jobs import Dispatch, JobBuilder, TtlCache, WorkerResolver
from leoflow.scheduler.jobs import connection_uri as connection_uri
from leoflow.scheduler.liveness import is_live_runner, kill_runner_group
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
from leoflow.scheduler.timetable import DataInterval, next_due_at
from leoflow.spec import DagSpec, TaskSpec
from leoflow.store.api import (
    NOTIFY_CHANNEL,
    Dag,
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

LITE_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
"""A try silent this long is reaped (Airflow's default is 300 s; our heartbeats are local)."""

__all__ = [
    "LEADER_LOCK_KEY",
    "LITE_HEARTBEAT_TIMEOUT",
    "Scheduler",
    "TickResult",
    "WorkerResolver",
    "connection_uri",
]


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
    reaped: int = 0
    active_runs: int = 0
    next_wake: datetime | None = None


@dataclass
class _Due:
    """A schedulable DAG's cached next due time, valid for one version and one cursor."""

    version_id: UUID
    last: DataInterval | None
    due_at: datetime | None


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
        idle_sweep_seconds: float = 5.0,
        campaign_seconds: float = 2.0,
        heartbeat_seconds: float | None = None,
        cache_seconds: float = 2.0,
        hostname: str | None = None,
    ) -> None:
        """Create a scheduler; ``run_forever`` campaigns for leadership and runs it.

        ``sweep_seconds``: safety-net tick interval while runs are active;
        ``idle_sweep_seconds``: the same with no active run (DAG list refresh);
        ``campaign_seconds``: how often a follower tries to take the lead;
        ``heartbeat_seconds``: heartbeat refresh period (default: heartbeat_timeout / 6);
        ``cache_seconds``: how long variables, connections, pools and pause flags are reused.
        ``config`` defaults to ``DecideConfig(heartbeat_timeout=30 s)``.
        """
        self.store = store
        self.redis = redis
        self.executor = executor
        self._logs_dir = logs_dir
        self._clock = clock
        self._config = config or DecideConfig(heartbeat_timeout=LITE_HEARTBEAT_TIMEOUT)
        self._sweep_seconds = sweep_seconds
        self._idle_sweep_seconds = idle_sweep_seconds
        self._campaign_seconds = campaign_seconds
        timeout = self._config.heartbeat_timeout.total_seconds()
        self._heartbeat_seconds = heartbeat_seconds or max(timeout / 6, 0.05)
        self.hostname = hostname or socket.gethostname()
        self._jobs = JobBuilder(store, redis, resolve_worker, ttl=cache_seconds)
        self._pools: TtlCache[str, dict[str, int]] = TtlCache(cache_seconds)
        self._dag_rows: TtlCache[tuple[str, str], Dag] = TtlCache(cache_seconds)
        self._schedulable: tuple[float, list[Dag]] | None = None
        self._due: dict[tuple[str, str], _Due] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._inflight: dict[TaskKey, tuple[str, UUID, TaskSpec]] = {}
        self._started: set[TaskKey] = set()
        self._last_interval: dict[tuple[str, str], DataInterval | None] = {}
        self._tick_lock = asyncio.Lock()
        self._leader_conn: Any = None
        self.db: Any = store  # the leader's serialised connection while it leads
        self._reap_on_next_tick = False
        self.is_leader = False
        self.executor_started = False

    # -- the loop ------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a tick as soon as possible (a task finished, a run was triggered)."""
        self._wake.set()

    def stop(self) -> None:
        """Make ``run_forever`` return after the current tick."""
        self._stop.set()
        self._wake.set()

    async def run_forever(self) -> None:
        """Campaign for leadership, then tick on every wake-up and when something is due.

        The executor starts when this scheduler first leads: a follower watches no pods and
        starts no workers. It is not stopped on losing the lead (a database blip must not kill
        running tries); the guarded transitions make a late report from it harmless.
        """
        self.executor_started = False
        try:
            while not self._stop.is_set():
                async with self._leadership() as leading:
                    if not leading:
                        await self._wait(self._campaign_seconds)
                        continue
                    if not self.executor_started:
                        await self.executor.start(self.on_event)
                        self.executor_started = True
                    await self._lead()
        finally:
            if self.executor_started:
                await self.executor.stop()

    async def _lead(self) -> None:
        self._reap_on_next_tick = True
        self._schedulable = None
        beats = asyncio.create_task(self._heartbeat_loop())
        checked = time.monotonic()
        try:
            while not self._stop.is_set() and self.is_leader:
                timeout = self._idle_sweep_seconds
                try:
                    result = await self.tick()
                    timeout = self._sleep_for(result)
                except LeoflowError as exc:  # the database went away: keep going, say so
                    log.warning("scheduler tick failed: %s", exc)
                    timeout = self._sweep_seconds
                except Exception:
                    log.exception("scheduler tick crashed; continuing")
                    timeout = self._sweep_seconds
                await self._wait(timeout)
                # The lock lives as long as the session; probing it every tick would cost a
                # round trip per task, so probe at most every campaign interval.
                if time.monotonic() - checked >= self._campaign_seconds:
                    checked = time.monotonic()
                    if not await self._still_leader():
                        break
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beats

    def _sleep_for(self, result: TickResult) -> float:
        """Until the safety-net sweep, or earlier when a DAG or a retry becomes due."""
        busy = bool(self._inflight) or result.active_runs > 0
        timeout = self._sweep_seconds if busy else self._idle_sweep_seconds
        now = self._clock()
        # Something already due but blocked (max_active_runs, no capacity) is retried by the
        # sweep; only a future time shortens the sleep, so the loop never spins.
        times = [d.due_at for d in self._due.values() if d.due_at is not None and d.due_at > now]
        if result.next_wake is not None and result.next_wake > now:
            times.append(result.next_wake)
        if times:
            result.next_wake = min(times)
            timeout = min(timeout, (result.next_wake - now).total_seconds())
        return timeout

    async def _wait(self, seconds: float) -> None:
        if not self._wake.is_set():
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
        listening = False
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY)
            self.is_leader = bool(got)
            self._leader_conn = conn
            if got:
                log.info("this scheduler is the leader")
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                listening = True
                self.db = self._jobs.store = SerialConnectionStore(self.store, conn)
            yield bool(got)
        finally:
            self.is_leader = False
            self.db = self._jobs.store = self.store
            if listening:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(Exception):
                await self.store.pool.release(conn)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("run:"):
            self._schedulable = None  # a new or re-queued run: its DAG may be new to us
        self._wake.set()

    async def _still_leader(self) -> bool:
        if not isinstance(self.db, SerialConnectionStore):
            return False
        try:
            # The lock lives as long as this session: a live session means we still lead.
            await self.db.ping()
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
            for snapshot, index in await self._load(now, result):
                if self._reap_on_next_tick:
                    result.reaped += await self._reap_vanished(index)
                actions = decide(snapshot)
                result.actions += len(actions)
                if not actions:
                    continue
                dispatch, kills, applied = await self._apply(actions, index, now)
                result.applied += applied
                for key, reason in kills:
                    await self.executor.cancel(key, reason)
                result.dispatched += await self._dispatch(dispatch)
            self._reap_on_next_tick = False
            return result

    async def _schedulable_dags(self) -> list[Dag]:
        """Unpaused scheduled DAGs, re-listed at most every idle sweep (or on a new run)."""
        now = time.monotonic()
        if self._schedulable is None or now - self._schedulable[0] >= self._idle_sweep_seconds:
            self._schedulable = (now, await self.db.list_schedulable_dags())
        return self._schedulable[1]

    async def _is_due(self, dag: Dag, now: datetime) -> bool:
        """Whether the DAG's timetable has a run due (cached per version and cursor)."""
        assert dag.current_version_id is not None
        key = (dag.tenant, dag.dag_id)
        last = await self._last_automated_interval(dag.tenant, dag.dag_id)
        cached = self._due.get(key)
        if cached is None or cached.version_id != dag.current_version_id or cached.last != last:
            spec = await self.db.get_spec(dag.current_version_id)
            due_at = next_due_at(
                spec.schedule,
                timezone=spec.timezone,
                start_date=spec.start_date,
                end_date=spec.end_date,
                catchup=spec.catchup,
                last_automated=last,
                now=now,
            )
            cached = self._due[key] = _Due(dag.current_version_id, last, due_at)
        return cached.due_at is not None and cached.due_at <= now

    async def _load(self, now: datetime, result: TickResult) -> list[tuple[Snapshot, _Index]]:
        active = await self.db.list_active_runs(limit=10_000)
        result.active_runs = len(active)
        schedulable = await self._schedulable_dags()
        keep = {(d.tenant, d.dag_id) for d in schedulable}
        self._due = {k: v for k, v in self._due.items() if k in keep}
        with_runs = {(r.tenant, r.dag_id) for r in active}
        due = [
            d
            for d in schedulable
            if d.current_version_id is not None
            and ((d.tenant, d.dag_id) in with_runs or await self._is_due(d, now))
        ]
        tis_by_run: dict[int, list[TaskInstance]] = {}
        if active:
            for ti in await self.db.list_run_tis([r.id for r in active]):
                tis_by_run.setdefault(ti.dag_run_id, []).append(ti)
                if ti.state is TIState.UP_FOR_RETRY:
                    result.next_wake = _earliest(result.next_wake, ti.next_retry_at)
        out = []
        for tenant in sorted({r.tenant for r in active} | {d.tenant for d in due}):
            index = _Index(tenant)
            dags: dict[str, tuple[DagSpec, bool]] = {}
            for dag in (d for d in due if d.tenant == tenant):
                assert dag.current_version_id is not None
                dags[dag.dag_id] = (await self.db.get_spec(dag.current_version_id), False)
                index.versions[dag.dag_id] = dag.current_version_id
            runs_by_dag: dict[str, list[DagRunSnap]] = {}
            for run in (r for r in active if r.tenant == tenant):
                spec = await self.db.get_spec(run.dag_version_id)
                index.runs[(run.dag_id, run.run_id)] = run
                index.specs[(run.dag_id, run.run_id)] = spec
                if run.dag_id not in dags:
                    dag = await self._dag_rows.get(
                        (tenant, run.dag_id),
                        lambda t=tenant, d=run.dag_id: self.db.get_dag(t, d),
                    )
                    current = dag.current_version_id or run.dag_version_id
                    dags[run.dag_id] = (await self.db.get_spec(current), dag.is_paused)
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
            pools = await self._pools.get(tenant, lambda t=tenant: self._load_pools(t))
            out.append(
                (Snapshot(now=now, dags=tuple(snaps), pools=pools, config=self._config), index)
            )
        return out

    async def _load_pools(self, tenant: str) -> dict[str, int]:
        return {p.name: p.slots for p in (await self.db.list_pools(tenant, limit=1000)).items}

    async def _last_automated_interval(self, tenant: str, dag_id: str) -> DataInterval | None:
        key = (tenant, dag_id)
        if key not in self._last_interval:
            page = await self.db.list_runs(
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
    ) -> tuple[list[Dispatch], list[tuple[TaskKey, str]], int]:
        dispatch: list[Dispatch] = []
        kills: list[tuple[TaskKey, str]] = []
        applied = 0
        async with self.db.transaction() as tx:
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
        dispatch: list[Dispatch],
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
            # The row as the transaction left it, without reading it back.
            queued = replace(ti, state=TIState.QUEUED, try_number=action.try_number)
            dispatch.append(Dispatch(index.tenant, queued, run, spec, spec.task(action.task_id)))
        return True

    # -- dispatch ------------------------------------------------------------------------

    async def _dispatch(self, items: list[Dispatch]) -> int:
        if not items:
            return 0
        built = await asyncio.gather(
            *(self._jobs.build(item) for item in items), return_exceptions=True
        )
        jobs: list[TaskJob] = []
        for item, job in zip(items, built, strict=True):
            if isinstance(job, BaseException):
                # One try whose worker cannot be prepared (a venv, a bundle) fails alone,
                # with the reason, instead of stranding every try of this tick in "queued".
                await self._fail_undispatchable(item, job)
                continue
            self._inflight[job.key] = (item.tenant, item.ti.id, item.task)
            jobs.append(job)
        # A fan-out starts its tries together rather than one after the other.
        await asyncio.gather(*(self.executor.submit(job) for job in jobs))
        return len(jobs)

    async def _fail_undispatchable(self, item: Dispatch, exc: BaseException) -> None:
        ti = item.ti
        key = TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        log.warning("could not prepare a worker for %s: %s", key, exc)
        self._inflight[key] = (item.tenant, ti.id, item.task)
        error = f"could not prepare the worker: {exc}"
        now = self._clock()
        append_log_line(self._logs_dir, item.tenant, key, error, at=now)
        await self.on_event(TaskEvent(key, "failed", now, error=error))

    # -- worker events -------------------------------------------------------------------

    async def on_event(self, event: TaskEvent) -> None:
        """Record what a worker reported, then wake the loop."""
        inflight = self._inflight.get(event.key)
        if inflight is None:
            log.warning("event for unknown task try %s ignored", event.key)
            return
        tenant, ti_id, task = inflight
        try:
            recorded = await record_task_event(
                self.db,
                self.redis,
                event,
                tenant=tenant,
                ti_id=ti_id,
                task=task,
                logs_dir=self._logs_dir,
                executor_name=self.executor.name,
            )
            if recorded and event.state == "running":
                self._started.add(event.key)
        except LeoflowError as exc:
            log.warning("could not record %s of %s: %s", event.state, event.key, exc)
        finally:
            if event.state != "running":
                self._inflight.pop(event.key, None)
                self._started.discard(event.key)
                self.wake()

    # -- liveness: heartbeats and reaping ------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """While leading: refresh the heartbeats of our tries, reap vanished local ones."""
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            try:
                await self.heartbeat_once()
            except LeoflowError as exc:
                log.warning("heartbeat round failed: %s", exc)
            except Exception:
                log.exception("heartbeat round crashed; continuing")

    async def heartbeat_once(self, now: datetime | None = None) -> int:
        """One round: heartbeat every try our executor runs; kill those no longer running.

        Returns how many tries were heartbeaten. Tries recorded as running on this host whose
        heartbeat is older than two rounds and whose process is gone are reaped at once.
        """
        now = now or self._clock()
        alive = self.executor.running()
        keys = [k for k in self._started if k in alive and k in self._inflight]

        async def beat(key: TaskKey) -> None:
            _, ti_id, _ = self._inflight[key]
            if not await self.db.heartbeat_ti(ti_id, key.try_number, now=now):
                # Marked, cleared or reaped meanwhile: this try must not go on running.
                await self.executor.cancel(key, "the task instance is no longer running this try")

        await asyncio.gather(*(beat(k) for k in keys))
        stale = await self.db.list_stale_running_tis(
            now - timedelta(seconds=2 * self._heartbeat_seconds)
        )
        local = [ti for ti in stale if self._is_local_orphan(ti)]
        if local:
            await self._reap(local, now)
            self.wake()
        return len(keys)

    def _is_local_orphan(self, ti: TaskInstance) -> bool:
        """A try recorded on this host by a process executor that no longer tracks it."""
        if ti.hostname != self.hostname or ti.executor != self.executor.name:
            return False
        key = TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        return key not in self._inflight

    async def _reap_vanished(self, index: _Index) -> int:
        """On taking the lead: fail or retry the tries a dead scheduler left behind here."""
        orphans = [
            ti
            for ti in index.tis.values()
            if (ti.state is TIState.RUNNING and self._is_local_orphan(ti))
            or (
                ti.state is TIState.QUEUED
                and self.executor.name == "process"
                and TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
                not in self._inflight
            )
        ]
        if not orphans:
            return 0
        specs = {ti.id: index.specs.get((ti.dag_id, ti.run_id)) for ti in orphans}
        return await self._reap(orphans, self._clock(), specs)

    async def _reap(
        self,
        tis: list[TaskInstance],
        now: datetime,
        specs: dict[UUID, DagSpec | None] | None = None,
    ) -> int:
        """Record a failed try for each (killing its process group if it still runs here)."""
        reaped = 0
        for ti in tis:
            if ti.pid and ti.hostname == self.hostname and is_live_runner(ti.pid):
                kill_runner_group(ti.pid)
            spec = (specs or {}).get(ti.id) or await self.db.get_spec(ti.dag_version_id)
            try:
                task = spec.task(ti.task_id)
            except KeyError:
                continue
            key = TaskKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            where = f"pid {ti.pid} on {ti.hostname}" if ti.pid else "never started"
            error = f"the worker of this try vanished ({where}); the control plane restarted"
            event = TaskEvent(key, "failed", now, error=error)
            ok = await record_task_event(
                self.db,
                self.redis,
                event,
                tenant=ti.tenant,
                ti_id=ti.id,
                task=task,
                logs_dir=self._logs_dir,
                executor_name=self.executor.name,
            )
            if ok:
                append_log_line(self._logs_dir, ti.tenant, key, error, at=now)
                log.warning("reaped %s: %s", key, error)
                reaped += 1
        return reaped


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


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
