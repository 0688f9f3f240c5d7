"""Clearing and marking: Airflow's semantics as guarded actions, and the re-drive by decide()."""

from __future__ import annotations

import pytest
from sched_unit_helpers import T0, dag, run, snapshot, task, ti

from leoflow.scheduler.clear import (
    clear_actions,
    mark_run_actions,
    mark_task_actions,
    tasks_to_clear,
)
from leoflow.scheduler.decide import decide
from leoflow.scheduler.model import DagSnap, QueueTask, SetRunState, SetTaskState, StartRun
from leoflow.scheduler.states import DagRunState as DR
from leoflow.scheduler.states import TaskInstanceState as S
from leoflow.scheduler.states import can_transition

#   a -> b -> d
#   a -> c -> d -> e ;  x alone
SPEC = dag(
    task("a", retries=2),
    task("b", ["a"]),
    task("c", ["a"]),
    task("d", ["b", "c"]),
    task("e", ["d"]),
    task("x"),
)


@pytest.mark.parametrize(
    ("ids", "upstream", "downstream", "expected"),
    [
        (["d"], False, False, {"d"}),
        (["d"], True, False, {"a", "b", "c", "d"}),
        (["b"], False, True, {"b", "d", "e"}),
        (["b"], True, True, {"a", "b", "d", "e"}),
        (["x", "c"], False, True, {"x", "c", "d", "e"}),
    ],
)
def test_tasks_to_clear(ids, upstream, downstream, expected) -> None:
    assert tasks_to_clear(SPEC, ids, upstream=upstream, downstream=downstream) == expected


def test_tasks_to_clear_unknown_id() -> None:
    with pytest.raises(KeyError):
        tasks_to_clear(SPEC, ["nope"])


def _guarded(actions) -> None:
    for a in actions:
        assert can_transition(a.expected_state, a.new_state), a


def test_clear_resets_finished_restarts_running_and_requeues_the_run() -> None:
    r = run(
        state="failed",
        tis=[
            ti("a", "failed", 3, max_tries=2),
            ti("b", "upstream_failed"),
            ti("c", "running", 1, start_date=T0),
            ti("d", "upstream_failed"),
            ti("e"),
        ],
    )
    actions = clear_actions(SPEC, "d", r, tasks_to_clear(SPEC, ["a"], downstream=True))
    _guarded(actions)
    changes = {
        a.task_id: (a.new_state, a.kill, a.max_tries)
        for a in actions
        if isinstance(a, SetTaskState)
    }
    assert changes == {
        "a": (S.NONE, False, 5),  # full retry budget again: try_number + retries
        "b": (S.NONE, False, 0),
        "c": (S.RESTARTING, True, 1),
        "d": (S.NONE, False, 0),
    }
    assert actions[-1] == SetRunState(
        dag_id="d", run_id="r1", expected_state=DR.FAILED, new_state=DR.QUEUED, reason="clear"
    )


def test_clear_only_failed() -> None:
    r = run(tis=[ti("a", "success", 1), ti("b", "failed", 1), ti("c", "upstream_failed")])
    actions = clear_actions(SPEC, "d", r, ["a", "b", "c"], only_failed=True)
    assert [a.task_id for a in actions] == ["b", "c"]  # run is running: no run change


def test_cleared_run_is_redriven_by_decide() -> None:
    # After the clear applied: the run is queued again with a in none -> started and queued.
    r = run(
        state="queued",
        tis=[
            ti("a", "none", 3, max_tries=5),
            *(ti(t, "none") for t in "bcde"),
            ti("x", "success", 1),
        ],
    )
    actions = decide(snapshot(DagSnap(spec=SPEC, runs=(r,))))
    assert [type(a) for a in actions] == [StartRun, QueueTask]
    assert (actions[1].task_id, actions[1].try_number) == ("a", 4)


def test_mark_task_success_kills_live_worker_and_requeues_finished_run() -> None:
    r = run(
        state="failed", tis=[ti("a", "success", 1), ti("b", "failed", 1), ti("c", "running", 1)]
    )
    actions = mark_task_actions(SPEC, "d", r, ["b", "c", "a"], S.SUCCESS)
    _guarded(actions)
    assert [(a.task_id, a.kill) for a in actions if isinstance(a, SetTaskState)] == [
        ("b", False),
        ("c", True),
    ]
    assert isinstance(actions[-1], SetRunState) and actions[-1].new_state is DR.QUEUED


def test_mark_rejects_other_states() -> None:
    with pytest.raises(ValueError):
        mark_task_actions(SPEC, "d", run(), ["a"], S.RUNNING)
    with pytest.raises(ValueError):
        mark_run_actions(SPEC, "d", run(), DR.QUEUED)


def test_mark_run_failed_fails_live_and_skips_pending() -> None:
    r = run(tis=[ti("a", "success", 1), ti("b", "running", 1), ti("c", "up_for_retry", 1), ti("d")])
    actions = mark_run_actions(SPEC, "d", r, DR.FAILED)
    _guarded(actions)
    assert [(a.task_id, a.new_state) for a in actions if isinstance(a, SetTaskState)] == [
        ("b", S.FAILED),
        ("c", S.SKIPPED),
        ("d", S.SKIPPED),
    ]
    assert actions[-1].new_state is DR.FAILED and actions[-1].expected_state is DR.RUNNING


def test_mark_run_success_marks_every_task_instance_success() -> None:
    r = run(
        state="failed",
        tis=[ti("a", "success", 1), ti("b", "failed", 1), ti("d", "upstream_failed")],
    )
    actions = mark_run_actions(SPEC, "d", r, DR.SUCCESS)
    _guarded(actions)
    assert [a.task_id for a in actions if isinstance(a, SetTaskState)] == ["b", "d"]
    assert actions[-1].new_state is DR.SUCCESS


def test_clear_and_mark_carry_the_tenant() -> None:
    r = run(state="success", tis=[ti("a", "success", 1)])
    actions = clear_actions(SPEC, "d", r, ["a"], tenant="acme")
    actions += mark_task_actions(SPEC, "d", r, ["a"], S.FAILED, tenant="acme")
    actions += mark_run_actions(SPEC, "d", r, DR.FAILED, tenant="acme")
    assert actions and {a.tenant for a in actions} == {"acme"}
