"""States and the transition table."""

from __future__ import annotations

import pytest

from leoflow.scheduler.states import (
    DAG_RUN_TRANSITIONS,
    FINISHED_STATES,
    TI_TRANSITIONS,
    UNFINISHED_STATES,
    can_transition,
    from_airflow,
    to_airflow,
)
from leoflow.scheduler.states import DagRunState as DR
from leoflow.scheduler.states import TaskInstanceState as S


def test_airflow_strings() -> None:
    assert [s.value for s in S] == [
        "none", "scheduled", "queued", "running", "success", "failed", "up_for_retry",
        "upstream_failed", "skipped", "removed", "restarting", "deferred",
    ]  # fmt: skip
    assert [s.value for s in DR] == ["queued", "running", "success", "failed"]


def test_finished_and_unfinished_partition_all_states() -> None:
    assert set(S) == FINISHED_STATES | UNFINISHED_STATES
    assert not FINISHED_STATES & UNFINISHED_STATES
    assert S.UP_FOR_RETRY in UNFINISHED_STATES and S.REMOVED in FINISHED_STATES


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (S.NONE, S.SCHEDULED, True),
        (S.NONE, S.QUEUED, True),  # runnable with capacity: queued in one step
        (S.NONE, S.SKIPPED, True),
        (S.NONE, S.UPSTREAM_FAILED, True),
        (S.NONE, S.RUNNING, False),  # never started without being queued
        (S.SCHEDULED, S.QUEUED, True),
        (S.QUEUED, S.RUNNING, True),
        (S.RUNNING, S.SUCCESS, True),
        (S.RUNNING, S.UP_FOR_RETRY, True),
        (S.RUNNING, S.RESTARTING, True),
        (S.RUNNING, S.QUEUED, False),
        (S.UP_FOR_RETRY, S.SCHEDULED, True),
        (S.UP_FOR_RETRY, S.QUEUED, True),
        (S.UP_FOR_RETRY, S.RUNNING, False),
        (S.SUCCESS, S.RUNNING, False),  # a late worker report cannot revive a finished TI
        (S.FAILED, S.RUNNING, False),
        (S.FAILED, S.UP_FOR_RETRY, False),
        (S.SUCCESS, S.NONE, True),  # clear
        (S.FAILED, S.SUCCESS, True),  # mark
        (S.REMOVED, S.SUCCESS, False),
        (S.RESTARTING, S.NONE, True),
        (S.SUCCESS, S.SUCCESS, False),
    ],
)
def test_task_instance_transitions(old: S, new: S, allowed: bool) -> None:
    assert can_transition(old, new) is allowed


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (DR.QUEUED, DR.RUNNING, True),
        (DR.RUNNING, DR.SUCCESS, True),
        (DR.RUNNING, DR.FAILED, True),
        (DR.RUNNING, DR.QUEUED, False),
        (DR.SUCCESS, DR.QUEUED, True),
        (DR.FAILED, DR.QUEUED, True),
        (DR.SUCCESS, DR.RUNNING, False),
        (DR.FAILED, DR.FAILED, False),
    ],
)
def test_dag_run_transitions(old: DR, new: DR, allowed: bool) -> None:
    assert can_transition(old, new) is allowed


def test_tables_cover_every_state_and_never_loop() -> None:
    assert set(TI_TRANSITIONS) == set(S)
    assert set(DAG_RUN_TRANSITIONS) == set(DR)
    assert all(k not in v for k, v in TI_TRANSITIONS.items())
    assert all(k not in v for k, v in DAG_RUN_TRANSITIONS.items())


def test_mixing_run_and_task_states_is_an_error() -> None:
    # StrEnum members equal their strings, so S.QUEUED == DR.QUEUED; the table must not confuse them.
    with pytest.raises(TypeError):
        can_transition(S.QUEUED, DR.RUNNING)


def test_airflow_null_round_trip() -> None:
    assert to_airflow(S.NONE) is None
    assert to_airflow(S.SUCCESS) == "success"
    assert from_airflow(None) is S.NONE
    assert from_airflow("none") is S.NONE
    assert from_airflow("up_for_retry") is S.UP_FOR_RETRY
