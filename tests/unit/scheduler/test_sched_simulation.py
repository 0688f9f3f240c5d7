"""Drive decide() like the real loop: apply its actions to an in-memory store, let fake workers
start and end tries, advance the clock, repeat until every run is over.

Invariants checked at every step: every action's guard matches the store (single writer, so a
guard may never miss), every move is in the transition table, limits are never exceeded, and in
the end every task instance is finished with a state its trigger rule explains.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from sched_unit_helpers import T0, dag, task

from leoflow.scheduler.decide import decide
from leoflow.scheduler.model import (
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
    initial_task_instances,
)
from leoflow.scheduler.report import task_ended, task_started
from leoflow.scheduler.states import FINISHED_STATES, OCCUPYING_STATES, can_transition
from leoflow.scheduler.states import DagRunState as DR
from leoflow.scheduler.states import TaskInstanceState as S
from leoflow.scheduler.trigger_rules import Decision, evaluate_states
from leoflow.spec import DagSpec, TriggerRule

STEP = timedelta(seconds=30)


def random_dag(seed: int) -> DagSpec:
    rng = random.Random(seed)
    tasks = []
    for i in range(rng.randint(5, 25)):
        ups = rng.sample([t.task_id for t in tasks], k=min(len(tasks), rng.randint(0, 3)))
        tasks.append(
            task(
                f"t{i:02d}",
                ups,
                trigger_rule=rng.choice(list(TriggerRule)),
                retries=rng.choice([0, 0, 1, 2]),
                retry_delay_seconds=rng.choice([0, 30, 60]),
                retry_exponential_backoff=rng.random() < 0.3,
                pool=rng.choice(["default_pool", "p"]),
            )
        )
    return dag(*tasks, max_active_tasks=rng.randint(1, 4), max_active_runs=2)


class Store:
    """The tables, as dicts; applies actions with the store's guard."""

    def __init__(self, spec: DagSpec) -> None:
        self.spec = spec
        self.runs: dict[str, DagRunSnap] = {}
        self.moves = 0

    def add_manual_run(self, run_id: str) -> None:
        self.runs[run_id] = DagRunSnap(
            run_id=run_id, state=DR.QUEUED, run_after=T0, run_type=RunType.MANUAL, logical_date=T0
        )

    def snapshot(self, now) -> Snapshot:
        active = tuple(r for r in self.runs.values() if r.state in (DR.QUEUED, DR.RUNNING))
        return Snapshot(
            now=now,
            dags=(DagSnap(spec=self.spec, runs=active),),
            pools={"default_pool": 3, "p": 1},
            config=DecideConfig(parallelism=5),
        )

    def set_ti(self, run_id: str, ti: TaskInstanceSnap) -> None:
        run = self.runs[run_id]
        self.runs[run_id] = replace(run, task_instances={**run.task_instances, ti.task_id: ti})

    def apply(self, actions, now) -> None:
        for a in actions:
            assert isinstance(a, (StartRun, FinishRun, TaskInstanceAction)), a
            run = self.runs[a.run_id]
            if isinstance(a, StartRun):
                assert run.state is a.expected_state
                tis = {t.task_id: t for t in initial_task_instances(self.spec)}
                self.runs[a.run_id] = replace(
                    run, state=DR.RUNNING, start_date=now, task_instances=tis
                )
            elif isinstance(a, FinishRun):
                assert run.state is a.expected_state
                self.runs[a.run_id] = replace(run, state=a.new_state)
            else:
                ti = run.task_instances[a.task_id]
                assert (ti.state, ti.try_number) == (a.expected_state, a.expected_try_number), a
                assert can_transition(ti.state, a.new_state)
                self.check_rule(run, a)
                changes = {"state": a.new_state, "try_number": a.try_number}
                if isinstance(a, QueueTask):
                    changes["queued_at"] = now
                if hasattr(a, "next_retry_at"):
                    changes["next_retry_at"] = a.next_retry_at
                self.set_ti(a.run_id, replace(ti, **changes))
                self.moves += 1

    def check_rule(self, run: DagRunSnap, a: TaskInstanceAction) -> None:
        """A trigger-rule move must agree with the rule on the store's state right now."""
        verdict = {
            (S.NONE, S.QUEUED): Decision.RUN,
            (S.NONE, S.SCHEDULED): Decision.RUN,
            (S.NONE, S.SKIPPED): Decision.SKIP,
            (S.NONE, S.UPSTREAM_FAILED): Decision.UPSTREAM_FAILED,
        }.get((a.expected_state, a.new_state))
        if verdict is not None:
            t = self.spec.task(a.task_id)
            ups = [run.task_instances[u].state for u in t.upstream]
            assert evaluate_states(t.trigger_rule, ups) is verdict, (a, ups)

    def work(self, now, rng: random.Random) -> None:
        """Fake workers report through report.py: queued tries start, running tries end."""
        reports = []
        for run in list(self.runs.values()):
            for ti in run.task_instances.values():
                if ti.state is S.QUEUED:
                    reports.append(
                        task_started(
                            dag_id="d", run_id=run.run_id, ti=ti, try_number=ti.try_number, now=now
                        )
                    )
                elif ti.state is S.RUNNING:
                    reports.append(
                        task_ended(
                            dag_id="d",
                            run_id=run.run_id,
                            task=self.spec.task(ti.task_id),
                            ti=ti,
                            try_number=ti.try_number,
                            outcome="success" if rng.random() < 0.7 else "failed",
                            logical_date=run.logical_date,
                            now=now,
                        )
                    )
        assert None not in reports
        self.apply(reports, now)
        for run in list(self.runs.values()):  # the first heartbeat comes with the start
            for ti in run.task_instances.values():
                if ti.state is S.RUNNING and ti.last_heartbeat_at is None:
                    self.set_ti(run.run_id, replace(ti, start_date=now, last_heartbeat_at=now))


