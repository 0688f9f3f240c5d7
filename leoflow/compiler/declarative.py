"""A DAG declared in YAML (``dag:`` in leoflow.yaml, or dag.yaml) -> the raw DAG dict.

The result has exactly the shape the dag.py probe produces, so both forms go through the same
overlay, checks and models, and fail with the same errors.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leoflow.errors import CompileError
from leoflow.project import DAG_YAML_FILE, LoadedProject, YamlDag, YamlParam, YamlTask, parse_yaml

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_OPERATORS = {
    "python": "PythonOperator",
    "bash": "BashOperator",
    "http": "HttpOperator",
    "empty": "EmptyOperator",
}
# YamlTask fields that count as "set explicitly on the task" for the leoflow.yaml overlay.
_EXPLICIT_FIELDS = (
    "retries",
    "retry_delay_seconds",
    "retry_exponential_backoff",
    "max_retry_delay_seconds",
    "execution_timeout_seconds",
    "trigger_rule",
    "pool",
)


class YamlSource:
    """Where a declarative DAG lives: the file, its text, and a line lookup for its tasks."""

    def __init__(self, project: LoadedProject) -> None:
        dag_yaml = project.root / DAG_YAML_FILE
        if dag_yaml.exists():
            self.file = dag_yaml
            self.text = dag_yaml.read_text(encoding="utf-8")
            _, self._lines = parse_yaml(self.text, str(dag_yaml))
            self._prefix: tuple[str, ...] = ()
        else:
            assert project.config_path is not None  # a dag: block lives in leoflow.yaml
            self.file = project.config_path
            self.text = project.config_path.read_text(encoding="utf-8")
            self._lines = project.lines
            self._prefix = ("dag",)

    def line(self, *path: str) -> int | None:
        """Line of a key under the DAG declaration (or of its closest enclosing key)."""
        key = (*self._prefix, *path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None


def build_raw(
    project: LoadedProject, source: YamlSource, shown: str
) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """The raw DAG dict and task_id -> explicitly set fields, from the YAML declaration."""
    dag = project.config.dag
    assert dag is not None
    dag_id = project.config.dag_id
    if dag_id is None:
        raise CompileError(
            "a DAG declared in YAML needs a dag_id",
            path=_display_config(project),
            line=1,
            field="dag_id",
            hint="add `dag_id: my_dag` at the top of leoflow.yaml",
        )
    raw: dict[str, Any] = {
        "dag_id": dag_id,
        "description": None,
        "doc_md": dag.doc_md,
        "owner": "airflow",
        "tags": [],
        "schedule": _schedule(dag),
        "timezone": dag.timezone,
        "start_date": _instant(dag.start_date, dag.timezone, source, "start_date", shown),
        "end_date": _instant(dag.end_date, dag.timezone, source, "end_date", shown),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "dagrun_timeout_seconds": None,
        "is_paused_upon_creation": None,
        "params": {name: _param(p) for name, p in sorted(dag.params.items())},
        "tasks": [],
    }
    explicit: dict[str, set[str]] = {}
    for task_id, task in dag.tasks.items():
        raw["tasks"].append(_task(task_id, task, source, shown))
        explicit[task_id] = {f for f in _EXPLICIT_FIELDS if f in task.model_fields_set}
    return raw, explicit


def _display_config(project: LoadedProject) -> str:
    return display(project.config_path or project.root / "leoflow.yaml")


def _schedule(dag: YamlDag) -> dict[str, Any] | None:
    if dag.schedule_interval_seconds is not None:
        return {"type": "delta", "seconds": dag.schedule_interval_seconds}
    if dag.schedule in (None, "", "None", "null"):
        return None
    if dag.schedule == "@once":
        return {"type": "once"}
    if dag.schedule == "@continuous":
        return {"type": "continuous"}
    return {"type": "cron", "expression": dag.schedule}


def _instant(
    value: datetime | date | None, tz: str, source: YamlSource, key: str, shown: str
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        try:
            value = value.replace(tzinfo=ZoneInfo(tz))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CompileError(
                f"unknown timezone {tz!r}",
                path=shown,
                line=source.line("timezone"),
                field="timezone",
                hint="use an IANA name such as 'UTC' or 'Europe/Paris'",
            ) from exc
    return value.astimezone(UTC).isoformat()


def _param(param: YamlParam) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for key in ("type", "enum", "minimum", "maximum"):
        value = getattr(param, key)
        if value is not None:
            schema[key] = value
    return {
        "default": param.default,
        "has_default": "default" in param.model_fields_set,
        "schema": schema,
        "description": param.description,
        "title": param.title,
    }


def _task(task_id: str, task: YamlTask, source: YamlSource, shown: str) -> dict[str, Any]:
    line = source.line("tasks", task_id)
    if task.type == "python" and (task.callable is None or not _CALLABLE.match(task.callable)):
        raise CompileError(
            f"python task {task_id!r} needs `callable: module:function`, got {task.callable!r}",
            path=shown,
            line=source.line("tasks", task_id, "callable") or line,
            field=f"dag.tasks.{task_id}.callable",
            hint="name a function in a module of the project, e.g. `callable: tasks:extract`",
        )
    if task.type == "bash" and not task.bash_command:
        raise CompileError(
            f"bash task {task_id!r} needs a bash_command",
            path=shown,
            line=line,
            field=f"dag.tasks.{task_id}.bash_command",
        )
    if task.type == "http" and task.endpoint is None:
        raise CompileError(
            f"http task {task_id!r} needs an endpoint",
            path=shown,
            line=line,
            field=f"dag.tasks.{task_id}.endpoint",
        )
    xcom_inputs, fan_ins, readers = _inputs(task)
    out: dict[str, Any] = {
        "task_id": task_id,
        "type": task.type,
        "operator": _OPERATORS[task.type],
        "callable": task.callable,
        "bash_command": task.bash_command,
        "http": _http(task) if task.type == "http" else None,
        "call_args": dict(task.args),
        "xcom_inputs": xcom_inputs,
        "fan_ins": fan_ins,
        "upstream": sorted(set(task.upstream) | readers),
        "trigger_rule": task.trigger_rule.value,
        "doc_md": task.doc_md,
        "line": line,
    }
    for name in _EXPLICIT_FIELDS:
        value = getattr(task, name)
        if name != "trigger_rule" and value is not None:
            out[name] = value
    return out


def _inputs(task: YamlTask) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    xcom_inputs: dict[str, Any] = {}
    fan_ins: dict[str, Any] = {}
    readers: set[str] = set()
    for param, ref in task.inputs.items():
        if isinstance(ref, str):
            xcom_inputs[param] = {"task_id": ref, "key": "return_value"}
            readers.add(ref)
        else:
            slots = [{"ref": {"task_id": r, "key": "return_value"}} for r in ref]
            fan_ins[param] = {"shape": "list", "slots": slots}
            readers.update(ref)
    return xcom_inputs, fan_ins, readers


def _http(task: YamlTask) -> dict[str, Any]:
    return {
        "method": task.method,
        "http_conn_id": task.http_conn_id,
        "endpoint": task.endpoint or "",
        "headers": dict(task.headers),
        "data": task.data,
    }


def display(path: Path) -> str:
    """A path as the user should see it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
