"""decide(): one pass from a snapshot to guarded actions."""

from __future__ import annotations

from datetime import timedelta

from sched_unit_helpers import T0, dag, run, snapshot, task, ti

from leoflow.scheduler.decide import decide
from leoflow.scheduler.model import (
    CreateRun,
    DagSnap,
    DecideConfig,
    FinishRun,
    QueueTask,
    ReapTask,
    RemoveTask,
    RequeueRetry,
    ScheduleTask,
    SkipTask,
    StartRun,
    TaskInstanceAction,
    TimeoutTask,
    UpstreamFailTask,
)
from leoflow.scheduler.states import DagRunState as DR
from leoflow.scheduler.states import TaskInstanceState as S
from leoflow.scheduler.states import can_transition
from leoflow.spec import ContinuousSchedule, CronSchedule, TriggerRule


def decided(snap):
    """decide() plus the invariants every result must keep."""
    actions = decide(snap)
    assert actions == decide(snap)  # deterministic
    for a in actions:
        assert (
            can_transition(a.expected_state, a.new_state) if hasattr(a, "expected_state") else True
        )
    return actions


def of(actions, kind):
    return [a for a in actions if type(a) is kind]


def ids(actions, kind):
    return sorted(a.task_id for a in of(actions, kind))


CHAIN = dag(task("a"), task("b", ["a"]), task("c", ["b"]))


# --- runs start and finish --------------------------------------------------------------------


def test_queued_run_starts_and_queues_its_root_in_the_same_call() -> None:
    actions = decided(snapshot(DagSnap(spec=CHAIN, runs=(run(state="queued"),))))
    assert [type(a) for a in actions] == [StartRun, QueueTask]
    (q,) = of(actions, QueueTask)
    assert (q.task_id, q.expected_state, q.expected_try_number, q.try_number) == ("a", S.NONE, 0, 1)


def test_chain_downstream_is_queued_as_soon_as_upstream_succeeds() -> None:
    r = run(tis=[ti("a", "success", 1), ti("b"), ti("c")])
    actions = decided(snapshot(DagSnap(spec=CHAIN, runs=(r,))))
    assert ids(actions, QueueTask) == ["b"]
    assert not of(actions, FinishRun)


def test_chain_all_success_finishes_run() -> None:
    r = run(tis=[ti(t, "success", 1) for t in "abc"])
    (fin,) = decided(snapshot(DagSnap(spec=CHAIN, runs=(r,))))
    assert fin == FinishRun(
        dag_id="d", run_id="r1", new_state=DR.SUCCESS, end_date=T0, reason="success"
    )


def test_failure_cascades_and_fails_run_in_one_call() -> None:
    r = run(tis=[ti("a", "failed", 1), ti("b"), ti("c")])
    actions = decided(snapshot(DagSnap(spec=CHAIN, runs=(r,))))
    assert [type(a) for a in actions] == [UpstreamFailTask, UpstreamFailTask, FinishRun]
    assert ids(actions, UpstreamFailTask) == ["b", "c"]
    assert actions[-1].new_state is DR.FAILED and actions[-1].reason == "task_failure"


def test_skip_cascades_and_run_succeeds() -> None:
    r = run(tis=[ti("a", "skipped", 1), ti("b"), ti("c")])
    actions = decided(snapshot(DagSnap(spec=CHAIN, runs=(r,))))
    assert ids(actions, SkipTask) == ["b", "c"]
    assert of(actions, FinishRun)[0].new_state is DR.SUCCESS


def test_unfinished_tasks_keep_a_run_with_a_failed_leaf_running() -> None:
    spec = dag(task("a"), task("b"))
    r = run(tis=[ti("a", "failed", 1), ti("b", "running", 1, start_date=T0)])
    assert decided(snapshot(DagSnap(spec=spec, runs=(r,)))) == []


def test_deadlock_fails_the_run() -> None:
    spec = dag(task("a"), task("b", ["a"]))
    r = run(tis=[ti("a", "removed"), ti("b")])
    (fin,) = decided(snapshot(DagSnap(spec=spec, runs=(r,))))
    assert (fin.new_state, fin.reason) == (DR.FAILED, "all_tasks_deadlocked")


def test_task_missing_from_the_runs_version_is_removed() -> None:
    r = run(tis=[ti("a", "success", 1), ti("gone")])
    actions = decided(snapshot(DagSnap(spec=dag(task("a")), runs=(r,))))
    assert [type(a) for a in actions] == [RemoveTask, FinishRun]
    assert actions[0].task_id == "gone"


