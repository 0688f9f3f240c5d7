"""DAG, @dag and Param: the DAG-level authoring API with Airflow 3's defaults."""

from __future__ import annotations

import functools
import inspect
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from leoflow.sdk import _context
from leoflow.sdk._errors import caller_location, fail, unsupported
from leoflow.sdk._values import aware, is_json, seconds, to_json

if TYPE_CHECKING:
    from leoflow.sdk.baseoperator import BaseOperator

_UNSET: Any = object()
_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually",
            "@midnight"}  # fmt: skip
_IGNORED_DAG_ARGS = frozenset(
    {
        "owner_links", "access_control", "render_template_as_native_obj",
        "template_searchpath", "template_undefined", "user_defined_macros",
        "user_defined_filters", "on_success_callback", "on_failure_callback",
        "sla_miss_callback", "default_view", "orientation", "jinja_environment_kwargs",
        "fail_stop", "fail_fast", "dag_display_name", "max_consecutive_failed_dag_runs",
        "auto_register", "disable_bundle_versioning", "timetable", "deadline",
    }
)  # fmt: skip
_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")


class Param:
    """A DAG param: a default plus JSON Schema keywords (``type``, ``minimum``, ``enum``...)."""

    def __init__(
        self, default: Any = _UNSET, description: str | None = None, **schema: Any
    ) -> None:
        self.value = None if default is _UNSET else default
        self.has_default = default is not _UNSET
        self.description = description
        self.schema = schema

    def resolve(self) -> Any:
        """The default value (Airflow's ``Param.resolve`` without trigger conf)."""
        return self.value

    def serialize(self, name: str) -> dict[str, Any]:
        """The spec's ParamSpec shape."""
        if not is_json(self.value) or not is_json(self.schema):
            raise fail(f"param {name!r}: default and schema keywords must be JSON")
        title = self.schema.get("title")
        return {
            "default": to_json(self.value),
            "has_default": self.has_default,
            "schema": to_json(self.schema),
            "description": self.description,
            "title": title if isinstance(title, str) else None,
        }


