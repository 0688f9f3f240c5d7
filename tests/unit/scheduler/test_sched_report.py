"""Worker reports as guarded actions: started, ended (success, skip, retry, fail), stale ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sched_unit_helpers import T0, task, ti

from leoflow.scheduler.model import FinishTask, RetryTask, StartTask
from leoflow.scheduler.report import task_ended, task_started
from leoflow.scheduler.states import TaskInstanceState as S
from leoflow.scheduler.states import can_transition

NOW = T0 + timedelta(minutes=3)
TASK = task("a", retries=1, retry_delay_seconds=60)


def ended(state: str, outcome: str, try_number: int = 1, reported: int = 1, max_tries: int = 1):
    return task_ended(
        dag_id="d",
        run_id="r",
        task=TASK,
        ti=ti("a", state, try_number, max_tries=max_tries),
        try_number=reported,
        outcome=outcome,
        logical_date=T0,
        now=NOW,
    )


def test_started() -> None:
    a = task_started(dag_id="d", run_id="r", ti=ti("a", "queued", 2), try_number=2, now=NOW, pid=7)
    assert isinstance(a, StartTask)
    assert (a.expected_state, a.new_state, a.try_number, a.start_date, a.pid) == (
        S.QUEUED, S.RUNNING, 2, NOW, 7,
    )  # fmt: skip


@pytest.mark.parametrize(("state", "reported"), [("running", 2), ("queued", 1), ("success", 2)])
def test_stale_start_is_refused(state: str, reported: int) -> None:
    assert (
        task_started(dag_id="d", run_id="r", ti=ti("a", state, 2), try_number=reported, now=NOW)
        is None
    )


@pytest.mark.parametrize(
    ("state", "outcome", "kind", "new_state"),
    [
        ("running", "success", FinishTask, S.SUCCESS),
        ("running", "skipped", FinishTask, S.SKIPPED),
        ("queued", "success", FinishTask, S.SUCCESS),  # "started" never applied
        ("running", "failed", RetryTask, S.UP_FOR_RETRY),
        ("restarting", "success", FinishTask, S.NONE),  # cleared: a fresh try follows
        ("restarting", "failed", FinishTask, S.NONE),
    ],
)
def test_ended(state: str, outcome: str, kind: type, new_state: S) -> None:
    a = ended(state, outcome)
    assert type(a) is kind and a.new_state is new_state and a.end_date == NOW
    assert can_transition(a.expected_state, a.new_state)


def test_failure_retries_after_delay_then_fails_for_good() -> None:
    retry = ended("running", "failed")
    assert retry.next_retry_at == NOW + timedelta(seconds=60)
    last = ended("running", "failed", try_number=2, reported=2)
    assert type(last) is FinishTask and last.new_state is S.FAILED


@pytest.mark.parametrize(("state", "reported"), [("running", 1), ("success", 2), ("none", 2)])
def test_stale_end_is_refused(state: str, reported: int) -> None:
    # a report for an older try, or for an instance a user marked/cleared meanwhile
    assert ended(state, "failed", try_number=2, reported=reported) is None
