"""What the decision core reads (a :class:`Snapshot`) and what it writes (``Action`` values).

All frozen dataclasses; times are timezone-aware datetimes (the store keeps UTC).

The store applies a ``decide()`` result in one transaction, **in list order**, each action as a
guarded update: a task-instance action changes its row only ``WHERE state = expected_state AND
try_number = expected_try_number`` (a run action: ``WHERE state = expected_state``); an update
that matches no row lost a race and is skipped, never retried. Every action's
``expected_state -> new_state`` is allowed by ``states.can_transition``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from leoflow.scheduler.states import DagRunState, TaskInstanceState
from leoflow.scheduler.timetable import DataInterval
from leoflow.spec import DagSpec

TI = TaskInstanceState
DR = DagRunState


class RunType(StrEnum):
    """How a run was created (Airflow's ``DagRunType``)."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"


# --------------------------------------------------------------------------------------------
# Snapshot (input)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInstanceSnap:
    """One task instance as the store sees it.

    ``try_number`` is the current (or last) try, 0 before the first scheduling; ``max_tries``
    is Airflow's (``retries`` at creation, ``try_number + retries`` after a clear).
    ``last_heartbeat_at`` falls back to ``start_date`` (then ``queued_at``) for reaping.
    ``pool`` overrides the task's spec pool when set.
    """

    task_id: str
    state: TaskInstanceState = TI.NONE
    try_number: int = 0
    max_tries: int = 0
    map_index: int = -1
    next_retry_at: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    last_heartbeat_at: datetime | None = None
    pool: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DagRunSnap:
    """One active (queued or running) run and its task instances, keyed by task_id.

    A task of the run's spec without an entry is treated as a fresh instance in state ``none``
    (try 0, ``max_tries = retries``); ``StartRun`` makes the store insert those rows.
    ``spec`` is the DAG version pinned to the run (None: the DAG's current spec).
    """

    run_id: str
    state: DagRunState
    run_after: datetime
    run_type: RunType = RunType.MANUAL
    logical_date: datetime | None = None
    start_date: datetime | None = None
    task_instances: Mapping[str, TaskInstanceSnap] = field(default_factory=dict)
    spec: DagSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DagSnap:
    """A registered DAG: its current spec, pause flag, scheduling cursor and active runs.

    ``last_automated_data_interval`` is the data interval of its latest *scheduled* run, any
    state (manual runs do not move the cursor); ``runs`` holds every queued or running run.
    """

    spec: DagSpec
    tenant: str = "default"
    is_paused: bool = False
    last_automated_data_interval: DataInterval | None = None
    runs: tuple[DagRunSnap, ...] = ()

    @property
    def dag_id(self) -> str:
        """The DAG's id."""
        return self.spec.dag_id


@dataclass(frozen=True, slots=True, kw_only=True)
class DecideConfig:
    """Scheduler knobs (Airflow's names and defaults where Airflow has one)."""

    parallelism: int | None = None  # [core] parallelism: queued+running TIs overall; None: no cap
    heartbeat_timeout: timedelta = timedelta(seconds=300)  # task_instance_heartbeat_timeout
    queued_timeout: timedelta = timedelta(seconds=600)  # [scheduler] task_queued_timeout
    max_runs_to_create_per_dag: int = 10  # [scheduler] max_dagruns_to_create_per_loop


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything ``decide`` needs: the time, the DAGs with their active runs, the pools.

    ``pools`` maps a pool name to its total slots (-1: unlimited); a task in a pool missing
    from the map is never queued. ``pools=None`` means no pool limits at all. Pools are looked
    up by name across the whole snapshot: when pools are per tenant, decide once per tenant. Pool and
    max_active_tasks occupancy is counted from the snapshot's queued/running/restarting task
    instances, so the snapshot must hold every active run.
    """

    now: datetime
    dags: tuple[DagSnap, ...] = ()
    pools: Mapping[str, int] | None = None
    config: DecideConfig = field(default_factory=DecideConfig)


def initial_task_instances(spec: DagSpec) -> list[TaskInstanceSnap]:
    """The rows a new run gets (CreateRun, StartRun): state none, try 0, max_tries = retries."""
    return [TaskInstanceSnap(task_id=t.task_id, max_tries=t.retries) for t in spec.tasks]


# --------------------------------------------------------------------------------------------
# Actions (output)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRun:
    """Insert a scheduled run (state queued) if ``(dag_id, run_id)`` is new, pinned to the DAG
    version ``content_hash`` (label ``version``), with ``initial_task_instances`` rows."""

    dag_id: str
    tenant: str = "default"
    run_id: str
    run_type: RunType = RunType.SCHEDULED
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    run_after: datetime
    version: str
    content_hash: str = ""
    new_state: DagRunState = DR.QUEUED


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRun:
    """queued -> running, ``start_date = now``; insert missing task-instance rows (state none)."""

    dag_id: str
    tenant: str = "default"
    run_id: str
    start_date: datetime
    expected_state: DagRunState = DR.QUEUED
    new_state: DagRunState = DR.RUNNING


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishRun:
    """running -> success|failed, ``end_date = now``.

    ``reason``: ``success``, ``task_failure``, ``all_tasks_deadlocked`` or ``dagrun_timeout``.
    """

    dag_id: str
    tenant: str = "default"
    run_id: str
    new_state: DagRunState
    end_date: datetime
    reason: str
    expected_state: DagRunState = DR.RUNNING


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInstanceAction:
    """Common shape of every task-instance action: which row, the guard, the new values.

    ``try_number`` is the try number after the change (``expected_try_number + 1`` when a new
    try starts). ``kill`` asks the executor to stop the worker of ``expected_try_number``.
    """

    dag_id: str
    tenant: str = "default"
    run_id: str
    task_id: str
    map_index: int = -1
    expected_state: TaskInstanceState
    expected_try_number: int
    new_state: TaskInstanceState
    try_number: int
    kill: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleTask(TaskInstanceAction):
    """none -> scheduled with a new try: runnable, but no capacity this time."""

    new_state: TaskInstanceState = TI.SCHEDULED


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueTask(TaskInstanceAction):
    """none|scheduled|up_for_retry -> queued, then dispatched to the executor after commit."""

    new_state: TaskInstanceState = TI.QUEUED
    queued_at: datetime
    pool: str
    pool_slots: int
    priority_weight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipTask(TaskInstanceAction):
    """none|up_for_retry -> skipped (trigger rule); any unfinished -> skipped on dagrun timeout
    (then ``kill`` when a worker was live)."""

    new_state: TaskInstanceState = TI.SKIPPED
    end_date: datetime
    reason: str = "trigger_rule"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamFailTask(TaskInstanceAction):
    """none|up_for_retry -> upstream_failed (trigger rule)."""

    new_state: TaskInstanceState = TI.UPSTREAM_FAILED
    end_date: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveTask(TaskInstanceAction):
    """none|scheduled -> removed: the task is not in the run's DAG version."""

    new_state: TaskInstanceState = TI.REMOVED


@dataclass(frozen=True, slots=True, kw_only=True)
class RequeueRetry(TaskInstanceAction):
    """up_for_retry -> scheduled with ``try_number + 1``: the delay is over, no capacity yet."""

    new_state: TaskInstanceState = TI.SCHEDULED


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutTask(TaskInstanceAction):
    """running past execution_timeout -> up_for_retry (``next_retry_at``) or failed; kill."""

    end_date: datetime
    next_retry_at: datetime | None = None
    kill: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ReapTask(TaskInstanceAction):
    """A worker that went silent: running/queued -> up_for_retry or failed; restarting -> none.

    ``reason``: ``heartbeat_timeout``, ``queued_timeout`` or ``restart_complete``.
    """

    end_date: datetime
    reason: str
    next_retry_at: datetime | None = None
    kill: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTask(TaskInstanceAction):
    """A worker started the try: queued -> running (``start_date``, first heartbeat)."""

    new_state: TaskInstanceState = TI.RUNNING
    start_date: datetime
    hostname: str | None = None
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishTask(TaskInstanceAction):
    """A worker ended the try: -> success, skipped or failed (no retry left)."""

    end_date: datetime
    reason: str = "worker"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryTask(TaskInstanceAction):
    """A worker's try failed with retries left: -> up_for_retry until ``next_retry_at``."""

    new_state: TaskInstanceState = TI.UP_FOR_RETRY
    end_date: datetime
    next_retry_at: datetime
    reason: str = "worker"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTaskState(TaskInstanceAction):
    """A user's clear or mark (see ``clear.py``): any allowed move, ``max_tries`` when cleared."""

    max_tries: int | None = None
    reason: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRunState:
    """A user's clear or mark of a whole run (e.g. success/failed -> queued after a clear)."""

    dag_id: str
    tenant: str = "default"
    run_id: str
    expected_state: DagRunState
    new_state: DagRunState
    reason: str = "user"


RunAction = CreateRun | StartRun | FinishRun | SetRunState
Action = RunAction | TaskInstanceAction
