"""Domain types of the store: states (Airflow's strings), transition tables, frozen dataclasses.

Import them from ``leoflow.store.api`` (or ``leoflow.store``); this module exists only to keep the
contract file short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from leoflow.errors import LeoflowError

T = TypeVar("T")

DEFAULT_TENANT = "default"
DEFAULT_POOL = "default_pool"
DEFAULT_POOL_SLOTS = 128
NOTIFY_CHANNEL = "leoflow_scheduler"
"""Postgres LISTEN channel: 'run:<DagRun.id>' (queued) and 'ti:<DagRun.id>' (a try ended)."""
ALL = "~"
"""Airflow's wildcard for "every DAG" / "every run" in list routes."""


class InvalidArgument(LeoflowError):
    """A store call got an argument it cannot use (unknown order_by field, bad filter...)."""

    exit_code = 2


class XComTooLarge(LeoflowError):
    """An XCom value exceeds ``leoflow.spec.XCOM_MAX_BYTES``."""


class _Unset:
    """Marker type: "leave this field unchanged"."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
Unset = _Unset


# --------------------------------------------------------------------------------------------
# States and kinds
# --------------------------------------------------------------------------------------------


class Role(StrEnum):
    """Airflow's roles, each including the rights of the ones before it."""

    VIEWER = "viewer"  # reads everything of its tenant
    USER = "user"  # + triggers, clears, pauses, marks runs and task instances
    OP = "op"  # + manages variables, connections, pools
    ADMIN = "admin"  # + manages users

    def allows(self, needed: Role) -> bool:
        """True when this role has at least the rights of ``needed``."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class DagRunState(StrEnum):
    """Airflow's DAG run states."""

    QUEUED = "queued"  # created, waiting for the scheduler (max_active_runs)
    RUNNING = "running"  # the scheduler is driving its task instances
    SUCCESS = "success"  # terminal
    FAILED = "failed"  # terminal


class DagRunType(StrEnum):
    """Why a run exists (Airflow's run_type)."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"


class TaskInstanceState(StrEnum):
    """Airflow's task instance states; "no status" is ``None``, not a member."""

    REMOVED = "removed"  # the task vanished from the run's spec
    SCHEDULED = "scheduled"  # dependencies met; a new try was counted (try_number += 1)
    QUEUED = "queued"  # handed to an executor
    RUNNING = "running"  # a worker reported start
    SUCCESS = "success"
    RESTARTING = "restarting"  # cleared while running: the running try must stop
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"  # failed with retries left; waits for next_retry_at
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # reserved (sensors in reschedule mode)
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"  # reserved (triggerer)


TIState = TaskInstanceState
TIStateOrNone = TaskInstanceState | None

TERMINAL_TI_STATES: frozenset[TIState] = frozenset(
    {
        TIState.SUCCESS,
        TIState.FAILED,
        TIState.SKIPPED,
        TIState.UPSTREAM_FAILED,
        TIState.REMOVED,
    }
)
"""States a task instance does not leave by itself (only a clear or a manual mark moves it)."""

FINISHED_TRY_STATES: frozenset[TIState] = frozenset(
    {TIState.SUCCESS, TIState.FAILED, TIState.SKIPPED, TIState.UP_FOR_RETRY}
)
"""States that end a try; entering one records the try in task_instance_history."""

TERMINAL_RUN_STATES: frozenset[DagRunState] = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})

