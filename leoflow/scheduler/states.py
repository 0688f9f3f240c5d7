"""Task-instance and DAG-run states, with Airflow's strings, and the one table of allowed moves.

Airflow writes "no status yet" as Python ``None`` (``null`` in the REST API). Leoflow names it
explicitly, :attr:`TaskInstanceState.NONE` (value ``"none"``), so that every state is an enum
member, the transition table has no special case, and a SQL column can be ``NOT NULL``. The API
layer renders it as ``null`` through :func:`to_airflow` and reads it back with
:func:`from_airflow`.

The store guards every state-changing ``UPDATE`` with :func:`can_transition` (and a
``WHERE state = $expected``): a move not in the table is a bug or a lost race, never applied.
"""

from __future__ import annotations

from enum import StrEnum


class TaskInstanceState(StrEnum):
    """A task instance's state (Airflow's names; ``NONE`` is Airflow's ``None``)."""

    NONE = "none"  # created, waiting on its trigger rule
    SCHEDULED = "scheduled"  # runnable, waiting for capacity (pool, max_active_tasks)
    QUEUED = "queued"  # handed to an executor, not yet started by a worker
    RUNNING = "running"  # a worker runs this try
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"  # a try failed; the next one waits for next_retry_at
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    REMOVED = "removed"  # the task vanished from the run's DAG version
    RESTARTING = "restarting"  # cleared while running: the worker is told to stop
    DEFERRED = "deferred"  # reserved (no triggerer yet); treated as unfinished


class DagRunState(StrEnum):
    """A DAG run's state (Airflow's names)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


TI = TaskInstanceState
DR = DagRunState

FINISHED_STATES: frozenset[TaskInstanceState] = frozenset(
    {TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.REMOVED}
)
"""Airflow's ``State.finished``: the try is over and nothing will move it without a user."""

UNFINISHED_STATES: frozenset[TaskInstanceState] = frozenset(set(TI) - FINISHED_STATES)
"""Airflow's ``State.unfinished`` (with NONE standing for ``None``)."""

FAILED_STATES: frozenset[TaskInstanceState] = frozenset({TI.FAILED, TI.UPSTREAM_FAILED})
"""Leaf states that make a run fail (Airflow's ``State.failed_states``)."""

SUCCESS_STATES: frozenset[TaskInstanceState] = frozenset({TI.SUCCESS, TI.SKIPPED})
"""Leaf states that let a run succeed (Airflow's ``State.success_states``)."""

OCCUPYING_STATES: frozenset[TaskInstanceState] = frozenset({TI.QUEUED, TI.RUNNING, TI.RESTARTING})
"""States that hold a pool slot and count against max_active_tasks and parallelism."""

FINISHED_RUN_STATES: frozenset[DagRunState] = frozenset({DR.SUCCESS, DR.FAILED})
ACTIVE_RUN_STATES: frozenset[DagRunState] = frozenset({DR.QUEUED, DR.RUNNING})

_MARKS = {TI.SUCCESS, TI.FAILED, TI.SKIPPED}  # a user may mark any TI with these (Airflow's PATCH)

TI_TRANSITIONS: dict[TaskInstanceState, frozenset[TaskInstanceState]] = {
    # scheduler: trigger rule decided, or runnable now (queued directly when capacity allows)
    TI.NONE: frozenset(
        {TI.SCHEDULED, TI.QUEUED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.REMOVED, *_MARKS}
    ),
    # dispatch; a clear resets it; a dagrun timeout skips it
    TI.SCHEDULED: frozenset({TI.QUEUED, TI.NONE, TI.UPSTREAM_FAILED, TI.REMOVED, *_MARKS}),
    # the worker starts it (or reports a fast end); reaped when stuck; cleared
    TI.QUEUED: frozenset({TI.RUNNING, TI.UP_FOR_RETRY, TI.NONE, TI.RESTARTING, *_MARKS}),
    # the worker ends it; timeout/reaper fail it; a clear restarts it
    TI.RUNNING: frozenset({TI.UP_FOR_RETRY, TI.RESTARTING, TI.DEFERRED, TI.NONE, *_MARKS}),
    # the worker is gone: a fresh try (NONE), or a retry / failure when the clear lost the race
    TI.RESTARTING: frozenset({TI.NONE, TI.UP_FOR_RETRY, TI.SCHEDULED, TI.QUEUED, *_MARKS}),
    TI.DEFERRED: frozenset({TI.SCHEDULED, TI.QUEUED, TI.UP_FOR_RETRY, TI.NONE, *_MARKS}),
    # retry delay elapsed: scheduled (or queued directly), or settled by its trigger rule
    # when an upstream changed meanwhile; cleared; marked
    TI.UP_FOR_RETRY: frozenset({TI.SCHEDULED, TI.QUEUED, TI.NONE, TI.UPSTREAM_FAILED, *_MARKS}),
    # finished states: a clear (NONE) or a user's mark
    TI.SUCCESS: frozenset({TI.NONE, *_MARKS}),
    TI.FAILED: frozenset({TI.NONE, *_MARKS}),
    TI.SKIPPED: frozenset({TI.NONE, *_MARKS}),
    TI.UPSTREAM_FAILED: frozenset({TI.NONE, *_MARKS}),
    TI.REMOVED: frozenset({TI.NONE}),
}
"""old state -> states it may move to. A state never "moves" to itself."""

TI_TRANSITIONS = {k: v - {k} for k, v in TI_TRANSITIONS.items()}

DAG_RUN_TRANSITIONS: dict[DagRunState, frozenset[DagRunState]] = {
    DR.QUEUED: frozenset({DR.RUNNING, DR.FAILED, DR.SUCCESS}),  # started, or marked by a user
    DR.RUNNING: frozenset({DR.SUCCESS, DR.FAILED}),
    DR.SUCCESS: frozenset({DR.QUEUED, DR.FAILED}),  # cleared, or marked
    DR.FAILED: frozenset({DR.QUEUED, DR.SUCCESS}),
}
"""old run state -> run states it may move to."""


def can_transition(
    old: TaskInstanceState | DagRunState, new: TaskInstanceState | DagRunState
) -> bool:
    """True when ``old -> new`` is allowed (task-instance or DAG-run states, never mixed)."""
    # StrEnum members compare equal to their strings, so TI.QUEUED == DR.QUEUED: dispatch on type.
    if isinstance(old, DagRunState) and isinstance(new, DagRunState):
        return new in DAG_RUN_TRANSITIONS[old]
    if isinstance(old, TaskInstanceState) and isinstance(new, TaskInstanceState):
        return new in TI_TRANSITIONS[old]
    raise TypeError(f"cannot compare a {type(old).__name__} with a {type(new).__name__}")


def to_airflow(state: TaskInstanceState) -> str | None:
    """The Airflow REST value of a TI state (``None`` for no status)."""
    return None if state is TI.NONE else state.value


def from_airflow(value: str | None) -> TaskInstanceState:
    """Parse an Airflow REST TI state (``None``/``null`` or ``"none"`` mean no status)."""
    return TI.NONE if value is None else TaskInstanceState(value)
