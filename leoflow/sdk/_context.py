"""Authoring-time context: the DAG and TaskGroup being declared, and the DAG collector.

These stacks exist only while a dag.py is being imported (``with DAG(...)``, ``@dag``,
``with TaskGroup(...)``); the runner's task context is set by the worker, one task per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leoflow.sdk.dag import DAG
    from leoflow.sdk.taskgroup import TaskGroup

_dag_stack: list[DAG] = []
_group_stack: list[TaskGroup] = []
_collectors: list[list[DAG]] = []
_task_context: list[dict[str, Any]] = []


def push_dag(dag: DAG) -> None:
    _dag_stack.append(dag)


def pop_dag() -> None:
    _dag_stack.pop()


def current_dag() -> DAG | None:
    """The DAG of the innermost ``with DAG(...)`` / ``@dag`` body, if any."""
    return _dag_stack[-1] if _dag_stack else None


def push_group(group: TaskGroup) -> None:
    _group_stack.append(group)


def pop_group() -> None:
    _group_stack.pop()


def current_group(dag: DAG) -> TaskGroup | None:
    """The innermost open TaskGroup that belongs to ``dag``."""
    for group in reversed(_group_stack):
        if group.dag is dag:
            return group
    return None


def register_dag(dag: DAG) -> None:
    """Record a newly created DAG in every active collector."""
    for bucket in _collectors:
        bucket.append(dag)


class collect_dags:
    """Context manager gathering every DAG created inside it (``as`` gives the list)."""

    def __enter__(self) -> list[DAG]:
        self._bucket: list[DAG] = []
        _collectors.append(self._bucket)
        return self._bucket

    def __exit__(self, *exc: object) -> None:
        _collectors.remove(self._bucket)


def set_current_context(context: dict[str, Any] | None) -> None:
    """Install (or clear, with None) the running task's context; called by the runner."""
    _task_context.clear()
    if context is not None:
        _task_context.append(context)


def get_current_context() -> dict[str, Any]:
    """The running task's Airflow-style context (``ti``, ``ds``, ``params``...)."""
    if not _task_context:
        raise RuntimeError(
            "get_current_context() works only while a task runs, not at DAG definition time"
        )
    return _task_context[0]
