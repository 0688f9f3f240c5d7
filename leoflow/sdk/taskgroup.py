"""TaskGroup and @task_group: ids prefixed ``group.task`` as Airflow does."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from leoflow.sdk import _context
from leoflow.sdk._errors import fail
from leoflow.sdk._graph import DependencyMixin

if TYPE_CHECKING:
    from leoflow.sdk.baseoperator import BaseOperator
    from leoflow.sdk.dag import DAG


class TaskGroup(DependencyMixin):
    """A named group of tasks; as a context manager, tasks created inside join it."""

    def __init__(
        self,
        group_id: str,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: dict[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
        group_display_name: str | None = None,
    ) -> None:
        dag = dag or (parent_group.dag if parent_group else None) or _context.current_dag()
        if dag is None:
            raise fail(f"TaskGroup {group_id!r} is created outside a DAG")
        self.dag = dag
        self.parent_group = parent_group or _context.current_group(dag)
        self.prefix_group_id = prefix_group_id
        self.default_args = dict(default_args or {})
        self.tooltip = tooltip
        self.tasks: list[BaseOperator] = []
        full = self.parent_group.child_id(group_id) if self.parent_group else group_id
        if full in dag.group_ids:
            if not add_suffix_on_collision:
                raise fail(f"TaskGroup id {full!r} is already used in DAG {dag.dag_id!r}")
            core = re.split(r"__\d+$", full)[0]
            n = 1
            while f"{core}__{n}" in dag.group_ids:
                n += 1
            full = f"{core}__{n}"

        self.group_id = full
        dag.group_ids.add(full)

    def child_id(self, label: str) -> str:
        """The full id of a child task or group named ``label``."""
        return f"{self.group_id}.{label}" if self.prefix_group_id else label

    def all_default_args(self) -> dict[str, Any]:
        """default_args of the enclosing groups, outermost first, then this group's."""
        merged = self.parent_group.all_default_args() if self.parent_group else {}
        merged.update(self.default_args)
        return merged

    def add(self, task: BaseOperator) -> None:
        """Record ``task`` in this group and every enclosing group."""
        self.tasks.append(task)
        if self.parent_group is not None:
            self.parent_group.add(task)

    @property
    def roots(self) -> list[BaseOperator]:
        ids = {t.task_id for t in self.tasks}
        return [t for t in self.tasks if not (t.upstream_task_ids & ids)]

    @property
    def leaves(self) -> list[BaseOperator]:
        ids = {t.task_id for t in self.tasks}
        return [t for t in self.tasks if not (t.downstream_task_ids & ids)]

    def __enter__(self) -> TaskGroup:
        _context.push_group(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _context.pop_group()

    def __repr__(self) -> str:
        return f"<TaskGroup: {self.group_id}>"


def task_group(python_callable: Any = None, **group_kwargs: Any) -> Any:
    """``@task_group`` / ``@task_group(group_id=..., ...)``: calling the function builds a group."""

    def decorate(func: Any) -> Any:
        @functools.wraps(func)
        def build(*args: Any, **kwargs: Any) -> Any:
            opts = dict(group_kwargs)
            group_id = opts.pop("group_id", None) or func.__name__
            opts.setdefault("add_suffix_on_collision", True)
            if func.__doc__:
                opts.setdefault("tooltip", func.__doc__)
            with TaskGroup(group_id, **opts) as group:
                result = func(*args, **kwargs)
            # As Airflow: a returned task (or output) carries the dependencies, else the group.
            return result if isinstance(result, DependencyMixin) else group

        return build

    if python_callable is not None and callable(python_callable):
        return decorate(python_callable)
    if python_callable is not None:
        group_kwargs["group_id"] = python_callable
    return decorate