def _schedule(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value.total_seconds() <= 0:
            raise fail(f"schedule {value!r} must be a positive interval")
        return {"type": "delta", "seconds": value.total_seconds()}
    if isinstance(value, str):
        text = value.strip()
        if text == "@once":
            return {"type": "once"}
        if text == "@continuous":
            return {"type": "continuous"}
        if text in _PRESETS or (not text.startswith("@") and len(text.split()) in (5, 6)):
            return {"type": "cron", "expression": text}
        raise fail(
            f"schedule {value!r} is not a cron expression or preset",
            hint="use e.g. '0 6 * * *', '@daily', '@once', '@continuous', a timedelta, or None",
        )
    raise unsupported(
        f"schedule of type {type(value).__name__}",
        hint="use a cron string, a preset like '@daily', a datetime.timedelta, or None",
    )


class DAG:
    """A DAG: ``with DAG("my_dag", schedule="@daily", start_date=...) as dag: ...``."""

    def __init__(
        self,
        dag_id: str,
        description: str | None = None,
        schedule: Any = _UNSET,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        default_args: dict[str, Any] | None = None,
        max_active_tasks: int = 16,
        max_active_runs: int = 16,
        dagrun_timeout: timedelta | float | None = None,
        catchup: bool = False,
        doc_md: str | None = None,
        params: dict[str, Any] | None = None,
        tags: list[str] | set[str] | None = None,
        is_paused_upon_creation: bool | None = None,
        schedule_interval: Any = _UNSET,
        concurrency: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.path, self.line = caller_location(in_dag_file=True)
        unknown = sorted(set(kwargs) - _IGNORED_DAG_ARGS)
        if unknown:
            raise fail(f"DAG got unexpected argument(s): {', '.join(unknown)}")
        if not isinstance(dag_id, str) or not _ID_RE.match(dag_id):
            raise fail(
                f"invalid dag_id {dag_id!r}",
                hint="use letters, digits, '_', '.' or '-' (at most 250 characters)",
            )
        if schedule is not _UNSET and schedule_interval is not _UNSET:
            raise fail("pass either schedule or schedule_interval, not both")
        self.dag_id = dag_id
        self.description = description
        self.doc_md = doc_md
        self.default_args = dict(default_args or {})
        self.schedule = _schedule(
            schedule if schedule is not _UNSET else
            None if schedule_interval is _UNSET else schedule_interval
        )  # fmt: skip
        self.start_date = aware(start_date or self.default_args.get("start_date"), "start_date")
        self.end_date = aware(end_date or self.default_args.get("end_date"), "end_date")
        self.catchup = bool(catchup)
        self.max_active_runs = self._positive(max_active_runs, "max_active_runs")
        self.max_active_tasks = self._positive(concurrency or max_active_tasks, "max_active_tasks")
        self.dagrun_timeout_seconds = seconds(dagrun_timeout, "dagrun_timeout")
        self.is_paused_upon_creation = is_paused_upon_creation
        self.params = self._params(params or {})
        self.tags = sorted({str(t) for t in (tags or [])})
        self.task_dict: dict[str, BaseOperator] = {}
        self.group_ids: set[str] = set()
        _context.register_dag(self)

    @staticmethod
    def _positive(value: Any, name: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(f"{name} must be a positive integer, not {value!r}")
        return value

    @staticmethod
    def _params(params: dict[str, Any]) -> dict[str, Param]:
        out = {}
        for name, value in params.items():
            param = value if isinstance(value, Param) else Param(value)
            if not is_json(param.value):
                raise fail(f"param {name!r}: the default {param.value!r} is not JSON")
            out[str(name)] = param
        return out

    @property
    def owner(self) -> str:
        """default_args["owner"], else "airflow"."""
        return str(self.default_args.get("owner") or "airflow")

    @property
    def tasks(self) -> list[BaseOperator]:
        """The tasks in declaration order."""
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        """The task ids in declaration order."""
        return list(self.task_dict)

    def get_task(self, task_id: str) -> BaseOperator:
        """The task with this id (KeyError naming the known ids when absent)."""
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise KeyError(
                f"DAG {self.dag_id!r} has no task {task_id!r}; known: {sorted(self.task_dict)}"
            ) from None

    def has_task(self, task_id: str) -> bool:
        """True when the DAG has a task with this id."""
        return task_id in self.task_dict

    def unique_task_id(self, task_id: str) -> str:
        """Airflow's rule for repeated TaskFlow ids: ``m``, ``m__1``, ``m__2``..."""
        if task_id not in self.task_dict:
            return task_id
        core = re.split(r"__\d+$", task_id)[0]
        pattern = re.compile(rf"^{re.escape(core)}__(\d+)$")
        suffixes = [int(m.group(1)) for k in self.task_dict if (m := pattern.match(k))]
        return f"{core}__{max(suffixes, default=0) + 1}"

    def add_task(self, task: BaseOperator) -> None:
        """Register a task; a duplicate task_id is an error at the task's line."""
        if task.task_id in self.task_dict:
            raise fail(
                f"duplicate task_id {task.task_id!r} in DAG {self.dag_id!r} (first declared "
                f"at line {self.task_dict[task.task_id].line})",
                hint="give each operator a unique task_id",
            )
        self.task_dict[task.task_id] = task

    def __enter__(self) -> DAG:
        _context.push_dag(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _context.pop_dag()

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"


def dag(dag_id: Any = None, **dag_kwargs: Any) -> Any:
    """``@dag`` / ``@dag(schedule=...)``: calling the function builds the DAG and returns it."""

    def decorate(func: Any) -> Any:
        @functools.wraps(func)
        def build(*args: Any, **kwargs: Any) -> DAG:
            opts = dict(dag_kwargs)
            if func.__doc__ and "doc_md" not in opts:
                opts["doc_md"] = inspect.cleandoc(func.__doc__)
            params = dict(opts.pop("params", None) or {})
            for name, p in inspect.signature(func).parameters.items():
                if p.default is not inspect.Parameter.empty and name not in params:
                    params[name] = p.default
            the_dag = DAG(the_id or func.__name__, params=params, **opts)
            # The DAG's line is the @dag function's, not the line that calls it.
            the_dag.path = func.__code__.co_filename
            the_dag.line = func.__code__.co_firstlineno
            with the_dag:
                func(*args, **kwargs)
            return the_dag

        return build

    if callable(dag_id):
        the_id = None
        return decorate(dag_id)
    the_id = dag_id
    return decorate