_S = TIState
TI_TRANSITIONS: Mapping[TIState | None, frozenset[TIState | None]] = {
    None: frozenset({_S.SCHEDULED, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED}),
    _S.SCHEDULED: frozenset(
        {None, _S.QUEUED, _S.RUNNING, _S.FAILED, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED}
    ),
    _S.QUEUED: frozenset(
        {
            None,
            _S.SCHEDULED,
            _S.RUNNING,
            _S.SUCCESS,
            _S.FAILED,
            _S.UP_FOR_RETRY,
            _S.SKIPPED,
            _S.REMOVED,
        }
    ),
    _S.RUNNING: frozenset(
        {
            _S.SUCCESS,
            _S.FAILED,
            _S.UP_FOR_RETRY,
            _S.SKIPPED,
            _S.RESTARTING,
            _S.DEFERRED,
            _S.UP_FOR_RESCHEDULE,
        }
    ),
    _S.RESTARTING: frozenset({None, _S.SCHEDULED, _S.FAILED, _S.UP_FOR_RETRY}),
    # A ready retry re-checks its trigger rule: an upstream cleared meanwhile may skip it or
    # fail it upstream (the decision core emits SkipTask / UpstreamFailTask from up_for_retry).
    _S.UP_FOR_RETRY: frozenset(
        {None, _S.SCHEDULED, _S.FAILED, _S.REMOVED, _S.SKIPPED, _S.UPSTREAM_FAILED}
    ),
    _S.UP_FOR_RESCHEDULE: frozenset({None, _S.SCHEDULED, _S.FAILED, _S.REMOVED}),
    _S.DEFERRED: frozenset({None, _S.SCHEDULED, _S.FAILED, _S.UP_FOR_RETRY, _S.SUCCESS}),
    _S.SUCCESS: frozenset({None}),
    _S.FAILED: frozenset({None, _S.UP_FOR_RETRY}),
    _S.SKIPPED: frozenset({None}),
    _S.UPSTREAM_FAILED: frozenset({None}),
    _S.REMOVED: frozenset({None}),
}
"""THE table of task instance transitions made by the scheduler and workers (from -> to).

``transition_ti`` guards every write with it: the UPDATE only matches rows whose current state
is one of the allowed sources, so a late or duplicate report can never overwrite a newer state.
Entering ``None`` is what a clear does (a running TI is cleared to ``restarting`` instead, so its
worker is told to stop); ``failed -> up_for_retry`` lets the scheduler decide the
retry after a worker reported a plain failure.
"""

TI_MANUAL_MARKS: frozenset[TIState] = frozenset({_S.SUCCESS, _S.FAILED, _S.SKIPPED})
"""States a user may set by hand (``patch_ti``), from any other state, as in Airflow."""

RUN_TRANSITIONS: Mapping[DagRunState, frozenset[DagRunState]] = {
    DagRunState.QUEUED: frozenset({DagRunState.RUNNING, DagRunState.SUCCESS, DagRunState.FAILED}),
    DagRunState.RUNNING: frozenset({DagRunState.SUCCESS, DagRunState.FAILED, DagRunState.QUEUED}),
    DagRunState.SUCCESS: frozenset({DagRunState.QUEUED, DagRunState.FAILED}),
    DagRunState.FAILED: frozenset({DagRunState.QUEUED, DagRunState.SUCCESS}),
}
"""THE table of DAG run transitions (from -> to); a user may mark any of them."""


def ti_sources(to_state: TIState | None) -> frozenset[TIState | None]:
    """Every state TI_TRANSITIONS allows to move into ``to_state``."""
    return frozenset(src for src, dsts in TI_TRANSITIONS.items() if to_state in dsts)


def run_sources(to_state: DagRunState) -> frozenset[DagRunState]:
    """Every state RUN_TRANSITIONS allows to move into ``to_state``."""
    return frozenset(src for src, dsts in RUN_TRANSITIONS.items() if to_state in dsts)


# --------------------------------------------------------------------------------------------
# Domain objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list plus the total number of matches."""

    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class Tenant:
    """An isolated namespace of DAGs, users and secrets."""

    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A login of one tenant (the password hash never leaves the store)."""

    id: int
    tenant: str
    username: str
    role: Role
    is_active: bool
    email: str | None
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class Dag:
    """A registered DAG, with fields of its current version denormalized for listing."""

    id: int
    tenant: str
    dag_id: str
    is_paused: bool
    is_stale: bool
    description: str | None
    owner: str
    tags: list[str]
    schedule: dict[str, Any] | None  # the spec's schedule object, e.g. {"type":"cron",...}
    timetable_summary: str | None  # "0 * * * *", "@daily", "1:00:00", None
    timezone: str
    start_date: datetime | None
    end_date: datetime | None
    catchup: bool
    max_active_runs: int
    max_active_tasks: int
    fileloc: str
    current_version_id: UUID | None
    current_version_number: int | None
    current_version_label: str | None
    content_hash: str | None
    last_parsed_time: datetime | None
    next_dagrun_logical_date: datetime | None
    next_dagrun_data_interval_start: datetime | None
    next_dagrun_data_interval_end: datetime | None
    next_dagrun_run_after: datetime | None
    has_import_errors: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DagVersion:
    """One immutable compiled spec of a DAG (deduplicated by content_hash)."""

    id: UUID
    tenant: str
    dag_id: str
    version_number: int  # 1, 2, ... per DAG in registration order
    label: str  # the spec's ``version`` (``--dag-version`` or ``h<hash12>``)
    content_hash: str
    image: str | None
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class DagSource:
    """The DAG file text of one version."""

    dag_id: str
    version_number: int
    fileloc: str
    content: str


@dataclass(frozen=True, slots=True)
class DagRun:
    """One run of a DAG, pinned to the version it was created with."""

    id: int
    tenant: str
    dag_id: str
    run_id: str
    dag_version_id: UUID
    version_number: int
    state: DagRunState
    run_type: DagRunType
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_after: datetime
    conf: dict[str, Any]
    note: str | None
    triggered_by: str | None  # "rest_api", "cli", "scheduler", "ui"...
    triggering_user_name: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    last_scheduling_decision: datetime | None
    clear_number: int
    updated_at: datetime

    @property
    def duration(self) -> float | None:
        """Seconds between start and end, None while unfinished."""
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()


@dataclass(frozen=True, slots=True)
class TaskInstance:
    """The current try of one task (and map index) in one run."""

    id: UUID
    tenant: str
    dag_id: str
    run_id: str
    dag_run_id: int  # DagRun.id
    dag_version_id: UUID
    task_id: str
    map_index: int
    state: TIState | None
    try_number: int  # 0 until first scheduled; +1 each time a new try is scheduled
    max_tries: int  # try_number may reach max_tries + 1 (Airflow: retries)
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    queued_dttm: datetime | None
    scheduled_dttm: datetime | None
    next_retry_at: datetime | None
    hostname: str | None
    pid: int | None
    executor: str | None
    external_executor_id: str | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    operator: str | None
    note: str | None
    last_heartbeat_at: datetime | None
    rendered_fields: dict[str, Any]
    logical_date: datetime | None  # of the run (for listing)
    run_after: datetime | None  # of the run
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TaskInstanceTry:
    """One try of a task instance: a finished try from history, or the current one."""

    ti_id: UUID
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: TIState | None
    max_tries: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    queued_dttm: datetime | None
    scheduled_dttm: datetime | None
    hostname: str | None
    pid: int | None
    executor: str | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    operator: str | None
    dag_version_id: UUID


@dataclass(frozen=True, slots=True)
class TIKey:
    """Natural key of a task instance."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True, slots=True)
