"""Airflow 3 response shapes, built by pure functions from specs and domain objects.

Field names and types follow ``v2-rest-api-generated-3.2.1.yaml`` exactly (the official client's
pydantic models reject a body missing any required field). Dates are ISO-8601 UTC with ``Z``;
durations are float seconds; timedeltas use Airflow's ``{"__type": "TimeDelta", ...}`` form.
Domain objects are read by attribute, so any store object with these fields will do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leoflow.spec import (
    ContinuousSchedule,
    CronSchedule,
    DagSpec,
    DeltaSchedule,
    OnceSchedule,
    TaskSpec,
)
from leoflow.store.api import Dag, DagVersion

BUNDLE_NAME = "leoflow"
_TASK_MODULES = {
    "PythonOperator": "airflow.providers.standard.operators.python",
    "BashOperator": "airflow.providers.standard.operators.bash",
    "EmptyOperator": "airflow.providers.standard.operators.empty",
    "HttpOperator": "airflow.providers.http.operators.http",
}


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z`` (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # what asyncpg returns: skip the conversion (hot in list pages)
        return value.isoformat()[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def time_delta(seconds: float | None) -> dict[str, Any] | None:
    """Airflow's serialized timedelta."""
    if seconds is None:
        return None
    delta = timedelta(seconds=seconds)
    return {
        "__type": "TimeDelta",
        "days": delta.days,
        "seconds": delta.seconds,
        "microseconds": delta.microseconds,
    }


def spec_timetable_summary(spec: DagSpec) -> str | None:
    """What Airflow shows as a DAG's schedule."""
    schedule = spec.schedule
    if isinstance(schedule, CronSchedule):
        return schedule.expression
    if isinstance(schedule, DeltaSchedule):
        return str(timedelta(seconds=schedule.seconds))
    if isinstance(schedule, OnceSchedule):
        return "@once"
    if isinstance(schedule, ContinuousSchedule):
        return "@continuous"
    return None


def duration(
    start: datetime | None, end: datetime | None, now: datetime | None = None
) -> float | None:
    """Seconds from start to end (to ``now`` while still running)."""
    if start is None:
        return None
    stop = end or now
    return None if stop is None else (stop - start).total_seconds()


# -- DAGs ---------------------------------------------------------------------------------------


def dag_response(dag: Dag) -> dict[str, Any]:
    """DAGResponse from a store ``Dag`` (its current version's fields are denormalized)."""
    return {
        "dag_id": dag.dag_id,
        "dag_display_name": dag.dag_id,
        "is_paused": dag.is_paused,
        "is_stale": dag.is_stale,
        "last_parsed_time": iso(dag.last_parsed_time),
        "last_parse_duration": 0.0,
        "last_expired": None,
        "bundle_name": BUNDLE_NAME,
        "bundle_version": dag.current_version_label,
        "relative_fileloc": dag.fileloc,
        "fileloc": dag.fileloc,
        "description": dag.description,
        "timetable_summary": dag.timetable_summary,
        "timetable_description": (
            "Never, external triggers only"
            if dag.timetable_summary is None
            else f"Schedule: {dag.timetable_summary}"
        ),
        "timetable_partitioned": False,
        "tags": [
            {"name": tag, "dag_id": dag.dag_id, "dag_display_name": dag.dag_id} for tag in dag.tags
        ],
        "max_active_tasks": dag.max_active_tasks,
        "max_active_runs": dag.max_active_runs,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": False,
        "has_import_errors": dag.has_import_errors,
        "next_dagrun_logical_date": iso(dag.next_dagrun_logical_date),
        "next_dagrun_data_interval_start": iso(dag.next_dagrun_data_interval_start),
        "next_dagrun_data_interval_end": iso(dag.next_dagrun_data_interval_end),
        "next_dagrun_run_after": iso(dag.next_dagrun_run_after),
        "allowed_run_types": ["manual", "scheduled"] if dag.schedule else ["manual"],
        "owners": [dag.owner],
        "file_token": dag.dag_id,
    }


def params_response(spec: DagSpec) -> dict[str, Any]:
    """DAG params as Airflow serializes them for the trigger form."""
    return {
        name: {
            "value": param.default if param.has_default else None,
            "schema": param.schema_,
            "description": param.description,
            "title": param.title,
            "__class": "airflow.sdk.definitions.param.Param",
        }
        for name, param in spec.params.items()
    }


def dag_details_response(
    dag: Dag,
    spec: DagSpec | None,
    latest_version: dict[str, Any] | None,
    *,
    is_favorite: bool = False,
) -> dict[str, Any]:
    """DAGDetailsResponse (``spec`` is the current version's, for params and docs)."""
    timeout = spec.dagrun_timeout_seconds if spec else None
    return {
        **dag_response(dag),
        "catchup": dag.catchup,
        "dag_run_timeout": None if timeout is None else f"PT{timeout:g}S",
        "asset_expression": None,
        "doc_md": spec.doc_md if spec else None,
        "start_date": iso(dag.start_date),
        "end_date": iso(dag.end_date),
        "is_paused_upon_creation": spec.is_paused_upon_creation if spec else None,
        "params": params_response(spec) if spec else {},
        "render_template_as_native_obj": False,
        "template_search_path": None,
        "timezone": dag.timezone,
        "last_parsed": iso(dag.last_parsed_time),
        "default_args": {"owner": dag.owner},
        "owner_links": None,
        "is_favorite": is_favorite,
        "active_runs_count": 0,
        "concurrency": dag.max_active_tasks,
        "latest_dag_version": latest_version,
    }


