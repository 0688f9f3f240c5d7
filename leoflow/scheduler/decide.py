"""The scheduler's decision core: ``decide(snapshot) -> list[Action]``, pure and single-pass.

One call does everything the state of the world allows, so nothing waits for a second tick:

1. per DAG (unpaused): create the due scheduled runs (timetable, bounded by max_active_runs)
   and start queued runs (oldest ``run_after`` first) while fewer than max_active_runs run;
   a run created or started in this call is settled in this same call;
2. per running run, tasks in topological order with an *effective* state that includes this
   call's decisions: time out or reap silent workers, evaluate trigger rules (a skip or
   upstream_failed cascades downstream at once), collect runnable task instances (none with
   a passing rule, scheduled, up_for_retry past next_retry_at), then decide the run's end;
3. across all runs: queue runnable task instances by effective priority (Airflow's default
   ``downstream`` weight rule), then ``run_after``, within parallelism, pools (slots) and
   max_active_tasks (per run, as in Airflow 3); one that does not fit is moved to
   scheduled (a new try number is taken when it leaves none or up_for_retry).

A paused DAG gets no new, started, queued or finished runs (as Airflow), but its running
workers are still timed out and reaped. Airflow's run-end rule (``DagRun.update_state``): when
no task instance is unfinished, the run fails if a leaf is failed/upstream_failed, else
succeeds; if unfinished ones remain but none can ever progress, it fails as deadlocked. Past
``dagrun_timeout`` its unfinished instances are skipped (live workers killed) and it fails.
Instances of tasks missing from the run's DAG version are marked removed.

Actions come out in the order the store must apply them: run creation/start, task-instance
settlements, queueing, then run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from leoflow.scheduler._graph import CompiledDag, compile_dag
from leoflow.scheduler.model import (
    Action,
    CreateRun,
    DagRunSnap,
    DagSnap,
    DecideConfig,
    FinishRun,
    QueueTask,
    ReapTask,
    RemoveTask,
    RequeueRetry,
    RunType,
    ScheduleTask,
    SkipTask,
    Snapshot,
    StartRun,
    TaskInstanceSnap,
    TimeoutTask,
    UpstreamFailTask,
)
from leoflow.scheduler.retries import FailureOutcome, execution_deadline, failure_outcome_for
from leoflow.scheduler.states import (
    FAILED_STATES,
    OCCUPYING_STATES,
    UNFINISHED_STATES,
    DagRunState,
    TaskInstanceState,
)
from leoflow.scheduler.timetable import due_runs
from leoflow.scheduler.trigger_rules import Decision, count_upstream, evaluate
from leoflow.spec import ContinuousSchedule, TaskSpec

TI = TaskInstanceState
DR = DagRunState

_VERDICTS_MAX = 65536
_MEMO_MAX_UPSTREAM = 8  # wider fan-ins have too many state combinations to be worth a memo
_verdicts: dict[tuple[object, ...], Decision] = {}  # a pure function's memo, never stale


@dataclass(slots=True)
class _Candidate:
    """A runnable task instance waiting for capacity."""

    sort_key: tuple[int, datetime, str, str]
    run: _RunState
    ti: TaskInstanceSnap
    task: TaskSpec
    priority: int
    new_try: int
    pool: str


@dataclass(slots=True)
class _RunState:
    """Mutable per-call bookkeeping of one run being settled."""

    dag_id: str
    tenant: str
    run: DagRunSnap
    graph: CompiledDag
    max_active_tasks: int
    occupied: int = 0
    pool_used: dict[str, int] = field(default_factory=dict)
    candidates: list[_Candidate] = field(default_factory=list)


def decide(snap: Snapshot) -> list[Action]:
    """All the actions the snapshot calls for, in the order the store applies them."""
    now, cfg = snap.now, snap.config
    run_actions: list[Action] = []
    ti_actions: list[Action] = []
    finish_actions: list[Action] = []
    settled: list[_RunState] = []
    runnable: list[_RunState] = []
    for dag in sorted(snap.dags, key=lambda d: (d.tenant, d.dag_id)):
        active = _runs_to_settle(dag, now, cfg, run_actions)
        for run in active:
            graph = compile_dag(run.spec or dag.spec)
            # Limits and timeouts come from the DAG version pinned to the run.
            state = _RunState(dag.dag_id, dag.tenant, run, graph, graph.spec.max_active_tasks)
            settled.append(state)
            finish = _settle_run(state, now, cfg, ti_actions, paused=dag.is_paused)
            if finish is not None:
                finish_actions.append(finish)
            elif not dag.is_paused:
                runnable.append(state)
    queue_actions = _queue(runnable, settled, snap, now)
    return [*run_actions, *ti_actions, *queue_actions, *finish_actions]


# --------------------------------------------------------------------------------------------
# Runs: create and start
# --------------------------------------------------------------------------------------------


def _runs_to_settle(
    dag: DagSnap, now: datetime, cfg: DecideConfig, out: list[Action]
) -> list[DagRunSnap]:
    """Create due runs and start queued ones; return the runs to settle (running ones)."""
    spec = dag.spec
    running = [r for r in dag.runs if r.state is DR.RUNNING]
    if dag.is_paused:
        return sorted(running, key=_run_order)
    queued = [r for r in dag.runs if r.state is DR.QUEUED]
    limit = 1 if isinstance(spec.schedule, ContinuousSchedule) else spec.max_active_runs
    room = min(cfg.max_runs_to_create_per_dag, limit - len(running) - len(queued))
    for info in due_runs(
        spec.schedule,
        timezone=spec.timezone,
        start_date=spec.start_date,
        end_date=spec.end_date,
        catchup=spec.catchup,
        last_automated=dag.last_automated_data_interval,
        now=now,
        has_active_run=bool(running or queued),
        max_runs=room,
    ):
        out.append(
            CreateRun(
                dag_id=spec.dag_id,
                tenant=dag.tenant,
                run_id=info.run_id,
                logical_date=info.logical_date,
                data_interval_start=info.data_interval_start,
                data_interval_end=info.data_interval_end,
                run_after=info.run_after,
                version=spec.version,
                content_hash=spec.content_hash,
            )
        )
        queued.append(
            DagRunSnap(
                run_id=info.run_id,
                state=DR.QUEUED,
                run_after=info.run_after,
                run_type=RunType.SCHEDULED,
                logical_date=info.logical_date,
            )
        )
    started: list[DagRunSnap] = []
    for run in sorted(queued, key=_run_order):
        if len(running) + len(started) >= limit:
            break
        out.append(
            StartRun(dag_id=spec.dag_id, tenant=dag.tenant, run_id=run.run_id, start_date=now)
        )
        started.append(
            DagRunSnap(
                run_id=run.run_id,
                state=DR.RUNNING,
                run_after=run.run_after,
                run_type=run.run_type,
                logical_date=run.logical_date,
                start_date=now,
                task_instances=run.task_instances,
                spec=run.spec,
            )
        )
    return sorted(running, key=_run_order) + started


def _run_order(run: DagRunSnap) -> tuple[datetime, str]:
    return (run.run_after, run.run_id)


# --------------------------------------------------------------------------------------------
# One run: settle task instances in topological order
# --------------------------------------------------------------------------------------------


def _settle_run(
    rs: _RunState, now: datetime, cfg: DecideConfig, out: list[Action], *, paused: bool
) -> FinishRun | None:
    """Emit this run's TI settlements, collect its candidates; return its FinishRun if over."""
    graph, run = rs.graph, rs.run
    tis = run.task_instances
    spec = graph.spec
    if spec.dagrun_timeout_seconds is not None and run.start_date is not None and not paused:
        deadline = run.start_date + timedelta(seconds=spec.dagrun_timeout_seconds)
        if now >= deadline:
            return _time_out_run(rs, now, out)
    if not paused:
        _remove_orphans(rs, out)
    states: list[TaskInstanceState] = []
    for i, task in enumerate(graph.tasks):
        ti = tis.get(task.task_id)
        if ti is None:
            ti = _fresh(task)
        if ti.state in OCCUPYING_STATES:
            # A reaped or timed-out TI continues below in its new state, in this same pass.
            ti = _check_worker(rs, ti, task, now, cfg, out)
        state = ti.state
        if state in OCCUPYING_STATES:
            rs.occupied += 1
            pool = ti.pool or task.pool
            rs.pool_used[pool] = rs.pool_used.get(pool, 0) + task.pool_slots
        elif paused:
            pass
        elif state is TI.NONE:
            state = _evaluate_rule(rs, i, ti, task, states, now, out)
        elif state is TI.SCHEDULED:
            _add_candidate(rs, i, ti, task, ti.try_number)
        elif state is TI.UP_FOR_RETRY and (ti.next_retry_at is None or ti.next_retry_at <= now):
            # As Airflow, a retry re-checks its trigger rule (an upstream may have been cleared).
            state = _evaluate_rule(rs, i, ti, task, states, now, out)
        states.append(state)
    if paused:
        return None
    return _finish(rs, states, now)


