"""Checks on a raw DAG dict before and while it becomes a DagSpec.

The pydantic models in ``leoflow.spec`` are the last word, but their messages name list indexes
(``tasks.17.trigger_rule``). These checks run first on the raw dict so every error names the
task id, the file and the line that declared it, and says how to fix it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from leoflow.errors import CompileError
from leoflow.spec import DagSpec, TriggerRule, find_cycle, is_valid_id

# Airflow's cron presets; "@once" and "@continuous" are their own schedule types.
CRON_PRESETS = frozenset(
    {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually", "@midnight"}
)


def _task_line(task: dict[str, Any]) -> int | None:
    line = task.get("line")
    return line if isinstance(line, int) else None


def check_graph(raw: dict[str, Any], path: str) -> None:
    """Duplicate ids, bad ids, unknown upstream ids and cycles, each naming the task's line."""
    tasks: list[dict[str, Any]] = raw.get("tasks") or []
    if not tasks:
        raise CompileError(
            f"DAG {raw.get('dag_id')!r} has no tasks",
            path=path,
            hint="declare at least one task inside the DAG",
        )
    first_line: dict[str, int | None] = {}
    for task in tasks:
        task_id = task.get("task_id")
        if not isinstance(task_id, str) or not is_valid_id(task_id):
            raise CompileError(
                f"invalid task_id {task_id!r}",
                path=path,
                line=_task_line(task),
                field="task_id",
                hint="use letters, digits, '_', '.' or '-' (at most 250 characters)",
            )
        if task_id in first_line:
            where = (
                f" (first declared on line {first_line[task_id]})" if first_line[task_id] else ""
            )
            raise CompileError(
                f"duplicate task_id {task_id!r}{where}",
                path=path,
                line=_task_line(task),
                field=f"tasks.{task_id}",
                hint="give each task a unique task_id",
            )
        first_line[task_id] = _task_line(task)
    _check_references(tasks, first_line, path)
    cycle = find_cycle({t["task_id"]: list(t.get("upstream") or []) for t in tasks})
    if cycle:
        raise CompileError(
            "the tasks form a cycle: " + " -> ".join(cycle),
            path=path,
            line=first_line.get(cycle[0]),
            hint="a DAG must be acyclic: remove one of these dependencies",
        )


def _check_references(tasks: list[dict[str, Any]], known: dict[str, int | None], path: str) -> None:
    for task in tasks:
        refs = set(task.get("upstream") or [])
        for ref in (task.get("xcom_inputs") or {}).values():
            refs.add(ref.get("task_id") if isinstance(ref, dict) else ref)
        for fan_in in (task.get("fan_ins") or {}).values():
            for slot in fan_in.get("slots", []) if isinstance(fan_in, dict) else []:
                if isinstance(slot, dict) and isinstance(slot.get("ref"), dict):
                    refs.add(slot["ref"].get("task_id"))
        missing = sorted(str(r) for r in refs if r not in known)
        if missing:
            raise CompileError(
                f"task {task['task_id']!r} depends on unknown task(s) {missing}",
                path=path,
                line=_task_line(task),
                field=f"tasks.{task['task_id']}.upstream",
                hint="known task ids: " + ", ".join(sorted(known)),
            )


def check_schedule(raw: dict[str, Any], path: str, line: int | None) -> None:
    """Cron expressions must parse and the timezone must exist."""
    schedule = raw.get("schedule")
    if isinstance(schedule, dict) and schedule.get("type") == "cron":
        expr = str(schedule.get("expression", ""))
        if expr not in CRON_PRESETS and not _valid_cron(expr):
            raise CompileError(
                f"schedule {expr!r} is neither a cron expression nor an Airflow preset",
                path=path,
                line=line,
                field="schedule",
                hint="use five cron fields ('0 6 * * *'), a preset such as '@daily', "
                "a timedelta, or None",
            )
    tz = raw.get("timezone") or "UTC"
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CompileError(
            f"unknown timezone {tz!r}",
            path=path,
            line=line,
            field="timezone",
            hint="use an IANA name such as 'UTC' or 'Europe/Paris'",
        ) from exc


def _valid_cron(expr: str) -> bool:
    from croniter import croniter

    return len(expr.split()) in (5, 6) and bool(croniter.is_valid(expr))


def validate_spec(raw: dict[str, Any], path: str, dag_line: int | None) -> DagSpec:
    """Build the DagSpec; a pydantic error becomes a CompileError naming task, field and line."""
    try:
        return DagSpec.model_validate(raw)
    except ValidationError as exc:
        raise _compile_error(exc, raw, path, dag_line) from exc


def _compile_error(
    exc: ValidationError, raw: dict[str, Any], path: str, dag_line: int | None
) -> CompileError:
    err = exc.errors()[0]
    loc = list(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    line, field, hint = dag_line, ".".join(str(p) for p in loc) or None, None
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        task = raw["tasks"][loc[1]]
        task_id = task.get("task_id", loc[1])
        line = _task_line(task) or dag_line
        rest = ".".join(str(p) for p in loc[2:])
        field = f"tasks.{task_id}" + (f".{rest}" if rest else "")
        if loc[2:] == ["trigger_rule"]:
            msg = f"unknown trigger_rule {err.get('input')!r} on task {task_id!r}"
            hint = "use one of: " + ", ".join(r.value for r in TriggerRule)
        else:
            msg = f"task {task_id!r}: {msg}"
    if exc.error_count() > 1:
        msg += f" (and {exc.error_count() - 1} more problem(s))"
    return CompileError(msg, path=path, line=line, field=field, hint=hint)