def test_dagrun_timeout_skips_unfinished_and_kills_live_workers() -> None:
    spec = dag(task("a"), task("b", ["a"]), dagrun_timeout_seconds=60)
    r = run(tis=[ti("a", "running", 1, start_date=T0), ti("b")], start_date=T0)
    actions = decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=T0 + timedelta(seconds=60)))
    skips = of(actions, SkipTask)
    assert [(s.task_id, s.kill, s.reason) for s in skips] == [
        ("a", True, "dagrun_timeout"),
        ("b", False, "dagrun_timeout"),
    ]
    assert actions[-1].reason == "dagrun_timeout" and actions[-1].new_state is DR.FAILED


# --- trigger rules in the DAG -------------------------------------------------------------------


def _fan(n: int, rule: TriggerRule):
    maps = [task(f"m{i:03d}", ["start"]) for i in range(n)]
    return dag(task("start"), *maps, task("reduce", [m.task_id for m in maps], trigger_rule=rule))


def _fan_run(n: int, failing: set[int]):
    states = [ti(f"m{i:03d}", "failed" if i in failing else "success", 1) for i in range(n)]
    return run(tis=[ti("start", "success", 1), *states, ti("reduce")])


def test_fan_in_of_100_with_failures_runs_reducer_under_all_done() -> None:
    failing = set(range(0, 100, 7))
    actions = decided(
        snapshot(DagSnap(spec=_fan(100, TriggerRule.ALL_DONE), runs=(_fan_run(100, failing),)))
    )
    assert ids(actions, QueueTask) == ["reduce"]
    # Then the reducer succeeds: the run succeeds, because only leaves decide (Airflow).
    done = _fan_run(100, failing)
    done = run(tis=[*done.task_instances.values(), ti("reduce", "success", 1)])
    (fin,) = decided(snapshot(DagSnap(spec=_fan(100, TriggerRule.ALL_DONE), runs=(done,))))
    assert fin.new_state is DR.SUCCESS


def test_fan_in_of_100_under_all_success_is_upstream_failed() -> None:
    actions = decided(
        snapshot(DagSnap(spec=_fan(100, TriggerRule.ALL_SUCCESS), runs=(_fan_run(100, {3}),)))
    )
    assert ids(actions, UpstreamFailTask) == ["reduce"]
    assert of(actions, FinishRun)[0].new_state is DR.FAILED


def test_fan_out_queues_every_branch_up_to_max_active_tasks() -> None:
    spec = dag(
        task("start"), *[task(f"m{i:03d}", ["start"]) for i in range(100)], max_active_tasks=16
    )
    r = run(tis=[ti("start", "success", 1)])
    actions = decided(snapshot(DagSnap(spec=spec, runs=(r,))))
    assert len(of(actions, QueueTask)) == 16
    assert len(of(actions, ScheduleTask)) == 84
    assert all(a.try_number == 1 for a in of(actions, ScheduleTask))


def test_one_success_fires_without_waiting_for_other_upstreams() -> None:
    spec = dag(task("a"), task("b"), task("c", ["a", "b"], trigger_rule=TriggerRule.ONE_SUCCESS))
    r = run(tis=[ti("a", "success", 1), ti("b", "running", 1, start_date=T0), ti("c")])
    assert ids(decided(snapshot(DagSnap(spec=spec, runs=(r,)))), QueueTask) == ["c"]


def test_one_failed_fires_on_first_failure() -> None:
    spec = dag(task("a"), task("b"), task("c", ["a", "b"], trigger_rule=TriggerRule.ONE_FAILED))
    r = run(tis=[ti("a", "failed", 1), ti("b", "running", 1, start_date=T0), ti("c")])
    assert ids(decided(snapshot(DagSnap(spec=spec, runs=(r,)))), QueueTask) == ["c"]


# --- retries --------------------------------------------------------------------------------------


def _retry_run(next_retry_at):
    return run(tis=[ti("a", "up_for_retry", 1, max_tries=2, next_retry_at=next_retry_at)])


def test_up_for_retry_waits_for_its_delay() -> None:
    spec = dag(task("a", retries=2))
    at = T0 + timedelta(minutes=5)
    assert (
        decided(snapshot(DagSnap(spec=spec, runs=(_retry_run(at),)), now=at - timedelta(seconds=1)))
        == []
    )
    (q,) = decided(snapshot(DagSnap(spec=spec, runs=(_retry_run(at),)), now=at))
    assert type(q) is QueueTask
    assert (q.expected_state, q.expected_try_number, q.try_number) == (S.UP_FOR_RETRY, 1, 2)