def _fresh(task: TaskSpec) -> TaskInstanceSnap:
    return TaskInstanceSnap(task_id=task.task_id, max_tries=task.retries)


def _evaluate_rule(
    rs: _RunState,
    i: int,
    ti: TaskInstanceSnap,
    task: TaskSpec,
    states: list[TaskInstanceState],
    now: datetime,
    out: list[Action],
) -> TaskInstanceState:
    ups = rs.graph.upstream[i]
    if ups and len(ups) > _MEMO_MAX_UPSTREAM:
        decision = evaluate(rs.graph.rules[i], count_upstream([states[u] for u in ups]))
    elif ups:
        rule = rs.graph.rules[i]
        # Few distinct (rule, upstream states) pairs occur: memoise the verdicts.
        key = (rule, *[states[u] for u in ups])
        decision = _verdicts.get(key)
        if decision is None:
            decision = evaluate(rule, count_upstream(key[1:]))
            if len(_verdicts) > _VERDICTS_MAX:
                _verdicts.clear()
            _verdicts[key] = decision
    else:
        decision = Decision.RUN
    if decision is Decision.RUN:
        _add_candidate(rs, i, ti, task, ti.try_number + 1)
        return ti.state
    if decision is Decision.WAIT:
        return ti.state
    common = _ti_fields(rs, ti)
    if decision is Decision.SKIP:
        out.append(SkipTask(**common, try_number=ti.try_number, end_date=now))
        return TI.SKIPPED
    out.append(UpstreamFailTask(**common, try_number=ti.try_number, end_date=now))
    return TI.UPSTREAM_FAILED


