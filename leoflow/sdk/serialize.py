"""serialize_dag: a DAG as the JSON shape of ``leoflow.spec.DagSpec`` (plus probe extras).

Extra keys the compiler strips: ``_line`` (the DAG's declaration line) on the DAG and
``_explicit`` (TaskSpec fields the author set on the task itself, not via default_args) on
each task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leoflow.sdk._values import tz_name

if TYPE_CHECKING:
    from leoflow.sdk.baseoperator import BaseOperator
    from leoflow.sdk.dag import DAG


def serialize_task(task: BaseOperator) -> dict[str, Any]:
    """One task as a TaskSpec-shaped dict (with ``_explicit``)."""
    out: dict[str, Any] = {"task_id": task.task_id}
    out.update(task.spec_fields())
    out.update(
        {
            "call_args": dict(task.call_args),
            "xcom_inputs": {k: dict(v) for k, v in task.xcom_inputs.items()},
            "fan_ins": task.fan_ins,
            "upstream": sorted(task.upstream_task_ids),
        }
    )
    out.update(task.policy)
    out.update(
        {
            "task_group": task.group_id,
            "env": dict(task.env),
            "resources": None,
            "placement": None,
            "output_schema": None,
            "line": task.line,
            "_explicit": sorted(task.explicit),
        }
    )
    return out


def serialize_dag(dag: DAG) -> dict[str, Any]:
    """The DAG as a DagSpec-shaped dict (with ``_line``); tasks in declaration order."""
    return {
        "dag_id": dag.dag_id,
        "description": dag.description,
        "doc_md": dag.doc_md,
        "owner": dag.owner,
        "tags": list(dag.tags),
        "schedule": dict(dag.schedule) if dag.schedule else None,
        "timezone": tz_name(dag.start_date),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "end_date": dag.end_date.isoformat() if dag.end_date else None,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "dagrun_timeout_seconds": dag.dagrun_timeout_seconds,
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "params": {name: p.serialize(name) for name, p in dag.params.items()},
        "tasks": [serialize_task(t) for t in dag.tasks],
        "_line": dag.line,
    }