def test_up_for_retry_without_capacity_is_requeued_as_scheduled() -> None:
    spec = dag(task("a", retries=2), task("b"), max_active_tasks=1)
    r = run(
        tis=[
            ti("a", "up_for_retry", 1, max_tries=2, next_retry_at=T0),
            ti("b", "running", 1, start_date=T0),
        ]
    )
    (rq,) = decided(snapshot(DagSnap(spec=spec, runs=(r,))))
    assert type(rq) is RequeueRetry and rq.try_number == 2 and rq.new_state is S.SCHEDULED


def test_timeout_retries_with_delay_and_backoff() -> None:
    spec = dag(
        task(
            "a",
            retries=3,
            execution_timeout_seconds=30,
            retry_delay_seconds=10,
            retry_exponential_backoff=True,
        )
    )
    r = run(
        tis=[
            ti(
                "a",
                "running",
                2,
                max_tries=3,
                start_date=T0,
                last_heartbeat_at=T0 + timedelta(seconds=29),
            )
        ]
    )
    now = T0 + timedelta(seconds=30)
    (t,) = decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=now))
    assert type(t) is TimeoutTask and t.kill and t.new_state is S.UP_FOR_RETRY
    # try 2 with backoff: between 20 s and 40 s after the end.
    assert now + timedelta(seconds=20) <= t.next_retry_at < now + timedelta(seconds=40)


def test_timeout_without_retries_fails_and_cascades() -> None:
    spec = dag(task("a", execution_timeout_seconds=30), task("b", ["a"]))
    r = run(tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0), ti("b")])
    actions = decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=T0 + timedelta(seconds=31)))
    assert [type(a) for a in actions] == [TimeoutTask, UpstreamFailTask, FinishRun]
    assert actions[0].new_state is S.FAILED and actions[2].new_state is DR.FAILED


def test_running_within_timeout_is_left_alone() -> None:
    spec = dag(task("a", execution_timeout_seconds=30))
    r = run(tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0)])
    assert decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=T0 + timedelta(seconds=29))) == []


# --- reaping ------------------------------------------------------------------------------------


CFG = DecideConfig(heartbeat_timeout=timedelta(seconds=90), queued_timeout=timedelta(seconds=120))


def test_silent_running_worker_is_reaped_into_a_retry() -> None:
    spec = dag(task("a", retries=1, retry_delay_seconds=60))
    r = run(tis=[ti("a", "running", 1, max_tries=1, start_date=T0, last_heartbeat_at=T0)])
    now = T0 + timedelta(seconds=91)
    (reap,) = decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=now, config=CFG))
    assert type(reap) is ReapTask and reap.reason == "heartbeat_timeout"
    assert (reap.new_state, reap.next_retry_at, reap.kill) == (
        S.UP_FOR_RETRY,
        now + timedelta(seconds=60),
        True,
    )
    fresh = run(tis=[ti("a", "running", 1, max_tries=1, start_date=T0, last_heartbeat_at=now)])
    assert decided(snapshot(DagSnap(spec=spec, runs=(fresh,)), now=now, config=CFG)) == []


def test_stuck_queued_task_is_reaped() -> None:
    r = run(tis=[ti("a", "queued", 1, queued_at=T0)])
    actions = decided(
        snapshot(
            DagSnap(spec=dag(task("a")), runs=(r,)), now=T0 + timedelta(seconds=121), config=CFG
        )
    )
    assert [type(a) for a in actions] == [ReapTask, FinishRun]
    assert actions[0].reason == "queued_timeout" and actions[0].new_state is S.FAILED


def test_restarting_task_whose_worker_is_gone_returns_to_none() -> None:
    r = run(tis=[ti("a", "restarting", 1, start_date=T0, last_heartbeat_at=T0)])
    actions = decided(
        snapshot(
            DagSnap(spec=dag(task("a")), runs=(r,)), now=T0 + timedelta(seconds=91), config=CFG
        )
    )
    assert [type(a) for a in actions] == [ReapTask, QueueTask]
    assert (actions[0].new_state, actions[0].reason) == (S.NONE, "restart_complete")
    # The fresh try follows in the same call, guarded on the state the reap leaves behind.
    assert (actions[1].expected_state, actions[1].try_number) == (S.NONE, 2)


def test_reaping_frees_the_slot_for_another_task_in_the_same_call() -> None:
    spec = dag(task("a"), task("b"), max_active_tasks=1)
    r = run(tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0), ti("b")])
    actions = decided(
        snapshot(DagSnap(spec=spec, runs=(r,)), now=T0 + timedelta(seconds=91), config=CFG)
    )
    assert [type(a) for a in actions] == [ReapTask, QueueTask]
    assert actions[1].task_id == "b"