def _ti_fields(rs: _RunState, ti: TaskInstanceSnap) -> dict[str, object]:
    return {
        "dag_id": rs.dag_id,
        "tenant": rs.tenant,
        "run_id": rs.run.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "expected_state": ti.state,
        "expected_try_number": ti.try_number,
    }


def _add_candidate(
    rs: _RunState, i: int, ti: TaskInstanceSnap, task: TaskSpec, new_try: int
) -> None:
    priority = rs.graph.priority[i]
    rs.candidates.append(
        _Candidate(
            sort_key=(-priority, rs.run.run_after, rs.run.run_id, task.task_id),
            run=rs,
            ti=ti,
            task=task,
            priority=priority,
            new_try=new_try,
            pool=ti.pool or task.pool,
        )
    )


def _check_worker(
    rs: _RunState,
    ti: TaskInstanceSnap,
    task: TaskSpec,
    now: datetime,
    cfg: DecideConfig,
    out: list[Action],
) -> TaskInstanceSnap:
    """Time out or reap a queued/running/restarting TI; return it as it will be."""
    state = ti.state
    deadline = execution_deadline(ti.start_date, task.execution_timeout_seconds)
    if state is TI.RUNNING and deadline is not None and now >= deadline:
        outcome = _failure(rs, ti, task, now)
        out.append(
            TimeoutTask(
                **_ti_fields(rs, ti),
                new_state=outcome.state,
                try_number=ti.try_number,
                end_date=now,
                next_retry_at=outcome.next_retry_at,
            )
        )
        return replace(ti, state=outcome.state, next_retry_at=outcome.next_retry_at)
    if state is TI.QUEUED:
        stale, limit, reason = ti.queued_at, cfg.queued_timeout, "queued_timeout"
    else:
        stale = ti.last_heartbeat_at or ti.start_date or ti.queued_at
        limit, reason = cfg.heartbeat_timeout, "heartbeat_timeout"
    if stale is None or now - stale <= limit:
        return ti
    if state is TI.RESTARTING:
        # The cleared try's worker is gone: the clear is complete, a fresh try follows.
        new_state, next_retry_at, reason = TI.NONE, None, "restart_complete"
    else:
        outcome = _failure(rs, ti, task, now)
        new_state, next_retry_at = outcome.state, outcome.next_retry_at
    out.append(
        ReapTask(
            **_ti_fields(rs, ti),
            new_state=new_state,
            try_number=ti.try_number,
            end_date=now,
            reason=reason,
            next_retry_at=next_retry_at,
        )
    )
    return replace(ti, state=new_state, next_retry_at=next_retry_at)


def _failure(rs: _RunState, ti: TaskInstanceSnap, task: TaskSpec, now: datetime) -> FailureOutcome:
    return failure_outcome_for(
        task,
        dag_id=rs.dag_id,
        logical_date=rs.run.logical_date,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        end_date=now,
    )


def _remove_orphans(rs: _RunState, out: list[Action]) -> None:
    """TIs whose task is not in the run's DAG version -> removed (when not yet started)."""
    index = rs.graph.index
    orphans = [t for t in rs.run.task_instances if t not in index]
    for task_id in sorted(orphans):
        ti = rs.run.task_instances[task_id]
        if ti.state in (TI.NONE, TI.SCHEDULED):
            out.append(RemoveTask(**_ti_fields(rs, ti), try_number=ti.try_number))


