"""The classic operators Leoflow runs: Python, Bash, Empty and HTTP."""

from __future__ import annotations

from typing import Any

from leoflow.sdk._errors import fail, unsupported
from leoflow.sdk._values import bind_arguments, is_json, seconds, to_json
from leoflow.sdk.baseoperator import BaseOperator


def callable_ref(func: Any) -> str:
    """``module:qualname`` of a function (informative: the runner finds tasks by task_id)."""
    module = getattr(func, "__module__", None) or "__main__"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return f"{module}:{qualname or type(func).__name__}"


class PythonOperator(BaseOperator):
    """Calls ``python_callable(*op_args, **op_kwargs)`` in the task's worker."""

    task_type = "python"

    def __init__(
        self,
        *,
        python_callable: Any,
        op_args: list[Any] | tuple[Any, ...] | None = None,
        op_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise fail(f"python_callable must be callable, not {python_callable!r}")
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        bound = bind_arguments(
            python_callable,
            tuple(self.op_args),
            self.op_kwargs,
            task_id=self.task_id,
            dag_id=self.dag.dag_id,
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


class BashOperator(BaseOperator):
    """Runs ``bash_command`` with bash in the task's worker."""

    task_type = "bash"

    def __init__(self, *, bash_command: str, **kwargs: Any) -> None:
        if not isinstance(bash_command, str):
            raise fail(
                f"bash_command must be a string, not {type(bash_command).__name__}",
                hint="to build the command from another task's output, use @task.bash",
            )
        super().__init__(**kwargs)
        self.bash_command = bash_command

    def spec_fields(self) -> dict[str, Any]:
        fields = super().spec_fields()
        fields["bash_command"] = self.bash_command
        return fields


class EmptyOperator(BaseOperator):
    """Does nothing; useful to join or fan out dependencies."""

    task_type = "empty"


DummyOperator = EmptyOperator

_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class HttpOperator(BaseOperator):
    """An HTTP call made by the control plane (Airflow's HttpOperator)."""

    task_type = "http"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "POST",
        data: Any = None,
        headers: dict[str, str] | None = None,
        http_conn_id: str = "http_default",
        extra_options: dict[str, Any] | None = None,
        response_check: Any = None,
        response_filter: Any = None,
        log_response: bool = False,
        success_status_codes: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if response_check is not None or response_filter is not None:
            raise unsupported(
                "HttpOperator response_check/response_filter",
                hint="check the response in a downstream @task instead",
            )
        verb = str(method).upper()
        if verb not in _HTTP_METHODS:
            raise fail(f"unsupported HTTP method {method!r}", hint=f"use one of {_HTTP_METHODS}")
        if not is_json(data):
            raise fail("HttpOperator data must be JSON (a dict, list or string)")
        if headers is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise fail("HttpOperator headers must be a dict of strings")
        timeout = (extra_options or {}).get("timeout", 60)
        super().__init__(**kwargs)
        self.http = {
            "method": verb,
            "http_conn_id": http_conn_id,
            "endpoint": endpoint or "",
            "headers": dict(headers or {}),
            "data": to_json(data),
            "timeout_seconds": seconds(timeout, "extra_options['timeout']") or 60.0,
            "success_status_codes": list(success_status_codes or [200, 201, 202, 204]),
        }

    def spec_fields(self) -> dict[str, Any]:
        fields = super().spec_fields()
        fields["http"] = dict(self.http)
        return fields


SimpleHttpOperator = HttpOperator

_MAP_HINT = "use a list comprehension over task calls, and trigger_rule for joins"


class BranchPythonOperator(BaseOperator):
    """Not supported yet: branching."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported("BranchPythonOperator (branching)", hint=_MAP_HINT)


class ShortCircuitOperator(BaseOperator):
    """Not supported yet: short-circuiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported("ShortCircuitOperator", hint=_MAP_HINT)


class PythonVirtualenvOperator(BaseOperator):
    """Not supported: every Leoflow task already runs in the DAG's own venv."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported(
            "PythonVirtualenvOperator",
            hint="use PythonOperator; list packages under `dependencies:` in leoflow.yaml",
        )
