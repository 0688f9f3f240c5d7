"""Retry timing and execution deadlines, as Airflow 3 computes them.

Airflow's numbering is kept: ``try_number`` is the number of the try that is running or just
ended (1 for the first try; 0 before the first scheduling), and ``max_tries`` is the task's
``retries`` when the task instance was created (``try_number + retries`` after a clear). A
failed try is retried when ``retries > 0 and try_number <= max_tries``
(``TaskInstance.is_eligible_to_retry``), so ``retries=2`` gives three tries in all.

The next retry time mirrors ``TaskInstance.next_retry_datetime``:

* without backoff: ``end_date + retry_delay``;
* with ``retry_exponential_backoff``: ``min_backoff = max(1, ceil(retry_delay * 2**(try_number
  - 1)))`` seconds, plus a deterministic jitter ``sha1("dag_id#task_id#logical_date#try_number")
  % min_backoff``, so the delay lies in ``[min_backoff, 2 * min_backoff)``; capped at
  :data:`MAX_RETRY_DELAY_SECONDS` (Airflow's ``[core] max_task_retry_delay``, one day) and then
  at the task's ``max_retry_delay``.

Difference: Airflow hashes ``str(logical_date)`` of a pendulum DateTime; Leoflow hashes
``logical_date.isoformat()`` (or ``"None"`` for a run without a logical date). The jitter is the
same kind of value, not bit-for-bit the same number; nothing depends on that.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from leoflow.scheduler.states import TaskInstanceState
from leoflow.spec import TaskSpec

MAX_RETRY_DELAY_SECONDS = 24 * 60 * 60
"""Airflow's ``[core] max_task_retry_delay`` default: no backoff delay exceeds one day."""


def is_eligible_to_retry(*, retries: int, try_number: int, max_tries: int) -> bool:
    """Whether a failed try is retried (Airflow's ``is_eligible_to_retry``)."""
    return retries > 0 and try_number <= max_tries


def retry_delay(
    *,
    dag_id: str,
    task_id: str,
    logical_date: datetime | None,
    try_number: int,
    retry_delay_seconds: float,
    retry_exponential_backoff: bool = False,
    max_retry_delay_seconds: float | None = None,
) -> timedelta:
    """How long to wait after try ``try_number`` failed before the next try may start."""
    delay = timedelta(seconds=retry_delay_seconds)
    if not retry_exponential_backoff:
        return delay
    # Airflow computes the power in floats; cap the exponent so huge try numbers cannot overflow.
    exponent = min(max(try_number - 1, 0), 64)
    min_backoff = max(1, math.ceil(retry_delay_seconds * (2**exponent)))
    stamp = logical_date.isoformat() if logical_date is not None else "None"
    key = f"{dag_id}#{task_id}#{stamp}#{try_number}".encode()
    ti_hash = int(hashlib.sha1(key, usedforsecurity=False).hexdigest(), 16)
    backoff = min(min_backoff + ti_hash % min_backoff, MAX_RETRY_DELAY_SECONDS)
    delay = timedelta(seconds=backoff)
    if max_retry_delay_seconds:
        delay = min(delay, timedelta(seconds=max_retry_delay_seconds))
    return delay


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """Where a failed try goes: ``up_for_retry`` with its ``next_retry_at``, or ``failed``."""

    state: TaskInstanceState
    next_retry_at: datetime | None


def failure_outcome(
    *,
    dag_id: str,
    task_id: str,
    logical_date: datetime | None,
    try_number: int,
    max_tries: int,
    retries: int,
    retry_delay_seconds: float,
    retry_exponential_backoff: bool,
    max_retry_delay_seconds: float | None,
    end_date: datetime,
) -> FailureOutcome:
    """The state a failed try moves to; the store calls this when a worker reports failure."""
    if not is_eligible_to_retry(retries=retries, try_number=try_number, max_tries=max_tries):
        return FailureOutcome(TaskInstanceState.FAILED, None)
    delay = retry_delay(
        dag_id=dag_id,
        task_id=task_id,
        logical_date=logical_date,
        try_number=try_number,
        retry_delay_seconds=retry_delay_seconds,
        retry_exponential_backoff=retry_exponential_backoff,
        max_retry_delay_seconds=max_retry_delay_seconds,
    )
    return FailureOutcome(TaskInstanceState.UP_FOR_RETRY, end_date + delay)


def execution_deadline(
    start_date: datetime | None, execution_timeout_seconds: float | None
) -> datetime | None:
    """When a running try must be killed (``start_date + execution_timeout``), or None."""
    if start_date is None or execution_timeout_seconds is None:
        return None
    return start_date + timedelta(seconds=execution_timeout_seconds)


def failure_outcome_for(
    task: TaskSpec,
    *,
    dag_id: str,
    logical_date: datetime | None,
    try_number: int,
    max_tries: int,
    end_date: datetime,
) -> FailureOutcome:
    """:func:`failure_outcome` with the retry settings read from the task's spec."""
    return failure_outcome(
        dag_id=dag_id,
        task_id=task.task_id,
        logical_date=logical_date,
        try_number=try_number,
        max_tries=max_tries,
        retries=task.retries,
        retry_delay_seconds=task.retry_delay_seconds,
        retry_exponential_backoff=task.retry_exponential_backoff,
        max_retry_delay_seconds=task.max_retry_delay_seconds,
        end_date=end_date,
    )