def dag_version_response(version: DagVersion) -> dict[str, Any]:
    """DagVersionResponse."""
    return {
        "id": str(version.id),
        "version_number": version.version_number,
        "dag_id": version.dag_id,
        "bundle_name": BUNDLE_NAME,
        "bundle_version": version.label,
        "created_at": iso(version.created_at),
        "dag_display_name": version.dag_id,
        "bundle_url": None,
    }


def task_response(spec: DagSpec, task: TaskSpec) -> dict[str, Any]:
    """TaskResponse."""
    downstream = spec.downstream()[task.task_id]
    return {
        "task_id": task.task_id,
        "task_display_name": task.task_id,
        "owner": spec.owner,
        "start_date": iso(spec.start_date),
        "end_date": iso(spec.end_date),
        "trigger_rule": task.trigger_rule.value,
        "depends_on_past": False,
        "wait_for_downstream": False,
        "retries": float(task.retries),
        "queue": "default",
        "pool": task.pool,
        "pool_slots": float(task.pool_slots),
        "execution_timeout": time_delta(task.execution_timeout_seconds),
        "retry_delay": time_delta(task.retry_delay_seconds),
        "retry_exponential_backoff": 2.0 if task.retry_exponential_backoff else 0.0,
        "priority_weight": float(task.priority_weight),
        "weight_rule": "downstream",
        "ui_color": "#fff",
        "ui_fgcolor": "#000",
        "template_fields": ["bash_command", "env"] if task.bash_command else [],
        "downstream_task_ids": downstream,
        "doc_md": task.doc_md,
        "operator_name": task.operator,
        "params": {},
        "class_ref": {
            "module_path": _TASK_MODULES.get(task.operator),
            "class_name": task.operator,
        },
        "is_mapped": False,
        "extra_links": [],
    }


# -- runs and task instances ------------------------------------------------------------------


def dag_run_response(run: Any, version: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """DAGRunResponse from a run object (``run_id``, ``state``, dates, ``conf``, ``note``...)."""
    return {
        "dag_run_id": run.run_id,
        "dag_id": run.dag_id,
        "logical_date": iso(run.logical_date),
        "queued_at": iso(run.queued_at),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "duration": duration(run.start_date, run.end_date, now),
        "data_interval_start": iso(run.logical_date),
        "data_interval_end": iso(run.logical_date),
        "run_after": iso(run.run_after),
        "last_scheduling_decision": None,
        "run_type": str(run.run_type),
        "state": str(run.state),
        "triggered_by": getattr(run, "triggered_by", None) or _triggered_by(str(run.run_type)),
        "triggering_user_name": getattr(run, "triggering_user_name", None),
        "conf": run.conf if run.conf is not None else {},
        "note": run.note,
        "dag_versions": [version] if version else [],
        "bundle_version": version["bundle_version"] if version else None,
        "dag_display_name": run.dag_id,
        "partition_key": None,
    }


def _triggered_by(run_type: str) -> str:
    return {"scheduled": "timetable", "backfill": "backfill"}.get(run_type, "rest_api")


def _ti_common(ti: Any, version: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    running = ti.end_date is None and str(ti.state) == "running"
    return {
        "task_id": ti.task_id,
        "dag_id": ti.dag_id,
        "dag_run_id": ti.run_id,
        "map_index": ti.map_index,
        "start_date": iso(ti.start_date),
        "end_date": iso(ti.end_date),
        "duration": duration(ti.start_date, ti.end_date, now) if running else ti.duration,
        "state": None if ti.state is None else str(ti.state),
        "try_number": ti.try_number,
        "max_tries": ti.max_tries,
        "task_display_name": ti.task_id,
        "dag_display_name": ti.dag_id,
        "hostname": ti.hostname,
        "unixname": "leoflow",
        "pool": ti.pool,
        "pool_slots": ti.pool_slots,
        "queue": ti.queue,
        "priority_weight": ti.priority_weight,
        "operator": ti.operator,
        "operator_name": ti.operator,
        "queued_when": iso(ti.queued_dttm),
        "scheduled_when": iso(ti.scheduled_dttm),
        "pid": ti.pid,
        "executor": ti.executor,
        "executor_config": "{}",
        "dag_version": version,
    }


def task_instance_response(
    ti: Any, version: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """TaskInstanceResponse from a store ``TaskInstance``."""
    return {
        "id": str(ti.id),
        **_ti_common(ti, version, now),
        "logical_date": iso(ti.logical_date),
        "run_after": iso(ti.run_after or ti.logical_date or now),
        "note": ti.note,
        "rendered_map_index": None,
        "rendered_fields": dict(ti.rendered_fields or {}),
        "trigger": None,
        "triggerer_job": None,
    }


def task_instance_history_response(
    ti: Any, version: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """TaskInstanceHistoryResponse from a store ``TaskInstanceTry``."""
    return _ti_common(ti, version, now)


# -- everything else ------------------------------------------------------------------------


def collection(name: str, items: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """Airflow's ``{<plural>: [...], total_entries: N}``."""
    return {name: items, "total_entries": total}