# --- capacity: max_active_tasks, pools, parallelism, priority -----------------------------------------


def test_max_active_tasks_counts_running_tasks_per_run() -> None:
    spec = dag(*[task(t) for t in "abcd"], max_active_tasks=2)
    r1 = run("r1", tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0)])
    r2 = run("r2", tis=[], run_after=T0 + timedelta(seconds=1))
    actions = decided(snapshot(DagSnap(spec=spec, runs=(r1, r2))))
    per_run = {
        rid: [a.task_id for a in of(actions, QueueTask) if a.run_id == rid] for rid in ("r1", "r2")
    }
    assert per_run == {"r1": ["b"], "r2": ["a", "b"]}  # Airflow 3: the limit is per run


def test_pools_limit_by_slots_and_skip_tasks_that_do_not_fit() -> None:
    spec = dag(
        task("big", pool="p", pool_slots=2, priority_weight=10),
        task("big2", pool="p", pool_slots=2, priority_weight=9),
        task("small", pool="p", pool_slots=1),
        task("other", pool="q"),
        task("nowhere", pool="missing"),
    )
    actions = decided(snapshot(DagSnap(spec=spec, runs=(run(),)), pools={"p": 3, "q": -1}))
    assert ids(actions, QueueTask) == ["big", "other", "small"]
    assert ids(actions, ScheduleTask) == ["big2", "nowhere"]


def test_pool_occupancy_counts_live_workers_of_all_runs() -> None:
    spec = dag(task("a", pool="p"), task("b", pool="p"))
    busy = run("r0", tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0)])
    fresh = run("r1", run_after=T0 + timedelta(seconds=1))
    actions = decided(snapshot(DagSnap(spec=spec, runs=(busy, fresh)), pools={"p": 2}))
    assert [(a.run_id, a.task_id) for a in of(actions, QueueTask)] == [("r0", "b")]


def test_parallelism_caps_queueing_across_dags() -> None:
    d1 = DagSnap(spec=dag(task("a"), task("b"), dag_id="d1"), runs=(run(),))
    d2 = DagSnap(spec=dag(task("a"), dag_id="d2"), runs=(run(),))
    actions = decided(snapshot(d1, d2, config=DecideConfig(parallelism=2)))
    assert len(of(actions, QueueTask)) == 2 and len(of(actions, ScheduleTask)) == 1


def test_priority_uses_downstream_weight_then_run_age() -> None:
    # "a" has two descendants -> effective weight 3; "z" alone -> 1.
    spec = dag(task("z"), task("a"), task("a1", ["a"]), task("a2", ["a1"]), max_active_tasks=1)
    (q, s) = decided(snapshot(DagSnap(spec=spec, runs=(run(tis=[ti("a1"), ti("a2")]),))))
    assert (q.task_id, q.priority_weight, s.task_id) == ("a", 3, "z")
    old = run("old", run_after=T0)
    new = run("new", run_after=T0 + timedelta(hours=1))
    actions = decided(
        snapshot(DagSnap(spec=dag(task("x")), runs=(new, old)), config=DecideConfig(parallelism=1))
    )
    assert [(a.run_id, type(a)) for a in actions] == [("old", QueueTask), ("new", ScheduleTask)]


def test_scheduled_task_is_queued_when_capacity_returns() -> None:
    r = run(tis=[ti("a", "scheduled", 1)])
    (q,) = decided(snapshot(DagSnap(spec=dag(task("a")), runs=(r,))))
    assert (q.expected_state, q.expected_try_number, q.try_number) == (S.SCHEDULED, 1, 1)


# --- scheduled runs ---------------------------------------------------------------------------------


DAILY = dict(schedule=CronSchedule(expression="@daily"), start_date=T0)


def test_due_run_is_created_started_and_its_root_queued_in_one_call() -> None:
    spec = dag(task("a"), task("b", ["a"]), **DAILY)
    actions = decided(snapshot(DagSnap(spec=spec), now=T0 + timedelta(days=4, hours=10)))
    assert [type(a) for a in actions] == [CreateRun, StartRun, QueueTask]
    assert actions[0].run_id == "scheduled__2024-01-05T00:00:00+00:00"
    assert actions[1].run_id == actions[2].run_id == actions[0].run_id


def test_catchup_creates_runs_up_to_max_active_runs() -> None:
    spec = dag(task("a"), catchup=True, max_active_runs=3, **DAILY)
    actions = decided(snapshot(DagSnap(spec=spec), now=T0 + timedelta(days=9)))
    assert len(of(actions, CreateRun)) == 3 and len(of(actions, StartRun)) == 3


