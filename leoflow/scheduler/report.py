"""What a worker's report does to its task instance, as a guarded action (pure).

The agent servicer calls these with the row it read and applies the result like any other
action (``WHERE state = expected_state AND try_number = expected_try_number``). A report for an
old try, or for an instance a user marked or cleared meanwhile, therefore changes nothing:

* started: queued -> running. Anything else (already running, restarting, finished) is refused.
* ended: running (or queued, for a try so fast that "started" was never applied) -> success,
  skipped, or failed; a failure with retries left -> up_for_retry with Airflow's
  ``next_retry_at``. A restarting instance (cleared while running) goes back to none whatever
  the outcome: the clear asked for a fresh try.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from leoflow.scheduler.model import (
    FinishTask,
    RetryTask,
    StartTask,
    TaskInstanceAction,
    TaskInstanceSnap,
)
from leoflow.scheduler.retries import failure_outcome_for
from leoflow.scheduler.states import TaskInstanceState
from leoflow.spec import TaskSpec

TI = TaskInstanceState
Outcome = Literal["success", "failed", "skipped"]


def _row(tenant: str, dag_id: str, run_id: str, ti: TaskInstanceSnap) -> dict[str, object]:
    return {
        "tenant": tenant,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "expected_state": ti.state,
        "expected_try_number": ti.try_number,
        "try_number": ti.try_number,
    }


def task_started(
    *,
    dag_id: str,
    run_id: str,
    ti: TaskInstanceSnap,
    try_number: int,
    now: datetime,
    tenant: str = "default",
    hostname: str | None = None,
    pid: int | None = None,
) -> StartTask | None:
    """The action for "try ``try_number`` started", or None when the report is stale."""
    if ti.state is not TI.QUEUED or ti.try_number != try_number:
        return None
    return StartTask(**_row(tenant, dag_id, run_id, ti), start_date=now, hostname=hostname, pid=pid)


def task_ended(
    *,
    dag_id: str,
    run_id: str,
    task: TaskSpec,
    ti: TaskInstanceSnap,
    try_number: int,
    outcome: Outcome,
    logical_date: datetime | None,
    now: datetime,
    tenant: str = "default",
) -> TaskInstanceAction | None:
    """The action for "try ``try_number`` ended with ``outcome``", or None when stale."""
    if ti.try_number != try_number:
        return None
    row = _row(tenant, dag_id, run_id, ti)
    if ti.state is TI.RESTARTING:
        return FinishTask(**row, new_state=TI.NONE, end_date=now, reason="restart_complete")
    if ti.state not in (TI.RUNNING, TI.QUEUED):
        return None
    if outcome != "failed":
        return FinishTask(**row, new_state=TaskInstanceState(outcome), end_date=now)
    result = failure_outcome_for(
        task,
        dag_id=dag_id,
        logical_date=logical_date,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        end_date=now,
    )
    if result.next_retry_at is not None:
        return RetryTask(**row, end_date=now, next_retry_at=result.next_retry_at)
    return FinishTask(**row, new_state=TI.FAILED, end_date=now)
