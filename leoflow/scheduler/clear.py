"""Clearing and marking task instances and runs, as Airflow does, as pure functions.

They return ``SetTaskState`` / ``SetRunState`` actions that the store applies with the same
guards as ``decide``'s; the next ``decide`` call then re-drives the run.

* Clear (``clear_task_instances`` in Airflow): a running try becomes ``restarting`` (its worker
  is killed; when it is gone the instance returns to ``none``), a queued one is reset to
  ``none`` and its worker killed, any other becomes ``none``; ``max_tries`` becomes
  ``try_number + retries`` so the task gets its full retry budget again; a finished run goes
  back to ``queued`` (Airflow's default ``dag_run_state``).
* Mark a task instance success/failed/skipped: sets the state (killing a live worker); a
  finished run is queued again so the scheduler recomputes its end state.
* Mark a run success: every task instance not yet successful becomes success. Mark a run
  failed: live ones (queued, running, restarting) become failed, the other unfinished ones
  skipped (Airflow's ``set_dag_run_state_to_failed``).
"""

from __future__ import annotations

from collections.abc import Iterable

from leoflow.scheduler._graph import compile_dag
from leoflow.scheduler.model import DagRunSnap, SetRunState, SetTaskState, TaskInstanceSnap
from leoflow.scheduler.states import (
    FAILED_STATES,
    FINISHED_RUN_STATES,
    OCCUPYING_STATES,
    UNFINISHED_STATES,
    DagRunState,
    TaskInstanceState,
)
from leoflow.spec import DagSpec

TI = TaskInstanceState
DR = DagRunState


def tasks_to_clear(
    spec: DagSpec, task_ids: Iterable[str], *, upstream: bool = False, downstream: bool = False
) -> set[str]:
    """``task_ids`` plus, when asked, all their ancestors and/or descendants (transitively).

    Unknown ids raise KeyError. This is Airflow's ``partial_subset(include_upstream=...,
    include_downstream=...)`` as the UI's Upstream/Downstream clear options use it.
    """
    graph = compile_dag(spec)
    start = {graph.index[t] for t in task_ids}
    chosen = set(start)
    for enabled, edges in ((upstream, graph.upstream), (downstream, graph.downstream)):
        if not enabled:
            continue
        stack = list(start)
        seen = set(start)
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        chosen |= seen
    return {graph.tasks[i].task_id for i in chosen}


def _ordered(spec: DagSpec, run: DagRunSnap, task_ids: Iterable[str]) -> list[TaskInstanceSnap]:
    """The run's existing TIs for ``task_ids``, in topological order."""
    graph = compile_dag(spec)
    wanted = set(task_ids)
    return [
        run.task_instances[t.task_id]
        for t in graph.tasks
        if t.task_id in wanted and t.task_id in run.task_instances
    ]


def _requeue_run(dag_id: str, run: DagRunSnap, reason: str, tenant: str) -> list[SetRunState]:
    if run.state not in FINISHED_RUN_STATES:
        return []
    return [
        SetRunState(
            dag_id=dag_id,
            tenant=tenant,
            run_id=run.run_id,
            expected_state=run.state,
            new_state=DR.QUEUED,
            reason=reason,
        )
    ]


def clear_actions(
    spec: DagSpec,
    dag_id: str,
    run: DagRunSnap,
    task_ids: Iterable[str],
    *,
    only_failed: bool = False,
    tenant: str = "default",
) -> list[SetTaskState | SetRunState]:
    """Clear these task instances of ``run`` (expand ids first with :func:`tasks_to_clear`)."""
    retries = {t.task_id: t.retries for t in spec.tasks}
    out: list[SetTaskState | SetRunState] = []
    for ti in _ordered(spec, run, task_ids):
        if only_failed and ti.state not in FAILED_STATES:
            continue
        if ti.state in (TI.NONE, TI.RESTARTING):
            continue  # nothing to reset / already being reset
        new_state = TI.RESTARTING if ti.state is TI.RUNNING else TI.NONE
        out.append(
            SetTaskState(
                dag_id=dag_id,
                tenant=tenant,
                run_id=run.run_id,
                task_id=ti.task_id,
                map_index=ti.map_index,
                expected_state=ti.state,
                expected_try_number=ti.try_number,
                new_state=new_state,
                try_number=ti.try_number,
                kill=ti.state in OCCUPYING_STATES,
                max_tries=ti.try_number + retries[ti.task_id],
                reason="clear",
            )
        )
    if out:
        out.extend(_requeue_run(dag_id, run, "clear", tenant))
    return out


def mark_task_actions(
    spec: DagSpec,
    dag_id: str,
    run: DagRunSnap,
    task_ids: Iterable[str],
    new_state: TaskInstanceState,
    *,
    tenant: str = "default",
) -> list[SetTaskState | SetRunState]:
    """Mark these task instances success, failed or skipped (expand ids with tasks_to_clear)."""
    if new_state not in (TI.SUCCESS, TI.FAILED, TI.SKIPPED):
        raise ValueError(
            f"a task instance can be marked success, failed or skipped, not {new_state}"
        )
    out: list[SetTaskState | SetRunState] = [
        _set(dag_id, tenant, run, ti, new_state, "mark")
        for ti in _ordered(spec, run, task_ids)
        if ti.state is not new_state
    ]
    if out:
        out.extend(_requeue_run(dag_id, run, "mark", tenant))
    return out


def mark_run_actions(
    spec: DagSpec, dag_id: str, run: DagRunSnap, new_state: DagRunState, *, tenant: str = "default"
) -> list[SetTaskState | SetRunState]:
    """Mark a whole run success or failed, with Airflow's effect on its task instances."""
    if new_state not in FINISHED_RUN_STATES:
        raise ValueError(f"a run can be marked success or failed, not {new_state}")
    out: list[SetTaskState | SetRunState] = []
    for ti in _ordered(spec, run, run.task_instances):
        if new_state is DR.SUCCESS and ti.state is not TI.SUCCESS:
            out.append(_set(dag_id, tenant, run, ti, TI.SUCCESS, "mark_run"))
        elif new_state is DR.FAILED and ti.state in OCCUPYING_STATES:
            out.append(_set(dag_id, tenant, run, ti, TI.FAILED, "mark_run"))
        elif new_state is DR.FAILED and ti.state in UNFINISHED_STATES:
            out.append(_set(dag_id, tenant, run, ti, TI.SKIPPED, "mark_run"))
    if run.state is not new_state:
        out.append(
            SetRunState(
                dag_id=dag_id,
                tenant=tenant,
                run_id=run.run_id,
                expected_state=run.state,
                new_state=new_state,
                reason="mark_run",
            )
        )
    return out


def _set(
    dag_id: str,
    tenant: str,
    run: DagRunSnap,
    ti: TaskInstanceSnap,
    new_state: TaskInstanceState,
    why: str,
) -> SetTaskState:
    return SetTaskState(
        dag_id=dag_id,
        tenant=tenant,
        run_id=run.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        expected_state=ti.state,
        expected_try_number=ti.try_number,
        new_state=new_state,
        try_number=ti.try_number,
        kill=ti.state in OCCUPYING_STATES,
        reason=why,
    )
