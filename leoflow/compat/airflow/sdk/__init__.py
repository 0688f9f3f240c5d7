"""``airflow.sdk`` (Airflow 3's authoring API) backed by leoflow.sdk."""

from __future__ import annotations

from typing import Any

from leoflow.sdk import (
    DAG,
    BaseOperator,
    Label,
    Param,
    TaskGroup,
    TriggerRule,
    XComArg,
    chain,
    cross_downstream,
    dag,
    get_current_context,
    task,
    task_group,
)

__all__ = [
    "DAG",
    "BaseOperator",
    "Label",
    "Param",
    "TaskGroup",
    "TriggerRule",
    "XComArg",
    "chain",
    "cross_downstream",
    "dag",
    "get_current_context",
    "task",
    "task_group",
]


def __getattr__(name: str) -> Any:
    raise AttributeError(f"airflow.sdk.{name} is not provided by Leoflow")
