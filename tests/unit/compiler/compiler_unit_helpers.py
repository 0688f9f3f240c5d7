"""Canned probe outputs for compiler unit tests (no subprocess): the probe's JSON shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leoflow.spec import TaskSpec

DAG_FIELDS: dict[str, Any] = {
    "description": None,
    "doc_md": None,
    "owner": "airflow",
    "tags": [],
    "schedule": None,
    "timezone": "UTC",
    "start_date": None,
    "end_date": None,
    "catchup": False,
    "max_active_runs": 16,
    "max_active_tasks": 16,
    "dagrun_timeout_seconds": None,
    "is_paused_upon_creation": None,
    "params": {},
}


def raw_task(task_id: str, *, explicit: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A task dict as the probe emits it: every TaskSpec key plus ``_explicit``."""
    fields.setdefault("type", "python")
    fields.setdefault("operator", "PythonOperator")
    if fields["type"] == "python":
        fields.setdefault("callable", f"dag:{task_id.split('__')[0]}")
    base = {"task_id": "t", "type": "bash", "operator": "BashOperator", "bash_command": "true"}
    out = TaskSpec.model_validate(base).model_dump(mode="json")
    out.update(bash_command=None, task_id=task_id, **fields)
    out["_explicit"] = list(explicit)
    return out


def raw_dag(dag_id: str, tasks: list[dict[str, Any]], *, line: int = 3, **fields: Any) -> dict:
    """A DAG dict as the probe emits it."""
    return {"dag_id": dag_id, **DAG_FIELDS, **fields, "tasks": tasks, "_line": line}


class FakeProbe:
    """Stands in for run_probe: returns a canned outcome and records its calls."""

    def __init__(self, dags: list[dict] | None = None, error: dict | None = None) -> None:
        self.outcome = {"dags": dags or [], "error": error}
        self.calls: list[tuple[Path, str]] = []

    def __call__(self, dag_file: Path, *, python: str, timeout: float = 120) -> dict:
        self.calls.append((dag_file, python))
        return self.outcome
