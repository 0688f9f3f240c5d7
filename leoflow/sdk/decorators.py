"""TaskFlow: ``@task``, ``@task.python``, ``@task.bash`` and ``.override(...)``."""

from __future__ import annotations

import functools
from typing import Any

from leoflow.sdk import _context
from leoflow.sdk._errors import fail, unsupported
from leoflow.sdk._values import bind_arguments
from leoflow.sdk.baseoperator import BaseOperator
from leoflow.sdk.operators import callable_ref
from leoflow.sdk.trigger_rule import check_trigger_rule
from leoflow.sdk.xcom_arg import XComArg

_MAP_HINT = (
    "use a list comprehension, e.g. [m(x) for x in items], and pass the list to a reducing task"
)


class _TaskFlowOperator(BaseOperator):
    """The task a @task call creates; ``python_callable`` is the decorated function."""

    _unique_id = True

    def __init__(
        self,
        *,
        python_callable: Any,
        kind: str,
        op_args: tuple[Any, ...],
        op_kwargs: dict[str, Any],
        multiple_outputs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.task_type = kind
        self.operator_name = "BashOperator" if kind == "bash" else "PythonOperator"
        self.multiple_outputs = bool(multiple_outputs)
        bound = bind_arguments(
            python_callable, op_args, op_kwargs, task_id=self.task_id, dag_id=self.dag.dag_id
        )
        self.call_args, self.xcom_inputs, self.fan_ins = (
            bound.call_args,
            bound.xcom_inputs,
            bound.fan_ins,
        )
        self._read_inputs(bound.sources)

    def spec_fields(self) -> dict[str, Any]:
        fields = super().spec_fields()
        fields["callable"] = callable_ref(self.python_callable)
        return fields


class _TaskDecorator:
    """A decorated function: calling it inside a DAG creates a task and returns its output."""

    def __init__(self, function: Any, kind: str, kwargs: dict[str, Any]) -> None:
        if not callable(function):
            raise fail(f"@task needs a function, not {function!r}")
        if "trigger_rule" in kwargs:
            check_trigger_rule(kwargs["trigger_rule"])
        self.function = function
        self.kind = kind
        self.kwargs = kwargs
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        opts = dict(self.kwargs)
        task_id = opts.pop("task_id", None) or self.function.__name__
        if _context.current_dag() is None and opts.get("dag") is None:
            raise fail(
                f"task {task_id!r} is called outside a DAG",
                hint="call it inside `with DAG(...)` or an @dag function",
            )
        op = _TaskFlowOperator(
            task_id=task_id,
            python_callable=self.function,
            kind=self.kind,
            op_args=args,
            op_kwargs=kwargs,
            **opts,
        )
        return XComArg(op)

    def override(self, **kwargs: Any) -> _TaskDecorator:
        """A copy with some task arguments replaced (``task_id``, ``retries``...)."""
        return _TaskDecorator(self.function, self.kind, {**self.kwargs, **kwargs})

    def expand(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported("dynamic task mapping (.expand)", hint=_MAP_HINT)

    def expand_kwargs(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported("dynamic task mapping (.expand_kwargs)", hint=_MAP_HINT)

    def partial(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported("dynamic task mapping (.partial)", hint=_MAP_HINT)


def _decorator(kind: str, python_callable: Any, kwargs: dict[str, Any]) -> Any:
    if python_callable is not None:
        return _TaskDecorator(python_callable, kind, kwargs)
    return lambda func: _TaskDecorator(func, kind, kwargs)


_UNSUPPORTED = {
    "branch": "@task.branch (branching); use trigger_rule on the joining tasks",
    "short_circuit": "@task.short_circuit",
    "virtualenv": "@task.virtualenv; every task already runs in the DAG's own venv",
    "external_python": "@task.external_python",
    "branch_virtualenv": "@task.branch_virtualenv",
    "branch_external_python": "@task.branch_external_python",
    "docker": "@task.docker",
    "kubernetes": "@task.kubernetes",
    "sensor": "@task.sensor",
    "pyspark": "@task.pyspark",
    "run_if": "@task.run_if",
    "skip_if": "@task.skip_if",
}


class _TaskDecoratorCollection:
    """``task``: ``@task``, ``@task(...)``, ``@task.python``, ``@task.bash``."""

    def __call__(self, python_callable: Any = None, **kwargs: Any) -> Any:
        return _decorator("python", python_callable, kwargs)

    def python(self, python_callable: Any = None, **kwargs: Any) -> Any:
        """Same as ``@task``."""
        return _decorator("python", python_callable, kwargs)

    def bash(self, python_callable: Any = None, **kwargs: Any) -> Any:
        """The function returns the bash command to run (at run time)."""
        return _decorator("bash", python_callable, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _UNSUPPORTED:
            raise unsupported(_UNSUPPORTED[name], hint=_MAP_HINT)
        raise AttributeError(f"task has no decorator {name!r} in Leoflow")


task = _TaskDecoratorCollection()
