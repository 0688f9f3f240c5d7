"""Builders for scheduler tests: tiny specs and snapshots, written inline in each test."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from leoflow.scheduler.model import DagRunSnap, DagSnap, Snapshot, TaskInstanceSnap
from leoflow.scheduler.states import DagRunState, TaskInstanceState
from leoflow.spec import DagSpec, TaskSpec

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def task(task_id: str, upstream: Iterable[str] = (), **kw: Any) -> TaskSpec:
    """An empty task with these upstreams and any TaskSpec field overrides."""
    return TaskSpec(
        task_id=task_id, type="empty", operator="EmptyOperator", upstream=list(upstream), **kw
    )


def dag(*tasks: TaskSpec, dag_id: str = "d", **kw: Any) -> DagSpec:
    """A DagSpec with these tasks."""
    return DagSpec(dag_id=dag_id, tasks=list(tasks), **kw)


def ti(task_id: str, state: str = "none", try_number: int = 0, **kw: Any) -> TaskInstanceSnap:
    """A task-instance snapshot."""
    return TaskInstanceSnap(
        task_id=task_id, state=TaskInstanceState(state), try_number=try_number, **kw
    )


def run(
    run_id: str = "r1",
    state: str = "running",
    tis: Iterable[TaskInstanceSnap] = (),
    run_after: datetime = T0,
    **kw: Any,
) -> DagRunSnap:
    """A run snapshot holding these task instances."""
    kw.setdefault("start_date", run_after)
    kw.setdefault("logical_date", run_after)
    return DagRunSnap(
        run_id=run_id,
        state=DagRunState(state),
        run_after=run_after,
        task_instances={t.task_id: t for t in tis},
        **kw,
    )


def snapshot(*dags: DagSnap, now: datetime = T0, **kw: Any) -> Snapshot:
    """A Snapshot at ``now``."""
    return Snapshot(now=now, dags=tuple(dags), **kw)