def _finish(rs: _RunState, states: list[TaskInstanceState], now: datetime) -> FinishRun | None:
    unfinished = [s for s in states if s in UNFINISHED_STATES]
    if unfinished:
        # Deadlock: only none-state TIs remain, and none of them is runnable.
        if rs.candidates or any(s is not TI.NONE for s in unfinished):
            return None
        new_state, reason = DR.FAILED, "all_tasks_deadlocked"
    else:
        leaves = [states[i] for i in rs.graph.leaves if states[i] is not TI.REMOVED]
        if any(s in FAILED_STATES for s in leaves):
            new_state, reason = DR.FAILED, "task_failure"
        else:
            new_state, reason = DR.SUCCESS, "success"
    return FinishRun(
        dag_id=rs.dag_id,
        tenant=rs.tenant,
        run_id=rs.run.run_id,
        new_state=new_state,
        end_date=now,
        reason=reason,
    )


def _time_out_run(rs: _RunState, now: datetime, out: list[Action]) -> FinishRun:
    """dagrun_timeout passed: unfinished TIs -> skipped (running ones killed); run failed."""
    tis = rs.run.task_instances
    for task in rs.graph.tasks:
        ti = tis.get(task.task_id) or _fresh(task)
        if ti.state in UNFINISHED_STATES:
            out.append(
                SkipTask(
                    **_ti_fields(rs, ti),
                    try_number=ti.try_number,
                    end_date=now,
                    kill=ti.state in OCCUPYING_STATES,
                    reason="dagrun_timeout",
                )
            )
    return FinishRun(
        dag_id=rs.dag_id,
        tenant=rs.tenant,
        run_id=rs.run.run_id,
        new_state=DR.FAILED,
        end_date=now,
        reason="dagrun_timeout",
    )


# --------------------------------------------------------------------------------------------
# Queueing across runs: priority, parallelism, pools, max_active_tasks
# --------------------------------------------------------------------------------------------


def _queue(
    runnable: list[_RunState], settled: list[_RunState], snap: Snapshot, now: datetime
) -> list[Action]:
    candidates = [c for rs in runnable for c in rs.candidates]
    if not candidates:
        return []
    candidates.sort(key=lambda c: c.sort_key)
    occupied, pool_used = _occupancy(snap, settled)
    pool_free = None
    if snap.pools is not None:
        pool_free = {
            name: (-1 if n < 0 else n - pool_used.get(name, 0)) for name, n in snap.pools.items()
        }
    parallelism = snap.config.parallelism
    total_free = None if parallelism is None else parallelism - occupied
    out: list[Action] = []
    for c in candidates:
        slots = c.task.pool_slots
        room = None if pool_free is None else pool_free.get(c.pool)
        fits = (
            c.run.occupied < c.run.max_active_tasks
            and (total_free is None or total_free > 0)
            and (pool_free is None or (room is not None and (room < 0 or room >= slots)))
        )
        if fits:
            c.run.occupied += 1
            if total_free is not None:
                total_free -= 1
            if pool_free is not None and room is not None and room >= 0:
                pool_free[c.pool] = room - slots
            out.append(_queue_action(c, now))
        elif c.ti.state is TI.NONE:
            out.append(ScheduleTask(**_ti_fields(c.run, c.ti), try_number=c.new_try))
        elif c.ti.state is TI.UP_FOR_RETRY:
            out.append(RequeueRetry(**_ti_fields(c.run, c.ti), try_number=c.new_try))
    return out


def _queue_action(c: _Candidate, now: datetime) -> QueueTask:
    return QueueTask(
        **_ti_fields(c.run, c.ti),
        try_number=c.new_try,
        queued_at=now,
        pool=c.pool,
        pool_slots=c.task.pool_slots,
        priority_weight=c.priority,
    )


def _occupancy(snap: Snapshot, settled: list[_RunState]) -> tuple[int, dict[str, int]]:
    """Occupying TIs overall and slots used per pool, after this call's settlements.

    Settled runs count their effective states; other active runs (queued, not started)
    count the snapshot's states.
    """
    total = 0
    used: dict[str, int] = {}
    seen = set()
    for rs in settled:
        seen.add((rs.tenant, rs.dag_id, rs.run.run_id))
        total += rs.occupied
        for pool, n in rs.pool_used.items():
            used[pool] = used.get(pool, 0) + n
    for dag in snap.dags:
        for run in dag.runs:
            if (dag.tenant, dag.dag_id, run.run_id) in seen:
                continue
            graph = compile_dag(run.spec or dag.spec)
            for ti in run.task_instances.values():
                if ti.state in OCCUPYING_STATES:
                    i = graph.index.get(ti.task_id)
                    task = graph.tasks[i] if i is not None else None
                    pool = ti.pool or (task.pool if task else "default_pool")
                    used[pool] = used.get(pool, 0) + (task.pool_slots if task else 1)
                    total += 1
    return total, used