class XComEntry:
    """An XCom index row; the value itself lives in Redis (``RedisStore.get_xcom``)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str
    size: int
    created_at: datetime
    logical_date: datetime | None
    run_after: datetime | None


@dataclass(frozen=True, slots=True)
class Variable:
    """An Airflow Variable (plaintext; the API masks sensitive-looking keys)."""

    key: str
    value: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """An Airflow Connection; password and extra are decrypted here, encrypted at rest."""

    conn_id: str
    conn_type: str
    description: str | None = None
    host: str | None = None
    login: str | None = None
    schema: str | None = None
    port: int | None = None
    password: str | None = None
    extra: str | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool of slots, with live occupancy counted from task instances."""

    name: str
    slots: int  # -1 means unlimited, as in Airflow
    description: str | None = None
    include_deferred: bool = False
    running_slots: int = 0
    queued_slots: int = 0
    scheduled_slots: int = 0
    deferred_slots: int = 0

    @property
    def occupied_slots(self) -> int:
        """Slots taken by running and queued (and deferred when counted) task instances."""
        return (
            self.running_slots
            + self.queued_slots
            + (self.deferred_slots if self.include_deferred else 0)
        )

    @property
    def open_slots(self) -> int | float:
        """Slots still free (infinity for an unlimited pool)."""
        return float("inf") if self.slots < 0 else self.slots - self.occupied_slots


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event log entry (Airflow's eventLogs)."""

    id: int
    when: datetime
    event: str
    owner: str | None
    dag_id: str | None
    task_id: str | None
    run_id: str | None
    map_index: int | None
    try_number: int | None
    logical_date: datetime | None
    extra: str | None


@dataclass(frozen=True, slots=True)
class DagImportError:
    """A DAG file that failed to compile or register."""

    id: int
    filename: str
    bundle_name: str | None
    stack_trace: str
    timestamp: datetime


BulkActionKind = Literal["create", "update", "delete"]
OnExistence = Literal["fail", "skip", "overwrite"]
OnNonExistence = Literal["fail", "skip"]


@dataclass(frozen=True, slots=True)
class BulkAction(Generic[T]):
    """One action of Airflow's bulk body; entities are objects, or keys for ``delete``."""

    action: BulkActionKind
    entities: Sequence[T | str]
    action_on_existence: OnExistence = "fail"
    action_on_non_existence: OnNonExistence = "fail"


@dataclass(frozen=True, slots=True)
class BulkActionResult:
    """Keys that succeeded and errors ({"error": str, "status_code": int}) of one action."""

    success: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BulkResult:
    """Airflow's bulk response: one result per action kind present."""

    create: BulkActionResult | None = None
    update: BulkActionResult | None = None
    delete: BulkActionResult | None = None