def check_limits(store: Store) -> None:
    live = [
        (run.run_id, ti)
        for run in store.runs.values()
        for ti in run.task_instances.values()
        if ti.state in OCCUPYING_STATES
    ]
    assert len(live) <= 5  # parallelism
    assert sum(1 for _, ti in live if store.spec.task(ti.task_id).pool == "p") <= 1
    for run_id in store.runs:
        assert sum(1 for r, _ in live if r == run_id) <= store.spec.max_active_tasks
    assert sum(1 for r in store.runs.values() if r.state is DR.RUNNING) <= 2


@pytest.mark.parametrize("seed", range(40))
def test_random_dags_run_to_a_consistent_end(seed: int) -> None:
    spec = random_dag(seed)
    store = Store(spec)
    for k in range(3):
        store.add_manual_run(f"manual_{k}")
    rng = random.Random(seed)
    now = T0
    for _ in range(400):
        actions = decide(store.snapshot(now))
        assert not any(isinstance(a, CreateRun) for a in actions)
        store.apply(actions, now)
        check_limits(store)
        if all(r.state in (DR.SUCCESS, DR.FAILED) for r in store.runs.values()):
            break
        now += STEP
        store.work(now, rng)
    else:
        pytest.fail("runs did not finish")
    for run in store.runs.values():
        states = {t: ti.state for t, ti in run.task_instances.items()}
        assert set(states.values()) <= FINISHED_STATES
        for t in spec.tasks:
            ti = run.task_instances[t.task_id]
            assert ti.try_number <= t.retries + 1
            if states[t.task_id] in (S.SUCCESS, S.FAILED):
                assert ti.try_number >= 1  # it really ran
        leaves = [states[t] for t in spec.downstream() if not spec.downstream()[t]]
        expected = DR.FAILED if {S.FAILED, S.UPSTREAM_FAILED} & set(leaves) else DR.SUCCESS
        assert run.state is expected
    assert store.moves > 0