def test_max_active_runs_holds_queued_runs_back() -> None:
    spec = dag(task("a"), max_active_runs=2)
    busy = run("r0", tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0)])
    q1 = run("r1", "queued", run_after=T0 + timedelta(hours=2))
    q2 = run("r2", "queued", run_after=T0 + timedelta(hours=1))
    actions = decided(snapshot(DagSnap(spec=spec, runs=(busy, q1, q2))))
    assert [a.run_id for a in of(actions, StartRun)] == ["r2"]
    assert not of(actions, CreateRun)


def test_no_new_run_when_max_active_runs_reached() -> None:
    spec = dag(task("a"), max_active_runs=1, **DAILY)
    now = T0 + timedelta(days=3)
    busy = run("r0", tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=now)])
    assert decided(snapshot(DagSnap(spec=spec, runs=(busy,)), now=now)) == []


def test_paused_dag_neither_creates_nor_queues_but_still_reaps() -> None:
    spec = dag(task("a"), task("b"), **DAILY)
    r = run(tis=[ti("a", "running", 1, start_date=T0, last_heartbeat_at=T0)])
    snap = snapshot(DagSnap(spec=spec, is_paused=True, runs=(r,)), now=T0 + timedelta(days=3))
    (reap,) = decided(snap)
    assert type(reap) is ReapTask and reap.task_id == "a"


def test_snapshot_is_not_mutated_and_all_actions_are_guarded() -> None:
    spec = _fan(20, TriggerRule.ALL_DONE)
    snap = snapshot(DagSnap(spec=spec, runs=(_fan_run(20, {1, 2}),)))
    before = repr(snap)
    actions = decided(snap)
    assert repr(snap) == before
    assert all(isinstance(a, TaskInstanceAction) for a in actions)


def test_paused_dag_keeps_runs_as_they_are() -> None:
    spec = dag(task("a"))
    done = run("r0", tis=[ti("a", "success", 1)])
    waiting = run("r1", "queued", run_after=T0 + timedelta(hours=1))
    assert decided(snapshot(DagSnap(spec=spec, is_paused=True, runs=(done, waiting)))) == []


def test_continuous_dag_starts_a_run_only_when_none_is_active() -> None:
    spec = dag(task("a"), schedule=ContinuousSchedule(), start_date=T0)
    now = T0 + timedelta(hours=1)
    actions = decided(snapshot(DagSnap(spec=spec), now=now))
    assert [type(a) for a in actions] == [CreateRun, StartRun, QueueTask]
    assert (actions[0].data_interval_start, actions[0].data_interval_end) == (T0, now)
    busy = run("r0", tis=[ti("a", "running", 1, start_date=now, last_heartbeat_at=now)])
    assert decided(snapshot(DagSnap(spec=spec, runs=(busy,)), now=now)) == []


def test_zero_delay_timeout_retry_is_requeued_in_the_same_call() -> None:
    spec = dag(task("a", retries=1, retry_delay_seconds=0, execution_timeout_seconds=10))
    r = run(tis=[ti("a", "running", 1, max_tries=1, start_date=T0, last_heartbeat_at=T0)])
    actions = decided(snapshot(DagSnap(spec=spec, runs=(r,)), now=T0 + timedelta(seconds=10)))
    assert [type(a) for a in actions] == [TimeoutTask, QueueTask]
    assert (actions[1].expected_state, actions[1].try_number) == (S.UP_FOR_RETRY, 2)


def test_actions_carry_the_dags_tenant() -> None:
    spec = dag(task("a"), **DAILY)
    actions = decided(snapshot(DagSnap(spec=spec, tenant="acme"), now=T0 + timedelta(minutes=1)))
    assert [type(a) for a in actions] == [CreateRun, StartRun, QueueTask]
    assert {a.tenant for a in actions} == {"acme"}


def test_retry_rechecks_its_trigger_rule() -> None:
    spec = dag(task("a"), task("b", ["a"], retries=2))
    ready = ti("b", "up_for_retry", 1, max_tries=2, next_retry_at=T0)
    waiting = run(tis=[ti("a", "running", 2, start_date=T0, last_heartbeat_at=T0), ready])
    assert decided(snapshot(DagSnap(spec=spec, runs=(waiting,)))) == []  # a was cleared: wait
    failed = run(tis=[ti("a", "failed", 2), ready])
    actions = decided(snapshot(DagSnap(spec=spec, runs=(failed,))))
    assert [type(a) for a in actions] == [UpstreamFailTask, FinishRun]
    assert actions[0].expected_state is S.UP_FOR_RETRY
